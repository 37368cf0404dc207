"""tortoise's SQLite backend with transactions that take the write lock when they begin.

The embedded default is one file shared by the demo server and any CLI command run beside it
(``pvsettle payments import``, ``readings import``…), each a process with its own connection. In
WAL mode readers never wait, and ``busy_timeout`` makes a writer wait for another's lock — but
not a transaction that *began as a reader*: tortoise's ``BEGIN`` is deferred, so a transaction
that reads and then writes after another process committed cannot upgrade its stale snapshot, and
SQLite answers ``database is locked`` at once (SQLITE_BUSY_SNAPSHOT), whatever the timeout.
``BEGIN IMMEDIATE`` takes the write lock up front, waiting up to ``busy_timeout`` for it, so such
a transaction waits its turn instead of failing. Writes outside a transaction already wait.

Selected by :func:`settlement.infra.db.tortoise_config` as the engine ``settlement.infra.sqlite_backend``.
"""

from __future__ import annotations

import sqlite3

from tortoise.backends.base.client import TransactionContext
from tortoise.backends.sqlite.client import SqliteClient, SqliteTransactionContext, SqliteTransactionWrapper
from tortoise.exceptions import TransactionManagementError


class ImmediateTransactionWrapper(SqliteTransactionWrapper):
    async def begin(self) -> None:
        try:
            await self._connection.commit()
            await self._connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise TransactionManagementError(exc) from exc


class ImmediateSqliteClient(SqliteClient):
    def _in_transaction(self) -> TransactionContext:
        return SqliteTransactionContext(ImmediateTransactionWrapper(self), self._lock)


client_class = ImmediateSqliteClient
