"""Import and look-up of market price curves (issue 17, point 1).

The file
--------
One table, a ``.csv`` file (UTF-8, Excel's BOM allowed) or the sheet ``prices`` of an ``.xlsx``
workbook, read by :func:`settlement.portfolio.sheets.read_table`. One row per interval, columns
in any order:

=======================  ===================================================================
column                   holds
=======================  ===================================================================
``node``                 trading node or province, as the source names it (≤ 64 characters)
``market``               ``day-ahead`` or ``real-time`` (also ``日前`` / ``实时``)
``source``               who published the prices (≤ 64), e.g. ``shandong-px``
``version``              the edition of the prices (≤ 64), e.g. ``2025-07-02 published``
``start``                the interval's start, ISO 8601 local time (``2025-07-01 00:15``),
                         China time without daylight saving; ``+08:00`` may be written, any
                         other offset is refused. An XLSX date-time cell is local time.
``price_yuan_per_mwh``   the price, **or** ``price_yuan_per_kwh``: the column's name states
                         the unit, one of the two per file. Negative spot prices are normal.
=======================  ===================================================================

A file may hold several nodes, both markets and several sources or versions; each
(node, market, source, version) is one :class:`~settlement.models.PriceCurve`, whose rows must
be in time order and tile whole local days at one step: 15-minute (96 a day) or hourly (24 a
day) intervals, the first at 00:00, the last ending at 24:00, no gap, no duplicate
(:func:`billing_engine.market.day_axis`). 30-minute intervals are refused.

Units and exactness
-------------------
Prices are stored as integer µyuan/kWh, converted from the cell's decimal text exactly:
1 yuan/MWh = 0.001 yuan/kWh = 1 000 µyuan/kWh, so a yuan/MWh price may have 3 decimals and a
yuan/kWh price 6; more is refused, never rounded. An XLSX number cell is read through its
shortest repr (``345.67``), what was typed. A price beyond ±100 yuan/kWh (±100 000 yuan/MWh,
far past every provincial cap) is refused as a mistake of unit or column.

Rules
-----
- **All or nothing.** Every problem is reported by its place (``prices.csv line 14: …``,
  ``sheet prices row 14: …``) and nothing is stored when there is one.
- **Idempotent.** A day already stored in the same curve with the same prices is left as it is,
  so importing a file again changes nothing. New days of a curve are added to it.
- **Versions are kept.** A stored day is never rewritten: the same day with other prices under
  the same version is refused; a corrected curve is imported under a new version and kept
  beside the old one. :func:`day_prices` shows, for a day, the version imported last.
- ``check=True`` does everything but store, and reports what would change.
"""

from __future__ import annotations

import datetime as dt
import decimal
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from billing_engine import market as engine
from billing_engine.errors import IntervalDataError
from settlement import audit
from settlement.errors import Conflict, NotFound
from settlement.models import PriceCurve, PriceDay, PriceMarket
from settlement.portfolio import sheets

__all__ = ["SHEET", "Problem", "CurveChange", "PriceImport", "parse_table", "import_prices",
           "DayPrices", "day_prices"]

SHEET = "prices"
UNIT_COLUMNS = {"price_yuan_per_mwh": ("yuan/MWh", 1_000), "price_yuan_per_kwh": ("yuan/kWh", 1_000_000)}
KEY_COLUMNS = ("node", "market", "source", "version", "start")
MAX_TEXT = 64
MAX_PRICE_MICRO = 100 * 10**6  # 100 yuan/kWh [µyuan/kWh]
# A year of both markets at 15 minutes is 70 080 rows a node: 500 000 rows is seven nodes' year
# or a month of 170 node-markets, in about 0.6 GB while parsed (350 000 rows: 12 s, 0.45 GB). Bigger exports are split by node
# or month (each part imports on its own, days join their curve).
MAX_ROWS = 500_000
MAX_PROBLEMS = 100  # a file wrong throughout says so in the first hundred lines
MARKETS = {"day-ahead": PriceMarket.DAY_AHEAD, "real-time": PriceMarket.REAL_TIME,
           "日前": PriceMarket.DAY_AHEAD, "实时": PriceMarket.REAL_TIME}
_UTC8 = dt.timedelta(hours=8)


@dataclass(frozen=True)
class Problem:
    """A refused row or file: where (``prices.csv line 14``) and why."""

    place: str
    message: str

    def __str__(self) -> str:
        return f"{self.place}: {self.message}"


@dataclass
class ParsedCurve:
    """One curve's rows of the file, checked: its days and their prices [µyuan/kWh]."""

    node: str
    market: PriceMarket
    source: str
    version: str
    unit: str
    step_minutes: int
    days: list[dt.date]
    prices: np.ndarray  # shape (days, per day) [µyuan/kWh]
    day_places: list[str]  # the place of each day's first row

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.node, self.market.value, self.source, self.version)


