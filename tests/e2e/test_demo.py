"""`pvsettle demo` as a newcomer runs it: nothing configured, everything made under ./var/; at a
terminal (a pseudo-terminal here) and with its output going to a file.

On the embedded default nothing of PVSETTLE_* is set, so the demo makes its SQLite file under
./var/ and emulates Redis in the process. A run on PostgreSQL and Redis (PVSETTLE_DATABASE_URL
and PVSETTLE_REDIS_URL set) gives the demo a database of its own on that server and its own key
prefix in that Redis (:func:`tests.e2e.processes.demo_environment`): the demo honours both, as
``pvsettle demo`` does for anyone who sets them, and ./var/ keeps only its generated secrets.
"""

import asyncio
import json
import os
import re
import signal
import sqlite3
import subprocess
import time

import aiohttp
import pytest

from server import scheduler
from tests.e2e.processes import ServerProcess, TerminalProcess, demo_environment, free_port

pytestmark = pytest.mark.slow

# a log line as logs.TextFormatter writes it: local time, level, logger, message
TEXT_LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) +[\w.]+: \S")
TICK_LINE = "pvsettle.scheduler: scheduler tick"


async def _portfolio(url: str) -> dict:
    """What the demo's database holds, read through the ORM (either backend)."""
    from settlement import models as m
    from settlement.infra import db as database

    await database.open_database(url)
    try:
        return {"plants": await m.Plant.all().count(), "readings": await m.Reading.all().count(),
                "nearby": await m.NearbyConsumptionTerms.all().count(),
                "accounts": await m.PrepaidAccount.all().values_list("number", "id"),
                "services": await m.PrepaidService.all().count()}
    finally:
        await database.close_database()


async def test_demo_starts_healthy_with_a_portfolio_and_restarts_on_the_same_data(tmp_path, database_factory,
                                                                                  redis_prefix):
    port = free_port()
    async with demo_environment(database_factory, redis_prefix, tmp_path / "var") as (env, url):
        del env["PVSETTLE_VAR_DIR"]  # the demo's own default: ./var/ under where it runs
        env["PVSETTLE_PORT"] = str(port)
        server = ServerProcess(["demo", "--plants", "4"], env, tmp_path, port)
        try:
            assert await server.wait_healthy() == {"status": "ok", "db": "ok", "redis": "ok"}
            # where a process hangs, as an operator asks it: the loop's tasks and the threads, and it goes on
            server.proc.send_signal(signal.SIGUSR1)
            for _ in range(40):
                if "asyncio task pvsettle-scheduler:" in server.output() and "most recent call first" in server.output():
                    break
                time.sleep(0.25)
            assert "asyncio task pvsettle-scheduler:" in server.output(), server.output()
            assert "most recent call first" in server.output(), server.output()  # faulthandler's threads
            assert await server.wait_healthy() == {"status": "ok", "db": "ok", "redis": "ok"}
        finally:
            assert server.stop(signal.SIGINT) == 0, server.output()
        assert f"pvsettle demo on http://127.0.0.1:{port}" in server.output()
        # off a terminal (its output goes to a file here) the log lines are JSON, for a log collector
        entries = [json.loads(line) for line in server.output().splitlines() if line.startswith("{")]
        assert {"logger": "pvsettle.server", "msg": "database connected"}.items() <= next(
            e for e in entries if e["msg"] == "database connected").items()
        assert not [line for line in server.output().splitlines() if TEXT_LOG_LINE.match(line)], server.output()
        embedded = "PVSETTLE_DATABASE_URL" not in env
        redis = env.get("PVSETTLE_REDIS_URL") or "in-process emulation"
        shown = "sqlite://var/pvsettle.sqlite3" if embedded else url
        assert f"database {shown}, Redis {redis};" in server.output(), server.output()
        assert (tmp_path / "var" / "demo-secrets.json").is_file()
        assert (tmp_path / "var" / "pvsettle.sqlite3").is_file() == embedded
        made = await _portfolio(url)
        assert made["plants"] == 4 and made["readings"] > 0
        # something of each kind to look at: a nearby-consumption project, a prepaid account with a service
        assert made["nearby"] == 1 and len(made["accounts"]) == 1 and made["services"] == 1
        number, ident = made["accounts"][0]
        assert f"prepaid account {number} (id {ident})" in server.output()

        again = ServerProcess(["demo", "--plants", "4"], env, tmp_path, port)
        try:
            await again.wait_healthy()
        finally:
            assert again.stop(signal.SIGINT) == 0, again.output()
        assert "seeding" not in again.output()  # the portfolio is kept, not made twice
        kept = await _portfolio(url)
        assert kept["plants"] == 4 and len(kept["accounts"]) == 1


