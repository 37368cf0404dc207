"""settlement.telemetry.energy and settlement.telemetry.solar: pure functions, no I/O."""

from __future__ import annotations

import datetime as dt

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from settlement.telemetry.solar import daylight_us, first_daylight_stretch, sun_elevation_deg
from settlement.telemetry.energy import (
    MINUTE_US,
    NULL,
    CounterState,
    SampleFlag,
    counter_intervals,
    interval_energies,
    local_day_of,
    local_month_of,
    quarter_of,
    quarter_rollups,
)

TZ = dt.timezone(dt.timedelta(hours=8))


def us(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=TZ).timestamp()) * 1_000_000


def reference(ts, energy, ref, limit_w):
    """The rules of the module docstring, one sample at a time."""
    out, flags = [], []
    for t, e in zip(ts, energy):
        if e == NULL:
            out.append(NULL), flags.append(0)
            continue
        if ref is None:
            ref = (t, e)
            out.append(NULL), flags.append(0)
            continue
        allowed = limit_w * 1.25 * (t - ref[0]) / 3_600_000_000 + 1000
        if e >= ref[1]:
            ok = e - ref[1] <= allowed
            out.append(e - ref[1] if ok else 0), flags.append(0 if ok else SampleFlag.IMPLAUSIBLE)
            ref = (t, e)
        elif e * 10 < ref[1] * 9:
            ok = e <= allowed
            out.append(e if ok else 0)
            flags.append(SampleFlag.COUNTER_RESET | (0 if ok else SampleFlag.IMPLAUSIBLE))
            ref = (t, e)
        else:
            out.append(0), flags.append(SampleFlag.COUNTER_DIP)
    return out, flags, ref


steps = st.lists(st.tuples(st.integers(1, 120), st.one_of(st.just(None), st.integers(-3000, 3000),
                                                          st.integers(-10**7, 10**7))), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(groups=st.lists(steps, min_size=1, max_size=4), start=st.integers(0, 10**7))
def test_vectorised_counters_follow_the_rules_and_never_count_negative_energy(groups, start):
    group, ts, energy, expected, expected_flags = [], [], [], [], []
    for g, seq in enumerate(groups):
        t, e = 1_800_000_000_000_000, start
        gts, gen = [], []
        for minutes, step in seq:
            t += minutes * MINUTE_US
            if step is None:
                gen.append(NULL)
            else:
                e = max(0, e + step)
                gen.append(e)
            gts.append(t)
        out, flags, _ = reference(gts, gen, None, 5000.0)
        group += [g] * len(gts)
        ts += gts
        energy += gen
        expected += out
        expected_flags += [int(f) for f in flags]
    state = CounterState.empty(len(groups))
    interval, flags, _ = interval_energies(np.array(group), np.array(ts, np.int64), np.array(energy, np.int64), state,
                                           np.full(len(groups), 5000.0))
    assert interval.tolist() == expected and flags.tolist() == expected_flags
    assert (interval[interval != NULL] >= 0).all()


def test_a_reference_carried_in_from_stored_samples():
    state = CounterState(np.array([us("2026-10-10T10:00")]), np.array([1_000_000]), np.array([True]))
    interval, flags, after = interval_energies(np.zeros(2, int), np.array([us("2026-10-10T10:05"), us("2026-10-10T10:10")]),
                                               np.array([999_990, 1_000_300]), state, np.array([8000.0]))
    assert interval.tolist() == [0, 300] and flags.tolist() == [SampleFlag.COUNTER_DIP, 0]
    assert (after.ts_us[0], after.energy_wh[0]) == (us("2026-10-10T10:10"), 1_000_300)


def test_buckets_are_labelled_by_their_start_and_hold_the_interval_ending_at_a_sample():
    assert quarter_of(np.array([us("2026-10-10T10:15")]))[0] == us("2026-10-10T10:00")
    assert quarter_of(np.array([us("2026-10-10T10:15") + 1]))[0] == us("2026-10-10T10:15")
    assert local_day_of(np.array([us("2026-10-10T23:45")]))[0] == us("2026-10-10T00:00")
    assert local_month_of(np.array([us("2026-10-31T00:00")]))[0] == us("2026-10-01T00:00")
    assert SampleFlag(3).names() == ["clock_skew", "counter_reset"]


def test_quarter_rollups_add_devices_peaks_and_average_irradiance():
    ts = np.array([us("2026-10-10T10:05"), us("2026-10-10T10:10"), us("2026-10-10T10:05"), us("2026-10-10T10:20")])
    got = quarter_rollups(plant=np.array([1, 1, 1, 1]), device=np.array([1, 1, 2, 1]), ts_us=ts,
                          interval_wh=np.array([100, NULL, 50, 70]), power_w=np.array([1000, 1500, 700, 900]),
                          irradiance_w_m2=np.array([NULL, 601, 602, NULL]))
    assert got.bucket_us.tolist() == [us("2026-10-10T10:00"), us("2026-10-10T10:15")]
    assert got.energy_wh.tolist() == [150, 70] and got.max_power_w.tolist() == [2200, 900]
    assert got.samples.tolist() == [3, 1] and got.irradiation_wh_m2.tolist() == [150, NULL]  # 601.5 / 4 = 150.4


def test_the_sun_over_shanghai():
    sh = (31.23, 121.47)
    # published sunrise / sunset (apparent, −0.833°): 04:50 / 19:01 on 2024-06-21, 06:52 / 16:54 on 2024-12-21
    for moment in ("2024-06-21T04:50", "2024-06-21T19:01", "2024-12-21T06:52", "2024-12-21T16:54"):
        assert abs(sun_elevation_deg(np.array([us(moment)]), *sh)[0] + 0.833) < 1.0, moment
    # solar noon at the June solstice: 90° − 31.23° + 23.44°
    assert abs(sun_elevation_deg(np.array([us("2024-06-21T11:56")]), *sh)[0] - 82.21) < 0.3
    assert first_daylight_stretch(us("2026-06-15T17:50"), us("2026-06-16T06:30"), *sh, 30 * MINUTE_US) == \
        us("2026-06-16T05:46")
    assert first_daylight_stretch(us("2026-06-15T20:00"), us("2026-06-16T04:00"), *sh, MINUTE_US) is None
    assert daylight_us(us("2026-06-15T05:00"), us("2026-06-15T06:00"), *sh) == 15 * MINUTE_US  # 05:45 … 05:59


def test_counter_intervals_count_rises_start_again_after_a_reset_and_keep_the_reference_over_a_dip():
    rows = [(1, "08:00", 1000), (1, "08:15", 1200),  # +200
            (1, "08:30", 1150), (1, "08:45", 1300),  # a dip (-4 %): the reference stays 1200, +100
            (1, "09:00", 100), (1, "09:15", 250),  # a reset (-92 %): counted again from 100, +150
            (2, "08:00", 50), (2, "08:15", 50)]  # another device starts its own reference, +0
    assert list(counter_intervals(rows)) == [("08:00", 200), ("08:30", 100), ("09:00", 150), ("08:00", 0)]
    # the line between them: a drop of exactly 10 % is a dip, one past it a reset
    assert list(counter_intervals([(1, "a", 1000), (1, "b", 900), (1, "c", 1050)])) == [("b", 50)]
    assert list(counter_intervals([(1, "a", 1000), (1, "b", 899), (1, "c", 950)])) == [("b", 51)]
