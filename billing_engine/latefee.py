"""Late fee (违约金) on arrears, after 供电营业规则 Art. 98.

Rule
----
Days are counted from the day after the due date up to and including the payment date, so a
bill due on 10 March and paid on 11 March is one day overdue.

* residential contracts: ``residential`` (default 1 ‰) of the arrears per day;
* other contracts: ``current_year`` (default 2 ‰) per day for the days that fall in the same
  calendar year as the due date, and ``cross_year`` (default 3 ‰) per day for the days after
  that year's end, i.e. once the arrears have crossed a year end;
* the fee is rounded once, half up, to fen; a fee under 1 元 on overdue arrears is charged
  as 1 元 (``minimum_fen``).

The rates are contract settings (DOMAIN.md), hence parameters here, not constants.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from . import money
from .errors import BillingError

__all__ = ["LateFeeRates", "overdue_days", "late_fee_fen"]


@dataclass(frozen=True)
class LateFeeRates:
    """Late-fee rates of a contract.

    Parameters
    ----------
    residential : decimal-like [1/day]
        Daily rate for residential contracts (1 ‰ → ``"0.001"``).
    current_year : decimal-like [1/day]
        Daily rate for other contracts while the arrears stay in the due date's year.
    cross_year : decimal-like [1/day]
        Daily rate for other contracts on days after that year's end.
    minimum_fen : int [fen]
        Smallest fee charged when any fee is due (1 元).
    """

    residential: Any = Decimal("0.001")
    current_year: Any = Decimal("0.002")
    cross_year: Any = Decimal("0.003")
    minimum_fen: int = 100

    def __post_init__(self) -> None:
        for name in ("residential", "current_year", "cross_year"):
            # Validate and normalize once, so the ppm properties cannot fail later.
            units = money.ppm(getattr(self, name), where=f"late_fee.{name}", what="late-fee rate")
            object.__setattr__(self, name, Decimal(units) / money.PPM)
        if int(self.minimum_fen) < 0:
            raise BillingError("minimum must be ≥ 0", where="late_fee.minimum_fen")

    @property
    def residential_ppm(self) -> int:
        return money.ppm(self.residential)

    @property
    def current_year_ppm(self) -> int:
        return money.ppm(self.current_year)

    @property
    def cross_year_ppm(self) -> int:
        return money.ppm(self.cross_year)


DEFAULT_RATES = LateFeeRates()


def _days(value: Any) -> np.ndarray:
    if isinstance(value, _dt.datetime):
        value = value.date()
    return np.asarray(value, dtype="datetime64[D]")


def overdue_days(due_date: Any, paid_date: Any) -> tuple[np.ndarray, np.ndarray]:
    """Days overdue, split at the end of the due date's calendar year.

    Parameters
    ----------
    due_date : date, datetime64 or array of them [day]
    paid_date : date, datetime64 or array of them [day]
        Payment date (or the date the fee is assessed for unpaid bills).

    Returns
    -------
    current_year : ndarray of int64 [day]
        Overdue days up to 31 December of the due date's year.
    cross_year : ndarray of int64 [day]
        Overdue days after that.
    """
    due = _days(due_date)
    paid = _days(paid_date)
    year_end = (due.astype("datetime64[Y]") + 1).astype("datetime64[D]") - 1
    total = np.maximum((paid - due).astype(np.int64), 0)
    current = np.clip((np.minimum(paid, year_end) - due).astype(np.int64), 0, None)
    return current, total - current


def late_fee_fen(arrears_fen: Any, due_date: Any, paid_date: Any, *, residential: Any,
                 rates: LateFeeRates = DEFAULT_RATES) -> Any:
    """Late fee for arrears paid (or assessed) on ``paid_date``.

    Vectorized: every argument may be an array (one entry per bill); they broadcast.

    Parameters
    ----------
    arrears_fen : int or ndarray of int [fen]
        Unpaid amount of the bill.
    due_date, paid_date : date, datetime64 or arrays [day]
    residential : bool or ndarray of bool
        Residential contracts pay ``rates.residential`` on every day.
    rates : LateFeeRates

    Returns
    -------
    int or ndarray of int64 [fen]
        A Python ``int`` when all inputs are scalars.
    """
    arrears = np.asarray(arrears_fen)
    if arrears.dtype.kind not in "iu":
        raise BillingError("arrears must be integer fen", where="arrears_fen")
    if np.any(arrears < 0):
        raise BillingError("arrears must be ≥ 0", where="arrears_fen")
    current, cross = overdue_days(due_date, paid_date)
    res = np.asarray(residential, dtype=bool)
    # Rate × days summed first, then multiplied by the arrears: one rounding per fee.
    ppm_days = np.where(res, rates.residential_ppm * (current + cross),
                        rates.current_year_ppm * current + rates.cross_year_ppm * cross)
    fee = money.round_product(arrears, ppm_days, divisor=money.PPM)
    owed = (arrears > 0) & ((current + cross) > 0)
    fee = np.where(owed, np.maximum(fee, rates.minimum_fen), 0).astype(np.int64)
    if fee.ndim == 0:
        return int(fee)
    return fee
