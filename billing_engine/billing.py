"""Billing interval load profiles under a grid tariff: the engine behind ``python -m billing_engine bill``.

:func:`bill` turns interval kWh of any number of meters into lines per meter:

* one ``ENERGY`` line per (month, tariff version, period) present in the data: kWh × the
  period's price;
* one ``TIER`` line per (month, version, block) with a non-zero adder when the tariff has tiers:
  the kWh that fall in the block × the block's adder;
* one ``FIXED`` line per (month, version) when the tariff has a fixed monthly charge,
  prorated by the share of the calendar month the data covers (a full month pays it exactly).

Each line is rounded once, half up, to fen; VAT is added or extracted per line
(:func:`billing_engine.money.with_vat`); totals are sums of lines.  :func:`summary` gives the
CLI's JSON for one meter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import money
from .errors import IntervalDataError
from .intervals import EnergyTable, interval_energy
from .pricing import LineKind
from .tariff import Tariff
from .tou import month_label

__all__ = ["IntervalBill", "bill", "summary"]


@dataclass(frozen=True, eq=False)
class IntervalBill:
    """Lines of interval-billed meters; every meter has the same line slots.

    Attributes
    ----------
    periods : tuple of str
        The tariff's period names.
    kind : ndarray of int8, shape (lines,)
        :class:`~billing_engine.pricing.LineKind`: ENERGY, TIER or FIXED.
    month : ndarray of int64, shape (lines,)
        Months since 1970-01 (:func:`billing_engine.tou.month_label` gives ``"YYYY-MM"``).
    version : ndarray of int64, shape (lines,)
        Tariff version index.
    period : ndarray of int16, shape (lines,)
        Period index for ENERGY lines, -1 otherwise.
    block : ndarray of int16, shape (lines,)
        Tier block for TIER lines, -1 otherwise.
    unit_price_micro : ndarray of int64, shape (lines,) [µyuan/kWh]
        Period price, tier adder, or 0 for fixed charges.
    wh : ndarray of int64, shape (meters, lines) [Wh]
    amount_fen : ndarray of int64, shape (meters, lines) [fen]
        Payable, VAT included.
    tax_fen : ndarray of int64, shape (meters, lines) [fen]
    total_fen : ndarray of int64, shape (meters,) [fen]
    tax_total_fen : ndarray of int64, shape (meters,) [fen]
    currency : str
        ISO 4217 code of the tariff's money: the amounts are its hundredths ("fen" of CNY, cents
        of an OpenEI URDB record's USD).
    """

    periods: tuple[str, ...]
    kind: np.ndarray
    month: np.ndarray
    version: np.ndarray
    period: np.ndarray
    block: np.ndarray
    unit_price_micro: np.ndarray
    wh: np.ndarray
    amount_fen: np.ndarray
    tax_fen: np.ndarray
    total_fen: np.ndarray
    tax_total_fen: np.ndarray
    currency: str = "CNY"


class _LineColumns:
    """Bill line columns gathered piece by piece, joined and put in reading order once."""

    def __init__(self) -> None:
        self.kinds: list[np.ndarray] = []
        self.months: list[np.ndarray] = []
        self.versions: list[np.ndarray] = []
        self.periods: list[np.ndarray] = []
        self.blocks: list[np.ndarray] = []
        self.units: list[np.ndarray] = []
        self.whs: list[np.ndarray] = []
        self.priced: list[np.ndarray] = []

    def add(self, kind: np.ndarray, month: np.ndarray, version: np.ndarray, period: np.ndarray,
            block: np.ndarray, unit: np.ndarray, wh: np.ndarray, priced: np.ndarray) -> None:
        """Add lines: per-line columns of shape (n,), ``wh`` and ``priced`` of shape (meters, n)."""
        self.kinds.append(kind)
        self.months.append(month)
        self.versions.append(version)
        self.periods.append(period)
        self.blocks.append(block)
        self.units.append(unit)
        self.whs.append(wh)
        self.priced.append(priced)

    def ordered(self) -> tuple[np.ndarray, ...]:
        """kind, month, version, period, block, unit price, Wh and priced fen, in reading order."""
        # Lines in reading order: month, version, then energy, tier and fixed lines.
        kind = np.concatenate(self.kinds)
        line_month = np.concatenate(self.months).astype(np.int64)
        line_version = np.concatenate(self.versions).astype(np.int64)
        line_period = np.concatenate(self.periods)
        line_block = np.concatenate(self.blocks)
        order = np.lexsort((line_block, line_period, kind, line_version, line_month))
        kind, line_month, line_version = kind[order], line_month[order], line_version[order]
        line_period, line_block = line_period[order], line_block[order]
        line_unit = np.concatenate(self.units).astype(np.int64)[order]
        line_wh = np.concatenate(self.whs, axis=1)[:, order]
        priced_all = np.concatenate(self.priced, axis=1)[:, order]
        return (kind, line_month, line_version, line_period, line_block, line_unit, line_wh,
                priced_all)


def _add_energy_lines(lines: _LineColumns, tariff: Tariff, table: EnergyTable,
                      wh: np.ndarray) -> None:
    """One ENERGY line per bucket (segment, period): its Wh at the period's price."""
    b_seg = table.bucket_segment
    b_version = table.segment_version[b_seg]
    b_month = table.segment_month[b_seg]
    price = np.array([tariff.versions[int(v)].price_micro[int(m) % 12, int(p)]
                      for v, m, p in zip(b_version, b_month, table.bucket_period)], dtype=np.int64)
    lines.add(np.full(b_seg.size, LineKind.ENERGY, dtype=np.int8), b_month, b_version,
              table.bucket_period.astype(np.int16), np.full(b_seg.size, -1, dtype=np.int16),
              price, wh, money.amount_fen(wh, price[None, :]))


