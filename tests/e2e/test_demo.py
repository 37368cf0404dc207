"""`pvsettle demo` as a newcomer runs it: nothing configured, everything made under ./var/."""

import os
import signal
import sqlite3
import time

import pytest

from tests.e2e.processes import ServerProcess, free_port

pytestmark = pytest.mark.slow


async def test_demo_starts_healthy_with_a_portfolio_and_restarts_on_the_same_data(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVSETTLE_")}
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
    database = tmp_path / "var" / "pvsettle.sqlite3"
    with sqlite3.connect(database) as conn:
        plants = conn.execute("SELECT count(*) FROM plant").fetchone()[0]
        readings = conn.execute("SELECT count(*) FROM reading").fetchone()[0]
        nearby = conn.execute("SELECT count(*) FROM nearby_consumption_terms").fetchone()[0]
        accounts = conn.execute("SELECT number, id FROM prepaid_account").fetchall()
        services = conn.execute("SELECT count(*) FROM prepaid_service").fetchone()[0]
    assert plants == 4 and readings > 0
    # something of each kind to look at: a nearby-consumption project, a prepaid account with a service
    assert nearby == 1 and len(accounts) == 1 and services == 1
    number, ident = accounts[0]
    assert f"prepaid account {number} (id {ident})" in server.output()

    again = ServerProcess(["demo", "--plants", "4"], env, tmp_path, port)
    try:
        await again.wait_healthy()
    finally:
        assert again.stop(signal.SIGINT) == 0, again.output()
    assert "seeding" not in again.output()  # the portfolio is kept, not made twice
    with sqlite3.connect(database) as conn:
        assert conn.execute("SELECT count(*) FROM plant").fetchone()[0] == 4
        assert conn.execute("SELECT count(*) FROM prepaid_account").fetchone()[0] == 1
