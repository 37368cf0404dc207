"""Staff reports: cycles per plant (energy, amounts, collection, arrears aging) and the monthly fee
report of nearby-consumption (就近消纳) projects, as CSV (UTF-8 with BOM, so Excel reads the
Chinese right) or XLSX.

Rules written down
------------------
* **Which form, which bill.** A cycle's energies are those of the form its bill was built from,
  or, before a bill exists, of its latest form version. A cycle's bill is its latest version that
  is not superseded.
* **As of a date.** Amounts are as they stood at the end of ``as_of`` (local date): a bill counts
  once issued by then, late-fee lines once accrued by then (their accrual key, the last day they
  cover, is before ``as_of``), payments once paid by then (never more than the bill has applied
  in all, since what is paid beyond the bill is the owner's credit). Account credit is applied at
  issue. The state column is the bill's state today. A write-off is not dated, so a written-off
  bill's remainder is shown as written off at any date, never as arrears.
* **Collection rate.** (paid + credit applied) ÷ billed, rounded half up to 4 decimals, as a
  decimal string; empty when nothing is billed. Credit applied is money the owner paid earlier
  (an overpayment), so it counts as collected.
* **Aging.** days past due = ``as_of`` − due date. What is owed on a bill not past due (≤ 0 days:
  the late fee also starts the day after the due date) is "not yet due"; the rest falls in one of
  the buckets 0–30 (1 to 30 days), 31–90, 91–180 and over 180 days.
* **Nearby consumption.** Per project with :class:`~settlement.models.NearbyConsumptionTerms` in
  force on the month's last day (the latest version by then), for the month ``YYYY-MM``:
  monthly capacity charge = capacity charge under current policy + T&D price × average load
  rate × 730 h × grid-connection capacity; system operation fee and wire-loss cost on the
  grid-drawn kWh of the cycle's final (confirmed or auto-confirmed) form. Without a final form
  the kWh and the fees on them are left empty, never guessed. The fees are
  :func:`settlement.billing.nearby.nearby_fees`' — the same the bills of projects whose owner
  bears them carry — as published, VAT included; billing_engine.capacity does the arithmetic and
  the rounding (each amount once, half up, to fen).
* **Money** is integer fen throughout; files show 元 with 2 decimals made from the fen exactly
  (:func:`settlement.money_text.format_yuan`, :func:`settlement.money_text.yuan`).
"""

from __future__ import annotations

import csv
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from billing_engine import capacity
from settlement.cycles.runs import parse_period
from settlement.billing.ebill import BILL_STATE, FORM_STATE
from settlement.billing.nearby import nearby_fees, terms_in_force
from settlement.models import (
    Bill,
    BillLine,
    BillState,
    ConfirmationForm,
    FormState,
    LineKind,
    NearbyConsumptionTerms,
    Owner,
    Payment,
    Plant,
    ReadingCycle,
)
from settlement.money_text import format_yuan, yuan
from settlement.clock import LOCAL, local_today

CHUNK = 2000  # ids per IN (...) query: SQLite allows a bounded number of parameters
RATE_PLACES = Decimal("0.0001")
KWH_PLACES = Decimal("0.001")
FINAL = (FormState.CONFIRMED, FormState.AUTO_CONFIRMED)
OPEN = (BillState.OPEN, BillState.PARTLY_PAID)
BUCKETS = ("not_due", "aging_0_30", "aging_31_90", "aging_91_180", "aging_over_180")
# text cells that a spreadsheet would run as a formula (CSV injection): kept as text
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Column:
    """One column: its key in the rows, its header in each language, how its values are written.

    ``kind`` is one of text, int, kwh [kWh, Decimal], fen [integer fen, written as 元],
    price [yuan/kWh, Decimal], decimal, rate [decimal string], date, form_state, bill_state.
    """

    key: str
    zh: str
    en: str
    kind: str = "text"


@dataclass
class Report:
    """A table for staff: header, one row per plant and cycle, and a totals row."""

    name: str
    title: dict[str, str]
    columns: tuple[Column, ...]
    rows: list[dict[str, Any]]
    totals: dict[str, Any] | None
    about: dict[str, str] = field(default_factory=dict)


