"""``pvsettle bench api``: an authenticated GET of a 20-item bill list under ``serve --workers 2``.

What is measured, in one run:

1. a database of the bench's own (a fresh database on the PostgreSQL server of
   ``PVSETTLE_DATABASE_URL``, or a temporary SQLite file) migrated and seeded: the owner under test
   with one plant and 20 bills, and 50 other owners with 10 bills each, so the list is filtered,
   not the whole table;
2. ``pvsettle serve --workers 2`` on it and on ``PVSETTLE_REDIS_URL`` (under a key prefix of the
   bench's own), the per-user rate limit raised out of the way (it is still counted in Redis on
   every request, as in production);
3. load from a separate process — ``wrk`` when it is installed, else a small aiohttp load
   generator (:func:`load`) — against ``GET /api/v1/bills?limit=20`` with the owner's session
   token, after a warm-up;
4. the same load against a bare aiohttp hello-world, also two processes on one port, so the
   figures can be judged against what this machine does with no work at all.

Prints ``{"rps", "p99_ms", "hello_rps", "workers": 2, "database", …}``. The machine is shared: a
single run is a sample, not a verdict.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

from server.bench.support import (blocking_bench_database, clean_redis, free_port, percentile, serve_environment,
                                  start_group, start_serve, stop_process_group, wait_ready)

WORKERS = 2
BILLS = 20
OTHER_OWNERS = 50
HELLO = """
import sys
from aiohttp import web
from multiprocessing import get_context

async def hello(request):
    return web.json_response({"hello": "world"})

def serve(port):
    app = web.Application()
    app.router.add_get("/", hello)
    web.run_app(app, host="127.0.0.1", port=port, reuse_port=True, print=None, access_log=None)

if __name__ == "__main__":
    port = int(sys.argv[1])
    procs = [get_context("fork").Process(target=serve, args=(port,)) for _ in range(int(sys.argv[2]))]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
"""


async def _seed(url: str) -> tuple[int, int]:
    """The owner under test's identity id and the number of bills they see."""
    import datetime as dt
    from decimal import Decimal

    from settlement import models as m

    local = dt.timezone(dt.timedelta(hours=8))
    identity_id = 0
    for n in range(OTHER_OWNERS + 1):
        owner = await m.Owner.create(name=f"业主{n}")
        plant = await m.Plant.create(code=f"BENCH-{n:04d}", name="屋顶", owner=owner, capacity_kwp=Decimal("100"))
        count = BILLS if n == 0 else 10
        for i in range(count):
            year, month = 2025 + i // 12, i % 12 + 1
            period = f"{year}-{month:02d}"
            ends = dt.datetime(year, month, 1, tzinfo=local)
            cycle = await m.ReadingCycle.create(plant=plant, period=period, starts_at=ends - dt.timedelta(days=30),
                                                ends_at=ends)
            form = await m.ConfirmationForm.create(cycle=cycle, state=m.FormState.CONFIRMED, lines=[], periods={},
                                                   generation_kwh=Decimal("1000"), self_use_kwh=Decimal("800"),
                                                   export_kwh=Decimal("200"), grid_kwh=Decimal("300"))
            bill = await m.Bill.create(number=f"{period}-{plant.code}", cycle=cycle, form=form, plant=plant,
                                       owner=owner, issued_at=ends + dt.timedelta(days=5),
                                       due_on=(ends + dt.timedelta(days=20)).date(), total_fen=40_000 + i,
                                       tax_fen=4_602)
            await m.BillLine.create(bill=bill, seq=1, kind=m.LineKind.ENERGY, description="自用电量",
                                    kwh=Decimal("800"), unit_price=Decimal("0.5"), amount_fen=40_000 + i)
        if n == 0:
            identity_id = (await m.WechatIdentity.create(app_id="wxbench", openid="o-bench", owner=owner)).id
    return identity_id, BILLS


async def _seed_database(url: str) -> int:
    """Connect to ``url``, seed it (:func:`_seed`) and disconnect: the owner under test's identity id."""
    from settlement.infra import db

    await db.open_database(url)
    try:
        identity_id, _ = await _seed(url)
    finally:
        await db.close_database()
    return identity_id


async def _session(redis_url: str, prefix: str, identity_id: int, secret_key: str) -> str:
    """A session as POST /session leaves it (WeChat is not what this bench measures)."""
    from settlement.infra.redis_client import Namespace, open_redis
    from settlement.owners.sessions import TokenClaims, session_key_name, sign_token

    client = open_redis(redis_url)
    await client.set(session_key_name(Namespace(prefix), "bench"), json.dumps({"identity_id": identity_id}),
                     ex=3600)
    await client.aclose()
    return sign_token(TokenClaims(identity_id, "bench", int(time.time()) + 3600), secret_key)


def _wrk(url: str, headers: dict[str, str], connections: int, seconds: int) -> dict:
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    value, unit = re.search(r"\s99%\s+([\d.]+)(us|ms|s)\b", out).groups()
    p99_ms = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*?timeout (\d+)", out)
    return {"rps": round(rps, 1), "p99_ms": round(p99_ms, 2), "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
            "timeouts": int(errors.group(1)) if errors else 0}


