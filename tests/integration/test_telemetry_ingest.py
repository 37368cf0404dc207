"""Telemetry in (settlement.telemetry.ingest): realistic sequences against rollups worked out by hand.

Every expected figure below is written out in Wh from the samples of its test, bucket by bucket:
a sample belongs to the 15-minute bucket that holds the instant just before its time (the
interval it reports on ends at ``ts``), days and months are Asia/Shanghai.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from settlement.telemetry import live
from settlement import models as m
from settlement.infra.redis_client import Namespace, open_redis
from settlement.telemetry.ingest import MAX_BATCH_SAMPLES, LivePublisher, RowStatus, ingest_samples, plant_states
from settlement.errors import InvalidInput
from settlement.clock import LOCAL, UTC



def local(text: str) -> dt.datetime:
    """``"10-10 16:05"`` or ``"2026-10-10 16:05:30"`` as an aware local time (year 2026)."""
    if text.count("-") == 1:
        text = "2026-" + text
    return dt.datetime.fromisoformat(text).replace(tzinfo=LOCAL)


def utc(text: str) -> dt.datetime:
    """For filters: the database compares UTC."""
    return local(text).astimezone(UTC)


def iso(text: str) -> str:
    return local(text).isoformat()


def sample(when: str, energy: int | None = None, power: int | None = None, device: str = "INV-1", **extra) -> dict:
    row = {"device": device, "ts": iso(when)}
    if energy is not None:
        row["energy_wh"] = energy
    if power is not None:
        row["power_w"] = power
    return {**row, **extra}


async def ingest(rows, now: str = "10-20 12:00", **kwargs):
    kwargs.setdefault("received_from", "collector:test")
    return await ingest_samples(rows, now=local(now), **kwargs)


async def rollups(plant: m.Plant, granularity: str) -> dict[str, int]:
    """Energy per bucket, keyed by the bucket's local start: "10-10 16:00", "10-10", "2026-10"."""
    shape = {"15m": "%m-%d %H:%M", "day": "%m-%d", "month": "%Y-%m"}[granularity]
    rows = await m.TelemetryRollup.filter(plant=plant, granularity=granularity).values_list("bucket_start", "energy_wh")
    return {start.astimezone(LOCAL).strftime(shape): energy for start, energy in rows}


async def everything(plant: m.Plant) -> dict:
    rows = await m.TelemetryRollup.filter(plant=plant).order_by("granularity", "bucket_start").values_list(
        "granularity", "bucket_start", "energy_wh", "max_power_w", "samples", "irradiation_wh_m2")
    samples = await m.TelemetrySample.filter(device__plant=plant).order_by("device_id", "ts").values_list(
        "device__serial", "ts", "power_w", "energy_wh", "status", "interval_wh", "flags", "device_ts")
    return {"rollups": rows, "samples": samples}


async def make_plant(code: str, serials: dict[str, int | None], capacity: str = "10.000") -> m.Plant:
    owner = await m.Owner.create(name=f"owner of {code}")
    plant = await m.Plant.create(code=code, name=code, owner=owner, capacity_kwp=Decimal(capacity),
                                 latitude=Decimal("31.230000"), longitude=Decimal("121.470000"))
    for serial, rated in serials.items():
        await m.TelemetryDevice.create(plant=plant, serial=serial, rated_power_w=rated)
    return plant


@pytest.fixture
async def plant(db):
    return await make_plant("PV-1", {"INV-1": 8000})


# --- a lifetime counter reset at night ----------------------------------------------------------

