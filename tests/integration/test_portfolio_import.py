"""A PV company enters its own portfolio: 300 plants from CSV and from XLSX, a reading cycle on
them to bills (checked to the fen), a second import that changes nothing, bad rows refused by
place with nothing stored, and the rule that a bill already issued is never rewritten.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest

from settlement import models as m
from settlement.billing import bills
from settlement.cycles import forms
from settlement.cycles import runs as cycles
from settlement.clock import LOCAL
from settlement.portfolio import changes, sheets, tables
from settlement.portfolio.export import export_portfolio
from settlement.readings.ingest import RowStatus, ingest_readings
from tests.integration import portfolio_files as pf

FORWARD = ("00010000", "00010100", "00010200", "00010300", "00010400")
REVERSE = ("00020000", "00020100", "00020200", "00020300", "00020400")
# dial units per rate (sharp, peak, flat, valley) over the cycle; the total is their sum
GENERATION_STEP = (0, 30, 20, 10)
EXPORT_STEP = (0, 5, 5, 0)
IMPORT_STEP = (0, 10, 10, 10)


def local(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=LOCAL)


async def run_import(path: Path, *, staff=None, check=False) -> changes.Outcome:
    return await changes.import_portfolio(sheets.read(path, tables.NAMES), staff=staff, source=path.name, check=check)


async def snapshot() -> dict:
    """Everything an import writes, as plain values, to compare before and after."""
    out = {}
    for model in (m.Owner, m.Staff, m.Tariff, m.Plant, m.Meter, m.Contract, m.NearbyConsumptionTerms, m.Reading,
                  m.AuditEvent):
        rows = await model.all().order_by("id").values()
        out[model.__name__] = [{k: v for k, v in row.items() if k not in ("created_at", "received_at")} for row in rows]
    return out


async def read_meters_for_the_cycle() -> None:
    """Register readings at 2026-09-01 and 2026-10-01 00:00 for every plant's grid and generation meter."""
    rows = []
    for plant in await m.Plant.all().order_by("id"):
        meters = {mt.kind: mt for mt in await m.Meter.filter(plant=plant, removed_on=None)}
        for meter, registers, step in ((meters[m.MeterKind.GENERATION], FORWARD, GENERATION_STEP),
                                       (meters[m.MeterKind.GRID], REVERSE, EXPORT_STEP),
                                       (meters[m.MeterKind.GRID], FORWARD, IMPORT_STEP)):
            base = (100, 200, 300, 400)
            for when, k in ((local(2026, 9, 1), 0), (local(2026, 10, 1), 1)):
                values = [b + k * s for b, s in zip(base, step)]
                for register, value in zip(registers, [sum(values), *values]):
                    rows.append({"meter": meter.serial, "register": register, "read_at": when, "value": str(value)})
    for first in range(0, len(rows), 5000):
        result = await ingest_readings(rows[first:first + 5000], source=m.ReadingSource.AMI, received_from="collector:test",
                                       now=local(2026, 10, 1, 1))
        assert all(r.status == RowStatus.CREATED for r in result.results), [r for r in result.results if r.error][:3]


