"""Market settlement: energy per interval × price per interval, per day, exact to the fen.

In spot-market provinces a nearby-consumption project settles by market rules at per-interval
prices (DOMAIN.md "Market settlement").  This module prices interval energy of many meters at
once, an array of shape (meters, intervals), against one price curve (intervals,) or one curve
per meter (meters, intervals).

The interval axis
-----------------
Market intervals are **15 minutes** (96 a day) or **one hour** (24 a day), labelled by their
start in local time without daylight saving (Asia/Shanghai, UTC+8 all year, so every day has
exactly 96 or 24 intervals).  :func:`day_axis` checks that a series of start times tiles whole
days: the first interval starts at 00:00, the last one ends at 24:00, each interval follows the
previous one by exactly one step — no gap, no duplicate, nothing out of order — and hourly
intervals start on the hour.  30-minute intervals are refused: no provincial spot market
publishes them and accepting them would hide a half-filled 15-minute file.  Every refusal is an
:class:`~billing_engine.errors.IntervalDataError` whose ``index`` is the position of the first
offending start time, which the caller turns into a file line.

Units
-----
============  ===================  ====================================================
quantity      unit                 notes
============  ===================  ====================================================
energy        Wh (int64)           quantize float kWh first with
                                   :func:`billing_engine.money.energy_wh`; may be
                                   negative (a deviation, a net export)
price         µyuan/kWh (int64)    1e-6 yuan/kWh; spot prices may be negative
                                   (:func:`market_price_micro` converts a decimal)
factor        ppm (int)            discount, pass-through share; 0 … 10 (0 … 10 000 000)
amount        fen (int64)          each day's line rounded once, half up
============  ===================  ====================================================

``Wh × µyuan/kWh`` is an exact integer in 1e-9 yuan ("nano-yuan").  A day's intervals are
summed exactly in those units, multiplied by the contract factor in ppm (1e-15 yuan) and only
then rounded, once, half up (ties away from zero, :mod:`billing_engine.money`'s rule), to fen.
So a day's amount is exactly ``round_half_up(Σᵢ kWhᵢ × priceᵢ × factor)`` in fen, the same
rule as a TOU bill line (integer Wh, µyuan prices, one rounding per line), and a total is
the sum of its days.

Contract forms
--------------
How the *owner* is settled; chosen by name through :data:`CONTRACT_FORMS` (:func:`market_terms`).
For meter ``m`` and day ``d`` with intervals ``i``, energy ``Eᵢ`` [kWh] and market price
``Pᵢ`` [yuan/kWh]:

``"market_discount"`` — market price × discount
    ``amount[m, d] = round_half_up(100 × Σᵢ Eᵢ × Pᵢ × k)`` [fen], ``k`` the discount factor
    [-] (0.9 = the owner pays 90 % of the market value).  ``k = 1`` is plain market value.

``"fixed_pass_through"`` — fixed price with a market pass-through
    Each interval's unit price is ``F + s × (Pᵢ − R)`` [yuan/kWh]: the fixed contract price
    ``F`` [yuan/kWh], plus the share ``s`` [-] of how far the market price lies above (or
    below) the reference price ``R`` [yuan/kWh] the fixed price was agreed against.
    ``amount[m, d] = round_half_up(100 × Σᵢ Eᵢ × (F + s × (Pᵢ − R)))`` [fen].  ``s = 0`` is a
    plain fixed price; ``F = R, s = 1`` is the market price.  The unit price is never rounded
    on its own: only the day's amount is.

Deviation settlement
--------------------
Where a contract holds a day-ahead position ``Qᵢ`` [kWh] the metered real-time energy ``Eᵢ``
settles as ``Qᵢ × P_DAᵢ + (Eᵢ − Qᵢ) × P_RTᵢ`` per interval (:func:`settle_deviation`): the
position at the day-ahead price, the deviation (either sign) at the real-time price.  Without
a position the whole metered energy settles at the real-time price.  Each day gives two lines,
the day-ahead line ``round_half_up(100 × Σᵢ Qᵢ P_DAᵢ)`` and the deviation line
``round_half_up(100 × Σᵢ (Eᵢ − Qᵢ) P_RTᵢ)`` [fen], each rounded once; the day's amount is
their sum.

Integer range
-------------
Day sums are int64 when ``max|E| × max|P| × intervals per day`` fits (a 4 MW meter at 10
yuan/kWh is 1e6 Wh × 1e7 µyuan × 96 ≈ 1e15, far inside); beyond that the sums fall back to
Python integers, slower and still exact.  The final ``× factor ÷ 10¹³`` is split so that it
never leaves int64 (:func:`_round_factor`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from . import money
from .errors import BillingError, IntervalDataError, PricingError
from .intervals import quarter_hour_minutes

__all__ = [
    "STEPS_MINUTES",
    "CONTRACT_FORMS",
    "DayAxis",
    "day_axis",
    "market_price_micro",
    "repeat_prices",
    "MarketDiscount",
    "FixedPassThrough",
    "market_terms",
    "DailySettlement",
    "DeviationSettlement",
    "settle",
    "settle_deviation",
    "daily_summary",
]

STEPS_MINUTES = (15, 60)
"""Interval lengths a market series may have [min]."""
MAX_FACTOR_PPM = 10 * money.PPM
"""Largest discount or share [ppm]; it bounds the int64 split in :func:`_round_factor`."""

_MINUTES_PER_DAY = 1440
# Wh × µyuan/kWh is 1e-9 yuan; one fen is 1e-2 yuan.
_NANO_PER_FEN = 10**7
# A factor in ppm brings the unit to 1e-15 yuan; one fen is 1e13 of those.
_FACTOR_DIVISOR = _NANO_PER_FEN * money.PPM
_INT64_SAFE = 2.0**62


# --------------------------------------------------------------------------- the interval axis

@dataclass(frozen=True, eq=False)
class DayAxis:
    """Whole local days of market intervals.

    Attributes
    ----------
    days : ndarray of datetime64[D], shape (days,)
        The local dates, consecutive.
    step_minutes : int [min]
        15 or 60.
    """

    days: np.ndarray
    step_minutes: int

    @property
    def per_day(self) -> int:
        """Intervals in a day: 96 or 24."""
        return _MINUTES_PER_DAY // self.step_minutes

    @property
    def intervals(self) -> int:
        """Intervals on the axis: days × per_day."""
        return int(self.days.size) * self.per_day

    @property
    def start(self) -> np.datetime64:
        """Start of the first interval [minute], a local midnight."""
        return self.days[0].astype("datetime64[m]")


def _hhmm(t: np.datetime64) -> str:
    return str(t.astype("datetime64[m]"))[11:16]


def day_axis(starts: Any, *, step_minutes: int | None = None) -> DayAxis:
    """Check that interval start times tile whole days; return the days and the step.

    Parameters
    ----------
    starts : array_like of datetime64, shape (intervals,)
        Local interval-start times (no time zone: UTC+8 without daylight saving).
    step_minutes : {15, 60}, optional
        The expected step [min]; by default the most common difference between start times.

    Returns
    -------
    DayAxis

    Raises
    ------
    IntervalDataError
        ``index`` = position of the first offending start time: not on a 15-minute boundary,
        a 30-minute (or other) step, an hourly start off the hour, a duplicate, one out of
        order, a gap, a first day that does not start at 00:00 or a last day that does not end
        at 24:00.
    """
    ts, minutes = quarter_hour_minutes(starts)
    diffs = np.diff(minutes)
    if step_minutes is None:
        values, counts = np.unique(diffs[diffs > 0], return_counts=True)
        if values.size == 0:
            if diffs.size:
                raise IntervalDataError(f"duplicate interval start {ts[1].astype('datetime64[m]')}",
                                        index=1)
            raise IntervalDataError(f"day not tiled: {ts[0].astype('datetime64[D]')} has one "
                                    f"interval only", index=0)
        step_minutes = int(values[np.argmax(counts)])
        if step_minutes not in STEPS_MINUTES:
            at = int(np.flatnonzero(diffs == step_minutes)[0]) + 1
            raise IntervalDataError(f"{step_minutes}-minute intervals: market intervals are 15 "
                                    f"minutes or hourly", index=at)
    elif step_minutes not in STEPS_MINUTES:
        raise IntervalDataError(f"{step_minutes}-minute intervals: market intervals are 15 "
                                f"minutes or hourly")
    if step_minutes == 60:
        off = np.flatnonzero(minutes % 60)
        if off.size:
            i = int(off[0])
            raise IntervalDataError(f"hourly intervals start on the hour, not at "
                                    f"{ts[i].astype('datetime64[m]')}", index=i)
    # Order first: a swapped pair also looks like a gap followed by a step back, and the
    # message should say what is really wrong with the line.
    wrong = np.flatnonzero(diffs <= 0)
    if not wrong.size:
        wrong = np.flatnonzero(diffs != step_minutes)
    if wrong.size:
        i = int(wrong[0])
        d = int(diffs[i])
        prev, this = ts[i].astype("datetime64[m]"), ts[i + 1].astype("datetime64[m]")
        if d == 0:
            msg = f"duplicate interval start {this}"
        elif d < 0:
            msg = f"{this} comes after {prev}: interval starts must increase"
        elif d % step_minutes == 0:
            msg = (f"gap: {d // step_minutes - 1} interval(s) missing between {prev} and {this} "
                   f"({step_minutes}-minute intervals)")
        else:
            msg = f"{d} minutes from {prev} to {this} in a series of {step_minutes}-minute intervals"
        raise IntervalDataError(msg, index=i + 1)
    first_day = ts[0].astype("datetime64[D]")
    if minutes[0] % _MINUTES_PER_DAY:
        raise IntervalDataError(f"day not tiled: {first_day} starts at {_hhmm(ts[0])}, its first "
                                f"interval must start at 00:00", index=0)
    end = minutes[-1] + step_minutes
    if end % _MINUTES_PER_DAY:
        last = ts[-1]
        raise IntervalDataError(f"day not tiled: {last.astype('datetime64[D]')} ends at "
                                f"{_hhmm(last + np.timedelta64(step_minutes, 'm'))}, its last "
                                f"interval must end at 24:00", index=int(ts.size - 1))
    n_days = ts.size * step_minutes // _MINUTES_PER_DAY
    days = first_day + np.arange(n_days).astype("timedelta64[D]")
    return DayAxis(days=days, step_minutes=int(step_minutes))


def market_price_micro(value: Any, *, where: str = "", what: str = "price") -> int:
    """A market price [yuan/kWh] as integer µyuan/kWh, exactly; negative prices are allowed.

    More than 6 decimals is refused (:func:`billing_engine.money.to_units`), never rounded.
    """
    return money.to_units(value, money.PRICE_SCALE, where=where, what=what, minimum=None)


def repeat_prices(price_micro: Any, price_step: int, energy_step: int) -> np.ndarray:
    """Hourly prices on a 15-minute energy axis: each hour's price for its four quarters.

    Parameters
    ----------
    price_micro : array_like of int, shape (..., intervals) [µyuan/kWh]
    price_step, energy_step : {15, 60} [min]

    Returns
    -------
    ndarray of int64, shape (..., intervals × price_step / energy_step) [µyuan/kWh]

    Raises
    ------
    IntervalDataError
        Energy coarser than prices: an hour's energy cannot be split over 15-minute prices
        without knowing its profile.
    """
    prices = np.asarray(price_micro, dtype=np.int64)
    if price_step == energy_step:
        return prices
    if price_step % energy_step:
        raise IntervalDataError(f"{energy_step}-minute energy cannot be priced at "
                                f"{price_step}-minute prices: give energy at the price step or finer")
    return np.repeat(prices, price_step // energy_step, axis=-1)


# --------------------------------------------------------------------------- contract forms

def _factor(value: Any, where: str, what: str) -> int:
    try:
        k = money.ppm(value, where=where, what=what)
    except BillingError as exc:  # worded by money already; a contract term is a pricing error
        raise PricingError(exc.message, where=where) from None
    if k > MAX_FACTOR_PPM:
        raise PricingError(f"{what} must be at most {MAX_FACTOR_PPM // money.PPM}, got {value}",
                           where=where)
    return k


def _price(value: Any, where: str) -> int:
    try:
        return market_price_micro(value, where=where)
    except BillingError as exc:
        raise PricingError(exc.message, where=where) from None


@dataclass(frozen=True)
class MarketDiscount:
    """``"market_discount"``: market price × discount.

    Attributes
    ----------
    discount_ppm : int [ppm]
        e.g. 900 000 for 0.9.
    """

    discount_ppm: int

    def day_amount_fen(self, wh_sum: np.ndarray, nano_sum: np.ndarray) -> np.ndarray:
        """Day amounts [fen] from the day sums Σ Wh and Σ Wh × µyuan/kWh [1e-9 yuan]."""
        return _round_factor(np.zeros_like(nano_sum), nano_sum, self.discount_ppm)


@dataclass(frozen=True)
class FixedPassThrough:
    """``"fixed_pass_through"``: fixed price plus a share of the market's distance from a reference.

    Attributes
    ----------
    fixed_micro : int [µyuan/kWh]
        The contract's fixed price ``F``.
    reference_micro : int [µyuan/kWh]
        The market price ``R`` the fixed price was agreed against.
    share_ppm : int [ppm]
        The pass-through share ``s``: 0 = plain fixed price, 1 000 000 = full pass-through.
    """

    fixed_micro: int
    reference_micro: int
    share_ppm: int

    def day_amount_fen(self, wh_sum: np.ndarray, nano_sum: np.ndarray) -> np.ndarray:
        """Day amounts [fen] from the day sums Σ Wh and Σ Wh × µyuan/kWh [1e-9 yuan]."""
        # Σ E (F + s (P − R)) = F·ΣE + s·(ΣEP − R·ΣE): only the day sums are needed.
        fixed = _mul(wh_sum, self.fixed_micro)
        passed = _sub(nano_sum, _mul(wh_sum, self.reference_micro))
        return _round_factor(fixed, passed, self.share_ppm)


def _market_discount(*, discount: Any = "1") -> MarketDiscount:
    return MarketDiscount(discount_ppm=_factor(discount, "discount", "discount"))


def _fixed_pass_through(*, fixed_price: Any, reference_price: Any, pass_through: Any = "1"
                        ) -> FixedPassThrough:
    return FixedPassThrough(fixed_micro=_price(fixed_price, "fixed_price"),
                            reference_micro=_price(reference_price, "reference_price"),
                            share_ppm=_factor(pass_through, "pass_through", "pass-through share"))


CONTRACT_FORMS: dict[str, Callable[..., MarketDiscount | FixedPassThrough]] = {
    "market_discount": _market_discount,
    "fixed_pass_through": _fixed_pass_through,
}
"""Contract forms by name; each takes its terms as decimals (yuan/kWh, plain factors)."""


def market_terms(form: str, **terms: Any) -> MarketDiscount | FixedPassThrough:
    """The owner's market contract from its form and decimal terms.

    Parameters
    ----------
    form : {"market_discount", "fixed_pass_through"}
    **terms
        ``discount`` [-] for ``"market_discount"``; ``fixed_price`` [yuan/kWh],
        ``reference_price`` [yuan/kWh] and ``pass_through`` [-] for ``"fixed_pass_through"``.

    Raises
    ------
    PricingError
        An unknown form, a missing or unknown term, a term that is not an exact decimal, a
        factor below 0 or above 10.
    """
    try:
        make = CONTRACT_FORMS[form]
    except KeyError:
        raise PricingError(f"unknown market contract form {form!r}") from None
    try:
        return make(**terms)
    except TypeError as exc:
        raise PricingError(f"terms of {form!r}: {exc}") from None


# --------------------------------------------------------------------------- exact integers

def _bound(a: np.ndarray) -> float:
    if a.size == 0 or a.dtype == object:
        return 0.0
    return max(abs(float(a.max())), abs(float(a.min())))


def _mul(a: np.ndarray, scalar: int) -> np.ndarray:
    if a.dtype != object and _bound(a) * abs(scalar) < _INT64_SAFE:
        return a * np.int64(scalar)
    return a.astype(object) * int(scalar)


def _sub(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype != object and b.dtype != object and _bound(a) + _bound(b) < _INT64_SAFE:
        return a - b
    return a.astype(object) - b.astype(object)


def _round_factor(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """``round_half_up((10⁶·a + k·b) / 10¹³)`` exactly, elementwise.

    ``a`` and ``b`` are amounts in 1e-9 yuan, ``k`` a factor in ppm (0 … 10⁷): the result is
    fen.  The product would leave int64 from about 4 600 yuan a line, so it is split instead
    of widened: with ``a = qa·10⁷ + ra`` and ``b = qb·10⁷ + rb`` (floor division) and
    ``k·qb = q2·10⁶ + r2``, the numerator is ``(qa + q2)·10¹³ + ra·10⁶ + r2·10⁷ + k·rb``,
    every piece of which fits int64.  Object (Python int) arrays are rounded directly.
    """
    if not 0 <= k <= MAX_FACTOR_PPM:
        raise PricingError(f"factor {k} ppm is outside 0 … {MAX_FACTOR_PPM}")
    if a.dtype == object or b.dtype == object or max(_bound(a), _bound(b)) >= _INT64_SAFE:
        numer = a.astype(object) * money.PPM + b.astype(object) * int(k)
        return money.round_div(np.asarray(numer, dtype=object), _FACTOR_DIVISOR)
    a = a.astype(np.int64, copy=False)
    b = b.astype(np.int64, copy=False)
    qa, ra = np.divmod(a, _NANO_PER_FEN)
    qb, rb = np.divmod(b, _NANO_PER_FEN)
    q2, r2 = np.divmod(qb * np.int64(k), money.PPM)
    q = qa + q2
    r = ra * money.PPM + r2 * _NANO_PER_FEN + rb * np.int64(k)
    q += r // _FACTOR_DIVISOR
    r %= _FACTOR_DIVISOR
    # q + r/D with 0 ≤ r < D: half up away from zero is ≥ for a positive value, > for a negative.
    up = np.where(q >= 0, 2 * r >= _FACTOR_DIVISOR, 2 * r > _FACTOR_DIVISOR)
    return q + up


def _day_sums(wh: np.ndarray, price: np.ndarray, per_day: int, wh_bound: float | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Σ Wh and Σ Wh × µyuan/kWh [1e-9 yuan] per meter and day, exact.

    ``wh_bound`` is max |wh| when the caller knows it (a pass over the data saved).
    """
    meters, n = wh.shape
    days = n // per_day
    wh_days = wh.reshape(meters, days, per_day)
    if wh_bound is None:
        wh_bound = _bound(wh)
    if wh_bound * _bound(price) * per_day < _INT64_SAFE:
        # einsum sums the products as it goes, never holding the (meters, intervals) product:
        # measured 30× faster than multiply-then-sum on 10 000 meters × a month.
        if price.shape[0] == 1:
            nano = np.einsum("mdi,di->md", wh_days, price.reshape(days, per_day))
        else:
            nano = np.einsum("mdi,mdi->md", wh_days, price.reshape(meters, days, per_day))
    else:
        p_days = np.broadcast_to(price, (meters, n)).reshape(meters, days, per_day)
        nano = (wh_days.astype(object) * p_days.astype(object)).sum(axis=2)
    return _wh_day_sums(wh, per_day, wh_bound), nano


