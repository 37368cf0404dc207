"""Property: arbitrary unicode in every text field of every route and import never makes a 5xx, and
is refused as ``invalid_text`` exactly when settlement.text refuses it — on both backends alike.

Text comes from hypothesis, NUL, the other control characters and lone surrogates included (sent
as escaped JSON, ``"\\ud800"``, where the wire allows nothing else). One server (the whole app on
127.0.0.1:0 in a thread, as in test_miniapp_schemathesis.py) answers every route over keep-alive
connections, so an example costs one request. Examples per route: 500 on PostgreSQL, the backend
that refuses NUL, fewer on the embedded run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import json
import secrets
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, assume, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from settlement import text as outside_text
from webapp.settings import Settings
from tests.conftest import ON_POSTGRES, REDIS_URL, RUN_ID
from tests.integration.test_miniapp_schemathesis import ThreadedServer

EXAMPLES = 500 if ON_POSTGRES else 60
COLLECTOR_KEY = "c" * 32
OA_TOKEN = "oa-token"

# every character hypothesis can make, surrogates included, and runs of the ones the rule is about
TEXT = st.one_of(
    st.text(),
    st.text(st.characters(exclude_categories=())),
    st.text(st.sampled_from("\x00\x01\x1f\x7f\x85\x9f\ud800\udfff\t\r\n a中€")),
)


def refused(text: str) -> bool:
    return outside_text.problem(text) is not None


@dataclasses.dataclass
class Answer:
    status: int
    invalid_text: bool  # the answer says text was refused (whole request or its row)


class Client:
    """Sends each kind of request to the threaded server and reads whether text was refused."""

    def __init__(self, server: ThreadedServer):
        self.server = server
        self.http = requests.Session()
        self.auth = {"Authorization": f"Bearer {server.token}"}

    def api(self, method: str, path: str, document=None, params=None) -> Answer:
        body = None if document is None else json.dumps(document).encode()  # ASCII: surrogates escaped
        resp = self.http.request(method, f"{self.server.base}/api/v1{path}", data=body, params=params,
                                 headers={**self.auth, "Content-Type": "application/json"}, timeout=30)
        return Answer(resp.status_code, resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_text")

    def multipart(self, path: str, field: str, value: str, filename: str | None = None) -> Answer:
        # the wire is UTF-8; a lone surrogate can only arrive as bytes that are not UTF-8 (refused as such)
        files = {field: (None, value.encode("utf-8", "surrogatepass"), "text/plain; charset=utf-8")}
        resp = self.http.post(f"{self.server.base}/api/v1{path}", files=files, headers=self.auth, timeout=30)
        return Answer(resp.status_code, resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_text")

    def ingest(self, path: str, document) -> tuple[int, dict]:
        resp = self.http.post(f"{self.server.base}/ingest/v1{path}", data=json.dumps(document).encode(),
                              headers={"Authorization": f"Bearer {COLLECTOR_KEY}",
                                       "Content-Type": "application/json"}, timeout=30)
        return resp.status_code, resp.json()

    def pay_notify(self, text: str) -> Answer:
        body = json.dumps({"id": "EV-1", "event_type": "TRANSACTION.SUCCESS", "summary": text}).encode()
        resp = self.http.post(f"{self.server.base}/pay/notify", data=body,
                              headers={"Content-Type": "application/json"}, timeout=30)
        return Answer(resp.status_code, resp.status_code == 400 and "text may not hold" in resp.json()["message"])

    def bot(self, content: str) -> Answer:
        from tests.integration.bot_support import text_xml

        timestamp, nonce = str(int(time.time())), secrets.token_hex(8)
        signature = hashlib.sha1("".join(sorted([OA_TOKEN, timestamp, nonce])).encode()).hexdigest()
        resp = self.http.post(f"{self.server.base}/wechat", data=text_xml("o-stranger-property", content).encode(),
                              params={"timestamp": timestamp, "nonce": nonce, "signature": signature}, timeout=30)
        return Answer(resp.status_code, "控制字符" in resp.text)


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

    async def collector() -> None:
        from settlement.readings.ingest import add_collector

        await add_collector("property-head-end", COLLECTOR_KEY)

    server.run(collector())
    yield Client(server)
    if REDIS_URL:
        from settlement.infra.redis_client import Namespace, open_redis

        async def clean() -> None:
            redis = open_redis(REDIS_URL)
            await Namespace(prefix).delete_all(redis)
            await redis.aclose()

        server.run(clean())
    server.stop()
    limits.undo()


def _row_refused(answer: dict) -> bool:
    return answer["results"][0].get("error", {}).get("code") == "invalid_text"


def _reading(client: Client, field: str) -> Callable[[str], Answer]:
    def send(text: str) -> Answer:
        row = {"meter": "M-PROP", "register": "00010000", "read_at": "2026-11-01T00:00:00+08:00", "value": "1",
               field: text}
        status, answer = client.ingest("/readings", {"readings": [row]})
        return Answer(status, status == 200 and _row_refused(answer))
    return send


def _sample(client: Client, field: str) -> Callable[[str], Answer]:
    def send(text: str) -> Answer:
        sample = {"device": "INV-PROP", "ts": "2026-11-01T00:00:00+08:00", "power_w": 1, "energy_wh": 1,
                  field: text}
        status, answer = client.ingest("/telemetry", {"samples": [sample]})
        codes = [e["code"] for e in answer.get("errors", [])]
        return Answer(status, status == 200 and codes == ["invalid_text"])
    return send


def _usage(client: Client, field: str) -> Callable[[str], Answer]:
    def send(text: str) -> Answer:
        row = {"meter": "W-PROP", "start": "2026-11-01T00:00:00+08:00", "quantity": "1", field: text}
        status, answer = client.ingest("/usage", {"usage": [row]})
        return Answer(status, status == 400 and answer["error"]["code"] == "invalid_text")
    return send


def _readings_csv(client: Client, tmp: Path) -> Callable[[str], Answer]:
    from server.cli.readings import MalformedFile, _records
    from settlement.models import ReadingSource
    from settlement.readings.ingest import ingest_readings

    def send(text: str) -> Answer:
        # what `pvsettle readings import` does with a file: a CSV record per line, then the service
        assume(not any(c in text for c in "\r\n\",\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"))  # one CSV field
        path = tmp / "readings.csv"
        path.write_text(f"meter,register,read_at,value\n{text},00010000,2026-11-01 00:00,1\n", encoding="utf-8")
        try:
            records = list(_records(path))
        except MalformedFile:
            return Answer(400, False)
        result = client.server.run(ingest_readings([row for _, row in records], source=ReadingSource.IMPORTED,
                                                   received_from="import:property.csv",
                                                   row_names=[f"line {line}" for line, _ in records]))
        error = result.results[0].error
        return Answer(200, error is not None and error.code == "invalid_text")
    return send


def _payments_import(client: Client) -> Callable[[str], Answer]:
    from settlement.notify.outbox import NotifyApps
    from settlement.pay.offline_import import import_offline_payments

    apps = NotifyApps.from_settings(client.server.settings)

    def send(text: str) -> Answer:
        row = {"bill": "B-PROP", "amount_fen": "100", "channel": "bank_transfer", "reference": text,
               "paid_at": "2026-11-01"}
        result = client.server.run(import_offline_payments([("line 2", row)], source="import:property.csv",
                                                           apps=apps))
        return Answer(200, bool(result.rejected) and result.rejected[0]["error"]["code"] == "invalid_text")
    return send


def _has_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def _xml_legal(text: str) -> bool:
    return all(c in "\t\n\r" or 0x20 <= ord(c) <= 0xD7FF or 0xE000 <= ord(c) <= 0xFFFD or ord(c) >= 0x10000
               for c in text)


def targets(client: Client, tmp: Path) -> dict[str, Callable[[str], Answer]]:
    world = client.server.world
    plant, form = world.plant.id, world.form.id
    return {
        "POST /session code": lambda t: client.api("POST", "/session", {"code": t}),
        "POST /binding invitation_code": lambda t: client.api("POST", "/binding", {"invitation_code": t}),
        "POST /binding phone_code": lambda t: client.api("POST", "/binding", {"phone_code": t}),
        "POST /shares/redeem code": lambda t: client.api("POST", "/shares/redeem", {"code": t}),
        "PUT /subscriptions template id": lambda t: client.api("PUT", "/subscriptions", {t: "accept"}),
        "PUT /subscriptions errMsg": lambda t: client.api("PUT", "/subscriptions", {"errMsg": t, "tmpl-SA": "reject"}),
        "POST /forms/{id}/dispute reason": lambda t: client.api("POST", f"/forms/{form}/dispute", {"reason": t}),
        "POST /forms/{id}/dispute reason, multipart": lambda t: client.multipart(f"/forms/{form}/dispute",
                                                                                  "reason", t),
        "POST /plants/{id}/faults text": lambda t: client.api("POST", f"/plants/{plant}/faults", {"text": t}),
        "POST /plants/{id}/faults text, multipart": lambda t: client.multipart(f"/plants/{plant}/faults", "text", t),
        "POST /prepaid/topup number": lambda t: client.api("POST", "/prepaid/topup", {"number": t, "amount_fen": 1}),
        "GET /bills cursor": lambda t: client.api("GET", "/bills", params={"cursor": t}),
        "GET /plants/{id}/history at": lambda t: client.api("GET", f"/plants/{plant}/history",
                                                             params={"span": "month", "at": t}),
        **{f"POST /ingest/v1/readings {f}": _reading(client, f) for f in ("meter", "register", "read_at", "value")},
        **{f"POST /ingest/v1/telemetry {f}": _sample(client, f) for f in ("device", "ts", "status")},
        **{f"POST /ingest/v1/usage {f}": _usage(client, f) for f in ("meter", "start", "quantity")},
        "POST /pay/notify body": client.pay_notify,
        "POST /wechat Content": client.bot,
        "readings CSV import meter": _readings_csv(client, tmp),
        "payments import reference": _payments_import(client),
    }


# the keys of targets(), known before the server runs so that each is a test of its own
NAMES = [
    "POST /session code", "POST /binding invitation_code", "POST /binding phone_code", "POST /shares/redeem code",
    "PUT /subscriptions template id", "PUT /subscriptions errMsg", "POST /forms/{id}/dispute reason",
    "POST /forms/{id}/dispute reason, multipart", "POST /plants/{id}/faults text",
    "POST /plants/{id}/faults text, multipart", "POST /prepaid/topup number", "GET /bills cursor",
    "GET /plants/{id}/history at",
    *[f"POST /ingest/v1/readings {f}" for f in ("meter", "register", "read_at", "value")],
    *[f"POST /ingest/v1/telemetry {f}" for f in ("device", "ts", "status")],
    *[f"POST /ingest/v1/usage {f}" for f in ("meter", "start", "quantity")],
    "POST /pay/notify body", "POST /wechat Content", "readings CSV import meter", "payments import reference",
]
# UTF-8 on the wire (query strings, multipart, XML, files): a lone surrogate cannot be sent at all
WIRE_IS_UTF8 = ("GET ", "POST /wechat")


@pytest.mark.parametrize("name", NAMES)
def test_text_from_outside_is_refused_exactly_when_the_rule_says_and_never_a_5xx(client, tmp_path, name):
    send = targets(client, tmp_path)[name]

    @given(text=TEXT)
    @hypothesis_settings(max_examples=EXAMPLES, deadline=None, database=None,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                                HealthCheck.function_scoped_fixture])
    def check(text: str) -> None:
        if name.startswith(WIRE_IS_UTF8) or "multipart" in name or "CSV" in name:
            assume(not _has_surrogate(text))
        if name == "POST /wechat Content":
            assume(_xml_legal(text))  # XML 1.0 cannot carry the others: the parser refuses the message
        answer = send(text)
        assert answer.status < 500, (name, text)
        # as the server reads it: escaped JSON joins a high and a low surrogate into one character;
        # the XML parser strips the whitespace around an element's text (U+0085 is whitespace); an
        # import's rows are Python strings, where a pair of surrogates stays two
        seen = (text.strip() if name == "POST /wechat Content" else text if "import" in name
                else json.loads(json.dumps(text)))
        assert answer.invalid_text == refused(seen), (name, text, answer)

    check()
