"""One plant through two reading cycles, every amount worked by hand (DESIGN.md "One reading cycle").

The plant: 100 kWp, reading day 1, generation and grid meters with multiplier 20, Jiangsu 2025 TOU
shape (illustrative prices, VAT included: peak 0.9700, flat 0.6500, valley 0.3900 yuan/kWh),
contract: 85 % of the grid price, due 15 days after issue, late fee 2 ‰ a day.
"""

import datetime as dt
from decimal import Decimal

import pytest

from settlement.billing import bills, late_fees
from settlement.cycles import runs as cycles
from settlement.cycles import forms
from settlement import models as m
from settlement.errors import Conflict, Forbidden, InvalidInput
from tests.integration.billed_plant import jiangsu_tariff
from settlement.clock import LOCAL



def local(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=LOCAL)


GEN = ("00010000", "00010100", "00010200", "00010300", "00010400")
REV = ("00020000", "00020100", "00020200", "00020300", "00020400")
# register values [dial units] at 00:00 on the reading day: total, sharp, peak, flat, valley
GENERATION = {
    local(2026, 9, 1): ("1000.00", "100.00", "300.00", "400.00", "200.00"),
    local(2026, 10, 1): ("1700.00", "100.00", "600.00", "650.00", "350.00"),  # +0 +300 +250 +150
    local(2026, 11, 1): ("1940.00", "100.00", "690.00", "750.00", "400.00"),  # from the fixed 10-01: +100 +100 +50
}
EXPORT = {
    local(2026, 9, 1): ("500.00", "50.00", "150.00", "200.00", "100.00"),
    local(2026, 10, 1): ("600.00", "50.00", "180.00", "240.00", "130.00"),  # +0 +30 +40 +30
    local(2026, 11, 1): ("600.00", "50.00", "180.00", "240.00", "130.00"),  # no export
}
IMPORT = {
    local(2026, 9, 1): ("20000.00", "0.00", "8000.00", "7000.00", "5000.00"),
    local(2026, 10, 1): ("20400.00", "0.00", "8100.00", "7200.00", "5100.00"),
    local(2026, 11, 1): ("20700.00", "0.00", "8150.00", "7350.00", "5200.00"),
}


@pytest.fixture
async def plant(db):
    await jiangsu_tariff()
    owner = await m.Owner.create(name="常州某纺织有限公司", kind=m.OwnerKind.COMMERCIAL)
    plant = await m.Plant.create(code="PV-T1", name="厂房屋顶", owner=owner, capacity_kwp=Decimal("100"),
                                 reading_day=1)
    await m.Contract.create(plant=plant, effective_from=dt.date(2026, 1, 1), tariff_code="jiangsu-2025",
                            pricing_model=m.PricingModel.GRID_DISCOUNT, discount=Decimal("0.85"),
                            vat_rate=Decimal("0.13"), prices_include_vat=True, due_days=15,
                            late_fee_rate=Decimal("0.002"), late_fee_rate_cross_year=Decimal("0.003"),
                            auto_confirm_days=7)
    gen = await m.Meter.create(plant=plant, serial="T1-G", kind=m.MeterKind.GENERATION, multiplier=20,
                               registers=list(GEN), installed_on=dt.date(2026, 1, 1))
    grid = await m.Meter.create(plant=plant, serial="T1-N", kind=m.MeterKind.GRID, multiplier=20,
                                registers=list(GEN + REV), installed_on=dt.date(2026, 1, 1))
    rows = []
    for meter, registers, table in ((gen, GEN, GENERATION), (grid, REV, EXPORT), (grid, GEN, IMPORT)):
        for when, values in table.items():
            for register, value in zip(registers, values):
                rows.append(m.Reading(meter=meter, register=register, read_at=when, value=Decimal(value),
                                      source=m.ReadingSource.AMI))
    await m.Reading.bulk_create(rows)
    staff = await m.Staff.create(name="运维小王", role=m.StaffRole.OPERATOR)
    admin_less = await m.Staff.create(name="只读", role=m.StaffRole.VIEWER)
    identity = await m.WechatIdentity.create(app_id="wxmp", openid="o-owner", owner=owner)
    return {"plant": plant, "owner": owner, "staff": staff, "viewer": admin_less, "identity": identity}


async def _form(period: str) -> m.ConfirmationForm:
    cycle = await m.ReadingCycle.get(plant__code="PV-T1", period=period)
    return await forms.latest_form(cycle.id)


