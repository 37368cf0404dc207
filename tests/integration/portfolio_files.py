"""A 300-plant portfolio as a PV company would write it: CSV files in a folder, or one XLSX
workbook typed as Excel types it (numbers as numbers, dates as dates, booleans as booleans).

Every plant has a generation and a grid meter; every 10th a water meter, every 15th a gas
meter; every 50th had its generation meter replaced on 2026-08-15 (before the cycle 2026-10,
which runs 2026-09-01 → 2026-10-01). Contracts: grid discount on Jiangsu's 2025 TOU tariff,
every 7th a fixed price, every 11th tiered; every 25th plant is a nearby-consumption project.
A URDB record (in dollars) is among the tariffs, as a company abroad or a comparison would have it.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from decimal import Decimal
from importlib import resources
from pathlib import Path

import openpyxl

PLANTS = 300
URDB = {"utility": "Example Electric", "name": "E-TOU", "startdate": "2024-01-01",
        "energyratestructure": [[{"rate": 0.1}], [{"rate": 0.25}]],
        "energyweekdayschedule": [[0] * 16 + [1] * 5 + [0] * 3] * 12,
        "energyweekendschedule": [[0] * 24] * 12, "fixedchargefirstmeter": 10}
FIXED_PRICE = Decimal("0.4800")  # yuan/kWh, VAT included
REPLACED_AT = "2026-08-15T10:30:00+08:00"


def code(i: int) -> str:
    return f"PP{i:04d}"


def portfolio(plants: int = PLANTS) -> dict[str, list[dict]]:
    """The tables as rows of typed values (Decimal, date, bool, int, str), for ``plants`` plants."""
    staff = [{"code": "S001", "name": "财务老陈", "role": "admin", "active": True},
             {"code": "S002", "name": "运维小周", "role": "operator", "active": True},
             {"code": "S003", "name": "实习生", "role": "viewer", "active": False}]
    owners = [{"code": f"OW{k:04d}", "name": f"业主{k}有限公司", "kind": "industrial" if k % 3 else "residential",
               "phone": f"1380000{k:04d}", "tax_id": None} for k in range(1, (plants + 1) // 2 + 1)]
    jiangsu = resources.files("billing_engine").joinpath("tariffs", "jiangsu-2025.json").read_text("utf-8")
    tariffs = [{"code": "jiangsu-2025", "name": "江苏 2025 分时电价", "format": None, "file": "jiangsu-2025.json",
                "document": jiangsu},
               {"code": "example-etou", "name": None, "format": "urdb", "file": "example-etou.json",
                "document": json.dumps(URDB)}]
    count, plants, meters, replacements, contracts, nearby = plants, [], [], [], [], []
    for i in range(1, count + 1):
        plants.append({"code": code(i), "name": f"{i}号厂房屋顶", "owner": f"OW{(i + 1) // 2:04d}",
                       "capacity_kwp": Decimal(100 + i) + Decimal("0.5"), "address": f"常州市武进区{i}号",
                       "latitude": Decimal("31.810000"), "longitude": Decimal("119.970000"), "reading_day": 1,
                       "commissioned_on": dt.date(2025, 12, 1)})
        multiplier = 20 if i % 2 else 1
        generation = {"serial": f"{code(i)}-G", "plant": code(i), "kind": "generation", "multiplier": multiplier,
                      "register_digits": 6, "registers": None, "installed_on": dt.date(2025, 12, 1), "removed_on": None}
        if i % 50 == 0:
            meters.append({**generation, "removed_on": dt.date(2026, 8, 15)})
            generation = {**generation, "serial": f"{code(i)}-G2", "installed_on": dt.date(2026, 8, 15)}
            replacements.append({"old_meter": f"{code(i)}-G", "new_meter": f"{code(i)}-G2", "replaced_at": REPLACED_AT,
                                 "final_readings": "00010000=800.5 00010100=0 00010200=400.5 00010300=250 00010400=150",
                                 "first_readings": "00010000=0 00010100=0 00010200=0 00010300=0 00010400=0"})
        meters.append(generation)
        meters.append({"serial": f"{code(i)}-N", "plant": code(i), "kind": "grid", "multiplier": multiplier,
                       "register_digits": 6, "registers": None, "installed_on": dt.date(2025, 12, 1), "removed_on": None})
        if i % 10 == 0:
            meters.append({"serial": f"{code(i)}-W", "plant": code(i), "kind": "water", "multiplier": 1,
                           "register_digits": 8, "registers": "901F", "installed_on": dt.date(2025, 12, 1),
                           "removed_on": None})
        if i % 15 == 0:
            meters.append({"serial": f"{code(i)}-Q", "plant": code(i), "kind": "gas", "multiplier": 1,
                           "register_digits": 8, "registers": "901F", "installed_on": dt.date(2025, 12, 1),
                           "removed_on": None})
        contract = {"plant": code(i), "effective_from": dt.date(2025, 12, 1), "tariff": "jiangsu-2025",
                    "pricing_model": "grid_discount", "discount": Decimal("0.8500"), "floor_price": None,
                    "cap_price": None, "fixed_price": None, "tiers": None, "vat_rate": Decimal("0.1300"),
                    "prices_include_vat": True, "due_days": 15, "late_fee_rate": Decimal("0.00200"),
                    "late_fee_rate_cross_year": Decimal("0.00300"), "auto_confirm_days": 7,
                    "allow_partial_payment": True, "share_export": False, "owner_bears_nearby_fees": False}
        if i % 7 == 0:
            contract.update(pricing_model="fixed_price", discount=None, fixed_price=FIXED_PRICE)
        elif i % 11 == 0:
            contract.update(pricing_model="tiered", discount=None,
                            tiers=json.dumps([[1000, "0.5000"], [None, "0.4500"]]))
        contracts.append(contract)
        if i % 25 == 0:
            nearby.append({"plant": code(i), "effective_from": dt.date(2026, 1, 1), "voltage_level": "10kV",
                           "td_price": Decimal("0.162300"), "average_load_rate": Decimal("0.450000"),
                           "connection_kva": Decimal("800.000"), "current_capacity_charge": Decimal("12000.00"),
                           "system_operation_fee": Decimal("0.015000"), "wire_loss_price": Decimal("0.008000")})
    return {"staff": staff, "owners": owners, "tariffs": tariffs, "plants": plants, "meters": meters,
            "meter_replacements": replacements, "contracts": contracts, "nearby_terms": nearby}


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"  # as Excel writes a boolean into CSV
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def write_csv(folder: Path, tables: dict[str, list[dict]] | None = None) -> Path:
    """The tables as ``<name>.csv`` (UTF-8 with BOM, as Excel saves "CSV UTF-8"), tariffs as files."""
    tables = tables or portfolio()
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        if not rows:
            continue  # a table with nothing to say is left out (an import does not touch it)
        if name == "tariffs":
            for row in rows:
                (folder / row["file"]).write_text(row["document"], "utf-8")
            rows = [{k: v for k, v in row.items() if k != "document"} for row in rows]
        with (folder / f"{name}.csv").open("w", encoding="utf-8-sig", newline="") as f:
            columns = list(rows[0])
            writer = csv.DictWriter(f, columns)
            writer.writeheader()
            writer.writerows({k: _text(v) for k, v in row.items()} for row in rows)
    return folder


def write_xlsx(path: Path, tables: dict[str, list[dict]] | None = None) -> Path:
    """The tables as sheets, each cell typed as Excel would type it; tariffs inline."""
    tables = tables or portfolio()
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in tables.items():
        if not rows:
            continue
        if name == "tariffs":
            rows = [{k: v for k, v in row.items() if k != "file"} for row in rows]
        sheet = book.create_sheet(name)
        columns = list(rows[0])
        sheet.append(columns)
        for row in rows:
            sheet.append([float(v) if isinstance(v, Decimal) else v for v in (row[c] for c in columns)])
    book.save(path)
    return path