async def test_300_plants_from_xlsx_and_csv_to_bills_and_again_changes_nothing(db, notify_apps, tmp_path):
    xlsx = pf.write_xlsx(tmp_path / "portfolio.xlsx")
    folder = pf.write_csv(tmp_path / "portfolio")

    checked = await run_import(xlsx, check=True)  # a first import: no staff yet, as the system
    assert checked.errors == [] and not checked.stored
    assert await m.Plant.all().count() == 0 and await m.AuditEvent.all().count() == 0  # a check stores nothing

    first = await run_import(xlsx)
    assert first.errors == [] and first.stored
    counts = first.counts()
    assert counts["plants"] == {"created": 300, "updated": 0, "unchanged": 0}
    assert counts["owners"]["created"] == 150 and counts["staff"]["created"] == 3
    assert counts["meters"]["created"] == 300 * 2 + 6 + 30 + 20  # grid + generation, 6 replaced, water, gas
    assert counts["meter_replacements"]["created"] == 6 and counts["contracts"]["created"] == 300
    assert counts["nearby_terms"]["created"] == 12 and counts["tariffs"]["created"] == 2
    assert first.readings_stored == 6 * 10  # final and first readings of each replacement
    # what the check said is what the import did
    assert [c.as_dict() for c in checked.changes] == [c.as_dict() for c in first.changes]

    kinds = {k: await m.Meter.filter(kind=k).count() for k in m.MeterKind}
    assert kinds == {m.MeterKind.GENERATION: 306, m.MeterKind.GRID: 300, m.MeterKind.WATER: 30, m.MeterKind.GAS: 20}
    urdb = await m.Tariff.get(code="example-etou")
    assert (urdb.format, urdb.currency, urdb.effective_from) == ("urdb", "USD", dt.date(2024, 1, 1))
    assert urdb.document == pf.URDB and urdb.name == "Example Electric / E-TOU"
    new = await m.Meter.get(serial="PP0050-G2").prefetch_related("replaces")
    assert new.replaces.serial == "PP0050-G" and new.replaced_at == local(2026, 8, 15, 10, 30)
    assert (await m.Meter.get(serial="PP0050-G")).removed_on == dt.date(2026, 8, 15)
    final = await m.Reading.get(meter__serial="PP0050-G", register="00010200")
    assert (final.value, final.source, final.read_at) == (Decimal("400.5"), m.ReadingSource.IMPORTED, new.replaced_at)
    plant = await m.Plant.get(code="PP0007").prefetch_related("owner")
    assert (plant.owner.code, plant.capacity_kwp, plant.reading_day) == ("OW0004", Decimal("107.500"), 1)
    contract = await m.Contract.get(plant=plant)
    assert (contract.pricing_model, contract.fixed_price, contract.discount) == (
        m.PricingModel.FIXED_PRICE, Decimal("0.48"), None)
    tiered = await m.Contract.get(plant__code="PP0011")
    assert tiered.tiers == [["1000.000", "0.500000"], [None, "0.450000"]]
    events = await m.AuditEvent.filter(action="ImportPlant").count()
    assert events == 300 and await m.AuditEvent.filter(action="ReplaceMeter").count() == 6
    assert await m.AuditEvent.filter(action="ImportPortfolio", actor="system").count() == 1

    # the same portfolio as CSV, and the workbook again: nothing changes, nothing is written
    before = await snapshot()
    admin = await m.Staff.get(code="S001")
    for path in (folder, xlsx):
        again = await run_import(path, staff=admin)
        assert again.errors == [] and again.changes == [] and again.readings_stored == 0, \
            list(changes.describe(again))[:5]
        assert again.counts()["plants"] == {"created": 0, "updated": 0, "unchanged": 300}
    assert await snapshot() == before

    # a reading cycle on it, to bills
    await read_meters_for_the_cycle()
    run = await cycles.run_cycle("2026-10", now=local(2026, 10, 1, 8), apps=notify_apps)
    assert (run.plants, run.forms_created, run.forms_flagged) == (300, 300, 0)
    assert await forms.auto_confirm_due(local(2026, 10, 9, 9)) == 300
    assert await bills.issue_bills("2026-10", now=local(2026, 10, 10, 10), apps=notify_apps) == 300
    totals = {b.plant.code: b.total_fen for b in await m.Bill.all().prefetch_related("plant")}
    # PP0001 (×20), grid discount 0.85 on Jiangsu's flat-season prices: self-use per rate
    # peak (30 − 5) × 20 = 500 kWh × 0.9700 × 0.85, flat 300 × 0.6500 × 0.85, valley 200 × 0.3900 × 0.85
    assert totals["PP0001"] == 41225 + 16575 + 6630
    # ×1, each line rounded half up to the fen: 20.6125 → 20.61, 8.2875 → 8.29, 3.315 → 3.32
    assert totals["PP0002"] == 2061 + 829 + 332
    assert totals["PP0007"] == 1000 * 48  # fixed 0.48 on 1000 kWh of self-use (×20)
    assert totals["PP0014"] == 50 * 48  # fixed, ×1: 50 kWh
    assert totals["PP0011"] == 1000 * 50  # tiered: 1000 kWh, all in the first block at 0.50
    assert totals["PP0050"] == 2061 + 829 + 332  # read on the meter that replaced the first one (×1)
    assert len(totals) == 300


