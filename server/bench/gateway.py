"""``pvsettle bench gateway``: one gateway process polling simulated meters and inverters, posting
to one server process, and the delay from a device's change to the owner's live view.

Four processes: the server (``pvsettle serve`` on a database of the bench's own and on
``PVSETTLE_REDIS_URL``, which the owner's live view needs), the simulators (``pvsettle gateway
simulate``: ``--meters`` DL/T 645 meters on buses of ``--per-bus`` behind one TCP port each, and
``--inverters`` SunSpec inverters in marker mode, their power telling when it was set), the
gateway (``pvsettle gateway run``), and this one, which watches the live view.

1. **Saturated**: every meter due every second — more than one gateway can poll — for
   ``--seconds``: ``meters_per_s`` is the meter polls it answered in full per second of its run
   (13 DL/T 645 requests each: 10 registers, power, date, time; judged, queued in SQLite, posted),
   ``saturated_cpu_share`` the CPU it used meanwhile (of one core), and
   ``saturated_cpu_share_others`` the simulators' and the server's (which of them ran out first).
2. **Target**: every meter every ``--target-interval-s`` (60: the issue's 1,000 meters read once a
   minute) and the inverters every 5 s, for ``--target-seconds``: ``target_cpu_share`` the CPU
   share used at that load. Meanwhile this process holds the owner's live view (``GET
   /api/v1/plants/{id}/live``, the Server-Sent Events the mini-program shows) of ``--watch``
   plants, each with one inverter; every state that shows a new power tells, by its value, the
   step that set it, so ``live_p99_s`` is the 99th percentile of (seen − set) [s]: the wait for
   the next poll (up to 5 s), queue, POST, ingest, Redis, stream.

The reference in the same run (the machine is shared): ``reference_reads_per_s``, the rate at
which this process alone reads one register of one simulated meter through the ``dlt645``
library's client, no gateway around it. ``x_reference`` = ``meters_per_s`` × 13 / that: the share
of the library's own rate the gateway keeps while it also judges, queues and posts.
``x_target`` = ``meters_per_s`` / (``--meters`` / ``--target-interval-s``): how many times the
polling the target needs one gateway can do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

from server import logs
from server.bench.support import (
    bench_database,
    clean_redis,
    free_port,
    percentile,
    serve_environment,
    start_serve,
    stop_process_group,
    wait_ready,
)

REQUESTS_PER_POLL = 13
#: Inverters are polled this often at the target load [s]; their marker power changes every
#: MARKER_STEP_S, longer, so that every change is caught by a poll and its delay includes the wait
#: for that poll (a change overwritten before any poll saw it would measure nothing).
INVERTER_INTERVAL_S = 5.0
MARKER_STEP_S = 2 * INVERTER_INTERVAL_S


def register(bench_subparsers: argparse._SubParsersAction) -> None:
    bench = bench_subparsers.add_parser("gateway", help="one gateway process: meters polled per second, CPU share, "
                                                        "device change to live view p99")
    bench.add_argument("--meters", type=int, default=1_000)
    bench.add_argument("--per-bus", type=int, default=20, help="meters behind one simulated DTU port")
    bench.add_argument("--inverters", type=int, default=20)
    bench.add_argument("--seconds", type=float, default=20.0, help="the saturated run [s]")
    bench.add_argument("--target-interval-s", type=float, default=60.0, help="each meter read this often [s]")
    bench.add_argument("--target-seconds", type=float, default=60.0, help="the run at the target load [s]")
    bench.add_argument("--watch", type=int, default=5, help="plants whose live view is watched")
    bench.set_defaults(func=cmd_bench_gateway)


def cmd_bench_gateway(args: argparse.Namespace) -> int:
    from webapp.settings import Settings

    settings = Settings.from_env(require_secrets=False)
    if not settings.redis_url:
        raise SystemExit("pvsettle bench gateway: PVSETTLE_REDIS_URL is needed (the owner's live view is served "
                         "from Redis, which this process must share with the server)")
    if args.meters < 1 or args.per_bus < 1 or not 1 <= args.watch <= args.inverters:
        raise SystemExit("pvsettle bench gateway: --meters and --per-bus must be positive, --watch from 1 to --inverters")
    logs.configure("WARNING", json_lines=False)
    print(json.dumps(asyncio.run(bench_gateway(settings, args))))
    return 0


async def _prepare(url: str, meters: int, inverters: int, key: str) -> list[int]:
    """Plants, meters and inverters named as the simulators name them, an owner who sees them, and
    the gateway's collector; the ids of the inverters' plants (one inverter each)."""
    import datetime as dt

    from gateway.config import FORM_REGISTERS
    from settlement import models as m
    from settlement.infra import db
    from settlement.readings.ingest import add_collector

    await db.open_database(url)
    try:
        owner = await m.Owner.create(name="bench")
        await m.WechatIdentity.create(app_id="wxbench", openid="o-bench", owner=owner)
        plants = [m.Plant(code=f"GWB-{i:05d}", name=f"gateway bench {i}", owner=owner, capacity_kwp=Decimal("50"),
                          latitude=Decimal("31.23"), longitude=Decimal("121.47")) for i in range(meters + inverters)]
        await m.Plant.bulk_create(plants, batch_size=1000)
        ids = dict(await m.Plant.filter(owner=owner).values_list("code", "id"))
        await m.Meter.bulk_create([m.Meter(plant_id=ids[f"GWB-{i:05d}"], serial=f"SIM-M-{i:05d}",
                                           kind=m.MeterKind.GENERATION, registers=list(FORM_REGISTERS),
                                           installed_on=dt.date(2026, 1, 1)) for i in range(meters)], batch_size=1000)
        await m.TelemetryDevice.bulk_create([m.TelemetryDevice(plant_id=ids[f"GWB-{meters + i:05d}"],
                                                               serial=f"SIM-INV-{i:05d}", rated_power_w=20_000)
                                             for i in range(inverters)], batch_size=1000)
        await add_collector("bench-gateway", key)
        return [ids[f"GWB-{meters + i:05d}"] for i in range(inverters)]
    finally:
        await db.close_database()


async def _reference_reads_per_s(seconds: float = 2.0) -> float:
    """One register of one simulated meter read in a loop by the dlt645 library's client alone."""
    from dlt645.aio import AsyncMeterClientService

    from sandbox.field_devices import MeterBusSimulator, SimMeter

    bus = await MeterBusSimulator([SimMeter("000000000001")]).start()
    client = AsyncMeterClientService.new_tcp_client("127.0.0.1", bus.port, timeout=2.0)
    client.address = bytearray(bytes.fromhex("010000000000"))  # the address as the frame carries it
    try:
        await client.connect()
        reads, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            if await client.read_00(0x00010000) is None:
                raise RuntimeError("the reference read failed")
            reads += 1
        return reads / (time.perf_counter() - start)
    finally:
        await client.disconnect()
        await bus.stop()


