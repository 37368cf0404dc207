"""OpenEI Utility Rate Database (URDB) rate records → :class:`~billing_engine.tariff.Tariff`.

Read
----
* ``energyratestructure``: one list of tiers per period; a tier is ``{"rate", "adj", "max",
  "unit"}``.  The period price is ``rate + adj`` of the first tier.
* ``energyweekdayschedule`` / ``energyweekendschedule``: 12 × 24 period indices (0-based),
  month by hour; expanded to the engine's 15-minute slots.  Holidays are not part of URDB
  schedules; none are set.
* ``fixedchargefirstmeter`` with ``fixedchargeunits`` ``"$/month"`` (the default).
* ``startdate`` (epoch seconds or ISO date) as the version's ``effective_from``; records
  without it apply from 1900-01-01.
* No time zone: a URDB tariff's ``timezone`` is ``""`` and interval times must be local.

Tiers are accepted when they are the same for every period (same ``max`` bounds in
``"kWh"`` per month, same step between tiers), which is what tiered flat rates and most
tiered TOU rates look like: they become the engine's monthly tier blocks (the first tier's
price per period plus an adder per block).  Other tier shapes are refused.

Refused, never ignored (:class:`~billing_engine.errors.UnsupportedTariffError`, naming the
key): demand charges (``demandratestructure``, ``flatdemandstructure``,
``coincidentratestructure`` and their schedules), minimum charges, daily or per-kW tier units,
fixed charges per day or year.

Money: URDB amounts are in the record's currency (USD); the engine is currency-agnostic and
reports them in its usual integer hundredths ("fen").  URDB rates are stated to 1e-6 per kWh
on import (rounded half up), fixed charges to the hundredth.
"""

from __future__ import annotations

import datetime as _dt
import decimal
from decimal import Decimal
from typing import Any

import numpy as np

from . import money
from .errors import TariffError, UnsupportedTariffError
from .tariff import SLOTS_PER_DAY, Tariff, TariffVersion, TierBlocks

__all__ = ["DEMAND_KEYS", "from_urdb"]

DEMAND_KEYS = (
    "demandratestructure",
    "demandweekdayschedule",
    "demandweekendschedule",
    "flatdemandstructure",
    "flatdemandmonths",
    "coincidentratestructure",
    "coincidentrateschedule",
)
"""Keys whose presence (non-empty) means demand charges, which the engine refuses."""

_MIN_CHARGE_KEYS = ("mincharge", "annualmincharge")


def _nonempty(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, (list, dict, str)):
        return len(value) > 0
    return True


def _schedule(record: dict, key: str, n_periods: int) -> np.ndarray:
    sched = record.get(key)
    if not isinstance(sched, list) or len(sched) != 12:
        raise TariffError("must be 12 rows (months) of 24 hours", where=key)
    out = np.empty((12, 24), dtype=np.int8)
    for m, row in enumerate(sched):
        if not isinstance(row, list) or len(row) != 24:
            raise TariffError("must have 24 hours", where=f"{key}[{m}]")
        for h, p in enumerate(row):
            if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p < n_periods:
                raise TariffError(
                    f"hour {h:02d}:00-{h + 1:02d}:00 of month {m + 1} has no period "
                    f"(got {p!r}; energyratestructure has periods 0-{n_periods - 1})",
                    where=f"{key}[{m}][{h}]")
            out[m, h] = p
    return out


def _effective(record: dict) -> _dt.date:
    start = record.get("startdate")
    if start is None:
        return _dt.date(1900, 1, 1)
    if isinstance(start, (int, Decimal)) and not isinstance(start, bool):
        return _dt.datetime.fromtimestamp(int(start), _dt.timezone.utc).date()
    if isinstance(start, str):
        try:
            return _dt.date.fromisoformat(start[:10])
        except ValueError:
            pass
    raise TariffError(f"cannot read a date from {start!r}", where="startdate")


def _unwrap(record: Any) -> dict:
    """The rate record itself, from a bare record or an API answer ``{"items": [record]}``."""
    if not isinstance(record, dict):
        raise TariffError("a URDB record is a JSON object")
    if "items" in record and "energyratestructure" not in record:
        items = record["items"]
        if not isinstance(items, list) or len(items) != 1:
            raise TariffError("expected exactly one rate record", where="items")
        record = items[0]
        if not isinstance(record, dict):
            raise TariffError("a URDB record is a JSON object", where="items[0]")
    return record


def _refuse_unbillable_charges(record: dict) -> None:
    """Demand and minimum charges would change the bill; refuse them rather than drop them."""
    for key in DEMAND_KEYS:
        if _nonempty(record.get(key)):
            raise UnsupportedTariffError("demand charges are not supported (refused, not ignored)",
                                         where=key)
    for key in _MIN_CHARGE_KEYS:
        value = record.get(key)
        if value not in (None, 0, Decimal(0), ""):
            raise UnsupportedTariffError("minimum charges are not supported (refused, not ignored)",
                                         where=key)