@dataclass
class CurveChange:
    """What an import does (or would do) to one curve."""

    node: str
    market: str
    source: str
    version: str
    unit: str
    step_minutes: int
    created: bool
    new_days: int
    unchanged_days: int
    first_day: str
    last_day: str

    def as_dict(self) -> dict:
        return dict(self.__dict__)

    def describe(self) -> str:
        verb = "create" if self.created else ("add to" if self.new_days else "unchanged")
        return (f"{verb} {self.market} {self.node} source={self.source} version={self.version} "
                f"({self.step_minutes}-minute, {self.unit}) {self.first_day}..{self.last_day}: "
                f"{self.new_days} new days, {self.unchanged_days} unchanged")


@dataclass
class PriceImport:
    """The outcome of :func:`import_prices`."""

    file: str
    check: bool
    stored: bool = False
    curves: list[CurveChange] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"file": self.file, "check": self.check, "stored": self.stored,
                "curves": [c.as_dict() for c in self.curves],
                "problems": [str(p) for p in self.problems]}


# --------------------------------------------------------------------------- parsing (no I/O)

def _text(value: Any, column: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"column {column!r} is empty")
    text = str(value).strip()
    if len(text) > MAX_TEXT:
        raise ValueError(f"column {column!r}: longer than {MAX_TEXT} characters")
    for i, ch in enumerate(text):
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            raise ValueError(f"column {column!r}: holds U+{ord(ch):04X} at position {i + 1}")
    return text


def _market(value: Any) -> PriceMarket:
    text = _text(value, "market").lower()
    try:
        return MARKETS[text]
    except KeyError:
        raise ValueError(f"column 'market': {text!r} is not day-ahead or real-time") from None


def _start(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        ts = value
    elif isinstance(value, dt.date):
        ts = dt.datetime.combine(value, dt.time())
    else:
        text = _text(value, "start")
        try:
            ts = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"column 'start': not an ISO 8601 time: {text!r}") from None
    if ts.tzinfo is not None:
        if ts.utcoffset() != _UTC8:
            raise ValueError(f"column 'start': offset {ts.strftime('%z')} in {str(value)!r}: market "
                             f"times are China time, UTC+8 (+08:00), without daylight saving")
        ts = ts.replace(tzinfo=None)
    return ts


def _price(value: Any, column: str, scale: int) -> int:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"column {column!r}: not a number: {value!r}")
    try:
        if isinstance(value, float):
            dec = Decimal(repr(value))  # the shortest repr is what was typed into the cell
        elif isinstance(value, (int, Decimal)):
            dec = Decimal(value)
        else:
            dec = Decimal(str(value).strip())
    except decimal.InvalidOperation:
        raise ValueError(f"column {column!r}: not a number: {str(value)[:40]!r}") from None
    if not dec.is_finite():
        raise ValueError(f"column {column!r}: not a finite number: {value!r}")
    micro = dec * scale
    if micro != micro.to_integral_value():
        decimals = 3 if scale == 1_000 else 6
        raise ValueError(f"column {column!r}: {value} has more than {decimals} decimals "
                         f"(prices are kept to 1e-6 yuan/kWh, exactly)")
    if abs(micro) > MAX_PRICE_MICRO:
        raise ValueError(f"column {column!r}: {value} is beyond ±100 yuan/kWh: a wrong unit or column?")
    return int(micro)


