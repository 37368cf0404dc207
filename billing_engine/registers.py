"""Register readings → energy per register, with per-meter flags instead of exceptions.

A meter's registers (DL/T 645) are read at the start and end of a reading cycle: the total
(forward active 0001 0000) and the TOU rates 1–4 (0001 0100–0001 0400, sharp/peak/flat/valley);
reverse active (0002 xxxx) on a grid meter is export.  Energy of a register in a cycle is
``(current − previous) × multiplier`` (CT ratio × PT ratio), with these rules:

* **Rollover** — a register that reads lower than before and whose previous reading was near
  the top of its range has wrapped at ``rollover_at`` (10**k for a k-digit register): the
  energy is ``current + rollover_at − previous``, flagged :attr:`RegisterFlag.ROLLOVER`.  A
  wrap is believed only when the wrapped energy is at most ``max_rollover_fraction`` of the
  register range (default 1/10): otherwise the drop is a bad reading.
* **Negative refused** — any other drop gives energy 0 for that register and
  :attr:`RegisterFlag.NEGATIVE_REFUSED`: never negative energy, never a silent one.
* **Meter replaced** mid-cycle — the cycle splits into the old meter (previous → its final
  reading) and the new meter (its initial reading → current), each with its own multiplier;
  flagged :attr:`RegisterFlag.REPLACED`.
* **TOU mismatch** — the TOU registers should add up to the total register; a gap beyond
  ``tou_tolerance`` dial units (scaled by the multiplier) flags
  :attr:`RegisterFlag.TOU_MISMATCH`.
* **Implausible** — energy above ``capacity_kw × hours × plausibility_factor``, or a reading
  outside ``[0, rollover_at)``, flags :attr:`RegisterFlag.IMPLAUSIBLE`.
* **Missing** — a NaN reading gives energy 0 and :attr:`RegisterFlag.MISSING`; an infinite
  one gives energy 0 and :attr:`RegisterFlag.IMPLAUSIBLE`.

Flags are a bit-field (``uint16``) per meter, so a cycle of a million meters is one call and
staff see exactly which meters need a look.  Exceptions (:class:`~billing_engine.errors.ReadingError`)
are kept for misuse: shapes that do not match, a multiplier that is not positive.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ReadingError

__all__ = [
    "RegisterFlag",
    "MeterReplacement",
    "RegisterEnergy",
    "register_energy",
    "self_consumption",
    "flag_names",
]


class RegisterFlag(enum.IntFlag):
    """Per-meter findings of :func:`register_energy` and :func:`self_consumption`."""

    ROLLOVER = 1
    """A register wrapped past its capacity; energy counted across the wrap."""
    REPLACED = 2
    """The meter was replaced during the cycle; energy is old part + new part."""
    NEGATIVE_REFUSED = 4
    """A register read lower without a believable wrap; its energy was set to 0."""
    TOU_MISMATCH = 8
    """The TOU registers do not add up to the total within the tolerance."""
    IMPLAUSIBLE = 16
    """Energy beyond what the capacity allows, or a reading outside the register's range."""
    MISSING = 32
    """A reading was missing (NaN); that register's energy was set to 0."""
    EXPORT_EXCEEDS_GENERATION = 64
    """Export above generation in some period; self-consumption there was set to 0."""


def flag_names(flags: int) -> list[str]:
    """Names of the flags set in a bit-field value, e.g. ``["ROLLOVER", "REPLACED"]``."""
    return [f.name for f in RegisterFlag if int(flags) & f.value]


@dataclass(frozen=True, eq=False)
class MeterReplacement:
    """Meters replaced during the cycle.

    Attributes
    ----------
    replaced : ndarray of bool, shape (meters,)
    old_final : ndarray, shape (meters, registers) [dial units]
        Final reading of the removed meter (ignored where not replaced).
    new_initial : ndarray, shape (meters, registers) [dial units]
        Initial reading of the installed meter (ignored where not replaced).
    new_multiplier : ndarray, shape (meters,), optional [-]
        Multiplier of the new meter; by default the same as the old one.
    new_rollover_at : float or ndarray, shape (meters,), optional [dial units]
        Register capacity of the new meter; by default the same as the old one.
    """

    replaced: Any
    old_final: Any
    new_initial: Any
    new_multiplier: Any = None
    new_rollover_at: Any = None


@dataclass(frozen=True, eq=False)
class RegisterEnergy:
    """Energy of each register in the cycle and the meter's flags.

    Attributes
    ----------
    kwh : ndarray of float64, shape (meters, registers) [kWh]
        Never negative.
    flags : ndarray of uint16, shape (meters,)
        :class:`RegisterFlag` bits.
    """

    kwh: np.ndarray
    flags: np.ndarray

    def has(self, flag: RegisterFlag) -> np.ndarray:
        """Boolean mask of the meters carrying ``flag``, shape (meters,)."""
        return (self.flags & np.uint16(flag)) != 0


