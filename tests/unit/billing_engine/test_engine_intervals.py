"""The TOU calendar and interval energy: day types, holidays, steps, splits, version changes."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from billing_engine import IntervalDataError, example, parse_tariff
from billing_engine.intervals import check_timestamps, interval_energy
from billing_engine.tariff import HOLIDAY, WEEKDAY, WEEKEND
from billing_engine.tou import classify, month_label

SHARP, PEAK, FLAT, VALLEY, DEEP = range(5)


def _series(start: str, n: int, step: int) -> np.ndarray:
    return np.datetime64(start, "m") + np.arange(n) * np.timedelta64(step, "m")


def test_check_timestamps_accepts_regular_series() -> None:
    for step in (15, 30, 60):
        start, got = check_timestamps(_series("2025-01-01T00:00", 10, step))
        assert got == step and start == np.datetime64("2025-01-01T00:00")


@pytest.mark.parametrize("edit, index, message", [
    (lambda t: np.delete(t, 5), 5, "gap: 1 interval(s) missing between 2025-01-01T01:00 and "
                                   "2025-01-01T01:30 (step 15 min)"),
    (lambda t: np.insert(t, 5, t[4]), 5, "duplicate timestamp 2025-01-01T01:00"),
    (lambda t: np.concatenate([t[:5], t[5:] + np.timedelta64(60, "m")]), 5,
     "gap: 4 interval(s) missing between 2025-01-01T01:00 and 2025-01-01T02:15"),
    (lambda t: np.concatenate([t[:6], t[6:] - np.timedelta64(30, "m")]), 6, "comes after"),
    (lambda t: np.concatenate([t[:20], t[19] + np.arange(1, 6) * np.timedelta64(30, "m")]), 20,
     "mixed step: 30 min from 2025-01-01T04:45 to 2025-01-01T05:15, the series steps 15 min"),
])
def test_check_timestamps_refuses_irregular_series(edit, index, message) -> None:
    ts = edit(_series("2025-01-01T00:00", 40, 15))
    with pytest.raises(IntervalDataError) as info:
        check_timestamps(ts)
    assert info.value.index == index
    assert message in info.value.message


def test_check_timestamps_refuses_odd_steps_and_times() -> None:
    with pytest.raises(IntervalDataError, match="step of 45 min: the step must be 15, 30 or 60"):
        check_timestamps(_series("2025-01-01T00:00", 10, 45))
    hourly = _series("2025-01-01T00:00", 10, 60)
    with pytest.raises(IntervalDataError, match="mixed step: 15 min from") as info:
        check_timestamps(np.insert(hourly, 4, hourly[3] + np.timedelta64(15, "m")))
    assert info.value.index == 4
    with pytest.raises(IntervalDataError, match="not on a 15-minute boundary") as info:
        check_timestamps(_series("2025-01-01T00:05", 10, 15))
    assert info.value.index == 0
    with pytest.raises(IntervalDataError, match="one interval"):
        check_timestamps(_series("2025-01-01T00:00", 1, 15))


def test_calendar_day_types_and_holidays() -> None:
    tariff = example("jiangsu-2025")
    # 2025-10-01 (Wednesday, holiday) … 2025-10-11 (Saturday), 2025-10-12 (Sunday)
    slots = _series("2025-09-30T10:00", 1, 15)
    slots = np.concatenate([slots, _series("2025-10-01T10:00", 1, 15),
                            _series("2025-10-09T10:00", 1, 15), _series("2025-10-11T10:00", 1, 15)])
    cal = classify(tariff, slots)
    assert cal.day_type.tolist() == [WEEKDAY, HOLIDAY, WEEKDAY, WEEKEND]
    # Spring/autumn: 10–14 is valley on ordinary days, deep valley on holidays.
    assert cal.period.tolist() == [VALLEY, DEEP, VALLEY, VALLEY]
    assert [month_label(m) for m in cal.month] == ["2025-09", "2025-10", "2025-10", "2025-10"]


def test_calendar_refuses_time_before_the_first_version() -> None:
    with pytest.raises(IntervalDataError, match="before the tariff's first effective date 2025-06-01"):
        classify(example("jiangsu-2025"), _series("2025-05-31T23:45", 2, 15))


def test_fifteen_minute_energy_per_period_jiangsu_july_day() -> None:
    tariff = example("jiangsu-2025")
    kwh = np.full(96, 0.25)
    table = interval_energy(kwh, tariff, "2025-07-01T00:00", 15)
    got = dict(zip(table.bucket_period.tolist(), table.kwh[0].tolist()))
    # 1 kW: sharp 14–15 + 19:30–21:30 = 3 h; peak 15–19:30 + 21:30–22 = 5 h; flat 8 h; valley 8 h.
    assert got == {SHARP: 3.0, PEAK: 5.0, FLAT: 8.0, VALLEY: 8.0}
    assert table.segment_slots.tolist() == [96] and table.month_slots.tolist() == [31 * 96]


def test_hourly_interval_straddling_a_half_hour_boundary_is_split_evenly() -> None:
    tariff = example("jiangsu-2025")
    kwh = np.zeros(24)
    kwh[19] = 1.0  # 19:00–20:00: 19:00–19:30 peak, 19:30–20:00 sharp
    table = interval_energy(kwh, tariff, "2025-07-01T00:00", 60)
    got = dict(zip(table.bucket_period.tolist(), table.kwh[0].tolist()))
    assert got[PEAK] == 0.5 and got[SHARP] == 0.5 and got[FLAT] == 0 and got[VALLEY] == 0


@pytest.mark.parametrize("step", [15, 30, 60])
def test_steps_agree_on_hourly_aligned_tariffs(step: int) -> None:
    tariff = example("zhejiang-2024")
    rng = np.random.default_rng(step)
    hourly = rng.uniform(0, 2, (3, 24 * 40))
    per_hour = 60 // step
    fine = np.repeat(hourly / per_hour, per_hour, axis=1)
    a = interval_energy(hourly, tariff, "2024-01-20T00:00", 60)
    b = interval_energy(fine, tariff, "2024-01-20T00:00", step)
    np.testing.assert_allclose(a.kwh, b.kwh, rtol=1e-12)
    assert [month_label(m) for m in a.segment_month] == ["2024-01", "2024-02"]


def test_float32_input_is_billed_without_a_copy_and_close_to_float64() -> None:
    tariff = example("zhejiang-2024")
    rng = np.random.default_rng(3)
    data = rng.uniform(0, 3, (5, 96 * 62)).astype(np.float32)
    t32 = interval_energy(data, tariff, "2024-03-01T00:00", 15)
    t64 = interval_energy(data.astype(np.float64), tariff, "2024-03-01T00:00", 15)
    np.testing.assert_allclose(t32.kwh, t64.kwh, rtol=2e-6)


def test_chunking_does_not_change_the_result() -> None:
    tariff = example("zhejiang-2024")
    data = np.random.default_rng(4).uniform(0, 3, (37, 96 * 3))
    whole = interval_energy(data, tariff, "2024-03-30T00:00", 15)
    chunked = interval_energy(data, tariff, "2024-03-30T00:00", 15, chunk_bytes=1)
    np.testing.assert_allclose(whole.kwh, chunked.kwh, rtol=1e-13)


def test_version_change_mid_month_splits_the_month() -> None:
    obj = {
        "format": "pvsettle-tariff/1", "periods": ["day", "night"],
        "versions": [{
            "effective_from": "2025-01-01",
            "seasons": [{"months": list(range(1, 13)), "weekday": "d"}],
            "day_schedules": {"d": [["08:00", "20:00", "day"], ["20:00", "08:00", "night"]]},
            "prices": {"day": "1", "night": "0.5"},
        }],
    }
    later = copy.deepcopy(obj["versions"][0])
    later["effective_from"] = "2025-01-16"
    later["day_schedules"]["d"] = [["00:00", "24:00", "day"]]
    obj["versions"].append(later)
    tariff = parse_tariff(obj)
    table = interval_energy(np.ones(31 * 24), tariff, "2025-01-01T00:00", 60)
    assert table.segment_version.tolist() == [0, 1]
    assert table.segment_slots.tolist() == [15 * 96, 16 * 96]
    assert table.bucket_segment.tolist() == [0, 0, 1]
    assert table.bucket_period.tolist() == [0, 1, 0]
    assert table.kwh[0].tolist() == [15 * 12, 15 * 12, 16 * 24]


def test_nan_kwh_names_the_meter() -> None:
    data = np.ones((3, 96))
    data[2, 7] = np.nan
    with pytest.raises(IntervalDataError, match="meter 2 has NaN") as info:
        interval_energy(data, example("zhejiang-2024"), "2024-03-01T00:00", 15)
    assert info.value.index == 2
