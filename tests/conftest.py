"""Test infrastructure shared by every layer.

The backend is chosen by the same settings the server reads:

- ``PVSETTLE_DATABASE_URL`` unset (or sqlite://…): the embedded default, a fresh SQLite file per test;
- ``PVSETTLE_DATABASE_URL=postgres://USER@HOST:PORT/ANY``: that PostgreSQL server, where this run
  makes its own databases (``pvsettle_t_<run>_…``) and drops them afterwards;
- ``PVSETTLE_REDIS_URL`` unset: the in-process emulation; set: that Redis, under a key prefix of
  this run's own that is deleted afterwards.

Migrations are applied once per run to a template, and each test gets a copy of it, so every test
starts from exactly the schema the migrations make.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from server.settings import Settings

RUN_ID = uuid.uuid4().hex[:10]
DATABASE_URL = os.environ.get("PVSETTLE_DATABASE_URL", "")
REDIS_URL = os.environ.get("PVSETTLE_REDIS_URL", "")
ON_POSTGRES = urlsplit(DATABASE_URL).scheme in ("postgres", "asyncpg")


def pytest_report_header(config) -> str:
    db = f"PostgreSQL at {urlsplit(DATABASE_URL).netloc}" if ON_POSTGRES else "SQLite (embedded default)"
    redis = f"Redis at {urlsplit(REDIS_URL).netloc}" if REDIS_URL else "in-process redis emulation"
    return f"pvsettle backends: {db}, {redis}; run id {RUN_ID}"


def _pg_url(database: str) -> str:
    parts = urlsplit(DATABASE_URL)
    return urlunsplit(("postgres", parts.netloc, "/" + database, "", ""))


async def _pg_admin(sql: str) -> None:
    import asyncpg

    parts = urlsplit(DATABASE_URL)
    conn = await asyncpg.connect(host=parts.hostname, port=parts.port or 5432, user=parts.username,
                                 password=parts.password, database="postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


class DatabaseFactory:
    """Makes empty or migrated databases for this run and removes every one of them at the end."""

    def __init__(self, tmp_dir: Path):
        self.tmp_dir = tmp_dir
        self.made: list[str] = []
        self.template: str | None = None
        self._n = 0

    def _name(self) -> str:
        self._n += 1
        return f"pvsettle_t_{RUN_ID}_{self._n}"

    async def empty(self) -> str:
        """The URL of a new, empty database."""
        name = self._name()
        if ON_POSTGRES:
            await _pg_admin(f'CREATE DATABASE "{name}"')
            self.made.append(name)
            return _pg_url(name)
        return f"sqlite://{self.tmp_dir / (name + '.sqlite3')}"

    async def migrated(self) -> str:
        """The URL of a new database holding exactly what the migrations make."""
        from settlement import db

        if self.template is None:
            url = await self.empty()
            await db.migrate(url)
            await db.close_database()
            self.template = url
        name = self._name()
        if ON_POSTGRES:
            template = urlsplit(self.template).path.lstrip("/")
            await _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            self.made.append(name)
            return _pg_url(name)
        path = self.tmp_dir / (name + ".sqlite3")
        shutil.copy(self.template.removeprefix("sqlite://"), path)
        return f"sqlite://{path}"

    async def drop_all(self) -> None:
        for name in reversed(self.made):
            await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.made.clear()


@pytest.fixture(scope="session")
def database_factory(tmp_path_factory) -> Iterator[DatabaseFactory]:
    import asyncio

    factory = DatabaseFactory(tmp_path_factory.mktemp("db"))
    yield factory
    if ON_POSTGRES:
        asyncio.run(factory.drop_all())


@pytest.fixture
def redis_prefix() -> str:
    return f"pvsettle-test:{RUN_ID}:{uuid.uuid4().hex[:8]}:"


@pytest.fixture
async def settings(database_factory: DatabaseFactory, redis_prefix: str, tmp_path: Path) -> AsyncIterator[Settings]:
    """Full settings for one test: its own migrated database and Redis namespace."""
    url = await database_factory.migrated()
    yield Settings(
        database_url=url,
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
        var_dir=str(tmp_path / "var"),
        scheduler_interval=0,  # tests that want the scheduler turn it on
        # and the outbox dispatcher: a background poll still in a database call when a test's
        # event loop closes leaves an aiosqlite thread posting into a closed loop
        dispatcher_interval="0",
        secret_key="t" * 40,
        oa_appid="wxtestoa0000000001",
        oa_secret="oa-secret",
        oa_token="oa-token",
        oa_aes_key="a" * 43,
        mp_appid="wxtestmp0000000001",
        mp_secret="mp-secret",
        wechat_api_base="http://127.0.0.1:9",  # nothing listens: tests that call WeChat start a fake
        pay_api_base="http://127.0.0.1:9",
    )
    if REDIS_URL:
        from settlement.redis_client import Namespace, open_redis

        client = open_redis(REDIS_URL)
        await Namespace(redis_prefix).delete_all(client)
        await client.aclose()


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Settings]:
    """The ORM connected to this test's database (for tests that use models without the app)."""
    from settlement import db as database

    await database.open_database(settings.database_url)
    yield settings
    await database.close_database()


@pytest.fixture
async def client(settings: Settings, aiohttp_client):
    """A test client on the whole server app, built exactly as ``pvsettle serve`` builds it."""
    from server.app import create_app

    return await aiohttp_client(create_app(settings))
