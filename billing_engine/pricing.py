"""Pricing a reading cycle under a plant's contract: energies per period → bill lines in fen.

The settlement layer calls :func:`price_cycle` once per group of plants that share the same
:class:`ContractTerms` (their grid prices may differ plant by plant).  Everything is
vectorized over plants.

Pricing models
--------------
Chosen by ``ContractTerms.model`` through :data:`PRICING_MODELS`:

``"discount"``
    Self-consumed kWh of each period × (grid price of that period × ``discount``), the unit
    price clamped to ``[floor_price, cap_price]`` when given (DOMAIN.md "Discount on the grid
    price").
``"grid"``
    Self-consumed kWh at the grid price of each period (discount 1, no clamp).
``"fixed"``
    Self-consumed kWh of any period at ``fixed_price``.
``"tiered"``
    Self-consumed kWh of all periods together, split into blocks (``tiers``) counted over the
    cycle (``tier_basis="cycle"``) or the calendar year to date (``"annual"``, with
    ``ytd_self_use_kwh``); each block at its own price.

Units
-----
Contract prices (``floor_price``, ``cap_price``, ``fixed_price``, tier prices,
``feed_in_price``) are **yuan/kWh** decimals as written in contracts ("不低于 0.35 元/kWh");
``discount`` and ``vat_rate`` are plain factors (``"0.85"``, ``"0.13"``).  Grid prices come in
as integer µyuan/kWh arrays (:attr:`billing_engine.tariff.TariffVersion.price_micro` or
:func:`billing_engine.money.price_micro`).  Output amounts are integer fen.

Lines
-----
Every plant of a call gets the same line *slots* (kind, period, block), so the lines are
arrays of shape (plants, slots).  A discounted unit price is stated to 1e-6 yuan/kWh (rounded
half up, :func:`billing_engine.money.scale_price`) and the line amount is kWh × that stated
price, rounded once, half up, to fen.  ``amount_fen`` is payable *including* VAT and
``tax_fen`` is the VAT in it: with ``prices_include_vat`` the priced amount is the payable
amount and the tax is extracted; without, the tax is added.  Export lines (valued at the
feed-in price) are informational: shown, never added to the total.  The total of a plant is
the sum of its non-informational ``amount_fen``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from . import money
from .errors import BillingError, PricingError

__all__ = [
    "LineKind",
    "ContractTerms",
    "BillLine",
    "CycleBill",
    "PRICING_MODELS",
    "price_cycle",
]


class LineKind(enum.IntEnum):
    """What a bill line is for."""

    ENERGY = 1
    """Grid tariff: kWh of a period at the tariff price."""
    TIER = 2
    """Grid tariff: tier surcharge on the kWh in a block."""
    FIXED = 3
    """A fixed monthly charge."""
    SELF_USE = 4
    """Contract: self-consumed PV kWh at the contract price."""
    EXPORT = 5
    """Surplus exported to the grid at the feed-in price (informational)."""
    CAPACITY = 6
    """Nearby-consumption capacity charge."""
    SYSTEM_OPERATION = 7
    """System operation fee on grid-drawn kWh."""
    WIRE_LOSS = 8
    """Wire-loss cost of grid-drawn kWh."""


@dataclass(frozen=True)
class ContractTerms:
    """The pricing terms of a plant contract (one version of it).

    Parameters
    ----------
    model : str
        A key of :data:`PRICING_MODELS`: ``"discount"``, ``"grid"``, ``"fixed"``, ``"tiered"``.
    discount : decimal-like [-]
        Factor on the grid price for ``"discount"``, e.g. ``"0.85"``.
    floor_price, cap_price : decimal-like or None [yuan/kWh]
        Clamp of the discounted unit price.
    fixed_price : decimal-like or None [yuan/kWh]
        Unit price for ``"fixed"``.
    tiers : sequence of (up_to_kwh or None, price)
        Blocks for ``"tiered"``: upper bound [kWh] (None for the last, open block) and unit
        price [yuan/kWh].
    tier_basis : {"cycle", "annual"}
        What the tier blocks count: this cycle's kWh, or the calendar year's to date.
    vat_rate : decimal-like [-]
        e.g. ``"0.13"``.
    prices_include_vat : bool
        Whether the contract's prices (and the grid prices passed in) include VAT.
    feed_in_price : decimal-like or None [yuan/kWh]
        Coal benchmark price valuing exports, shown for information.
    fixed_monthly : decimal-like [yuan]
        A fixed charge per cycle (e.g. a service fee); 0 for none.

    Raises
    ------
    PricingError
        ``unknown pricing model 'x'``, a missing or negative price, floor above cap.
    """

    model: str
    discount: Any = "1"
    floor_price: Any = None
    cap_price: Any = None
    fixed_price: Any = None
    tiers: tuple = ()
    tier_basis: str = "cycle"
    vat_rate: Any = "0.13"
    prices_include_vat: bool = True
    feed_in_price: Any = None
    fixed_monthly: Any = "0"
    _units: dict = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        if self.model not in PRICING_MODELS:
            raise PricingError(f"unknown pricing model {self.model!r}")
        u = self._units

        def price(name: str, value: Any) -> int | None:
            if value is None:
                return None
            return _pricing(money.price_micro, value, where=name, what="price")

        u["discount"] = _pricing(money.ppm, self.discount, where="discount", what="discount")
        u["floor"] = price("floor_price", self.floor_price)
        u["cap"] = price("cap_price", self.cap_price)
        if u["floor"] is not None and u["cap"] is not None and u["floor"] > u["cap"]:
            raise PricingError("floor_price is above cap_price", where="floor_price")
        u["fixed"] = price("fixed_price", self.fixed_price)
        if self.model == "fixed" and u["fixed"] is None:
            raise PricingError("the fixed model needs fixed_price", where="fixed_price")
        u["feed_in"] = price("feed_in_price", self.feed_in_price)
        u["vat"] = _pricing(money.ppm, self.vat_rate, where="vat_rate", what="VAT rate")
        if u["vat"] >= money.PPM:
            raise PricingError("VAT rate must be below 1", where="vat_rate")
        u["fixed_monthly"] = _pricing(money.yuan_to_fen, self.fixed_monthly, where="fixed_monthly",
                                      what="fixed charge")
        if self.tier_basis not in ("cycle", "annual"):
            raise PricingError(f"tier_basis must be 'cycle' or 'annual', got {self.tier_basis!r}",
                               where="tier_basis")
        uppers, prices = [], []
        for i, block in enumerate(self.tiers):
            try:
                up, p = block
            except (TypeError, ValueError):
                raise PricingError("a tier is (up_to_kwh, price)", where=f"tiers[{i}]") from None
            prices.append(price(f"tiers[{i}].price", p))
            if i == len(self.tiers) - 1:
                if up is not None:
                    raise PricingError("the last tier must be open (None)", where=f"tiers[{i}]")
            else:
                wh = _pricing(lambda v, where, what: money.to_units(v, money.WH_PER_KWH, where=where,
                                                                    what=what),
                              up, where=f"tiers[{i}].up_to_kwh", what="up_to_kwh")
                if wh <= 0 or (uppers and wh <= uppers[-1]):
                    raise PricingError("tier bounds must be positive and increase",
                                       where=f"tiers[{i}].up_to_kwh")
                uppers.append(wh)
        if self.model == "tiered" and not prices:
            raise PricingError("the tiered model needs tiers", where="tiers")
        u["tier_upper"] = np.array(uppers, dtype=np.int64)
        u["tier_price"] = np.array(prices, dtype=np.int64)


    @property
    def vat_ppm(self) -> int:
        """VAT rate [ppm], e.g. 130 000 for 13 %."""
        return self._units["vat"]

    @property
    def discount_ppm(self) -> int:
        """Discount factor [ppm], e.g. 850 000 for 0.85."""
        return self._units["discount"]

    @property
    def floor_micro(self) -> int | None:
        """Floor unit price [µyuan/kWh] or None."""
        return self._units["floor"]

    @property
    def cap_micro(self) -> int | None:
        """Cap unit price [µyuan/kWh] or None."""
        return self._units["cap"]

    @property
    def fixed_price_micro(self) -> int | None:
        """Fixed unit price [µyuan/kWh] or None."""
        return self._units["fixed"]

    @property
    def feed_in_micro(self) -> int | None:
        """Feed-in price for export lines [µyuan/kWh] or None."""
        return self._units["feed_in"]

    @property
    def fixed_monthly_fen(self) -> int:
        """Fixed charge per cycle [fen]."""
        return self._units["fixed_monthly"]


def _pricing(fn: Callable, value: Any, *, where: str, what: str) -> int:
    try:
        return fn(value, where=where, what=what)
    except PricingError:
        raise
    except BillingError as exc:
        raise PricingError(exc.message, where=where) from None


@dataclass(frozen=True)
class BillLine:
    """One line of one plant's bill (see :meth:`CycleBill.lines`).

    Attributes
    ----------
    kind : str
        :class:`LineKind` name in lower case, e.g. ``"self_use"``.
    period : int or None
        Tariff period index, None for lines not tied to a period.
    block : int or None
        Tier block index, None otherwise.
    kwh : float [kWh]
        Exact to the Wh it was priced on.
    unit_price : str [yuan/kWh]
        The stated unit price as a decimal string.
    amount_fen : int [fen]
        Payable, VAT included.
    tax_fen : int [fen]
        VAT contained in ``amount_fen``.
    informational : bool
        Shown but not part of the total.
    """

    kind: str
    period: int | None
    block: int | None
    kwh: float
    unit_price: str
    amount_fen: int
    tax_fen: int
    informational: bool


@dataclass(frozen=True, eq=False)
class CycleBill:
    """Bill lines of a group of plants for one cycle.

    Attributes
    ----------
    kind : ndarray of int8, shape (slots,)
        :class:`LineKind` of each line slot.
    period : ndarray of int16, shape (slots,)
        Period index, -1 when not tied to a period.
    block : ndarray of int16, shape (slots,)
        Tier block, -1 when not a tier line.
    informational : ndarray of bool, shape (slots,)
    wh : ndarray of int64, shape (plants, slots) [Wh]
    unit_price_micro : ndarray of int64, shape (plants, slots) [µyuan/kWh]
        0 on lines that are not kWh × price (fixed charges).
    amount_fen : ndarray of int64, shape (plants, slots) [fen]
        Payable, VAT included.
    tax_fen : ndarray of int64, shape (plants, slots) [fen]
    total_fen : ndarray of int64, shape (plants,) [fen]
        Sum of the plant's non-informational ``amount_fen``.
    tax_total_fen : ndarray of int64, shape (plants,) [fen]
    """

    kind: np.ndarray
    period: np.ndarray
    block: np.ndarray
    informational: np.ndarray
    wh: np.ndarray
    unit_price_micro: np.ndarray
    amount_fen: np.ndarray
    tax_fen: np.ndarray
    total_fen: np.ndarray
    tax_total_fen: np.ndarray

    @property
    def kwh(self) -> np.ndarray:
        """Energy of each line [kWh], float64."""
        return self.wh / money.WH_PER_KWH

    def lines(self, plant: int) -> list[BillLine]:
        """The lines of one plant as plain values (all slots, zero lines included)."""
        return [
            BillLine(
                kind=LineKind(int(self.kind[s])).name.lower(),
                period=None if self.period[s] < 0 else int(self.period[s]),
                block=None if self.block[s] < 0 else int(self.block[s]),
                kwh=int(self.wh[plant, s]) / money.WH_PER_KWH,
                unit_price=money.format_price(int(self.unit_price_micro[plant, s])),
                amount_fen=int(self.amount_fen[plant, s]),
                tax_fen=int(self.tax_fen[plant, s]),
                informational=bool(self.informational[s]),
            )
            for s in range(self.kind.size)
        ]


# A model maps (terms, grid price, self-use Wh, year-to-date Wh) to line slots:
# (kind, period, block) per slot, Wh per plant and slot, unit price per plant and slot.
_ModelResult = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _per_period(self_wh: np.ndarray, unit: np.ndarray) -> _ModelResult:
    n_periods = self_wh.shape[1]
    return (np.full(n_periods, LineKind.SELF_USE, dtype=np.int8),
            np.arange(n_periods, dtype=np.int16),
            np.full(n_periods, -1, dtype=np.int16),
            self_wh, np.broadcast_to(unit, self_wh.shape))


def _discount(terms: ContractTerms, grid: np.ndarray, self_wh: np.ndarray,
              ytd_wh: np.ndarray) -> _ModelResult:
    u = terms._units
    unit = money.scale_price(grid, u["discount"])
    if u["floor"] is not None or u["cap"] is not None:
        unit = np.clip(unit, u["floor"], u["cap"])
    return _per_period(self_wh, unit)


def _grid(terms: ContractTerms, grid: np.ndarray, self_wh: np.ndarray,
          ytd_wh: np.ndarray) -> _ModelResult:
    return _per_period(self_wh, grid)


def _fixed(terms: ContractTerms, grid: np.ndarray, self_wh: np.ndarray,
           ytd_wh: np.ndarray) -> _ModelResult:
    return _per_period(self_wh, np.full(self_wh.shape[1], terms._units["fixed"], dtype=np.int64))


def _tiered(terms: ContractTerms, grid: np.ndarray, self_wh: np.ndarray,
            ytd_wh: np.ndarray) -> _ModelResult:
    u = terms._units
    upper, prices = u["tier_upper"], u["tier_price"]
    lower = np.concatenate([[0], upper])
    top = np.concatenate([upper, [np.iinfo(np.int64).max // 4]])
    before = (ytd_wh if terms.tier_basis == "annual" else np.zeros_like(ytd_wh))[:, None]
    after = before + self_wh.sum(axis=1)[:, None]
    wh = np.clip(after, lower, top) - np.clip(before, lower, top)
    n_blocks = prices.size
    return (np.full(n_blocks, LineKind.SELF_USE, dtype=np.int8),
            np.full(n_blocks, -1, dtype=np.int16),
            np.arange(n_blocks, dtype=np.int16),
            wh, np.broadcast_to(prices, wh.shape))


PRICING_MODELS: dict[str, Callable[..., _ModelResult]] = {
    "discount": _discount,
    "grid": _grid,
    "fixed": _fixed,
    "tiered": _tiered,
}
"""Pricing model name → function; :func:`price_cycle` dispatches through this dict."""


def _as_wh(kwh: Any, shape: tuple[int, ...] | None, name: str) -> np.ndarray:
    arr = np.asarray(kwh, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or (shape is not None and arr.shape != shape):
        raise PricingError(f"must have shape (plants, periods){'' if shape is None else f' {shape}'}"
                           f", got {arr.shape}", where=name)
    if not np.all(np.isfinite(arr)):
        raise PricingError("must be finite", where=name)
    if np.any(arr < 0):
        raise PricingError("energy must be ≥ 0", where=name)
    return money.energy_wh(arr)


def _grid_prices(grid_price_micro: Any, plants: int, n_periods: int) -> np.ndarray:
    """Grid prices checked and broadcast [µyuan/kWh], shape (plants, periods), int64."""
    grid = np.asarray(grid_price_micro)
    if grid.dtype.kind not in "iu":
        raise PricingError("grid prices must be integer µyuan/kWh (see money.price_micro)",
                           where="grid_price_micro")
    grid = np.broadcast_to(grid.astype(np.int64), (plants, n_periods)) \
        if grid.shape in ((n_periods,), (plants, n_periods), (1, n_periods)) else None
    if grid is None:
        raise PricingError(f"must have shape (plants, periods) or (periods,) with periods = "
                           f"{n_periods}", where="grid_price_micro")
    if np.any(grid < 0):
        raise PricingError("grid prices must be ≥ 0", where="grid_price_micro")
    return grid


def _export_lines(export_wh: np.ndarray, feed_in_micro: int) -> tuple[np.ndarray, ...]:
    """Informational EXPORT lines, one per period: exported Wh at the feed-in price."""
    plants, n_periods = export_wh.shape
    return (np.full(n_periods, LineKind.EXPORT, dtype=np.int8),
            np.arange(n_periods, dtype=np.int16), np.full(n_periods, -1, dtype=np.int16),
            np.ones(n_periods, dtype=bool), export_wh,
            np.full((plants, n_periods), feed_in_micro, dtype=np.int64))


def _with_fixed_line(kinds: np.ndarray, periods: np.ndarray, blocks: np.ndarray,
                     informational: np.ndarray, wh_all: np.ndarray, unit_all: np.ndarray,
                     priced: np.ndarray, fixed_fen: int) -> tuple[np.ndarray, ...]:
    """The lines with a FIXED line of ``fixed_fen`` [fen] per plant added at the end."""
    plants = wh_all.shape[0]
    return (np.append(kinds, np.int8(LineKind.FIXED)),
            np.append(periods, np.int16(-1)),
            np.append(blocks, np.int16(-1)),
            np.append(informational, False),
            np.concatenate([wh_all, np.zeros((plants, 1), dtype=np.int64)], axis=1),
            np.concatenate([unit_all, np.zeros((plants, 1), dtype=np.int64)], axis=1),
            np.concatenate([priced, np.full((plants, 1), fixed_fen, dtype=np.int64)], axis=1))


def price_cycle(terms: ContractTerms, grid_price_micro: Any, self_use_kwh: Any, *,
                export_kwh: Any = None, grid_kwh: Any = None,
                ytd_self_use_kwh: Any = None) -> CycleBill:
    """Bill lines for one reading cycle of a group of plants under the same contract terms.

    Parameters
    ----------
    terms : ContractTerms
    grid_price_micro : array_like of int, shape (plants, periods) or (periods,) [µyuan/kWh]
        Grid tariff price of each TOU period for the cycle, in the same VAT basis as the
        contract (``terms.prices_include_vat``).  A cycle that crosses a tariff change is
        priced in two calls, one per part.
    self_use_kwh : array_like, shape (plants, periods) [kWh]
        Self-consumed PV energy per period (:func:`billing_engine.registers.self_consumption`).
    export_kwh : array_like, shape (plants, periods), optional [kWh]
        Surplus exported; valued at ``terms.feed_in_price`` on informational lines.
    grid_kwh : array_like, shape (plants, periods), optional [kWh]
        Energy drawn from the grid; not billed by the PV contract, accepted so that one call
        carries the cycle's whole energy picture (checked for shape only).
    ytd_self_use_kwh : array_like, shape (plants,), optional [kWh]
        Self-use earlier in the calendar year, for ``tier_basis="annual"``.

    Returns
    -------
    CycleBill

    Raises
    ------
    PricingError
        Shapes that disagree, negative or non-finite energy, negative grid prices.
    """
    self_wh = _as_wh(self_use_kwh, None, "self_use_kwh")
    plants, n_periods = self_wh.shape
    grid = _grid_prices(grid_price_micro, plants, n_periods)
    if ytd_self_use_kwh is None:
        ytd_wh = np.zeros(plants, dtype=np.int64)
    else:
        ytd_wh = _as_wh(np.reshape(ytd_self_use_kwh, (1, -1)), (1, plants), "ytd_self_use_kwh")[0]
    if grid_kwh is not None:
        _as_wh(grid_kwh, (plants, n_periods), "grid_kwh")

    u = terms._units
    kind, period, block, wh, unit = PRICING_MODELS[terms.model](terms, grid, self_wh, ytd_wh)
    info = np.zeros(kind.size, dtype=bool)
    parts = [(kind, period, block, info, wh, unit)]
    if export_kwh is not None and u["feed_in"] is not None:
        parts.append(_export_lines(_as_wh(export_kwh, (plants, n_periods), "export_kwh"),
                                   u["feed_in"]))

    kinds = np.concatenate([p[0] for p in parts])
    periods = np.concatenate([p[1] for p in parts])
    blocks = np.concatenate([p[2] for p in parts])
    informational = np.concatenate([p[3] for p in parts])
    wh_all = np.concatenate([p[4] for p in parts], axis=1)
    unit_all = np.concatenate([np.broadcast_to(p[5], p[4].shape) for p in parts], axis=1)
    priced = money.amount_fen(wh_all, unit_all)
    if u["fixed_monthly"]:
        kinds, periods, blocks, informational, wh_all, unit_all, priced = _with_fixed_line(
            kinds, periods, blocks, informational, wh_all, unit_all, priced, u["fixed_monthly"])

    amount, tax = money.with_vat(priced, u["vat"], included=terms.prices_include_vat)
    counted = np.flatnonzero(~informational)
    return CycleBill(kind=kinds, period=periods, block=blocks, informational=informational,
                     wh=wh_all, unit_price_micro=unit_all, amount_fen=amount, tax_fen=tax,
                     total_fen=_row_sum(amount, counted), tax_total_fen=_row_sum(tax, counted))


def _row_sum(values: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Sum of some columns per row, exact in int64 (column by column: faster than axis=1)."""
    total = np.zeros(values.shape[0], dtype=np.int64)
    for c in columns:
        total += values[:, c]
    return total
