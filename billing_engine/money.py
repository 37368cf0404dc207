"""Money: the one place where the engine rounds.

Units
-----
===========  ===============================  ==========================================
name         unit                             why this unit
===========  ===============================  ==========================================
fen          1 fen = 0.01 yuan (元)           every amount that leaves the engine
µyuan/kWh    1e-6 yuan per kWh                prices; published prices have ≤ 6 decimals
Wh           1e-3 kWh                         energy entering money arithmetic
ppm          1e-6                             factors and rates: discount 0.85 → 850 000,
                                              VAT 13 % → 130 000, 2 ‰/day → 2 000
===========  ===============================  ==========================================

All of these are integers (Python ``int`` or ``numpy.int64``).  Decimal inputs (``"0.6234"``,
``Decimal``, ``int``; ``float`` via its shortest repr) are converted exactly by
:func:`to_units`, which refuses a value that does not fit the unit instead of rounding it.

How a line is rounded
---------------------
``Wh × µyuan/kWh`` is an exact integer in units of 1e-9 yuan = 1e-7 fen.  It is divided by
10**7 with integer arithmetic and rounded **half up** (ties away from zero, the rule of
``decimal.ROUND_HALF_UP``): ``q, r = divmod(|n|, d); q += (2 r >= d)``.  Because no float is
involved after the energy is quantized to Wh, a tie of exactly 0.5 fen always rounds up, on
every machine.  Each bill line is rounded once; totals are sums of rounded lines.

Energy quantization (kWh float → Wh int, :func:`energy_wh`) happens before pricing; it is
not money rounding and uses round-half-even on the float, which is harmless at 1 Wh.

Products that could exceed int64 (≈ 9.2e18) are computed with Python integers instead
(:func:`round_product`), so amounts are exact at any size; typical bills never need it.
"""

from __future__ import annotations

import decimal
from decimal import Decimal
from typing import Any

import numpy as np

from .errors import BillingError

__all__ = [
    "PRICE_SCALE",
    "PPM",
    "WH_PER_KWH",
    "FEN_PER_YUAN",
    "to_units",
    "price_micro",
    "ppm",
    "yuan_to_fen",
    "nearest_units",
    "energy_wh",
    "round_div",
    "round_product",
    "amount_fen",
    "scale_price",
    "tax_fen",
    "with_vat",
    "prorate_fen",
    "format_price",
]

PRICE_SCALE = 10**6
"""µyuan per yuan: prices are integers in 1e-6 yuan/kWh."""
PPM = 10**6
"""Factors and rates are integers in parts per million."""
WH_PER_KWH = 1000
FEN_PER_YUAN = 100

# Wh × µyuan/kWh is 1e-9 yuan; one fen is 1e-2 yuan.
_LINE_DIVISOR = 10**7
_INT64_SAFE = 2.0**62


def to_units(value: Any, scale: int, *, where: str = "", what: str = "value",
             minimum: Decimal | None = Decimal(0)) -> int:
    """Convert a decimal quantity exactly to integer units of ``1/scale``.

    Parameters
    ----------
    value : str, int, Decimal or float
        The quantity, e.g. ``"0.6234"`` [yuan/kWh].  Floats are read through their shortest
        repr (``0.1`` → ``Decimal("0.1")``), which is what a person typed.
    scale : int
        Units per whole, e.g. :data:`PRICE_SCALE`.
    where : str
        Place in the input, for the error message.
    what : str
        Name of the quantity, for the error message.
    minimum : Decimal or None
        Smallest accepted value (default 0: negative values refused); None for no bound.

    Returns
    -------
    int
        ``value × scale``, exactly.

    Raises
    ------
    BillingError
        When the value is not a finite number, below ``minimum``, or has more decimals than
        the unit can hold (it is refused rather than rounded).
    """
    if isinstance(value, bool):
        raise BillingError(f"{what} must be a number, got {value!r}", where=where)
    try:
        if isinstance(value, float):
            dec = Decimal(repr(float(value)))  # float() also unwraps numpy.float64
        elif isinstance(value, (int, Decimal, str)):
            dec = Decimal(value)
        elif isinstance(value, (np.integer, np.floating)):
            dec = Decimal(repr(value.item()))
        else:
            raise TypeError
    except (decimal.InvalidOperation, TypeError, ValueError):
        raise BillingError(f"{what} must be a number, got {value!r}", where=where) from None
    if not dec.is_finite():
        raise BillingError(f"{what} must be finite, got {value!r}", where=where)
    if minimum is not None and dec < minimum:
        raise BillingError(f"{what} must be ≥ {minimum}, got {value}", where=where)
    scaled = dec * scale
    if scaled != scaled.to_integral_value():
        raise BillingError(f"{what} {value} has more decimals than the engine keeps "
                           f"(resolution 1/{scale})", where=where)
    return int(scaled)


