"""Property: over random sequences of events, people, WeChat faults and dispatcher runs, every
notification written is delivered exactly once or recorded failed with a reason."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tortoise.transactions import in_transaction

from settlement.notify import outbox
from settlement.models import OutboxMessage, OutboxState
from tests.integration.test_notify_support import BILL_PAYLOAD, dispatcher, person
from tests.integration.wechat_fixtures import *  # noqa: F403

PEOPLE = st.fixed_dictionaries({"accepts": st.integers(0, 3), "oa": st.booleans(), "refuses": st.booleans(),
                                "unfollowed": st.booleans()})
FAULTS = st.sampled_from([None, ("errcode", 45009), ("errcode", -1), ("errcode", 47003), ("errcode", 45011),
                          ("http", 503), ("expire", 0)])
STEP = st.one_of(
    st.tuples(st.just("event"), st.integers(0, 5), st.integers(0, 30)),  # (person, message number)
    st.tuples(st.just("fault"), FAULTS, st.sampled_from(["subscribe_send", "template_send"])),
    st.tuples(st.just("dispatch"), st.integers(1, 4), st.integers(1, 3)),  # (batch size, runs)
)
_example = itertools.count()


@given(people=st.lists(PEOPLE, min_size=6, max_size=6), steps=st.lists(STEP, min_size=1, max_size=25))
@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
async def test_every_notification_is_delivered_once_or_failed_with_a_reason(
        db, fake_wechat, wechat_api, wechat_redis, notify_apps, people, steps):
    run = next(_example)
    identities = []
    for n, shape in enumerate(people):
        _, mp_identity, _ = await person(db, run * 10 + n, oa=shape["oa"], accepts=shape["accepts"])
        if shape["refuses"]:
            fake_wechat.refuse_subscribe(mp_identity.openid)
        if shape["unfollowed"]:
            fake_wechat.unfollow(f"oa-openid-{run * 10 + n}")
        identities.append(mp_identity)
    fake_wechat.clear_faults()
    keys: set[str] = set()
    for step in steps:
        if step[0] == "event":
            _, who, number = step
            key = f"bill:{run}:{number}:{who}"
            keys.add(key)
            async with in_transaction() as conn:
                await outbox.enqueue("BillIssued", identities[who], "mp", "bill_issued",
                                     {**BILL_PAYLOAD, "bill_number": f"R{run}K{number}P{who}"}, key, using_db=conn,
                                     apps=notify_apps)
        elif step[0] == "fault":
            _, fault, endpoint = step
            if fault is None:
                continue
            if fault[0] == "errcode":
                fake_wechat.fail_next(endpoint, fault[1])
            elif fault[0] == "http":
                fake_wechat.fail_next_http(endpoint, fault[1])
            else:
                fake_wechat.expire_tokens()
        else:
            _, batch, runs = step
            d = dispatcher(wechat_api, wechat_redis, db, batch_size=batch, max_attempts=4)
            for _ in range(runs):
                await d.run_once()
    fake_wechat.clear_faults()
    # at the end WeChat is healthy: a dispatcher drains everything still pending. Rows the rate
    # limit deferred (each dispatcher above took a chunk of this second's allowance) come due in
    # the next second, so the drain waits for them rather than stopping at the first empty claim
    d = dispatcher(wechat_api, wechat_redis, db, max_attempts=4)
    deadline = time.monotonic() + 30
    while await OutboxMessage.filter(dedupe_key__in=list(keys), state=OutboxState.PENDING).exists():
        assert time.monotonic() < deadline, "the outbox did not drain"
        if not await d.run_once():
            await asyncio.sleep(0.05)
    rows = await OutboxMessage.filter(dedupe_key__in=list(keys))
    assert len(rows) == len(keys)  # one row per event, repeats deduplicated
    delivered = Counter(m.data.get("character_string1") for m in fake_wechat.sent
                        if m.data.get("character_string1", "").startswith(f"R{run}K"))
    for row in rows:
        number = row.payload["data"]["character_string1"]
        if row.state == OutboxState.SENT:
            assert delivered[number] == 1, (row.dedupe_key, delivered[number])
            assert row.sent_at is not None and row.last_error is None
        else:
            assert row.state == OutboxState.FAILED, row.state
            assert row.last_error, row.dedupe_key
            assert delivered[number] == 0
    assert sum(delivered.values()) == sum(r.state == OutboxState.SENT for r in rows)