CYCLE_COLUMNS = (
    Column("period", "结算月份", "period"),
    Column("plant_code", "电站编号", "plant code"),
    Column("plant_name", "电站名称", "plant"),
    Column("owner", "业主", "owner"),
    Column("form_version", "确认单版本", "form version", "int"),
    Column("form_state", "确认单状态", "form state", "form_state"),
    Column("generation_kwh", "发电量 (kWh)", "generation (kWh)", "kwh"),
    Column("self_use_kwh", "自用电量 (kWh)", "self-use (kWh)", "kwh"),
    Column("export_kwh", "上网电量 (kWh)", "export (kWh)", "kwh"),
    Column("grid_kwh", "下网电量 (kWh)", "from grid (kWh)", "kwh"),
    Column("bill_number", "账单编号", "bill number"),
    Column("bill_state", "账单状态（当前）", "bill state (now)", "bill_state"),
    Column("due_on", "缴费截止日", "due date", "date"),
    Column("billed_fen", "应收 (元)", "billed (yuan)", "fen"),
    Column("late_fee_fen", "其中违约金 (元)", "of which late fees (yuan)", "fen"),
    Column("paid_fen", "已收 (元)", "paid (yuan)", "fen"),
    Column("credit_applied_fen", "余额抵扣 (元)", "credit applied (yuan)", "fen"),
    Column("owed_fen", "欠费 (元)", "owed (yuan)", "fen"),
    Column("written_off_fen", "核销 (元)", "written off (yuan)", "fen"),
    Column("collection_rate", "收缴率", "collection rate", "rate"),
    Column("days_past_due", "逾期天数", "days past due", "int"),
    Column("not_due", "未到期 (元)", "not yet due (yuan)", "fen"),
    Column("aging_0_30", "逾期 0–30 天 (元)", "0-30 days (yuan)", "fen"),
    Column("aging_31_90", "逾期 31–90 天 (元)", "31-90 days (yuan)", "fen"),
    Column("aging_91_180", "逾期 91–180 天 (元)", "91-180 days (yuan)", "fen"),
    Column("aging_over_180", "逾期 180 天以上 (元)", "over 180 days (yuan)", "fen"),
)

NEARBY_COLUMNS = (
    Column("period", "月份", "month"),
    Column("plant_code", "项目编号", "project code"),
    Column("plant_name", "项目名称", "project"),
    Column("owner", "用电方", "owner"),
    Column("terms_from", "参数生效日", "terms effective from", "date"),
    Column("voltage_level", "电压等级", "voltage level"),
    Column("connection_kva", "接网容量 (kVA)", "grid-connection capacity (kVA)", "decimal"),
    Column("td_price", "输配电价 (元/kWh)", "T&D price (yuan/kWh)", "price"),
    Column("average_load_rate", "平均负荷率", "average load rate", "decimal"),
    Column("hours", "月小时数 (h)", "hours per month (h)", "int"),
    Column("current_capacity_fen", "现行容量电费 (元)", "capacity charge, current policy (yuan)", "fen"),
    Column("capacity_added_fen", "按负荷率折算容量电费 (元)", "T&D x load rate x 730 h x capacity (yuan)", "fen"),
    Column("capacity_fen", "月容量电费 (元)", "monthly capacity charge (yuan)", "fen"),
    Column("grid_kwh", "下网电量 (kWh)", "grid-drawn (kWh)", "kwh"),
    Column("system_operation_fee", "系统运行费单价 (元/kWh)", "system operation fee (yuan/kWh)", "price"),
    Column("system_operation_fen", "系统运行费 (元)", "system operation fee (yuan)", "fen"),
    Column("wire_loss_price", "线损折价 (元/kWh)", "wire-loss price (yuan/kWh)", "price"),
    Column("wire_loss_fen", "线损费用 (元)", "wire-loss cost (yuan)", "fen"),
    Column("total_fen", "合计 (元)", "total (yuan)", "fen"),
    Column("form_state", "确认单状态", "form state", "form_state"),
    Column("generation_kwh", "发电量 (kWh)", "generation (kWh)", "kwh"),
    Column("self_use_kwh", "自用电量 (kWh)", "self-use (kWh)", "kwh"),
    Column("self_use_of_generation", "自发自用占发电量比例", "self-use / generation", "rate"),
    Column("self_use_of_consumption", "自发自用占用电量比例", "self-use / consumption", "rate"),
    Column("meets_thresholds", "本月达到就近消纳比例要求", "meets the thresholds this month"),
)


# --- small exact helpers ----------------------------------------------------------------------


def ratio(numer: int | Decimal, denom: int | Decimal) -> str | None:
    """``numer / denom`` rounded half up to 4 decimals, as a decimal string; None when denom is 0."""
    if not denom:
        return None
    return str((Decimal(numer) / Decimal(denom)).quantize(RATE_PLACES, rounding=ROUND_HALF_UP))


