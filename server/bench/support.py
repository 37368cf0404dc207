"""What every ``pvsettle bench NAME`` sets up and takes down around its measurement.

================================  ===============================================================
:func:`bench_database`            async context manager: a database of the bench's own, migrated,
                                  dropped (PostgreSQL) or deleted (SQLite) on exit, even on error
:func:`blocking_bench_database`   the same for a bench that drives its steps with ``asyncio.run``
:func:`create_bench_database`,    the two halves of both, for a bench whose database outlives one
:func:`remove_bench_database`     block
:func:`serve_environment`,        ``pvsettle serve`` in a process group of its own, configured by
:func:`start_serve`,              its environment; stopped with SIGTERM, SIGKILL after 30 s
:func:`stop_process_group`
:func:`wait_ready`                poll a URL until it answers 200
:func:`clean_redis`               delete every Redis key under the bench's prefix
:func:`free_port`                 a TCP port nobody listens on
:func:`percentile`                a quantile of sorted latencies, as every bench reports them
================================  ===============================================================

A bench's database is never the one ``PVSETTLE_DATABASE_URL`` names: it is a new database
``pvsettle_bench_<hex>`` on that PostgreSQL server, or a SQLite file in a new temporary folder, so
a bench never touches real data and two runs never see each other's. Heavy imports (tortoise,
aiohttp, redis) happen inside the functions: the CLI imports every bench module at start-up, and
``python -m server.bench.api load`` is a load generator that should start light.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

POSTGRES_SCHEMES = ("postgres", "asyncpg")
BENCH_DATABASE_PREFIX = "pvsettle_bench_"  # PostgreSQL databases a bench makes (and drops)
STOP_GRACE_SECONDS = 30.0


class BenchDatabase(NamedTuple):
    """A database of one bench run.

    Attributes
    ----------
    url : str
        ``postgres://…/pvsettle_bench_<hex>`` or ``sqlite:///tmp/<prefix>…/bench.sqlite3``.
    on_postgres : bool
        Whether it is a PostgreSQL database (else a SQLite file).
    """

    url: str
    on_postgres: bool

    @property
    def kind(self) -> str:
        """``"postgres"`` or ``"sqlite"``: the value of the ``database`` key every bench prints."""
        return "postgres" if self.on_postgres else "sqlite"


async def create_bench_database(database_url: str, *, prefix: str) -> BenchDatabase:
    """Make and migrate a database of the bench's own beside ``database_url``; left disconnected.

    Parameters
    ----------
    database_url : str
        ``PVSETTLE_DATABASE_URL``: only its scheme and, for PostgreSQL, its server and credentials
        are used.
    prefix : str
        Name prefix of the temporary folder that holds the SQLite file (``pvsettle-bench-api-``…).

    Returns
    -------
    BenchDatabase
        Remove it with :func:`remove_bench_database`. If the migration fails it is removed here.
    """
    from settlement.infra import db

    if urlsplit(database_url).scheme in POSTGRES_SCHEMES:
        parts = urlsplit(database_url)
        bench = BenchDatabase(urlunsplit(("postgres", parts.netloc, f"/{BENCH_DATABASE_PREFIX}{uuid.uuid4().hex[:10]}",
                                          "", "")), True)
        await db.open_database(bench.url, create=True)
        await db.close_database()
    else:
        bench = BenchDatabase(f"sqlite://{Path(tempfile.mkdtemp(prefix=prefix)) / 'bench.sqlite3'}", False)
    try:
        await db.migrate(bench.url)
        await db.close_database()
    except BaseException:
        await remove_bench_database(bench)
        raise
    return bench


async def remove_bench_database(bench: BenchDatabase) -> None:
    """Drop the PostgreSQL database, or delete the SQLite file's temporary folder.

    Closes the ORM's connections first (they may be to ``bench`` itself, which PostgreSQL will not
    drop while they are open).
    """
    from settlement.infra import db

    await db.close_database()
    if bench.on_postgres:
        await db.open_database(bench.url)
        try:
            await db.drop_database()
        finally:
            await db.close_database()
    else:
        shutil.rmtree(Path(bench.url.removeprefix("sqlite://")).parent)


@asynccontextmanager
async def bench_database(database_url: str, *, prefix: str, connect: bool = False) -> AsyncIterator[BenchDatabase]:
    """A migrated database of the bench's own for the ``async with`` block, removed on leaving it.

    Parameters
    ----------
    database_url : str
        ``PVSETTLE_DATABASE_URL`` (see :func:`create_bench_database`).
    prefix : str
        Name prefix of the SQLite file's temporary folder.
    connect : bool
        Connect the process-wide ORM to it for the block (disconnected on leaving it either way).

    Yields
    ------
    BenchDatabase
        Its URL and whether it is PostgreSQL. Dropped or deleted when the block ends, also when it
        raises.
    """
    from settlement.infra import db

    bench = await create_bench_database(database_url, prefix=prefix)
    try:
        if connect:
            await db.open_database(bench.url)
        yield bench
    finally:
        await remove_bench_database(bench)


@contextmanager
def blocking_bench_database(database_url: str, *, prefix: str) -> Iterator[BenchDatabase]:
    """:func:`bench_database` for a bench that runs each step in an ``asyncio.run`` of its own.

    The ORM is left disconnected: its connections belong to one event loop, so each step that
    needs the database connects to ``BenchDatabase.url`` in its own loop.
    """
    bench = asyncio.run(create_bench_database(database_url, prefix=prefix))
    try:
        yield bench
    finally:
        asyncio.run(remove_bench_database(bench))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on at this moment."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_environment(settings: Any, overrides: Mapping[str, object]) -> dict[str, str]:
    """This process's environment plus every setting of ``settings`` as ``PVSETTLE_*``, ``overrides`` last.

    Parameters
    ----------
    settings : webapp.settings.Settings
        Usually :func:`webapp.settings.demo_settings`: every secret ``serve`` needs.
    overrides : mapping of str to object
        Settings by field name (``database_url``, ``port``…), written with ``str``.
    """
    from webapp.settings import Settings

    values = {**{f: getattr(settings, f) for f in settings.__dataclass_fields__}, **overrides}
    return {**os.environ, **{Settings.env_name(k): str(v) for k, v in values.items()}}


def start_serve(env: Mapping[str, str], cwd: str | os.PathLike, workers: int | None = None) -> subprocess.Popen:
    """``pvsettle serve [--workers N]`` of this interpreter's environment, silent, in its own session.

    Its own session (process group) lets :func:`stop_process_group` stop its worker processes too.
    """
    pvsettle = str(Path(sys.executable).parent / "pvsettle")
    args = [pvsettle, "serve"] + ([] if workers is None else ["--workers", str(workers)])
    return start_group(args, env=env, cwd=cwd)


def start_group(args: Sequence[str], *, env: Mapping[str, str] | None = None,
                cwd: str | os.PathLike | None = None) -> subprocess.Popen:
    """``args`` as a silent process in a session (process group) of its own."""
    return subprocess.Popen(list(args), env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def stop_process_group(proc: subprocess.Popen, grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM the process group ``proc`` leads, SIGKILL it if ``proc`` has not exited after ``grace`` [s]."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


async def wait_ready(url: str, headers: Mapping[str, str] | None = None, *, timeout: float = 60,
                     alive: Callable[[], bool] | None = None) -> bytes:
    """GET ``url`` every 0.25 s until it answers 200; the body of that answer.

    Parameters
    ----------
    url : str
        What to poll (``…/healthz``, or the very request the bench will measure).
    headers : mapping of str to str, optional
        Sent with each request (a session token).
    timeout : float
        [s] Give up after this long.
    alive : callable, optional
        Whether the server process still runs: when it returns False the wait ends at once.

    Raises
    ------
    RuntimeError
        ``url`` did not answer 200 within ``timeout``, or the server process exited.
    """
    import aiohttp

    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if alive is not None and not alive():
                raise RuntimeError(f"the server of {url} exited before it answered")
            try:
                async with session.get(url, headers=dict(headers or {})) as resp:
                    if resp.status == 200:
                        return await resp.read()
            except aiohttp.ClientConnectionError:
                pass  # not listening yet
            await asyncio.sleep(0.25)
    raise RuntimeError(f"{url} did not answer 200 within {timeout} s")


async def clean_redis(redis_url: str, prefix: str) -> None:
    """Delete every key under ``prefix`` (the bench's own key prefix) on ``redis_url``."""
    from settlement.infra.redis_client import Namespace, open_redis

    client = open_redis(redis_url)
    try:
        await Namespace(prefix).delete_all(client)
    finally:
        await client.aclose()


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0 ≤ q ≤ 1) of ascending ``sorted_values``: the value at index ⌊n·q⌋, capped at the last.

    No interpolation: the reported figure is a latency that was measured.

    Raises
    ------
    ValueError
        ``sorted_values`` is empty (each bench says what an empty measurement reports).
    """
    if not sorted_values:
        raise ValueError("percentile of no values")
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]