def parse_table(table: sheets.Table, header_place: str, file_label: str = "") -> tuple[list[ParsedCurve],
                                                                                    list[Problem]]:
    """The curves of a price table, each checked to tile whole days, and every problem found.

    Parameters
    ----------
    table : settlement.portfolio.sheets.Table
    header_place : str
        The header's place for messages, e.g. ``"prices.csv line 1"``.
    file_label : str
        The file for messages about it as a whole, e.g. ``"prices.csv"`` (default the table's name).

    Returns
    -------
    curves : list of ParsedCurve
        Empty when there is any problem.
    problems : list of Problem
    """
    columns = set(table.columns)
    units = [c for c in table.columns if c in UNIT_COLUMNS]
    missing = [c for c in KEY_COLUMNS if c not in columns]
    unknown = [c for c in table.columns if c not in KEY_COLUMNS and c not in UNIT_COLUMNS]
    header = []
    if missing:
        header.append(f"the header lacks {', '.join(missing)}")
    if len(units) != 1:
        header.append("the header must name exactly one price column, price_yuan_per_mwh or "
                      "price_yuan_per_kwh (its name states the unit)")
    if unknown:
        header.append(f"unknown column(s) {', '.join(unknown)}: the columns are "
                      f"{', '.join(KEY_COLUMNS)} and one price column")
    if header:
        return [], [Problem(header_place, h) for h in header]
    if not table.rows:
        return [], [Problem(header_place, "no price rows")]
    file_label = file_label or table.name
    unit_column = units[0]
    unit, scale = UNIT_COLUMNS[unit_column]

    problems: list[Problem] = []
    groups: dict[tuple, tuple[list[dt.datetime], list[int], list[str]]] = {}
    # Curves with a refused row are not checked for tiling: the missing row would be reported
    # again as a gap at the next line, which is not a second mistake. A row whose curve cannot
    # be told (a bad node or market) taints every curve.
    tainted: set[tuple] = set()
    unknown_curve = False
    for row in table.rows:
        key = None
        try:
            key = (_text(row.cells.get("node"), "node"), _market(row.cells.get("market")),
                   _text(row.cells.get("source"), "source"), _text(row.cells.get("version"), "version"))
            start = _start(row.cells.get("start"))
            price = _price(row.cells.get(unit_column), unit_column, scale)
        except ValueError as exc:
            problems.append(Problem(row.place, str(exc)))
            if key is not None:
                tainted.add(key)
            else:
                unknown_curve = True
            if len(problems) >= MAX_PROBLEMS:
                problems.append(Problem(file_label, f"stopped after {MAX_PROBLEMS} problems"))
                return [], problems
            continue
        starts, prices, places = groups.setdefault(key, ([], [], []))
        starts.append(start)
        prices.append(price)
        places.append(row.place)

    curves = []
    for (node, mkt, source, version), (starts, prices, places) in groups.items():
        if unknown_curve or (node, mkt, source, version) in tainted:
            continue
        try:
            axis = engine.day_axis(np.array(starts, dtype="datetime64[s]"))
        except IntervalDataError as exc:
            place = places[exc.index] if exc.index is not None else places[0]
            problems.append(Problem(place, f"{mkt.value} {node} ({source}, {version}): {exc.message}"))
            if len(problems) >= MAX_PROBLEMS:
                problems.append(Problem(file_label, f"stopped after {MAX_PROBLEMS} problems"))
                break
            continue
        per_day = axis.per_day
        curves.append(ParsedCurve(
            node=node, market=mkt, source=source, version=version, unit=unit,
            step_minutes=axis.step_minutes, days=[d.item() for d in axis.days],
            prices=np.array(prices, dtype=np.int64).reshape(axis.days.size, per_day),
            day_places=places[::per_day]))
    if problems:
        return [], problems
    return curves, problems


# --------------------------------------------------------------------------- storing

class _RollBack(Exception):
    """Leaves the import's transaction without storing (a check, or a problem found)."""


async def import_prices(path: Path, *, check: bool = False, actor: str = audit.SYSTEM) -> PriceImport:
    """Import a price file (module docstring): all or nothing, idempotent, versions kept.

    Parameters
    ----------
    path : Path
        A ``.csv`` file or an ``.xlsx`` workbook with the sheet ``prices``.
    check : bool
        Report what would change, store nothing.
    actor : str
        Who imports, for the audit events.

    Returns
    -------
    PriceImport
        ``problems`` non-empty means nothing was stored.

    Raises
    ------
    settlement.portfolio.sheets.UnreadableFile
        The file cannot be read as a table at all.
    settlement.errors.Conflict
        Another import stored the same curve at the same moment (try again: it is then a
        no-op or a refusal by line).
    """
    table = sheets.read_table(path, SHEET, max_rows=MAX_ROWS)
    if path.suffix.lower() == ".csv":
        header_place, file_label = f"{path.name} line 1", path.name
    else:
        header_place, file_label = f"sheet {SHEET} row 1", f"workbook {path.name}"
    outcome = PriceImport(file=path.name, check=check)
    curves, outcome.problems = parse_table(table, header_place, file_label)
    if outcome.problems:
        return outcome
    try:
        async with in_transaction() as conn:
            for parsed in curves:
                outcome.curves.append(await _store(parsed, path.name, actor, conn, outcome.problems))
            if outcome.problems or check:
                raise _RollBack
    except _RollBack:
        return outcome
    except IntegrityError as exc:
        raise Conflict(f"{path.name}: another import stored the same prices meanwhile ({exc}); "
                       f"import again") from None
    outcome.stored = True
    return outcome


