"""``pvsettle report …`` as staff run it: the installed console script, in its own process."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import subprocess
from decimal import Decimal

import openpyxl

from settlement.infra import db
from settlement import models as m
from settlement.notify.outbox import NotifyApps
from tests.e2e.processes import PVSETTLE
from tests.integration.billed_plant import walked_plant


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PVSETTLE, "report", *args], env=env, capture_output=True, text=True, timeout=120)


async def test_report_commands_write_their_files_and_refuse_bad_input(database_factory, tmp_path):
    url = await database_factory.migrated()
    await db.open_database(url)
    try:
        # the WeChat apps of the commands below, whose environment names none
        walked = await walked_plant(apps=NotifyApps("", ""))
        await m.NearbyConsumptionTerms.create(
            plant=walked["plant"], effective_from=dt.date(2026, 1, 1), voltage_level="10kV",
            td_price=Decimal("0.2"), average_load_rate=Decimal("0.5"), connection_kva=Decimal("100"),
            current_capacity_charge=Decimal("1000.00"), system_operation_fee=Decimal("0.03"),
            wire_loss_price=Decimal("0.01"))
    finally:
        await db.close_database()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVSETTLE_")}
    env["PVSETTLE_DATABASE_URL"] = url

    out = tmp_path / "cycle.csv"
    done = run(env, "cycle", "--period", "2026-10", "--as-of", "2026-11-20", "--format", "csv", "--out", str(out))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary == {
        "report": "cycle", "period": "2026-10", "format": "csv", "out": str(out), "rows": 1, "as_of": "2026-11-20",
        "totals": {"billed_fen": 765967, "late_fee_fen": 9127, "paid_fen": 300000, "credit_applied_fen": 500,
                   "owed_fen": 465467, "written_off_fen": 0, "collection_rate": "0.3923", "not_due": 0,
                   "aging_0_30": 465467, "aging_31_90": 0, "aging_91_180": 0, "aging_over_180": 0}}
    table = list(csv.reader(out.read_text(encoding="utf-8-sig").splitlines()))
    col = {name: i for i, name in enumerate(table[0])}
    assert table[1][col["电站编号"]] == "PV-E1" and table[1][col["欠费 (元)"]] == "4654.67"

    out = tmp_path / "cycle.xlsx"
    done = run(env, "cycle", "--period", "2026-10", "--format", "xlsx", "--out", str(out))
    assert done.returncode == 0, done.stderr
    sheet = openpyxl.load_workbook(out)["cycle"]
    assert sheet.max_row == 3  # header, PV-E1, totals

    out = tmp_path / "nearby.csv"
    done = run(env, "nearby", "--period", "2026-10", "--format", "csv", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["rows"] == 1
    table = list(csv.reader(out.read_text(encoding="utf-8-sig").splitlines()))
    col = {name: i for i, name in enumerate(table[0])}
    # 1000.00 + 0.2 × 0.5 × 730 × 100 = 1000.00 + 7300.00; 8000 kWh × 0.03 = 240.00; × 0.01 = 80.00
    assert [table[1][col[k]] for k in ("月容量电费 (元)", "系统运行费 (元)", "线损费用 (元)", "合计 (元)")] == \
        ["8300.00", "240.00", "80.00", "8620.00"]

    refusals = {
        ("cycle", "--period", "2026-13", "--format", "csv", "--out", str(tmp_path / "x.csv")):
            "argument --period: period must be YYYY-MM, not '2026-13'",
        ("nearby", "--period", "October", "--format", "xlsx", "--out", str(tmp_path / "x.xlsx")):
            "period must be YYYY-MM, not 'October'",
        ("cycle", "--period", "2026-10", "--as-of", "20.11.2026", "--format", "csv", "--out", str(tmp_path / "x.csv")):
            "a date is YYYY-MM-DD, not '20.11.2026'",
        ("cycle", "--period", "2026-10", "--format", "pdf", "--out", str(tmp_path / "x.pdf")):
            "invalid choice: 'pdf'",
        ("cycle", "--period", "2026-10", "--format", "csv", "--out", str(tmp_path / "no-such-folder" / "x.csv")):
            "its folder does not exist",
    }
    for args, message in refusals.items():
        done = run(env, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr and done.stdout == "", args
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "x.xlsx").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary files left
