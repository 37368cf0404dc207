"""Cycle runs as separate processes: killed part-way, racing each other, scheduled by two servers."""

import asyncio
import dataclasses
import datetime as dt
import json
import os
import signal
import subprocess

import aiohttp
import pytest

from settlement.infra import db as database
from settlement import models as m
from settlement.seeding import NoProgress, SeedSpec, seed_portfolio
from tests.conftest import REDIS_URL
from tests.e2e.processes import PVSETTLE, ServerProcess, free_port, settings_env
from settlement.clock import local_now

pytestmark = pytest.mark.slow
TODAY = dt.date(2026, 11, 22)
PERIOD = "2026-10"



async def _seeded(database_factory, plants: int, today: dt.date | None = TODAY) -> str:
    url = await database_factory.migrated()
    await database.open_database(url)
    try:
        await seed_portfolio(SeedSpec(plants=plants, months=2, seed=5, telemetry_days=0, today=today),
                             progress=NoProgress)
    finally:
        await database.close_database()
    return url


async def _forms_by_plant(url: str) -> dict[str, tuple]:
    await database.open_database(url)
    try:
        rows = await m.ConfirmationForm.filter(cycle__period=PERIOD).values_list(
            "cycle__plant__code", "version", "periods", "generation_kwh", "self_use_kwh", "flags")
        cycles = await m.ReadingCycle.filter(period=PERIOD).count()
    finally:
        await database.close_database()
    forms = {}
    for code, *rest in rows:
        assert code not in forms, f"two forms for {code}"
        forms[code] = tuple(rest)
    assert cycles == len(forms), "a cycle without its form: a batch was half written"
    return forms


def _env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVSETTLE_")}
    env["PVSETTLE_DATABASE_URL"] = url
    return env


