"""Test infrastructure shared by every layer.

The backend is chosen by the same settings the server reads:

- ``PVSETTLE_DATABASE_URL`` unset (or sqlite://…): the embedded default, a fresh SQLite file per test;
- ``PVSETTLE_DATABASE_URL=postgres://USER@HOST:PORT/ANY``: that PostgreSQL server, where this run
  makes its own databases (``pvsettle_t_<host>_<pid>_<random>_<n>``), drops each when its test is
  over, and sweeps away those of earlier runs on this machine that were killed (their pid is gone);
- ``PVSETTLE_REDIS_URL`` unset: the in-process emulation; set: that Redis, under a key prefix of
  this run's own that is deleted afterwards.

Migrations are applied once per run to a template, and each test gets a copy of it, so every test
starts from exactly the schema the migrations make.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from webapp.settings import Settings

# <host>_<pid>_<random>: a later run on this machine can tell a killed run's databases (its process
# is gone) from a live one's, and sweep only those
HOST_TAG = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]
RUN_ID = f"{HOST_TAG}_{os.getpid()}_{uuid.uuid4().hex[:4]}"
DATABASE_URL = os.environ.get("PVSETTLE_DATABASE_URL", "")
REDIS_URL = os.environ.get("PVSETTLE_REDIS_URL", "")
ON_POSTGRES = urlsplit(DATABASE_URL).scheme in ("postgres", "asyncpg")


def pytest_configure(config) -> None:
    """``kill -USR1`` on a test run prints the running event loop's tasks with their stacks, as
    ``pvsettle serve`` does: a test that hangs awaiting something shows what (the thread stacks
    that ``faulthandler_timeout`` prints show only the loop idling in epoll)."""
    import signal

    signal.signal(signal.SIGUSR1, _print_tasks)


def _print_tasks(signum, frame) -> None:
    import asyncio
    import sys

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        print("no event loop is running", file=sys.stderr)
        return
    for task in asyncio.all_tasks(loop):
        print(f"--- {task!r}", file=sys.stderr)
        task.print_stack(file=sys.stderr)


def pytest_report_header(config) -> str:
    db = f"PostgreSQL at {urlsplit(DATABASE_URL).netloc}" if ON_POSTGRES else "SQLite (embedded default)"
    redis = f"Redis at {urlsplit(REDIS_URL).netloc}" if REDIS_URL else "in-process redis emulation"
    return f"pvsettle backends: {db}, {redis}; run id {RUN_ID}"


def _pg_url(database: str) -> str:
    parts = urlsplit(DATABASE_URL)
    return urlunsplit(("postgres", parts.netloc, "/" + database, "", ""))


async def _pg_connect():
    """A plain connection to the server's ``postgres`` database (to make and drop test databases)."""
    import asyncpg

    parts = urlsplit(DATABASE_URL)
    return await asyncpg.connect(host=parts.hostname, port=parts.port or 5432, user=parts.username,
                                 password=parts.password, database="postgres")


async def _pg_admin(sql: str) -> None:
    conn = await _pg_connect()
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
        from settlement.infra import db

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

    async def drop(self, url: str) -> None:
        """Drop one database made here as soon as its test is over (a run of the whole suite
        would otherwise hold a thousand copies until its end)."""
        name = urlsplit(url).path.lstrip("/")
        if ON_POSTGRES and name in self.made:
            await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self.made.remove(name)

    async def drop_all(self) -> None:
        for name in reversed(self.made):
            await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.made.clear()


async def _sweep_killed_runs() -> list[str]:
    """Drop the databases of earlier runs on this machine whose process is gone (killed runs
    never reach their clean-up). A live run's databases are never touched: its process exists."""
    conn = await _pg_connect()
    try:
        names = [r["datname"] for r in await conn.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE $1", f"pvsettle_t_{HOST_TAG}_%")]
        dropped = []
        for name in names:
            match = re.fullmatch(rf"pvsettle_t_{HOST_TAG}_(\d+)_[0-9a-f]{{4}}_\d+", name)
            if match is None or _alive(int(match.group(1))):
                continue
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            dropped.append(name)
        return dropped
    finally:
        await conn.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


@pytest.fixture(scope="session")
def database_factory(tmp_path_factory) -> Iterator[DatabaseFactory]:
    import asyncio

    factory = DatabaseFactory(tmp_path_factory.mktemp("db"))
    if ON_POSTGRES:
        asyncio.run(_sweep_killed_runs())
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
        from settlement.infra.redis_client import Namespace, open_redis

        client = open_redis(REDIS_URL)
        await Namespace(redis_prefix).delete_all(client)
        await client.aclose()
    await database_factory.drop(url)


@pytest.fixture
def notify_apps(settings: Settings):
    """Our mini-program and official account, made from the settings as the app factory makes them
    (what tests hand to the services that write notifications, ``apps=``)."""
    from settlement.notify.outbox import NotifyApps

    return NotifyApps.from_settings(settings)


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Settings]:
    """The ORM connected to this test's database (for tests that use models without the app)."""
    from settlement.infra import db as database

    await database.open_database(settings.database_url)
    yield settings
    await database.close_database()


@pytest.fixture
async def client(settings: Settings, aiohttp_client):
    """A test client on the whole server app, built exactly as ``pvsettle serve`` builds it."""
    from server.app import create_app

    return await aiohttp_client(create_app(settings))
