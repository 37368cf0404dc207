"""Staff reports: the cycle report (energy, amounts, collection, aging) and the nearby-consumption
monthly fees, checked to the fen in the rows and in the CSV and XLSX files read back.

PV-E1 is the walked plant of tests/integration/billed_plant.py: billed 7659.67 元 (7568.40 + late fee
91.27 through 11-04), paid 3000.00 on 10-20, credit applied 5.00, owed 4654.67, due 2026-10-25.
"""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal

import openpyxl
import pytest

from settlement import models as m
from settlement.billing import reports
from tests.integration.billed_plant import local, plain_bill, walked_plant

AS_OF = dt.date(2026, 11, 20)
ENERGIES = ("100", "80", "20", "50")  # generation, self-use, export, grid [kWh] of each plain plant


@pytest.fixture
async def portfolio(db, notify_apps):
    """PV-E1 and eleven plants with one 2026-10 bill each, of known amounts and due dates."""
    walked = await walked_plant(apps=notify_apps)
    made = {"PV-E1": walked}

    async def bill(code, total, due, **kw):
        made[code] = await plain_bill(code, "2026-10", total_fen=total, due_on=due, energies=ENERGIES, **kw)

    # days past due on 2026-11-20 in the comments
    await bill("A01", 10000, dt.date(2026, 11, 20))  # 0: not yet due
    await bill("A02", 20000, dt.date(2026, 11, 19), paid_fen=5000)  # 1
    await bill("A03", 25000, dt.date(2026, 10, 21))  # 30
    await bill("A04", 30000, dt.date(2026, 10, 20))  # 31
    await bill("A05", 40000, dt.date(2026, 8, 22))  # 90
    await bill("A06", 50000, dt.date(2026, 8, 21))  # 91
    await bill("A07", 60000, dt.date(2026, 5, 24))  # 180
    await bill("A08", 70000, dt.date(2026, 5, 23))  # 181
    await bill("A09", 80000, dt.date(2026, 11, 1), paid_fen=80000)  # paid in full
    await bill("A10", 90000, dt.date(2026, 9, 1), paid_fen=10000, state=m.BillState.WRITTEN_OFF)
    await bill("A11", 11000, dt.date(2026, 11, 15), paid_fen=11000, paid_at=local(2026, 11, 25, 9))  # paid later
    await bill("A12", 12000, dt.date(2026, 12, 6), issued_at=local(2026, 11, 21, 9))  # issued after AS_OF
    return made


def _by_code(report: reports.Report) -> dict[str, dict]:
    return {row["plant_code"]: row for row in report.rows}


async def test_cycle_report_rows_to_the_fen_with_aging_on_a_chosen_date(portfolio):
    report = await reports.cycle_report("2026-10", as_of=AS_OF)
    rows = _by_code(report)
    assert [r["plant_code"] for r in report.rows] == sorted(rows) and len(rows) == 13

    e1 = rows["PV-E1"]
    assert (e1["generation_kwh"], e1["self_use_kwh"], e1["export_kwh"], e1["grid_kwh"]) == \
        (Decimal("14000"), Decimal("12000"), Decimal("2000"), Decimal("8000"))
    assert (e1["form_version"], e1["form_state"], e1["bill_number"], e1["bill_state"]) == \
        (1, m.FormState.CONFIRMED, "202610-PV-E1-1", m.BillState.PARTLY_PAID)
    assert (e1["billed_fen"], e1["late_fee_fen"], e1["paid_fen"], e1["credit_applied_fen"], e1["owed_fen"]) == \
        (765967, 9127, 300000, 500, 465467)
    # (3000.00 + 5.00) / 7659.67 = 0.392314… → 0.3923
    assert e1["collection_rate"] == "0.3923"
    assert (e1["days_past_due"], e1["aging_0_30"], e1["not_due"], e1["aging_31_90"]) == (26, 465467, 0, 0)

    buckets = {code: next((b for b in reports.BUCKETS if rows[code][b]), None) for code in rows}
    assert buckets == {"PV-E1": "aging_0_30", "A01": "not_due", "A02": "aging_0_30", "A03": "aging_0_30",
                       "A04": "aging_31_90", "A05": "aging_31_90", "A06": "aging_91_180", "A07": "aging_91_180",
                       "A08": "aging_over_180", "A09": None, "A10": None, "A11": "aging_0_30", "A12": None}
    assert [rows[c]["days_past_due"] for c in ("A02", "A03", "A04", "A05", "A06", "A07", "A08")] == \
        [1, 30, 31, 90, 91, 180, 181]
    assert (rows["A02"]["owed_fen"], rows["A02"]["aging_0_30"], rows["A02"]["collection_rate"]) == (15000, 15000, "0.2500")
    assert (rows["A09"]["owed_fen"], rows["A09"]["collection_rate"], rows["A09"]["days_past_due"]) == (0, "1.0000", None)
    # written off: the rest is not arrears
    assert (rows["A10"]["owed_fen"], rows["A10"]["written_off_fen"], rows["A10"]["collection_rate"]) == (0, 80000, "0.1111")
    # paid on 11-25: on 11-20 it was still owed, although the bill is paid today
    assert (rows["A11"]["paid_fen"], rows["A11"]["owed_fen"], rows["A11"]["bill_state"]) == (0, 11000, m.BillState.PAID)
    # issued on 11-21: nothing billed yet on 11-20, but its energies are there
    assert rows["A12"]["billed_fen"] is None and rows["A12"]["self_use_kwh"] == Decimal("80")

    t = report.totals
    # billed 765967 + 10000 + 20000 + 25000 + 30000 + 40000 + 50000 + 60000 + 70000 + 80000 + 90000 + 11000
    assert t["billed_fen"] == 1251967
    assert (t["paid_fen"], t["credit_applied_fen"], t["written_off_fen"]) == (395000, 500, 80000)
    assert t["owed_fen"] == 776467 == 1251967 - 395000 - 500 - 80000
    assert (t["not_due"], t["aging_0_30"], t["aging_31_90"], t["aging_91_180"], t["aging_over_180"]) == \
        (10000, 465467 + 15000 + 25000 + 11000, 70000, 110000, 70000)
    assert t["collection_rate"] == "0.3159"  # 395500 / 1251967 = 0.31590…
    assert (t["generation_kwh"], t["self_use_kwh"]) == (Decimal("15200"), Decimal("12960"))  # 14000 + 12 × 100


