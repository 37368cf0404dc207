"""Database configuration and lifecycle (tortoise-orm 1.x with its own migrations).

The schema lives in ``migrations/`` and is changed only by ``python -m tortoise makemigrations``
followed by ``pvsettle migrate``; nothing here creates tables.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tortoise import Tortoise, connections
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.migrations.api.migrate import migrate as _tortoise_migrate

MODELS_MODULE = "settlement.models"
DEFAULT_URL = "sqlite://var/pvsettle.sqlite3"


def tortoise_config(database_url: str) -> dict[str, Any]:
    """The tortoise configuration for one database URL (sqlite://PATH or postgres://…)."""
    scheme = urlsplit(database_url).scheme
    if scheme == "sqlite":
        path = database_url.removeprefix("sqlite://")
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        connection: dict[str, Any] | str = {
            # tortoise's SQLite client, with transactions that begin by taking the write lock
            "engine": "settlement.infra.sqlite_backend",
            "credentials": {
                "file_path": path,
                # tortoise already sets WAL and foreign keys; the busy timeout lets a second process
                # (the CLI beside the server) wait for the write lock instead of failing at once.
                "busy_timeout": 5000,
            },
        }
    else:
        connection = expand_db_url(database_url)
        if connection["engine"] == "tortoise.backends.asyncpg":
            connection["credentials"]["reset"] = _keep_session
    return {
        "connections": {"default": connection},
        "apps": {"settlement": {"models": [MODELS_MODULE], "migrations": "migrations",
                                "default_connection": "default"}},
        "use_tz": True,
        "timezone": "UTC",
    }


async def _keep_session(connection: Any) -> None:
    """asyncpg's reset of a connection given back to the pool: nothing beyond the rollback.

    By default asyncpg sends ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` on
    every release, a round trip that doubled the cost of each ORM query (tortoise takes and gives
    back a pooled connection per query). pvsettle never takes advisory locks, opens cursors outside
    a transaction, LISTENs or changes session settings, so there is nothing to undo; asyncpg still
    rolls back a transaction left open before calling this.
    """


# For tortoise's own CLI (pyproject.toml [tool.tortoise]): python -m tortoise makemigrations
TORTOISE_ORM = tortoise_config(os.environ.get("PVSETTLE_DATABASE_URL") or DEFAULT_URL)


async def open_database(database_url: str, *, create: bool = False) -> None:
    """Connect the process-wide ORM; with ``create`` the (PostgreSQL) database is created first.

    The context is made global because aiohttp runs handlers in other tasks than start-up, and
    tortoise 1.x keeps its context in a contextvar otherwise.
    """
    await Tortoise.init(config=tortoise_config(database_url), _create_db=create,
                        _enable_global_fallback=True)


async def close_database() -> None:
    await Tortoise.close_connections()


async def drop_database() -> None:
    """Drop the connected database (tests only: each test run makes and drops its own)."""
    await Tortoise._drop_databases()


async def migrate(database_url: str, progress=None) -> None:
    """Apply every migration in ``migrations/`` not yet applied to ``database_url``."""
    await _tortoise_migrate(config=tortoise_config(database_url), progress=progress)


async def ping() -> None:
    """One round trip to the database; raises when it is unreachable."""
    await connections.get("default").execute_query("SELECT 1")
