"""Reliability and performance figures (settlement.telemetry.reliability), worked out by hand.

On 2026-06-15 in Shanghai the sun is at least 10° up from 05:45 to 18:03, so the 15-minute slots
whose middle has the sun that high are 05:45 … 17:45: 49 slots.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from settlement import models as m
from settlement.errors import InvalidInput
from settlement.telemetry.reliability import plant_figures, portfolio_figures, reliability_report
from tests.integration.test_telemetry_ingest import ingest, local
from tests.integration.test_telemetry_outages import every_5_minutes


async def plant(code: str, owner: m.Owner, kwp: str, devices: dict[str, int | None]) -> m.Plant:
    made = await m.Plant.create(code=code, name=code, owner=owner, capacity_kwp=Decimal(kwp),
                                latitude=Decimal("31.230000"), longitude=Decimal("121.470000"))
    for serial, rated in devices.items():
        await m.TelemetryDevice.create(plant=made, serial=serial, rated_power_w=rated)
    return made


async def outage(p: m.Plant, start: str, end: str | None) -> None:
    await m.PlantOutage.create(plant=p, cause=m.OutageCause.SILENT, started_at=local(start),
                               ended_at=local(end) if end else None, detected_at=local(start))


@pytest.fixture
async def portfolio(db):
    a, b, c = [await m.Owner.create(name=n) for n in ("甲", "乙", "丙")]
    plants = {
        "P1": await plant("P1", a, "10", {"INV-P1": 10_000}),
        "P2": await plant("P2", a, "30", {"INV-P2": 30_000}),
        "P3": await plant("P3", b, "20", {"INV-P3": 20_000}),
        "P4": await plant("P4", c, "5", {"INV-P4": 5_000}),
        "P5": await plant("P5", c, "10", {"INV-P5": 10_000, "SENSOR-P5": None}),
    }
    await outage(plants["P1"], "2026-06-10 09:00", "2026-06-10 12:00")  # 3 h
    await outage(plants["P1"], "2026-06-11 10:00", "2026-06-11 11:00")  # 1 h
    await outage(plants["P2"], "2026-06-12 13:00", "2026-06-12 15:00")  # 2 h
    await outage(plants["P3"], "2026-06-20 06:00", "2026-06-20 16:00")  # 10 h
    await outage(plants["P3"], "2026-05-31 22:00", "2026-06-01 02:00")  # 2 h in June, at night
    await outage(plants["P3"], "2026-05-02 10:00", "2026-05-02 11:00")  # May only
    # P4 on 06-15: +100 Wh every 5 minutes from 06:00 to 18:30; the logger was silent 12:05–13:00
    await ingest(every_5_minutes("2026-06-15 06:00", "2026-06-15 12:00", energy=2_000_000, power=1200, step_wh=100,
                                 device="INV-P4")
                 + every_5_minutes("2026-06-15 13:05", "2026-06-15 18:30", energy=2_008_500, power=1200, step_wh=100,
                                   device="INV-P4"), now="2026-06-15 18:31")
    # P5 from 10:00 to 11:00: 7.2 kW (+600 Wh / 5 min) under 800 W/m²
    await ingest(every_5_minutes("2026-06-15 10:00", "2026-06-15 11:00", energy=500_000, power=7200, step_wh=600,
                                 device="INV-P5")
                 + [{**row, "energy_wh": None, "power_w": None, "irradiance_w_m2": 800} for row in every_5_minutes(
                     "2026-06-15 10:05", "2026-06-15 11:00", device="SENSOR-P5")], now="2026-06-15 11:01")
    return plants


async def test_a_day_of_one_plant_yield_and_time_based_availability(portfolio):
    [p4] = await plant_figures("2026-06-15", [portfolio["P4"].id])
    # 72 intervals before the gap, 13 across it (the counter kept counting), 65 after: 150 × 100 Wh
    assert (p4.energy_kwh, p4.specific_yield_kwh_per_kwp) == (Decimal("15.000"), Decimal("3.000"))
    # producing in slots 05:45 … 11:45 (25) and 13:00 … 17:45 (20) of the 49 daylight slots
    assert (p4.expected_slots, p4.producing_slots, p4.availability) == (49, 45, Decimal("0.9184"))
    assert (p4.performance_ratio, p4.irradiation_kwh_m2) == (None, None)


async def test_performance_ratio_where_irradiance_arrives(portfolio):
    [p5] = await plant_figures("2026-06-15", [portfolio["P5"].id])
    # slots 10:00 … 10:45: 1,800 Wh each and 800 W/m² × ¼ h = 200 Wh/m² each
    # Yf = 7.2 kWh / 10 kWp = 0.72 h, Yr = 0.8 kWh/m² / 1 kW/m² = 0.8 h, PR = 0.9
    assert (p5.energy_kwh, p5.irradiation_kwh_m2, p5.irradiated_energy_kwh) == (
        Decimal("7.200"), Decimal("0.800"), Decimal("7.200"))
    assert p5.performance_ratio == Decimal("0.9000")
    # the four sensor slots expected by irradiance, the other 45 daylight slots by the sun;
    # producing: 09:45 (the first sample's power) and 10:00 … 10:45
    assert (p5.expected_slots, p5.producing_slots, p5.availability) == (49, 5, Decimal("0.1020"))


async def test_ieee_1366_indices_over_owners_for_a_month(portfolio):
    summary, plants = await portfolio_figures("2026-06", now=local("2026-07-05 00:00"))
    by_code = {f.plant_code: f for f in plants}
    assert [(c, by_code[c].outages, by_code[c].outage_hours, by_code[c].outage_daylight_hours) for c in by_code] == [
        ("P1", 2, Decimal("4.00"), Decimal("4.00")), ("P2", 1, Decimal("2.00"), Decimal("2.00")),
        ("P3", 2, Decimal("12.00"), Decimal("10.00")), ("P4", 0, Decimal("0.00"), Decimal("0.00")),
        ("P5", 0, Decimal("0.00"), Decimal("0.00"))]
    # owners 甲 (P1 10 kWp + P2 30 kWp), 乙 (P3), 丙 (P4, P5): NT = 3, T = 720 h
    # Ni: P1 outages 10/40 = 0.25 each, P2 30/40 = 0.75, P3 1 each
    # SAIFI = (0.25 + 0.25 + 0.75 + 1 + 1) / 3 = 1.0833
    # SAIDI = (3·0.25 + 1·0.25 + 2·0.75 + 10·1 + 2·1) / 3 = 14.5 / 3 = 4.83 h
    # CAIDI = 14.5 / 3.25 = 4.46 h;  ASAI = (3·720 − 14.5) / (3·720) = 0.9933
    assert (summary.owners, summary.plants, summary.outages, summary.outage_hours) == (3, 5, 5, Decimal("18.00"))
    assert (summary.saifi, summary.saidi_hours, summary.caidi_hours, summary.asai) == (
        Decimal("1.0833"), Decimal("4.83"), Decimal("4.46"), Decimal("0.9933"))
    # DL/T 836 RS-1 = (1 − (14.5 / 3) / 720) × 100 = (1 − 0.0067130) × 100 = 99.329 % < 99.976 %
    # outages per household per year = 3.25 / 3 × 8760 / 720 = 1.08333 × 12.16667 = 13.1806 > 0.8
    assert (summary.period_hours, summary.rs1_percent, summary.rs1_target_percent, summary.rs1_met) == (
        Decimal("720.00"), Decimal("99.329"), Decimal("99.976"), False)
    assert (summary.outages_per_household_per_year, summary.outages_per_household_per_year_target,
            summary.outages_per_household_per_year_met) == (Decimal("13.1806"), Decimal("0.8"), False)
    assert (summary.capacity_kwp, summary.energy_kwh, summary.specific_yield_kwh_per_kwp) == (
        Decimal("75.000"), Decimal("22.200"), Decimal("0.296"))
    assert summary.performance_ratio == Decimal("0.9000")


async def test_an_open_outage_counts_up_to_now_and_one_owner_sees_their_own_indices(portfolio):
    await outage(portfolio["P4"], "2026-06-30 10:00", None)
    summary, [p4, p5] = await portfolio_figures("2026-06", [portfolio["P4"].id, portfolio["P5"].id],
                                                now=local("2026-06-30 13:30"))
    assert (p4.outages, p4.outage_hours) == (1, Decimal("3.50"))
    # one owner (丙, 15 kWp): Ni = 5/15; SAIFI = 0.3333, SAIDI = 3.5/3 = 1.17 h; June is still going
    # on, T = 29 × 24 + 13.5 = 709.5 h: ASAI = 1 − 1.1667/709.5 = 0.9984
    assert (summary.owners, summary.saifi, summary.saidi_hours, summary.caidi_hours, summary.asai) == (
        1, Decimal("0.3333"), Decimal("1.17"), Decimal("3.50"), Decimal("0.9984"))
    # RS-1 = (1 − 1.16667 / 709.5) × 100 = (1 − 0.0016444) × 100 = 99.836 %;
    # outages per household per year = 0.33333 × 8760 / 709.5 = 0.33333 × 12.34672 = 4.1156
    assert (summary.period_hours, summary.rs1_percent, summary.outages_per_household_per_year) == (
        Decimal("709.50"), Decimal("99.836"), Decimal("4.1156"))


async def test_a_month_to_date_counts_only_the_daylight_that_has_happened(portfolio):
    """On 2026-06-01 the sun is 10° up in the middle of the slots 05:45 … 17:45 (49), 25 of them by 12:00."""
    p6 = await plant("P6", await m.Owner.create(name="丁"), "5", {"INV-P6": 5_000})
    await ingest(every_5_minutes("2026-06-01 05:30", "2026-06-01 12:00", device="INV-P6"), now="2026-06-01 12:00:30")
    noon = local("2026-06-01 12:00")
    [month] = await plant_figures("2026-06", [p6.id], now=noon)
    [day] = await plant_figures("2026-06-01", [p6.id], now=noon)
    # produced in each of the 25 slots over by noon (11:45 … 12:00 is the last); the afternoon and
    # the 29 days to come are not missed production (the whole month would expect 30 × 49 slots)
    for figures in (month, day):
        assert (figures.expected_slots, figures.producing_slots, figures.availability) == (25, 25, Decimal("1.0000"))
    # once the day is over, its afternoon without production counts: 25 / 49 = 0.5102
    [after] = await plant_figures("2026-06-01", [p6.id], now=local("2026-06-02 00:00"))
    assert (after.expected_slots, after.producing_slots, after.availability) == (49, 25, Decimal("0.5102"))
    summary, _ = await portfolio_figures("2026-06", [p6.id], now=noon)
    # no outage in the 12 h so far: RS-1 100 %, no outages a year, both targets met
    assert (summary.period_hours, summary.availability, summary.asai, summary.rs1_percent, summary.rs1_met,
            summary.outages_per_household_per_year, summary.outages_per_household_per_year_met) == (
        Decimal("12.00"), Decimal("1.0000"), Decimal("1.0000"), Decimal("100.000"), True, Decimal("0.0000"), True)


async def test_the_report_is_json_ready_and_a_bad_period_is_refused(portfolio):
    report = await reliability_report("2026-06", [portfolio["P5"].id], now=local("2026-07-01 00:00"))
    assert report["period"] == "2026-06" and report["portfolio"]["performance_ratio"] == "0.9000"
    assert report["plants"][0]["plant_code"] == "P5" and report["plants"][0]["availability"] is not None
    assert report["portfolio"]["caidi_hours"] is None  # no outage: no duration per interruption
    assert {k: report["portfolio"][k] for k in ("rs1_percent", "rs1_target_percent", "rs1_met",
                                                 "outages_per_household_per_year",
                                                 "outages_per_household_per_year_target",
                                                 "outages_per_household_per_year_met")} == {
        "rs1_percent": "100.000", "rs1_target_percent": "99.976", "rs1_met": True,
        "outages_per_household_per_year": "0.0000", "outages_per_household_per_year_target": "0.8",
        "outages_per_household_per_year_met": True}
    for bad in ("2026-13", "2026-6", "June", "2026-06-31", "1999-12"):
        with pytest.raises(InvalidInput):
            await plant_figures(bad)


async def test_a_month_without_telemetry_is_null_with_its_reason_not_zero(portfolio):
    """April: no rollup and no outage of any plant. Nothing was measured, so nothing is 0 or 1."""
    report = await reliability_report("2026-04", now=local("2026-07-01 00:00"))
    for figures in report["plants"]:
        assert {k: figures[k] for k in ("energy_kwh", "specific_yield_kwh_per_kwp", "availability", "reason")} == {
            "energy_kwh": None, "specific_yield_kwh_per_kwp": None, "availability": None, "reason": "no telemetry"}
    portfolio_ = report["portfolio"]
    assert {k: portfolio_[k] for k in ("plants", "plants_without_telemetry", "owners", "energy_kwh", "availability",
                                       "saifi", "saidi_hours", "asai", "reason")} == {
        "plants": 5, "plants_without_telemetry": 5, "owners": 0, "energy_kwh": None, "availability": None,
        "saifi": None, "saidi_hours": None, "asai": None, "reason": "no telemetry"}


async def test_plants_without_telemetry_are_left_out_of_the_figures_over_owners(portfolio):
    # on 06-15 only P4 and P5 (owner 丙) reported; P1–P3 had neither samples nor outages that day
    summary, plants = await portfolio_figures("2026-06-15", now=local("2026-07-01 00:00"))
    assert [(f.plant_code, f.reason, f.availability is None) for f in plants] == [
        ("P1", "no telemetry", True), ("P2", "no telemetry", True), ("P3", "no telemetry", True),
        ("P4", None, False), ("P5", None, False)]
    assert (summary.plants, summary.plants_without_telemetry, summary.owners, summary.asai, summary.reason) == (
        5, 3, 1, Decimal("1.0000"), None)
    # P4's 15 kWh and P5's 7.2 kWh over their 15 kWp; the portfolio's capacity is still all 75 kWp
    assert (summary.energy_kwh, summary.specific_yield_kwh_per_kwp, summary.capacity_kwp) == (
        Decimal("22.200"), Decimal("1.480"), Decimal("75.000"))
    # a plant with an outage but no samples was judged by the outage check: it is measured
    [p3] = await plant_figures("2026-06-20", [portfolio["P3"].id])
    assert (p3.reason, p3.energy_kwh, p3.availability) == (None, Decimal("0.000"), Decimal("0.0000"))