async def _store(parsed: ParsedCurve, file_name: str, actor: str, conn: Any,
                 problems: list[Problem]) -> CurveChange:
    node, mkt, source, version = parsed.key
    curve = await PriceCurve.filter(node=node, market=parsed.market, source=source,
                                    version=version).using_db(conn).first()
    created = curve is None
    change = CurveChange(node=node, market=mkt, source=source, version=version, unit=parsed.unit,
                         step_minutes=parsed.step_minutes, created=created, new_days=0,
                         unchanged_days=0, first_day=parsed.days[0].isoformat(),
                         last_day=parsed.days[-1].isoformat())
    if curve is None:
        curve = await PriceCurve.create(node=node, market=parsed.market, source=source,
                                        version=version, unit=parsed.unit,
                                        step_minutes=parsed.step_minutes, file_name=file_name[:255],
                                        using_db=conn)
        stored: dict[dt.date, list[int]] = {}
    else:
        if curve.step_minutes != parsed.step_minutes:
            problems.append(Problem(parsed.day_places[0], (
                f"{mkt} {node} ({source}, {version}) is stored at {curve.step_minutes}-minute "
                f"intervals, this file has {parsed.step_minutes}-minute ones: import it as a new version")))
            return change
        rows = await PriceDay.filter(curve=curve, day__in=parsed.days).using_db(conn).values_list(
            "day", "prices_micro")
        stored = {day: prices for day, prices in rows}
    new = []
    for day, prices, place in zip(parsed.days, parsed.prices.tolist(), parsed.day_places):
        old = stored.get(day)
        if old is None:
            new.append(PriceDay(curve=curve, day=day, prices_micro=prices, file_name=file_name[:255]))
        elif old == prices:
            change.unchanged_days += 1
        else:
            first = next(i for i, (a, b) in enumerate(zip(old, prices)) if a != b)
            problems.append(Problem(place, (
                f"{day} of {mkt} {node} ({source}, {version}) is stored with other prices (interval "
                f"{first}: {_yuan(old[first])} stored, {_yuan(prices[first])} here): a stored day is "
                f"never rewritten, import corrected prices under a new version")))
    change.new_days = len(new)
    if new:
        await PriceDay.bulk_create(new, using_db=conn)
        await audit.record(actor, "ImportPrices", "price_curve", curve.id,
                           after={"node": node, "market": mkt, "source": source, "version": version,
                                  "file": file_name, "new_days": len(new),
                                  "first_day": new[0].day, "last_day": new[-1].day},
                           using_db=conn)
    return change


def _yuan(micro: int) -> str:
    """µyuan/kWh as an exact yuan/kWh decimal text."""
    return format(Decimal(micro).scaleb(-6).normalize(), "f")


# --------------------------------------------------------------------------- look-up

@dataclass(frozen=True)
class DayPrices:
    """One market's prices of a node on one local day, from the version imported last."""

    curve: PriceCurve
    day: dt.date
    prices_micro: list[int]  # [µyuan/kWh], interval i starts at 00:00 + i × step
    imported_at: dt.datetime
    other_versions: list[str]

    def as_dict(self) -> dict:
        step = dt.timedelta(minutes=self.curve.step_minutes)
        midnight = dt.datetime.combine(self.day, dt.time(), tzinfo=dt.timezone(_UTC8))
        return {"market": self.curve.market.value, "source": self.curve.source,
                "version": self.curve.version, "unit": self.curve.unit,
                "step_minutes": self.curve.step_minutes, "imported_at": self.imported_at.isoformat(),
                "other_versions": self.other_versions,
                "intervals": [{"start": (midnight + i * step).isoformat(timespec="minutes"),
                               "price_yuan_per_kwh": _yuan(p)}
                              for i, p in enumerate(self.prices_micro)]}


async def day_prices(node: str, day: dt.date, markets: Sequence[PriceMarket] = tuple(PriceMarket), *,
                     source: str | None = None, version: str | None = None) -> list[DayPrices]:
    """A node's prices on ``day`` for each of ``markets`` that has some.

    Of several versions holding the day, the one whose day was imported last is taken; the
    others are named in ``other_versions``.

    Raises
    ------
    settlement.errors.NotFound
        No prices of the node on that day (in those markets, source and version).
    """
    found = []
    for mkt in markets:
        query = PriceDay.filter(day=day, curve__node=node, curve__market=mkt)
        if source is not None:
            query = query.filter(curve__source=source)
        if version is not None:
            query = query.filter(curve__version=version)
        rows = await query.order_by("-imported_at", "-id").prefetch_related("curve")
        if rows:
            latest = rows[0]
            found.append(DayPrices(curve=latest.curve, day=day, prices_micro=list(latest.prices_micro),
                                   imported_at=latest.imported_at,
                                   other_versions=[f"{r.curve.source}/{r.curve.version}" for r in rows[1:]]))
    if not found:
        which = "/".join(m.value for m in markets)
        raise NotFound(f"no {which} prices of node {node!r} on {day.isoformat()}"
                       + (f" from source {source!r}" if source else "")
                       + (f" in version {version!r}" if version else ""))
    return found
