"""Readings whose energy no plant could make or site could draw: flagged at ingest, held on the form.

The plant of the issue: 124.7 kWp, a generation meter and a grid meter ×40 on 6-digit dials. In a
day it can make at most 124.7 kW × 24 h × 1.2 = 3,591.36 kWh = 89.784 dial units; the reading of
the issue, 527,975.92 → 999,000 in a day, is (999,000 − 527,975.92) × 40 = 18,840,963.2 kWh.
Its site may draw 10 × 124.7 kW = 1,247 kW without connection capacity on file: 35,913.6 kWh a
day, 897.84 units.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal

import pytest

from settlement.cycles import runs as cycles
from settlement.cycles import forms
from settlement import models as m
from settlement.readings.ingest import EnergyLimits, RowStatus, ingest_readings
from settlement.seeding import FORWARD, REVERSE
from tests.integration.billed_plant import jiangsu_tariff
from webapp.settings import Settings, SettingsError
from settlement.clock import LOCAL

NOW = dt.datetime(2026, 10, 10, 12, 0, tzinfo=LOCAL)
TOTAL, EXPORT = FORWARD[0], REVERSE[0]
KEY = "plausibility-collector-key-0123456789abcdefghij"


def local(*args) -> str:
    return dt.datetime(*args, tzinfo=LOCAL).isoformat()


@pytest.fixture
async def plant(db):
    await jiangsu_tariff()
    owner = await m.Owner.create(name="常州某机械有限公司", kind=m.OwnerKind.COMMERCIAL)
    plant = await m.Plant.create(code="PV-J", name="车间屋顶", owner=owner, capacity_kwp=Decimal("124.7"),
                                 reading_day=1)
    await m.Contract.create(plant=plant, effective_from=dt.date(2026, 1, 1), tariff_code="jiangsu-2025",
                            pricing_model=m.PricingModel.GRID_DISCOUNT, discount=Decimal("0.85"),
                            vat_rate=Decimal("0.13"), prices_include_vat=True, due_days=15, auto_confirm_days=7)
    await m.Meter.create(plant=plant, serial="J-G", kind=m.MeterKind.GENERATION, multiplier=40,
                         registers=list(FORWARD), installed_on=dt.date(2026, 1, 1))
    await m.Meter.create(plant=plant, serial="J-N", kind=m.MeterKind.GRID, multiplier=40,
                         registers=list(FORWARD + REVERSE), installed_on=dt.date(2026, 1, 1))
    await m.Collector.create(name="head-end-j", key_sha256=hashlib.sha256(KEY.encode()).hexdigest())
    return plant


def row(meter: str, register: str, read_at: str, value: str) -> dict:
    return {"meter": meter, "register": register, "read_at": read_at, "value": value}


async def ingest(rows: list[dict], **kwargs):
    kwargs.setdefault("source", m.ReadingSource.AMI)
    kwargs.setdefault("received_from", "collector:test")
    kwargs.setdefault("now", NOW)
    return await ingest_readings(rows, **kwargs)


def cycle_rows(when: str, gen: tuple, export: tuple, grid: tuple) -> list[dict]:
    """Every register of both meters at one time (total, sharp, peak, flat, valley)."""
    return ([row("J-G", r, when, v) for r, v in zip(FORWARD, gen)]
            + [row("J-N", r, when, v) for r, v in zip(REVERSE, export)]
            + [row("J-N", r, when, v) for r, v in zip(FORWARD, grid)])


# cycle 2026-10 runs 2026-09-01 00:00 → 2026-10-01 00:00; +300 units of generation (12,000 kWh)
START = cycle_rows(local(2026, 9, 1), ("527800.00", "0.00", "100000.00", "200000.00", "227800.00"),
                   ("1000.00", "0.00", "300.00", "400.00", "300.00"),
                   ("50000.00", "0.00", "20000.00", "20000.00", "10000.00"))
END = cycle_rows(local(2026, 10, 1), ("528100.00", "0.00", "100120.00", "200130.00", "227850.00"),
                 ("1100.00", "0.00", "330.00", "440.00", "330.00"),
                 ("50500.00", "0.00", "20200.00", "20200.00", "10100.00"))


async def post(client, readings: list[dict]) -> dict:
    resp = await client.post("/ingest/v1/readings", json={"readings": readings},
                             headers={"Authorization": f"Bearer {KEY}"})
    assert resp.status == 200
    return await resp.json()


async def test_the_issue_s_jump_is_flagged_at_ingest_and_holds_the_form(plant, client, notify_apps):
    assert (await post(client, START))["flagged"] == 0
    answer = await post(client, [row("J-G", TOTAL, local(2026, 9, 15), "527975.92"),
                                 row("J-G", TOTAL, local(2026, 9, 16), "999000")])
    assert (answer["created"], answer["flagged"], answer["rejected"]) == (2, 1, 0)
    assert answer["results"][0] == {"index": 0, "status": "created"}
    flagged = answer["results"][1]
    assert flagged["status"] == "created" and flagged["flag"]["code"] == "implausible_energy"
    message = flagged["flag"]["message"]
    for figure in ("meter J-G register 00010000", "527975.9200 → 999000.0000", "18,840,963.200 kWh of generation",
                   "in 24.00 h (×40)", "3,591.360 kWh (124.7 kWp × 24.00 h × 1.2)"):
        assert figure in message, figure

    reading = await m.Reading.get(meter__serial="J-G", register=TOTAL, value=Decimal("999000"))
    assert reading.flag == "implausible_energy"
    assert {k: reading.flag_detail[k] for k in ("previous", "value", "multiplier", "hours", "kwh", "limit_kwh")} == {
        "previous": "527975.9200", "value": "999000.0000", "multiplier": 40, "hours": "24.00", "kwh": "18840963.200",
        "limit_kwh": "3591.360"}
    event = await m.AuditEvent.get(action="FlagReading")
    assert event.actor == "collector:head-end-j" and event.after["kwh"] == "18840963.200"
    assert [e.after["flagged"] for e in await m.AuditEvent.filter(action="IngestReadings").order_by("id")] == [0, 1]

    # the spike does not make the honest readings after it "decreases": they are judged against
    # the last trusted one, 527,975.92; the same spike sent again is a duplicate
    answer = await post(client, [*END, row("J-G", TOTAL, local(2026, 9, 16), "999000")])
    assert (answer["created"], answer["duplicates"], answer["rejected"], answer["flagged"]) == (15, 1, 0, 0)

    result = await cycles.run_cycle("2026-10", now=NOW, apps=notify_apps)
    assert (result.forms_created, result.forms_flagged) == (1, 1)
    form = await forms.latest_form((await m.ReadingCycle.get(plant=plant, period="2026-10")).id)
    assert form.state == m.FormState.DRAFT and form.sent_at is None
    # the figures come from the boundary readings, never from the suspect one
    assert form.generation_kwh == Decimal("12000.000") and form.flags == []
    [finding] = form.findings
    assert finding["code"] == "implausible_reading" and finding["meter"] == "J-G" and finding["register"] == TOTAL
    assert (finding["previous"], finding["value"], finding["kwh"], finding["limit_kwh"]) == (
        "527975.9200", "999000.0000", "18840963.200", "3591.360")
    assert finding["read_at"] == "2026-09-15T16:00:00Z"
    assert finding["message"].startswith("meter J-G register 00010000: 527975.9200 → 999000.0000 since ")
    assert not await m.OutboxMessage.filter(template="form_sent").exists()  # the owner is not told yet
    audit = await m.AuditEvent.get(action="CreateForm")
    assert audit.after["findings"][0]["kwh"] == "18840963.200"


async def test_a_normal_month_with_daily_readings_is_not_flagged_and_the_form_goes_out(plant, notify_apps):
    daily = [row("J-G", TOTAL, local(2026, 9, day), f"{527800 + 10 * (day - 1)}.00") for day in range(2, 31)]
    result = await ingest(START + daily + END)
    assert (result.created, result.flagged, result.rejected) == (len(START + daily + END), 0, 0)
    assert not await m.Reading.filter(flag__isnull=False).exists()
    assert not await m.AuditEvent.filter(action="FlagReading").exists()
    await cycles.run_cycle("2026-10", now=NOW, apps=notify_apps)
    form = await forms.latest_form((await m.ReadingCycle.get(plant=plant, period="2026-10")).id)
    assert form.state == m.FormState.SENT and form.findings == []


@pytest.mark.parametrize(("register", "meter", "start", "after", "later", "flagged"), [
    # generation: 124.7 kW × 24 h × 1.2 = 3,591.36 kWh = 89.784 units, exactly at the bound is fine
    (TOTAL, "J-G", "1000.0000", dt.timedelta(hours=24), "1089.7840", False),
    (TOTAL, "J-G", "1000.0000", dt.timedelta(hours=24), "1089.7841", True),
    # export is bounded by the plant as well
    (EXPORT, "J-N", "1000.0000", dt.timedelta(hours=24), "1089.7840", False),
    (EXPORT, "J-N", "1000.0000", dt.timedelta(hours=24), "1089.7841", True),
    # import: 1,247 kW × 24 h × 1.2 = 35,913.6 kWh = 897.84 units
    (TOTAL, "J-N", "1000.0000", dt.timedelta(hours=24), "1897.8400", False),
    (TOTAL, "J-N", "1000.0000", dt.timedelta(hours=24), "1897.8401", True),
    # 15 minutes are judged as an hour: 124.7 × 1 × 1.2 = 149.64 kWh = 3.741 units
    (TOTAL, "J-G", "1000.0000", dt.timedelta(minutes=15), "1003.7410", False),
    (TOTAL, "J-G", "1000.0000", dt.timedelta(minutes=15), "1003.7411", True),
    # a rollover counts its real advance: 999,990 → 50 is 60 units; 999,900 → 50 is 150
    (TOTAL, "J-G", "999990.0000", dt.timedelta(hours=24), "50.0000", False),
    (TOTAL, "J-G", "999900.0000", dt.timedelta(hours=24), "50.0000", True),
])
async def test_the_bound_to_the_last_digit(plant, register, meter, start, after, later, flagged):
    first = dt.datetime(2026, 9, 1, tzinfo=LOCAL)
    result = await ingest([row(meter, register, first.isoformat(), start),
                           row(meter, register, (first + after).isoformat(), later)])
    assert [r.status for r in result.results] == [RowStatus.CREATED, RowStatus.CREATED]
    assert result.results[0].flag is None  # the first reading of a register has nothing to be judged by
    assert (result.results[1].flag is not None) is flagged
    assert await m.Reading.filter(flag="implausible_energy").count() == int(flagged)


async def test_the_site_bound_is_the_connection_capacity_when_on_file_and_margins_are_settings(plant):
    await m.NearbyConsumptionTerms.create(
        plant=plant, effective_from=dt.date(2026, 1, 1), voltage_level="10kV", td_price=Decimal("0.1"),
        average_load_rate=Decimal("0.5"), connection_kva=Decimal("630"), current_capacity_charge=Decimal("0"),
        system_operation_fee=Decimal("0"), wire_loss_price=Decimal("0"))
    first = dt.datetime(2026, 9, 1, tzinfo=LOCAL)
    day = (first + dt.timedelta(days=1)).isoformat()
    # 630 kVA × 24 h × 1.2 = 18,144 kWh = 453.6 units
    result = await ingest([row("J-N", TOTAL, first.isoformat(), "1000"), row("J-N", TOTAL, day, "1453.6001")])
    assert "connection 630 kVA × 24.00 h × 1.2" in result.results[1].flag.message
    # a wider margin, as PVSETTLE_READING_ENERGY_MARGIN=1.5 gives: 3,591.36 kWh is no longer too much
    limits = EnergyLimits(margin=Decimal("1.5"))
    result = await ingest([row("J-G", TOTAL, first.isoformat(), "1000"), row("J-G", TOTAL, day, "1089.7841")],
                          limits=limits)
    assert result.flagged == 0
    assert Settings.from_env({"PVSETTLE_READING_ENERGY_MARGIN": "1.5"}, require_secrets=False) \
        .reading_energy_margin == "1.5"
    for bad in ({"PVSETTLE_READING_ENERGY_MARGIN": "0"}, {"PVSETTLE_READING_ENERGY_MARGIN": "x"},
                {"PVSETTLE_READING_SITE_KW_PER_KWP": "-1"}, {"PVSETTLE_READING_SITE_KW_PER_KWP": "NaN"}):
        with pytest.raises(SettingsError):
            Settings.from_env(bad, require_secrets=False)


async def test_a_flagged_boundary_reading_is_left_out_and_a_staff_correction_releases_the_form(plant, notify_apps):
    """The jump lands on the cut-off itself: the form has no trusted reading there and waits;
    staff enter the right value (a revision) and the new version goes to the owner."""
    gen_end = [r for r in END if r["meter"] == "J-G"]
    gen_end[0] = {**gen_end[0], "value": "999000.00"}  # total: 527,800 → 999,000 in a month
    result = await ingest(START + gen_end + [r for r in END if r["meter"] == "J-N"])
    assert result.flagged == 1 and result.rejected == 0
    await cycles.run_cycle("2026-10", now=NOW, apps=notify_apps)
    cycle = await m.ReadingCycle.get(plant=plant, period="2026-10")
    held = await forms.latest_form(cycle.id)
    assert held.state == m.FormState.DRAFT and "MISSING" in held.flags
    assert [(f["meter"], f["register"], f["value"]) for f in held.findings] == [("J-G", TOTAL, "999000.0000")]

    staff = await m.Staff.create(name="运维小李", role=m.StaffRole.OPERATOR)
    new = await forms.adjust_reading("PV-J", "2026-10", "J-G", TOTAL, "528100.00", "表计通讯错误，按现场读数",
                                     staff, now=NOW, apps=notify_apps)
    assert (new.version, new.state, new.findings) == (2, m.FormState.SENT, [])
    assert new.generation_kwh == Decimal("12000.000")
