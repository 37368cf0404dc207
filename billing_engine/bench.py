"""Benchmark of the two hot paths, measured in one run on the same data.

:func:`run` (and ``python -m billing_engine bench``, ``pvsettle bench engine``) returns one
dict with

``meter_years``, ``dtype``, ``input_bytes``
    The interval array: meters × one year of 15-minute kWh (35 040 values per meter),
    generated in place (no second copy is ever made).
``interval_seconds``
    :func:`billing_engine.billing.bill` of that array under the shipped Jiangsu tariff: kWh per
    month and period for every meter, priced to fen (best of ``repeat``).
``floor_seconds``, ``ratio_to_floor``
    One plain numpy pass reading the same array (``arr.sum()``), the memory-bandwidth floor,
    best of ``repeat``; and ``interval_seconds / floor_seconds``.
``peak_mem_bytes``, ``peak_mem_ratio``
    Peak traced memory (``tracemalloc``, which sees numpy's allocations) from before the
    array is allocated through generation and one billing run — input included — and that
    peak divided by ``input_bytes``.
``register_meters``, ``register_seconds``
    :func:`billing_engine.registers.register_energy` for that many meters × 5 registers
    (total + 4 TOU), with multipliers, rollovers, replaced meters, the TOU check and the
    plausibility check.
``register_pricing_seconds``
    :func:`billing_engine.pricing.price_cycle` of those meters' self-use under a discount
    contract with floor, cap and VAT, to integer fen (extra key).
``pysam_seconds_per_meter_year``, ``engine_seconds_per_meter_year``, ``speedup_vs_pysam``
    NREL PySAM Utilityrate5 billing meter 0's profile (same 15-minute kWh, the tariff's
    hourly shape as 12 × 24 schedules), timed like the engine from the numpy profile to the
    charges per month and period, best of ``repeat``; null when PySAM is not installed.
"""

from __future__ import annotations

import resource
import time
import tracemalloc
from typing import Any

import numpy as np

from .billing import bill
from .pricing import ContractTerms, price_cycle
from .registers import MeterReplacement, register_energy
from .tariff import Tariff
from .tariff_files import example

__all__ = ["run"]

_INTERVALS_PER_YEAR = 365 * 96
_START = np.datetime64("2025-06-01T00:00")