def aging_bucket(days_past_due: int) -> str:
    """The aging column of an amount ``days_past_due`` days past its due date (≤ 0: not yet due)."""
    if days_past_due <= 0:
        return "not_due"
    if days_past_due <= 30:
        return "aging_0_30"
    if days_past_due <= 90:
        return "aging_31_90"
    if days_past_due <= 180:
        return "aging_91_180"
    return "aging_over_180"


def _chunks(ids: Sequence[int]) -> Iterable[list[int]]:
    for first in range(0, len(ids), CHUNK):
        yield list(ids[first:first + CHUNK])


def _local_day(when: dt.datetime) -> dt.date:
    return when.astimezone(LOCAL).date()


# --- the cycle report --------------------------------------------------------------------------


async def cycle_report(period: str | None = None, *, plant_code: str | None = None,
                       as_of: dt.date | None = None) -> Report:
    """Energy, amounts, collection rate and arrears aging per plant and cycle.

    Parameters
    ----------
    period : str, optional
        ``YYYY-MM``: the cycles of that period. With only ``plant_code``: every cycle of the plant.
    plant_code : str, optional
        One plant.
    as_of : date, optional
        Local date the amounts and the aging are taken at; today in Asia/Shanghai by default.

    Returns
    -------
    Report
        Rows ordered by plant code and period; energies [kWh] as Decimal, amounts [fen] as int.
    """
    if period is None and plant_code is None:
        raise ValueError("a cycle report needs a period, a plant or both")
    if period is not None:
        parse_period(period)
    as_of = as_of or local_today()
    query = ReadingCycle.all()
    if period is not None:
        query = query.filter(period=period)
    if plant_code is not None:
        query = query.filter(plant__code=plant_code)
    cycles = await query.values("id", "period", "plant_id")
    plants = await _plants([c["plant_id"] for c in cycles])
    cycle_ids = [c["id"] for c in cycles]

    forms, latest_form, bills = await _forms_and_bills(cycle_ids)
    lines, paid_by = await _lines_and_payments([b["id"] for b in bills.values()], as_of)
    rows = []
    for c in cycles:
        bill = bills.get(c["id"])
        form = forms.get(bill["form_id"]) if bill else latest_form.get(c["id"])
        rows.append(_cycle_row(c, plants[c["plant_id"]], form, bill, lines, paid_by, as_of))
    rows.sort(key=lambda r: (r["plant_code"], r["period"]))
    return Report(name="cycle", title={"zh": "抄表周期报表", "en": "Cycle report"}, columns=CYCLE_COLUMNS,
                  rows=rows, totals=_cycle_totals(rows),
                  about={"period": period or "", "plant": plant_code or "", "as_of": as_of.isoformat()})


async def _forms_and_bills(cycle_ids: list[int]) -> tuple[dict[int, dict], dict[int, dict], dict[int, dict]]:
    """The cycles' forms by id, each cycle's latest form version, and its latest bill that is not superseded."""
    forms: dict[int, dict] = {}  # id → form
    latest_form: dict[int, dict] = {}  # cycle id → its latest form version
    bills: dict[int, dict] = {}  # cycle id → its latest bill that is not superseded
    for chunk in _chunks(cycle_ids):
        for f in await ConfirmationForm.filter(cycle_id__in=chunk).values(
                "id", "cycle_id", "version", "state", "generation_kwh", "self_use_kwh", "export_kwh", "grid_kwh"):
            forms[f["id"]] = f
            if f["cycle_id"] not in latest_form or f["version"] > latest_form[f["cycle_id"]]["version"]:
                latest_form[f["cycle_id"]] = f
        for b in await Bill.filter(cycle_id__in=chunk).exclude(state=BillState.SUPERSEDED).values(
                "id", "cycle_id", "version", "number", "form_id", "state", "issued_at", "due_on",
                "paid_fen", "credit_applied_fen"):
            if b["cycle_id"] not in bills or b["version"] > bills[b["cycle_id"]]["version"]:
                bills[b["cycle_id"]] = b
    return forms, latest_form, bills