def _add_tier_and_fixed_lines(lines: _LineColumns, tariff: Tariff, table: EnergyTable,
                              wh: np.ndarray, month_wh: np.ndarray, year_wh: np.ndarray) -> None:
    """TIER lines per segment and block, and the segment's prorated FIXED line.

    ``month_wh`` and ``year_wh`` [Wh], shape (meters,), are the energy already used in the
    first segment's month and year; they are updated in place as the segments go by.
    """
    seg_month, seg_version = table.segment_month, table.segment_version
    b_seg = table.bucket_segment
    meters = wh.shape[0]
    for s in range(seg_month.size):
        ver = tariff.versions[int(seg_version[s])]
        if s and seg_month[s] != seg_month[s - 1]:
            month_wh[:] = 0
            if seg_month[s] % 12 == 0:
                year_wh[:] = 0
        used = wh[:, b_seg == s].sum(axis=1)
        if ver.tiers is not None:
            before = month_wh if ver.tiers.basis == "monthly" else year_wh
            split = ver.tiers.split(before, used)
            keep = np.flatnonzero(ver.tiers.adder_micro)
            if keep.size:
                n = keep.size
                lines.add(np.full(n, LineKind.TIER, dtype=np.int8), np.full(n, seg_month[s]),
                          np.full(n, seg_version[s]), np.full(n, -1, dtype=np.int16),
                          keep.astype(np.int16), ver.tiers.adder_micro[keep], split[:, keep],
                          money.amount_fen(split[:, keep], ver.tiers.adder_micro[keep][None, :]))
        month_wh += used
        year_wh += used
        if ver.fixed_monthly_fen:
            fixed = money.prorate_fen(ver.fixed_monthly_fen, table.segment_slots[s],
                                      int(table.month_slots[s]))
            lines.add(np.array([LineKind.FIXED], dtype=np.int8), seg_month[s:s + 1],
                      seg_version[s:s + 1], np.array([-1], dtype=np.int16),
                      np.array([-1], dtype=np.int16), np.zeros(1, dtype=np.int64),
                      np.zeros((meters, 1), dtype=np.int64),
                      np.broadcast_to(fixed, (meters, 1)).astype(np.int64))


