"""``pvsettle bench bot``: owner commands as real signed WeChat XML to a running server.

What is measured, in one run:

1. a database of the bench's own (a fresh database on the PostgreSQL server of
   ``PVSETTLE_DATABASE_URL``, or a temporary SQLite file), migrated and seeded: ``--owners`` owners,
   each with a plant whose inverter has sent today's 15-minute samples through the real telemetry
   ingest (samples, rollups, and the live state in Redis when a real Redis is used — the
   emulation lives inside the server), three bills (one paid, two open) and an official-account
   user bound to them;
2. ``pvsettle serve`` (one process, without scheduler and outbox dispatcher) on it and on
   ``PVSETTLE_REDIS_URL`` (under a key prefix of the bench's own; empty = the in-process
   emulation inside the server);
3. from this process, ``--messages`` text messages — 发电, 账单, 缴费, 帮助 and 发电 <plant> in
   turn, from the owners in turn — each a fresh WeChat message (its own MsgId, timestamp, nonce
   and signature, plaintext mode, or safe mode with ``--safe``) POSTed to ``/wechat`` with
   ``--concurrency`` in flight, after a warm-up of 50; the time of each is from sending the
   request to having read the whole reply.

Then 500 ``GET /healthz`` (one query, one Redis ping) on the same server, sequentially, as the
floor of this machine at this moment. Every reply must be 200 with a text reply; a reply that only acknowledges (the command ran past
the server's deadline and finishes by customer-service message) is counted in ``late``.

Prints ``{"messages", "p50_ms", "p99_ms", "database", "redis", "concurrency", "mode", "late", "max_ms",
"p99_ms_by_command", "healthz_p50_ms", "healthz_p99_ms"}``.
The machine is shared: a single run is a sample, not a verdict.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import itertools
import json
import secrets
import tempfile
import time
import uuid
from decimal import Decimal

from server.bench.support import (blocking_bench_database, clean_redis, free_port, percentile, serve_environment,
                                  start_serve, stop_process_group, wait_ready)
from settlement.clock import utc_now

WARM_UP = 50
HOSTILE_ROUNDS = 30  # of each kind of hostile request
COMMANDS = ("发电", "账单", "缴费", "帮助", "发电 {plant}")
APPID = "wxbenchoa000000001"


def register(bench_sub) -> None:
    """Add ``bot`` to ``pvsettle bench``."""
    parser = bench_sub.add_parser("bot", help="official-account owner commands as signed XML to a running server")
    parser.add_argument("--messages", type=int, default=2000, help="messages measured (after a warm-up of 50)")
    parser.add_argument("--owners", type=int, default=50, help="bound owners sending them, in turn")
    parser.add_argument("--concurrency", type=int, default=1, help="messages in flight at once")
    parser.add_argument("--safe", action="store_true", help="safe (encrypted) mode instead of plaintext")
    parser.set_defaults(func=cmd_bench_bot)


def cmd_bench_bot(args: argparse.Namespace) -> int:
    if args.messages < 1 or args.owners < 1 or args.concurrency < 1:
        raise SystemExit("pvsettle bench bot: --messages, --owners and --concurrency must be at least 1")
    print(json.dumps(bench_bot(args.messages, args.owners, args.concurrency, args.safe)))
    return 0


async def _seed(owners: int, redis_url: str, prefix: str) -> list[tuple[str, str]]:
    """(openid, plant code) of every bound owner."""
    from settlement import models as m
    from settlement.infra.redis_client import Namespace, open_redis
    from settlement.telemetry.ingest import ingest_samples

    local = dt.timezone(dt.timedelta(hours=8))
    now = utc_now()
    # today's 15-minute telemetry up to now, as a data logger sends it
    midnight = now.astimezone(local).replace(hour=0, minute=0, second=0, microsecond=0)
    quarters = max(int((now - midnight) / dt.timedelta(minutes=15)), 1)
    redis = open_redis(redis_url) if redis_url else None
    out = []
    try:
        for n in range(owners):
            owner = await m.Owner.create(name=f"业主{n}")
            plant = await m.Plant.create(code=f"BOT-{n:04d}", name="厂房屋顶", owner=owner,
                                         capacity_kwp=Decimal("250"))
            device = await m.TelemetryDevice.create(plant=plant, serial=f"INV-BOT-{n:04d}", rated_power_w=250_000)
            await ingest_samples(
                [{"device": device.serial, "ts": (midnight + dt.timedelta(minutes=15 * k)).isoformat(),
                  "power_w": 120_000, "energy_wh": 50_000_000 + 30_000 * k, "status": "ok"}
                 for k in range(quarters)],
                received_from="collector:bench", now=now, redis=redis,
                namespace=Namespace(prefix) if redis is not None else None)
            for i, period in enumerate(("2026-08", "2026-09", "2026-10")):
                ends = dt.datetime(2026, 8 + i, 1, tzinfo=local)
                cycle = await m.ReadingCycle.create(plant=plant, period=period, ends_at=ends,
                                                    starts_at=ends - dt.timedelta(days=31))
                form = await m.ConfirmationForm.create(
                    cycle=cycle, state=m.FormState.CONFIRMED, lines=[], periods={}, generation_kwh=Decimal("30000"),
                    self_use_kwh=Decimal("24000"), export_kwh=Decimal("6000"), grid_kwh=Decimal("9000"))
                paid = i == 0
                bill = await m.Bill.create(
                    number=f"{period.replace('-', '')}-{plant.code}-1", cycle=cycle, form=form, plant=plant,
                    owner=owner, issued_at=ends + dt.timedelta(days=5), due_on=(ends + dt.timedelta(days=20)).date(),
                    total_fen=1_200_000 + i, tax_fen=138_053, paid_fen=1_200_000 if paid else 0,
                    state=m.BillState.PAID if paid else m.BillState.OPEN)
                await m.BillLine.create(bill=bill, seq=1, kind=m.LineKind.ENERGY, description="自用电量",
                                        kwh=Decimal("24000"), unit_price=Decimal("0.5"), amount_fen=1_200_000 + i)
            openid = f"o-bench-{uuid.uuid4().hex[:20]}"
            await m.WechatIdentity.create(app_id=APPID, openid=openid, owner=owner)
            out.append((openid, plant.code))
    finally:
        if redis is not None:
            await redis.aclose()
    return out


async def _seed_database(url: str, owners: int, redis_url: str, prefix: str) -> list[tuple[str, str]]:
    """Connect to ``url``, seed it (:func:`_seed`) and disconnect: (openid, plant code) of every bound owner."""
    from settlement.infra import db

    await db.open_database(url)
    try:
        return await _seed(owners, redis_url, prefix)
    finally:
        await db.close_database()


def _text_message(openid: str, content: str, msg_id: int) -> str:
    return (f"<xml><ToUserName><![CDATA[gh_bench0000001]]></ToUserName>"
            f"<FromUserName><![CDATA[{openid}]]></FromUserName><CreateTime>{int(time.time())}</CreateTime>"
            f"<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content>"
            f"<MsgId>{msg_id}</MsgId></xml>")


async def _send(base: str, settings, senders: list[tuple[str, str]], total: int, concurrency: int,
                safe: bool) -> tuple[list[tuple[str, float]], int]:
    """Post ``total`` messages, ``concurrency`` at a time; (command, latency [s]) of each and how many
    came late."""
    import aiohttp
    from wechatpy.crypto import WeChatCrypto

    crypto = WeChatCrypto(settings.oa_token, settings.oa_aes_key, APPID) if safe else None
    msg_ids = itertools.count(7_000_000_000_000_000_000 + secrets.randbelow(10**15))
    work = iter(range(total))
    latencies: list[tuple[str, float]] = []
    late = 0

    async def one(session: aiohttp.ClientSession, n: int) -> None:
        nonlocal late
        openid, plant = senders[n % len(senders)]
        content = COMMANDS[(n // len(senders)) % len(COMMANDS)].format(plant=plant)
        xml = _text_message(openid, content, next(msg_ids))
        timestamp, nonce = str(int(time.time())), str(secrets.randbelow(10**10))
        query = {"timestamp": timestamp, "nonce": nonce,
                 "signature": hashlib.sha1("".join(sorted([settings.oa_token, timestamp, nonce])).encode()).hexdigest()}
        body = xml
        if crypto is not None:
            wrapped = crypto.encrypt_message(xml, nonce, timestamp)
            encrypt = wrapped.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
            query["encrypt_type"] = "aes"
            query["msg_signature"] = hashlib.sha1(
                "".join(sorted([settings.oa_token, timestamp, nonce, encrypt])).encode()).hexdigest()
            body = f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        started = time.perf_counter()
        async with session.post(base + "/wechat", params=query, data=body.encode()) as resp:
            text = await resp.text()
        latencies.append((content.split()[0] if " " not in content else content.split()[0] + " <plant>",
                          time.perf_counter() - started))
        if resp.status != 200 or "<xml>" not in text:
            raise RuntimeError(f"message {n} ({content}) was answered {resp.status}: {text[:200]}")
        if crypto is not None:
            text = crypto.decrypt_message(text, text.split("<MsgSignature><![CDATA[")[1].split("]]>")[0],
                                          text.split("<TimeStamp>")[1].split("</TimeStamp>")[0],
                                          text.split("<Nonce><![CDATA[")[1].split("]]>")[0])
        if "正在处理" in text:
            late += 1
        elif "出了问题" in text or "系统繁忙" in text:
            raise RuntimeError(f"message {n} ({content}) failed on the server: {text[:300]}")

    async def worker(session: aiohttp.ClientSession) -> None:
        for n in work:
            await one(session, n)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return latencies, late


_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
           + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 2 else "") + ";") * 10}">' for i in range(2, 10))
           + ']><xml><ToUserName>gh_x</ToUserName><FromUserName>{openid}</FromUserName><CreateTime>{now}</CreateTime>'
           '<MsgType>text</MsgType><Content>报修 &lol9;</Content><MsgId>{msg_id}</MsgId></xml>')
_XXE = ('<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xml>'
        '<ToUserName>gh_x</ToUserName><FromUserName>{openid}</FromUserName><CreateTime>{now}</CreateTime>'
        '<MsgType>text</MsgType><Content>报修 &xxe;</Content><MsgId>{msg_id}</MsgId></xml>')


async def _hostile(base: str, settings, senders: list[tuple[str, str]], rounds: int) -> dict[str, dict]:
    """Each kind of hostile request ``rounds`` times: the status it got and how long it took.

    The kinds are those the bot must refuse or answer harmlessly (issue "bot", DOMAIN.md "WeChat
    facts"): XML with entity declarations, an oversize body, a bad signature, a replayed message,
    a staff command from an owner, SQL and format strings as arguments. Returns per kind
    ``{"statuses", "p99_ms", "max_ms"}``.
    """
    import aiohttp

    from bot.protocol import MAX_BODY_BYTES

    msg_ids = itertools.count(8_000_000_000_000_000_000 + secrets.randbelow(10**15))

    def signed(timestamp: str | None = None) -> dict[str, str]:
        timestamp, nonce = timestamp or str(int(time.time())), str(secrets.randbelow(10**10))
        return {"timestamp": timestamp, "nonce": nonce,
                "signature": hashlib.sha1("".join(sorted([settings.oa_token, timestamp, nonce])).encode()).hexdigest()}

    def text(openid: str, content: str, msg_id: int | None = None) -> bytes:
        return _text_message(openid, content, msg_id or next(msg_ids)).encode()

    openid, plant = senders[0]
    replayed = next(msg_ids)
    kinds = {
        "billion_laughs": lambda: (signed(), _LAUGHS.format(openid=openid, now=int(time.time()),
                                                            msg_id=next(msg_ids)).encode()),
        "external_entity": lambda: (signed(), _XXE.format(openid=openid, now=int(time.time()),
                                                         msg_id=next(msg_ids)).encode()),
        "oversize_body": lambda: (signed(), text(openid, "报修 " + "长" * (MAX_BODY_BYTES // 3 + 1))),
        "bad_signature": lambda: ({**signed(), "signature": "0" * 40}, text(openid, "账单")),
        "stale_timestamp": lambda: (signed(str(int(time.time()) - 3600)), text(openid, "账单")),
        "replayed_message": lambda: (signed(), text(openid, "账单", replayed)),
        "staff_command_from_owner": lambda: (signed(), text(openid, f"收款 202610-{plant}-1 100 转账")),
        "sql_in_argument": lambda: (signed(), text(openid, "发电 '; DROP TABLE plant; --")),
        "format_string_in_argument": lambda: (signed(), text(openid, "发电 {0.__class__.__mro__}%s%n%x")),
    }
    out: dict[str, dict] = {}
    async with aiohttp.ClientSession() as session:
        for kind, build in kinds.items():
            seconds, statuses = [], {}
            for _ in range(rounds):
                query, body = build()
                started = time.perf_counter()
                async with session.post(base + "/wechat", params=query, data=body) as resp:
                    await resp.read()
                seconds.append(time.perf_counter() - started)
                statuses[resp.status] = statuses.get(resp.status, 0) + 1
            seconds.sort()
            out[kind] = {"statuses": statuses, "p99_ms": round(percentile(seconds, 0.99) * 1000, 2),
                         "max_ms": round(seconds[-1] * 1000, 2)}
    return out


async def _tables_intact(url: str) -> dict[str, int]:
    """Rows the hostile requests must not have changed (counted before and after)."""
    from settlement.infra import db
    from settlement import models as m

    await db.open_database(url)
    try:
        return {"plants": await m.Plant.all().count(), "payments": await m.Payment.all().count(),
                "faults": await m.FaultReport.all().count(), "audit": await m.AuditEvent.all().count()}
    finally:
        await db.close_database()


async def _baseline(base: str, total: int = 500) -> list[float]:
    """Latencies [s] of GET /healthz (one database query, one Redis ping): the floor of this
    machine at this moment, to judge the bot's figures against."""
    import aiohttp

    latencies = []
    async with aiohttp.ClientSession() as session:
        for _ in range(total):
            started = time.perf_counter()
            async with session.get(base + "/healthz") as resp:
                await resp.read()
            latencies.append(time.perf_counter() - started)
    return sorted(latencies)


def bench_bot(messages: int = 2000, owners: int = 50, concurrency: int = 1, safe: bool = False) -> dict:
    from webapp.settings import Settings, demo_settings

    base_settings = Settings.from_env(require_secrets=False)
    prefix = f"pvsettle-bench-bot:{uuid.uuid4().hex[:8]}:"
    redis_url = base_settings.redis_url
    try:
        with (blocking_bench_database(base_settings.database_url, prefix="pvsettle-bench-bot-") as bench,
              tempfile.TemporaryDirectory(prefix="pvsettle-bench-bot-") as tmp):
            senders = asyncio.run(_seed_database(bench.url, owners, redis_url, prefix))
            # every secret serve needs: the environment's, the rest generated like the demo does
            settings = demo_settings(var_dir=tmp)
            port = free_port()
            env = serve_environment(settings, {
                "database_url": bench.url, "redis_url": redis_url, "redis_prefix": prefix, "port": port,
                "host": "127.0.0.1", "scheduler_interval": 0, "log_level": "WARNING", "oa_appid": APPID,
                # the outbox dispatcher's polling is not what is measured here
                "dispatcher_interval": "0",
                # nothing here calls WeChat; a call would fail at once rather than reach the real one
                "wechat_api_base": f"http://127.0.0.1:{free_port()}"})
            server = start_serve(env, tmp)
            try:
                base = f"http://127.0.0.1:{port}"
                asyncio.run(wait_ready(base + "/healthz", alive=lambda: server.poll() is None))
                asyncio.run(_send(base, settings, senders, WARM_UP, concurrency, safe))
                latencies, late = asyncio.run(_send(base, settings, senders, messages, concurrency, safe))
                floor = asyncio.run(_baseline(base))
                before = asyncio.run(_tables_intact(bench.url))
                hostile = asyncio.run(_hostile(base, settings, senders, HOSTILE_ROUNDS))
                changed = asyncio.run(_tables_intact(bench.url)) != before
            finally:
                stop_process_group(server)
    finally:
        if redis_url:
            asyncio.run(clean_redis(redis_url, prefix))
    every = sorted(seconds for _, seconds in latencies)
    by_command: dict[str, list[float]] = {}
    for command, seconds in latencies:
        by_command.setdefault(command, []).append(seconds)
    return {"messages": len(every), "p50_ms": round(percentile(every, 0.50) * 1000, 2),
            "p99_ms": round(percentile(every, 0.99) * 1000, 2),
            "database": bench.kind, "redis": "redis" if redis_url else "emulated",
            "concurrency": concurrency, "mode": "safe" if safe else "plaintext", "late": late,
            "max_ms": round(every[-1] * 1000, 2),
            "p99_ms_by_command": {c: round(percentile(sorted(v), 0.99) * 1000, 2) for c, v in by_command.items()},
            "healthz_p50_ms": round(percentile(floor, 0.50) * 1000, 2),
            "healthz_p99_ms": round(percentile(floor, 0.99) * 1000, 2),
            "hostile": hostile, "hostile_max_ms": max(h["max_ms"] for h in hostile.values()),
            "hostile_changed_anything": changed}
