"""A dispatcher process SIGKILLed in the middle of a batch, then another one: the fake WeChat's
received messages compared with the outbox rows — none lost, none twice where WeChat can
deduplicate (official-account template messages carry ``client_msg_id``), and for subscribe
messages (no idempotency key in WeChat's API) repeats only within the documented window."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections import Counter

import pytest
from tortoise.transactions import in_transaction

from settlement.notify import outbox
from settlement.models import OutboxMessage, OutboxState
from tests.integration.test_notify_support import BILL_PAYLOAD, TEMPLATE_IDS, dispatcher, person
from tests.integration.wechat_fixtures import *  # noqa: F403

MESSAGES = 150
CONCURRENCY = 5
LEASE = 3.0

CHILD = r"""
import asyncio, json, sys
import aiohttp
from settlement.infra import db as database
from settlement.adapters.wechat_http import AiohttpWechatApi
from settlement.notify.dispatcher import Dispatcher
from settlement.infra.redis_client import Namespace, open_redis

async def main():
    cfg = json.loads(sys.argv[1])
    await database.open_database(cfg["database_url"])
    async with aiohttp.ClientSession() as session:
        redis = open_redis(cfg["redis_url"])
        ns = Namespace(cfg["prefix"])
        api = AiohttpWechatApi(session, redis, ns, base_url=cfg["base_url"], mp_appid=cfg["mp_appid"],
                               mp_secret=cfg["mp_secret"], oa_appid=cfg["oa_appid"], oa_secret=cfg["oa_secret"])
        dispatcher = Dispatcher(api, redis, ns, template_ids=cfg["templates"], mp_appid=cfg["mp_appid"],
                                oa_appid=cfg["oa_appid"], rate_per_s=100000, batch_size=40,
                                concurrency=cfg["concurrency"], lease=cfg["lease"], lease_margin=0.5, backoff=0)
        print("ready", flush=True)
        await dispatcher.drain(idle_wait=0.05)

asyncio.run(main())
"""


@pytest.mark.parametrize("channel", ["template", "subscribe"])
async def test_killed_dispatcher_loses_nothing_and_sends_nothing_twice(db, fake_wechat, wechat_api, wechat_redis,
                                                                       channel, tmp_path, notify_apps):
    for n in range(MESSAGES):
        _, identity, oa = await person(db, n, accepts=1 if channel == "subscribe" else 0)
        async with in_transaction() as conn:
            await outbox.enqueue("BillIssued", identity, "mp", "bill_issued",
                                 {**BILL_PAYLOAD, "bill_number": f"K{n}"}, f"bill:{n}:BillIssued", using_db=conn,
                                 apps=notify_apps)
    endpoint = "subscribe_send" if channel == "subscribe" else "template_send"
    # WeChat slow enough that a batch is in the middle of its sends when the process dies
    fake_wechat.hang_next(endpoint, 0.02, times=MESSAGES)
    config = {"database_url": db.database_url, "redis_url": db.redis_url, "prefix": db.redis_prefix,
              "base_url": fake_wechat.base_url, "mp_appid": db.mp_appid, "mp_secret": db.mp_secret,
              "oa_appid": db.oa_appid, "oa_secret": db.oa_secret, "templates": TEMPLATE_IDS,
              "concurrency": CONCURRENCY, "lease": LEASE}
    log = tmp_path / "child.log"
    with log.open("wb") as out:
        child = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(config)], stdout=out, stderr=out,
                                 env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        for _ in range(3000):
            if len(fake_wechat.sent) >= MESSAGES // 3 or child.poll() is not None:
                break
            await asyncio.sleep(0.01)
        if len(fake_wechat.sent) < MESSAGES // 3:
            pytest.fail(f"the dispatcher process sent too little: {log.read_text()[-2000:]}")
        child.send_signal(signal.SIGKILL)
        await asyncio.to_thread(child.wait, 10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    killed_at = len(fake_wechat.sent)
    assert 0 < killed_at < MESSAGES
    pending = await OutboxMessage.filter(state=OutboxState.PENDING).count()
    assert pending > 0  # it really died in the middle
    # its claims run out, then another dispatcher takes the rows
    await asyncio.sleep(LEASE + 0.5)
    fake_wechat.clear_faults()
    second = dispatcher(wechat_api, wechat_redis, db)
    for _ in range(100):
        if not await second.run_once():
            break
    rows = await OutboxMessage.all()
    assert len(rows) == MESSAGES and all(r.state == OutboxState.SENT for r in rows)  # none lost
    received = Counter(m.data["character_string1"] for m in fake_wechat.sent)
    assert set(received) == {f"K{n}" for n in range(MESSAGES)}
    repeats = sum(count - 1 for count in received.values())
    if channel == "template":
        assert repeats == 0
        assert all(r.channel == "template" for r in rows)
    else:
        # only the sends in flight or not yet marked when the process died can repeat: at most one per
        # sending slot (the documented window)
        assert repeats <= CONCURRENCY
