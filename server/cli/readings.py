"""``pvsettle collector …`` and ``pvsettle readings …``: collectors, CSV import, conflicts.

==================================================  ===============================================
``pvsettle collector add NAME``                     make a collector, print ``{"collector", "key"}``
                                                    once (only the key's SHA-256 is kept)
``pvsettle readings import FILE.csv [--source S]``  header ``meter,register,read_at,value``; prints
                                                    ``{"file", "rows", "created", "duplicates",
                                                    "rejected"}``, each rejected row to stderr as a
                                                    JSON line; exit 0 even with rejections, 2 when
                                                    the file cannot be read or is malformed
``pvsettle readings conflicts [--limit N]``         unresolved conflicts, one JSON line each
==================================================  ===============================================

The file is read twice: once to check that it is UTF-8 CSV with the right header, so that a
malformed file changes nothing, then in batches of 2,000 rows through the readings service, so
that memory does not grow with the file. A line with too many or too few fields is one rejected
row (``wrong_field_count``), like a row with a bad value: the rest of the file is imported.
"""

from __future__ import annotations

import argparse
import csv
import json
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

from server.cli.common import MalformedFile, csv_header, on_database
from webapp.settings import Settings, energy_limits

HEADER = ("meter", "register", "read_at", "value")
IMPORT_BATCH = 2_000
IMPORT_SOURCES = ("imported", "ami", "manual")

T = TypeVar("T")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``collector`` and ``readings`` commands to the ``pvsettle`` parser."""
    collector = subparsers.add_parser("collector", help="collectors allowed to push readings")
    collector_sub = collector.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = collector_sub.add_parser("add", help="make a collector and print its key once")
    add.add_argument("name", metavar="NAME")
    add.set_defaults(func=cmd_collector_add)

    readings = subparsers.add_parser("readings", help="import meter readings, list conflicts")
    readings_sub = readings.add_subparsers(dest="action", metavar="ACTION", required=True)
    imp = readings_sub.add_parser("import", help="import a CSV file: meter,register,read_at,value")
    imp.add_argument("file", metavar="FILE.csv")
    imp.add_argument("--source", choices=IMPORT_SOURCES, default="imported",
                     help="stored as the readings' source (default imported)")
    imp.set_defaults(func=cmd_readings_import)
    conflicts = readings_sub.add_parser("conflicts", help="unresolved reading conflicts, as JSON lines")
    conflicts.add_argument("--limit", type=int, default=100, help="at most this many, newest first (1-1000)")
    conflicts.set_defaults(func=cmd_readings_conflicts)


# --- commands -----------------------------------------------------------------------------------


def cmd_collector_add(args: argparse.Namespace) -> int:
    from settlement.errors import DomainError
    from settlement.readings.ingest import add_collector

    key = secrets.token_urlsafe(32)
    try:
        collector = on_database(lambda: add_collector(args.name, key))
    except DomainError as exc:
        print(f"pvsettle collector add: {exc.message}", file=sys.stderr)
        return 1
    print(json.dumps({"collector": collector.name, "key": key}, ensure_ascii=False))
    return 0


def cmd_readings_import(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        _check_file(path)
    except MalformedFile as exc:
        print(f"pvsettle readings import: {path}: {exc}", file=sys.stderr)
        return 2
    try:
        limits = energy_limits(Settings.from_env(require_secrets=False))
        summary = on_database(lambda: _import(path, args.source, limits))
    except MalformedFile as exc:  # the file changed between the check and the import
        print(f"pvsettle readings import: {path}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"file": args.file, **summary}))
    return 0


def cmd_readings_conflicts(args: argparse.Namespace) -> int:
    from settlement.errors import DomainError
    from settlement.readings.ingest import conflict_as_dict, list_conflicts

    try:
        conflicts = on_database(lambda: list_conflicts(unresolved_only=True, limit=args.limit))
    except DomainError as exc:
        print(f"pvsettle readings conflicts: {exc.message}", file=sys.stderr)
        return 2
    for conflict in conflicts:
        print(json.dumps(conflict_as_dict(conflict), ensure_ascii=False))
    return 0


# --- helpers ------------------------------------------------------------------------------------


def _lines(binary) -> Iterator[str]:
    """Decoded lines of a file opened in binary, so that bad UTF-8 is pinned to its own line."""
    for number, raw in enumerate(binary, 1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedFile(f"line {number}: not UTF-8 text") from None
        yield text.removeprefix("\ufeff") if number == 1 else text  # Excel writes a BOM


WRONG_FIELD_COUNT = "wrong_field_count"


def _records(path: Path) -> Iterator[tuple[int, dict[str, str] | list[str]]]:
    """(line, row) for every data record — the fields as a list when their number is not the
    header's; raises MalformedFile naming the line of the first fault of the file itself."""
    try:
        binary = open(path, "rb")
    except OSError as exc:
        raise MalformedFile(f"cannot read the file: {exc.strerror or exc}") from None
    with binary:
        reader = csv.reader(_lines(binary), strict=True)
        try:
            names = csv_header(reader, HEADER)
            for record in reader:
                if not record:
                    continue  # a blank line
                if len(record) != len(names):
                    yield reader.line_num, record
                    continue
                yield reader.line_num, dict(zip(names, record))
        except csv.Error as exc:
            raise MalformedFile(f"line {reader.line_num}: {exc}") from None
        except OSError as exc:  # e.g. a directory given as the file
            raise MalformedFile(f"line {reader.line_num}: cannot read the file: {exc.strerror or exc}") from None


def _check_file(path: Path) -> None:
    for _ in _records(path):
        pass


async def _import(path: Path, source: str, limits) -> dict[str, int]:
    from settlement.models import ReadingSource
    from settlement.readings.ingest import ingest_readings

    counts = {"rows": 0, "created": 0, "duplicates": 0, "rejected": 0, "flagged": 0}
    received_from = f"import:{path.name}"[:100]
    batch: list[tuple[int, dict[str, str]]] = []

    async def flush() -> None:
        result = await ingest_readings([row for _, row in batch], source=ReadingSource(source),
                                       received_from=received_from,
                                       row_names=[f"line {line}" for line, _ in batch], limits=limits)
        counts["rows"] += len(batch)
        for key, value in result.counts().items():
            counts[key] += value
        for outcome in result.results:
            if outcome.error is not None:
                line, row = batch[outcome.index]
                rejected: dict[str, Any] = {"line": line, **row,
                                            "error": {"code": outcome.error.code, "message": outcome.error.message}}
                print(json.dumps(rejected, ensure_ascii=False), file=sys.stderr)
            elif outcome.flag is not None:  # kept, but staff should look: said where errors are said
                line, row = batch[outcome.index]
                flagged = {"line": line, **row, "flag": {"code": outcome.flag.code, "message": outcome.flag.message}}
                print(json.dumps(flagged, ensure_ascii=False), file=sys.stderr)
        batch.clear()

    for line, row in _records(path):
        if isinstance(row, list):  # refused here, as the service refuses a bad value
            counts["rows"] += 1
            counts["rejected"] += 1
            message = f"line {line}: {len(row)} fields, the header has {len(HEADER)}"
            print(json.dumps({"line": line, "fields": row, "error": {"code": WRONG_FIELD_COUNT, "message": message}},
                             ensure_ascii=False), file=sys.stderr)
            continue
        batch.append((line, row))
        if len(batch) == IMPORT_BATCH:
            await flush()
    if batch:
        await flush()
    return counts