def _energies(form: m.ConfirmationForm, what: str) -> list[str]:
    return [form.periods[rate][what] for rate in ("sharp", "peak", "flat", "valley")]


async def test_two_cycles_from_readings_to_paid(plant, notify_apps):
    owner, staff, identity = plant["owner"], plant["staff"], plant["identity"]

    # --- cycle 2026-10 (2026-09-01 → 2026-10-01): the form ----------------------------------
    run = await cycles.run_cycle("2026-10", now=local(2026, 10, 1, 8), apps=notify_apps)
    assert (run.plants, run.forms_created, run.forms_existing, run.forms_flagged) == (1, 1, 0, 0)
    v1 = await _form("2026-10")
    assert (v1.version, v1.state) == (1, m.FormState.SENT)
    # generation Δ × 20: sharp 0, peak 300 × 20, flat 250 × 20, valley 150 × 20
    assert _energies(v1, "generation") == ["0.000", "6000.000", "5000.000", "3000.000"]
    assert _energies(v1, "export") == ["0.000", "600.000", "800.000", "600.000"]
    assert _energies(v1, "self_use") == ["0.000", "5400.000", "4200.000", "2400.000"]
    assert _energies(v1, "grid") == ["0.000", "2000.000", "4000.000", "2000.000"]
    assert (v1.generation_kwh, v1.self_use_kwh, v1.export_kwh) == (Decimal("14000"), Decimal("12000"), Decimal("2000"))
    line = next(l for l in v1.lines if l["meter"] == "T1-G" and l["register"] == "00010200")
    assert (line["previous"], line["current"], line["multiplier"], line["kwh"]) == ("300.0000", "600.0000", 20, "6000.000")

    # running again changes nothing
    again = await cycles.run_cycle("2026-10", apps=notify_apps)
    assert (again.forms_created, again.forms_existing) == (0, 1)
    assert await m.ConfirmationForm.all().count() == 1

    # --- the owner disputes, staff correct the generation meter, the owner confirms v3 -------
    with pytest.raises(InvalidInput):
        await forms.dispute_form(v1.id, "   ", by=identity)
    await forms.dispute_form(v1.id, "峰时段发电量偏高，现场表计显示 590", by=identity)
    with pytest.raises(Forbidden):
        await forms.adjust_reading("PV-T1", "2026-10", "T1-G", "00010200", "590.00", "现场核实", plant["viewer"],
                                   apps=notify_apps)
    with pytest.raises(InvalidInput):
        await forms.adjust_reading("PV-T1", "2026-10", "T1-G", "00010200", "590.00", "", staff, apps=notify_apps)
    v2 = await forms.adjust_reading("PV-T1", "2026-10", "T1-G", "00010200", "590.00", "现场核实峰时段读数", staff,
                                    apps=notify_apps)
    assert (v2.version, v2.state, v2.flags) == (2, m.FormState.DRAFT, ["TOU_MISMATCH"])  # total still 700 ≠ 690
    v3 = await forms.adjust_reading("PV-T1", "2026-10", "T1-G", "00010000", "1690.00", "现场核实总读数", staff,
                                    apps=notify_apps)
    assert (v3.version, v3.state, v3.flags) == (3, m.FormState.SENT, [])
    assert _energies(v3, "self_use") == ["0.000", "5200.000", "4200.000", "2400.000"]
    assert (await m.ConfirmationForm.get(id=v1.id)).state == m.FormState.ADJUSTED
    assert (await m.ConfirmationForm.get(id=v1.id)).periods == v1.periods  # old versions kept as they were
    with pytest.raises(Conflict):
        await forms.confirm_form(v1.id, by=identity)  # an old version cannot be confirmed
    adjusted = await m.Reading.filter(meter__serial="T1-G", register="00010200", read_at=local(2026, 10, 1).astimezone(dt.timezone.utc)) \
        .order_by("revision")
    assert [(r.value, r.revision, r.source) for r in adjusted] == [
        (Decimal("600.0000"), 0, m.ReadingSource.AMI), (Decimal("590.0000"), 1, m.ReadingSource.ADJUSTED)]
    events = await m.AuditEvent.filter(action="AdjustReading").order_by("id")
    assert [(e.actor, e.before["value"], e.after["value"], e.reason) for e in events] == [
        (f"staff:{staff.id}", "600.0000", "590.0000", "现场核实峰时段读数"),
        (f"staff:{staff.id}", "1700.0000", "1690.0000", "现场核实总读数")]
    await forms.confirm_form(v3.id, by=identity, now=local(2026, 10, 9))

    # --- the bill, worked by hand -----------------------------------------------------------
    # unit price = grid price × 0.85: peak 0.9700 → 0.824500, flat 0.6500 → 0.552500, valley 0.3900 → 0.331500
    # peak 5200 kWh × 0.8245 = 4287.40 元; flat 4200 × 0.5525 = 2320.50 元; valley 2400 × 0.3315 = 795.60 元
    assert await bills.issue_bills("2026-10", now=local(2026, 10, 10, 10), apps=notify_apps) == 1
    assert await bills.issue_bills("2026-10", now=local(2026, 10, 10, 11), apps=notify_apps) == 0  # once
    bill = await m.Bill.get(cycle__period="2026-10").prefetch_related("lines")
    lines = sorted(bill.lines, key=lambda l: l.seq)
    assert [(l.description, l.kwh, l.unit_price, l.amount_fen) for l in lines] == [
        ("峰时段自用电量", Decimal("5200.000"), Decimal("0.824500"), 428740),
        ("平时段自用电量", Decimal("4200.000"), Decimal("0.552500"), 232050),
        ("谷时段自用电量", Decimal("2400.000"), Decimal("0.331500"), 79560)]
    # VAT inside each line, 13/113 of it, half up: 49323.89 → 49324, 26696.02 → 26696, 9153.10 → 9153
    assert [l.tax_fen for l in lines] == [49324, 26696, 9153]
    assert (bill.total_fen, bill.tax_fen, bill.state) == (740350, 85173, m.BillState.OPEN)
    assert bill.due_on == dt.date(2026, 10, 25) and bill.form_id == v3.id

    # --- a partial payment recorded by staff -------------------------------------------------
    pay1 = await bills.record_payment(bill.id, 400000, m.PaymentChannel.BANK_TRANSFER, "BANK-20261020-01",
                                      staff=staff, paid_at=local(2026, 10, 20, 15), apps=notify_apps)
    same = await bills.record_payment(bill.id, 400000, m.PaymentChannel.BANK_TRANSFER, "BANK-20261020-01",
                                      staff=staff, paid_at=local(2026, 10, 20, 15), apps=notify_apps)
    assert same.id == pay1.id  # recorded once
    with pytest.raises(Conflict):
        await bills.record_payment(bill.id, 1, m.PaymentChannel.BANK_TRANSFER, "BANK-20261020-01", staff=staff,
                                   apps=notify_apps)
    bill = await m.Bill.get(id=bill.id)
    assert (bill.paid_fen, bills.owed_fen(bill), bill.state) == (400000, 340350, m.BillState.PARTLY_PAID)

    # --- late fee: 2 ‰ a day on the unpaid 3403.50 元 from 10-26 -----------------------------
    assert await late_fees.accrue_late_fees(dt.date(2026, 10, 25)) == 0  # due today: not late
    assert await late_fees.accrue_late_fees(dt.date(2026, 11, 5)) == 1  # 10-26 … 11-04 = 10 days
    assert await late_fees.accrue_late_fees(dt.date(2026, 11, 5)) == 0  # never twice
    bill = await m.Bill.get(id=bill.id).prefetch_related("lines")
    fees = sorted((l for l in bill.lines if l.kind == m.LineKind.LATE_FEE), key=lambda l: l.seq)
    assert [f.amount_fen for f in fees] == [6807]  # 340350 × 0.002 × 10 = 6807.0
    assert await late_fees.accrue_late_fees(dt.date(2026, 11, 6)) == 1
    bill = await m.Bill.get(id=bill.id).prefetch_related("lines")
    fees = sorted((l for l in bill.lines if l.kind == m.LineKind.LATE_FEE), key=lambda l: l.seq)
    assert [f.amount_fen for f in fees] == [6807, 681]  # 11 days: 7487.7 → 7488, of which 681 new
    assert bill.total_fen == 740350 + 7488 == sum(l.amount_fen for l in bill.lines)

    # --- paid in full, 5 元 over: the rest becomes account credit ----------------------------
    await bills.record_payment(bill.id, 348338, m.PaymentChannel.COUNTER, "COUNTER-1106-7", staff=staff,
                               paid_at=local(2026, 11, 6, 10), apps=notify_apps)
    bill = await m.Bill.get(id=bill.id)
    assert (bill.paid_fen, bills.owed_fen(bill), bill.state) == (747838, 0, m.BillState.PAID)
    assert await bills.credit_balance(owner.id) == 500
    assert await late_fees.accrue_late_fees(dt.date(2026, 11, 20)) == 0  # a paid bill accrues nothing

    # --- cycle 2026-11 (10-01 → 11-01): the corrected 10-01 reading carries over -------------
    await cycles.run_cycle("2026-11", now=local(2026, 11, 1, 8), apps=notify_apps)
    form2 = await _form("2026-11")
    # generation from the corrected 590 / 1690 of 10-01: peak +100, flat +100, valley +50
    assert _energies(form2, "generation") == ["0.000", "2000.000", "2000.000", "1000.000"]
    assert form2.flags == [] and form2.state == m.FormState.SENT
    assert await forms.auto_confirm_due(local(2026, 11, 7)) == 0  # answer not due yet
    assert await forms.auto_confirm_due(local(2026, 11, 8, 9)) == 1
    assert (await _form("2026-11")).state == m.FormState.AUTO_CONFIRMED
    assert await bills.issue_bills("2026-11", now=local(2026, 11, 10, 10), apps=notify_apps) == 1
    bill2 = await m.Bill.get(cycle__period="2026-11")
    # peak 2000 × 0.8245 = 1649.00; flat 2000 × 0.5525 = 1105.00; valley 1000 × 0.3315 = 331.50 → 3085.50 元
    assert (bill2.total_fen, bill2.credit_applied_fen, bills.owed_fen(bill2)) == (308550, 500, 308050)
    assert await bills.credit_balance(owner.id) == 0
    await bills.record_payment(bill2.id, 308050, m.PaymentChannel.BANK_TRANSFER, "BANK-1120", staff=staff,
                               apps=notify_apps)
    assert (await m.Bill.get(id=bill2.id)).state == m.BillState.PAID

    status = await cycles.cycle_status("2026-10")
    assert status == {"period": "2026-10", "forms": {"confirmed": 1}, "bills": {"paid": 1}}
    assert await m.AuditEvent.filter(action="RecordPayment").count() == 3