async def _lines_and_payments(bill_ids: list[int],
                              as_of: dt.date) -> tuple[dict[int, list[tuple]], dict[int, int]]:
    """Each bill's lines (kind, amount [fen], accrual key) and what was paid on it by ``as_of`` [fen]."""
    lines: dict[int, list[tuple]] = defaultdict(list)
    paid_by: dict[int, int] = defaultdict(int)
    for chunk in _chunks(bill_ids):
        for bill_id, kind, amount, key in await BillLine.filter(bill_id__in=chunk).values_list(
                "bill_id", "kind", "amount_fen", "accrual_key"):
            lines[bill_id].append((kind, int(amount), key))
        for bill_id, amount, paid_at in await Payment.filter(bill_id__in=chunk).values_list(
                "bill_id", "amount_fen", "paid_at"):
            if _local_day(paid_at) <= as_of:
                paid_by[bill_id] += int(amount)
    return lines, paid_by


def _cycle_row(cycle: dict, plant: dict, form: dict | None, bill: dict | None, lines: dict[int, list[tuple]],
               paid_by: dict[int, int], as_of: dt.date) -> dict[str, Any]:
    """One cycle's report row: the form's energies, and the bill's figures once it is issued by ``as_of``."""
    row: dict[str, Any] = dict.fromkeys(column.key for column in CYCLE_COLUMNS)  # None: nothing to show
    row.update(period=cycle["period"], plant_code=plant["code"], plant_name=plant["name"], owner=plant["owner"])
    if form is not None:
        row.update(form_version=form["version"], form_state=form["state"],
                   generation_kwh=Decimal(form["generation_kwh"]), self_use_kwh=Decimal(form["self_use_kwh"]),
                   export_kwh=Decimal(form["export_kwh"]), grid_kwh=Decimal(form["grid_kwh"]))
    if bill is not None and _local_day(bill["issued_at"]) <= as_of:
        row.update(_bill_figures(bill, lines[bill["id"]], paid_by[bill["id"]], as_of))
    elif bill is not None:
        row.update(bill_number=bill["number"], bill_state=bill["state"], due_on=bill["due_on"])
    return row


def _bill_figures(bill: dict, lines: list[tuple], payments: int, as_of: dt.date) -> dict[str, Any]:
    # a late-fee line keyed D covers the days through D and is written on D + 1
    late = sum(amount for kind, amount, key in lines
               if kind == LineKind.LATE_FEE and (key is None or key < as_of.isoformat()))
    billed = sum(amount for kind, amount, _ in lines if kind != LineKind.LATE_FEE) + late
    credit = int(bill["credit_applied_fen"])
    paid = min(payments, int(bill["paid_fen"]))
    rest = max(billed - paid - credit, 0)
    written_off = bill["state"] == BillState.WRITTEN_OFF
    owed = 0 if written_off else rest
    days = (as_of - bill["due_on"]).days
    figures: dict[str, Any] = {
        "bill_number": bill["number"], "bill_state": bill["state"], "due_on": bill["due_on"], "billed_fen": billed,
        "late_fee_fen": late, "paid_fen": paid, "credit_applied_fen": credit, "owed_fen": owed,
        "written_off_fen": rest if written_off else 0, "collection_rate": ratio(paid + credit, billed),
        "days_past_due": max(days, 0) if owed else None, **{b: 0 for b in BUCKETS}}
    if owed:
        figures[aging_bucket(days)] = owed
    return figures


def _cycle_totals(rows: list[dict]) -> dict[str, Any]:
    totals: dict[str, Any] = {"period": "合计 / total"}
    for column in CYCLE_COLUMNS:
        if column.kind in ("fen", "kwh"):
            values = [r[column.key] for r in rows if r.get(column.key) is not None]
            totals[column.key] = sum(values, Decimal(0) if column.kind == "kwh" else 0)
    totals["collection_rate"] = ratio(totals["paid_fen"] + totals["credit_applied_fen"], totals["billed_fen"])
    return totals


async def _plants(ids: Iterable[int]) -> dict[int, dict]:
    ids = sorted(set(ids))
    plants: dict[int, dict] = {}
    for chunk in _chunks(ids):
        for p in await Plant.filter(id__in=chunk).values("id", "code", "name", "owner_id", "commissioned_on"):
            plants[p["id"]] = p
    owners: dict[int, str] = {}
    for chunk in _chunks(sorted({p["owner_id"] for p in plants.values()})):
        owners.update(await Owner.filter(id__in=chunk).values_list("id", "name"))
    for p in plants.values():
        p["owner"] = owners.get(p["owner_id"], "")
    return plants


# --- the nearby-consumption monthly fee report --------------------------------------------------


