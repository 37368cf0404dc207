"""/pay/notify under a flood of unsigned and forged posts (issue #20: 500 unsigned 60 KB posts once
added 33 MB to ``pay_notification`` in under a second).

What is kept of a delivery whose signature does not hold is bounded per row (headers, body size,
SHA-256, the first 2 KiB) and in rows (the oldest pruned past PVSETTLE_PAY_REFUSALS_KEPT); beyond
PVSETTLE_PAY_REFUSAL_RATE a minute from one source it is answered 429 and not kept; a valid
notification sent in the middle of the flood is recorded all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import secrets

import pytest
import redis.asyncio as redis_asyncio
from pay_support import fake_pay, make_fake, open_bill, pay_port, pay_settings, stranger_key  # noqa: F401

from pay_api.app import refusal_limiter_key
from pay_api.limits import RefusalLimiter
from server.app import create_app
from settlement import models as m
from settlement.pay import payments
from settlement.models import NotificationOutcome
from settlement.infra.redis_client import Namespace, open_redis
from webapp.keys import pay_api_key

RATE = 25
FLOOD = 300
AT_ONCE = 30  # posts in flight together: the test client shares the server's event loop
BODY = 60_000  # [bytes] of each hostile body
# a kept row: the body's first 2 KiB, each kept header at most 512 bytes, and its JSON punctuation
ROW_BOUND = payments.UNVERIFIED_BODY_KEPT + len(payments.KEPT_HEADERS) * (payments.HEADER_KEPT + 40)


MID_WINDOW = 1_800_000_030.0  # [s] half way through a minute: a test's refusals all count in one window


def _frozen_limiter(app) -> RefusalLimiter:
    limiter = next(sub[refusal_limiter_key] for sub in app._subapps if refusal_limiter_key in sub)
    limiter.clock = lambda: MID_WINDOW
    return limiter


async def _server(settings, aiohttp_client, tmp_path, fake, **changes):
    app = create_app(dataclasses.replace(pay_settings(settings, fake, tmp_path / "keys"), **changes))
    _frozen_limiter(app)
    client = await aiohttp_client(app)
    world = await open_bill(23456)
    start = await payments.start_payment(app[pay_api_key], world["bill"].id, world["identity"].id)
    fake.pay_order(start.out_trade_no)
    return client, world, start.out_trade_no


def _unsigned(n: int) -> tuple[dict[str, str], bytes]:
    """A post that looks like a notification: random 60 KB body, made-up signature headers, and
    headers nobody keeps."""
    headers = {"Wechatpay-Serial": secrets.token_hex(20), "Wechatpay-Timestamp": "1700000000",
               "Wechatpay-Nonce": secrets.token_hex(16), "Wechatpay-Signature": secrets.token_urlsafe(400),
               "Content-Type": "application/json", "User-Agent": "x" * 2000}
    headers.update({f"Wechatpay-Junk-{i}": secrets.token_urlsafe(3000) for i in range(n % 3 * 10)})
    return headers, secrets.token_urlsafe(BODY * 3 // 4).encode()[:BODY]


def _forged(fake, no: str) -> tuple[dict[str, str], bytes]:
    """A notification signed with a key WeChat Pay never issued, its resource padded to ~60 KB."""
    return fake.payment_notification(no, sign_with=stranger_key(),
                                     resource_changes={"attach": secrets.token_urlsafe(BODY * 9 // 16)})


async def _kept_bytes(rows: list[m.PayNotification]) -> int:
    return sum(len(r.body.encode()) + len(json.dumps(r.headers, ensure_ascii=False).encode()) for r in rows)


@pytest.mark.parametrize("kind", ["unsigned", "forged"])
async def test_a_flood_from_one_source_is_kept_bounded_and_a_valid_notification_still_pays(
        settings, aiohttp_client, tmp_path, kind):
    async with make_fake(settings.mp_appid) as fake:
        client, world, no = await _server(settings, aiohttp_client, tmp_path, fake, pay_refusal_rate=RATE)
        hostile = [_unsigned(i) if kind == "unsigned" else _forged(fake, no) for i in range(FLOOD)]
        assert all(len(body) >= BODY * 0.9 for _, body in hostile)
        valid = fake.payment_notification(no)

        async def post(notification):
            headers, body = notification
            async with client.post("/pay/notify", data=body, headers=headers) as response:
                return response.status, await response.json() if response.status != 204 else None, \
                    response.headers.get("Retry-After")

        answers = []
        for start in range(0, FLOOD, AT_ONCE):  # the valid one in the middle of a batch half way through
            batch = [post(n) for n in hostile[start:start + AT_ONCE]]
            if start == FLOOD // 2:
                batch.insert(AT_ONCE // 2, post(valid))
            answers += await asyncio.gather(*batch)

    valid_answer = answers.pop(FLOOD // 2 + AT_ONCE // 2)
    assert valid_answer[0] == 204
    bill = await m.Bill.get(id=world["bill"].id)
    assert (bill.state, bill.paid_fen) == (m.BillState.PAID, 23456)
    payment = await m.Payment.get(out_trade_no=no)
    assert payment.amount_fen == 23456
    accepted = await m.PayNotification.get(outcome=NotificationOutcome.ACCEPTED)
    assert accepted.signed_at is not None and json.loads(accepted.body)["event_type"] == "TRANSACTION.SUCCESS"

    statuses = [status for status, _, _ in answers]
    assert statuses.count(401) == RATE and statuses.count(429) == FLOOD - RATE
    assert all(answer["code"] == "FAIL" for _, answer, _ in answers)
    assert all(after == "30" for status, _, after in answers if status == 429)  # to the end of the minute

    refused = await m.PayNotification.filter(outcome=NotificationOutcome.REFUSED)
    assert len(refused) == RATE
    sent = {hashlib.sha256(body).hexdigest(): body for _, body in hostile}
    for row in refused:
        assert row.signed_at is None and row.source == "127.0.0.1"
        assert row.reason.startswith(("bad_signature", "unknown_serial"))
        assert row.body_bytes == len(sent[row.body_sha256])  # the hash names the body that came
        assert sent[row.body_sha256].decode().startswith(row.body)
        assert len(row.body.encode()) <= payments.UNVERIFIED_BODY_KEPT
        assert set(row.headers) <= set(payments.KEPT_HEADERS) and row.headers["Wechatpay-Serial"]
        assert all(len(v) <= payments.HEADER_KEPT for v in row.headers.values())
    stored = await _kept_bytes(refused)
    assert stored <= RATE * ROW_BOUND  # ≈ 25 × 6 KiB, of 300 × 60 KB received
    assert stored * 100 < FLOOD * BODY


def test_what_is_kept_of_any_bytes_is_bounded_and_storable():
    """Binary garbage, NULs, cut UTF-8 and lone surrogates in headers: still at most the bounds in
    bytes of UTF-8, and nothing PostgreSQL refuses."""
    body = b"\x00\xff\xfe" * 30_000 + "电费".encode() * 10_000
    headers = {"wechatpay-serial": "\udcff\x00" * 1000, "User-Agent": "電" * 1000, "X-Other": "x" * 10_000}
    record = payments.notification_fields(headers, body, source="192.0.2.1")
    assert len(record["body"].encode()) <= payments.UNVERIFIED_BODY_KEPT and "\x00" not in record["body"]
    assert set(record["headers"]) == {"Wechatpay-Serial", "User-Agent"}
    for value in record["headers"].values():
        assert len(value.encode()) <= payments.HEADER_KEPT and "\x00" not in value
        value.encode("utf-8")  # no lone surrogate left
    assert (record["body_bytes"], record["body_sha256"]) == (len(body), hashlib.sha256(body).hexdigest())


async def test_refused_rows_are_capped_the_oldest_pruned_and_verified_ones_kept(settings, aiohttp_client, tmp_path):
    kept = 30
    async with make_fake(settings.mp_appid) as fake:
        client, world, no = await _server(settings, aiohttp_client, tmp_path, fake, pay_refusal_rate=10**6,
                                          pay_refusals_kept=kept)
        assert await fake.post(str(client.make_url("/pay/notify")), fake.payment_notification(no)) == (204, "")
        bodies = []
        for i in range(100):
            headers, body = _unsigned(0)
            bodies.append(body)
            response = await client.post("/pay/notify", data=body, headers=headers)
            assert response.status == 401
        # a retry of the paid one comes in between: WeChat Pay's, never pruned
        assert await fake.post(str(client.make_url("/pay/notify")), fake.payment_notification(no)) == (204, "")

    unverified = await m.PayNotification.filter(signed_at__isnull=True).order_by("id")
    assert [row.body_sha256 for row in unverified] == [hashlib.sha256(b).hexdigest() for b in bodies[-kept:]]
    verified = await m.PayNotification.filter(signed_at__isnull=False).order_by("id").values_list("outcome", flat=True)
    assert verified == [NotificationOutcome.ACCEPTED, NotificationOutcome.DUPLICATE]
    assert (await m.Bill.get(id=world["bill"].id)).paid_fen == 23456


async def test_a_body_over_the_limit_is_kept_as_headers_and_size(settings, aiohttp_client, tmp_path):
    async with make_fake(settings.mp_appid) as fake:
        client, _, _ = await _server(settings, aiohttp_client, tmp_path, fake)
        big = await client.post("/pay/notify", data=b"x" * (65 * 1024), headers={"Wechatpay-Serial": "S"})
        assert big.status == 413 and (await big.json())["code"] == "FAIL"

        async def chunks():  # no Content-Length: the size is known only once read
            for _ in range(70):
                yield b"y" * 1024

        chunked = await client.post("/pay/notify", data=chunks(), headers={"Wechatpay-Serial": "S"})
        assert chunked.status == 413
    rows = await m.PayNotification.all().order_by("id")
    assert [(r.status, r.body_bytes, r.headers["Wechatpay-Serial"]) for r in rows] == \
        [(413, 65 * 1024, "S"), (413, 70 * 1024, "S")]
    assert rows[0].body == "" and rows[0].body_sha256 is None
    assert len(rows[1].body) == payments.UNVERIFIED_BODY_KEPT and rows[1].body_sha256 == \
        hashlib.sha256(b"y" * 70 * 1024).hexdigest()


# --- the source ---------------------------------------------------------------------------------------


async def test_behind_a_trusted_proxy_each_client_counts_on_its_own(settings, aiohttp_client, tmp_path):
    async with make_fake(settings.mp_appid) as fake:
        client, world, no = await _server(settings, aiohttp_client, tmp_path, fake, pay_refusal_rate=5,
                                          trusted_proxies="127.0.0.1, 10.0.0.0/8")

        async def post(forwarded_for: str) -> int:
            headers, body = _unsigned(0)
            response = await client.post("/pay/notify", data=body,
                                         headers={**headers, "X-Forwarded-For": forwarded_for})
            return response.status

        # what the client wrote itself (left of what nginx appended) is not believed
        flood = [await post(f"{i}.{i}.{i}.{i}, 203.0.113.7, 10.1.2.3") for i in range(1, 21)]
        assert flood == [401] * 5 + [429] * 15
        assert await post("203.0.113.8") == 401  # another client behind the same proxy
        assert await post("2001:db8:1:2::1") == 401
        assert await post("2001:db8:1:2::ffff") == 401  # the same /64
        assert await post("2001:db8:1:3::1") == 401
        valid = fake.payment_notification(no)
        headers, body = valid
        response = await client.post("/pay/notify", data=body, headers={**headers, "X-Forwarded-For": "203.0.113.7"})
        assert response.status == 204  # the flooding address's own valid notification is not limited
    sources = await m.PayNotification.filter(signed_at__isnull=True).order_by("id").values_list("source", flat=True)
    assert sources == ["203.0.113.7"] * 5 + ["203.0.113.8"] + ["2001:db8:1:2::/64"] * 2 + ["2001:db8:1:3::/64"]
    assert (await m.Bill.get(id=world["bill"].id)).state == m.BillState.PAID


async def test_without_trusted_proxies_x_forwarded_for_evades_nothing(settings, aiohttp_client, tmp_path):
    async with make_fake(settings.mp_appid) as fake:
        client, _, _ = await _server(settings, aiohttp_client, tmp_path, fake, pay_refusal_rate=5)
        statuses = []
        for i in range(12):
            headers, body = _unsigned(0)
            response = await client.post("/pay/notify", data=body,
                                         headers={**headers, "X-Forwarded-For": f"198.51.100.{i}"})
            statuses.append(response.status)
    assert statuses == [401] * 5 + [429] * 7
    sources = await m.PayNotification.all().values_list("source", flat=True)
    assert sources == ["127.0.0.1"] * 5


# --- Redis away -----------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _redis_away(state: str):
    """A Redis client on a port where nothing listens, or on a server that takes connections and
    never answers (Redis hung)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read()  # until the client goes

    server = await asyncio.start_server(hold, "127.0.0.1", 0) if state == "hung" else None
    port = server.sockets[0].getsockname()[1] if server else 1
    client = redis_asyncio.Redis(host="127.0.0.1", port=port, socket_connect_timeout=2)
    try:
        yield client
    finally:
        await client.aclose()
        if server is not None:
            for writer in held:
                writer.close()
                await writer.wait_closed()
            server.close()
            await server.wait_closed()