def _wh_day_sums(wh: np.ndarray, per_day: int, wh_bound: float) -> np.ndarray:
    """Σ Wh per meter and day, exact."""
    meters, n = wh.shape
    wh_days = wh.reshape(meters, n // per_day, per_day)
    if wh_bound * per_day < _INT64_SAFE:
        return wh_days.sum(axis=2)
    return wh_days.astype(object).sum(axis=2)


def _wh_matrix(wh: Any, axis: DayAxis, name: str) -> np.ndarray:
    data = np.asarray(wh)
    if data.ndim == 1:
        data = data[None, :]
    if data.ndim != 2:
        raise IntervalDataError(f"{name} must have shape (meters, intervals), got {data.shape}")
    if data.dtype.kind not in "iu":
        raise IntervalDataError(f"{name} must be integer Wh (quantize kWh with money.energy_wh), "
                                f"got {data.dtype}")
    if data.shape[1] != axis.intervals:
        raise IntervalDataError(f"{name} has {data.shape[1]} intervals, the {axis.days.size} days "
                                f"have {axis.intervals}")
    return data.astype(np.int64, copy=False)


def _price_matrix(price: Any, axis: DayAxis, meters: int, name: str) -> np.ndarray:
    data = np.asarray(price)
    if data.dtype.kind not in "iu":
        raise IntervalDataError(f"{name} must be integer µyuan/kWh, got {data.dtype}")
    if data.ndim == 1:
        data = data[None, :]
    if data.ndim != 2 or data.shape[0] not in (1, meters) or data.shape[1] != axis.intervals:
        raise IntervalDataError(f"{name} must have shape (intervals,) or (meters, intervals) = "
                                f"({meters}, {axis.intervals}), got {np.shape(price)}")
    return data.astype(np.int64, copy=False)


# --------------------------------------------------------------------------- settlement

@dataclass(frozen=True, eq=False)
class DailySettlement:
    """A contract's day lines for many meters.

    Attributes
    ----------
    days : ndarray of datetime64[D], shape (days,)
    wh : ndarray of int64, shape (meters, days) [Wh]
        Energy of each day.
    amount_fen : ndarray of int64, shape (meters, days) [fen]
        Each day's amount, rounded once, half up.
    total_fen : ndarray of int64, shape (meters,) [fen]
        Sum of the days.
    """

    days: np.ndarray
    wh: np.ndarray
    amount_fen: np.ndarray
    total_fen: np.ndarray


def settle(terms: MarketDiscount | FixedPassThrough, wh: Any, price_micro: Any,
           axis: DayAxis) -> DailySettlement:
    """Settle interval energy at market prices under an owner's contract, one line per day.

    Parameters
    ----------
    terms : MarketDiscount or FixedPassThrough
        From :func:`market_terms`.
    wh : array_like of int, shape (meters, intervals) or (intervals,) [Wh]
    price_micro : array_like of int, shape (intervals,) or (meters, intervals) [µyuan/kWh]
        The market price of each interval (at the energy's step: :func:`repeat_prices`).
    axis : DayAxis
        The intervals' days (:func:`day_axis`).

    Returns
    -------
    DailySettlement

    Raises
    ------
    IntervalDataError
        Shapes that do not match the axis, energy or prices not integers.
    """
    energy = _wh_matrix(wh, axis, "wh")
    prices = _price_matrix(price_micro, axis, energy.shape[0], "price_micro")
    wh_sum, nano_sum = _day_sums(energy, prices, axis.per_day)
    amount = np.asarray(terms.day_amount_fen(wh_sum, nano_sum), dtype=np.int64)
    return DailySettlement(days=axis.days, wh=np.asarray(wh_sum, dtype=np.int64), amount_fen=amount,
                           total_fen=amount.sum(axis=1))


@dataclass(frozen=True, eq=False)
class DeviationSettlement:
    """Day-ahead position and real-time deviation, two lines per meter and day.

    Attributes
    ----------
    days : ndarray of datetime64[D], shape (days,)
    metered_wh, position_wh : ndarray of int64, shape (meters, days) [Wh]
        Real-time metered energy and day-ahead position of each day.
    day_ahead_fen : ndarray of int64, shape (meters, days) [fen]
        Σ position × day-ahead price, rounded once.
    deviation_fen : ndarray of int64, shape (meters, days) [fen]
        Σ (metered − position) × real-time price, rounded once.
    amount_fen : ndarray of int64, shape (meters, days) [fen]
        day_ahead_fen + deviation_fen.
    total_fen : ndarray of int64, shape (meters,) [fen]
    """

    days: np.ndarray
    metered_wh: np.ndarray
    position_wh: np.ndarray
    day_ahead_fen: np.ndarray
    deviation_fen: np.ndarray
    amount_fen: np.ndarray
    total_fen: np.ndarray


def settle_deviation(metered_wh: Any, position_wh: Any, day_ahead_micro: Any, real_time_micro: Any,
                     axis: DayAxis, *, has_position: Any = True) -> DeviationSettlement:
    """Settle metered energy against a day-ahead position (two-settlement market).

    Parameters
    ----------
    metered_wh : array_like of int, shape (meters, intervals) [Wh]
        Real-time metered energy.
    position_wh : array_like of int, shape (meters, intervals) [Wh]
        The contract's day-ahead position (cleared quantity).
    day_ahead_micro, real_time_micro : array_like of int, shape (intervals,) or (meters, intervals)
        Day-ahead and real-time prices [µyuan/kWh].
    axis : DayAxis
    has_position : bool or array_like of bool, broadcastable to (meters, intervals)
        Where False (a contract without a position) the position counts as zero, so the whole
        metered energy settles at the real-time price.

    Returns
    -------
    DeviationSettlement
    """
    rt = _wh_matrix(metered_wh, axis, "metered_wh")
    meters = rt.shape[0]
    pos = _wh_matrix(position_wh, axis, "position_wh")
    if pos.shape != rt.shape:
        raise IntervalDataError(f"position_wh has shape {pos.shape}, metered_wh {rt.shape}")
    mask = np.asarray(has_position, dtype=bool)
    if mask.ndim == 1:
        mask = mask[:, None]  # one flag per meter (contract)
    try:
        mask = np.broadcast_to(mask, rt.shape)
    except ValueError:
        raise IntervalDataError(f"has_position has shape {np.shape(has_position)}, the energy "
                                f"{rt.shape}") from None
    if not mask.all():
        pos = np.where(mask, pos, 0)
    p_da = _price_matrix(day_ahead_micro, axis, meters, "day_ahead_micro")
    p_rt = _price_matrix(real_time_micro, axis, meters, "real_time_micro")
    pos_bound = _bound(pos)
    pos_sum, da_nano = _day_sums(pos, p_da, axis.per_day, pos_bound)
    # Σ (E − Q) P_rt = Σ E P_rt − Σ Q P_rt, exactly in integers, without an array of deviations.
    metered_sum, rt_nano = _day_sums(rt, p_rt, axis.per_day)
    _, pos_rt_nano = _day_sums(pos, p_rt, axis.per_day, pos_bound)
    dev_nano = _sub(rt_nano, pos_rt_nano)
    da_fen = np.asarray(money.round_div(da_nano, _NANO_PER_FEN), dtype=np.int64)
    dev_fen = np.asarray(money.round_div(dev_nano, _NANO_PER_FEN), dtype=np.int64)
    amount = da_fen + dev_fen
    return DeviationSettlement(days=axis.days, metered_wh=np.asarray(metered_sum, dtype=np.int64),
                               position_wh=np.asarray(pos_sum, dtype=np.int64),
                               day_ahead_fen=da_fen, deviation_fen=dev_fen, amount_fen=amount,
                               total_fen=amount.sum(axis=1))


def daily_summary(result: DailySettlement, meter: int = 0) -> dict:
    """One meter's days as the ``settle`` CLI's JSON object.

    ``{"days": [{"date": "2025-07-01", "kwh": …, "amount_fen": …}], "total_kwh": …,
    "total_fen": …}``; kWh are the day's whole Wh / 1000.
    """
    days = [{"date": str(d), "kwh": int(w) / money.WH_PER_KWH, "amount_fen": int(a)}
            for d, w, a in zip(result.days, result.wh[meter], result.amount_fen[meter])]
    return {"days": days, "total_kwh": int(result.wh[meter].sum()) / money.WH_PER_KWH,
            "total_fen": int(result.total_fen[meter])}
