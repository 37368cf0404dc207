"""One message or event from WeChat, as the bot reads it: the fields it uses, each checked.

wechatpy's message classes convert fields lazily (``int("x")`` on first access); here every field
is read once from the parsed XML and kept only when it has the expected shape, so no handler ever
meets a nested element, a missing field or a non-number where it expects one.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from wechatpy.messages import BaseMessage

from bot.protocol import MalformedMessage
from settlement import text as outside_text

#: The longest text message the bot reads [characters]; WeChat's own limit is about 2048 bytes.
MAX_CONTENT = 2000


def _text(data: dict, name: str, limit: int = 256) -> str:
    value = data.get(name)
    return value[:limit] if isinstance(value, str) else ""


def _int(data: dict, name: str) -> int | None:
    value = data.get(name)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        return int(value)
    return None


def _degrees(data: dict, name: str, bound: int) -> Decimal | None:
    value = data.get(name)
    if not isinstance(value, str) or len(value) > 32:
        return None
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() and abs(number) <= bound else None


@dataclass(frozen=True)
class Inbound:
    """What the bot needs of one message.

    ``kind`` is WeChat's MsgType (text, image, voice, video, shortvideo, location, link, event);
    ``event`` the lower-case event of an event (subscribe, unsubscribe, scan, location, click,
    view…, with a QR-code subscribe as ``subscribe`` and its scene in ``event_key`` without the
    ``qrscene_`` prefix); ``latitude``/``longitude`` [deg] of a location message or event.
    """

    kind: str
    event: str
    openid: str
    create_time: int
    msg_id: int | None
    content: str = ""
    event_key: str = ""
    latitude: Decimal | None = None
    longitude: Decimal | None = None
    label: str = ""
    #: why the message's text is refused (settlement.text: NUL, control characters, lone
    #: surrogates), naming the field; the bot then answers politely and runs nothing
    refused_text: str | None = None

    @classmethod
    def of(cls, message: BaseMessage) -> Inbound:
        """Read a parsed message; raises MalformedMessage without a sender or a time."""
        data = getattr(message, "_data", None)
        if not isinstance(data, dict):
            raise MalformedMessage("not a WeChat message")
        kind = _text(data, "MsgType", 32).lower()
        openid = _text(data, "FromUserName", 128)
        create_time = _int(data, "CreateTime")
        if not kind or not openid or create_time is None:
            raise MalformedMessage("a message needs MsgType, FromUserName and CreateTime")
        event = _text(data, "Event", 64).lower() if kind == "event" else ""
        key = _text(data, "EventKey", 256)
        if event == "subscribe_scan":  # wechatpy's name for a subscribe through a QR code
            event = "subscribe"
        if event == "subscribe" and key.startswith("qrscene_"):
            key = key[len("qrscene_"):]
        if kind == "location":
            lat, lon = _degrees(data, "Location_X", 90), _degrees(data, "Location_Y", 180)
        else:
            lat, lon = _degrees(data, "Latitude", 90), _degrees(data, "Longitude", 180)
        content, label = _text(data, "Content", MAX_CONTENT), _text(data, "Label", 200)
        # every field WeChat sent, whole: those read as text and those read as numbers (int() and
        # Decimal() take "31.7\x85" as 31.7), and those the bot does not read at all
        refused = outside_text.first_refused(data)
        return cls(kind=kind, event=event, openid=openid, create_time=create_time, msg_id=_int(data, "MsgId"),
                   content=content, event_key=key, latitude=lat, longitude=lon, label=label, refused_text=refused)

    def dedupe_key(self) -> str:
        """The natural key of the delivery: MsgId, or sender + CreateTime (+ event) for events,
        which carry no id (DOMAIN.md "WeChat facts")."""
        if self.msg_id is not None and self.kind != "event":
            return f"msg:{self.msg_id}"
        return f"evt:{self.openid}:{self.create_time}:{self.event}"
