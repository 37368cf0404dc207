"""The embedded SQLite file shared by the demo and a CLI command run beside it: a transaction
that reads, then writes after the other process committed, waits its turn instead of failing with
``database is locked``. Both runs use an SQLite file of their own: this is the embedded path."""

from __future__ import annotations

import asyncio

from tortoise import connections
from tortoise.transactions import in_transaction

from settlement.infra import db as database
from settlement import models as m
from settlement.infra.sqlite_backend import ImmediateSqliteClient


async def test_a_read_then_write_transaction_waits_for_another_connections_write(tmp_path):
    url = f"sqlite://{tmp_path / 'demo.sqlite3'}"
    await database.migrate(url)
    await database.close_database()
    await database.open_database(url)
    # the CLI process beside the demo: a connection of its own to the same file, as it opens one
    cli = ImmediateSqliteClient(file_path=str(tmp_path / "demo.sqlite3"), connection_name="cli",
                                busy_timeout=5000)
    await cli.create_connection(with_db=True)
    try:
        assert type(connections.get("default")) is ImmediateSqliteClient

        async def cli_writes() -> None:
            async with cli._in_transaction() as conn:
                await conn.execute_query("SELECT count(*) FROM owner")
                await conn.execute_insert("INSERT INTO owner (name, kind, created_at) VALUES (?, ?, ?)",
                                          ["from the CLI", "commercial", "2026-12-01 00:00:00+00:00"])

        async with in_transaction():  # the demo: reads, then writes in one transaction
            assert await m.Owner.all().count() == 0
            other = asyncio.create_task(cli_writes())
            # the CLI's transaction gets every chance to run meanwhile (it waits for our lock)
            await asyncio.wait([other], timeout=0.5)
            await m.Owner.create(name="from the demo")
        await other  # neither side saw "database is locked"
        assert sorted(await m.Owner.all().values_list("name", flat=True)) == ["from the CLI", "from the demo"]

        # and the other way round: the CLI holds the lock, the demo's transaction waits for it
        async with cli._in_transaction() as conn:
            await conn.execute_query("SELECT count(*) FROM owner")

            async def demo_writes() -> None:
                async with in_transaction():
                    await m.Owner.all().count()
                    await m.Owner.create(name="demo again")

            demo = asyncio.create_task(demo_writes())
            await asyncio.wait([demo], timeout=0.5)
            await conn.execute_insert("INSERT INTO owner (name, kind, created_at) VALUES (?, ?, ?)",
                                      ["CLI again", "commercial", "2026-12-01 00:00:00+00:00"])
        await demo
        assert await m.Owner.all().count() == 4
    finally:
        await cli.close()
        await database.close_database()