async def test_a_bad_row_is_refused_by_its_place_and_nothing_is_stored(db, tmp_path):
    data = pf.portfolio()
    data["owners"][4]["kind"] = "government"
    data["plants"][9]["owner"] = "OW9999"
    data["plants"][10]["capacity_kwp"] = Decimal("-5")
    data["meters"][3]["multiplier"] = 0
    data["meters"][5]["registers"] = "901F"  # a grid meter with a water meter's register
    data["meters"].append({**data["meters"][1], "serial": "PP0001-N2"})  # a second grid meter in service
    data["contracts"][14]["tariff"] = "example-etou"  # priced in dollars
    data["contracts"][12]["discount"] = None  # grid discount without a discount
    data["tariffs"][1]["file"] = "../outside.json"  # the file exists, beside the folder
    data["meter_replacements"][0]["first_readings"] = "00010000=abc"
    folder = pf.write_csv(tmp_path / "bad", data)
    before = await snapshot()
    outcome = await run_import(folder, check=True)
    assert not outcome.stored and outcome.changes == []
    found = {str(e) for e in outcome.errors}
    expected = [
        "owners.csv line 6: column 'kind': 'government' is not one of residential, commercial, industrial",
        "plants.csv line 11: column 'owner': no owner 'OW9999' in the files or the database",
        "plants.csv line 12: column 'capacity_kwp': -5 is not above 0",
        "meters.csv line 5: column 'multiplier': 0 is not between 1 and 1000000",
        "meters.csv line 7: column 'registers': a grid meter reports DL/T 645 (8 hex digits) registers, not 901F",
        "tariffs.csv line 3: column 'file': '../outside.json' is outside the folder of the import",
        "meter_replacements.csv line 2: column 'first_readings': 'abc' is not a number",
        "contracts.csv line 14: column 'discount': a grid_discount contract needs discount",
        "contracts.csv line 12: column 'plant': no plant 'PP0011' in the files or the database",  # refused above
    ]
    for line in expected:
        assert line in found, (line, sorted(found))
    assert any("grid meters PP0001-N and PP0001-N2 of plant PP0001 would both be in service" in e for e in found)
    outcome = await run_import(folder)  # and without --check the same: nothing at all is stored
    assert outcome.errors and not outcome.stored
    assert await snapshot() == before

    # the dollar tariff alone, once the rest is right, is refused with the reason
    data = pf.portfolio()
    data["contracts"][12]["tariff"] = "example-etou"
    data["contracts"][12]["effective_from"] = dt.date(2025, 12, 1)
    outcome = await run_import(pf.write_csv(tmp_path / "usd", data))
    assert [str(e) for e in outcome.errors] == [
        "contracts.csv line 14: column 'tariff': tariff example-etou is priced in USD: bills are settled in CNY "
        "(WeChat Pay takes nothing else)"]
    assert await snapshot() == before


async def test_a_contract_that_priced_an_issued_bill_is_never_rewritten(db, notify_apps, tmp_path):
    data = pf.portfolio()
    await run_import(pf.write_csv(tmp_path / "one", data))
    await read_meters_for_the_cycle()
    await cycles.run_cycle("2026-10", now=local(2026, 10, 1, 8), apps=notify_apps)
    await forms.auto_confirm_due(local(2026, 10, 9, 9))
    await bills.issue_bills("2026-10", now=local(2026, 10, 10, 10), apps=notify_apps)
    admin = await m.Staff.get(code="S001")
    bill = await m.Bill.get(plant__code="PP0001").prefetch_related("lines")
    lines_before = [(l.kind, l.amount_fen) for l in bill.lines]

    data["contracts"][0]["discount"] = Decimal("0.9000")
    outcome = await run_import(pf.write_csv(tmp_path / "edit", data), staff=admin)
    assert [str(e) for e in outcome.errors] == [
        f"contracts.csv line 2: the contract version from 2025-12-01 priced bills already issued ({bill.number}): "
        "add a version that starts later instead"]
    data["contracts"][0]["discount"] = Decimal("0.8500")
    data["contracts"].append({**data["contracts"][0], "effective_from": dt.date(2026, 9, 1), "discount": Decimal("0.9")})
    outcome = await run_import(pf.write_csv(tmp_path / "early", data), staff=admin)
    assert [str(e) for e in outcome.errors] == [
        "contracts.csv line 302: column 'effective_from': bills of periods up to 2026-10-28 are issued: a new "
        "contract version must start after 2026-10-28, not on 2026-09-01"]
    data["contracts"][-1]["effective_from"] = dt.date(2026, 11, 1)
    outcome = await run_import(pf.write_csv(tmp_path / "later", data), staff=admin)
    assert outcome.errors == [] and [(c.table, c.key, c.action) for c in outcome.changes] == [
        ("contracts", "PP0001/2026-11-01", "create")]
    event = await m.AuditEvent.get(action="ImportContract", actor=f"staff:{admin.id}")
    assert event.after["discount"] == "0.9000" and event.reason == "portfolio import later"
    bill = await m.Bill.get(id=bill.id).prefetch_related("lines")
    assert [(l.kind, l.amount_fen) for l in bill.lines] == lines_before

    # meters with readings keep their multiplier: replacing is the way
    data["meters"][0]["multiplier"] = 40
    outcome = await run_import(pf.write_csv(tmp_path / "mult", data), staff=admin)
    assert [str(e) for e in outcome.errors] == [
        "meters.csv line 2: column 'multiplier': meter PP0001-G has readings: its multiplier cannot change; "
        "replace it with a new meter (table meter_replacements)"]