async def test_staff_set_an_energy_when_no_reading_can(plant, notify_apps):
    staff, identity = plant["staff"], plant["identity"]
    await cycles.run_cycle("2026-10", now=local(2026, 10, 1, 8), apps=notify_apps)
    v1 = await _form("2026-10")
    await forms.dispute_form(v1.id, "发电表 9 月中旬故障，峰时段电量按 5500 kWh 协商", by=identity)
    for bad in ("-1", "NaN", "1e400", "12.3456", "abc"):
        with pytest.raises(InvalidInput):
            await forms.adjust_energy("PV-T1", "2026-10", "generation", "peak", bad, "协商", staff, apps=notify_apps)
    with pytest.raises(InvalidInput):
        await forms.adjust_energy("PV-T1", "2026-10", "self_use", "peak", "1", "derived, not set", staff,
                                  apps=notify_apps)
    with pytest.raises(Forbidden):
        await forms.adjust_energy("PV-T1", "2026-10", "generation", "peak", "5500", "协商", plant["viewer"],
                                  apps=notify_apps)
    v2 = await forms.adjust_energy("PV-T1", "2026-10", "generation", "peak", "5500", "与业主协商一致", staff, apps=notify_apps)
    assert (v2.version, v2.state, v2.flags) == (2, m.FormState.SENT, ["ENERGY_ADJUSTED"])
    # peak self-use follows: 5500 − 600 export = 4900; totals are the sums of the rates
    assert _energies(v2, "self_use") == ["0.000", "4900.000", "4200.000", "2400.000"]
    assert (v2.generation_kwh, v2.self_use_kwh) == (Decimal("13500"), Decimal("11500"))
    event = await m.AuditEvent.get(action="AdjustEnergy")
    assert (event.before["generation"], event.after["generation"], event.reason) == (
        "6000.000", "5500.000", "与业主协商一致")
    await forms.confirm_form(v2.id, by=identity)
    with pytest.raises(Conflict):  # final now
        await forms.adjust_energy("PV-T1", "2026-10", "generation", "peak", "1", "too late", staff, apps=notify_apps)
    await bills.issue_bills("2026-10", now=local(2026, 10, 10), apps=notify_apps)
    bill = await m.Bill.get(cycle__period="2026-10")
    # peak 4900 × 0.8245 = 4040.05; flat 2320.50; valley 795.60 → 7156.15 元
    assert bill.total_fen == 404005 + 232050 + 79560
