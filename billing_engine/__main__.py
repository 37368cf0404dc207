"""Command line: ``python -m billing_engine bill …`` and ``python -m billing_engine bench …``.

``bill --tariff FILE --intervals FILE``
    ``--tariff`` is a project tariff (:mod:`billing_engine.tariff`) or an OpenEI URDB record;
    ``--intervals`` a CSV ``timestamp,kwh`` (header optional; local time, interval-start labels,
    fixed 15/30/60-minute step; a timestamp with a UTC offset is converted to the tariff's
    zone).  Prints one line of JSON (DESIGN.md):
    ``{"currency":"CNY","months":[{"month":"2025-01","kwh":…,"periods":[{"period":0,"kwh":…,
    "amount_fen":…}],"energy_fen":…,"fixed_fen":…,"total_fen":…}],"total_fen":…}``.

``bench [--meter-years N] [--register-meters N] [--dtype float32|float64] [--no-pysam]``
    Runs :func:`billing_engine.bench.run` and prints its JSON object.

Bad input prints one line on stderr naming the place — file, line, field, hour — and exits
with status 2; it never prints a traceback.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import math
import sys
import zoneinfo
from typing import NoReturn

import numpy as np

from .billing import bill, summary
from .errors import BillingError, IntervalDataError
from .intervals import check_timestamps
from .tariff import Tariff
from .tariff_files import loads

EXIT_BAD_INPUT = 2


class _InputError(Exception):
    """Bad input, already worded for the user."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse's default prints the usage block; the contract is one line.
        raise _InputError(f"{self.prog}: {message}")


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise _InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise _InputError(f"{path}: not UTF-8 text") from None


def read_tariff(path: str) -> Tariff:
    """A tariff file (project format or URDB record), errors prefixed with the file name."""
    text = _read_text(path)
    try:
        return loads(text)
    except BillingError as exc:
        raise _InputError(f"{path}: {exc}") from None


def read_intervals(path: str, tariff: Tariff) -> tuple[np.datetime64, int, np.ndarray, list[int]]:
    """Read a ``timestamp,kwh`` CSV; return (start, step minutes, kWh, file line of each row)."""
    text = _read_text(path)
    stamps: list[_dt.datetime] = []
    values: list[float] = []
    lines: list[int] = []
    zone = zoneinfo.ZoneInfo(tariff.timezone) if tariff.timezone else None
    reader = csv.reader(text.splitlines())
    for row in reader:
        line = reader.line_num
        if not row or all(not f.strip() for f in row):
            continue
        if not stamps and row[0].strip().lower() == "timestamp":
            if [f.strip().lower() for f in row] != ["timestamp", "kwh"]:
                raise _InputError(f"{path} line {line}: header must be timestamp,kwh")
            continue
        if len(row) != 2:
            raise _InputError(f"{path} line {line}: expected 2 fields timestamp,kwh, got {len(row)}")
        raw_ts, raw_kwh = row[0].strip(), row[1].strip()
        try:
            ts = _dt.datetime.fromisoformat(raw_ts)
        except ValueError:
            raise _InputError(f"{path} line {line}: timestamp: not an ISO 8601 time: {raw_ts!r}") \
                from None
        if ts.tzinfo is not None:
            if zone is None:
                raise _InputError(f"{path} line {line}: timestamp: the tariff has no time zone, "
                                  f"give local times without an offset")
            ts = ts.astimezone(zone).replace(tzinfo=None)
        try:
            kwh = float(raw_kwh)
        except ValueError:
            raise _InputError(f"{path} line {line}: kwh: not a number: {raw_kwh!r}") from None
        if not math.isfinite(kwh) or kwh < 0:
            raise _InputError(f"{path} line {line}: kwh: must be a finite number ≥ 0, got {raw_kwh}")
        stamps.append(ts)
        values.append(kwh)
        lines.append(line)
    if not stamps:
        raise _InputError(f"{path}: no intervals")
    try:
        start, step = check_timestamps(np.array(stamps, dtype="datetime64[s]"))
    except IntervalDataError as exc:
        where = f" line {lines[exc.index]}" if exc.index is not None else ""
        raise _InputError(f"{path}{where}: timestamp: {exc.message}") from None
    return start, step, np.array(values, dtype=np.float64), lines


def cmd_bill(args: argparse.Namespace) -> int:
    tariff = read_tariff(args.tariff)
    start, step, kwh, lines = read_intervals(args.intervals, tariff)
    try:
        result = bill(tariff, kwh, start, step)
    except IntervalDataError as exc:
        # The index is an interval position, i.e. a data row.
        where = f" line {lines[exc.index]}" if exc.index is not None else ""
        raise _InputError(f"{args.intervals}{where}: {exc.message}") from None
    except BillingError as exc:
        raise _InputError(f"{args.tariff}: {exc}") from None
    print(json.dumps(summary(result), separators=(",", ":"), ensure_ascii=False))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run

    result = run(meter_years=args.meter_years, register_meters=args.register_meters,
                 dtype=args.dtype, pysam=not args.no_pysam)
    print(json.dumps(result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m billing_engine",
                     description="Pure numpy billing engine of pvsettle.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p_bill = sub.add_parser("bill", help="bill an interval load profile under a tariff")
    p_bill.add_argument("--tariff", required=True, help="project tariff JSON or URDB record")
    p_bill.add_argument("--intervals", required=True, help="CSV timestamp,kwh")
    p_bill.set_defaults(func=cmd_bill)
    p_bench = sub.add_parser("bench", help="benchmark interval and register billing")
    p_bench.add_argument("--meter-years", type=int, default=10000)
    p_bench.add_argument("--register-meters", type=int, default=1_000_000)
    p_bench.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p_bench.add_argument("--no-pysam", action="store_true", help="skip the PySAM comparison")
    p_bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except _InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