def nearest_units(value: Any, scale: int, *, where: str = "", what: str = "value") -> int:
    """Like :func:`to_units` but rounds half up to the unit instead of refusing extra decimals.

    For outside data that carries float noise (URDB rates such as ``0.0712345678``), where
    refusing would help no one.  Negative values are refused.
    """
    if isinstance(value, float):
        value = repr(float(value))
    try:
        dec = Decimal(value) if isinstance(value, (int, str, Decimal)) else Decimal(repr(value))
    except (decimal.InvalidOperation, TypeError, ValueError):
        raise BillingError(f"{what} must be a number, got {value!r}", where=where) from None
    if not dec.is_finite():
        raise BillingError(f"{what} must be finite, got {value!r}", where=where)
    if dec < 0:
        raise BillingError(f"{what} must be ≥ 0, got {value}", where=where)
    return int((dec * scale).to_integral_value(rounding=decimal.ROUND_HALF_UP))


def price_micro(value: Any, *, where: str = "", what: str = "price") -> int:
    """A price [yuan/kWh] as integer µyuan/kWh; negative prices are refused."""
    return to_units(value, PRICE_SCALE, where=where, what=what)


def ppm(value: Any, *, where: str = "", what: str = "rate") -> int:
    """A factor or rate [-] (e.g. ``"0.85"``, ``"0.13"``) as integer parts per million."""
    return to_units(value, PPM, where=where, what=what)


def yuan_to_fen(value: Any, *, where: str = "", what: str = "amount") -> int:
    """A money amount [yuan] as integer fen; more than 2 decimals is refused."""
    return to_units(value, FEN_PER_YUAN, where=where, what=what)


def energy_wh(kwh: Any) -> np.ndarray:
    """Quantize energy to whole Wh.

    Parameters
    ----------
    kwh : array_like [kWh]

    Returns
    -------
    ndarray of int64 [Wh]
    """
    arr = np.asarray(kwh, dtype=np.float64)
    if arr.size and not (np.isfinite(arr.min()) and np.isfinite(arr.max())):
        raise BillingError("energy must be finite (found NaN or infinity)")
    wh = arr * WH_PER_KWH
    np.rint(wh, out=wh)
    return wh.astype(np.int64)