async def test_the_same_bill_at_earlier_dates(portfolio):
    async def e1(as_of):
        return _by_code(await reports.cycle_report("2026-10", plant_code="PV-E1", as_of=as_of))["PV-E1"]

    # 11-04: the late fee through 11-04 is written on 11-05, so not yet billed
    row = await e1(dt.date(2026, 11, 4))
    assert (row["billed_fen"], row["late_fee_fen"], row["owed_fen"], row["days_past_due"], row["aging_0_30"]) == \
        (756840, 0, 456340, 10, 456340)
    row = await e1(dt.date(2026, 11, 5))
    assert (row["billed_fen"], row["owed_fen"]) == (765967, 465467)
    # 10-15: issued, not paid yet, not due
    row = await e1(dt.date(2026, 10, 15))
    assert (row["paid_fen"], row["owed_fen"], row["not_due"], row["days_past_due"]) == (0, 756340, 756340, 0)
    # 10-09: not issued yet
    row = await e1(dt.date(2026, 10, 9))
    assert row["billed_fen"] is None and row["generation_kwh"] == Decimal("14000")


async def test_per_plant_report_lists_every_cycle_of_the_plant(portfolio):
    plant = portfolio["PV-E1"]["plant"]
    await plain_bill("PV-E1", "2026-11", plant=plant, total_fen=4321, due_on=dt.date(2026, 12, 1), energies=ENERGIES)
    report = await reports.cycle_report(plant_code="PV-E1", as_of=AS_OF)
    assert [(r["period"], r["billed_fen"]) for r in report.rows] == [("2026-10", 765967), ("2026-11", 4321)]
    assert report.totals["billed_fen"] == 765967 + 4321