def _run(url: str, *args: str) -> dict:
    proc = subprocess.run([PVSETTLE, "cycle", "run", "--period", PERIOD, "--yes", *args], env=_env(url),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


async def test_a_run_killed_part_way_is_completed_exactly_by_a_rerun(database_factory):
    plants = 240
    killed_url = await _seeded(database_factory, plants)
    clean_url = await _seeded(database_factory, plants)
    proc = subprocess.Popen([PVSETTLE, "cycle", "run", "--period", PERIOD, "--yes", "--batch-size", "8"],
                            env=_env(killed_url), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done_before_kill = 0
    for _ in range(600):
        await asyncio.sleep(0.05)
        await database.open_database(killed_url)
        try:
            done_before_kill = await m.ConfirmationForm.all().count()
        finally:
            await database.close_database()
        if done_before_kill >= 16 or proc.poll() is not None:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    partial = await _forms_by_plant(killed_url)  # whole batches only: every cycle has its form
    assert 0 < len(partial) < plants and len(partial) % 8 == 0

    rerun = _run(killed_url)
    assert rerun["forms_created"] == plants - len(partial)
    assert rerun["forms_existing"] == len(partial)
    _run(clean_url)
    assert await _forms_by_plant(killed_url) == await _forms_by_plant(clean_url)


async def test_two_runs_at_once_make_the_same_forms_as_one(database_factory):
    plants = 120
    raced_url = await _seeded(database_factory, plants)
    clean_url = await _seeded(database_factory, plants)
    command = [PVSETTLE, "cycle", "run", "--period", PERIOD, "--yes", "--batch-size", "10"]
    procs = [subprocess.Popen(command, env=_env(raced_url), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    assert sum(r["forms_created"] for r in results) == plants
    _run(clean_url)
    assert await _forms_by_plant(raced_url) == await _forms_by_plant(clean_url)


async def _job_runs(server: ServerProcess, job: str) -> int:
    """How often ``server`` has run the scheduler job ``job`` without a failure (its /metrics)."""
    async with aiohttp.ClientSession() as session, session.get(server.base + "/metrics") as resp:
        text = await resp.text()
    sample = f'pvsettle_scheduler_job_runs_total{{job="{job}",outcome="ok"}} '
    return next((int(float(line.removeprefix(sample))) for line in text.splitlines() if line.startswith(sample)), 0)


@pytest.mark.skipif(not REDIS_URL, reason="two processes share a lock only through a real Redis: "
                                          "the in-process emulation is per process (the PostgreSQL + Redis run covers this)")
async def test_two_servers_one_scheduler_at_a_time(settings, database_factory, tmp_path):
    plants = 30
    url = await _seeded(database_factory, plants, today=None)  # readings up to today's cut-offs
    servers = []
    try:
        for i in range(2):
            port = free_port()
            folder = tmp_path / f"s{i}"
            folder.mkdir()
            env = settings_env(dataclasses.replace(settings, database_url=url, port=port, scheduler_interval=1),
                               folder)
            servers.append(ServerProcess(["serve"], env, folder, port))
        for server in servers:
            await server.wait_healthy()
        cycle_runs: list[int] = []
        for _ in range(240):
            await asyncio.sleep(0.25)
            cycle_runs = [await _job_runs(server, "cycles") for server in servers]
            await database.open_database(url)
            try:
                forms = await m.ConfirmationForm.all().count()
            finally:
                await database.close_database()
            if sum(cycle_runs) >= 6 and forms >= plants:
                break
        await database.open_database(url)
        try:
            ticks = await m.AuditEvent.filter(action="SchedulerTick").order_by("id")  # passes that did something
        finally:
            await database.close_database()
    finally:
        for server in servers:
            assert server.stop() == 0, server.output()
    assert forms == plants  # each plant's latest cycle, once
    assert sum(cycle_runs) >= 6  # the servers took turns at the job, each run under its lock
    spans: dict[str, list[tuple[dt.datetime, dt.datetime]]] = {}
    for tick in ticks:
        for job, span in tick.after["jobs"].items():
            spans.setdefault(job, []).append(
                (dt.datetime.fromisoformat(span["started"]), dt.datetime.fromisoformat(span["finished"])))
    assert "cycles" in spans
    for job, runs in spans.items():
        runs.sort()
        for (_, finished), (started, _) in zip(runs, runs[1:]):
            assert finished <= started, f"two runs of the scheduler job {job} overlapped"
    await database.open_database(url)
    try:
        assert await m.AuditEvent.filter(action="CreateForm").count() == plants
    finally:
        await database.close_database()


def _months_before(today: dt.date, months: int) -> str:
    index = today.year * 12 + today.month - 1 - months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


async def test_cycle_run_says_which_dates_a_period_covers_and_wants_yes_for_an_old_one(database_factory):
    
    url = await _seeded(database_factory, 6)
    await database.open_database(url)
    try:
        days = sorted(set(await m.Plant.all().values_list("reading_day", flat=True)))
    finally:
        await database.close_database()
    today = local_now().date()
    old = _months_before(today, 3)
    proc = subprocess.run([PVSETTLE, "cycle", "run", "--period", old], env=_env(url), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2 and proc.stdout == "" and "Traceback" not in proc.stderr
    assert "more than a month ago" in proc.stderr and "--yes" in proc.stderr
    year, month = (int(x) for x in old.split("-"))
    before = dt.date(year, month, 1) - dt.timedelta(days=1)
    for day in days:  # e.g. period 2026-09 of plants read on the 1st: 2026-08-01 to 2026-09-01
        assert (f"plants read on day {day} " in proc.stderr
                and f"from {before.replace(day=day)} 00:00 to {dt.date(year, month, day)} 00:00" in proc.stderr)
    await database.open_database(url)
    try:
        assert await m.ConfirmationForm.all().count() == 0  # refused: nothing made
    finally:
        await database.close_database()

    proc = subprocess.run([PVSETTLE, "cycle", "run", "--period", old, "--yes"], env=_env(url), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    assert [c["reading_day"] for c in printed["covers"]] == days
    assert sum(c["plants"] for c in printed["covers"]) == printed["plants"] == 6
    assert printed["covers"][0]["to"] == dt.date(year, month, days[0]).isoformat()

    # this month's period is not old: no --yes needed
    recent = _months_before(today, 0)
    proc = subprocess.run([PVSETTLE, "cycle", "run", "--period", recent], env=_env(url), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["period"] == recent