def _readings(x: Any, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1 and shape is not None and len(shape) == 2:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ReadingError(f"must have shape (meters, registers), got {arr.shape}", where=name)
    if shape is not None and arr.shape != shape:
        raise ReadingError(f"shape {arr.shape} does not match {shape}", where=name)
    return arr


def _per_meter(x: Any, meters: int, name: str, *, positive: bool) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    try:
        arr = np.broadcast_to(arr, (meters,))
    except ValueError:
        raise ReadingError(f"must be a scalar or shape ({meters},), got {arr.shape}",
                           where=name) from None
    if positive and not np.all((arr > 0) & np.isfinite(arr)):
        bad = int(np.flatnonzero(~((arr > 0) & np.isfinite(arr)))[0])
        raise ReadingError(f"must be finite and > 0, meter {bad} has {arr[bad]}", where=name,
                           index=bad)
    return arr


def _advance(start: np.ndarray, end: np.ndarray, cap: np.ndarray | None, max_fraction: float
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dial-unit advance from ``start`` to ``end``, never negative, and per-meter findings.

    Drops and missing readings are rare, so only the rows that have one are looked at again.

    Returns
    -------
    advance : ndarray, shape (meters, registers) [dial units]
        0 where refused, missing or infinite.
    rows : ndarray of int
        Meters with a finding.
    row_flags : ndarray of uint16, shape (rows,)
        ROLLOVER / NEGATIVE_REFUSED / MISSING bits of those meters.
    """
    delta = end - start
    # One comparison finds both drops and NaN (NaN >= 0 is False); one reduction finds +inf.
    odd = ~(delta >= 0)
    if not odd.any() and (delta.size == 0 or np.isfinite(delta.max())):
        return delta, np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.uint16)
    rows = np.flatnonzero(odd.any(axis=1) | np.isinf(delta).any(axis=1))
    sub = delta[rows]
    missing = np.isnan(sub)
    absurd = np.isinf(sub)
    drop = sub < 0
    if cap is None:
        rolled = np.zeros_like(drop)
    else:
        c = cap[rows, None]
        wrapped = sub + c
        # A wrap lands between 0 and a plausible advance; a reading below 0 never wrapped.
        rolled = drop & (wrapped >= 0) & (wrapped <= max_fraction * c)
        sub = np.where(rolled, wrapped, sub)
    refused = drop & ~rolled & ~absurd
    sub[refused | missing | absurd] = 0.0
    delta[rows] = sub
    row_flags = (rolled.any(axis=1) * np.uint16(RegisterFlag.ROLLOVER)
                 | refused.any(axis=1) * np.uint16(RegisterFlag.NEGATIVE_REFUSED)
                 | missing.any(axis=1) * np.uint16(RegisterFlag.MISSING)
                 | absurd.any(axis=1) * np.uint16(RegisterFlag.IMPLAUSIBLE)).astype(np.uint16)
    return delta, rows, row_flags


def _out_of_range(readings: list[np.ndarray], cap: np.ndarray | None) -> np.ndarray | None:
    """Meters with a reading below 0 or at/above the register capacity (None if there are none)."""
    # Whole-array min/max first: cheap, and almost always enough.
    low = any(r.size and r.min() < 0 for r in readings)
    high = cap is not None and any(r.size and r.max() >= cap.min() for r in readings)
    if not (low or high):
        return None
    bad = np.zeros(readings[0].shape[0], dtype=bool)
    for r in readings:
        # Column by column: row-wise reductions over a few registers are slow in numpy.
        lo, hi = r[:, 0].copy(), r[:, 0].copy()
        for c in range(1, r.shape[1]):
            np.minimum(lo, r[:, c], out=lo)
            np.maximum(hi, r[:, c], out=hi)
        bad |= lo < 0
        if cap is not None:
            bad |= hi >= cap
    return bad


def register_energy(previous: Any, current: Any, multiplier: Any = 1.0, *,
                    rollover_at: Any = None, replacement: MeterReplacement | None = None,
                    total_column: int | None = 0, tou_columns: Any = None,
                    tou_tolerance: float = 0.05, capacity_kw: Any = None, hours: float | None = None,
                    plausibility_factor: float = 1.2, max_rollover_fraction: float = 0.1
                    ) -> RegisterEnergy:
    """Energy per register for a reading cycle of many meters.

    Parameters
    ----------
    previous : array_like, shape (meters, registers) [dial units, usually kWh]
        Readings at the start of the cycle (NaN = missing).
    current : array_like, shape (meters, registers) [dial units]
        Readings at the end of the cycle (NaN = missing).
    multiplier : float or array_like, shape (meters,) [-]
        CT ratio × PT ratio; must be > 0.
    rollover_at : float or array_like, shape (meters,), optional [dial units]
        Register capacity, e.g. ``1e6`` for a 6-digit register.  Without it no drop is
        taken for a wrap.
    replacement : MeterReplacement, optional
        Meters replaced during the cycle.
    total_column : int or None
        Column of the total register (default 0); None when there is none.
    tou_columns : sequence of int, optional
        Columns of the TOU registers; by default every column but ``total_column``.
    tou_tolerance : float [dial units]
        Allowed gap between the TOU registers' sum and the total, before the multiplier (the
        readings' last digit is rounded, so a few hundredths are normal).
    capacity_kw : float or array_like, shape (meters,), optional [kW]
        Plant or connection capacity for the plausibility check (needs ``hours``).
    hours : float, optional [h]
        Length of the cycle.
    plausibility_factor : float [-]
        Energy above ``capacity_kw × hours × plausibility_factor`` is implausible.
    max_rollover_fraction : float [-]
        Largest wrapped advance believed, as a fraction of ``rollover_at``.

    Returns
    -------
    RegisterEnergy
        ``kwh`` shape (meters, registers) [kWh], never negative; ``flags`` shape (meters,).

    Raises
    ------
    ReadingError
        Shapes that do not match; a multiplier, capacity or ``rollover_at`` that is not
        positive and finite.
    """
    # inf − inf and comparisons with NaN are expected here (absurd or missing readings are
    # flagged, not warned about).
    with np.errstate(invalid="ignore", over="ignore"):
        return _register_energy(previous, current, multiplier, rollover_at, replacement,
                                total_column, tou_columns, tou_tolerance, capacity_kw, hours,
                                plausibility_factor, max_rollover_fraction)


def _split_replaced(replacement: MeterReplacement, prev: np.ndarray, cur: np.ndarray,
                    kwh: np.ndarray, flags: np.ndarray, mult: np.ndarray, cap: np.ndarray | None,
                    max_rollover_fraction: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Redo the replaced meters as old meter (start → final) + new meter (initial → current).

    ``kwh`` [kWh] and ``flags`` are updated in place for the replaced rows.

    Returns
    -------
    (scale, out_of_range) or None
        ``scale`` [-], shape (meters,): the multiplier the TOU tolerance is scaled by (the
        larger of old and new on a replaced meter); ``out_of_range``, shape (meters,) bool:
        readings outside their register.  None when no meter of the call was replaced.
    """
    meters, regs = prev.shape
    replaced = np.broadcast_to(np.asarray(replacement.replaced, dtype=bool), (meters,))
    old_final = _readings(replacement.old_final, "replacement.old_final", (meters, regs))
    new_initial = _readings(replacement.new_initial, "replacement.new_initial", (meters, regs))
    new_mult = mult if replacement.new_multiplier is None else _per_meter(
        replacement.new_multiplier, meters, "replacement.new_multiplier", positive=True)
    new_cap = cap if replacement.new_rollover_at is None else _per_meter(
        replacement.new_rollover_at, meters, "replacement.new_rollover_at", positive=True)
    r = np.flatnonzero(replaced)
    if not r.size:
        return None
    # Replaced meters are few: redo just them as old part + new part.
    sub_cap = None if cap is None else cap[r]
    sub_new_cap = None if new_cap is None else new_cap[r]
    adv1, rows1, flags1 = _advance(prev[r], old_final[r], sub_cap, max_rollover_fraction)
    adv2, rows2, flags2 = _advance(new_initial[r], cur[r], sub_new_cap, max_rollover_fraction)
    kwh[r] = adv1 * mult[r, None] + adv2 * new_mult[r, None]
    sub_flags = np.full(r.size, np.uint16(RegisterFlag.REPLACED), dtype=np.uint16)
    sub_flags[rows1] |= flags1
    sub_flags[rows2] |= flags2
    flags[r] = sub_flags
    scale = mult.copy()
    scale[r] = np.maximum(mult[r], new_mult[r])
    old_bad = _out_of_range([prev[r], old_final[r]], sub_cap)
    new_bad = _out_of_range([new_initial[r], cur[r]], sub_new_cap)
    bad_range = _out_of_range([prev, cur], cap)
    if bad_range is None:
        bad_range = np.zeros(meters, dtype=bool)
    # A replaced meter's readings are judged against the meter they were read on.
    bad_range[r] = False
    if old_bad is not None:
        bad_range[r] |= old_bad
    if new_bad is not None:
        bad_range[r] |= new_bad
    return scale, bad_range


def _tou_mismatch(kwh: np.ndarray, total_column: int | None, tou_columns: Any,
                  tou_tolerance: float, scale: np.ndarray) -> np.ndarray | None:
    """Meters whose TOU registers miss the total by more than the tolerance (None: not checked).

    ``kwh`` [kWh], shape (meters, registers); ``tou_tolerance`` [dial units] times ``scale``
    [-], shape (meters,), is the allowed gap [kWh].
    """
    regs = kwh.shape[1]
    if total_column is None or regs <= 1:
        return None
    if not -regs <= total_column < regs:
        raise ReadingError(f"no column {total_column} in {regs} registers", where="total_column")
    total_column %= regs
    cols = [c for c in range(regs) if c != total_column] if tou_columns is None \
        else [int(c) for c in tou_columns]
    if not cols:
        return None
    tou_sum = kwh[:, cols[0]].copy()
    for c in cols[1:]:
        tou_sum += kwh[:, c]
    tou_sum -= kwh[:, total_column]
    np.abs(tou_sum, out=tou_sum)
    return tou_sum > tou_tolerance * scale


def _above_capacity(kwh: np.ndarray, capacity_kw: Any, hours: float,
                    plausibility_factor: float) -> np.ndarray:
    """Meters with a register above capacity [kW] × hours [h] × factor [kWh], shape (meters,)."""
    meters, regs = kwh.shape
    limit = _per_meter(capacity_kw, meters, "capacity_kw", positive=True) * float(hours) \
        * plausibility_factor
    # Column by column: a row-wise max over 5 registers is slow in numpy.
    largest = kwh[:, 0].copy()
    for c in range(1, regs):
        np.maximum(largest, kwh[:, c], out=largest)
    return largest > limit


def _register_energy(previous, current, multiplier, rollover_at, replacement, total_column,
                     tou_columns, tou_tolerance, capacity_kw, hours, plausibility_factor,
                     max_rollover_fraction) -> RegisterEnergy:
    prev = _readings(previous, "previous")
    meters, regs = prev.shape
    cur = _readings(current, "current", (meters, regs))
    mult = _per_meter(multiplier, meters, "multiplier", positive=True)
    cap = None if rollover_at is None else _per_meter(rollover_at, meters, "rollover_at",
                                                      positive=True)
    flags = np.zeros(meters, dtype=np.uint16)

    adv, rows, row_flags = _advance(prev, cur, cap, max_rollover_fraction)
    flags[rows] |= row_flags
    kwh = adv
    kwh *= mult[:, None]
    split = None if replacement is None else _split_replaced(
        replacement, prev, cur, kwh, flags, mult, cap, max_rollover_fraction)
    if split is None:
        scale, bad_range = mult, _out_of_range([prev, cur], cap)
    else:
        scale, bad_range = split

    mismatch = _tou_mismatch(kwh, total_column, tou_columns, tou_tolerance, scale)
    if mismatch is not None:
        flags |= mismatch * np.uint16(RegisterFlag.TOU_MISMATCH)

    implausible = np.zeros(meters, dtype=bool) if bad_range is None else bad_range
    if capacity_kw is not None and hours is not None:
        implausible = implausible | _above_capacity(kwh, capacity_kw, hours, plausibility_factor)
    flags |= implausible * np.uint16(RegisterFlag.IMPLAUSIBLE)
    return RegisterEnergy(kwh=kwh, flags=flags)


def self_consumption(generation_kwh: Any, export_kwh: Any, *, tolerance_kwh: float = 0.0
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Self-consumed PV energy = generation − export, per period, never negative.

    Parameters
    ----------
    generation_kwh : array_like, shape (plants, periods) [kWh]
        Generation meter energy per TOU period.
    export_kwh : array_like, shape (plants, periods) [kWh]
        Reverse (export) energy of the grid meter per TOU period.
    tolerance_kwh : float [kWh]
        Export above generation by no more than this is not flagged (meters disagree a
        little); self-consumption is 0 there either way.

    Returns
    -------
    self_use_kwh : ndarray of float64, shape (plants, periods) [kWh]
    flags : ndarray of uint16, shape (plants,)
        :attr:`RegisterFlag.EXPORT_EXCEEDS_GENERATION` where export > generation + tolerance.
    """
    gen = _readings(generation_kwh, "generation_kwh")
    exp = _readings(export_kwh, "export_kwh", gen.shape)
    if not (np.all(np.isfinite(gen)) and np.all(np.isfinite(exp))):
        raise ReadingError("energies must be finite", where="generation_kwh/export_kwh")
    diff = gen - exp
    over = (-diff > tolerance_kwh).any(axis=1)
    flags = np.where(over, np.uint16(RegisterFlag.EXPORT_EXCEEDS_GENERATION), np.uint16(0))
    return np.maximum(diff, 0.0), flags.astype(np.uint16)
