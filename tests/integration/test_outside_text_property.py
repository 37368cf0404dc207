"""Property: arbitrary unicode in every text field of every route, import and message never makes a
5xx, is refused exactly when settlement.text refuses it — the refusal naming the field, nothing
stored — on both backends alike.

Text comes from hypothesis, NUL, the other control characters and lone surrogates included. Where
the way in is JSON they are sent as escapes (``"\\ud800"``); where it is UTF-8 (query strings,
multipart, XML, files, MQTT topics) a lone surrogate cannot be sent at all and none is made, and
XML 1.0 carries no C0 control but tab and line ends (the parser refuses the message, tested in
test_bot_protocol.py). Besides, values each field takes get one such character put in them
(:func:`near`): lenient parsers read some of them as whitespace (``int("2\x85")`` is 2), so a
check after parsing would miss them. One server (the whole app on 127.0.0.1:0 in a thread, as in
test_miniapp_schemathesis.py) answers every route over keep-alive connections, so an example
costs one request; imports go through what the CLI calls on a file, MQTT messages through what
the subscriber calls on a message.

Examples per target: 500 on PostgreSQL, the backend that refuses NUL, fewer on the embedded run.
Each example that ran is counted, so that a hypothesis run ending early fails instead of passing
on fewer. The targets are listed once (:data:`TARGETS`); a test holds the list to the API's route
table, so a field added to a request model without a target here fails.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hashlib
import itertools
import json
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from settlement import i18n
from settlement import models as m
from settlement import text as outside_text
from settlement.clock import utc_now
from webapp.settings import Settings
from tests.conftest import ON_POSTGRES, REDIS_URL, RUN_ID
from tests.integration.test_miniapp_schemathesis import ThreadedServer

EXAMPLES = 500 if ON_POSTGRES else 60
COLLECTOR, COLLECTOR_KEY = "property-head-end", "c" * 32
OA_TOKEN = "oa-token"
MQTT_PREFIX = "pvsettle/telemetry"

# --- what each way in can carry ------------------------------------------------------------------

HOSTILE = "\x00\x01\x1f\x7f\x85\x9f\ud800\udfff\t\r\n a中€"
SURROGATES = [chr(c) for c in range(0xD800, 0xE000)]
NOT_XML = [chr(c) for c in [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0xFFFE, 0xFFFF]]
CSV_SPECIAL = list("\r\n\",\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")  # what would end or split one CSV field


def texts(excluded: Iterable[str] = ()) -> st.SearchStrategy[str]:
    """Every character hypothesis can make but ``excluded``, and runs of the ones the rule is about."""
    excluded = set(excluded)
    return st.one_of(
        st.text(st.characters(exclude_categories=("Cs",), exclude_characters=excluded)),
        st.text(st.characters(exclude_categories=(), exclude_characters=excluded)),
        st.text(st.sampled_from([c for c in HOSTILE if c not in excluded])),
    )


EXCLUDED = {
    "json": [],  # escaped JSON: anything, lone surrogates included
    "utf8": SURROGATES,
    "xml": SURROGATES + NOT_XML,
    "csv": SURROGATES + CSV_SPECIAL,
    "topic": SURROGATES + ["/"],  # one level of an MQTT topic
}
# what the rule refuses and lenient parsers skip as whitespace around a value: int("2\x85") is 2,
# Decimal(), fromisoformat() after strip() and pydantic's lax int take such text as well formed
NEAR = "\x00\x01\x08\x0b\x0c\x1c\x1f\x7f\x85\x9f\ud800"


def near(likely: tuple[str, ...], excluded: Iterable[str]) -> st.SearchStrategy[str]:
    """A value the field takes, as it is and with one refused character put somewhere in it."""
    chars = [c for c in NEAR if c not in set(excluded)]
    return st.sampled_from(likely) | st.builds(lambda value, char, at: value[:at % (len(value) + 1)] + char
                                               + value[at % (len(value) + 1):],
                                               st.sampled_from(likely), st.sampled_from(chars), st.integers(0, 99))


def as_json_reads(text: str) -> str:
    # escaped JSON joins a high and a low surrogate into one character
    return json.loads(json.dumps(text))


def as_is(text: str) -> str:
    return text


def as_xml_reads(text: str) -> str:
    # the XML parser strips the whitespace around an element's text (U+0085 is whitespace to Python)
    return text.strip()


def refused(text: str) -> bool:
    return outside_text.problem(text) is not None


def said(field: str) -> str:
    """The API's refusal naming ``field``, in English (the client asks for it)."""
    return i18n.error_text(outside_text.CODE, "en", {"field": i18n.field_label(field)})