def round_div(numer: Any, denom: int) -> np.ndarray:
    """``numer / denom`` rounded half up (ties away from zero), exactly, on integers.

    Parameters
    ----------
    numer : array_like of int
    denom : int, positive

    Returns
    -------
    ndarray of int64
    """
    n = np.asarray(numer)
    if n.dtype == object:
        flat = [_round_div_int(int(x), denom) for x in n.ravel()]
        return np.array(flat, dtype=np.int64).reshape(n.shape)
    n = n.astype(np.int64, copy=False)
    if n.size == 0 or n.min() >= 0:
        # The common case, one add and one division (numpy divides by a scalar quickly):
        # floor((n + d/2) / d) is n/d rounded half up when d is even; scale by 2 when odd.
        if denom % 2 == 0:
            return (n + denom // 2) // denom
        if int(n.max(initial=0)) < 2**62 // 2:
            return (2 * n + denom) // (2 * denom)
    q, r = np.divmod(np.abs(n), denom)
    q += (2 * r >= denom)
    return np.where(n < 0, -q, q)


def _round_div_int(n: int, d: int) -> int:
    q, r = divmod(abs(n), d)
    q += 2 * r >= d
    return -q if n < 0 else q


def round_product(*factors: Any, divisor: int) -> np.ndarray:
    """``prod(factors) / divisor`` rounded half up, exactly, broadcasting the factors.

    This is the engine's single rounding rule for money.  When the product could leave
    int64 the computation switches to Python integers (object arrays): slower, still exact.

    Parameters
    ----------
    *factors : array_like of int
        Integer quantities in their units (Wh, µyuan/kWh, ppm, fen, hours, ...).
    divisor : int
        The unit conversion that brings the product to fen.

    Returns
    -------
    ndarray of int64
    """
    arrs = [np.asarray(f) for f in factors]
    for a in arrs:
        if a.dtype.kind not in "iub" and a.dtype != object:
            raise TypeError(f"money arithmetic takes integers, got {a.dtype}")
    bound = 1.0
    for a in arrs:
        if a.size and a.dtype != object:
            bound *= max(abs(float(a.max())), abs(float(a.min())))
    if bound < _INT64_SAFE and all(a.dtype != object for a in arrs):
        prod = arrs[0].astype(np.int64)
        for a in arrs[1:]:
            prod = prod * a.astype(np.int64)
        return round_div(prod, divisor)
    prod = arrs[0].astype(object)
    for a in arrs[1:]:
        prod = prod * a.astype(object)
    return round_div(np.asarray(prod, dtype=object), divisor)


def amount_fen(wh: Any, unit_price_micro: Any) -> np.ndarray:
    """Amount of one line: energy × unit price, rounded once to fen.

    Parameters
    ----------
    wh : array_like of int [Wh]
    unit_price_micro : array_like of int [µyuan/kWh]

    Returns
    -------
    ndarray of int64 [fen]
    """
    return round_product(wh, unit_price_micro, divisor=_LINE_DIVISOR)


def scale_price(price: Any, factor_ppm: Any) -> np.ndarray:
    """A unit price times a factor (a discount), as a stated price in µyuan/kWh.

    The result is the unit price printed on the bill line, so the line amount is exactly
    ``kWh × printed price``: the price itself is rounded half up to 1e-6 yuan/kWh here.

    Parameters
    ----------
    price : array_like of int [µyuan/kWh]
    factor_ppm : array_like of int [ppm]

    Returns
    -------
    ndarray of int64 [µyuan/kWh]
    """
    return round_product(price, factor_ppm, divisor=PPM)


def tax_fen(amount: Any, vat_ppm: int, *, included: bool) -> np.ndarray:
    """VAT of a line amount, rounded once to fen.

    Parameters
    ----------
    amount : array_like of int [fen]
        The line amount as priced.
    vat_ppm : int [ppm]
        VAT rate, e.g. 130 000 for 13 %.
    included : bool
        True when ``amount`` already includes VAT (tax = amount × r / (1 + r)); False when
        it excludes VAT (tax = amount × r).

    Returns
    -------
    ndarray of int64 [fen]
    """
    if included:
        return round_product(amount, vat_ppm, divisor=PPM + vat_ppm) if vat_ppm else \
            np.zeros(np.shape(amount), dtype=np.int64)
    return round_product(amount, vat_ppm, divisor=PPM)


def with_vat(priced_fen: Any, vat_ppm: int, *, included: bool) -> tuple[np.ndarray, np.ndarray]:
    """Amount payable and its VAT for lines priced with or without VAT.

    Parameters
    ----------
    priced_fen : array_like of int [fen]
        Line amounts at the stated prices (each already rounded once).
    vat_ppm : int [ppm]
    included : bool
        Whether the stated prices include VAT.

    Returns
    -------
    amount : ndarray of int64 [fen]
        Payable, VAT included: ``priced`` if ``included``, else ``priced + tax``.
    tax : ndarray of int64 [fen]
        The VAT contained in ``amount``, rounded once.
    """
    priced = np.asarray(priced_fen, dtype=np.int64)
    tax = tax_fen(priced, vat_ppm, included=included)
    return (priced if included else priced + tax), tax


def prorate_fen(fen: Any, numer: Any, denom: int) -> np.ndarray:
    """``fen × numer / denom`` rounded half up (a monthly charge for part of a month)."""
    return round_product(fen, numer, divisor=denom)


def format_price(micro: int) -> str:
    """µyuan/kWh as a yuan/kWh decimal string, e.g. 623400 → ``"0.6234"``."""
    return format((Decimal(int(micro)) / PRICE_SCALE).normalize(), "f")
