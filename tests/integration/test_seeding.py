"""`pvsettle seed`: a synthetic portfolio whose meters tell a physically consistent story."""

import datetime as dt
from collections import defaultdict
from decimal import Decimal

import pytest

from settlement.infra import db as database
from settlement import models as m
from settlement.fakes.tax_system import credit_code_ok
from settlement.seeding import FORWARD, REGISTER_DIGITS, REVERSE, NoProgress, SeedSpec, latest_cutoff, seed_portfolio
from settlement.clock import LOCAL

TODAY = dt.date(2026, 11, 22)
SPEC = SeedSpec(plants=7, months=2, seed=7, telemetry_days=1, today=TODAY)



async def _readings_by_meter():
    series = defaultdict(lambda: defaultdict(list))
    for r in await m.Reading.all().order_by("read_at").prefetch_related("meter"):
        series[r.meter.serial][r.register].append((r.read_at, r.value))
    return series


def _delta(values, multiplier):
    dial = Decimal(10) ** REGISTER_DIGITS
    return [((b - a) % dial) * multiplier for (_, a), (_, b) in zip(values, values[1:])]


async def test_seeded_portfolio_is_consistent(db):
    counts = await seed_portfolio(SPEC, progress=NoProgress)
    assert counts["plants"] == 7 and counts["meters"] == 14
    assert counts["readings"] == 7 * 15 * (SPEC.months + 1)

    for owner in await m.Owner.all().prefetch_related("plants"):
        assert 1 <= len(owner.plants) <= 3
        # a company has its unified social credit code (its paid bills get e-invoices), a household none
        assert (credit_code_ok(owner.tax_id) if owner.kind != m.OwnerKind.RESIDENTIAL else owner.tax_id is None), owner
    series = await _readings_by_meter()
    for plant in await m.Plant.all().prefetch_related("meters"):
        assert Decimal(30) <= plant.capacity_kwp <= Decimal(5000)
        meters = {meter.kind: meter for meter in plant.meters}
        gen, grid = meters[m.MeterKind.GENERATION], meters[m.MeterKind.GRID]
        assert gen.multiplier == grid.multiplier >= 1
        # M + 1 readings at 00:00 local on the reading day, the last one on the latest reading day
        times = [t for t, _ in series[gen.serial][FORWARD[0]]]
        assert len(times) == SPEC.months + 1
        local = [t.astimezone(LOCAL) for t in times]
        assert all(t.day == plant.reading_day and t.hour == 0 and t.minute == 0 for t in local)
        assert local[-1].date() == latest_cutoff(plant.reading_day, TODAY) <= TODAY
        assert local[-1].date() >= dt.date(2026, 10, plant.reading_day)  # last month's cycle has data

        generation = _delta(series[gen.serial][FORWARD[0]], gen.multiplier)
        export = _delta(series[grid.serial][REVERSE[0]], grid.multiplier)
        imported = _delta(series[grid.serial][FORWARD[0]], grid.multiplier)
        # display resolution: each reading is cut to 0.01 units
        slack = Decimal("0.02") * gen.multiplier
        for month_gen, month_export, month_import in zip(generation, export, imported):
            assert month_export <= month_gen + slack  # self-use never negative
            assert month_import >= 0
            yield_per_kwp = month_gen / plant.capacity_kwp
            assert Decimal(40) < yield_per_kwp < Decimal(200), yield_per_kwp  # kWh/kWp in a month
        for meter, registers in ((gen, FORWARD), (grid, FORWARD), (grid, REVERSE)):
            total = _delta(series[meter.serial][registers[0]], 1)
            rates = [_delta(series[meter.serial][r], 1) for r in registers[1:]]
            for i, value in enumerate(total):
                assert abs(value - sum(rate[i] for rate in rates)) <= Decimal("0.05")

    samples = await m.TelemetrySample.all().order_by("ts").prefetch_related("device")
    assert len(samples) == 7 * 96 * SPEC.telemetry_days
    by_device = defaultdict(list)
    for s in samples:
        by_device[s.device.serial].append(s.energy_wh)
    for counter in by_device.values():
        assert all(b >= a for a, b in zip(counter, counter[1:]))  # a lifetime counter never drops


