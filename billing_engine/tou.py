"""The time-of-use calendar: local timestamps → (month, tariff version, period).

Time is local wall-clock time in the tariff's zone, at 15-minute resolution.  A timestamp is
classified by

* its **date**: the tariff version in force (by ``effective_from``), its month (→ season) and its
  day type — holiday if listed in that version's ``holidays``, else weekend if its weekday is
  in ``weekend_days``, else weekday;
* its **15-minute slot** of the day, looked up in the version's ``slot_period``.

Everything is computed once per *time axis* (the same for every meter), never per meter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import IntervalDataError
from .tariff import HOLIDAY, WEEKDAY, WEEKEND, Tariff

__all__ = ["SlotCalendar", "classify", "weekday_of", "month_label"]

_SLOT = np.timedelta64(15, "m")


@dataclass(frozen=True, eq=False)
class SlotCalendar:
    """Classification of 15-minute slots.

    Attributes
    ----------
    month : ndarray of int64, shape (slots,)
        Calendar month as months since 1970-01 (``datetime64[M]`` as an integer).
    version : ndarray of int64, shape (slots,)
        Index of the tariff version in force.
    day_type : ndarray of int8, shape (slots,)
        :data:`~billing_engine.tariff.WEEKDAY`, ``WEEKEND`` or ``HOLIDAY``.
    period : ndarray of int8, shape (slots,)
        Tariff period index.
    """

    month: np.ndarray
    version: np.ndarray
    day_type: np.ndarray
    period: np.ndarray


def weekday_of(days: np.ndarray) -> np.ndarray:
    """Day of week, Monday = 0, of ``datetime64[D]`` values."""
    # 1970-01-01 was a Thursday (3 when Monday is 0).
    return (days.astype(np.int64) + 3) % 7


def month_label(month: int) -> str:
    """Months since 1970-01 → ``"YYYY-MM"``."""
    return str(np.datetime64(int(month), "M"))


def classify(tariff: Tariff, slot_start: np.ndarray) -> SlotCalendar:
    """Classify 15-minute slots under a tariff.

    Parameters
    ----------
    tariff : Tariff
    slot_start : ndarray of datetime64, shape (slots,)
        Local start time of each slot; must lie on 15-minute boundaries.

    Returns
    -------
    SlotCalendar

    Raises
    ------
    IntervalDataError
        A slot not on a 15-minute boundary, or before the tariff's first version
        (``index`` is the first offending slot).
    """
    t = np.asarray(slot_start).astype("datetime64[m]")
    minutes = t.astype(np.int64)
    off = np.flatnonzero(minutes % 15)
    if off.size:
        raise IntervalDataError(f"{t[off[0]]} is not on a 15-minute boundary", index=int(off[0]))
    if t.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return SlotCalendar(month=empty, version=empty, day_type=empty.astype(np.int8),
                            period=empty.astype(np.int8))
    # Everything but the slot of the day is a property of the date: work it out per day.
    day_number = minutes // (24 * 60)
    first = int(day_number.min())
    day_index = day_number - first
    days = np.datetime64(first, "D") + np.arange(int(day_index.max()) + 1)
    slot = (minutes - day_number * (24 * 60)) // 15
    day_month = days.astype("datetime64[M]").astype(np.int64)
    day_version = tariff.version_index(days)
    early_days = day_version[day_index] < 0
    if early_days.any():
        i = int(np.flatnonzero(early_days)[0])
        raise IntervalDataError(
            f"{t[i]} is before the tariff's first effective date "
            f"{tariff.versions[0].effective_from}", index=i)
    weekday = weekday_of(days)
    day_type = np.full(days.shape, WEEKDAY, dtype=np.int8)
    for v in np.unique(day_version[day_version >= 0]):
        ver = tariff.versions[int(v)]
        sel = day_version == v
        day_type[sel & np.isin(weekday, ver.weekend_days)] = WEEKEND
        if ver.holidays.size:
            day_type[sel & np.isin(days, ver.holidays)] = HOLIDAY
    # One lookup table for all versions: (version, month of year, day type, slot) → period.
    table = np.stack([ver.slot_period for ver in tariff.versions])
    version = day_version[day_index]
    month = day_month[day_index]
    dtype_ = day_type[day_index]
    period = table[version, month % 12, dtype_, slot]
    return SlotCalendar(month=month, version=version.astype(np.int64), day_type=dtype_,
                        period=period)
