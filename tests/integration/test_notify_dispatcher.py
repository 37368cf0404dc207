"""The dispatcher against the fake WeChat server: channels, faults, retries, rate and quiet hours."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter

import pytest
from tortoise.transactions import in_transaction

from settlement.notify import outbox
from settlement.notify.dispatcher import cancel
from settlement.models import OutboxMessage, OutboxState, SubscribeAcceptance
from tests.integration.test_notify_support import BILL_PAYLOAD, TEMPLATE_IDS, dispatcher, person, rows, staff_member
from tests.integration.wechat_fixtures import *  # noqa: F403
from settlement.clock import UTC, utc_now

NOON = dt.datetime(2026, 11, 20, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai


async def _enqueue(identity, key: str, template: str = "bill_issued", payload=None, *, apps, **kw):
    async with in_transaction() as conn:
        return await outbox.enqueue("BillIssued", identity, "mp", template, payload or BILL_PAYLOAD, key,
                                    using_db=conn, apps=apps, now=kw.pop("now", NOON), **kw)


async def _drain(d) -> None:
    # every retry is due at once (backoff 0): run until nothing pending is left to claim
    for _ in range(100):
        if not await d.run_once():
            return
    raise AssertionError("the outbox did not drain")


async def test_subscribe_then_oa_fallback_then_no_channel(db, fake_wechat, wechat_api, wechat_redis, notify_apps):
    _, accepted, _ = await person(db, 1, accepts=1)
    _, no_accept, oa_only = await person(db, 2)
    _, lonely, _ = await person(db, 3, oa=False)
    for n, identity in enumerate((accepted, accepted, no_accept, lonely)):
        await _enqueue(identity, f"bill:1:BillIssued:{n}", apps=notify_apps)
    await _drain(dispatcher(wechat_api, wechat_redis, db))
    sent = sorted((m.kind, m.touser) for m in fake_wechat.sent)
    # one accept: one message is a subscribe message, the other goes to the official account
    assert sent == [("subscribe", "mp-openid-1"), ("template", "oa-openid-1"), ("template", "oa-openid-2")]
    states = [(r.state, r.channel, r.last_error) for r in await rows()]
    assert sorted(states[:2]) == [(OutboxState.SENT, "subscribe", None), (OutboxState.SENT, "template", None)]
    assert states[2:] == [(OutboxState.SENT, "template", None), (OutboxState.FAILED, "subscribe", "no channel")]
    assert (await SubscribeAcceptance.get(identity=accepted)).used == 1
    subscribe = next(m for m in fake_wechat.sent if m.kind == "subscribe")
    assert subscribe.template_id == TEMPLATE_IDS["bill_issued"]
    assert subscribe.data["amount3"] == "¥1234.56" and subscribe.data["thing2"] == "阳光工业园一号屋顶电站"
    assert subscribe.page == "pages/bills/detail?id=1"
    # the template message carries the outbox id, so WeChat drops a repeat
    assert all(m.client_msg_id.startswith("outbox-") for m in fake_wechat.sent if m.kind == "template")


async def test_43101_falls_back_to_the_official_account(db, fake_wechat, wechat_api, wechat_redis, notify_apps):
    _, refusing, _ = await person(db, 1, accepts=3)
    _, refusing_no_oa, _ = await person(db, 2, oa=False, accepts=3)
    fake_wechat.refuse_subscribe("mp-openid-1")
    fake_wechat.refuse_subscribe("mp-openid-2")
    await _enqueue(refusing, "k1", apps=notify_apps)
    await _enqueue(refusing_no_oa, "k2", apps=notify_apps)
    await _drain(dispatcher(wechat_api, wechat_redis, db))
    assert [(m.kind, m.touser) for m in fake_wechat.sent] == [("template", "oa-openid-1")]
    first, second = await rows()
    assert (first.state, first.channel) == (OutboxState.SENT, "template")
    assert (second.state, second.last_error) == (OutboxState.FAILED, "no channel")
    # the refused sends spent no accept
    assert (await SubscribeAcceptance.get(identity=refusing)).used == 0


async def test_token_expiring_mid_batch(db, fake_wechat, wechat_api, wechat_redis, notify_apps):
    for n in range(10):
        _, identity, _ = await person(db, n, accepts=1)
        await _enqueue(identity, f"k{n}", apps=notify_apps)
    fake_wechat.expire_tokens_after("subscribe_send", 4)
    await _drain(dispatcher(wechat_api, wechat_redis, db, concurrency=1))
    assert sorted(m.touser for m in fake_wechat.sent) == sorted(f"mp-openid-{n}" for n in range(10))
    assert all(r.state == OutboxState.SENT for r in await rows())
    assert any(c.errcode == 42001 for c in fake_wechat.calls_to("subscribe_send"))


@pytest.mark.parametrize("fault", ["quota", "http5xx", "busy", "minute_limit"])
async def test_transient_faults_are_retried_with_backoff(db, fake_wechat, wechat_api, wechat_redis, fault, notify_apps):
    _, identity, _ = await person(db, 1, accepts=1)
    await _enqueue(identity, "k1", apps=notify_apps)
    if fault == "quota":
        fake_wechat.fail_next("subscribe_send", 45009, times=2)
    elif fault == "http5xx":
        fake_wechat.fail_next_http("subscribe_send", 502, times=2)
    elif fault == "busy":
        fake_wechat.fail_next("subscribe_send", -1, times=2)
    else:
        fake_wechat.fail_next("subscribe_send", 45011, times=2)
    d = dispatcher(wechat_api, wechat_redis, db, backoff=60)
    assert await d.run_once() == 1
    row = (await rows())[0]
    assert row.state == OutboxState.PENDING and row.attempts == 1 and row.last_error
    assert row.not_before > utc_now() + dt.timedelta(seconds=50)  # pushed by the backoff
    assert await d.run_once() == 0  # not due yet
    await OutboxMessage.filter(id=row.id).update(not_before=utc_now())
    assert await d.run_once() == 1
    row = (await rows())[0]
    # the second try waits twice as long
    assert row.attempts == 2 and row.not_before > utc_now() + dt.timedelta(seconds=110)
    await OutboxMessage.filter(id=row.id).update(not_before=utc_now())
    assert await d.run_once() == 1
    row = (await rows())[0]
    assert (row.state, row.attempts, row.last_error) == (OutboxState.SENT, 3, None)
    assert len(fake_wechat.sent) == 1


async def test_timeouts_are_retried_and_give_up_after_max_attempts(db, fake_wechat, wechat_api_factory, wechat_redis,
                                                                   notify_apps):
    api = await wechat_api_factory(call_timeout=0.2)
    _, identity, _ = await person(db, 1, accepts=1)
    await _enqueue(identity, "k1", apps=notify_apps)
    fake_wechat.hang_next("subscribe_send", 1.0, times=3)
    await _drain(dispatcher(api, wechat_redis, db, max_attempts=3))
    row = (await rows())[0]
    assert row.state == OutboxState.FAILED and row.attempts == 3
    assert row.last_error.startswith("gave up after 3 tries: WechatUnavailable")


async def test_permanent_errors_fail_with_the_reason(db, fake_wechat, wechat_api, wechat_redis, notify_apps):
    _, identity, _ = await person(db, 1, accepts=1)
    _, unfollowed, _ = await person(db, 2)
    fake_wechat.unfollow("oa-openid-2")
    await _enqueue(identity, "k1", apps=notify_apps)
    await _enqueue(unfollowed, "k2", apps=notify_apps)
    fake_wechat.fail_next("subscribe_send", 47003)
    await _drain(dispatcher(wechat_api, wechat_redis, db))
    first, second = await rows()
    assert first.state == OutboxState.FAILED and first.last_error.startswith("InvalidMessage 47003")
    assert second.state == OutboxState.FAILED and second.last_error.startswith("InvalidMessage 43004")
    assert fake_wechat.sent == []


async def test_unknown_template_id_fails(db, fake_wechat, wechat_api, wechat_redis, settings, notify_apps):
    from settlement.notify.dispatcher import Dispatcher
    from settlement.infra.redis_client import Namespace

    _, identity, _ = await person(db, 1, accepts=1)
    await _enqueue(identity, "k1", apps=notify_apps)
    d = Dispatcher(wechat_api, wechat_redis, Namespace(settings.redis_prefix), template_ids={},
                   mp_appid=settings.mp_appid, oa_appid=settings.oa_appid)
    await _drain(d)
    assert (await rows())[0].last_error == "no WeChat template id for 'bill_issued'"


async def test_rate_limit_per_template_is_kept(db, fake_wechat, wechat_api, wechat_redis, notify_apps):
    for n in range(12):
        _, identity, _ = await person(db, n, accepts=2)
        await _enqueue(identity, f"a{n}", apps=notify_apps)
    started: list[float] = []

    class Recording:
        """The adapter, noting when each send starts."""

        async def send_subscribe_message(self, *args, **kwargs):
            started.append(time.time())
            return await wechat_api.send_subscribe_message(*args, **kwargs)

    d = dispatcher(Recording(), wechat_redis, db, rate_per_s=5)
    while await OutboxMessage.filter(state=OutboxState.PENDING).exists():
        await d.run_once()
        await asyncio.sleep(0.01)
    assert len(fake_wechat.sent) == 12 == len(started)
    per_second = Counter(int(t) for t in started)
    assert max(per_second.values()) == 5 and len(per_second) >= 3
    assert d.stats.deferred > 0


async def test_reminders_wait_for_the_end_of_quiet_hours(db, fake_wechat, wechat_api, wechat_redis, notify_apps):
    _, identity, _ = await person(db, 1, accepts=1, template="arrears_reminder")
    night = dt.datetime(2026, 11, 20, 15, 30, tzinfo=UTC)  # 23:30 in Shanghai
    payload = {**BILL_PAYLOAD, "late_fee_fen": 250, "stage": 7}
    row = await _enqueue(identity, "r1", template="arrears_reminder", payload=payload, now=night, apps=notify_apps)
    assert row.not_before == dt.datetime(2026, 11, 21, 0, 0, tzinfo=UTC)  # 08:00 the next morning
    assert outbox.quiet_until(dt.datetime(2026, 11, 20, 23, 59, tzinfo=UTC)) == dt.datetime(2026, 11, 21, 0, 0, tzinfo=UTC)
    assert outbox.quiet_until(dt.datetime(2026, 11, 21, 0, 0, tzinfo=UTC)) is None
    assert outbox.quiet_until(dt.datetime(2026, 11, 20, 14, 0, tzinfo=UTC)) == dt.datetime(2026, 11, 21, 0, 0, tzinfo=UTC)
    # a bill message is not a reminder: it goes at night too
    other = await _enqueue(identity, "b1", now=night, apps=notify_apps)
    assert other.not_before == night


async def test_a_claimed_row_is_not_claimed_twice(db, fake_wechat, wechat_api, wechat_redis, notify_apps):
    for n in range(5):
        _, identity, _ = await person(db, n, accepts=1)
        await _enqueue(identity, f"k{n}", apps=notify_apps)
    first, second = dispatcher(wechat_api, wechat_redis, db), dispatcher(wechat_api, wechat_redis, db)
    now = utc_now()
    _, _, mine = await first.claim(now)
    _, _, theirs = await second.claim(now)
    assert len(mine) == 5 and theirs == []
    # once the lease has run out the rows may be claimed again
    _, _, later = await second.claim(now + dt.timedelta(seconds=first.lease + 1))
    assert len(later) == 5


async def test_a_claim_passes_over_rows_another_transaction_holds(db, fake_wechat, wechat_api, wechat_redis,
                                                                  notify_apps):
    """Two dispatchers claiming at the same moment: the second takes other rows at once instead
    of waiting for (and deadlocking with) the first. Only PostgreSQL has row locks; on SQLite the
    claim holds the whole database and this cannot arise."""
    if not db.database_url.startswith("postgres"):
        pytest.skip("row locks are PostgreSQL's (SQLite serializes whole transactions)")
    for n in range(6):
        _, identity, _ = await person(db, n, accepts=1)
        await _enqueue(identity, f"k{n}", apps=notify_apps)
    ids = sorted(await OutboxMessage.all().values_list("id", flat=True))
    held = asyncio.Event()
    release = asyncio.Event()

    async def other_claimer() -> None:
        async with in_transaction() as conn:  # holds the three oldest rows, mid-claim
            await conn.execute_query(f"SELECT id FROM outbox_message WHERE id IN ({ids[0]},{ids[1]},{ids[2]}) "
                                     "FOR UPDATE")
            held.set()
            await release.wait()

    holder = asyncio.create_task(other_claimer())
    await held.wait()
    try:
        d = dispatcher(wechat_api, wechat_redis, db)
        _, _, rows_ = await asyncio.wait_for(d.claim(utc_now()), timeout=5)
    finally:
        release.set()
        await holder
    assert [r.id for r in rows_] == ids[3:]


async def test_staff_alarm_and_cancel(db, fake_wechat, wechat_api, wechat_redis, notify_apps):
    await staff_member(db, 1)
    async with in_transaction() as conn:
        written = await outbox.notify_staff("OutageAlarm", "outage_alarm", {
            "plant_name": "一号站", "plant_code": "P001", "started_at": NOON, "what": "逆变器离线超过30分钟"},
            "outage:1", using_db=conn, apps=notify_apps)
    assert [r.channel for r in written] == ["template"]
    _, identity, _ = await person(db, 2, accepts=1)
    doomed = await _enqueue(identity, "bill:9:r", apps=notify_apps)
    assert await cancel([doomed.id], "paid") == 1
    await _drain(dispatcher(wechat_api, wechat_redis, db))
    assert [(m.kind, m.touser, m.data["character_string2"]) for m in fake_wechat.sent] == [
        ("template", "staff-openid-1", "P001")]
    assert (await OutboxMessage.get(id=doomed.id)).last_error == "paid"