RESET_AT_NIGHT = [
    sample("10-10 16:00", 5_000_000, 3000),  # the first counter sample: no interval
    sample("10-10 16:05", 5_000_300, 3600),  # +300  bucket 16:00
    sample("10-10 16:10", 5_000_500, 2400),  # +200  bucket 16:00
    sample("10-10 16:15", 5_000_600, 1200),  # +100  bucket 16:00
    sample("10-10 16:30", 5_000_650, 600),  # +50   bucket 16:15
    sample("10-10 22:00", 5_000_650, 0, status="standby"),  # +0 bucket 21:45
    sample("10-11 02:00", 0, 0, status="standby"),  # firmware update: a reset, +0 (energy since the reset) bucket 01:45
    sample("10-11 02:15", 0, 0, status="standby"),  # +0    bucket 02:00
    sample("10-11 06:20", 40, 480),  # +40   bucket 06:15
    sample("10-11 06:30", 190, 1800),  # +150  bucket 06:15
    sample("10-11 06:45", 400, 2520),  # +210  bucket 06:30
]
RESET_QUARTERS = {"10-10 15:45": 0, "10-10 16:00": 600, "10-10 16:15": 50, "10-10 21:45": 0, "10-11 01:45": 0,
                  "10-11 02:00": 0, "10-11 06:15": 190, "10-11 06:30": 210}


@pytest.mark.parametrize("arrival", ["one batch", "one by one", "one by one backwards", "reset first"])
async def test_a_counter_reset_at_night_counts_no_negative_energy(plant, arrival):
    rows = RESET_AT_NIGHT
    if arrival == "one batch":
        batches = [rows]
    elif arrival == "one by one":
        batches = [[r] for r in rows]
    elif arrival == "one by one backwards":
        batches = [[r] for r in reversed(rows)]
    else:
        batches = [rows[6:], rows[:6]]
    for batch in batches:
        result = await ingest(batch)
        assert result.count(RowStatus.CREATED) == len(batch)
    assert await rollups(plant, "15m") == RESET_QUARTERS
    assert await rollups(plant, "day") == {"10-10": 650, "10-11": 400}
    assert await rollups(plant, "month") == {"2026-10": 1050}
    reset = await m.TelemetrySample.get(ts=utc("10-11 02:00"))
    assert (reset.interval_wh, reset.flags) == (0, 2)  # COUNTER_RESET
    day = await m.TelemetryRollup.get(plant=plant, granularity="day", bucket_start=utc("10-10 00:00"))
    assert (day.max_power_w, day.samples) == (3600, 6)


# --- a daily counter rolling over at midnight ---------------------------------------------------


async def test_a_daily_counter_rolling_over_at_midnight_starts_the_next_day_from_zero(db):
    plant = await make_plant("PV-2", {"LOG-1": None}, capacity="5.000")  # no rated power: the plant's 5 kWp
    rows = [
        sample("10-10 17:00", 21_000, device="LOG-1"),  # today's energy so far; first sample, no interval
        sample("10-10 17:15", 21_120, device="LOG-1"),  # +120  bucket 17:00
        sample("10-10 17:30", 21_150, device="LOG-1"),  # +30   bucket 17:15
        sample("10-10 23:45", 21_150, device="LOG-1"),  # +0    bucket 23:30
        sample("10-11 00:00", 0, device="LOG-1"),  # rolled over: +0, bucket 10-10 23:45 (the interval ends at midnight)
        sample("10-11 00:15", 0, device="LOG-1"),  # +0    bucket 10-11 00:00
        sample("10-11 06:30", 80, device="LOG-1"),  # +80   bucket 06:15
        sample("10-11 06:45", 260, device="LOG-1"),  # +180  bucket 06:30
        sample("10-11 07:00", 560, device="LOG-1"),  # +300  bucket 06:45
        sample("10-12 00:00", 0, device="LOG-1"),  # rolled over again: +0, bucket 10-11 23:45
        sample("10-12 00:15", 0, device="LOG-1"),  # +0    bucket 10-12 00:00
    ]
    await ingest(rows[:5])
    await ingest(rows[5:])
    assert await rollups(plant, "15m") == {
        "10-10 16:45": 0, "10-10 17:00": 120, "10-10 17:15": 30, "10-10 23:30": 0, "10-10 23:45": 0,
        "10-11 00:00": 0, "10-11 06:15": 80, "10-11 06:30": 180, "10-11 06:45": 300, "10-11 23:45": 0,
        "10-12 00:00": 0}
    assert await rollups(plant, "day") == {"10-10": 150, "10-11": 560, "10-12": 0}
    assert await rollups(plant, "month") == {"2026-10": 710}
    flags = dict(await m.TelemetrySample.filter(flags__gt=0).values_list("ts", "flags"))
    assert flags == {local("10-11 00:00"): 2, local("10-12 00:00"): 2}