def _with_vat_by_version(tariff: Tariff, line_version: np.ndarray,
                         priced: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Payable and tax [fen], shape (meters, lines), from priced lines [fen]."""
    amount = np.empty_like(priced)
    tax = np.empty_like(priced)
    # VAT terms are per version; lines of each version get their own.
    for v in np.unique(line_version):
        ver = tariff.versions[int(v)]
        cols = line_version == v
        amount[:, cols], tax[:, cols] = money.with_vat(priced[:, cols], ver.vat_ppm,
                                                       included=ver.prices_include_vat)
    return amount, tax


def bill(tariff: Tariff, kwh: Any, start: Any, step_minutes: int, *,
         ytd_kwh: Any = None, mtd_kwh: Any = None, chunk_bytes: int | None = None) -> IntervalBill:
    """Bill interval energy under a tariff.

    Parameters
    ----------
    tariff : Tariff
    kwh : ndarray, shape (meters, intervals) or (intervals,) [kWh]
        Energy drawn in each interval (float32 or float64 are used without a copy).
    start : datetime64, datetime or ISO string
        Local start of the first interval (interval-start labels).
    step_minutes : {15, 30, 60} [min]
    ytd_kwh : array_like, shape (meters,), optional [kWh]
        Energy earlier in the first billed calendar year (before ``start``), for tariffs with
        annual tiers.
    mtd_kwh : array_like, shape (meters,), optional [kWh]
        Energy earlier in the first billed month (before ``start``), for tariffs with monthly
        tiers when the data does not start on the 1st.
    chunk_bytes : int, optional
        Row-chunk size of the interval pass (see :func:`billing_engine.intervals.interval_energy`).

    Returns
    -------
    IntervalBill
    """
    extra = {} if chunk_bytes is None else {"chunk_bytes": chunk_bytes}
    table = interval_energy(kwh, tariff, start, step_minutes, **extra)
    meters = table.kwh.shape[0]
    wh = money.energy_wh(table.kwh)
    lines = _LineColumns()
    _add_energy_lines(lines, tariff, table, wh)
    _add_tier_and_fixed_lines(lines, tariff, table, wh,
                              month_wh=_carried_wh(mtd_kwh, meters, "mtd_kwh"),
                              year_wh=_carried_wh(ytd_kwh, meters, "ytd_kwh"))
    kind, line_month, line_version, line_period, line_block, line_unit, line_wh, priced = \
        lines.ordered()
    amount, tax = _with_vat_by_version(tariff, line_version, priced)
    return IntervalBill(
        periods=tariff.periods, kind=kind, month=line_month, version=line_version,
        period=line_period, block=line_block, unit_price_micro=line_unit, wh=line_wh,
        amount_fen=amount, tax_fen=tax, total_fen=amount.sum(axis=1), tax_total_fen=tax.sum(axis=1),
        currency=tariff.currency)


def _carried_wh(kwh: Any, meters: int, name: str) -> np.ndarray:
    if kwh is None:
        return np.zeros(meters, dtype=np.int64)
    try:
        arr = np.broadcast_to(np.asarray(kwh, dtype=np.float64), (meters,))
    except ValueError:
        raise IntervalDataError(f"must be a scalar or shape ({meters},)", where=name) from None
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise IntervalDataError("must be finite and ≥ 0", where=name)
    return money.energy_wh(arr)


def summary(result: IntervalBill, meter: int = 0) -> dict:
    """The CLI's JSON for one meter.

    ``{"currency": "CNY", "months": [{"month": "2025-01", "kwh": …, "periods": [{"period": 0,
    "kwh": …, "amount_fen": …}], "energy_fen": …, "fixed_fen": …, "total_fen": …}],
    "total_fen": …}``

    ``periods`` lists the tariff periods that occur in the month (lines of two tariff versions
    in one month are added per period).  ``energy_fen`` is the sum of the period amounts plus
    any tier surcharges, ``fixed_fen`` the fixed charges, ``total_fen`` their sum; every
    amount includes VAT.  kWh are exact to the Wh that was priced.
    """
    months_out = []
    total = 0
    for month in np.unique(result.month):
        in_month = result.month == month
        energy_cols = np.flatnonzero(in_month & (result.kind == LineKind.ENERGY))
        per_period: dict[int, list[int]] = {}
        for c in energy_cols:
            acc = per_period.setdefault(int(result.period[c]), [0, 0])
            acc[0] += int(result.wh[meter, c])
            acc[1] += int(result.amount_fen[meter, c])
        tier = int(result.amount_fen[meter, in_month & (result.kind == LineKind.TIER)].sum())
        fixed = int(result.amount_fen[meter, in_month & (result.kind == LineKind.FIXED)].sum())
        energy = sum(a for _, a in per_period.values()) + tier
        month_total = energy + fixed
        total += month_total
        months_out.append({
            "month": month_label(int(month)),
            "kwh": sum(w for w, _ in per_period.values()) / money.WH_PER_KWH,
            "periods": [{"period": p, "kwh": w / money.WH_PER_KWH, "amount_fen": a}
                        for p, (w, a) in sorted(per_period.items())],
            "energy_fen": energy,
            "fixed_fen": fixed,
            "total_fen": month_total,
        })
    return {"currency": result.currency, "months": months_out, "total_fen": total}