async def nearby_report(period: str) -> Report:
    """The monthly fees of every nearby-consumption project for month ``period`` (``YYYY-MM``).

    Returns
    -------
    Report
        One row per project with terms in force; capacity charge, system operation fee and
        wire-loss cost [fen], grid-drawn energy [kWh].
    """
    terms = await terms_in_force(period)
    plants = await _plants(terms)
    cycles = dict(await ReadingCycle.filter(period=period, plant_id__in=list(terms)).values_list("plant_id", "id")) \
        if terms else {}
    final: dict[int, dict] = {}  # cycle id → its final form
    latest: dict[int, dict] = {}
    for chunk in _chunks(sorted(cycles.values())):
        for f in await ConfirmationForm.filter(cycle_id__in=chunk).values(
                "cycle_id", "version", "state", "generation_kwh", "self_use_kwh", "grid_kwh"):
            if f["cycle_id"] not in latest or f["version"] > latest[f["cycle_id"]]["version"]:
                latest[f["cycle_id"]] = f
            if f["state"] in FINAL and (f["cycle_id"] not in final or f["version"] > final[f["cycle_id"]]["version"]):
                final[f["cycle_id"]] = f
    rows = []
    for plant_id, t in terms.items():
        plant = plants[plant_id]
        cycle_id = cycles.get(plant_id)
        form = final.get(cycle_id) if cycle_id else None
        shown = form or (latest.get(cycle_id) if cycle_id else None)
        rows.append(_nearby_row(period, plant, t, form, shown))
    rows.sort(key=lambda r: r["plant_code"])
    totals: dict[str, Any] = {"period": "合计 / total"}
    for key in ("current_capacity_fen", "capacity_added_fen", "capacity_fen", "system_operation_fen",
                "wire_loss_fen", "total_fen"):
        totals[key] = sum(r[key] for r in rows if r[key] is not None)
    totals["grid_kwh"] = sum((r["grid_kwh"] for r in rows if r["grid_kwh"] is not None), Decimal(0))
    return Report(name="nearby", title={"zh": "就近消纳项目月度费用", "en": "Nearby-consumption monthly fees"},
                  columns=NEARBY_COLUMNS, rows=rows, totals=totals,
                  about={"period": period, "hours": str(capacity.HOURS_PER_MONTH)})


def _nearby_row(period: str, plant: dict, t: NearbyConsumptionTerms, form: dict | None,
                shown: dict | None) -> dict[str, Any]:
    # no confirmed kWh yet: the per-kWh fees stay empty rather than guessed
    fees = nearby_fees(t, None if form is None else Decimal(form["grid_kwh"]))
    row: dict[str, Any] = {
        "period": period, "plant_code": plant["code"], "plant_name": plant["name"], "owner": plant["owner"],
        "terms_from": t.effective_from, "voltage_level": t.voltage_level,
        "connection_kva": Decimal(t.connection_kva), "td_price": Decimal(t.td_price),
        "average_load_rate": Decimal(t.average_load_rate), "hours": capacity.HOURS_PER_MONTH,
        "current_capacity_fen": fees.current_capacity_fen, "capacity_added_fen": fees.capacity_added_fen,
        "capacity_fen": fees.capacity_fen,
        "grid_kwh": None, "system_operation_fee": Decimal(t.system_operation_fee), "system_operation_fen": None,
        "wire_loss_price": Decimal(t.wire_loss_price), "wire_loss_fen": None, "total_fen": None,
        "form_state": shown["state"] if shown else None, "generation_kwh": None, "self_use_kwh": None,
        "self_use_of_generation": None, "self_use_of_consumption": None, "meets_thresholds": None,
    }
    if form is None:
        return row
    grid = Decimal(form["grid_kwh"])
    generation, self_use = Decimal(form["generation_kwh"]), Decimal(form["self_use_kwh"])
    commissioned = plant.get("commissioned_on")
    eligible = bool(capacity.nearby_eligible(
        [float(self_use)], [float(generation)], [float(self_use + grid)],
        from_2030=[commissioned is not None and commissioned.year >= 2030])[0])
    row.update(grid_kwh=grid, system_operation_fen=fees.system_operation_fen, wire_loss_fen=fees.wire_loss_fen,
               total_fen=fees.total_fen, generation_kwh=generation, self_use_kwh=self_use,
               self_use_of_generation=ratio(self_use, generation),
               self_use_of_consumption=ratio(self_use, self_use + grid),
               meets_thresholds="yes" if eligible else "no")
    return row