async def load(url: str, headers: dict[str, str], connections: int, seconds: float) -> dict:
    """Keep ``connections`` requests in flight for ``seconds``: throughput and latency percentiles."""
    import aiohttp

    latencies: list[float] = []
    failures = 0
    deadline = time.perf_counter() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal failures
        while (started := time.perf_counter()) < deadline:
            async with session.get(url, headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    failures += 1
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        begun = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(connections)))
        elapsed = time.perf_counter() - begun
    latencies.sort()
    p99 = percentile(latencies, 0.99) if latencies else float("nan")
    return {"rps": round(len(latencies) / elapsed, 1), "p99_ms": round(p99 * 1000, 2), "non_2xx": failures,
            "timeouts": 0}


def _measure(url: str, headers: dict[str, str], connections: int, seconds: int) -> dict:
    """Warm up, then measure, from a process of its own."""
    if shutil.which("wrk"):
        _wrk(url, headers, connections, 2)
        return {**_wrk(url, headers, connections, seconds), "load_generator": "wrk"}
    def generate(duration: int) -> dict:
        args = [sys.executable, "-m", "server.bench.api", "load", url, "--connections", str(connections),
                "--seconds", str(duration), "--headers", json.dumps(headers)]
        return json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)

    generate(2)
    return {**generate(seconds), "load_generator": "aiohttp"}


def bench_api(connections: int = 16, seconds: int = 10) -> dict:
    from webapp.settings import Settings, demo_settings

    base = Settings.from_env(require_secrets=False)
    if not base.redis_url:
        raise SystemExit("pvsettle bench api: PVSETTLE_REDIS_URL is needed (serve --workers 2 shares one Redis)")
    prefix = f"pvsettle-bench-api:{uuid.uuid4().hex[:8]}:"
    with (blocking_bench_database(base.database_url, prefix="pvsettle-bench-api-") as bench,
          tempfile.TemporaryDirectory(prefix="pvsettle-bench-api-") as tmp):
        identity_id = asyncio.run(_seed_database(bench.url))
        # every secret serve needs: the environment's, the rest generated like the demo does
        settings = demo_settings(var_dir=tmp)
        port, hello_port = free_port(), free_port()
        env = serve_environment(settings, {
            "database_url": bench.url, "redis_url": base.redis_url, "redis_prefix": prefix, "port": port,
            "host": "127.0.0.1", "scheduler_interval": 0, "log_level": "WARNING",
            "api_rate_limit": 10**9, "mp_appid": "wxbench"})
        token = asyncio.run(_session(base.redis_url, prefix, identity_id, settings.secret_key))
        server = start_serve(env, tmp, WORKERS)
        hello = start_group([sys.executable, "-c", HELLO, str(hello_port), str(WORKERS)])
        try:
            headers = {"Authorization": f"Bearer {token}"}
            api_url = f"http://127.0.0.1:{port}/api/v1/bills?limit={BILLS}"
            page = json.loads(asyncio.run(wait_ready(api_url, headers, alive=lambda: server.poll() is None)))
            if len(page["items"]) != BILLS:
                raise RuntimeError(f"the bill list has {len(page['items'])} items, not {BILLS}")
            asyncio.run(wait_ready(f"http://127.0.0.1:{hello_port}/", alive=lambda: hello.poll() is None))
            api = _measure(api_url, headers, connections, seconds)
            bare = _measure(f"http://127.0.0.1:{hello_port}/", {}, connections, seconds)
        finally:
            stop_process_group(server)
            stop_process_group(hello)
            asyncio.run(clean_redis(base.redis_url, prefix))
    return {"rps": api["rps"], "p99_ms": api["p99_ms"], "hello_rps": bare["rps"], "workers": WORKERS,
            "database": bench.kind, "hello_p99_ms": bare["p99_ms"],
            "non_2xx": api["non_2xx"] + api["timeouts"], "connections": connections, "seconds": seconds,
            "load_generator": api["load_generator"], "items": BILLS}


def register(bench_sub) -> None:
    """Add ``pvsettle bench api`` to the CLI's bench sub-commands."""
    parser = bench_sub.add_parser("api", help="mini-program API: authenticated 20-bill list under serve --workers 2")
    # 16 = 8 requests in flight per worker: on a small machine more only adds queueing, to both targets
    parser.add_argument("--connections", type=int, default=16, help="requests kept in flight")
    parser.add_argument("--seconds", type=int, default=10, help="measured seconds per target")
    parser.set_defaults(func=lambda args: print(json.dumps(bench_api(args.connections, args.seconds))) or 0)


def main(argv: list[str] | None = None) -> int:
    """``python -m server.bench.api load URL``: the fallback load generator, as its own process."""
    parser = argparse.ArgumentParser(prog="python -m server.bench.api")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("load")
    run.add_argument("url")
    run.add_argument("--connections", type=int, default=16)
    run.add_argument("--seconds", type=float, default=10)
    run.add_argument("--headers", default="{}")
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(load(args.url, json.loads(args.headers), args.connections, args.seconds))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