async def test_the_same_seed_makes_the_same_portfolio(database_factory):
    async def readings_of(url):
        await database.open_database(url)
        try:
            await seed_portfolio(SeedSpec(plants=3, months=1, seed=11, telemetry_days=0, today=TODAY), progress=NoProgress)
            return [(r.register, r.read_at, r.value) for r in await m.Reading.all().order_by("id")]
        finally:
            await database.close_database()

    first = await readings_of(await database_factory.migrated())
    second = await readings_of(await database_factory.migrated())
    assert first == second and len(first) == 3 * 15 * 2


def test_bad_specs_are_refused():
    for bad in ({"plants": 0}, {"plants": 1, "months": 0}, {"plants": 1, "telemetry_days": -1}):
        with pytest.raises(ValueError):
            SeedSpec(**bad)


async def test_seeded_telemetry_has_the_rollups_and_live_state_the_ingest_would_have_left(db, settings):
    from settlement.telemetry import live
    from settlement.infra.redis_client import Namespace, open_redis
    from settlement.telemetry.ingest import rebuild_rollups

    redis, ns = open_redis(settings.redis_url), Namespace(settings.redis_prefix)
    try:
        await seed_portfolio(SeedSpec(plants=3, months=1, seed=5, telemetry_days=1, today=TODAY),
                             progress=NoProgress, redis=redis, namespace=ns)
        plants = await m.Plant.all().order_by("id")
        for plant in plants:
            state = await live.latest_state(redis, ns, plant.id)
            latest = await m.TelemetrySample.filter(device__plant_id=plant.id).order_by("-ts").first()
            assert state["ts"] == latest.ts.isoformat() and state["power_w"] == latest.power_w
    finally:
        await ns.delete_all(redis)
        await redis.aclose()
    rollups = sorted(await m.TelemetryRollup.all().values_list("plant_id", "granularity", "bucket_start",
                                                               "energy_wh", "samples"))
    assert {g for _, g, _, _, _ in rollups} == {"15m", "day", "month"}
    for plant in plants:
        intervals = await m.TelemetrySample.filter(device__plant_id=plant.id, interval_wh__isnull=False) \
            .values_list("interval_wh", flat=True)
        days = [e for p, g, _, e, _ in rollups if p == plant.id and g == "day"]
        assert sum(days) == sum(intervals) > 0
    # what the seed stored is what the ingest's rules give: recomputing changes nothing
    done = await rebuild_rollups([p.id for p in plants])
    assert done["samples_changed"] == 0
    assert sorted(await m.TelemetryRollup.all().values_list("plant_id", "granularity", "bucket_start",
                                                            "energy_wh", "samples")) == rollups


async def test_the_demo_extras_make_a_nearby_consumption_project_and_a_prepaid_account(db):
    from settlement.prepaid import accounts as prepaid
    from settlement.billing import reports
    from settlement.seeding import seed_demo_extras

    await seed_portfolio(SPEC, progress=NoProgress)
    extras = await seed_demo_extras()
    assert await seed_demo_extras() == extras  # kept, not made twice
    first = await m.Plant.all().order_by("id").first()
    [terms] = await m.NearbyConsumptionTerms.filter(plant=first)
    assert extras["nearby_plant"] == first.code and terms.effective_from == first.commissioned_on
    report = await reports.nearby_report("2026-10")
    assert [row["plant_code"] for row in report.rows] == [first.code]

    account = await m.PrepaidAccount.get(number=extras["prepaid_account"]).prefetch_related("plant")
    assert account.id == extras["prepaid_account_id"] and account.plant.code == extras["prepaid_plant"]
    assert account.owner_id != first.owner_id and account.plant.owner_id == account.owner_id
    [service] = await m.PrepaidService.filter(account=account).prefetch_related("meter")
    assert service.follows_contract and service.meter.serial == f"{account.plant.code}-N"
    statement = await prepaid.statement(account.id)
    assert statement["account"]["available_fen"] == 0 and statement["services"][0]["unit"] == "kWh"