async def test_a_version_entered_before_the_bill_prices_only_the_cycles_after_it(db, notify_apps, tmp_path):
    data = pf.portfolio(2)
    await run_import(pf.write_csv(tmp_path / "one", data))
    await read_meters_for_the_cycle()
    await cycles.run_cycle("2026-10", now=local(2026, 10, 1, 8), apps=notify_apps)
    await forms.auto_confirm_due(local(2026, 10, 9, 9))
    # a new version from November arrives before October's bill is issued
    data["contracts"].append({**data["contracts"][0], "effective_from": dt.date(2026, 11, 1),
                              "discount": Decimal("0.5000"), "due_days": 30})
    admin = await m.Staff.get(code="S001")
    assert (await run_import(pf.write_csv(tmp_path / "two", data), staff=admin)).errors == []
    await bills.issue_bills("2026-10", now=local(2026, 10, 10, 10), apps=notify_apps)
    bill = await m.Bill.get(plant__code="PP0001")
    assert bill.total_fen == 41225 + 16575 + 6630  # at 0.85, the version October is settled under
    assert bill.due_on == dt.date(2026, 10, 25)  # and its 15 days


async def test_who_may_import(db, tmp_path):
    folder = pf.write_csv(tmp_path / "p")
    await run_import(folder)
    operator = await m.Staff.get(code="S002")
    with pytest.raises(changes.Forbidden, match="needs an active admin"):
        await run_import(folder, staff=operator)
    with pytest.raises(changes.Forbidden, match="name the staff member"):
        await run_import(folder)  # staff exist now: the system imports no more


async def test_export_imports_back_to_no_change_as_csv_and_xlsx(db, tmp_path):
    await run_import(pf.write_csv(tmp_path / "in"))
    # and records made before codes existed (seeding, the demo) export as #<id>
    older = await m.Owner.create(name="老业主", kind=m.OwnerKind.COMMERCIAL)
    admin = await m.Staff.get(code="S001")
    before = await snapshot()
    for target in (tmp_path / "out", tmp_path / "out.xlsx"):
        written = await export_portfolio(target)
        assert written
        outcome = await run_import(target, staff=admin)
        assert outcome.errors == [] and outcome.changes == [], list(changes.describe(outcome))[:5]
    assert await snapshot() == before
    owners = (tmp_path / "out" / "owners.csv").read_text("utf-8-sig")
    assert f"#{older.id},老业主,commercial,," in owners
    assert json.loads((tmp_path / "out" / "tariffs" / "example-etou@2024-01-01.json").read_text()) == pf.URDB
    book = openpyxl.load_workbook(tmp_path / "out.xlsx", read_only=True)
    assert set(book.sheetnames) == set(tables.NAMES)
    book.close()


@pytest.mark.parametrize("content, message", [
    (b"", "the file is empty"),
    (b"\xff\xfecode,name\n", "not UTF-8 text"),
    ("code,name,code\n".encode(), "names column 'code' twice"),
    ("code,name\nA,b,c\n".encode(), "3 cells, the header has 2 columns"),
])
async def test_malformed_files_are_refused_before_anything(db, tmp_path, content, message):
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "owners.csv").write_bytes(content)
    with pytest.raises(sheets.UnreadableFile, match=message):
        sheets.read(folder, tables.NAMES)