async def test_cycle_report_as_csv_and_xlsx(portfolio, tmp_path):
    await m.Owner.filter(id=portfolio["A01"]["plant"].owner_id).update(name='=HYPERLINK("http://x.invalid","点我")')
    report = await reports.cycle_report("2026-10", as_of=AS_OF)

    path = tmp_path / "cycle.csv"
    assert reports.write_report(report, path, "csv") == 13
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads the Chinese right
    table = list(csv.reader(raw.decode("utf-8-sig").splitlines()))
    header, body, totals = table[0], table[1:-1], table[-1]
    assert header[:4] == ["结算月份", "电站编号", "电站名称", "业主"] and len(body) == 13
    col = {name: i for i, name in enumerate(header)}
    e1 = next(r for r in body if r[col["电站编号"]] == "PV-E1")
    assert [e1[col[k]] for k in ("应收 (元)", "其中违约金 (元)", "已收 (元)", "余额抵扣 (元)", "欠费 (元)", "收缴率",
                                 "逾期 0–30 天 (元)", "逾期 31–90 天 (元)", "未到期 (元)")] == \
        ["7659.67", "91.27", "3000.00", "5.00", "4654.67", "0.3923", "4654.67", "0.00", "0.00"]
    assert [e1[col[k]] for k in ("发电量 (kWh)", "自用电量 (kWh)", "上网电量 (kWh)", "下网电量 (kWh)")] == \
        ["14000.000", "12000.000", "2000.000", "8000.000"]
    assert (e1[col["账单状态（当前）"]], e1[col["确认单状态"]], e1[col["缴费截止日"]], e1[col["业主"]]) == \
        ("部分缴费", "已确认", "2026-10-25", "常州某纺织有限公司")
    a01 = next(r for r in body if r[col["电站编号"]] == "A01")
    assert a01[col["业主"]] == "'=HYPERLINK(\"http://x.invalid\",\"点我\")"  # never a formula in Excel
    assert (totals[0], totals[col["应收 (元)"]], totals[col["欠费 (元)"]], totals[col["收缴率"]]) == \
        ("合计 / total", "12519.67", "7764.67", "0.3159")

    english = tmp_path / "cycle-en.csv"
    reports.write_report(report, english, "csv", lang="en")
    header_en = next(csv.reader(english.read_text(encoding="utf-8-sig").splitlines()))
    assert header_en[:3] == ["period", "plant code", "plant"] and "billed (yuan)" in header_en

    path = tmp_path / "cycle.xlsx"
    assert reports.write_report(report, path, "xlsx") == 13
    workbook = openpyxl.load_workbook(path)
    sheet = workbook["cycle"]
    cells = list(sheet.iter_rows(values_only=False))
    names = [c.value for c in cells[0]]
    assert names == header
    x = {name: i for i, name in enumerate(names)}
    row = next(r for r in cells[1:] if r[x["电站编号"]].value == "PV-E1")
    for name, expected in (("应收 (元)", "7659.67"), ("其中违约金 (元)", "91.27"), ("已收 (元)", "3000.00"),
                           ("余额抵扣 (元)", "5.00"), ("欠费 (元)", "4654.67"), ("逾期 0–30 天 (元)", "4654.67")):
        cell = row[x[name]]
        assert cell.data_type == "n" and cell.number_format == "#,##0.00", name
        # the number Excel holds is the exact 元 amount (to 2 decimals) of the fen
        assert Decimal(str(cell.value)).quantize(Decimal("0.01")) == Decimal(expected), name
        assert round(cell.value * 100) == int(Decimal(expected) * 100)
    assert row[x["发电量 (kWh)"]].value == 14000 and row[x["缴费截止日"]].value.date() == dt.date(2026, 10, 25)
    assert Decimal(str(row[x["收缴率"]].value)) == Decimal("0.3923")
    a01 = next(r for r in cells[1:] if r[x["电站编号"]].value == "A01")
    assert a01[x["业主"]].data_type == "s" and a01[x["业主"]].value.startswith("=HYPERLINK")
    last = cells[-1]
    assert last[0].value == "合计 / total" and last[0].font.bold
    assert Decimal(str(last[x["应收 (元)"]].value)) == Decimal("12519.67")
    assert Decimal(str(last[x["欠费 (元)"]].value)) == Decimal("7764.67")
    about = dict(workbook["about"].iter_rows(values_only=True))
    assert (about["report"], about["period"], about["as_of"]) == ("抄表周期报表", "2026-10", "2026-11-20")


async def _terms(plant, effective_from, **values):
    defaults = {"voltage_level": "10kV", "td_price": Decimal("0.1"), "average_load_rate": Decimal("0.5"),
                "connection_kva": Decimal("100"), "current_capacity_charge": Decimal("0"),
                "system_operation_fee": Decimal("0.01"), "wire_loss_price": Decimal("0.01")}
    return await m.NearbyConsumptionTerms.create(plant=plant, effective_from=effective_from, **{**defaults, **values})