@pytest.mark.parametrize("redis_state", ["refusing connections", "hung"])
async def test_with_redis_away_refusals_are_still_limited_and_valid_notifications_pass(
        pay_port, fake_pay, redis_state, notify_apps):
    world = await open_bill(23456)
    start = await payments.start_payment(pay_port, world["bill"].id, world["identity"].id)
    fake_pay.pay_order(start.out_trade_no)
    limiter, ns = RefusalLimiter(clock=lambda: MID_WINDOW), Namespace("pvsettle-test-away:")
    per_window = 3
    async with _redis_away(redis_state) as away:
        async def admit() -> bool:
            return await limiter.admit(away, ns, "192.0.2.1", per_window)

        delivery = payments.Delivery(source="192.0.2.1", admit=admit)
        flood = [await payments.handle_notification(pay_port, *_unsigned(0), delivery=delivery,
                                                    apps=notify_apps) for _ in range(5)]
        valid = await payments.handle_notification(pay_port, *fake_pay.payment_notification(start.out_trade_no),
                                                   delivery=delivery, apps=notify_apps)
    assert [h.status for h in flood] == [401] * per_window + [429] * 2
    assert [h.kept for h in flood] == [True] * per_window + [False] * 2
    assert (valid.status, valid.outcome) == (204, NotificationOutcome.ACCEPTED)
    assert (await m.Bill.get(id=world["bill"].id)).paid_fen == 23456
    assert await m.PayNotification.filter(outcome=NotificationOutcome.REFUSED).count() == per_window


class _Blinking:
    """A Redis client whose pipelines fail on the calls named (a slow moment): the rest are the
    real client's."""

    def __init__(self, client, failing: set[int]):
        self.client, self.failing, self.calls = client, failing, 0

    def pipeline(self, **kwargs):
        self.calls += 1
        if self.calls in self.failing:
            raise redis_asyncio.TimeoutError("Timeout reading from socket")
        return self.client.pipeline(**kwargs)


async def test_a_redis_that_misses_answers_does_not_start_the_count_over(settings, caplog):
    # refusals 1-2 counted by Redis, 3 and 5 not (this process counts them), 4 and 6 by Redis again:
    # the limit of 4 holds to the delivery, and the fall-back is said once in the window
    client = open_redis(settings.redis_url)
    ns = Namespace(settings.redis_prefix + "blink:")
    limiter = RefusalLimiter(clock=lambda: MID_WINDOW)
    blinking = _Blinking(client, failing={3, 5})
    try:
        admitted = [await limiter.admit(blinking, ns, "198.51.100.7", 4) for _ in range(7)]
    finally:
        await client.aclose()
    assert admitted == [True] * 4 + [False] * 3
    assert sum("counts alone" in r.getMessage() for r in caplog.records) == 1
