"""Tariffs: the project's own JSON format, its validation, and versions by effective date.

The format (``"format": "pvsettle-tariff/1"``)
-----------------------------------------------
::

    {
      "format": "pvsettle-tariff/1",
      "name": "Jiangsu industrial TOU",
      "note": "price levels are ILLUSTRATIVE ...",        (optional, free text)
      "timezone": "Asia/Shanghai",                        (optional, default Asia/Shanghai)
      "currency": "CNY",                                  (optional, default CNY)
      "periods": ["sharp", "peak", "flat", "valley", "deep_valley"],
      "versions": [
        {
          "effective_from": "2025-06-01",
          "seasons": [
            {"name": "jul_aug", "months": [7, 8],
             "weekday": "jul_aug", "weekend": "jul_aug",   (weekend optional: = weekday)
             "holiday": "some_schedule",                   (optional: full holiday schedule)
             "prices": {"peak": "1.10"}},                  (optional: season's own prices)
            ...
          ],
          "day_schedules": {
            "jul_aug": [["00:00", "06:00", "valley"], ["06:00", "11:00", "flat"], ...,
                        ["19:30", "21:30", "sharp"], ["22:00", "24:00", "flat"]]
          },
          "weekend_days": ["sat", "sun"],                  (optional, default sat+sun)
          "holidays": {"dates": ["2025-10-01", ...],       (optional)
                       "override": [["10:00", "14:00", "deep_valley"]]},
          "prices": {"sharp": "1.1140", "peak": "0.9700", ...},
          "tiers": {"basis": "monthly",                    (optional; or "annual")
                    "blocks": [{"up_to_kwh": 200, "adder": "0"},
                               {"up_to_kwh": 400, "adder": "0.05"},
                               {"up_to_kwh": null, "adder": "0.30"}]},
          "fixed_monthly": "0.00",                         (optional) [yuan/month]
          "vat_rate": "0.13",                              (optional, default 0)
          "prices_include_vat": true,                      (optional, default true)
          "late_fee": {"residential": "0.001", "current_year": "0.002",
                       "cross_year": "0.003"}              (optional, these defaults)
        }
      ]
    }

Rules
-----
* **Periods** are named once at the top; a period's *index* in ``periods`` is the number used
  everywhere else (arrays, the CLI's ``"period"``).
* **Seasons** partition the twelve months: each month in exactly one season.
* **Day schedules** are lists of ``[from, to, period]`` ranges at 15-minute resolution
  (``"19:30"`` is fine, ``"19:20"`` is not).  ``"24:00"`` ends the day; a range whose end is
  not after its start wraps past midnight (``["22:00", "02:00", "flat"]``).  Together the
  ranges must cover the whole day exactly once; a gap is an error naming the hours.
* **Day types**: weekday, weekend (``weekend_days``) and holiday.  On a listed holiday the day
  uses the season's ``holiday`` schedule if given, else its weekend schedule with the
  version's ``holidays.override`` ranges laid over it (the published "deep valley 10–14" rule).
* **Prices** are yuan/kWh as decimal strings (or JSON numbers), at most 6 decimals, never
  negative.  Every period a season can reach must be priced (season ``prices`` first, then the
  version's).  In files they are *per period*; month-to-month price differences are seasons.
* **Tiers** (阶梯电价) are blocks on the cumulative kWh of all periods, per month
  (``"monthly"``) or per calendar year (``"annual"``); each block adds ``adder`` yuan/kWh to
  the period prices for the kWh that fall in it.  Blocks are upper bounds, increasing, and
  the last is open (``null``).
* **Fixed monthly** charges are yuan per calendar month, prorated by the share of the month
  the billed data covers.
* **VAT**: ``vat_rate`` and whether the prices already include it.
* **Versions** apply from their ``effective_from`` (local date) until the next version; a
  billed span that crosses a change is split by date.  Data before the first version is
  refused.

URDB rate records are read into the same :class:`Tariff` by :mod:`billing_engine.urdb`;
:func:`billing_engine.tariff_files.loads` accepts either.

Internal form
-------------
A :class:`TariffVersion` holds ``slot_period``, shape (12 months, 3 day types, 96 slots) of
period indices, and ``price_micro``, shape (12 months, periods) [µyuan/kWh].  Everything the
billing code needs is an array lookup into these.
"""