def _fill_profiles(arr: np.ndarray, rng: np.random.Generator, rows_per_chunk: int = 64) -> None:
    """Write synthetic 15-minute load profiles into ``arr`` in place, chunk by chunk."""
    hours = (np.arange(96) + 0.5) / 4
    # Day shape: night base, morning and evening humps [kWh per 15 min for a 1 kW-average load].
    day = 0.6 + 0.5 * np.exp(-((hours - 9.5) / 2.5) ** 2) + 0.8 * np.exp(-((hours - 19.5) / 2.0) ** 2)
    day = (day / day.mean() * 0.25).astype(arr.dtype)
    shape = np.tile(day, arr.shape[1] // 96 + 1)[: arr.shape[1]]
    scale = rng.uniform(0.5, 20.0, arr.shape[0]).astype(arr.dtype)
    for r0 in range(0, arr.shape[0], rows_per_chunk):
        block = arr[r0:r0 + rows_per_chunk]
        rng.random(out=block, dtype=arr.dtype)
        block += np.asarray(0.5, dtype=arr.dtype)
        block *= shape
        block *= scale[r0:r0 + rows_per_chunk, None]


def _best(fn, repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _register_inputs(meters: int, rng: np.random.Generator) -> dict:
    tou_prev = rng.uniform(0, 2e5, (meters, 4))
    tou_adv = rng.uniform(0, 500, (meters, 4))
    prev = np.concatenate([tou_prev.sum(axis=1, keepdims=True), tou_prev], axis=1)
    cur = prev + np.concatenate([tou_adv.sum(axis=1, keepdims=True), tou_adv], axis=1)
    # One meter in a thousand wraps: its registers sit just below 10**6.
    near_top = rng.random(meters) < 0.001
    lift = 1e6 - 1e3 - prev[near_top, :1]
    prev[near_top] += lift
    cur[near_top] = (cur[near_top] + lift) % 1e6
    # One in a thousand was replaced: old meter advanced a little, new one started near 0.
    replaced = rng.random(meters) < 0.001
    old_final = prev + np.array([4.0, 1.0, 1.0, 1.0, 1.0])
    new_initial = np.zeros_like(prev)
    cur[replaced] = new_initial[replaced] + np.array([8.0, 2.0, 2.0, 2.0, 2.0])
    multiplier = rng.choice(np.array([1.0, 20.0, 50.0, 100.0]), meters)
    # Capacity to match the energy (a few % utilisation), so flags stay as rare as in life.
    capacity_kw = 5 * 2000.0 * multiplier / 720.0
    return dict(previous=prev, current=cur, multiplier=multiplier, rollover_at=1e6,
                replacement=MeterReplacement(replaced=replaced, old_final=old_final,
                                             new_initial=new_initial),
                capacity_kw=capacity_kw, hours=24.0 * 30)


def _pysam_seconds(tariff: Tariff, kwh: np.ndarray, repeat: int) -> float | None:
    try:
        import PySAM.Utilityrate5 as ur5
    except ImportError:
        return None
    version = tariff.versions[0]
    weekday = (version.slot_period[:, 0, ::4] + 1).tolist()
    weekend = (version.slot_period[:, 1, ::4] + 1).tolist()
    prices = version.price_micro[0] / 1e6
    tou_mat = [[p + 1, 1, 1e38, 0, float(prices[p]), 0.0] for p in range(len(tariff.periods))]
    months = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")

    def once() -> list:
        # Timed like the engine: from the numpy profile to charges per month and period.
        load_kw = (np.asarray(kwh, dtype=np.float64) * 4).tolist()
        zeros = [0.0] * len(load_kw)
        m = ur5.new()
        m.ElectricityRates.en_electricity_rates = 1
        m.ElectricityRates.ur_metering_option = 0
        m.ElectricityRates.ur_dc_enable = 0
        m.ElectricityRates.ur_en_ts_sell_rate = 0
        m.ElectricityRates.ur_en_ts_buy_rate = 0
        m.ElectricityRates.ur_ec_sched_weekday = weekday
        m.ElectricityRates.ur_ec_sched_weekend = weekend
        m.ElectricityRates.ur_ec_tou_mat = tou_mat
        m.ElectricityRates.ur_monthly_fixed_charge = 0.0
        m.ElectricityRates.rate_escalation = [0]
        m.Lifetime.analysis_period = 1
        m.Lifetime.inflation_rate = 0
        m.Lifetime.system_use_lifetime_output = 0
        m.Load.load = load_kw
        m.Load.load_escalation = [0]
        m.SystemOutput.gen = zeros
        m.SystemOutput.degradation = [0]
        m.execute(0)
        return [getattr(m.Outputs, f"charge_wo_sys_ec_{name}_tp") for name in months]

    seconds, _ = _best(once, repeat)
    return seconds


def _traced_profiles(tariff: Tariff, meter_years: int, dtype: str,
                     rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Generate the interval array and bill it once under tracemalloc.

    Returns
    -------
    arr : ndarray, shape (meter_years, 35040) [kWh]
    peak : int [bytes]
        Peak traced memory from before the array is allocated through one billing run.
    """
    tracemalloc.start()
    try:
        arr = np.empty((meter_years, _INTERVALS_PER_YEAR), dtype=dtype)
        _fill_profiles(arr, rng)
        traced = bill(tariff, arr, _START, 15)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del traced
    return arr, peak


def _interval_timings(tariff: Tariff, arr: np.ndarray, repeat: int) -> tuple[float, float]:
    """Best floor (``arr.sum()``) and billing times [s], interleaved so both see the same machine."""
    floor_seconds = float("inf")
    interval_seconds = float("inf")
    result = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        arr.sum()
        floor_seconds = min(floor_seconds, time.perf_counter() - t0)
        t0 = time.perf_counter()
        result = bill(tariff, arr, _START, 15)
        interval_seconds = min(interval_seconds, time.perf_counter() - t0)
    if result is None or int(result.total_fen.min()) <= 0:
        raise RuntimeError("interval billing produced no amounts: the benchmark is broken")
    return floor_seconds, interval_seconds


def _register_timings(tariff: Tariff, register_meters: int, rng: np.random.Generator,
                      repeat: int) -> tuple[float, float]:
    """Best times [s] of register energy and of pricing its self-use under a discount contract."""
    inputs = _register_inputs(register_meters, rng)
    register_seconds, energy = _best(lambda: register_energy(**inputs), repeat)
    self_use = energy.kwh[:, 1:]
    terms = ContractTerms("discount", discount="0.85", floor_price="0.30", cap_price="1.00",
                          vat_rate="0.13", prices_include_vat=True)
    grid_price = tariff.versions[0].price_micro[5, :4]
    pricing_seconds, cycle = _best(lambda: price_cycle(terms, grid_price, self_use), repeat)
    if cycle.total_fen.shape != (register_meters,):
        raise RuntimeError("register pricing lost meters: the benchmark is broken")
    return register_seconds, pricing_seconds


def run(meter_years: int = 10000, register_meters: int = 1_000_000, dtype: str = "float32", *,
        pysam: bool = True, repeat: int = 3, seed: int = 0) -> dict:
    """Run the benchmark and return its figures (see the module docstring for each key).

    Parameters
    ----------
    meter_years : int
        Meters in the interval array, each one year of 15-minute data.
    register_meters : int
        Meters in the register path, 5 registers each.
    dtype : {"float32", "float64"}
        Interval array dtype.  float32 (the default) halves memory and bandwidth; meter data
        has far fewer significant digits than float32 keeps.
    pysam : bool
        Measure PySAM on one meter-year when it is installed.
    repeat : int
        Timings are the best of this many runs.
    seed : int

    Returns
    -------
    dict
    """
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    rng = np.random.default_rng(seed)
    tariff = example("jiangsu-2025")

    arr, peak = _traced_profiles(tariff, meter_years, dtype, rng)
    floor_seconds, interval_seconds = _interval_timings(tariff, arr, repeat)
    pysam_seconds = _pysam_seconds(tariff, arr[0], repeat) if pysam and meter_years else None
    per_meter_year = interval_seconds / max(meter_years, 1)
    register_seconds, pricing_seconds = _register_timings(tariff, register_meters, rng, repeat)

    input_bytes = int(arr.nbytes)
    return {
        "meter_years": int(meter_years),
        "dtype": str(arr.dtype),
        "input_bytes": input_bytes,
        "interval_seconds": round(interval_seconds, 4),
        "floor_seconds": round(floor_seconds, 4),
        "ratio_to_floor": round(interval_seconds / floor_seconds, 3),
        "peak_mem_bytes": int(peak),
        "register_meters": int(register_meters),
        "register_seconds": round(register_seconds, 4),
        "peak_mem_ratio": round(peak / max(input_bytes, 1), 3),
        "register_pricing_seconds": round(pricing_seconds, 4),
        "engine_seconds_per_meter_year": per_meter_year,
        "pysam_seconds_per_meter_year": None if pysam_seconds is None else round(pysam_seconds, 5),
        "speedup_vs_pysam": None if pysam_seconds is None else round(pysam_seconds / per_meter_year, 1),
        "rss_peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
