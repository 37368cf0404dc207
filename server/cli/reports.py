"""``pvsettle report …``: staff reports written to a file.

=============================================================  ==========================================
``pvsettle report cycle --period YYYY-MM [--plant CODE]``      per plant: energy, billed, paid, owed,
``    [--as-of YYYY-MM-DD] --format csv|xlsx --out FILE``       collection rate, arrears aging
``pvsettle report nearby --period YYYY-MM``                    monthly fees of nearby-consumption
``    --format csv|xlsx --out FILE``                            (就近消纳) projects
=============================================================  ==========================================

Each prints one JSON line: ``{"report", "period", "format", "out", "rows", "totals"}``, the totals
in fen (and the cycle report's collection rate as a decimal string). A bad argument, an unwritable file or a domain error exits 2 with one clear line on stderr
and no traceback; the file is written whole or not at all (a temporary file renamed into place).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from server import logs
from webapp.settings import Settings
from settlement.clock import local_today

FORMATS = ("csv", "xlsx")


def _period(text: str) -> str:
    from settlement.cycles.runs import parse_period
    from settlement.errors import InvalidInput

    try:
        parse_period(text)
    except InvalidInput as exc:
        raise argparse.ArgumentTypeError(exc.message) from None
    return text


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a date is YYYY-MM-DD, not {text!r}") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``report`` command to the ``pvsettle`` parser."""
    report = subparsers.add_parser("report", help="staff reports as CSV or XLSX")
    report_sub = report.add_subparsers(dest="report_name", metavar="NAME", required=True)

    cycle = report_sub.add_parser("cycle", help="per plant: energy, amounts, collection rate, arrears aging")
    cycle.add_argument("--period", required=True, type=_period, help="YYYY-MM")
    cycle.add_argument("--plant", help="one plant's code")
    cycle.add_argument("--as-of", type=_date, default=None,
                       help="local date the amounts and aging are taken at (default today)")
    _output_arguments(cycle)
    cycle.set_defaults(func=cmd_report_cycle)

    nearby = report_sub.add_parser("nearby", help="monthly fees of nearby-consumption (就近消纳) projects")
    nearby.add_argument("--period", required=True, type=_period, help="YYYY-MM")
    _output_arguments(nearby)
    nearby.set_defaults(func=cmd_report_nearby)


def _output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", required=True, choices=FORMATS, dest="fmt")
    parser.add_argument("--out", required=True, type=Path, metavar="FILE")
    parser.add_argument("--lang", choices=("zh", "en"), default="zh", help="header language (default zh)")


def cmd_report_cycle(args: argparse.Namespace) -> int:
    from settlement.billing import reports

    as_of = args.as_of or local_today()
    summary = _run(args, lambda: reports.cycle_report(args.period, plant_code=args.plant, as_of=as_of))
    if summary is None:
        return 2
    summary["as_of"] = as_of.isoformat()
    print(json.dumps(summary, ensure_ascii=False))
    return 0


def cmd_report_nearby(args: argparse.Namespace) -> int:
    from settlement.billing import reports

    summary = _run(args, lambda: reports.nearby_report(args.period))
    if summary is None:
        return 2
    print(json.dumps(summary, ensure_ascii=False))
    return 0


def _run(args: argparse.Namespace, make_report) -> dict[str, Any] | None:
    """Build the report from the database and write it; None (after saying why) when it cannot."""
    from server.cli.common import on_migrated
    from settlement.billing import reports
    from settlement.errors import DomainError

    out: Path = args.out
    if not out.parent.is_dir() or not os.access(out.parent, os.W_OK):
        print(f"pvsettle report: cannot write {out}: its folder does not exist or is not writable",
              file=sys.stderr)
        return None
    settings = Settings.from_env(require_secrets=False)
    logs.configure(settings.log_level, json_lines=False)

    try:
        report = asyncio.run(on_migrated(settings.database_url, make_report))
    except DomainError as exc:
        print(f"pvsettle report: {exc.message}", file=sys.stderr)
        return None
    # written beside the target and renamed: a reader never sees half a file
    handle, temporary = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(handle)
    try:
        rows = reports.write_report(report, temporary, args.fmt, lang=args.lang)
        os.replace(temporary, out)
    except OSError as exc:
        print(f"pvsettle report: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    amounts = {c.key for c in report.columns if c.kind == "fen"}
    totals = {k: v for k, v in (report.totals or {}).items() if k in amounts or k == "collection_rate"}
    return {"report": report.name, "period": args.period, "format": args.fmt, "out": str(out), "rows": rows,
            "totals": totals}