def scheduler_passes(metrics: str) -> int:
    """Passes the scheduler has made: the runs of its last job (every pass runs each job once)."""
    last = scheduler.JOBS[-1].name
    return int(sum(float(v) for v in re.findall(
        rf'^pvsettle_scheduler_job_runs_total{{job="{last}",outcome="\w+"}} (\S+)$', metrics, re.M)))


async def test_demo_at_a_terminal_shows_a_banner_text_logs_and_no_line_per_idle_tick(tmp_path):
    """#21.3 as a newcomer sees it: ``pvsettle demo`` on a pseudo-terminal prints the banner (links,
    demo users, how to stop) and readable log lines; idle scheduler ticks (DEBUG) print nothing;
    Ctrl-C stops it cleanly."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVSETTLE_")}
    # a tick a second (the demo's 5 s by default): several idle ticks in a few seconds
    env.update(PVSETTLE_PORT=str(port), PVSETTLE_SCHEDULER_INTERVAL="1")
    server = TerminalProcess(["demo", "--plants", "4"], env, tmp_path, port)
    try:
        assert await server.wait_healthy() == {"status": "ok", "db": "ok", "redis": "ok"}
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 60
            while True:  # until at least two passes printed nothing (those that did something print a line)
                async with session.get(f"{server.base}/metrics") as resp:
                    passes = scheduler_passes(await resp.text())
                if passes - server.output().count(TICK_LINE) >= 2 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
        assert passes - server.output().count(TICK_LINE) >= 2, (passes, server.output())
        server.type(b"\x03")  # Ctrl-C
        stopping = time.monotonic()
        try:
            returncode = server.proc.wait(30)
        except subprocess.TimeoutExpired:
            returncode = None
        took = time.monotonic() - stopping
    finally:
        server.stop(signal.SIGKILL, timeout=5)  # only if Ctrl-C did not stop it
        server.close()
    output = server.output()
    assert returncode == 0 and took < 30, (returncode, took, output)
    assert "Traceback" not in output, output

    # the banner: where to go, who to be, how to stop
    base = f"http://127.0.0.1:{port}"
    for words in (f"pvsettle demo on {base}", f"{base}/sandbox/", f"{base}/healthz", f"{base}/metrics",
                  "阿明 (aming), 小红 (xiaohong), 老王 (laowang)", "运维小周 (operator), 财务老陈 (admin)",
                  "Stop it with Ctrl-C."):
        assert words in output, (words, output)
    # readable log lines, not JSON (the demo logs at INFO: no DEBUG line either)
    lines = output.splitlines()
    logged = [line for line in lines if TEXT_LOG_LINE.match(line)]
    assert any("pvsettle.server: database connected" in line for line in logged), output
    assert not [line for line in lines if line.lstrip().startswith("{")], output
    assert not [line for line in logged if " DEBUG " in line], output
    # the health and metrics polls above are not logged either (the access log is quiet at INFO)
    assert "/metrics" not in output.replace(f"{base}/metrics", ""), output
    # a tick prints a line only when it did something, which is just when it leaves an audit event
    with sqlite3.connect(tmp_path / "var" / "pvsettle.sqlite3") as conn:
        busy = conn.execute("SELECT count(*) FROM audit_event WHERE action = 'SchedulerTick'").fetchone()[0]
    ticks = [line for line in logged if TICK_LINE in line]
    assert len(ticks) == busy, (busy, output)
    # each says what it did: a count besides its duration
    assert all(re.search(r"\b\w+=[1-9]", re.sub(r"\bseconds=\S+", "", line)) for line in ticks), ticks
    assert passes - busy >= 2  # and at least two passes were idle
