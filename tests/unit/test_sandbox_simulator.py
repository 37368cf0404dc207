"""The sandbox's telemetry simulator: its sky is the real sun at the plant's site, and its
counters (no I/O)."""

from __future__ import annotations

import datetime as dt
import random

import numpy as np

from sandbox.simulator import Inverter, Simulator, clear_sky_fraction
from settlement.telemetry.solar import sun_elevation_deg
from settlement.telemetry.store import datetime_to_us
from settlement.clock import LOCAL

CHANGZHOU = (31.81, 119.97)  # a Jiangsu site [deg N, deg E]


def run(inverter: Inverter, start: dt.datetime, hours: float, step: dt.timedelta = dt.timedelta(minutes=5),
        seed: int = 1) -> list[tuple[dt.datetime, dict]]:
    """The samples of ``hours`` from ``start``, each paired with the timestamp it carries (local
    time) rather than the time it was asked for: the sun must match the time the sample says,
    which is what the ingest stores and the day chart shows."""
    sim = Simulator([inverter], rng=random.Random(seed))
    out, when = [], start
    while when < start + dt.timedelta(hours=hours):
        (row,) = sim.samples(when)
        out.append((stamped(row), row))
        when += step
    return out


def stamped(row: dict) -> dt.datetime:
    """A sample's own timestamp, in local time."""
    ts = dt.datetime.fromisoformat(row["ts"])
    assert ts.tzinfo is not None, row  # the ingest refuses a naive time
    return ts.astimezone(LOCAL)


def elevation(when: dt.datetime, site: tuple[float, float]) -> float:
    return float(sun_elevation_deg(np.array([datetime_to_us(when)]), *site)[0])


def test_no_simulated_sample_has_power_while_the_sun_at_the_site_is_below_the_horizon():
    """Two December days and the night between in Jiangsu, the issue's case: nothing at 20:00."""
    inverter = Inverter("INV-JS", rated_w=100_000, counter_wh=1_000_000.0, latitude=CHANGZHOU[0],
                        longitude=CHANGZHOU[1])
    rows = run(inverter, dt.datetime(2026, 12, 15, 0, 0, tzinfo=LOCAL), hours=48)
    # each sample at a time of its own, 5 minutes apart over the two days: the checks below go by
    # those stamps, so a sky that ran ahead of (or behind) the stamps would show
    stamps = [when for when, _ in rows]
    assert len(rows) == 576 and stamps == sorted(set(stamps))
    assert (stamps[0], stamps[-1]) == (dt.datetime(2026, 12, 15, 0, 0, tzinfo=LOCAL),
                                       dt.datetime(2026, 12, 16, 23, 55, tzinfo=LOCAL))
    for when, row in rows:
        if elevation(when, CHANGZHOU) <= 0:
            assert (row["power_w"], row["status"]) == (0, "standby"), when
    # independent of the solar code: sunrise in Changzhou on 15 December is about 06:50 and
    # sunset about 17:00 local (China Meteorological Administration almanac)
    for when, row in rows:
        local = when.astimezone(LOCAL).time()
        if local >= dt.time(17, 15) or local <= dt.time(6, 35):
            assert row["power_w"] == 0, when
    evening = [row["power_w"] for when, row in rows if dt.time(20) <= when.time() < dt.time(21)]
    assert evening == [0] * 24
    # and it does produce by day: most of rated power at noon under whatever clouds there are
    noon = [row["power_w"] for when, row in rows if when.time() == dt.time(12, 0)]
    assert all(15_000 < p < 100_000 for p in noon), noon
    # the counter moves only while it produces
    for night in (dt.date(2026, 12, 15), dt.date(2026, 12, 16)):
        counters = {row["energy_wh"] for when, row in rows if when.date() == night and when.time() <= dt.time(6)}
        assert len(counters) == 1, night


def test_the_sun_moves_with_the_site():
    # one clock, two sites: Ürümqi's sun is about two hours behind Jiangsu's
    when = dt.datetime(2026, 12, 15, 9, 30, tzinfo=dt.timezone.utc)  # 17:30 in Beijing time
    east = Inverter("INV-E", rated_w=10_000, counter_wh=0.0, latitude=CHANGZHOU[0], longitude=CHANGZHOU[1])
    west = Inverter("INV-W", rated_w=10_000, counter_wh=0.0, latitude=43.8, longitude=87.6)  # Ürümqi
    east_row, west_row = Simulator([east, west], rng=random.Random(3)).samples(when)
    assert east_row["power_w"] == 0 and west_row["power_w"] > 0  # set in Jiangsu, afternoon in Xinjiang
    assert elevation(stamped(east_row), CHANGZHOU) < 0 < elevation(stamped(west_row), (43.8, 87.6))


def test_clear_sky_output_follows_the_elevation():
    assert clear_sky_fraction(-5.0) == clear_sky_fraction(0.0) == 0.0
    assert 0.0 < clear_sky_fraction(5.0) < clear_sky_fraction(30.0) < clear_sky_fraction(60.0) < 0.85
    assert clear_sky_fraction(90.0) == 0.85


def test_counters_advance_by_power_times_time_and_never_go_back():
    inverter = Inverter("INV-1", rated_w=100_000, counter_wh=5_000_000.0, latitude=CHANGZHOU[0],
                        longitude=CHANGZHOU[1])
    rows = run(inverter, dt.datetime(2026, 11, 22, 9, 0, tzinfo=LOCAL), hours=200 * 5 / 3600,
               step=dt.timedelta(seconds=5))
    counters = [row["energy_wh"] for _, row in rows]
    powers = [row["power_w"] for _, row in rows]
    assert all(0 < p <= inverter.rated_w for p in powers)  # the ingest's bound is twice rated
    assert counters == sorted(counters) and counters[0] == 5_000_000
    assert len(set(powers)) > 50  # the live view moves
    # energy = Σ power × 5 s (each sample's power over the interval before it), to the rounding
    expected = sum(p * 5 / 3600 for p in powers[1:])
    assert abs((counters[-1] - 5_000_000) - expected) < 200 * 0.5 * 5 / 3600 + 1
