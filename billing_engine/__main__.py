"""Command line: ``python -m billing_engine bill …``, ``settle …`` and ``bench …``.

``bill --tariff FILE --intervals FILE``
    ``--tariff`` is a project tariff (:mod:`billing_engine.tariff`) or an OpenEI URDB record;
    ``--intervals`` a CSV ``timestamp,kwh`` (header optional; local time, interval-start labels,
    fixed 15/30/60-minute step; a timestamp with a UTC offset is converted to the tariff's
    zone).  Prints one line of JSON (DESIGN.md):
    ``{"currency":"CNY","months":[{"month":"2025-01","kwh":…,"periods":[{"period":0,"kwh":…,
    "amount_fen":…}],"energy_fen":…,"fixed_fen":…,"total_fen":…}],"total_fen":…}``.

``settle --prices PRICES.csv --intervals ENERGY.csv [--discount 0.9]``
    Market settlement (:mod:`billing_engine.market`).  PRICES.csv is ``start,price_yuan_per_kwh``
    and ENERGY.csv ``start,kwh`` (header optional; ISO local interval-start times, UTC+8 without
    daylight saving, ``+08:00`` allowed and any other offset refused; 15-minute or hourly
    intervals tiling whole days).  Hourly prices price 15-minute energy, each hour's price for
    its four quarters; prices may cover more days than the energy.  Energies are quantized to
    whole Wh, half up, from their decimal text; prices are exact to 1e-6 yuan/kWh (negative
    spot prices allowed).  Prints one line of JSON:
    ``{"days": [{"date", "kwh", "amount_fen"}], "total_kwh", "total_fen"}``, each day's amount
    = Σ kWh × price × discount rounded half up to the fen once, the total the sum of the days.

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
from typing import Callable, NoReturn

import numpy as np

from . import market, money
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


# A market series is local time at UTC+8 all year; an explicit +08:00 says the same thing.
_MARKET_OFFSET = _dt.timedelta(hours=8)


def read_market_series(path: str, column: str, parse: Callable[[str], int]
                       ) -> tuple[market.DayAxis, np.ndarray, list[int]]:
    """Read a ``start,<column>`` CSV of market intervals; return its days, values and file lines.

    ``parse(text)`` turns a value field into an integer (Wh or µyuan/kWh) or raises
    :class:`BillingError`.
    """
    text = _read_text(path)
    stamps: list[_dt.datetime] = []
    values: list[int] = []
    lines: list[int] = []
    reader = csv.reader(text.splitlines())
    for row in reader:
        line = reader.line_num
        if not row or all(not f.strip() for f in row):
            continue
        if not stamps and row[0].strip().lower() == "start":
            if [f.strip().lower() for f in row] != ["start", column]:
                raise _InputError(f"{path} line {line}: header must be start,{column}")
            continue
        if len(row) != 2:
            raise _InputError(f"{path} line {line}: expected 2 fields start,{column}, got {len(row)}")
        raw_ts, raw_value = row[0].strip(), row[1].strip()
        try:
            ts = _dt.datetime.fromisoformat(raw_ts)
        except ValueError:
            raise _InputError(f"{path} line {line}: start: not an ISO 8601 time: {raw_ts!r}") \
                from None
        if ts.tzinfo is not None:
            if ts.utcoffset() != _MARKET_OFFSET:
                raise _InputError(f"{path} line {line}: start: offset {ts.strftime('%z')} in "
                                  f"{raw_ts!r}: market times are local UTC+8 (+08:00) without "
                                  f"daylight saving")
            ts = ts.replace(tzinfo=None)
        try:
            values.append(parse(raw_value))
        except BillingError as exc:
            raise _InputError(f"{path} line {line}: {column}: {exc.message}") from None
        stamps.append(ts)
        lines.append(line)
    if not stamps:
        raise _InputError(f"{path}: no intervals")
    try:
        axis = market.day_axis(np.array(stamps, dtype="datetime64[s]"))
    except IntervalDataError as exc:
        where = f" line {lines[exc.index]}" if exc.index is not None else ""
        raise _InputError(f"{path}{where}: start: {exc.message}") from None
    return axis, np.array(values, dtype=np.int64), lines


def _energy_wh(text: str) -> int:
    # Half up from the decimal text, so that the result does not depend on binary floats.
    return money.nearest_units(text, money.WH_PER_KWH, what="kwh")


def _price_micro(text: str) -> int:
    return market.market_price_micro(text)


def cmd_settle(args: argparse.Namespace) -> int:
    try:
        terms = market.market_terms("market_discount", discount=args.discount)
    except BillingError as exc:
        raise _InputError(f"--discount: {exc.message}") from None
    p_axis, prices, _ = read_market_series(args.prices, "price_yuan_per_kwh", _price_micro)
    e_axis, wh, e_lines = read_market_series(args.intervals, "kwh", _energy_wh)
    if p_axis.step_minutes % e_axis.step_minutes:
        raise _InputError(f"{args.intervals}: hourly energy cannot be priced at the 15-minute "
                          f"prices of {args.prices}: give energy at 15 minutes")
    prices = market.repeat_prices(prices, p_axis.step_minutes, e_axis.step_minutes)
    first = int((e_axis.days[0] - p_axis.days[0]).astype(np.int64))
    missing = [i for i, day in enumerate(e_axis.days) if not 0 <= first + i < p_axis.days.size]
    if missing:
        day = e_axis.days[missing[0]]
        line = e_lines[missing[0] * e_axis.per_day]
        raise _InputError(f"{args.intervals} line {line}: no prices for {day} in {args.prices} "
                          f"(it has {p_axis.days[0]} to {p_axis.days[-1]})")
    window = prices[first * e_axis.per_day:(first + e_axis.days.size) * e_axis.per_day]
    result = market.settle(terms, wh, window, e_axis)
    print(json.dumps(market.daily_summary(result), separators=(",", ":"), ensure_ascii=False))
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
    p_settle = sub.add_parser("settle", help="settle interval energy at market prices, per day")
    p_settle.add_argument("--prices", required=True, help="CSV start,price_yuan_per_kwh")
    p_settle.add_argument("--intervals", required=True, help="CSV start,kwh")
    p_settle.add_argument("--discount", default="1", help="factor on the market price, e.g. 0.9")
    p_settle.set_defaults(func=cmd_settle)
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
