"""``pvsettle bench ingest``: telemetry through the HTTP batch path, one server process.

A fresh database (a new one on the PostgreSQL server of ``PVSETTLE_DATABASE_URL``, else a
temporary SQLite file) gets ``--plants`` plants with one inverter each and a collector. One
``pvsettle`` server process is started on it (and on ``PVSETTLE_REDIS_URL``, else its in-process
emulation) and this process posts ``--batches`` batches of ``--batch-size`` samples to
``POST /ingest/v1/telemetry``: each batch is every plant's next few 5-minute samples (lifetime
counter, power), so each one appends to every plant's series, recomputes its rollups and
publishes its live state, as a data-logger gateway's upload does. With ``--collectors C`` the
plants are split between C gateways that post at the same time (each one batch after another);
by default four, as a server takes uploads from many gateways at once (``--collectors 1`` shows
what one gateway posting alone gets: it waits for each answer before its next batch). The bodies are encoded before the clock starts; each gateway's first
batch (every series' first sample) is a warm-up and not counted.

Prints ``{"samples", "samples_per_s", "p99_batch_ms", "database", "collectors"}``: samples posted after the
warm-up, samples per second of wall time over those batches, the 99th percentile of one batch's
request time [ms], and ``postgres`` or ``sqlite``. The database is dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import multiprocessing
import secrets
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

import numpy as np

from server import logs
from server.bench.support import bench_database, clean_redis, free_port, wait_ready
from webapp.settings import Settings
from settlement.clock import local_now

SLOT = dt.timedelta(minutes=5)


def register(bench_subparsers: argparse._SubParsersAction) -> None:
    """Add ``ingest`` to the ``pvsettle bench`` sub-commands."""
    ingest = bench_subparsers.add_parser("ingest", help="telemetry through POST /ingest/v1/telemetry into the database")
    ingest.add_argument("--plants", type=int, default=1_000, help="plants, one inverter each")
    ingest.add_argument("--batches", type=int, default=30, help="batches timed (after one warm-up batch)")
    ingest.add_argument("--batch-size", type=int, default=10_000,
                        help="samples per batch (a multiple of the plants per collector)")
    # a server takes uploads from many data-logger gateways at once: one posting alone measures
    # its round trips more than the server (it waits for each answer before the next batch)
    ingest.add_argument("--collectors", type=int, default=4,
                        help="gateways posting at the same time, each with its share of the plants")
    ingest.set_defaults(func=cmd_bench_ingest)


def cmd_bench_ingest(args: argparse.Namespace) -> int:
    settings = Settings.from_env(require_secrets=False)
    logs.configure("WARNING", json_lines=False)
    collectors = args.collectors
    if (args.plants < 1 or args.batches < 1 or collectors < 1 or args.plants % collectors
            or args.batch_size < args.plants // collectors or args.batch_size % (args.plants // collectors)):
        raise SystemExit("pvsettle bench ingest: --plants must split evenly between --collectors, and "
                         "--batch-size be a positive multiple of the plants per collector")
    print(json.dumps(asyncio.run(bench_ingest(settings, args.plants, args.batches, args.batch_size, collectors))))
    return 0


def bodies(plants: range, batches: int, batch_size: int, end: dt.datetime | None = None) -> list[bytes]:
    """A gateway's request bodies: batch b holds each of its plants' samples of the next
    ``batch_size / len(plants)`` slots.

    The last slot is ``end`` (default: now, on the 5-minute grid), so the plants' live state is
    published as it would be for a gateway uploading as it goes.
    """
    per_device = batch_size // len(plants)
    end = end or local_now()
    end = end.replace(minute=end.minute - end.minute % 5, second=0, microsecond=0)
    start = end - (batches * per_device - 1) * SLOT
    serials = [f"BENCH-INV-{i:06d}" for i in plants]
    rng = np.random.default_rng(7 + plants.start)
    capacity_w = rng.uniform(5_000, 50_000, len(plants))
    counter = rng.integers(1_000_000, 100_000_000, len(plants)).astype(np.int64)
    out = []
    slot = 0
    for _ in range(batches):
        rows = []
        for _ in range(per_device):
            when = start + slot * SLOT
            hour = when.hour + when.minute / 60
            sun = max(0.0, np.sin(np.pi * (hour - 6) / 12))  # a clear day from 06:00 to 18:00
            power = np.rint(capacity_w * 0.8 * sun).astype(np.int64)
            counter = counter + np.rint(power / 12).astype(np.int64)  # Wh over 5 minutes
            stamp = when.isoformat()
            rows += [{"device": s, "ts": stamp, "power_w": int(p), "energy_wh": int(e), "status": "ok"}
                     for s, p, e in zip(serials, power, counter)]
            slot += 1
        out.append(json.dumps({"samples": rows}).encode())
    return out


async def _prepare(url: str, plants: int, key: str) -> None:
    from settlement.infra import db
    from settlement import models as m
    from settlement.readings.ingest import add_collector

    await db.open_database(url)
    try:
        owner = await m.Owner.create(name="bench")
        await m.Plant.bulk_create([m.Plant(code=f"BENCH-{i:06d}", name=f"bench {i}", owner=owner,
                                           capacity_kwp=Decimal("50.000"), latitude=Decimal("31.23"),
                                           longitude=Decimal("121.47")) for i in range(plants)], batch_size=1000)
        ids = dict(await m.Plant.filter(owner=owner).values_list("code", "id"))
        await m.TelemetryDevice.bulk_create([m.TelemetryDevice(plant_id=ids[f"BENCH-{i:06d}"],
                                                               serial=f"BENCH-INV-{i:06d}", rated_power_w=50_000)
                                             for i in range(plants)], batch_size=1000)
        await add_collector("bench-gateway", key)
    finally:
        await db.close_database()


def _serve(settings: Settings) -> None:
    """The server process: what ``pvsettle serve`` runs, on the bench's settings."""
    from aiohttp import web

    from server import loop
    from server.app import create_app

    logs.configure("WARNING")
    web.run_app(create_app(settings), host=settings.host, port=settings.port, print=None, access_log=None,
                loop=loop.new_event_loop())