# --- writing -------------------------------------------------------------------------------------

YES_NO = {"zh": {"yes": "是", "no": "否"}, "en": {"yes": "yes", "no": "no"}}


def _text(value: Any, column: Column, lang: str) -> str:
    """A value as CSV text; free text that a spreadsheet would take for a formula gets a quote."""
    text = _plain_text(value, column, lang)
    return "'" + text if column.kind == "text" and text.startswith(FORMULA_START) else text


def _plain_text(value: Any, column: Column, lang: str) -> str:
    if value is None:
        return ""
    kind = column.kind
    if kind == "fen":
        return format_yuan(value, grouping=False)
    if kind == "kwh":
        return format(Decimal(value).quantize(KWH_PLACES), "f")
    if kind in ("price", "decimal"):
        return format(Decimal(value).normalize(), "f")
    if kind == "date":
        return value.isoformat()
    if kind == "form_state":
        return FORM_STATE[lang].get(value, str(value))
    if kind == "bill_state":
        return BILL_STATE[lang].get(value, str(value))
    if column.key == "meets_thresholds":
        return YES_NO[lang][value]
    return str(value)


def _header(report: Report, lang: str) -> list[str]:
    return [getattr(column, lang) for column in report.columns]


def write_csv(report: Report, path: str | Path, *, lang: str = "zh") -> int:
    """Write ``report`` as CSV, UTF-8 with a BOM; returns the number of data rows (not header or totals)."""
    with open(path, "w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(_header(report, lang))
        for row in report.rows:
            writer.writerow([_text(row.get(c.key), c, lang) for c in report.columns])
        if report.totals is not None:
            writer.writerow([_text(report.totals.get(c.key), c, lang) for c in report.columns])
    return len(report.rows)


XLSX_FORMAT = {"fen": "#,##0.00", "kwh": "#,##0.000", "price": "0.000000", "rate": "0.0000", "date": "yyyy-mm-dd",
               "decimal": "General", "int": "0"}


def _cell_value(value: Any, column: Column, lang: str) -> Any:
    if value is None:
        return None
    kind = column.kind
    if kind == "fen":
        return yuan(value)  # exact 元 from fen; Excel shows it with 2 decimals
    if kind == "kwh":
        return Decimal(value).quantize(KWH_PLACES)
    if kind in ("price", "decimal", "rate"):
        return Decimal(value)
    if kind in ("date", "int"):
        return value
    return _plain_text(value, column, lang)  # text cells are typed as text below


def write_xlsx(report: Report, path: str | Path, *, lang: str = "zh") -> int:
    """Write ``report`` as an XLSX workbook; returns the number of data rows (not header or totals).

    Money is a number of 元 with two decimals made exactly from the fen; text cells are stored as
    text, so a name that starts with ``=`` is never run as a formula.
    """
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = report.name
    sheet.append(_header(report, lang))
    bold = Font(bold=True)
    for cell in sheet[1]:
        cell.font = bold
    body = list(report.rows) + ([report.totals] if report.totals is not None else [])
    for r, row in enumerate(body, start=2):
        for c, column in enumerate(report.columns, start=1):
            value = _cell_value(row.get(column.key), column, lang)
            cell = sheet.cell(row=r, column=c)
            cell.value = value
            if isinstance(value, str):
                cell.data_type = "s"  # never a formula, whatever the text starts with
            elif column.kind in XLSX_FORMAT:
                cell.number_format = XLSX_FORMAT[column.kind]
            if report.totals is not None and r == len(body) + 1:
                cell.font = bold
    for c, column in enumerate(report.columns, start=1):
        sheet.column_dimensions[get_column_letter(c)].width = max(10, min(28, len(getattr(column, lang)) * 2 + 2))
    sheet.freeze_panes = "A2"
    about = workbook.create_sheet("about")
    about.append(["report", report.title[lang]])
    for key, value in report.about.items():
        about.append([key, value])
    workbook.properties.title = report.title[lang]
    workbook.save(path)
    return len(report.rows)


WRITERS = {"csv": write_csv, "xlsx": write_xlsx}


def write_report(report: Report, path: str | Path, fmt: str, *, lang: str = "zh") -> int:
    """Write ``report`` in format ``csv`` or ``xlsx``; returns the number of data rows."""
    try:
        writer = WRITERS[fmt]
    except KeyError:
        raise ValueError(f"unknown report format {fmt!r}") from None
    return writer(report, path, lang=lang)
