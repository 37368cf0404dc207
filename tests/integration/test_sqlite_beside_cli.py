"""The embedded SQLite file shared by the demo and a CLI command run beside it: a transaction
that reads, then writes after the other process committed, waits its turn instead of failing with
``database is locked``. Both runs use an SQLite file of their own: this is the embedded path.

The CLI side is a process of its own that connects as every ``pvsettle`` database command does,
through :func:`server.cli.common.on_database` (settings from ``PVSETTLE_DATABASE_URL``, migrate,
connect, run, disconnect); the demo side is this process, connected as the server is
(:func:`settlement.infra.db.open_database`). The two take turns through the CLI's stdin and stdout,
so each side's transaction is certainly begun while the other holds the write lock.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
import textwrap
import time
from pathlib import Path

from tortoise import connections
from tortoise.transactions import in_transaction

from settlement import models as m
from settlement.infra import db as database
from settlement.infra.sqlite_backend import ImmediateSqliteClient

ROOT = Path(__file__).resolve().parents[2]
HELD_S = 0.6  # how long one side keeps the write lock while the other waits for it [s]

# the CLI process: each step waits for the test's word on stdin and reports on stdout
CLI = textwrap.dedent("""
    import json, sys, time
    from tortoise import connections
    from tortoise.transactions import in_transaction
    from server.cli.common import on_database

    def say(**what):
        print(json.dumps(what), flush=True)

    async def insert(conn, name):
        await conn.execute_insert("INSERT INTO owner (name, kind, created_at) VALUES (?, ?, ?)",
                                  [name, "commercial", "2026-12-01 00:00:00+00:00"])

    async def work():
        conn = connections.get("default")
        say(client=type(conn).__name__,
            journal_mode=(await conn.execute_query_dict("PRAGMA journal_mode"))[0]["journal_mode"],
            busy_timeout=(await conn.execute_query_dict("PRAGMA busy_timeout"))[0]["timeout"])
        sys.stdin.readline()  # the demo holds the write lock now
        began = time.monotonic()
        async with in_transaction() as tx:  # waits for the demo's lock
            waited = time.monotonic() - began
            await tx.execute_query("SELECT count(*) FROM owner")
            await insert(tx, "from the CLI")
        say(waited=waited)
        sys.stdin.readline()
        async with in_transaction() as tx:  # now the CLI holds the lock and the demo waits
            await tx.execute_query("SELECT count(*) FROM owner")
            say(holding=True)
            sys.stdin.readline()
            await insert(tx, "CLI again")
        say(done=True)

    on_database(work)
""")


async def _cli(url: str, cwd: Path) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVSETTLE_")}
    # this checkout's code, whichever the interpreter's site-packages names
    env.update(PVSETTLE_DATABASE_URL=url, PYTHONPATH=str(ROOT))
    return await asyncio.create_subprocess_exec(sys.executable, "-c", CLI, env=env, cwd=cwd,
                                                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)


async def _heard(cli: asyncio.subprocess.Process) -> dict:
    line = await asyncio.wait_for(cli.stdout.readline(), timeout=60)
    if not line:
        await cli.wait()
        raise AssertionError(f"the CLI process ended ({cli.returncode}):\n{(await cli.stderr.read()).decode()}")
    return json.loads(line)


async def _tell(cli: asyncio.subprocess.Process) -> None:
    cli.stdin.write(b"go\n")
    await cli.stdin.drain()


async def test_a_read_then_write_transaction_waits_for_another_connections_write(tmp_path):
    path = tmp_path / "demo.sqlite3"
    url = f"sqlite://{path}"
    _forget_cached_statements()  # an earlier test's, of PostgreSQL on a PostgreSQL run
    await database.migrate(url)
    await database.close_database()
    await database.open_database(url)  # the demo, as the server connects
    cli = await _cli(url, tmp_path)
    try:
        assert type(connections.get("default")) is ImmediateSqliteClient
        # the CLI's own connection: the same client, in WAL mode, waiting up to 5 s for a lock
        assert await _heard(cli) == {"client": "ImmediateSqliteClient", "journal_mode": "wal", "busy_timeout": 5000}
        # and WAL is the file's own mode, as any other process opening it finds
        with sqlite3.connect(path) as plain:
            assert plain.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert path.with_name(path.name + "-wal").exists()

        async with in_transaction():  # the demo: reads, then writes in one transaction
            assert await m.Owner.all().count() == 0
            await _tell(cli)
            await asyncio.sleep(HELD_S)  # the CLI's transaction begins meanwhile, and waits for our lock
            await m.Owner.create(name="from the demo")
        # the CLI did not see "database is locked": it waited for the demo's commit, then wrote
        assert (await _heard(cli))["waited"] >= HELD_S / 2
        assert sorted(await m.Owner.all().values_list("name", flat=True)) == ["from the CLI", "from the demo"]

        # and the other way round: the CLI holds the lock, the demo's transaction waits for it
        await _tell(cli)
        assert await _heard(cli) == {"holding": True}

        async def demo_writes() -> float:
            began = time.monotonic()
            async with in_transaction():
                waited = time.monotonic() - began
                await m.Owner.all().count()
                await m.Owner.create(name="demo again")
            return waited

        demo = asyncio.create_task(demo_writes())
        await asyncio.wait([demo], timeout=HELD_S)
        assert not demo.done()  # waiting for the CLI's lock, not failed
        await _tell(cli)
        assert await _heard(cli) == {"done": True}
        assert await demo >= HELD_S / 2
        assert await asyncio.wait_for(cli.wait(), timeout=60) == 0, (await cli.stderr.read()).decode()
        assert sorted(await m.Owner.all().values_list("name", flat=True)) == [
            "CLI again", "demo again", "from the CLI", "from the demo"]
    finally:
        if cli.returncode is None:
            cli.kill()
            await cli.wait()
        await database.close_database()
        _forget_cached_statements()


def _forget_cached_statements() -> None:
    """tortoise keeps each model's INSERT and DELETE statements by connection name in a cache of
    its module that outlives the connections: on a PostgreSQL run this test's SQLite ``default``
    would hand its ``?``-placeholder statements to the PostgreSQL ``default`` of every later test
    (``syntax error at or near ","`` creating an Owner), and be handed theirs."""
    from tortoise.backends.base.executor import EXECUTOR_CACHE

    EXECUTOR_CACHE.clear()
