"""What every command module shares: settings from the environment, a migrated database for
the length of a command, a progress bar, and for the imports the refusal of a malformed file and
the check of a CSV header. Imports no command module (they import it).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from server import logs
from webapp.settings import Settings

if TYPE_CHECKING:
    import _csv

    from settlement.notify.outbox import NotifyApps

T = TypeVar("T")


def notify_apps() -> NotifyApps:
    """Our mini-program and official account from the settings (``PVSETTLE_MP_APPID``,
    ``PVSETTLE_OA_APPID``), for the messages a command writes."""
    from settlement.notify.outbox import NotifyApps

    return NotifyApps.from_settings(Settings.from_env(require_secrets=False))


class MalformedFile(Exception):
    """The file is not the CSV (or JSON) an import expects; the message names the place."""


def csv_header(reader: _csv.Reader, fields: Sequence[str]) -> list[str]:
    """The names of an import's CSV header, stripped and lower-cased: ``fields`` in any order.

    ``reader`` is a :func:`csv.reader` at the start of the file.

    Raises
    ------
    MalformedFile
        The file is empty, or its header names other fields.
    """
    header = next(reader, None)
    if header is None:
        raise MalformedFile(f"line 1: the file is empty, expected the header {','.join(fields)}")
    names = [name.strip().lower() for name in header]
    if sorted(names) != sorted(fields):
        raise MalformedFile(f"line {reader.line_num}: the header is {','.join(header)[:100]!r}, "
                            f"expected {','.join(fields)}")
    return names


def on_database(work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work()`` against PVSETTLE_DATABASE_URL (migrated first); its errors are the caller's
    (the import commands answer a domain error in their own words)."""
    settings = Settings.from_env(require_secrets=False)
    logs.configure(settings.log_level, json_lines=False)
    return asyncio.run(on_migrated(settings.database_url, work))


def with_database(work: Callable[[], Awaitable[T]]) -> T:
    """:func:`on_database`, a domain error printed and the command ended with exit code 2."""
    from settlement.errors import DomainError

    try:
        return on_database(work)
    except DomainError as exc:
        print(f"pvsettle: {exc.message}", file=sys.stderr)
        raise SystemExit(2) from None


async def migrate(database_url: str, *, quiet: bool) -> None:
    from settlement.infra import db

    def progress(event: str, app_label: str, name: str) -> None:
        if event == "apply_done":
            print(f"applied {app_label}.{name}", file=sys.stderr)

    await db.migrate(database_url, progress=None if quiet else progress)
    await db.close_database()


async def on_migrated(database_url: str, work: Callable[[], Awaitable[T]]) -> T:
    """Migrate ``database_url`` quietly, connect, await ``work()`` and disconnect (also when it raises).

    Shared by :func:`with_database` and by the reports of :mod:`server.cli.reports`.
    """
    from settlement.infra import db

    await migrate(database_url, quiet=True)
    await db.open_database(database_url)
    try:
        return await work()
    finally:
        await db.close_database()


def progress_factory():
    """A tqdm bar on a terminal, plain lines otherwise (logs, CI)."""
    from settlement.seeding import Progress

    if sys.stderr.isatty():
        from tqdm import tqdm

        class Bar(Progress):
            def __init__(self, label: str, total: int):
                self._bar = tqdm(total=total, desc=label, unit="plant", file=sys.stderr)

            def advance(self, n: int = 1) -> None:
                self._bar.update(n)

            def close(self) -> None:
                self._bar.close()

        return Bar
    return Progress
