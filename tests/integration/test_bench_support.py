"""``server.bench.support``: a bench's own database is migrated, then gone afterwards even when the
bench fails; its server process group is stopped; its percentile is a measured value."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from server.bench import support as bench_support
from server.bench.support import BenchDatabase, bench_database, blocking_bench_database, percentile
from tests.conftest import DATABASE_URL, ON_POSTGRES


def _database_url(tmp_path: Path) -> str:
    return DATABASE_URL if ON_POSTGRES else f"sqlite://{tmp_path}/real.sqlite3"


async def _exists(bench: BenchDatabase) -> bool:
    if not bench.on_postgres:
        return Path(bench.url.removeprefix("sqlite://")).exists()
    import asyncpg

    parts = urlsplit(DATABASE_URL)
    conn = await asyncpg.connect(host=parts.hostname, port=parts.port or 5432, user=parts.username,
                                 password=parts.password, database="postgres")
    try:
        return await conn.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1",
                                   urlsplit(bench.url).path.lstrip("/")) == 1
    finally:
        await conn.close()


async def test_bench_database_is_migrated_and_removed_on_exit(tmp_path):
    from settlement import models as m

    async with bench_database(_database_url(tmp_path), prefix="pvsettle-bench-test-", connect=True) as bench:
        assert bench.kind == ("postgres" if ON_POSTGRES else "sqlite")
        assert bench.url != _database_url(tmp_path)  # never the configured database itself
        if ON_POSTGRES:
            assert urlsplit(bench.url).path.startswith("/pvsettle_bench_")
        await m.Owner.create(name="业主")
        assert await m.Owner.all().count() == 1  # the migrated schema, connected
        assert await _exists(bench)
    assert not await _exists(bench)
    if not ON_POSTGRES:
        assert not Path(bench.url.removeprefix("sqlite://")).parent.exists()
        assert not (tmp_path / "real.sqlite3").exists()


async def test_bench_database_is_removed_when_the_bench_fails(tmp_path):
    with pytest.raises(RuntimeError, match="the bench failed"):
        async with bench_database(_database_url(tmp_path), prefix="pvsettle-bench-test-") as bench:
            assert await _exists(bench)
            raise RuntimeError("the bench failed")
    assert not await _exists(bench)


async def test_bench_database_is_removed_when_the_migration_fails(tmp_path, monkeypatch):
    from settlement.infra import db

    made: list[BenchDatabase] = []
    create = bench_support.create_bench_database

    async def broken_migrate(url: str, progress=None) -> None:
        made.append(BenchDatabase(url, urlsplit(url).scheme == "postgres"))
        raise RuntimeError("migration failed")

    monkeypatch.setattr(db, "migrate", broken_migrate)
    with pytest.raises(RuntimeError, match="migration failed"):
        await create(_database_url(tmp_path), prefix="pvsettle-bench-test-")
    assert len(made) == 1
    if ON_POSTGRES:
        assert not await _exists(made[0])
    else:
        assert not Path(made[0].url.removeprefix("sqlite://")).parent.exists()


def test_blocking_bench_database_outlives_event_loops_and_is_removed(tmp_path):
    async def add_owner(url: str) -> int:
        from settlement.infra import db
        from settlement import models as m

        await db.open_database(url)
        try:
            await m.Owner.create(name="业主")
            return await m.Owner.all().count()
        finally:
            await db.close_database()

    with pytest.raises(KeyboardInterrupt):
        with blocking_bench_database(_database_url(tmp_path), prefix="pvsettle-bench-test-") as bench:
            assert asyncio.run(add_owner(bench.url)) == 1
            assert asyncio.run(add_owner(bench.url)) == 2  # the same database, from another event loop
            raise KeyboardInterrupt  # an operator's Ctrl-C still removes it
    assert not asyncio.run(_exists(bench))


def test_stop_process_group_stops_the_children_too():
    # like serve --workers N: a parent with a child in its process group, which must not outlive it
    script = ("import subprocess, sys, time\n"
              "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
              "time.sleep(600)\n")
    proc = bench_support.start_group([sys.executable, "-c", script])
    time.sleep(0.5)
    children = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert len(children) == 2
    bench_support.stop_process_group(proc)
    assert proc.returncode is not None
    deadline = time.monotonic() + 5
    while subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, "a process of the group outlived stop_process_group"
        time.sleep(0.05)


async def test_wait_ready_gives_up_when_the_server_exits():
    port = bench_support.free_port()
    with pytest.raises(RuntimeError, match="exited before it answered"):
        await bench_support.wait_ready(f"http://127.0.0.1:{port}/healthz", alive=lambda: False)
    with pytest.raises(RuntimeError, match="did not answer 200 within 0.5 s"):
        await bench_support.wait_ready(f"http://127.0.0.1:{port}/healthz", timeout=0.5)


def test_percentile_is_a_measured_value():
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 0.5) == 51.0
    assert percentile(values, 0.99) == 100.0
    assert percentile(values, 1.0) == 100.0  # capped at the last, not past it
    assert percentile([7.0], 0.99) == 7.0
    with pytest.raises(ValueError):
        percentile([], 0.99)