# --- duplicate and out-of-order batches ---------------------------------------------------------

# 09:00 to 11:00 every 5 minutes; the interval ending at 09:05 made 110 Wh, each next one 10 Wh more
MORNING = [sample(f"10-10 {9 + (5 * i) // 60:02d}:{(5 * i) % 60:02d}", 2_000_000 + sum(100 + 10 * k for k in range(1, i + 1)),
                  power=1200 + 120 * i) for i in range(25)]
A, B, C = MORNING[:9], MORNING[9:16], MORNING[16:]  # 09:00–09:40, 09:45–10:15, 10:20–11:00
MORNING_QUARTERS = {"10-10 08:45": 0, "10-10 09:00": 110 + 120 + 130, "10-10 09:15": 140 + 150 + 160,
                    "10-10 09:30": 170 + 180 + 190, "10-10 09:45": 200 + 210 + 220, "10-10 10:00": 230 + 240 + 250,
                    "10-10 10:15": 260 + 270 + 280, "10-10 10:30": 290 + 300 + 310, "10-10 10:45": 320 + 330 + 340}


@pytest.mark.parametrize("order", [
    pytest.param([A, B, C], id="in order"),
    pytest.param([C, A, B], id="last first"),
    pytest.param([B, C, A], id="first last"),
    pytest.param([C, B, A, A, C, B], id="backwards, then all again"),
    pytest.param([A + C, B, B + A], id="overlapping"),
    pytest.param([list(reversed(MORNING))], id="one batch reversed"),
])
async def test_duplicate_and_out_of_order_batches_converge_to_the_truth(plant, order):
    for batch in order:
        await ingest(batch)
    assert await rollups(plant, "15m") == MORNING_QUARTERS
    assert sum(MORNING_QUARTERS.values()) == 5400
    assert await rollups(plant, "day") == {"10-10": 5400}
    assert await m.TelemetrySample.all().count() == 25


async def test_a_batch_sent_again_is_all_duplicates_and_changes_nothing(plant):
    first = await ingest(A + B)
    assert first.counts() == {"created": 16, "updated": 0, "duplicates": 0, "rejected": 0, "flagged": 0}
    before = await everything(plant)
    audits = await m.AuditEvent.filter(action="IngestTelemetry").count()
    again = await ingest(A + B)
    assert again.counts() == {"created": 0, "updated": 0, "duplicates": 16, "rejected": 0, "flagged": 0}
    assert await everything(plant) == before
    assert await m.AuditEvent.filter(action="IngestTelemetry").count() == audits


async def test_the_same_key_twice_in_a_batch_the_last_wins(plant):
    rows = [sample("10-10 09:00", 1000), sample("10-10 09:05", 1500), sample("10-10 09:05", 1400)]
    result = await ingest(rows)
    assert result.statuses == [RowStatus.CREATED, RowStatus.DUPLICATE, RowStatus.CREATED]
    assert await rollups(plant, "15m") == {"10-10 08:45": 0, "10-10 09:00": 400}