async def test_nearby_consumption_monthly_fees_worked_by_hand(db, tmp_path):
    n1 = await plain_bill("PV-N1", "2026-10", total_fen=1, due_on=dt.date(2026, 11, 1),
                          energies=("20000", "15000", "5000", "12345.678"))
    n2 = await plain_bill("PV-N2", "2026-10", total_fen=1, due_on=dt.date(2026, 11, 1),
                          energies=("900", "800", "100", "4000"), form_state=m.FormState.SENT)
    n3 = await plain_bill("PV-N3", "2026-10", total_fen=1, due_on=dt.date(2026, 11, 1))
    await plain_bill("PV-X", "2026-10", total_fen=1, due_on=dt.date(2026, 11, 1))  # not a nearby project
    await _terms(n1["plant"], dt.date(2026, 1, 1), td_price=Decimal("0.3"))  # replaced on 10-01
    await _terms(n1["plant"], dt.date(2026, 10, 1), voltage_level="10kV", td_price=Decimal("0.1987"),
                 average_load_rate=Decimal("0.4321"), connection_kva=Decimal("630.5"),
                 current_capacity_charge=Decimal("9456.00"), system_operation_fee=Decimal("0.0275"),
                 wire_loss_price=Decimal("0.0123"))
    await _terms(n1["plant"], dt.date(2026, 11, 1), td_price=Decimal("0.5"))  # later: not for October
    await _terms(n2["plant"], dt.date(2026, 9, 1), voltage_level="35kV", td_price=Decimal("0.2"),
                 average_load_rate=Decimal("0.5"), connection_kva=Decimal("1000"))
    await _terms(n3["plant"], dt.date(2026, 11, 1))  # not in force in October

    report = await reports.nearby_report("2026-10")
    rows = _by_code(report)
    assert sorted(rows) == ["PV-N1", "PV-N2"]
    r1 = rows["PV-N1"]
    assert (r1["terms_from"], r1["voltage_level"], r1["hours"]) == (dt.date(2026, 10, 1), "10kV", 730)
    # 0.1987 yuan/kWh × 0.4321 × 730 h × 630.5 kVA = 39 517.556 641 55 元 = 3 951 755.66 fen → 3 951 756
    assert r1["capacity_added_fen"] == 3951756
    # + 9 456.00 元 under current policy
    assert (r1["current_capacity_fen"], r1["capacity_fen"]) == (945600, 945600 + 3951756)
    # grid-drawn 12 345.678 kWh × 0.0275 = 339.506 145 元 → 33 951 fen; × 0.0123 = 151.851 839 4 元 → 15 185 fen
    assert (r1["grid_kwh"], r1["system_operation_fen"], r1["wire_loss_fen"]) == (Decimal("12345.678"), 33951, 15185)
    assert r1["total_fen"] == 4897356 + 33951 + 15185 == 4946492
    # self-use 15 000 of 20 000 generated (0.75 ≥ 0.60) and of 27 345.678 consumed (0.5485 ≥ 0.30)
    assert (r1["self_use_of_generation"], r1["self_use_of_consumption"], r1["meets_thresholds"]) == \
        ("0.7500", "0.5485", "yes")
    r2 = rows["PV-N2"]
    # 0.2 × 0.5 × 730 × 1000 = 73 000.00 元; the form is not confirmed: no kWh, no fees on kWh, no total
    assert (r2["capacity_fen"], r2["grid_kwh"], r2["system_operation_fen"], r2["total_fen"], r2["form_state"]) == \
        (7300000, None, None, None, m.FormState.SENT)
    assert (report.totals["capacity_fen"], report.totals["total_fen"]) == (4897356 + 7300000, 4946492)

    path = tmp_path / "nearby.csv"
    assert reports.write_report(report, path, "csv") == 2
    table = list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))
    col = {name: i for i, name in enumerate(table[0])}
    first = table[1]
    assert [first[col[k]] for k in ("项目编号", "输配电价 (元/kWh)", "平均负荷率", "接网容量 (kVA)", "月小时数 (h)",
                                    "现行容量电费 (元)", "按负荷率折算容量电费 (元)", "月容量电费 (元)",
                                    "下网电量 (kWh)", "系统运行费 (元)", "线损费用 (元)", "合计 (元)",
                                    "本月达到就近消纳比例要求")] == \
        ["PV-N1", "0.1987", "0.4321", "630.5", "730", "9456.00", "39517.56", "48973.56", "12345.678", "339.51",
         "151.85", "49464.92", "是"]
    assert [table[2][col[k]] for k in ("项目编号", "下网电量 (kWh)", "系统运行费 (元)", "合计 (元)", "确认单状态")] == \
        ["PV-N2", "", "", "", "待确认"]

    path = tmp_path / "nearby.xlsx"
    reports.write_report(report, path, "xlsx", lang="en")
    sheet = openpyxl.load_workbook(path)["nearby"]
    values = list(sheet.iter_rows(values_only=True))
    x = {name: i for i, name in enumerate(values[0])}
    assert values[1][x["project code"]] == "PV-N1"
    assert Decimal(str(values[1][x["monthly capacity charge (yuan)"]])) == Decimal("48973.56")
    assert Decimal(str(values[1][x["total (yuan)"]])) == Decimal("49464.92")
    assert values[2][x["total (yuan)"]] is None


async def test_bad_periods_are_refused(db):
    from settlement.errors import InvalidInput

    for period in ("2026-13", "2026-1", "26-10", ""):
        with pytest.raises(InvalidInput):
            await reports.cycle_report(period)
        with pytest.raises(InvalidInput):
            await reports.nearby_report(period)