async def bench_ingest(settings: Settings, plants: int, batches: int, batch_size: int, collectors: int = 1) -> dict:
    """Post the batches to one server process; returns the figures the command prints."""
    key = secrets.token_urlsafe(32)
    share = plants // collectors
    payloads = [bodies(range(c * share, (c + 1) * share), batches + 1, batch_size) for c in range(collectors)]
    async with bench_database(settings.database_url, prefix="pvsettle-bench-ingest-") as bench:
        await _prepare(bench.url, plants, key)
        with tempfile.TemporaryDirectory(prefix="pvsettle-bench-ingest-") as tmp:
            server_settings = Settings(
                database_url=bench.url, redis_url=settings.redis_url,
                redis_prefix=f"pvsettle-bench:{uuid.uuid4().hex[:8]}:", host="127.0.0.1", port=free_port(),
                log_level="WARNING", scheduler_interval=0, var_dir=str(Path(tmp) / "var"),
                secret_key=secrets.token_urlsafe(32))
            process = multiprocessing.get_context("spawn").Process(target=_serve, args=(server_settings,),
                                                                   name="pvsettle-bench-server")
            process.start()
            try:
                base = f"http://127.0.0.1:{server_settings.port}"
                await wait_ready(f"{base}/healthz", alive=process.is_alive)
                latencies, seconds = await _post_all(base, key, payloads)
            finally:
                process.terminate()
                process.join(30)
                if settings.redis_url:
                    await clean_redis(settings.redis_url, server_settings.redis_prefix)
    samples = batch_size * len(latencies)
    return {"samples": samples, "samples_per_s": round(samples / seconds),
            "p99_batch_ms": round(float(np.percentile(np.array(latencies) * 1000, 99)), 1),
            "database": bench.kind, "collectors": collectors}


async def _post_all(base: str, key: str, payloads: list[list[bytes]]) -> tuple[list[float], float]:
    """Each gateway's warm-up batch, then all gateways at once: (timed batch latencies [s], wall time [s])."""
    import aiohttp

    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        async def post(body: bytes) -> float:
            started = time.perf_counter()
            async with session.post(f"{base}/ingest/v1/telemetry", data=body, headers=headers) as resp:
                answer = await resp.json()
            took = time.perf_counter() - started
            if resp.status != 200 or answer.get("created", 0) + answer.get("updated", 0) == 0 or answer.get("rejected"):
                raise RuntimeError(f"the bench batch was not taken: {resp.status} {str(answer)[:300]}")
            return took

        async def gateway(own: list[bytes]) -> list[float]:
            return [await post(body) for body in own]

        for own in payloads:
            await post(own[0])
        clock = time.perf_counter()
        latencies = await asyncio.gather(*(gateway(own[1:]) for own in payloads))
        seconds = time.perf_counter() - clock
    return [x for own in latencies for x in own], seconds
