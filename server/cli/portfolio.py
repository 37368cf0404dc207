"""``pvsettle portfolio import|export``: a PV company's owners, staff, tariffs, plants, meters,
contracts and nearby-consumption terms from and to CSV or XLSX.

============================================================  =========================================
``pvsettle portfolio import PATH [--check] [--staff ID]``      PATH is a folder of ``<table>.csv``
``[--json]``                                                   files or an ``.xlsx`` workbook with
                                                               sheets of those names; prints each
                                                               change (``--check``: that it would
                                                               make) and the counts per table; exit
                                                               0 when stored (or checked clean), 2
                                                               with every refused row on stderr and
                                                               nothing stored
``pvsettle portfolio export PATH``                             the same tables from the database: a
                                                               workbook when PATH ends in ``.xlsx``,
                                                               else a folder (tariffs as JSON files
                                                               beside ``tariffs.csv``)
============================================================  =========================================

The tables, their columns and the rules (all or nothing, idempotent, audited, a bill already
issued is never rewritten, meter replacements) are in :mod:`settlement.portfolio.changes` and
:mod:`settlement.portfolio.tables`, and in the README ("Portfolio import"). ``--staff`` is the
importing staff member's id, an active admin; only a database with no staff yet imports without.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from server.cli.common import on_database


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``portfolio`` command to the ``pvsettle`` parser."""
    portfolio = subparsers.add_parser("portfolio", help="owners, plants, meters, contracts, tariffs, staff: CSV/XLSX in and out")
    sub = portfolio.add_subparsers(dest="action", metavar="ACTION", required=True)
    imported = sub.add_parser("import", help="import a folder of CSV files or an .xlsx workbook")
    imported.add_argument("path", type=Path, metavar="PATH")
    imported.add_argument("--check", action="store_true", help="report what would change, store nothing")
    imported.add_argument("--staff", type=int, metavar="ID", help="the importing staff member (an active admin)")
    imported.add_argument("--json", action="store_true", help="one JSON object instead of lines")
    imported.set_defaults(func=cmd_import)
    exported = sub.add_parser("export", help="write the portfolio as CSV files (a folder) or an .xlsx workbook")
    exported.add_argument("path", type=Path, metavar="PATH")
    exported.set_defaults(func=cmd_export)


def cmd_import(args: argparse.Namespace) -> int:
    from settlement.errors import DomainError
    from settlement.models import Staff
    from settlement.portfolio import changes, sheets, tables

    try:
        found = sheets.read(args.path, tables.NAMES)
    except sheets.UnreadableFile as exc:
        print(f"pvsettle portfolio import: {exc}", file=sys.stderr)
        return 2

    async def work():
        staff = None
        if args.staff is not None:
            staff = await Staff.get_or_none(id=args.staff)
            if staff is None:
                raise DomainError(f"no staff {args.staff}")
        return await changes.import_portfolio(found, staff=staff, source=args.path.name or str(args.path),
                                              check=args.check)

    try:
        outcome = on_database(work)
    except DomainError as exc:
        print(f"pvsettle portfolio import: {exc.message}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"path": str(args.path), "check": args.check, "stored": outcome.stored,
                          "counts": outcome.counts(), "changes": [c.as_dict() for c in outcome.changes],
                          "errors": [e.as_dict() for e in outcome.errors]}, ensure_ascii=False))
    else:
        stream = sys.stderr if outcome.errors else sys.stdout
        for line in changes.describe(outcome):
            print(line, file=stream)
    if outcome.errors:
        print(f"pvsettle portfolio import: {len(outcome.errors)} problems, nothing stored", file=sys.stderr)
        return 2
    verb = "would change" if args.check else "changed"
    counts = ", ".join(f"{name} {c['created']} new, {c['updated']} updated, {c['unchanged']} unchanged"
                       for name, c in outcome.counts().items())
    print(f"{verb}: {counts or 'nothing'}", file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from settlement.portfolio.export import export_portfolio

    written = on_database(lambda: export_portfolio(args.path))
    for path in written:
        print(path)
    return 0