async def test_a_corrected_sample_updates_its_bucket_and_its_neighbour(plant):
    await ingest(MORNING)
    # the logger re-sends 09:10 with a counter 60 Wh higher: +60 in the 09:00 bucket, −60 in the next sample
    fixed = sample("10-10 09:10", 2_000_000 + 110 + 120 + 60, power=1440)
    result = await ingest([fixed])
    assert result.statuses == [RowStatus.UPDATED]
    quarters = await rollups(plant, "15m")
    assert quarters["10-10 09:00"] == 360 and quarters == MORNING_QUARTERS  # both in the 09:00 bucket: no change
    fixed = sample("10-10 09:15", 2_000_000 + 110 + 120 + 130 + 40, power=1560)  # last sample of the bucket
    await ingest([fixed])
    quarters = await rollups(plant, "15m")
    assert (quarters["10-10 09:00"], quarters["10-10 09:15"]) == (400, 450 - 40)
    assert await rollups(plant, "day") == {"10-10": 5400}


# --- a batch six hours late ---------------------------------------------------------------------


async def test_a_batch_six_hours_late_fills_the_gap_without_double_counting(plant):
    live_rows = [sample(f"10-10 08:{mm:02d}", 3_000_000 + 200 * (mm // 5), power=2400) for mm in range(0, 60, 5)]
    live_rows.append(sample("10-10 09:00", 3_002_400, power=2400))
    # the logger lost its uplink from 09:00 to 15:00 and kept 72 samples of +500 Wh each
    buffered = [sample((local("10-10 09:00") + dt.timedelta(minutes=5 * i)).strftime("%m-%d %H:%M"),
                       3_002_400 + 500 * i, power=6000) for i in range(1, 73)]
    assert buffered[-1]["ts"] == iso("10-10 15:00") and buffered[-1]["energy_wh"] == 3_038_400
    await ingest(live_rows, now="10-10 09:00:05")
    back = sample("10-10 15:05", 3_038_400 + 200, power=2400)
    await ingest([back], now="10-10 15:05:04")
    # until the buffer arrives, the counter's 36,200 Wh since 09:00 sit where the gap ends
    quarters = await rollups(plant, "15m")
    assert quarters == {"10-10 07:45": 0, "10-10 08:00": 600, "10-10 08:15": 600, "10-10 08:30": 600,
                        "10-10 08:45": 600, "10-10 15:00": 36_200}
    assert await rollups(plant, "day") == {"10-10": 38_600}

    result = await ingest(buffered, now="10-10 15:06:00")
    assert result.count(RowStatus.CREATED) == 72
    quarters = await rollups(plant, "15m")
    gap = {(local("10-10 09:00") + dt.timedelta(minutes=15 * i)).strftime("%m-%d %H:%M"): 1500 for i in range(24)}
    assert quarters == {"10-10 07:45": 0, "10-10 08:00": 600, "10-10 08:15": 600, "10-10 08:30": 600,
                        "10-10 08:45": 600, **gap, "10-10 15:00": 200}
    assert await rollups(plant, "day") == {"10-10": 38_600}  # the same energy, now where it was made
    late = await m.TelemetrySample.get(ts=utc("10-10 12:00"))
    assert late.received_at == local("10-10 15:06:00")
    # and the same day sent again in one go changes nothing
    before = await everything(plant)
    assert (await ingest(live_rows + buffered + [back], now="10-10 15:10")).count(RowStatus.DUPLICATE) == 86
    assert await everything(plant) == before


# --- a logger clock ten minutes fast ------------------------------------------------------------


async def test_a_logger_clock_ten_minutes_fast_is_corrected_and_flagged(plant):
    # the true samples: every 5 minutes from 10:00 to 11:00, +250 Wh each
    true_times = [local("10-10 10:00") + dt.timedelta(minutes=5 * i) for i in range(13)]
    for i, true in enumerate(true_times[:7]):
        device_time = (true + dt.timedelta(minutes=10)).strftime("%m-%d %H:%M")
        result = await ingest([sample(device_time, 4_000_000 + 250 * i, power=3000)],
                              now=(true + dt.timedelta(seconds=3)).strftime("%Y-%m-%d %H:%M:%S"))
        assert result.statuses == [RowStatus.CREATED] and result.flags[0].names() == ["clock_skew"]
    # a retry of the last one 20 seconds later lands on the same time: a duplicate
    retry = await ingest([sample("10-10 10:40", 4_000_000 + 250 * 6, power=3000)], now="2026-10-10 10:30:23")
    assert retry.statuses == [RowStatus.DUPLICATE]
    # the rest arrive buffered, all at once, at 11:00:03
    rest = [sample((true + dt.timedelta(minutes=10)).strftime("%m-%d %H:%M"), 4_000_000 + 250 * (i + 7), power=3000)
            for i, true in enumerate(true_times[7:])]
    result = await ingest(rest, now="2026-10-10 11:00:03")
    assert result.count(RowStatus.CREATED) == 6 and len(result.flags) == 6
    stored = await m.TelemetrySample.all().order_by("ts").values_list("ts", "device_ts", "flags")
    assert [ts for ts, _, _ in stored] == true_times
    assert all(device_ts == ts + dt.timedelta(minutes=10) and flags == 1 for ts, device_ts, flags in stored)
    assert await rollups(plant, "15m") == {"10-10 09:45": 0, "10-10 10:00": 750, "10-10 10:15": 750,
                                           "10-10 10:30": 750, "10-10 10:45": 750}


async def test_a_clock_a_day_or_more_ahead_is_refused_not_corrected(plant):
    result = await ingest([sample("10-11 12:01", 1000), sample("3000-01-01 00:00", 1000), sample("10-11 11:59", 1000)],
                          now="10-10 12:00")
    assert [e.code for e in result.errors.values()] == ["ts_in_future", "ts_in_future"]
    assert result.statuses == [RowStatus.REJECTED, RowStatus.REJECTED, RowStatus.CREATED]
    assert result.flags[2].names() == ["clock_skew"]
    assert await m.TelemetrySample.all().values_list("ts", flat=True) == [local("10-10 12:00")]


# --- counters that misbehave --------------------------------------------------------------------


async def test_a_small_dip_is_noise_and_the_recovery_is_not_counted_twice(plant):
    rows = [sample("10-10 10:00", 1_000_000), sample("10-10 10:05", 999_950),  # −50: a dip, +0
            sample("10-10 10:10", 1_000_400), sample("10-10 10:15", 1_000_500)]  # +400 over 1,000,000, +100
    await ingest(rows[2:])
    await ingest(rows[:2])
    assert await rollups(plant, "15m") == {"10-10 09:45": 0, "10-10 10:00": 500}
    assert dict(await m.TelemetrySample.all().values_list("ts", "flags"))[local("10-10 10:05")] == 4


async def test_a_counter_glitch_is_flagged_for_staff_and_never_counted(plant):
    rows = [sample("10-10 10:00", 1_000_000), sample("10-10 10:05", 1_000_400),
            sample("10-10 10:10", 90_000_000_000),  # a glitch: 90 GWh in 5 minutes from an 8 kW inverter
            sample("10-10 10:15", 1_000_900),  # back: a "reset" whose energy no 8 kW inverter makes in 5 min
            sample("10-10 10:20", 1_001_300)]  # +400
    result = await ingest(rows)
    assert [result.flags[i].names() for i in sorted(result.flags)] == [["implausible"], ["counter_reset", "implausible"]]
    assert await rollups(plant, "15m") == {"10-10 09:45": 0, "10-10 10:00": 400, "10-10 10:15": 400}


async def test_power_is_never_integrated_where_there_is_no_counter(plant):
    await ingest([sample("10-10 10:00", 1_000_000, 4000), sample("10-10 10:05", power=4000),
                  sample("10-10 10:10", power=4000), sample("10-10 10:15", 1_000_900, 4000)])
    assert await rollups(plant, "15m") == {"10-10 09:45": 0, "10-10 10:00": 900}


async def test_a_plant_of_two_inverters_and_an_irradiance_sensor(db):
    plant = await make_plant("PV-3", {"INV-A": 5000, "INV-B": 5000, "SENSOR": None})
    await ingest([
        sample("10-10 11:00", 100_000, 4000, device="INV-A"), sample("10-10 11:00", 200_000, 4200, device="INV-B"),
        sample("10-10 11:05", 100_350, 4100, device="INV-A"), sample("10-10 11:07", 200_330, 4500, device="INV-B"),
        sample("10-10 11:15", 100_700, 3900, device="INV-A"), sample("10-10 11:15", 200_700, 4300, device="INV-B"),
        sample("10-10 11:05", device="SENSOR", irradiance_w_m2=810),
        sample("10-10 11:10", device="SENSOR", irradiance_w_m2=830),
        sample("10-10 11:15", device="SENSOR", irradiance_w_m2=841),
    ])
    row = await m.TelemetryRollup.get(plant=plant, granularity="15m", bucket_start=utc("10-10 11:00"))
    # energy 350+350+330+370; peak 4100 (A) + 4500 (B); irradiance mean 827 W/m² × ¼ h = 206.75 → 207 Wh/m²
    assert (row.energy_wh, row.max_power_w, row.samples, row.irradiation_wh_m2) == (1400, 8600, 7, 207)
    day = await m.TelemetryRollup.get(plant=plant, granularity="day")
    assert (day.energy_wh, day.irradiation_wh_m2) == (1400, 207)


# --- refused rows -------------------------------------------------------------------------------


@pytest.mark.parametrize("row, code, says", [
    (sample("10-10 10:00", 1000, -5), "value_out_of_range", "'power_w' -5 is negative"),
    (sample("10-10 10:00", 10**20), "value_out_of_range", "'energy_wh' 100000000000000000000 is beyond any device"),
    (sample("10-10 10:00", -1), "value_out_of_range", "'energy_wh' -1 is negative"),
    (sample("10-10 10:00", float("nan")), "invalid_field", "'energy_wh' nan is not a finite number"),
    (sample("10-10 10:00", float("inf")), "invalid_field", "'energy_wh' inf is not a finite number"),
    (sample("10-10 10:00", "1000"), "invalid_field", "'energy_wh' must be a number, not str"),
    (sample("10-10 10:00", True), "invalid_field", "'energy_wh' must be a number, not bool"),
    (sample("10-10 10:00", 1000, 17_000), "value_out_of_range", "'power_w' 17000 is more than 2 times"),
    (sample("10-10 10:00", 1000, irradiance_w_m2=2500), "value_out_of_range", "'irradiance_w_m2' 2500"),
    (sample("10-10 10:00", 1000, status="exploded"), "invalid_field", "'status' 'exploded' is not one of"),
    (sample("10-10 10:00", 1000, device="NOPE"), "unknown_device", "no device has the serial 'NOPE'"),
    (sample("10-10 10:00", 1000, device="C012; DROP TABLE telemetry_sample"), "unknown_device", "no device"),
    (sample("10-10 10:00", 1000, device=["INV-1"]), "invalid_field", "'device' must be a string"),
    ({"device": "INV-1", "energy_wh": 1}, "missing_field", "field 'ts' is missing"),
    ({"ts": iso("10-10 10:00")}, "missing_field", "field 'device' is missing"),
    ({**sample("10-10 10:00"), "ts": "2026-13-45T00:00"}, "invalid_field", "not an ISO 8601 time"),
    ({**sample("10-10 10:00"), "ts": 1760000000}, "invalid_field", "must be ISO 8601 text, not int"),
    ({**sample("10-10 10:00"), "ts": "1970-01-01T00:00:00+00:00"}, "ts_out_of_range", "before 2010"),
    ("a string", "invalid_row", "must be an object"),
])
async def test_a_bad_row_is_refused_by_name_and_field_and_changes_nothing(plant, row, code, says):
    result = await ingest([sample("10-10 09:55", 999_000), row])
    assert result.statuses == [RowStatus.CREATED, RowStatus.REJECTED]
    error = result.errors[1]
    assert error.code == code and error.message.startswith("row 1: ") and says in error.message
    assert await m.TelemetrySample.all().count() == 1


async def test_more_samples_than_a_batch_holds_are_refused_whole(plant):
    with pytest.raises(InvalidInput) as refused:
        await ingest([sample("10-10 10:00", 1)] * (MAX_BATCH_SAMPLES + 1))
    assert refused.value.code == "too_many_samples"


# --- live state ---------------------------------------------------------------------------------


async def test_a_live_publisher_publishes_after_the_batch_and_what_is_pending_when_it_closes(db, settings):
    import asyncio

    plant = await make_plant("PV-LP", {"INV-LP": 5000})
    other = await make_plant("PV-LQ", {"INV-LQ": 5000})
    redis, ns = open_redis(settings.redis_url), Namespace(settings.redis_prefix)
    publisher = LivePublisher(redis, ns)
    try:
        await ingest([sample("10-20 11:55", 900_000, 1500, device="INV-LP")], now="10-20 12:00", publisher=publisher)
        for _ in range(100):  # published off the call, shortly after it
            state = await live.latest_state(redis, ns, plant.id)
            if state is not None:
                break
            await asyncio.sleep(0.02)
        assert (state["power_w"], state["ts"]) == (1500, local("10-20 11:55").astimezone(UTC).isoformat())
        # asked for and closed at once: published by the close, with the state as committed
        await ingest([sample("10-20 11:55", 50_000, 700, device="INV-LQ")], now="10-20 12:00", publisher=publisher)
        await ingest([sample("10-20 12:00", 50_100, 800, device="INV-LQ")], now="10-20 12:01", publisher=publisher)
    finally:
        await publisher.close()
    try:
        assert (await live.latest_state(redis, ns, other.id))["power_w"] == 800
    finally:
        await redis.aclose()


async def test_the_latest_state_is_published_with_todays_energy(db, settings):
    plant = await make_plant("PV-4", {"INV-A": 5000, "INV-B": 5000})
    redis = open_redis(settings.redis_url)
    ns = Namespace(settings.redis_prefix)
    pubsub = redis.pubsub()
    await pubsub.subscribe(live.channel(ns, plant.id))
    await pubsub.get_message(timeout=1)  # the subscription confirmation
    try:
        await ingest([sample("10-09 15:00", 700_000, 900, device="INV-A"),  # yesterday: not today's energy
                      sample("10-10 09:00", 710_000, 2000, device="INV-A"),
                      sample("10-10 09:05", 710_250, 3000, device="INV-A"),
                      sample("10-10 09:00", 50_000, 2500, device="INV-B"),
                      sample("10-10 09:04", 50_300, 3500, device="INV-B", status="fault")],
                     now="10-10 09:05:10", redis=redis, namespace=ns)
        state = await live.latest_state(redis, ns, plant.id)
        # today: INV-A +10,000 since yesterday 15:00 (booked at 09:00 today) + 250, INV-B +300
        assert state == {"plant_id": plant.id, "ts": local("10-10 09:05").astimezone(UTC).isoformat(),
                         "power_w": 6500, "today_kwh": "10.550", "status": "fault", "devices": 2}
        message = await pubsub.get_message(timeout=2)
        assert message is not None and json.loads(message["data"]) == state
        # a batch that changes nothing publishes nothing
        await ingest([sample("10-10 09:05", 710_250, 3000, device="INV-A")], now="10-10 09:06", redis=redis,
                     namespace=ns)
        assert await pubsub.get_message(timeout=0.2) is None
    finally:
        await pubsub.aclose()
        await redis.aclose()
    assert (await plant_states([plant.id], local("10-11 08:00")))[plant.id]["today_kwh"] == "0.000"


async def test_a_lowered_peak_or_a_lost_irradiance_recomputes_the_day_and_month(plant):
    await ingest([sample("10-10 10:00", 0, 1000), sample("10-10 10:05", 100, 5000, irradiance_w_m2=800),
                  sample("10-10 10:20", 300, 2000)])
    day = await m.TelemetryRollup.get(plant=plant, granularity="day")
    assert (day.energy_wh, day.max_power_w, day.irradiation_wh_m2) == (300, 5000, 200)
    # the logger re-sends 10:05 with the power it really measured and without the sensor value
    assert (await ingest([sample("10-10 10:05", 100, 3000)])).statuses == [RowStatus.UPDATED]
    for granularity in ("day", "month"):
        row = await m.TelemetryRollup.get(plant=plant, granularity=granularity)
        assert (row.energy_wh, row.max_power_w, row.samples, row.irradiation_wh_m2) == (300, 3000, 3, None)


@pytest.mark.parametrize("seed", range(8))
async def test_any_split_and_order_of_arrival_gives_the_rollups_of_one_ordered_batch(plant, seed):
    """Property: rollups depend on the samples only, never on how they were split or ordered,
    and a day is the sum of its 15-minute buckets, a month of its days."""
    import numpy as np

    rng = np.random.default_rng(seed)
    start = local("10-31 18:00")  # across a midnight and a month end
    times = sorted(rng.choice(np.arange(0, 12 * 60, 5), size=60, replace=False))
    counter = 7_000_000 + np.cumsum(rng.integers(0, 400, size=60))
    if seed % 2:
        counter[30:] -= counter[29] - rng.integers(0, 50)  # a reset half-way
    rows = [{"device": "INV-1", "ts": (start + dt.timedelta(minutes=int(t))).isoformat(), "energy_wh": int(e),
             "power_w": int(rng.integers(0, 8000))} for t, e in zip(times, counter)]
    late = "11-05 00:00"
    assert (await ingest(rows, now=late)).count(RowStatus.CREATED) == 60
    truth = await everything(plant)
    await m.TelemetrySample.all().delete()
    await m.TelemetryRollup.all().delete()
    shuffled = [rows[i] for i in rng.permutation(len(rows))]
    cuts = sorted(rng.choice(np.arange(1, len(rows)), size=5, replace=False))
    for part in np.split(np.array(shuffled, dtype=object), cuts):
        await ingest(list(part), now=late)
    await ingest(shuffled[:20], now=late)  # and some again
    assert await everything(plant) == truth
    quarters, days, months = (await rollups(plant, "15m"), await rollups(plant, "day"), await rollups(plant, "month"))
    for day, energy in days.items():
        assert energy == sum(e for q, e in quarters.items() if q.startswith(day))
    assert months == {month: sum(e for d, e in days.items() if d.startswith(month[5:])) for month in months}
    assert set(months) == {"2026-10", "2026-11"}


async def test_a_rebuild_from_samples_stored_directly_gives_what_ingest_gives(plant):
    """Samples written without the service (the seed, a bulk import) get their energies and rollups."""
    from settlement.telemetry.ingest import rebuild_rollups

    await ingest(RESET_AT_NIGHT + MORNING)
    truth = await everything(plant)
    await m.TelemetrySample.all().update(interval_wh=None, flags=0)
    await m.TelemetryRollup.all().delete()
    device = await m.TelemetryDevice.get(serial="INV-1")
    await m.TelemetrySample.filter(ts__gte=utc("10-10 09:00"), ts__lte=utc("10-10 11:00")).delete()
    await m.TelemetrySample.bulk_create([
        m.TelemetrySample(device=device, ts=local(row["ts"][5:16].replace("T", " ")).astimezone(UTC),
                          received_at=local("10-20 12:00"), power_w=row["power_w"], energy_wh=row["energy_wh"])
        for row in MORNING])
    done = await rebuild_rollups([plant.id])
    assert done["plants"] == 1 and done["samples"] == len(RESET_AT_NIGHT) + len(MORNING)
    assert await everything(plant) == truth
    assert await rebuild_rollups([plant.id]) == {**done, "samples_changed": 0}
