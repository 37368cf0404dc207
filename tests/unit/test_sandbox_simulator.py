"""The sandbox's telemetry simulator: its sky and its counters (no I/O)."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from sandbox.simulator import Inverter, Simulator, daylight, simulated_hour


def test_daylight_is_dark_at_night_and_full_at_solar_noon():
    assert daylight(0.0) == daylight(5.99) == daylight(18.0) == daylight(23.5) == 0.0
    assert daylight(12.0) == pytest.approx(1.0)
    assert daylight(9.0) == pytest.approx(daylight(15.0))  # symmetric about noon
    assert 0.0 < daylight(7.0) < daylight(9.0) < daylight(11.0) < 1.0
    assert daylight(36.0) == pytest.approx(1.0)  # hours wrap at 24


def test_the_sandbox_sky_starts_producing_and_keeps_nights_shorter_than_the_outage_threshold():
    assert daylight(simulated_hour(0.0)) > 0.5  # a demo started at any hour shows a producing plant
    assert simulated_hour(24 * 60.0) == pytest.approx(10.0)  # a whole day in 24 minutes at speed 60
    night_s = 12 * 3600 / 60  # [s] of real time the 12 dark hours take
    assert night_s < 30 * 60  # settlement.outages opens an outage after 30 minutes without output


def test_counters_advance_by_power_times_time_and_never_go_back():
    now = [0.0]
    inverter = Inverter("INV-1", rated_w=100_000, counter_wh=5_000_000.0)
    sim = Simulator([inverter], rng=random.Random(1), clock=lambda: now[0])
    at = dt.datetime(2026, 11, 22, 2, tzinfo=dt.timezone.utc)
    counters, powers = [], []
    for step in range(1, 200):
        now[0] = step * 5.0
        (row,) = sim.samples(at + dt.timedelta(seconds=5 * step))
        counters.append(row["energy_wh"])
        powers.append(row["power_w"])
        assert 0 <= row["power_w"] <= 2 * inverter.rated_w  # the ingest's bound
    assert counters == sorted(counters) and counters[0] >= 5_000_000
    assert len(set(powers)) > 50  # the live view moves
    # energy = Σ power × 5 s, to within the rounding of each power value
    expected = sum(p * 5 / 3600 for p in powers)
    assert abs((counters[-1] - 5_000_000) - expected) < 200 * 0.5 * 5 / 3600 + 1
