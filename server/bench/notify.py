"""``pvsettle bench notify``: queued notifications drained against the fake WeChat server.

The fake WeChat (:mod:`settlement.fakes.wechat_server`, the real protocol on a real port) runs in
its own process, so it does not share the dispatchers' event loop. A fresh database (SQLite in a
temporary folder, or a new PostgreSQL database when ``PVSETTLE_DATABASE_URL`` names a server)
gets ``--messages`` outbox rows over four templates, half to mini-program users who accepted the
template (subscribe messages), half to official-account followers (template messages). Then
``--dispatchers`` dispatchers, as any server process runs them, drain the outbox with the
per-template rate limit (``--rate`` messages per second per template) in force.

Printed: ``{"messages", "rate_per_s", "duplicates", "lost", "seconds", "max_per_template_per_s",
"rate_limit_per_template", "dispatchers", "database"}`` — ``duplicates`` are messages WeChat
received more than once, ``lost`` rows not received (or not marked sent), both counted by the
unique number each message carries. The seed is not timed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import multiprocessing
import time
import uuid
from collections import Counter, defaultdict

import aiohttp

from server import loop
from server.bench.support import bench_database
from settlement.clock import UTC, utc_now

TEMPLATES = ("bill_issued", "payment_received", "refund_done", "fault_update")
MP_APPID, MP_SECRET = "wxbenchmp000000001", "bench-mp-secret"
OA_APPID, OA_SECRET = "wxbenchoa000000001", "bench-oa-secret"
RECIPIENTS = 1000  # people; each gets messages/RECIPIENTS messages


def _payload(template: str, n: int) -> dict:
    now = dt.datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
    number = f"N{n:08d}"
    if template == "bill_issued":
        return {"bill_number": number, "plant_name": "基准电站", "total_fen": 10000 + n, "owed_fen": 10000 + n,
                "due_on": dt.date(2026, 12, 5), "bill_id": n}
    if template == "payment_received":
        return {"bill_number": number, "plant_name": "基准电站", "amount_fen": 5000, "paid_at": now, "owed_fen": 0,
                "bill_id": n}
    if template == "refund_done":
        return {"bill_number": number, "amount_fen": 100, "refunded_at": now, "reason": "多缴退回"}
    return {"plant_name": "基准电站", "fault_id": n, "state_zh": "处理中", "note": "已派人上门", "updated_at": now}


# the field of each template that carries the message's unique number
NUMBER_KEY = {"bill_issued": "character_string1", "payment_received": "character_string2",
              "refund_done": "character_string2", "fault_update": "character_string2"}


def _number(template: str, n: int) -> str:
    return f"F{n}" if template == "fault_update" else f"N{n:08d}"


def _number_of(data: dict) -> str:
    return data.get("character_string1") or data.get("character_string2")


def _serve_fake(port_queue: multiprocessing.Queue, stop: multiprocessing.Event) -> None:
    """The fake WeChat in this process, with one extra route that reports what it received."""
    from aiohttp import web

    from settlement.fakes.wechat_server import FakeWechat

    async def main() -> None:
        fake = FakeWechat()
        fake.register_app(MP_APPID, MP_SECRET, "mp")
        fake.register_app(OA_APPID, OA_SECRET, "oa")
        app = fake.make_app()

        async def received(request: web.Request) -> web.Response:
            return web.json_response([[m.template_id, _number_of(m.data), m.at] for m in fake.sent])

        app.router.add_get("/_bench/received", received)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port_queue.put(runner.addresses[0][1])
        while not stop.is_set():
            await asyncio.sleep(0.1)
        await runner.cleanup()

    loop.run(main())


async def _seed(messages: int, template_ids: dict[str, str]) -> None:
    from settlement.notify import outbox
    from settlement.models import (OutboxMessage, OutboxState, Owner, SubscribeAcceptance, SubscribeAnswer,
                                   WechatIdentity)

    owners = await Owner.bulk_create([Owner(name=f"业主{i}") for i in range(RECIPIENTS)])
    owners = await Owner.all().order_by("id")
    identities = []
    for i, owner in enumerate(owners):
        if i % 2 == 0:
            identities.append(WechatIdentity(app_id=MP_APPID, openid=f"bench-mp-{i}", owner_id=owner.id))
        else:
            identities.append(WechatIdentity(app_id=OA_APPID, openid=f"bench-oa-{i}", owner_id=owner.id))
    await WechatIdentity.bulk_create(identities)
    stored = await WechatIdentity.filter(app_id=MP_APPID)
    per_person = messages // RECIPIENTS + 1
    await SubscribeAcceptance.bulk_create([
        SubscribeAcceptance(identity_id=i.id, template_id=template_ids[t], answer=SubscribeAnswer.ACCEPT,
                            accepts=per_person) for i in stored for t in TEMPLATES])
    rendered = {}
    for template in TEMPLATES:
        rendered[template] = outbox.render(template, _payload(template, 0))
    now = utc_now() - dt.timedelta(seconds=1)
    rows = []
    for n in range(messages):
        template = TEMPLATES[n % len(TEMPLATES)]
        person = n % RECIPIENTS
        fields = json.loads(json.dumps(rendered[template]))
        key = NUMBER_KEY[template]  # a unique number per message
        fields["data"][key] = fields["oa_data"][key] = _number(template, n)
        mp = person % 2 == 0
        rows.append(OutboxMessage(
            dedupe_key=f"bench:{n}", event="Bench", channel="subscribe" if mp else "template",
            recipient=f"bench-mp-{person}" if mp else f"bench-oa-{person}", app_id=MP_APPID if mp else OA_APPID,
            template=template, payload=fields, state=OutboxState.PENDING, not_before=now))
        if len(rows) == 5000:
            await OutboxMessage.bulk_create(rows)
            rows = []
    await OutboxMessage.bulk_create(rows)


async def _drain(base_url: str, redis, ns, template_ids: dict[str, str], *, dispatchers: int, rate: int,
                 concurrency: int, batch_size: int) -> tuple[float, list]:
    """Drain the outbox with ``dispatchers`` dispatchers against the fake WeChat at ``base_url``.

    Returns the seconds it took and what the fake received: (template id, number, time [s]) per message.
    """
    from settlement.adapters.wechat_http import AiohttpWechatApi
    from settlement.notify.dispatcher import Dispatcher
    from settlement.models import OutboxMessage, OutboxState

    connector = aiohttp.TCPConnector(limit=dispatchers * concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        api = AiohttpWechatApi(session, redis, ns, base_url=base_url, mp_appid=MP_APPID,
                               mp_secret=MP_SECRET, oa_appid=OA_APPID, oa_secret=OA_SECRET)
        workers = [Dispatcher(api, redis, ns, template_ids=template_ids, mp_appid=MP_APPID,
                              oa_appid=OA_APPID, rate_per_s=rate, batch_size=batch_size,
                              concurrency=concurrency, backoff=0.5, name=f"bench-{i}")
                   for i in range(dispatchers)]
        started = time.perf_counter()

        async def drain(worker: Dispatcher) -> None:
            # rows deferred by the rate limit come due a moment later: poll until none is left
            while await OutboxMessage.filter(state=OutboxState.PENDING).exists():
                if not await worker.run_once():
                    await asyncio.sleep(0.02)

        await asyncio.gather(*(drain(w) for w in workers))
        seconds = time.perf_counter() - started
        async with session.get(base_url + "/_bench/received") as response:
            received = await response.json()
    return seconds, received


def _delivery_figures(messages: int, received: list, seconds: float, sent_rows: int, failed: list,
                      rate: int) -> dict:
    """Rate, duplicates, losses and the busiest second per template of what the fake received."""
    numbers = Counter(number for _, number, _ in received)
    expected = {_number(TEMPLATES[n % len(TEMPLATES)], n) for n in range(messages)}
    per_window: dict[tuple[str, int], int] = defaultdict(int)
    for template_id, _, at in received:
        per_window[(template_id, int(at))] += 1
    return {
        "messages": messages,
        "rate_per_s": round(len(received) / seconds, 1),
        "duplicates": sum(c - 1 for c in numbers.values() if c > 1),
        "lost": len(expected - set(numbers)) + (messages - sent_rows),
        "seconds": round(seconds, 2),
        "failed": len(failed),
        "max_per_template_per_s": max(per_window.values(), default=0),
        "rate_limit_per_template": rate,
    }


async def bench_notify(messages: int, database_url: str, redis_url: str, *, dispatchers: int = 4,
                       rate: int = 1000, concurrency: int = 64, batch_size: int = 500) -> dict:
    from settlement.models import OutboxMessage, OutboxState
    from settlement.infra.redis_client import Namespace, open_redis

    ctx = multiprocessing.get_context("spawn")
    port_queue, stop = ctx.Queue(), ctx.Event()
    server = ctx.Process(target=_serve_fake, args=(port_queue, stop), daemon=True)
    server.start()
    template_ids = {name: f"bench-{name}" for name in TEMPLATES}
    try:
        base_url = f"http://127.0.0.1:{port_queue.get(timeout=30)}"
        async with bench_database(database_url, prefix="pvsettle-bench-notify-", connect=True) as bench:
            redis = open_redis(redis_url)
            ns = Namespace(f"pvsettle-bench-notify:{uuid.uuid4().hex[:8]}:")
            try:
                await _seed(messages, template_ids)
                seconds, received = await _drain(base_url, redis, ns, template_ids, dispatchers=dispatchers,
                                                 rate=rate, concurrency=concurrency, batch_size=batch_size)
                sent_rows = await OutboxMessage.filter(state=OutboxState.SENT).count()
                failed = await OutboxMessage.filter(state=OutboxState.FAILED).values_list("last_error", flat=True)
            finally:
                await ns.delete_all(redis)
                await redis.aclose()
    finally:
        stop.set()
        server.join(10)
        if server.is_alive():
            server.kill()
    return {**_delivery_figures(messages, received, seconds, sent_rows, failed, rate),
            "templates": len(TEMPLATES), "dispatchers": dispatchers, "database": bench.kind}


def register(bench_sub) -> None:
    """Add ``pvsettle bench notify`` to the CLI's bench sub-commands."""
    parser = bench_sub.add_parser("notify", help="outbox: queued notifications drained against the fake WeChat")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--dispatchers", type=int, default=4, help="dispatchers draining at once")
    parser.add_argument("--rate", type=int, default=1000, help="messages per second per template")

    def run(args) -> int:
        from webapp.settings import Settings

        settings = Settings.from_env(require_secrets=False)
        print(json.dumps(loop.run(bench_notify(args.messages, settings.database_url, settings.redis_url,
                                                  dispatchers=args.dispatchers, rate=args.rate))))
        return 0

    parser.set_defaults(func=run)
