"""Nearby consumption (就近消纳): capacity charge, system operation fee, wire loss, eligibility.

After the NDRC + NEA notice of 2025-09-12 (DOMAIN.md):

* monthly capacity charge = capacity charge under current policy
  + per-kWh T&D price of the voltage level × average load rate × 730 h × grid-connection
  capacity, where 730 h = 8760 h / 12 and the capacity (receiving transformers in use +
  high-voltage motors not behind a transformer) is in kVA, taken as kW;
* grid-drawn kWh pay no per-kWh T&D charge but pay a system operation fee per kWh and the
  wire-loss cost of the grid-drawn kWh;
* eligibility: self-consumption ≥ 60 % of available generation and ≥ 30 % of total
  consumption (35 % for projects from 2030).

Prices, rates and capacities are provincial data and contract facts: parameters here.  Each
result is one amount per plant, rounded once, half up, to fen.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import money
from .errors import BillingError, PricingError

__all__ = [
    "HOURS_PER_MONTH",
    "capacity_charge_fen",
    "system_operation_fee_fen",
    "wire_loss_fen",
    "nearby_eligible",
]

HOURS_PER_MONTH = 8760 // 12
"""730 h: the notice's monthly hours."""

_VA_PER_KVA = 1000


def _kva_to_va(connection_kva: Any) -> np.ndarray:
    kva = np.asarray(connection_kva, dtype=np.float64)
    if not np.all(np.isfinite(kva)) or np.any(kva < 0):
        raise PricingError("capacity must be finite and ≥ 0", where="connection_kva")
    va = np.rint(kva * _VA_PER_KVA)
    # Capacities are nameplate figures: refuse silent rounding below 1 VA.
    if np.any(np.abs(va - kva * _VA_PER_KVA) > 1e-6 * np.maximum(1.0, va)):
        raise PricingError("capacity has more than 3 decimals of kVA", where="connection_kva")
    return va.astype(np.int64)


def _wh_total(grid_kwh: Any) -> np.ndarray:
    kwh = np.asarray(grid_kwh, dtype=np.float64)
    if kwh.ndim == 2:
        kwh = kwh.sum(axis=1)
    if not np.all(np.isfinite(kwh)) or np.any(kwh < 0):
        raise PricingError("grid-drawn energy must be finite and ≥ 0", where="grid_kwh")
    return money.energy_wh(kwh)


def _price(value: Any, name: str) -> int:
    try:
        return money.price_micro(value, where=name)
    except BillingError as exc:
        raise PricingError(exc.message, where=name) from None


def capacity_charge_fen(connection_kva: Any, td_price: Any, average_load_rate: Any, *,
                        current_capacity_charge_fen: Any = 0) -> np.ndarray:
    """Monthly capacity charge of nearby-consumption projects.

    Parameters
    ----------
    connection_kva : array_like, shape (plants,) [kVA]
        Grid-connection capacity (transformers in use + HV motors not behind one).
    td_price : decimal-like [yuan/kWh]
        Per-kWh T&D price of the voltage level.
    average_load_rate : decimal-like [-]
        Published average load rate, e.g. ``"0.45"``.
    current_capacity_charge_fen : int or array_like of int, shape (plants,) [fen]
        Capacity charge under current policy, already in fen.

    Returns
    -------
    ndarray of int64, shape (plants,) [fen]
        ``current + round_half_up(td_price × load_rate × 730 × capacity)``.
    """
    va = _kva_to_va(connection_kva)
    td = _price(td_price, "td_price")
    try:
        rate = money.ppm(average_load_rate, where="average_load_rate", what="load rate")
    except BillingError as exc:
        raise PricingError(exc.message, where="average_load_rate") from None
    current = np.asarray(current_capacity_charge_fen)
    if current.dtype.kind not in "iu":
        raise PricingError("must be integer fen", where="current_capacity_charge_fen")
    # µyuan/kWh × ppm × h × VA = 1e-15 yuan = 1e-13 fen.
    added = money.round_product(td, rate, HOURS_PER_MONTH, va, divisor=10**13)
    return (current.astype(np.int64) + added).astype(np.int64)


def system_operation_fee_fen(grid_kwh: Any, fee: Any) -> np.ndarray:
    """System operation fee on grid-drawn energy.

    Parameters
    ----------
    grid_kwh : array_like, shape (plants,) or (plants, periods) [kWh]
        Grid-drawn energy (summed over periods when 2-D).
    fee : decimal-like [yuan/kWh]

    Returns
    -------
    ndarray of int64, shape (plants,) [fen]
    """
    return money.amount_fen(_wh_total(grid_kwh), _price(fee, "fee"))


def wire_loss_fen(grid_kwh: Any, loss_price: Any) -> np.ndarray:
    """Wire-loss cost of grid-drawn energy.

    Parameters
    ----------
    grid_kwh : array_like, shape (plants,) or (plants, periods) [kWh]
    loss_price : decimal-like [yuan/kWh]
        Wire-loss cost per grid-drawn kWh as published (线损折价); where only a loss rate is
        published, pass loss rate × purchase price.

    Returns
    -------
    ndarray of int64, shape (plants,) [fen]
    """
    return money.amount_fen(_wh_total(grid_kwh), _price(loss_price, "loss_price"))


def nearby_eligible(self_use_kwh: Any, available_generation_kwh: Any, total_consumption_kwh: Any,
                    *, from_2030: Any = False) -> np.ndarray:
    """Whether projects meet the nearby-consumption self-consumption thresholds.

    Parameters
    ----------
    self_use_kwh, available_generation_kwh, total_consumption_kwh : array_like, shape (plants,) [kWh]
        Over the assessment period.
    from_2030 : bool or array_like of bool, shape (plants,)
        Projects from 2030 need 35 % of consumption instead of 30 %.

    Returns
    -------
    ndarray of bool, shape (plants,)
    """
    self_use = np.asarray(self_use_kwh, dtype=np.float64)
    gen = np.asarray(available_generation_kwh, dtype=np.float64)
    cons = np.asarray(total_consumption_kwh, dtype=np.float64)
    share = np.where(np.asarray(from_2030, dtype=bool), 0.35, 0.30)
    return (self_use >= 0.60 * gen) & (self_use >= share * cons) & (gen > 0)