@dataclasses.dataclass
class Answer:
    status: int
    invalid_text: bool  # the answer says text was refused (the whole request, its row or message)
    message: str = ""  # what the refusal says


@dataclasses.dataclass(frozen=True)
class Target:
    send: Callable[[str], Answer]
    names: str  # what a refusal must say: the field it names
    wire: str = "json"  # which characters the way in can carry (EXCLUDED)
    seen: Callable[[str], str] = as_json_reads  # the text as the server reads it
    stored: Callable[[], Awaitable[object]] | None = None  # what a refusal must leave as it was
    likely: tuple[str, ...] = ()  # values the field takes, made hostile by one character (near)

    def texts(self) -> st.SearchStrategy[str]:
        made = texts(EXCLUDED[self.wire])
        return made | near(self.likely, EXCLUDED[self.wire]) if self.likely else made


# --- the server and its clients ------------------------------------------------------------------


class Records(logging.Handler):
    """The warnings of the bot and the MQTT subscriber, which answer no HTTP refusal of their own."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Client:
    """Sends each kind of request to the threaded server and reads whether text was refused."""

    def __init__(self, server: ThreadedServer, logged: Records):
        self.server = server
        self.logged = logged
        self.http = requests.Session()
        # in English, so that the message names the field by the word the tests look for
        self.auth = {"Authorization": f"Bearer {server.token}", "Accept-Language": "en"}
        self.times = itertools.count(int(time.time()) - 10**6)  # CreateTime, MsgId: every message new
        self._subscriber = None

    def run(self, coro):
        return self.server.run(coro)

    def path(self, path: str) -> str:
        world = self.server.world
        return path.format(**{name: world.id_of(name) for name in ("plant_id", "form_id", "bill_id")
                              if "{" + name + "}" in path})

    @staticmethod
    def _answer(resp: requests.Response) -> Answer:
        try:
            error = resp.json().get("error") or {}
        except ValueError:
            error = {}
        return Answer(resp.status_code, resp.status_code == 400 and error.get("code") == outside_text.CODE,
                      error.get("message", ""))

    def api(self, method: str, path: str, document=None, params=None) -> Answer:
        body = None if document is None else json.dumps(document).encode()  # ASCII: surrogates escaped
        resp = self.http.request(method, f"{self.server.base}/api/v1{self.path(path)}", data=body, params=params,
                                 headers={**self.auth, "Content-Type": "application/json"}, timeout=30)
        return self._answer(resp)

    def multipart(self, path: str, parts: list[tuple[str, bytes]]) -> Answer:
        """``parts``: (the Content-Disposition's parameters after form-data, the content), written by
        hand: neither requests nor aiohttp's client writes RFC 5987's ``filename*``."""
        boundary = secrets.token_hex(12)
        body = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; {disposition}\r\n\r\n".encode() + data
                        + b"\r\n" for disposition, data in parts) + f"--{boundary}--\r\n".encode()
        resp = self.http.post(f"{self.server.base}/api/v1{self.path(path)}", data=body, timeout=30,
                              headers={**self.auth, "Content-Type": f"multipart/form-data; boundary={boundary}"})
        return self._answer(resp)

    def ingest(self, path: str, document) -> tuple[int, dict]:
        resp = self.http.post(f"{self.server.base}/ingest/v1{path}", data=json.dumps(document).encode(),
                              headers={"Authorization": f"Bearer {COLLECTOR_KEY}",
                                       "Content-Type": "application/json"}, timeout=30)
        return resp.status_code, resp.json()

    def pay_notify(self, body: bytes, headers: dict | None = None) -> Answer:
        resp = self.http.post(f"{self.server.base}/pay/notify", data=body, timeout=30,
                              headers=headers or {"Content-Type": "application/json"})
        message = resp.json()["message"] if resp.content else ""
        return Answer(resp.status_code, resp.status_code == 400 and "text may not hold" in message, message)

    def bot(self, xml: str) -> Answer:
        timestamp, nonce = str(int(time.time())), secrets.token_hex(8)
        signature = hashlib.sha1("".join(sorted([OA_TOKEN, timestamp, nonce])).encode()).hexdigest()
        self.logged.records.clear()
        resp = self.http.post(f"{self.server.base}/wechat", data=xml.encode(),
                              params={"timestamp": timestamp, "nonce": nonce, "signature": signature}, timeout=30)
        logged = [r for r in self.logged.records if r.name == "pvsettle.bot"]
        # the bot answers its own failures politely (200): the log says whether it failed, its 5xx
        failed = any(r.levelno >= logging.ERROR for r in logged)
        return Answer(500 if failed else resp.status_code, "控制字符" in resp.text,
                      " ".join(getattr(r, "reason", "") for r in logged))

    def mqtt(self, topic: str, payload: bytes) -> Answer:
        """One message through the subscriber's own handling, its batch flushed at once."""
        from server.telemetry_mqtt import BrokerAddress, TelemetrySubscriber

        if self._subscriber is None:  # never connects: messages are handed to it as the broker would
            self._subscriber = TelemetrySubscriber(BrokerAddress.from_url(f"mqtt://127.0.0.1:9/{MQTT_PREFIX}"))

        async def deliver() -> None:
            await self._subscriber.handle(topic, payload)
            await self._subscriber.flush()

        self.logged.records.clear()
        self.run(deliver())
        said_ = [getattr(r, "reason", None) or getattr(r, "first", "") for r in self.logged.records
                 if r.name == "pvsettle.telemetry.mqtt"]
        return Answer(200, any("text may not hold" in s for s in said_), " ".join(said_))


@pytest.fixture(scope="module")
def client(database_factory, tmp_path_factory):
    url = asyncio.run(database_factory.migrated())
    prefix = f"pvsettle-test:{RUN_ID}:{uuid.uuid4().hex[:8]}:"
    settings = Settings(database_url=url, redis_url=REDIS_URL, redis_prefix=prefix,
                        var_dir=str(tmp_path_factory.mktemp("property-var")), scheduler_interval=0,
                        dispatcher_interval="0", secret_key="s" * 40, mp_appid="wxtestmp0000000001",
                        mp_secret="mp-secret", oa_appid="wxtestoa0000000001", oa_secret="oa-secret",
                        oa_token=OA_TOKEN, oa_aes_key="a" * 43, wechat_api_base="http://127.0.0.1:9",
                        pay_api_base="http://127.0.0.1:9", api_rate_limit=1_000_000,
                        # hundreds of refused notifications from one address: that limit is tested in
                        # test_pay_notify_flood, not here
                        pay_refusal_rate=1_000_000)
    server = ThreadedServer(settings).start()
    # hundreds of logins a minute from one address: the login rate limit is not under test here
    limits = pytest.MonkeyPatch()
    limits.setattr("miniprogram_api.app.LOGIN_LIMIT_PER_ADDRESS", 1_000_000)
    logged = Records()
    loggers = [logging.getLogger(name) for name in ("pvsettle.bot", "pvsettle.telemetry.mqtt")]
    for logger in loggers:
        logger.addHandler(logged)

    async def collector() -> None:
        from settlement.readings.ingest import add_collector

        await add_collector(COLLECTOR, COLLECTOR_KEY)

    server.run(collector())
    yield Client(server, logged)
    for logger in loggers:
        logger.removeHandler(logged)
    server.stop()
    limits.undo()


# --- what a refusal must leave as it was -----------------------------------------------------------


def counts(*models) -> Callable[[], Awaitable[tuple[int, ...]]]:
    async def count() -> tuple[int, ...]:
        return tuple([await model.all().count() for model in (*models, m.AuditEvent)])
    return count


async def _form_as_it_is() -> tuple:
    rows = await m.ConfirmationForm.all().order_by("id").values_list("id", "state", "dispute_reason")
    return rows, await m.Attachment.all().count(), await m.AuditEvent.all().count()


async def _subscriptions() -> list:
    return sorted(await m.SubscribeAcceptance.all().values_list("template_id", "answer", "accepts"))


async def _notifications() -> tuple[int, ...]:
    kept_whole = await m.PayNotification.filter(resource__isnull=False).count()
    return await m.Payment.all().count(), kept_whole, await m.AuditEvent.all().count()


# --- the targets ---------------------------------------------------------------------------------


def query(path: str, field: str, likely: tuple[str, ...] = (), **base: str) -> Callable[[Client, Path], Target]:
    return lambda c, _: Target(lambda t: c.api("GET", path, params={**base, field: t}), said(field), "utf8", as_is,
                               likely=likely)


def body(method: str, path: str, field: str, stored, likely: tuple[str, ...] = (),
         **base) -> Callable[[Client, Path], Target]:
    return lambda c, _: Target(lambda t: c.api(method, path, {**base, field: t}), said(field), stored=stored,
                               likely=likely)


def multipart_field(path: str, field: str, stored) -> Callable[[Client, Path], Target]:
    def send(c: Client, text: str) -> Answer:
        # the wire is UTF-8: a lone surrogate could only arrive as bytes that are not UTF-8 (refused as such)
        return c.multipart(path, [(f'name="{field}"', text.encode())])
    return lambda c, _: Target(lambda t: send(c, t), said(field), "utf8", as_is, stored, ("逆变器报警",))


def photo_file_name(path: str, field: str, stored) -> Callable[[Client, Path], Target]:
    from tests.integration.miniapp_support import PNG

    def send(c: Client, text: str) -> Answer:
        # a raw control character in a part's header is refused by aiohttp's parser as malformed;
        # RFC 5987's percent-encoded filename* carries any UTF-8 and is decoded for the handler
        name = quote(text.encode(), safe="")
        return c.multipart(path, [(f'name="{field}"', "屋顶逆变器报警".encode()),
                                  (f"name=\"photos\"; filename*=UTF-8''{name}", PNG)])
    return lambda c, _: Target(lambda t: send(c, t), said("the file name of part 'photos'"), "utf8", as_is, stored,
                               ("roof.png",))


def _row_refusal(status: int, answer: dict) -> Answer:
    error = answer["results"][0].get("error", {}) if status == 200 else {}
    return Answer(status, error.get("code") == outside_text.CODE, error.get("message", ""))


READING = {"meter": "M-PROP", "register": "00010000", "read_at": "2026-11-01T00:00:00+08:00", "value": "1"}
SAMPLE = {"device": "INV-PROP", "ts": "2026-11-01T00:00:00+08:00", "power_w": 1, "energy_wh": 1, "status": "ok"}


def reading(field: str) -> Callable[[Client, Path], Target]:
    def send(c: Client, text: str) -> Answer:
        return _row_refusal(*c.ingest("/readings", {"readings": [{**READING, field: text}]}))
    return lambda c, _: Target(lambda t: send(c, t), f"field '{field}'", stored=counts(m.Reading),
                               likely=(READING[field],))


def sample(field: str) -> Callable[[Client, Path], Target]:
    def send(c: Client, text: str) -> Answer:
        status, answer = c.ingest("/telemetry", {"samples": [{**SAMPLE, field: text}]})
        errors = answer.get("errors", [])
        return Answer(status, status == 200 and [e["code"] for e in errors] == [outside_text.CODE],
                      errors[0]["message"] if errors else "")
    return lambda c, _: Target(lambda t: send(c, t), f"field '{field}'", stored=counts(m.TelemetrySample),
                               likely=(str(SAMPLE[field]),))


USAGE = {"meter": "W-PROP", "start": "2026-11-01T00:00:00+08:00", "quantity": "1"}


def usage(field: str) -> Callable[[Client, Path], Target]:
    def send(c: Client, text: str) -> Answer:
        status, answer = c.ingest("/usage", {"usage": [{**USAGE, field: text}]})
        error = answer.get("error", {})
        return Answer(status, status == 400 and error.get("code") == outside_text.CODE, error.get("message", ""))
    return lambda c, _: Target(lambda t: send(c, t), f"row 0: {field}", stored=counts(m.PrepaidUsage),
                               likely=(USAGE[field],))


def readings_csv(field: str) -> Callable[[Client, Path], Target]:
    from server.cli.readings import HEADER, MalformedFile, _records
    from settlement.models import ReadingSource
    from settlement.readings.ingest import ingest_readings

    def send(c: Client, tmp: Path, text: str) -> Answer:
        # what `pvsettle readings import` does with a file: a CSV record per line, then the service
        row = {**READING, "read_at": "2026-11-01 00:00", field: text}
        path = tmp / "readings.csv"
        path.write_text(",".join(HEADER) + "\n" + ",".join(row[k] for k in HEADER) + "\n", encoding="utf-8")
        try:
            records = list(_records(path))
        except MalformedFile as exc:
            return Answer(400, False, str(exc))
        result = c.run(ingest_readings([row for _, row in records], source=ReadingSource.IMPORTED,
                                       received_from="import:property.csv",
                                       row_names=[f"line {line}" for line, _ in records]))
        error = result.results[0].error
        return Answer(200, error is not None and error.code == outside_text.CODE, error.message if error else "")
    likely = ("2026-11-01 00:00",) if field == "read_at" else (READING[field],)
    return lambda c, tmp: Target(lambda t: send(c, tmp, t), f"field '{field}'", "csv", as_is, counts(m.Reading),
                                 likely)


def payments_file(kind: str, field: str) -> Callable[[Client, Path], Target]:
    from server.cli.payments import MalformedFile, read_rows
    from settlement.notify.outbox import NotifyApps
    from settlement.pay.offline_import import FIELDS, import_offline_payments

    def row(c: Client) -> dict:
        # the bill is a real one, so a row that is not refused is recorded
        return {"bill": c.server.world.bill.number, "amount_fen": "1", "channel": "bank_transfer",
                "reference": "R-PROP", "paid_at": "2026-11-01"}

    def send(c: Client, tmp: Path, text: str) -> Answer:
        # what `pvsettle payments import` does with a file: read it whole, then the service row by row
        row_ = {**row(c), field: text}
        path = tmp / f"payments.{kind}"
        if kind == "json":  # ASCII: surrogates escaped
            path.write_text(json.dumps([row_]), encoding="utf-8")
        else:
            path.write_text(",".join(FIELDS) + "\n" + ",".join(row_[k] for k in FIELDS) + "\n", encoding="utf-8")
        try:
            rows = read_rows(path)
        except MalformedFile as exc:
            return Answer(400, False, str(exc))
        result = c.run(import_offline_payments(rows, source=f"import:{path.name}",
                                               apps=NotifyApps.from_settings(c.server.settings)))
        error = result.rejected[0]["error"] if result.rejected else {}
        return Answer(200, error.get("code") == outside_text.CODE, error.get("message", ""))
    wire, seen = ("json", as_json_reads) if kind == "json" else ("csv", as_is)
    return lambda c, tmp: Target(lambda t: send(c, tmp, t), f"field '{field}'", wire, seen, counts(m.Payment),
                                 (row(c)[field],))


def _set(document: dict, path: str, value) -> dict:
    *parents, last = path.split(".")
    inner = document
    for name in parents:
        inner = inner[name]
    inner[last] = value
    return document


def _get(document: dict, path: str):
    for name in path.split("."):
        document = document[name]
    return document


def pay_resource(event: str, field: str) -> Callable[[Client, Path], Target]:
    from settlement.fakes.pay_server import wechat_time
    from tests.integration.pay_support import MCHID

    def resource(c: Client) -> dict:
        now = wechat_time(utc_now())
        if event == "REFUND.SUCCESS":
            return {"mchid": MCHID, "out_trade_no": "P-PROPERTY-0001", "transaction_id": "4200000000000000000000000001",
                    "out_refund_no": "R-PROPERTY-0001", "refund_id": "50000000000000000000000000001",
                    "refund_status": "SUCCESS", "success_time": now, "user_received_account": "支付用户零钱",
                    "amount": {"total": 100, "refund": 100, "payer_total": 100, "payer_refund": 100}}
        # an order this server never made: one that is not refused is kept for staff as unmatched
        return {"appid": c.server.settings.mp_appid, "mchid": MCHID, "out_trade_no": "P-PROPERTY-0001",
                "transaction_id": "4200000000000000000000000001", "trade_type": "JSAPI", "trade_state": "SUCCESS",
                "trade_state_desc": "支付成功", "bank_type": "OTHERS", "attach": "", "success_time": now,
                "payer": {"openid": "o-property-payer"},
                "amount": {"total": 100, "payer_total": 100, "currency": "CNY", "payer_currency": "CNY"}}

    def send(c: Client, text: str) -> Answer:
        # signed and encrypted by the fake WeChat Pay as the real one does; the text is inside the
        # encrypted resource, where no check of the raw body can see it
        fake = c.server.fake_pay
        headers, raw = fake.build_notification(event, _set(resource(c), field, text), ensure_ascii=True,
                                               original_type="refund" if event.startswith("REFUND") else "transaction")
        return c.pay_notify(raw, headers)
    return lambda c, _: Target(lambda t: send(c, t), f"resource.{field}", stored=_notifications,
                               likely=(_get(resource(c), field) or "x",))


def pay_envelope(c: Client, _: Path) -> Target:
    def send(text: str) -> Answer:
        body = json.dumps({"id": "EV-1", "event_type": "TRANSACTION.SUCCESS", "summary": text}).encode()
        return c.pay_notify(body)
    return Target(send, "summary holds", stored=_notifications)


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


# the text fields the bot reads, and one it reads as a number
BOT_FIELDS = ["Content", "MsgType", "FromUserName", "ToUserName", "Event", "EventKey", "Label", "Location_X"]


def bot(field: str) -> Callable[[Client, Path], Target]:
    from tests.integration.bot_support import ACCOUNT

    def message(when: int) -> dict:
        fields = {"ToUserName": ACCOUNT, "FromUserName": "o-stranger-property", "CreateTime": when,
                  "MsgType": "text", "Content": "帮助", "MsgId": when}
        if field in ("Event", "EventKey"):
            fields.update(MsgType="event", Event="CLICK", EventKey="MENU_PROP")
            del fields["Content"], fields["MsgId"]
        elif field in ("Label", "Location_X"):
            fields.update(MsgType="location", Location_X="31.7", Location_Y="119.9", Scale="15", Label="屋顶")
            del fields["Content"]
        return fields

    def send(c: Client, text: str) -> Answer:
        when = next(c.times)
        fields = {**message(when), field: text}
        xml = "".join(f"<{k}>{v if isinstance(v, int) else _cdata(v)}</{k}>" for k, v in fields.items())
        return c.bot(f"<xml>{xml}</xml>")
    stored = counts(m.WechatIdentity, m.FaultReport)
    return lambda c, _: Target(lambda t: send(c, t), f"{field} holds", "xml", as_xml_reads, stored,
                               (message(0)[field],))


def mqtt(where: str) -> Callable[[Client, Path], Target]:
    def send(c: Client, text: str) -> Answer:
        collector, device = COLLECTOR, "INV-PROP"
        sample_ = {k: v for k, v in SAMPLE.items() if k != "device"}
        if where == "topic collector":
            collector = text
        elif where == "topic device":
            device = text
        else:
            sample_[where.removeprefix("payload ")] = text
        payload = json.dumps({"key": COLLECTOR_KEY, "samples": [sample_]}).encode()  # ASCII: surrogates escaped
        return c.mqtt(f"{MQTT_PREFIX}/{collector}/{device}", payload)
    names = "the topic" if where.startswith("topic") else f"field '{where.removeprefix('payload ')}'"
    wire, seen = ("topic", as_is) if where.startswith("topic") else ("json", as_json_reads)
    likely = COLLECTOR if where == "topic collector" else str(SAMPLE[where.split()[-1]])
    return lambda c, _: Target(lambda t: send(c, t), names, wire, seen, counts(m.TelemetrySample), (likely,))


SESSIONS = counts(m.MiniProgramSession, m.WechatIdentity)
BINDINGS = counts(m.OwnerInvitation, m.PlantAccess, m.WechatIdentity)
FAULTS = counts(m.FaultReport, m.Attachment)
TOPUPS = counts(m.TopUpOrder)
# one route of each query model: /payments stands for the routes that take PageQuery itself
LISTS = ["/bills", "/payments", "/forms", "/faults"]

TARGETS: dict[str, Callable[[Client, Path], Target]] = {
    "POST /session code": body("POST", "/session", "code", SESSIONS),
    "POST /binding invitation_code": body("POST", "/binding", "invitation_code", BINDINGS),
    "POST /binding phone_code": body("POST", "/binding", "phone_code", BINDINGS),
    "POST /shares/redeem code": body("POST", "/shares/redeem", "code", BINDINGS),
    "POST /plants/{plant_id}/shares right": body("POST", "/plants/{plant_id}/shares", "right",
                                                 counts(m.PlantShare), ("view",)),
    # a number sent as text, which the lax int takes ("24"): "2\x85" must not be 2
    "POST /plants/{plant_id}/shares ttl_hours": body("POST", "/plants/{plant_id}/shares", "ttl_hours",
                                                     counts(m.PlantShare), ("24",), right="view"),
    "PUT /subscriptions template id": lambda c, _: Target(
        lambda t: c.api("PUT", "/subscriptions", {t: "accept"}), "(a key) holds", stored=_subscriptions),
    "PUT /subscriptions answer": body("PUT", "/subscriptions", "tmpl-SA", _subscriptions, ("accept",)),
    "PUT /subscriptions errMsg": body("PUT", "/subscriptions", "errMsg", _subscriptions,
                                      ("requestSubscribeMessage:ok",), **{"tmpl-SA": "reject"}),
    "POST /forms/{form_id}/dispute reason": body("POST", "/forms/{form_id}/dispute", "reason", _form_as_it_is,
                                                 ("读数不对",)),
    "POST /forms/{form_id}/dispute reason, multipart": multipart_field("/forms/{form_id}/dispute", "reason",
                                                                       _form_as_it_is),
    "POST /forms/{form_id}/dispute photo file name": photo_file_name("/forms/{form_id}/dispute", "reason",
                                                                     _form_as_it_is),
    "POST /plants/{plant_id}/faults text": body("POST", "/plants/{plant_id}/faults", "text", FAULTS, ("逆变器报警",)),
    "POST /plants/{plant_id}/faults text, multipart": multipart_field("/plants/{plant_id}/faults", "text", FAULTS),
    "POST /plants/{plant_id}/faults photo file name": photo_file_name("/plants/{plant_id}/faults", "text", FAULTS),
    "POST /prepaid/topup number": body("POST", "/prepaid/topup", "number", TOPUPS, ("PA-SA",), amount_fen=1),
    "POST /prepaid/topup amount_fen": body("POST", "/prepaid/topup", "amount_fen", TOPUPS, number="PA-SA"),
    "POST /plants/{plant_id}/prepaid/topup amount_fen": body("POST", "/plants/{plant_id}/prepaid/topup",
                                                             "amount_fen", TOPUPS),
    "POST /bills/{bill_id}/pay amount_fen": body("POST", "/bills/{bill_id}/pay", "amount_fen", counts(m.PayOrder)),
    **{f"GET {path} cursor": query(path, "cursor", ("MTIzLmFiYw",)) for path in LISTS},
    **{f"GET {path} limit": query(path, "limit", ("20",)) for path in LISTS},
    **{f"GET {path} state": query(path, "state", (state,))
       for path, state in (("/bills", "open"), ("/forms", "sent"), ("/faults", "open"))},
    "GET /bills a parameter's name": lambda c, _: Target(lambda t: c.api("GET", "/bills", params={t: "1"}),
                                                         "(a key)", "utf8", as_is),
    "GET /plants/{plant_id}/history span": query("/plants/{plant_id}/history", "span", ("month",)),
    "GET /plants/{plant_id}/history at": query("/plants/{plant_id}/history", "at", ("2026-10",), span="month"),
    "GET /plants/{plant_id}/prepaid/statement days": query("/plants/{plant_id}/prepaid/statement", "days",
                                                           ("31",)),
    "GET /i18n lang": query("/i18n", "lang", ("en",)),
    **{f"POST /ingest/v1/readings {f}": reading(f) for f in ("meter", "register", "read_at", "value")},
    **{f"POST /ingest/v1/telemetry {f}": sample(f) for f in ("device", "ts", "status")},
    **{f"POST /ingest/v1/usage {f}": usage(f) for f in ("meter", "start", "quantity")},
    **{f"MQTT telemetry {where}": mqtt(where) for where in ("topic collector", "topic device", "payload device",
                                                            "payload ts", "payload status")},
    "POST /pay/notify body": pay_envelope,
    **{f"POST /pay/notify TRANSACTION.SUCCESS resource {f}": pay_resource("TRANSACTION.SUCCESS", f)
       for f in ("out_trade_no", "transaction_id", "attach", "trade_state_desc", "payer.openid", "success_time")},
    "POST /pay/notify REFUND.SUCCESS resource out_refund_no": pay_resource("REFUND.SUCCESS", "out_refund_no"),
    **{f"POST /wechat {field}": bot(field) for field in BOT_FIELDS},
    **{f"readings CSV import {f}": readings_csv(f) for f in ("meter", "register", "read_at", "value")},
    **{f"payments CSV import {f}": payments_file("csv", f)
       for f in ("bill", "amount_fen", "channel", "reference", "paid_at")},
    # the same rows as JSON, which can carry lone surrogates too
    **{f"payments JSON import {f}": payments_file("json", f) for f in ("bill", "reference")},
}
RAN: collections.Counter[str] = collections.Counter()


@pytest.mark.parametrize("name", list(TARGETS))
def test_text_from_outside_is_refused_exactly_when_the_rule_says_and_never_a_5xx(client, tmp_path, name):
    target = TARGETS[name](client, tmp_path)
    known: list = []  # what is stored, while nothing can have changed it

    @given(text=target.texts())
    @hypothesis_settings(max_examples=EXAMPLES, deadline=None, database=None,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    def check(text: str) -> None:
        refusing = refused(target.seen(text))
        if refusing and target.stored is not None and not known:
            known.append(client.run(target.stored()))
        answer = target.send(text)
        RAN[name] += 1
        assert answer.status < 500, (name, text, answer)
        assert answer.invalid_text == refusing, (name, text, answer)
        if refusing:
            assert target.names in answer.message, (name, text, answer)
            if target.stored is not None:
                assert client.run(target.stored()) == known[0], (name, text, "stored")
        else:
            known.clear()

    check()
    assert RAN[name] >= EXAMPLES, f"{name}: hypothesis ran {RAN[name]} examples of {EXAMPLES}"


def test_every_request_field_of_the_api_is_a_target():
    """Every field of every query, JSON body and multipart model of /api/v1 is a target on a route
    that takes that model, and each multipart route's text sent as a part and a photo's file name."""
    from miniprogram_api.app import api
    from miniprogram_api.schemas import SubscribeIn

    def fields(model) -> list[str]:
        if model is SubscribeIn:  # a mapping of template ids to answers, errMsg beside them
            return ["template id", "answer", "errMsg"]
        return [f.alias or name for name, f in model.model_fields.items()]

    wanted, covered = set(), set()
    for route in api.routes:
        for model in filter(None, (route.query, route.body, route.multipart)):
            wanted |= {(model, field) for field in fields(model)}
            covered |= {(model, field) for field in fields(model) if f"{route.method} {route.path} {field}" in TARGETS}
        if route.multipart is not None:
            wanted |= {(route.path, f"{name}, multipart") for name in fields(route.multipart)}
            wanted.add((route.path, "photo file name"))
            covered |= {(route.path, field) for field in [*(f"{n}, multipart" for n in fields(route.multipart)),
                                                         "photo file name"]
                        if f"{route.method} {route.path} {field}" in TARGETS}
    missing = sorted(f"{getattr(where, '__name__', where)} {field}" for where, field in wanted - covered)
    assert not missing, f"text fields without a target: {missing}"