def _cpu_s(pid: int) -> float:
    """CPU time of process ``pid`` so far [s] (Linux /proc; 0 elsewhere): who else was busy."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start_simulators(args: argparse.Namespace, base: str, cwd: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "gateway", "simulate", "--meters", str(args.meters),
                             "--inverters", str(args.inverters), "--per-bus", str(args.per_bus), "--server", base,
                             "--step-s", str(MARKER_STEP_S), "--marker"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=cwd,
                            start_new_session=True)
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == "# ready":
            return proc, "".join(lines)
        lines.append(line)
    raise RuntimeError(f"the simulators exited ({proc.wait()}) before they were ready")


def _run_gateway(config: str, tmp: str, name: str, meter_interval: float, inverter_interval: float,
                 seconds: float, key_file: str) -> dict:
    """One ``pvsettle gateway run`` on ``config`` with these intervals for ``seconds``; its summary."""
    lines = []
    kind = None
    for line in config.splitlines():
        if line in ("[[meter]]", "[[inverter]]"):
            kind = line
        if line.startswith("interval_s = "):
            line = f"interval_s = {meter_interval if kind == '[[meter]]' else inverter_interval}"
        if line.startswith("queue = "):
            line = f'queue = "{Path(tmp) / (name + ".sqlite3")}"\nkey_file = "{key_file}"'
        lines.append(line)
    path = Path(tmp) / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "gateway", "run", "--config", str(path),
                             "--log-level", "ERROR"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            cwd=tmp, start_new_session=True)
    assert proc.stdout is not None
    started = proc.stdout.readline()
    if '"running"' not in started:
        raise RuntimeError(f"the gateway did not start: {started!r} (exit {proc.wait()})")
    time.sleep(seconds)
    os.killpg(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    summary = json.loads(out.strip().splitlines()[-1])
    if proc.returncode != 0 or summary.get("gateway") != "stopped":
        raise RuntimeError(f"the gateway stopped badly: {out[-500:]!r}")
    return summary


async def _watch_live(base: str, token: str, plant_ids: list[int], stop: asyncio.Event) -> list[float]:
    """The owner's live view of ``plant_ids``: for each new power shown, seen − set [s]."""
    import aiohttp

    delays: list[float] = []

    async def one(session: aiohttp.ClientSession, plant_id: int) -> None:
        last = None
        async with session.get(f"{base}/api/v1/plants/{plant_id}/live",
                               headers={"Authorization": f"Bearer {token}"}) as resp:
            if resp.status != 200:
                raise RuntimeError(f"the live view answered {resp.status}: {(await resp.text())[:200]}")
            async for raw in resp.content:
                line = raw.decode().strip()
                if not line.startswith("data: "):
                    continue
                seen = time.time()
                power = json.loads(line[6:]).get("power_w")
                if power is None or power == last or last is None:
                    last = power if last is None else last
                    continue
                last = power
                # the latest step before now whose number ends in power - 1 (mod 4000)
                step = int(seen // MARKER_STEP_S)
                step -= (step - (power - 1)) % 4000
                delays.append(seen - step * MARKER_STEP_S)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
        tasks = [asyncio.create_task(one(session, p)) for p in plant_ids]
        await stop.wait()
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            raise result
    return delays


async def bench_gateway(settings, args: argparse.Namespace) -> dict:
    """Run the two phases; returns the figures the command prints."""
    from server.bench.api import _session
    from webapp.settings import demo_settings

    key = secrets.token_urlsafe(32)
    reference = await _reference_reads_per_s()
    prefix = f"pvsettle-bench-gateway:{uuid.uuid4().hex[:8]}:"
    async with bench_database(settings.database_url, prefix="pvsettle-bench-gateway-") as bench:
        plant_ids = await _prepare(bench.url, args.meters, args.inverters, key)
        with tempfile.TemporaryDirectory(prefix="pvsettle-bench-gateway-") as tmp:
            key_file = Path(tmp) / "gateway.key"
            key_file.write_text(key)
            server_settings = demo_settings(var_dir=tmp)
            port = free_port()
            env = serve_environment(server_settings, {
                "database_url": bench.url, "redis_url": settings.redis_url, "redis_prefix": prefix, "port": port,
                "host": "127.0.0.1", "scheduler_interval": 0, "log_level": "ERROR", "api_rate_limit": 10**9,
                "mp_appid": "wxbench"})
            base = f"http://127.0.0.1:{port}"
            server = start_serve(env, tmp)
            simulators = None
            try:
                await wait_ready(f"{base}/healthz", alive=lambda: server.poll() is None)
                simulators, config = _start_simulators(args, base, tmp)
                loop = asyncio.get_running_loop()
                before = (_cpu_s(simulators.pid), _cpu_s(server.pid), time.monotonic())
                saturated = await loop.run_in_executor(None, _run_gateway, config, tmp, "saturated", 1.0,
                                                       INVERTER_INTERVAL_S,
                                                       args.seconds, str(key_file))
                wall = time.monotonic() - before[2]
                others = {"simulators": round((_cpu_s(simulators.pid) - before[0]) / wall, 3),
                          "server": round((_cpu_s(server.pid) - before[1]) / wall, 3)}
                token = await _session(settings.redis_url, prefix, await _identity(bench.url), server_settings.secret_key)
                stop = asyncio.Event()
                watcher = asyncio.create_task(_watch_live(base, token, plant_ids[:args.watch], stop))
                target = await loop.run_in_executor(None, _run_gateway, config, tmp, "target", args.target_interval_s,
                                                    INVERTER_INTERVAL_S, args.target_seconds, str(key_file))
                stop.set()
                delays = sorted(await watcher)
            finally:
                if simulators is not None:
                    stop_process_group(simulators)
                stop_process_group(server)
                await clean_redis(settings.redis_url, prefix)
    meters_per_s = saturated["meter_polls"] / saturated["wall_s"]
    goal = args.meters / args.target_interval_s
    return {
        "meters": args.meters, "inverters": args.inverters, "buses": -(-args.meters // args.per_bus),
        "meters_per_s": round(meters_per_s, 1),
        "saturated_cpu_share": round(saturated["cpu_s"] / saturated["wall_s"], 3),
        "saturated_cpu_share_others": others, "cpus": os.cpu_count(),
        "target_meters_per_s": round(goal, 2), "x_target": round(meters_per_s / goal, 2),
        "target_cpu_share": round(target["cpu_s"] / target["wall_s"], 3),
        "target_meter_polls": target["meter_polls"], "target_faults": target["faults"],
        "reference_reads_per_s": round(reference), "x_reference": round(meters_per_s * REQUESTS_PER_POLL / reference, 3),
        "inverter_interval_s": INVERTER_INTERVAL_S, "live_changes_seen": len(delays),
        "live_p50_s": round(percentile(delays, 0.5), 2) if delays else None,
        "live_p99_s": round(percentile(delays, 0.99), 2) if delays else None,
        "rows_refused": {k: saturated["rows_refused"][k] + target["rows_refused"][k] for k in saturated["rows_refused"]},
        "database": bench.kind,
    }


async def _identity(url: str) -> int:
    from settlement import models as m
    from settlement.infra import db

    await db.open_database(url)
    try:
        return (await m.WechatIdentity.get(openid="o-bench")).id
    finally:
        await db.close_database()