from __future__ import annotations

import datetime as _dt
import zoneinfo
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import money
from .errors import BillingError, TariffError
from .latefee import LateFeeRates

__all__ = [
    "FORMAT",
    "SLOTS_PER_DAY",
    "WEEKDAY",
    "WEEKEND",
    "HOLIDAY",
    "NO_PERIOD",
    "TierBlocks",
    "TariffVersion",
    "Tariff",
    "parse_tariff",
    "slot_of",
    "schedule_from_ranges",
]

FORMAT = "pvsettle-tariff/1"
SLOTS_PER_DAY = 96
"""15-minute slots per day."""
WEEKDAY, WEEKEND, HOLIDAY = 0, 1, 2
"""Day types, the second axis of :attr:`TariffVersion.slot_period`."""
NO_PERIOD = -1

_DAY_NAMES = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}


@dataclass(frozen=True, eq=False)
class TierBlocks:
    """Tier blocks on cumulative kWh (all periods together).

    Attributes
    ----------
    basis : {"monthly", "annual"}
        What the cumulative kWh is counted over.
    upper_wh : ndarray of int64, shape (blocks - 1,) [Wh]
        Upper bounds of all blocks but the last (which is open).
    adder_micro : ndarray of int64, shape (blocks,) [µyuan/kWh]
        Price added to the period price for kWh in each block.
    """

    basis: str
    upper_wh: np.ndarray
    adder_micro: np.ndarray

    def split(self, before_wh: np.ndarray, used_wh: np.ndarray) -> np.ndarray:
        """Energy of a span per block.

        Parameters
        ----------
        before_wh : ndarray of int64, shape (meters,) [Wh]
            Cumulative energy of the basis (month or year) before the span.
        used_wh : ndarray of int64, shape (meters,) [Wh]
            Energy of the span.

        Returns
        -------
        ndarray of int64, shape (meters, blocks) [Wh]
        """
        lower = np.concatenate([[0], self.upper_wh])
        upper = np.concatenate([self.upper_wh, [np.iinfo(np.int64).max // 4]])
        start = before_wh[:, None]
        end = (before_wh + used_wh)[:, None]
        return np.clip(end, lower, upper) - np.clip(start, lower, upper)


@dataclass(frozen=True, eq=False)
class TariffVersion:
    """One version of a tariff, in force from ``effective_from`` until the next version.

    Attributes
    ----------
    effective_from : datetime.date
        First local date the version applies to.
    slot_period : ndarray of int8, shape (12, 3, 96)
        Period index by month (0 = January), day type (:data:`WEEKDAY`, :data:`WEEKEND`,
        :data:`HOLIDAY`) and 15-minute slot of the day.
    price_micro : ndarray of int64, shape (12, periods) [µyuan/kWh]
        Energy price by month and period.
    fixed_monthly_fen : int [fen/month]
    tiers : TierBlocks or None
    vat_ppm : int [ppm]
    prices_include_vat : bool
    weekend_days : tuple of int
        Days of the week (Monday = 0) that use the weekend schedule.
    holidays : ndarray of datetime64[D]
        Dates that use the holiday day type, sorted.
    late_fee : LateFeeRates
    season_of_month : tuple of str
        Season name of each month, for display.
    """

    effective_from: _dt.date
    slot_period: np.ndarray
    price_micro: np.ndarray
    fixed_monthly_fen: int = 0
    tiers: TierBlocks | None = None
    vat_ppm: int = 0
    prices_include_vat: bool = True
    weekend_days: tuple[int, ...] = (5, 6)
    holidays: np.ndarray = field(default_factory=lambda: np.array([], dtype="datetime64[D]"))
    late_fee: LateFeeRates = field(default_factory=LateFeeRates)
    season_of_month: tuple[str, ...] = ("",) * 12


@dataclass(frozen=True, eq=False)
class Tariff:
    """A tariff: named periods and its versions by effective date.

    Attributes
    ----------
    name : str
    periods : tuple of str
        Period names; a period's index here is its number everywhere.
    versions : tuple of TariffVersion
        Sorted by ``effective_from``, strictly increasing.
    timezone : str
        IANA zone of the local time the schedules are written in; ``""`` when unknown
        (URDB records), in which case interval times must already be local.
    currency : str
    note : str
        Free text carried from the file (e.g. "price levels are illustrative").
    """

    name: str
    periods: tuple[str, ...]
    versions: tuple[TariffVersion, ...]
    timezone: str = "Asia/Shanghai"
    currency: str = "CNY"
    note: str = ""

    @property
    def effective_dates(self) -> np.ndarray:
        """``effective_from`` of each version, as datetime64[D]."""
        return np.array([v.effective_from for v in self.versions], dtype="datetime64[D]")

    def version_index(self, days: Any) -> np.ndarray:
        """Index of the version in force on each local date (-1 before the first)."""
        days = np.asarray(days, dtype="datetime64[D]")
        return np.searchsorted(self.effective_dates, days, side="right") - 1

    def version_at(self, day: _dt.date) -> TariffVersion:
        """The version in force on a local date."""
        i = int(self.version_index(np.datetime64(day, "D")))
        if i < 0:
            raise TariffError(f"no version in force on {day}: the first starts "
                              f"{self.versions[0].effective_from}", where="versions")
        return self.versions[i]


# --------------------------------------------------------------------------- parsing helpers

def slot_of(text: Any, *, where: str) -> int:
    """``"HH:MM"`` → 15-minute slot index 0..96 (``"24:00"`` → 96)."""
    if not isinstance(text, str) or len(text.split(":")) != 2:
        raise TariffError(f"time must be \"HH:MM\", got {text!r}", where=where)
    hh, mm = text.split(":")
    if not (hh.isdigit() and mm.isdigit()):
        raise TariffError(f"time must be \"HH:MM\", got {text!r}", where=where)
    minutes = int(hh) * 60 + int(mm)
    if int(mm) >= 60 or minutes > 24 * 60:
        raise TariffError(f"no such time of day {text!r}", where=where)
    if minutes % 15:
        raise TariffError(f"{text} is not on a 15-minute boundary", where=where)
    return minutes // 15


def _hhmm(slot: int) -> str:
    return f"{slot * 15 // 60:02d}:{slot * 15 % 60:02d}"


def _slot_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Runs of True in a boolean slot mask, as (start, end) slot pairs."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def _describe_runs(mask: np.ndarray) -> str:
    return ", ".join(f"{_hhmm(a)}-{_hhmm(b)}" for a, b in _slot_runs(mask))


def schedule_from_ranges(ranges: Any, period_index: dict[str, int], *, where: str,
                         complete: bool = True) -> np.ndarray:
    """Day schedule ranges → period index per 15-minute slot.

    Parameters
    ----------
    ranges : list of [from "HH:MM", to "HH:MM", period name]
    period_index : dict
        Period name → index.
    where : str
        Place of the schedule, for error messages.
    complete : bool
        True: the ranges must cover the whole day.  False (holiday overrides): uncovered slots
        are :data:`NO_PERIOD`.

    Returns
    -------
    ndarray of int8, shape (96,)
    """
    if not isinstance(ranges, list) or not ranges:
        raise TariffError("a day schedule is a non-empty list of [from, to, period]", where=where)
    slots = np.full(SLOTS_PER_DAY, NO_PERIOD, dtype=np.int8)
    for i, item in enumerate(ranges):
        here = f"{where}[{i}]"
        if not isinstance(item, list) or len(item) != 3:
            raise TariffError("each range is [from, to, period]", where=here)
        start, end = slot_of(item[0], where=here), slot_of(item[1], where=here)
        if item[2] not in period_index:
            raise TariffError(f"unknown period {item[2]!r} (periods: {', '.join(period_index)})",
                              where=here)
        if start == SLOTS_PER_DAY:
            raise TariffError("a range cannot start at 24:00", where=here)
        if end > start:
            idx = np.arange(start, end)
        elif end == start:
            raise TariffError(f"empty range {item[0]}-{item[1]}", where=here)
        else:  # wraps past midnight
            idx = np.concatenate([np.arange(start, SLOTS_PER_DAY), np.arange(0, end)])
        taken = slots[idx] != NO_PERIOD
        if taken.any():
            mask = np.zeros(SLOTS_PER_DAY, dtype=bool)
            mask[idx[taken]] = True
            raise TariffError(f"{_describe_runs(mask)} is given more than one period", where=here)
        slots[idx] = period_index[item[2]]
    if complete and (slots == NO_PERIOD).any():
        raise TariffError(f"{_describe_runs(slots == NO_PERIOD)} has no period", where=where)
    return slots


def _date(value: Any, *, where: str) -> _dt.date:
    if not isinstance(value, str):
        raise TariffError(f"date must be \"YYYY-MM-DD\", got {value!r}", where=where)
    try:
        return _dt.date.fromisoformat(value)
    except ValueError:
        raise TariffError(f"date must be \"YYYY-MM-DD\", got {value!r}", where=where) from None


def _obj(value: Any, *, where: str, what: str = "an object") -> dict:
    if not isinstance(value, dict):
        raise TariffError(f"must be {what}", where=where)
    return value


def _units(fn, value: Any, *, where: str, what: str) -> int:
    """A decimal quantity through a :mod:`money` converter; its refusal becomes a TariffError."""
    try:
        return fn(value, where=where, what=what)
    except BillingError as exc:
        raise TariffError(exc.message, where=where) from None


def _price(value: Any, *, where: str) -> int:
    return _units(money.price_micro, value, where=where, what="price")


def _kwh_to_wh(value: Any, *, where: str, what: str) -> int:
    return money.to_units(value, money.WH_PER_KWH, where=where, what=what)


# --------------------------------------------------------------------------- the parser

def _parse_tiers(obj: Any, *, where: str) -> TierBlocks:
    obj = _obj(obj, where=where)
    basis = obj.get("basis")
    if basis not in ("monthly", "annual"):
        raise TariffError(f"basis must be \"monthly\" or \"annual\", got {basis!r}",
                          where=f"{where}.basis")
    blocks = obj.get("blocks")
    if not isinstance(blocks, list) or not blocks:
        raise TariffError("blocks must be a non-empty list", where=f"{where}.blocks")
    uppers, adders = [], []
    for i, block in enumerate(blocks):
        here = f"{where}.blocks[{i}]"
        block = _obj(block, where=here)
        adders.append(_price(block.get("adder", 0), where=f"{here}.adder"))
        up = block.get("up_to_kwh")
        last = i == len(blocks) - 1
        if last:
            if up is not None:
                raise TariffError("the last block must be open (up_to_kwh: null)",
                                  where=f"{here}.up_to_kwh")
            continue
        if up is None:
            raise TariffError("only the last block may be open", where=f"{here}.up_to_kwh")
        wh = _units(_kwh_to_wh, up, where=f"{here}.up_to_kwh", what="up_to_kwh")
        if uppers and wh <= uppers[-1]:
            raise TariffError("block bounds must increase", where=f"{here}.up_to_kwh")
        if wh <= 0:
            raise TariffError("block bounds must be > 0", where=f"{here}.up_to_kwh")
        uppers.append(wh)
    return TierBlocks(basis, np.array(uppers, dtype=np.int64), np.array(adders, dtype=np.int64))


def _period_prices(raw: Any, period_index: dict[str, int], *, where: str) -> dict[int, int]:
    """Prices by period name, keyed by period index [micro-yuan/kWh]."""
    raw = _obj(raw, where=where)
    out = {}
    for name, value in raw.items():
        if name not in period_index:
            raise TariffError(f"unknown period {name!r}", where=f"{where}.{name}")
        out[period_index[name]] = _price(value, where=f"{where}.{name}")
    return out


def _parse_weekend_days(obj: dict, *, where: str) -> list[str]:
    weekend_days = obj.get("weekend_days", ["sat", "sun"])
    if not isinstance(weekend_days, list) or any(d not in _DAY_NAMES for d in weekend_days):
        raise TariffError(f"weekend_days must list day names among {', '.join(_DAY_NAMES)}",
                          where=f"{where}.weekend_days")
    return weekend_days


def _parse_holidays(obj: dict, period_index: dict[str, int], *,
                    where: str) -> tuple[list[_dt.date], np.ndarray | None]:
    """The version's holiday dates (sorted, distinct) and its override ranges, if any."""
    holidays = _obj(obj.get("holidays", {}), where=f"{where}.holidays")
    holiday_dates = holidays.get("dates", [])
    if not isinstance(holiday_dates, list):
        raise TariffError("dates must be a list", where=f"{where}.holidays.dates")
    dates = sorted({_date(d, where=f"{where}.holidays.dates[{i}]") for i, d in enumerate(holiday_dates)})
    override = None
    if "override" in holidays:
        override = schedule_from_ranges(holidays["override"], period_index,
                                        where=f"{where}.holidays.override", complete=False)
    return dates, override


def _season_day_shapes(season: dict, schedules: dict[str, np.ndarray],
                       override: np.ndarray | None, *, here: str) -> np.ndarray:
    """A season's weekday, weekend and holiday schedules, shape (3, SLOTS_PER_DAY)."""
    def schedule(key: str, default: str | None) -> np.ndarray:
        ref = season.get(key, default)
        if ref is None:
            raise TariffError(f"missing \"{key}\" day schedule", where=f"{here}.{key}")
        if ref not in schedules:
            raise TariffError(f"unknown day schedule {ref!r}", where=f"{here}.{key}")
        return schedules[ref]

    weekday = schedule("weekday", None)
    weekend = schedule("weekend", season.get("weekday"))
    if "holiday" in season:
        holiday = schedule("holiday", None)
    elif override is not None:
        # A holiday is a day off: the weekend shape, except where the override speaks.
        holiday = np.where(override != NO_PERIOD, override, weekend).astype(np.int8)
    else:
        holiday = weekend
    return np.stack([weekday, weekend, holiday])


def _parse_seasons(seasons: Any, periods: tuple[str, ...], schedules: dict[str, np.ndarray],
                   base_prices: dict[int, int], override: np.ndarray | None, *,
                   where: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Lay the seasons over the twelve months.

    Returns
    -------
    slot_period : ndarray, shape (12, 3, SLOTS_PER_DAY), int8
        Period index per month, day type and slot.
    price : ndarray, shape (12, periods), int64 [micro-yuan/kWh]
    season_of_month : list of str, length 12
    """
    period_index = {name: i for i, name in enumerate(periods)}
    if not isinstance(seasons, list) or not seasons:
        raise TariffError("seasons must be a non-empty list", where=f"{where}.seasons")
    slot_period = np.full((12, 3, SLOTS_PER_DAY), NO_PERIOD, dtype=np.int8)
    price = np.zeros((12, len(periods)), dtype=np.int64)
    season_of_month = [""] * 12
    month_seen: dict[int, str] = {}
    for si, season in enumerate(seasons):
        here = f"{where}.seasons[{si}]"
        season = _obj(season, where=here)
        name = str(season.get("name", f"season{si}"))
        day_shapes = _season_day_shapes(season, schedules, override, here=here)
        season_prices = dict(base_prices)
        if "prices" in season:
            season_prices.update(_period_prices(season["prices"], period_index, where=f"{here}.prices"))
        used = set(np.unique(day_shapes).tolist())
        missing = sorted(used - set(season_prices))
        if missing:
            raise TariffError(f"no price for period {periods[missing[0]]!r} used in season {name!r}",
                              where=f"{where}.prices")
        months = season.get("months")
        if not isinstance(months, list) or not months:
            raise TariffError("months must be a non-empty list", where=f"{here}.months")
        for month in months:
            if not isinstance(month, int) or not 1 <= month <= 12:
                raise TariffError(f"no such month {month!r}", where=f"{here}.months")
            if month in month_seen:
                raise TariffError(f"month {month} is already in season {month_seen[month]!r}",
                                  where=f"{here}.months")
            month_seen[month] = name
            season_of_month[month - 1] = name
            slot_period[month - 1] = day_shapes
            for p, micro in season_prices.items():
                price[month - 1, p] = micro
    missing_months = [m for m in range(1, 13) if m not in month_seen]
    if missing_months:
        raise TariffError(f"months {missing_months} belong to no season", where=f"{where}.seasons")
    return slot_period, price, season_of_month


def _parse_late_fee(obj: dict, *, where: str) -> LateFeeRates:
    late = _obj(obj.get("late_fee", {}), where=f"{where}.late_fee")
    try:
        return LateFeeRates(**{k: late[k] for k in ("residential", "current_year", "cross_year")
                               if k in late})
    except BillingError as exc:
        raise TariffError(exc.message, where=exc.where and f"{where}.{exc.where}") from None


def _parse_version(obj: Any, periods: tuple[str, ...], *, where: str) -> TariffVersion:
    obj = _obj(obj, where=where)
    period_index = {name: i for i, name in enumerate(periods)}
    effective = _date(obj.get("effective_from"), where=f"{where}.effective_from")

    raw_schedules = _obj(obj.get("day_schedules"), where=f"{where}.day_schedules")
    schedules = {name: schedule_from_ranges(r, period_index, where=f"{where}.day_schedules.{name}")
                 for name, r in raw_schedules.items()}
    base_prices = _period_prices(obj.get("prices", {}), period_index, where=f"{where}.prices")
    weekend_days = _parse_weekend_days(obj, where=where)
    dates, override = _parse_holidays(obj, period_index, where=where)
    slot_period, price, season_of_month = _parse_seasons(
        obj.get("seasons"), periods, schedules, base_prices, override, where=where)

    tiers = _parse_tiers(obj["tiers"], where=f"{where}.tiers") if obj.get("tiers") else None
    fixed = _units(money.yuan_to_fen, obj.get("fixed_monthly", 0), where=f"{where}.fixed_monthly",
                   what="fixed monthly charge")
    vat = _units(money.ppm, obj.get("vat_rate", 0), where=f"{where}.vat_rate", what="VAT rate")
    if vat >= money.PPM:
        raise TariffError("VAT rate must be below 1", where=f"{where}.vat_rate")
    incl = obj.get("prices_include_vat", True)
    if not isinstance(incl, bool):
        raise TariffError("must be true or false", where=f"{where}.prices_include_vat")
    late_fee = _parse_late_fee(obj, where=where)
    return TariffVersion(
        effective_from=effective,
        slot_period=slot_period,
        price_micro=price,
        fixed_monthly_fen=fixed,
        tiers=tiers,
        vat_ppm=vat,
        prices_include_vat=incl,
        weekend_days=tuple(sorted(_DAY_NAMES[d] for d in weekend_days)),
        holidays=np.array(dates, dtype="datetime64[D]"),
        late_fee=late_fee,
        season_of_month=tuple(season_of_month),
    )


def parse_tariff(obj: Any) -> Tariff:
    """Validate a project-format tariff (already decoded JSON) into a :class:`Tariff`.

    Parameters
    ----------
    obj : dict
        Decoded JSON; decode with ``parse_float=decimal.Decimal`` to keep prices exact.

    Raises
    ------
    TariffError
        Naming the place, e.g. ``versions[0].day_schedules.summer: 02:00-06:00 has no period``.
    """
    obj = _obj(obj, where="(top level)", what="a JSON object")
    fmt = obj.get("format")
    if fmt != FORMAT:
        raise TariffError(f"format must be {FORMAT!r}, got {fmt!r}", where="format")
    periods = obj.get("periods")
    if (not isinstance(periods, list) or not periods
            or not all(isinstance(p, str) and p for p in periods)):
        raise TariffError("periods must be a non-empty list of names", where="periods")
    if len(set(periods)) != len(periods):
        raise TariffError("period names must be unique", where="periods")
    if len(periods) > 127:
        raise TariffError("at most 127 periods", where="periods")
    versions = obj.get("versions")
    if not isinstance(versions, list) or not versions:
        raise TariffError("versions must be a non-empty list", where="versions")
    parsed = tuple(_parse_version(v, tuple(periods), where=f"versions[{i}]")
                   for i, v in enumerate(versions))
    for i in range(1, len(parsed)):
        if parsed[i].effective_from <= parsed[i - 1].effective_from:
            raise TariffError("versions must be in increasing effective_from order",
                              where=f"versions[{i}].effective_from")
    timezone = obj.get("timezone", "Asia/Shanghai")
    try:
        if not isinstance(timezone, str):
            raise ValueError
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise TariffError(f"unknown time zone {timezone!r}", where="timezone") from None
    return Tariff(name=str(obj.get("name", "")), periods=tuple(periods), versions=parsed,
                  timezone=timezone, currency=str(obj.get("currency", "CNY")),
                  note=str(obj.get("note", "")))
