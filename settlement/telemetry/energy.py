"""Interval energy from inverters' lifetime counters, and 15-minute buckets: pure numpy, no I/O.

Times are int64 microseconds since the Unix epoch (UTC); energies int64 [Wh]; powers int64 [W];
irradiances int64 [W/m²]. A missing value is :data:`NULL` (-1): every quantity here is ≥ 0.

The counter rules (DOMAIN.md "Energy from meters")
--------------------------------------------------
A device's samples are taken in time order. Each sample that carries a counter is compared with
the device's *reference*, the latest earlier counter sample that was not a dip:

* ``d = E − E_ref ≥ 0`` and plausible — the sample's interval energy is ``d``; it becomes the
  reference. Power is never integrated: a sample without a counter has no interval energy, and the
  next counter difference covers its time.
* a drop of more than 10 % (``E < 0.9 · E_ref``) — a **reset** (firmware update, a daily counter
  rolling over at midnight): the counter started again from zero, so the energy since the reset is
  ``E`` itself (when plausible); flagged ``COUNTER_RESET``; it becomes the reference.
* a drop of at most 10 % — counter noise, a **dip**: no energy, flagged ``COUNTER_DIP``, and the
  reference stays the higher value, so that the recovery is not counted twice.
* more energy than the device could have made since the reference (``limit_w × 1.25 × Δt + 1 kWh``;
  the kWh covers counters that step in whole kWh) — **implausible**: no energy, flagged for staff,
  and it becomes the reference (a glitch costs one interval, a swapped counter does not stall).

The first counter sample of a device has no reference and so no interval energy (-1).

Buckets
-------
A sample reports on the interval that ends at its time, so it belongs to the 15-minute bucket
holding the instant just before ``ts`` (10:15:00 → the 10:00 bucket, 10:15:01 → the 10:15 one);
buckets are labelled by their start. On the usual 5- or 15-minute grid that is the bucket of the
interval's start. The energy of an interval that spans a gap lands in the bucket where the gap
ends — it is not spread over the gap (no interpolation). Local days and months are Asia/Shanghai
(UTC+8, no daylight saving since 1991), so a local day is exactly 96 buckets.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import IntFlag
from typing import TypeVar

import numpy as np

NULL = -1
MINUTE_US = 60_000_000
QUARTER_US = 15 * MINUTE_US
HOUR_US = 60 * MINUTE_US
DAY_US = 24 * HOUR_US
#: Asia/Shanghai is UTC+8 all year.
LOCAL_OFFSET_US = 8 * HOUR_US

#: A counter below this share of its reference was reset (DOMAIN.md: a drop of more than ~10 %).
RESET_BELOW_NUM, RESET_BELOW_DEN = 9, 10
#: Headroom over the device's rated power before an energy is implausible [-].
PLAUSIBLE_MARGIN = 1.25
#: Counter resolution allowance: many inverters step their lifetime counter in whole kWh [Wh].
COUNTER_STEP_WH = 1_000


class SampleFlag(IntFlag):
    """What the service noticed about a sample (stored as ``TelemetrySample.flags``)."""

    CLOCK_SKEW = 1  # the device clock was ahead: ts corrected, the device's time kept in device_ts
    COUNTER_RESET = 2  # the counter dropped more than 10 %: energy counted from zero again
    COUNTER_DIP = 4  # the counter dropped at most 10 %: no energy, not a reference
    IMPLAUSIBLE = 8  # more energy than the device could make since the reference: not counted

    def names(self) -> list[str]:
        return [flag.name.lower() for flag in SampleFlag if flag in self]


@dataclass
class CounterState:
    """Per group: the reference counter sample (time, value) and whether there is one."""

    ts_us: np.ndarray  # int64
    energy_wh: np.ndarray  # int64
    present: np.ndarray  # bool

    @classmethod
    def empty(cls, groups: int) -> CounterState:
        return cls(np.zeros(groups, np.int64), np.zeros(groups, np.int64), np.zeros(groups, bool))


T = TypeVar("T")


def counter_intervals(rows: Iterable[tuple[int, T, int]]) -> Iterator[tuple[T, int]]:
    """The energy of each interval between a device's counter samples, by the counter rules above
    without the plausibility check: what owners' views and e-bills sum from stored samples.

    Parameters
    ----------
    rows : (device, ts, counter [Wh]) in (device, ts) order

    Yields
    ------
    (start, wh) : the interval's start (the earlier sample's ``ts``) and its energy [Wh], for
        each rise of the counter over its reference. A reset starts the count again from the
        new value; a dip keeps the higher reference, so that the recovery is not counted twice.
    """
    previous: tuple[int, T, int] | None = None  # (device, ts, counter reference)
    for device, ts, counter in rows:
        counter = int(counter)
        if previous is None or previous[0] != device:
            previous = (device, ts, counter)
            continue
        _, start, reference = previous
        if counter >= reference:
            yield start, counter - reference
            previous = (device, ts, counter)
        elif counter * RESET_BELOW_DEN < reference * RESET_BELOW_NUM:
            previous = (device, ts, counter)  # a reset: count on from the new value
        else:
            previous = (device, ts, reference)  # a dip: keep the higher reference


def energy_limit_wh(limit_w: np.ndarray, dt_us: np.ndarray) -> np.ndarray:
    """The most energy a device of ``limit_w`` [W] can plausibly make in ``dt_us`` [µs], [Wh]."""
    return limit_w * PLAUSIBLE_MARGIN * (dt_us / HOUR_US) + COUNTER_STEP_WH


def interval_energies(group: np.ndarray, ts_us: np.ndarray, energy_wh: np.ndarray, state: CounterState,
                      limit_w: np.ndarray) -> tuple[np.ndarray, np.ndarray, CounterState]:
    """Interval energy and counter flags of each sample, and the reference after each group.

    Parameters
    ----------
    group : ndarray of int, shape (n,)
        The group (one device's run of samples) of each sample, ``0 … groups-1``; the samples
        are sorted by (group, ts).
    ts_us : ndarray of int64, shape (n,) [µs]
    energy_wh : ndarray of int64, shape (n,) [Wh]
        Lifetime counter, ``NULL`` where the sample has none.
    state : CounterState, shape (groups,)
        The reference before each group's first sample (the latest earlier non-dip counter sample).
    limit_w : ndarray of float, shape (groups,) [W]
        The group's device's rated power (or its plant's capacity), for plausibility.

    Returns
    -------
    interval_wh : ndarray of int64, shape (n,) [Wh]
        ``NULL`` for samples without a counter or without a reference.
    flags : ndarray of int64, shape (n,)
        ``SampleFlag`` bits ``COUNTER_RESET``, ``COUNTER_DIP``, ``IMPLAUSIBLE``.
    CounterState, shape (groups,)
        The reference after each group's last sample.
    """
    n = len(ts_us)
    groups = len(state.present)
    interval = np.full(n, NULL, np.int64)
    flags = np.zeros(n, np.int64)
    out = CounterState(state.ts_us.copy(), state.energy_wh.copy(), state.present.copy())
    counted = np.flatnonzero(energy_wh != NULL)
    if counted.size == 0:
        return interval, flags, out
    g, t, e = group[counted], ts_us[counted], energy_wh[counted]
    first = np.ones(counted.size, bool)
    first[1:] = g[1:] != g[:-1]
    prev_t = np.empty_like(t)
    prev_e = np.empty_like(e)
    prev_t[1:], prev_e[1:] = t[:-1], e[:-1]
    prev_t[first], prev_e[first] = state.ts_us[g[first]], state.energy_wh[g[first]]
    has_prev = np.ones(counted.size, bool)
    has_prev[first] = state.present[g[first]]
    d = e - prev_e
    limit = energy_limit_wh(limit_w[g], t - prev_t)
    anomalous = has_prev & ((d < 0) | (d > limit))
    slow = np.zeros(groups, bool)
    slow[g[anomalous]] = True

    # the common case: counters that only count up, plausibly — one vectorised pass
    fast = ~slow[g]
    take = fast & has_prev
    interval[counted[take]] = d[take]
    last = np.ones(counted.size, bool)
    last[:-1] = g[1:] != g[:-1]
    ends = last & fast
    out.ts_us[g[ends]], out.energy_wh[g[ends]], out.present[g[ends]] = t[ends], e[ends], True

    # the rest, one group at a time in time order: resets, dips and glitches are rare
    for k in np.flatnonzero(slow):
        ref = (bool(state.present[k]), int(state.ts_us[k]), int(state.energy_wh[k]))
        ref_present, ref_t, ref_e = _walk_counter(counted[g == k], ts_us, energy_wh, float(limit_w[k]), ref,
                                                  interval, flags)
        out.ts_us[k], out.energy_wh[k], out.present[k] = ref_t, ref_e, ref_present
    return interval, flags, out


def _walk_counter(rows: np.ndarray, ts_us: np.ndarray, energy_wh: np.ndarray, limit_w: float,
                  ref: tuple[bool, int, int], interval: np.ndarray, flags: np.ndarray) -> tuple[bool, int, int]:
    """Judge one group's counter samples ``rows`` one after another: rises, resets and dips.

    ``ref`` is the reference before the first, (present, ts [µs], energy [Wh]); ``limit_w`` [W]
    the device's plausibility limit. ``interval`` [Wh] and ``flags`` are written at ``rows``.
    Returns the reference after the last.
    """
    ref_present, ref_t, ref_e = ref
    for i in rows:
        ti, ei = int(ts_us[i]), int(energy_wh[i])
        if not ref_present:
            ref_present, ref_t, ref_e = True, ti, ei
            continue
        allowed = float(energy_limit_wh(np.float64(limit_w), np.float64(ti - ref_t)))
        if ei >= ref_e:
            if ei - ref_e <= allowed:
                interval[i] = ei - ref_e
            else:
                interval[i], flags[i] = 0, SampleFlag.IMPLAUSIBLE
            ref_t, ref_e = ti, ei
        elif ei * RESET_BELOW_DEN < ref_e * RESET_BELOW_NUM:
            flags[i] = SampleFlag.COUNTER_RESET
            if ei <= allowed:
                interval[i] = ei
            else:
                interval[i] = 0
                flags[i] |= SampleFlag.IMPLAUSIBLE
            ref_t, ref_e = ti, ei
        else:
            interval[i], flags[i] = 0, SampleFlag.COUNTER_DIP
    return ref_present, ref_t, ref_e


def quarter_of(ts_us: np.ndarray) -> np.ndarray:
    """Start of the 15-minute bucket a sample at ``ts_us`` reports on (the instant just before it)."""
    return (ts_us - 1) // QUARTER_US * QUARTER_US


def local_day_of(bucket_us: np.ndarray) -> np.ndarray:
    """Start (UTC µs) of the local day holding each 15-minute bucket start."""
    return (bucket_us + LOCAL_OFFSET_US) // DAY_US * DAY_US - LOCAL_OFFSET_US


def local_month_of(day_us: np.ndarray) -> np.ndarray:
    """Start (UTC µs) of the local month holding each local day start."""
    local = (np.asarray(day_us, np.int64) + LOCAL_OFFSET_US).astype("datetime64[us]")
    return local.astype("datetime64[M]").astype("datetime64[us]").astype(np.int64) - LOCAL_OFFSET_US


def next_local_month(month_us: np.ndarray) -> np.ndarray:
    local = (np.asarray(month_us, np.int64) + LOCAL_OFFSET_US).astype("datetime64[us]").astype("datetime64[M]")
    return (local + 1).astype("datetime64[us]").astype(np.int64) - LOCAL_OFFSET_US


@dataclass
class QuarterRollups:
    """15-minute rollups per (plant, bucket), shape (k,) each."""

    plant: np.ndarray
    bucket_us: np.ndarray
    energy_wh: np.ndarray
    max_power_w: np.ndarray
    samples: np.ndarray
    irradiation_wh_m2: np.ndarray  # NULL where no sample of the bucket carried irradiance


def quarter_rollups(plant: np.ndarray, device: np.ndarray, ts_us: np.ndarray, interval_wh: np.ndarray,
                    power_w: np.ndarray, irradiance_w_m2: np.ndarray) -> QuarterRollups:
    """The rollups of every (plant, 15-minute bucket) the given samples fall in.

    Pass all the samples of those buckets (every device of the plant), or the figures are partial.

    Returns
    -------
    QuarterRollups
        ``energy_wh`` the sum of the interval energies [Wh]; ``max_power_w`` the sum over the
        plant's devices of each device's highest power in the bucket [W] (the plant's peak when
        its devices sample together); ``samples`` how many samples; ``irradiation_wh_m2`` the mean
        of the irradiance samples × 15 min, rounded half up [Wh/m²] (IEC 61724-1 aggregates
        irradiance as the mean over the reporting interval).
    """
    if len(ts_us) == 0:
        empty = np.zeros(0, np.int64)
        return QuarterRollups(empty, empty, empty, empty, empty, empty)
    bucket = quarter_of(ts_us)
    # (plant, bucket) groups, as one int64 key: plant ids < 2**23, quarter numbers < 2**40
    keys, inverse = np.unique(plant * (1 << 40) + bucket // QUARTER_US, return_inverse=True)
    k = keys.size
    energy = np.bincount(inverse, weights=np.where(interval_wh > 0, interval_wh, 0), minlength=k)
    samples = np.bincount(inverse, minlength=k)
    # a device's peak in the bucket, then summed over the plant's devices
    dev_keys, dev_inverse = np.unique(inverse * (1 << 32) + device, return_inverse=True)
    dev_peak = np.zeros(dev_keys.size, np.int64)
    np.maximum.at(dev_peak, dev_inverse, np.where(power_w > 0, power_w, 0))
    max_power = np.bincount(dev_keys >> 32, weights=dev_peak, minlength=k)
    has_irr = irradiance_w_m2 != NULL
    irr_sum = np.bincount(inverse[has_irr], weights=irradiance_w_m2[has_irr], minlength=k).astype(np.int64)
    irr_n = np.bincount(inverse[has_irr], minlength=k).astype(np.int64)
    # mean × ¼ h = sum / (4 n), half up: (2 sum + 4 n) // (8 n)
    irradiation = np.where(irr_n > 0, (2 * irr_sum + 4 * irr_n) // np.maximum(8 * irr_n, 1), NULL)
    return QuarterRollups(plant=keys >> 40, bucket_us=(keys & ((1 << 40) - 1)) * QUARTER_US, energy_wh=np.rint(energy).astype(np.int64),
                          max_power_w=np.rint(max_power).astype(np.int64), samples=samples.astype(np.int64),
                          irradiation_wh_m2=irradiation.astype(np.int64))


@dataclass
class RollupChanges:
    """What changed in each coarser bucket (day, month) of the 15-minute buckets recomputed."""

    plant: np.ndarray
    bucket_us: np.ndarray
    energy_wh: np.ndarray  # to add [Wh]
    samples: np.ndarray  # to add
    max_power_w: np.ndarray  # the highest power of the changed 15-minute buckets [W]
    irradiation_wh_m2: np.ndarray  # to add where has_irradiation [Wh/m²]
    has_irradiation: np.ndarray  # bool
    recompute: np.ndarray  # bool: a change that adding cannot express (a peak or irradiation went down or away)


def rollup_changes(new: QuarterRollups, old: QuarterRollups, coarse_of) -> RollupChanges:
    """Sum the changes of recomputed 15-minute buckets per (plant, coarser bucket).

    A day is the sum of its 15-minute buckets, a month of its days: adding each change keeps them
    so while every change of a 15-minute bucket goes through here (the ingest holds the plant's
    lock). A highest power can only be raised by adding, so a bucket whose peak fell (a corrected
    sample), or whose irradiation went away, asks for the coarser bucket to be recomputed.

    Parameters
    ----------
    new, old : QuarterRollups, aligned
        The recomputed buckets and what they held (``old.samples == 0``: there was no rollup).
    coarse_of : callable
        15-minute bucket starts → coarser bucket starts (:func:`local_day_of`, or the month of it).
    """
    changed = ((new.energy_wh != old.energy_wh) | (new.samples != old.samples) | (new.max_power_w != old.max_power_w)
               | (new.irradiation_wh_m2 != old.irradiation_wh_m2))
    plant, bucket = new.plant[changed], coarse_of(new.bucket_us[changed])
    if plant.size == 0:
        empty = np.zeros(0, np.int64)
        return RollupChanges(empty, empty, empty, empty, empty, empty, np.zeros(0, bool), np.zeros(0, bool))
    new_has = new.irradiation_wh_m2[changed] != NULL
    old_has = old.irradiation_wh_m2[changed] != NULL
    d_energy = new.energy_wh[changed] - old.energy_wh[changed]
    d_samples = new.samples[changed] - old.samples[changed]
    d_irr = (np.where(new_has, new.irradiation_wh_m2[changed], 0) - np.where(old_has, old.irradiation_wh_m2[changed], 0))
    awkward = (old_has & ~new_has) | ((old.samples[changed] > 0) & (new.max_power_w[changed] < old.max_power_w[changed]))
    keys, inverse = np.unique(plant * (1 << 40) + bucket // QUARTER_US, return_inverse=True)
    k = keys.size

    def total(values: np.ndarray) -> np.ndarray:
        out = np.zeros(k, np.int64)
        np.add.at(out, inverse, values)
        return out

    peak = np.zeros(k, np.int64)
    np.maximum.at(peak, inverse, new.max_power_w[changed])
    return RollupChanges(plant=keys >> 40, bucket_us=(keys & ((1 << 40) - 1)) * QUARTER_US, energy_wh=total(d_energy),
                         samples=total(d_samples), max_power_w=peak, irradiation_wh_m2=total(d_irr),
                         has_irradiation=total(new_has.astype(np.int64)) > 0,
                         recompute=total(awkward.astype(np.int64)) > 0)


def local_month_of_quarter(bucket_us: np.ndarray) -> np.ndarray:
    return local_month_of(local_day_of(bucket_us))