def _period_tiers(tiers: Any, *, here: str) -> tuple[list[int], list[int]]:
    """One period's tier prices [micro-unit/kWh] and the upper bounds of all but the last [Wh]."""
    if not isinstance(tiers, list) or not tiers:
        raise TariffError("must be a non-empty list of tiers", where=here)
    prices, bounds = [], []
    for t, tier in enumerate(tiers):
        where = f"{here}[{t}]"
        if not isinstance(tier, dict) or "rate" not in tier:
            raise TariffError("a tier needs a rate", where=where)
        unit = tier.get("unit", "kWh")
        if unit != "kWh":
            raise UnsupportedTariffError(f"tier unit {unit!r} is not supported (only monthly kWh)",
                                         where=f"{where}.unit")
        try:
            rate = Decimal(str(tier["rate"])) + Decimal(str(tier.get("adj", 0) or 0))
        except decimal.InvalidOperation:
            raise TariffError("rate and adj must be numbers", where=where) from None
        if rate < 0:
            raise TariffError(f"negative price rate + adj = {rate}", where=f"{where}.rate")
        prices.append(money.nearest_units(rate, money.PRICE_SCALE, where=where, what="rate"))
        if t < len(tiers) - 1:
            if tier.get("max") is None:
                raise TariffError("every tier but the last needs max", where=f"{where}.max")
            bounds.append(money.nearest_units(tier["max"], money.WH_PER_KWH,
                                              where=f"{where}.max", what="max"))
    return prices, bounds


def _energy_rates(record: dict) -> tuple[np.ndarray, TierBlocks | None]:
    """Read ``energyratestructure``.

    Returns
    -------
    base : ndarray, shape (periods,), int64 [micro-unit/kWh]
        The first tier's price of each period.
    tiers : TierBlocks or None
        The tier shape all periods share, as monthly blocks; None for a single tier.
    """
    structure = record.get("energyratestructure")
    if not isinstance(structure, list) or not structure:
        raise TariffError("must be a non-empty list of periods", where="energyratestructure")
    base = np.zeros(len(structure), dtype=np.int64)
    tier_shape: list | None = None
    for p, tiers in enumerate(structure):
        here = f"energyratestructure[{p}]"
        prices, bounds = _period_tiers(tiers, here=here)
        base[p] = prices[0]
        steps = [q - prices[0] for q in prices]
        shape = [bounds, steps]
        if tier_shape is None:
            tier_shape = shape
        elif shape != tier_shape:
            raise UnsupportedTariffError(
                "tiers that differ between periods are not supported (each period must have the "
                "same tier bounds and the same step between tier prices)", where=here)
    tiers_obj = None
    if tier_shape and tier_shape[0]:
        upper = np.array(tier_shape[0], dtype=np.int64)
        if np.any(np.diff(upper) <= 0) or upper[0] <= 0:
            raise TariffError("tier max values must increase", where="energyratestructure[0]")
        tiers_obj = TierBlocks("monthly", upper, np.array(tier_shape[1], dtype=np.int64))
    return base, tiers_obj


def _slot_period(record: dict, n_periods: int) -> np.ndarray:
    """The hourly weekday and weekend schedules at the engine's 15-minute slots.

    Returns
    -------
    ndarray, shape (12, 3, SLOTS_PER_DAY), int8
        Period index per month, day type (weekday, weekend, holiday) and slot; URDB has no
        holidays, so the holiday row repeats the weekend.
    """
    weekday = _schedule(record, "energyweekdayschedule", n_periods)
    weekend = _schedule(record, "energyweekendschedule", n_periods)
    slot_period = np.empty((12, 3, SLOTS_PER_DAY), dtype=np.int8)
    slot_period[:, 0] = np.repeat(weekday, 4, axis=1)
    slot_period[:, 1] = np.repeat(weekend, 4, axis=1)
    slot_period[:, 2] = slot_period[:, 1]
    return slot_period


def _fixed_monthly_fen(record: dict) -> int:
    units = record.get("fixedchargeunits", "$/month") or "$/month"
    fixed = record.get("fixedchargefirstmeter", 0) or 0
    if fixed and units != "$/month":
        raise UnsupportedTariffError(f"fixed charge units {units!r} are not supported (only $/month)",
                                     where="fixedchargeunits")
    return money.nearest_units(fixed, money.FEN_PER_YUAN, where="fixedchargefirstmeter",
                               what="fixed charge")


def from_urdb(record: Any) -> Tariff:
    """Read a URDB rate record (or an API answer ``{"items": [record]}``).

    Parameters
    ----------
    record : dict
        Decoded JSON (``parse_float=decimal.Decimal`` keeps rates exact).

    Returns
    -------
    Tariff

    Raises
    ------
    UnsupportedTariffError
        Demand or minimum charges, or tier shapes the engine does not bill; names the key.
    TariffError
        A malformed record, naming the key.
    """
    record = _unwrap(record)
    _refuse_unbillable_charges(record)
    base, tiers_obj = _energy_rates(record)
    n_periods = len(base)
    slot_period = _slot_period(record, n_periods)
    fixed_fen = _fixed_monthly_fen(record)
    version = TariffVersion(
        effective_from=_effective(record),
        slot_period=slot_period,
        price_micro=np.broadcast_to(base, (12, n_periods)).copy(),
        fixed_monthly_fen=fixed_fen,
        tiers=tiers_obj,
    )
    name = " / ".join(str(record[k]) for k in ("utility", "name") if record.get(k))
    return Tariff(name=name or "URDB rate", periods=tuple(f"period {p}" for p in range(n_periods)),
                  versions=(version,), timezone="", currency=str(record.get("currency", "USD")),
                  note="read from an OpenEI URDB record")
