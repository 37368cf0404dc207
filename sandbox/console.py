"""The bot console: a message typed as a demo user goes to ``/wechat`` the way WeChat sends it.

The sandbox plays WeChat's side of the official-account protocol (it knows the demo's token):
plaintext-mode XML with a fresh MsgId, signed ``sha1(sort(token, timestamp, nonce))`` in the
query, POSTed over HTTP to this very process, so the bot's whole inbound path runs — signature,
replay and size checks, XML hardening, dedupe, the command, the passive reply. A command the bot
answers later (customer-service message) reaches the fake WeChat, and the phone panel shows it
from there.

Each user's exchange is kept in memory for the phone panel (the last ``HISTORY`` lines).
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field

import aiohttp
from defusedxml import ElementTree

from settlement.errors import InvalidInput

ACCOUNT = "gh_sandbox0000"  # the official account's original id (ToUserName)
HISTORY = 200
MAX_TEXT = 600
_msg_ids = itertools.count(int(time.time() * 1000) * 1000)


def message_xml(openid: str, content: str, *, msg_id: int, create_time: int) -> str:
    """A text message as WeChat posts it (plaintext mode)."""
    return (f"<xml><ToUserName>{_cdata(ACCOUNT)}</ToUserName><FromUserName>{_cdata(openid)}</FromUserName>"
            f"<CreateTime>{create_time}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content>{_cdata(content)}</Content><MsgId>{msg_id}</MsgId></xml>")


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def signature(token: str, timestamp: str, nonce: str) -> str:
    """WeChat's URL signature: SHA-1 of the token, timestamp and nonce sorted and joined."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()


def reply_text(body: str) -> str | None:
    """The Content of a passive text reply; None for ``success`` / an empty body (answered later)."""
    if body.strip() in ("", "success"):
        return None
    root = ElementTree.fromstring(body)
    return root.findtext("Content")


@dataclass
class Exchange:
    at: float
    openid: str
    text: str
    reply: str | None
    status: int


@dataclass
class Console:
    """Posts as WeChat to ``origin``/wechat, signed with the official account's ``token``."""

    history: dict[str, deque[Exchange]] = field(default_factory=lambda: defaultdict(lambda: deque(maxlen=HISTORY)))

    async def say(self, session: aiohttp.ClientSession, origin: str, token: str, openid: str,
                  text: str) -> Exchange:
        text = text.strip()
        if not text:
            raise InvalidInput("type a command, e.g. 帮助", code="empty_message")
        if len(text) > MAX_TEXT:
            raise InvalidInput(f"a message is at most {MAX_TEXT} characters here", code="message_too_long")
        now = int(time.time())
        timestamp, nonce = str(now), str(secrets.randbelow(10**10))
        query = {"timestamp": timestamp, "nonce": nonce, "signature": signature(token, timestamp, nonce),
                 "openid": openid}
        body = message_xml(openid, text, msg_id=next(_msg_ids), create_time=now)
        async with session.post(f"{origin}/wechat", params=query, data=body.encode(),
                                headers={"Content-Type": "text/xml"}) as response:
            answer = await response.text()
            status = response.status
        exchange = Exchange(at=time.time(), openid=openid, text=text,
                            reply=reply_text(answer) if status == 200 else answer[:200], status=status)
        self.history[openid].append(exchange)
        return exchange