async def test_not_a_workbook(tmp_path):
    fake = tmp_path / "p.xlsx"
    fake.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(sheets.UnreadableFile, match="not an .xlsx workbook"):
        sheets.read(fake, tables.NAMES)
    with pytest.raises(sheets.UnreadableFile, match="none of the tables"):
        sheets.read(tmp_path, tables.NAMES)


async def test_a_meter_replaced_inside_the_cycle_adds_both_parts(db, notify_apps, tmp_path):
    """换表 on 2026-09-15 inside the cycle 2026-10 (09-01 → 10-01): the generation meter ×20 is
    replaced by one ×40; the form shows both meters' lines and adds their parts."""
    from billing_engine.registers import MeterReplacement, register_energy

    data = pf.portfolio(2)
    data["meters"][0]["removed_on"] = dt.date(2026, 9, 15)
    data["meters"].append({**data["meters"][0], "serial": "PP0001-G2", "multiplier": 40,
                           "installed_on": dt.date(2026, 9, 15), "removed_on": None})
    data["meter_replacements"] = [{
        "old_meter": "PP0001-G", "new_meter": "PP0001-G2", "replaced_at": "2026-09-15 10:00",
        "final_readings": "00010000=1150 00010100=0 00010200=580 00010300=360 00010400=210",
        "first_readings": "00010000=0 00010100=0 00010200=0 00010300=0 00010400=0"}]
    outcome = await run_import(pf.write_csv(tmp_path / "p", data))
    assert outcome.errors == [], [str(e) for e in outcome.errors]
    rows = []
    for serial, when, values in (("PP0001-G", local(2026, 9, 1), (1000, 0, 500, 300, 200)),
                                 ("PP0001-G2", local(2026, 10, 1), (100, 0, 50, 30, 20))):
        rows += [{"meter": serial, "register": r, "read_at": when, "value": str(v)} for r, v in zip(FORWARD, values)]
    for when, k in ((local(2026, 9, 1), 0), (local(2026, 10, 1), 1)):
        step = (30, 0, 10, 10, 10) * 2  # import and export: 10 per rate but sharp, the total their sum
        rows += [{"meter": "PP0001-N", "register": r, "read_at": when, "value": str(v + k * d)}
                 for r, v, d in zip(FORWARD + REVERSE, (30, 0, 10, 10, 10) * 2, step)]
    result = await ingest_readings(rows, source=m.ReadingSource.AMI, received_from="collector:test",
                                   now=local(2026, 10, 1, 1))
    assert all(r.status == RowStatus.CREATED for r in result.results)

    await cycles.run_cycle("2026-10", plant_code="PP0001", now=local(2026, 10, 1, 8), apps=notify_apps)
    form = await m.ConfirmationForm.get(cycle__plant__code="PP0001")
    assert form.state == m.FormState.SENT and "REPLACED" in form.flags  # noted, not held
    peak = [(l["meter"], l["previous"], l["current"], l["multiplier"], l["kwh"], l.get("replaced", False))
            for l in form.lines if l["group"] == "generation" and l["register"] == "00010200"]
    assert peak == [("PP0001-G", "500.0000", "580.0000", 20, "1600.000", True),
                    ("PP0001-G2", "0.0000", "50.0000", 40, "2000.000", False)]
    # old part + new part per rate: peak 80 × 20 + 50 × 40, flat 60 × 20 + 30 × 40, valley 10 × 20 + 20 × 40
    assert [form.periods[r]["generation"] for r in ("sharp", "peak", "flat", "valley")] == \
        ["0.000", "3600.000", "2400.000", "1000.000"]
    assert form.generation_kwh == Decimal("7000")
    # the same figures as billing_engine's own replacement arithmetic
    engine = register_energy([[1000, 0, 500, 300, 200]], [[100, 0, 50, 30, 20]], [20], rollover_at=[1e6],
                             replacement=MeterReplacement(replaced=[True], old_final=[[1150, 0, 580, 360, 210]],
                                                          new_initial=[[0, 0, 0, 0, 0]], new_multiplier=[40]))
    assert engine.kwh.tolist() == [[7000.0, 0.0, 3600.0, 2400.0, 1000.0]]
    # self-use = generation − export (10 × 20 per rate); the owner pays for it at 0.85 × the grid price
    assert [form.periods[r]["self_use"] for r in ("peak", "flat", "valley")] == ["3400.000", "2200.000", "800.000"]
