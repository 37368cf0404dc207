"""``pvsettle prices import|show``: market price curves (issue 17).

==========================================================  =========================================
``pvsettle prices import FILE [--check] [--json]``           a ``.csv`` file or an ``.xlsx`` workbook
                                                             (sheet ``prices``) of day-ahead and
                                                             real-time prices; prints one line per
                                                             curve (``--check``: what it would do),
                                                             exit 0; every refused row on stderr by
                                                             its line, exit 2, nothing stored
``pvsettle prices show --node N --date YYYY-MM-DD``          the node's prices of that day as one
``[--market day-ahead|real-time] [--source S]``              JSON object, from the version imported
``[--version V]``                                            last (the others named); exit 2 when
                                                             there are none
==========================================================  =========================================

The file's columns and rules are in :mod:`settlement.market.prices` and the README ("Market
prices").
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

from server.cli.common import on_database

MARKET_CHOICES = ("day-ahead", "real-time")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``prices`` command to the ``pvsettle`` parser."""
    prices = subparsers.add_parser("prices", help="market price curves: import and show")
    sub = prices.add_subparsers(dest="action", metavar="ACTION", required=True)
    imported = sub.add_parser("import", help="import day-ahead and real-time prices from CSV or XLSX")
    imported.add_argument("file", type=Path, metavar="FILE")
    imported.add_argument("--check", action="store_true", help="report what would change, store nothing")
    imported.add_argument("--json", action="store_true", help="one JSON object instead of lines")
    imported.set_defaults(func=cmd_import)
    show = sub.add_parser("show", help="a node's prices of one day")
    show.add_argument("--node", required=True, metavar="N")
    show.add_argument("--date", required=True, metavar="YYYY-MM-DD")
    show.add_argument("--market", choices=MARKET_CHOICES, help="one market (default: both)")
    show.add_argument("--source", metavar="S", help="only this source")
    show.add_argument("--version", metavar="V", help="only this version")
    show.set_defaults(func=cmd_show)


def cmd_import(args: argparse.Namespace) -> int:
    from settlement.errors import DomainError
    from settlement.market import prices
    from settlement.portfolio.sheets import UnreadableFile

    try:
        outcome = on_database(lambda: prices.import_prices(args.file, check=args.check))
    except (UnreadableFile, DomainError) as exc:
        print(f"pvsettle prices import: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(outcome.as_dict(), ensure_ascii=False))
    if outcome.problems:
        for problem in outcome.problems:
            print(problem, file=sys.stderr)
        print(f"pvsettle prices import: {len(outcome.problems)} problems, nothing stored", file=sys.stderr)
        return 2
    if not args.json:
        for change in outcome.curves:
            print(change.describe())
    new = sum(c.new_days for c in outcome.curves)
    verb = "would add" if args.check else "added"
    print(f"{verb} {new} days in {len(outcome.curves)} curves", file=sys.stderr)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from settlement.errors import DomainError
    from settlement.market import prices
    from settlement.models import PriceMarket

    try:
        day = dt.date.fromisoformat(args.date)
    except ValueError:
        print(f"pvsettle prices show: --date {args.date!r} is not a date YYYY-MM-DD", file=sys.stderr)
        return 2
    markets = [PriceMarket(args.market)] if args.market else list(PriceMarket)
    try:
        found = on_database(lambda: prices.day_prices(args.node, day, markets, source=args.source,
                                                      version=args.version))
    except DomainError as exc:
        print(f"pvsettle prices show: {exc.message}", file=sys.stderr)
        return 2
    print(json.dumps({"node": args.node, "date": day.isoformat(), "curves": [f.as_dict() for f in found]},
                     ensure_ascii=False))
    return 0
