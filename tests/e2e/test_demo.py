"""`pvsettle demo` as a newcomer runs it: nothing configured, everything made under ./var/.

On the embedded default nothing of PVSETTLE_* is set, so the demo makes its SQLite file under
./var/ and emulates Redis in the process. A run on PostgreSQL and Redis (PVSETTLE_DATABASE_URL
and PVSETTLE_REDIS_URL set) gives the demo a database of its own on that server and its own key
prefix in that Redis (:func:`tests.e2e.processes.demo_environment`): the demo honours both, as
``pvsettle demo`` does for anyone who sets them, and ./var/ keeps only its generated secrets.
"""

import signal
import time

import pytest

from tests.e2e.processes import ServerProcess, demo_environment, free_port

pytestmark = pytest.mark.slow


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
