"""``pvsettle payments import`` and ``pvsettle bench pay`` as an operator runs them: the installed
console script in its own process."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess

import pytest

from settlement import models as m
from tests.e2e.processes import PVSETTLE
from tests.integration.pay_support import open_bill

pytestmark = pytest.mark.slow


def _env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVSETTLE_")}
    env["PVSETTLE_DATABASE_URL"] = database_url
    return env


async def test_payments_import_as_a_process(db, tmp_path):
    world = await open_bill(10000)
    good = tmp_path / "bank.csv"
    good.write_text("bill,amount_fen,channel,reference,paid_at\n"
                    f"{world['bill'].number},10000,bank_transfer,ICBC-9,2026-10-20 10:00\n"
                    "NOPE,1,counter,C-1,2026-10-20\n", encoding="utf-8")
    proc = await asyncio.to_thread(subprocess.run, [PVSETTLE, "payments", "import", str(good)], env=_env(db.database_url),
                                   cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"file": str(good), "rows": 2, "recorded": 1, "duplicates": 0, "rejected": 1}
    refused = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    assert [(r["place"], r["error"]["code"]) for r in refused] == [("line 3", "unknown_bill")]
    assert (await m.Bill.get(id=world["bill"].id)).state == m.BillState.PAID

    bad = tmp_path / "bad.csv"
    bad.write_text("who,what\nx,y\n")
    proc = await asyncio.to_thread(subprocess.run, [PVSETTLE, "payments", "import", str(bad)], env=_env(db.database_url),
                                   cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "line 1" in proc.stderr
    assert await m.Payment.all().count() == 1


async def test_payments_import_refuses_a_far_overpayment_unless_allow_overpayment(db, tmp_path):
    world = await open_bill(4_574_037)
    path = tmp_path / "bank.csv"
    path.write_text("bill,amount_fen,channel,reference,paid_at\n"
                    f"{world['bill'].number},999999999,bank_transfer,ICBC-10,2026-10-20 10:00\n", encoding="utf-8")

    async def run(*extra: str) -> subprocess.CompletedProcess:
        return await asyncio.to_thread(subprocess.run, [PVSETTLE, "payments", "import", str(path), *extra],
                                       env=_env(db.database_url), cwd=tmp_path, capture_output=True, text=True,
                                       timeout=120)

    proc = await run()
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["rejected"] == 1
    [refused] = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    assert refused["error"]["code"] == "overpayment"
    assert await m.Payment.all().count() == 0
    proc = await run("--allow-overpayment")
    assert proc.returncode == 0 and json.loads(proc.stdout)["recorded"] == 1, proc.stderr
    assert (await m.Payment.get()).amount_fen == 999_999_999


def test_bench_pay_runs_and_reports_what_it_measured(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PVSETTLE_REDIS_URL",)}
    proc = subprocess.run([PVSETTLE, "bench", "pay", "--seconds", "2", "--max-rate", "100", "--concurrency", "4"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert {"notifications", "rate_per_s", "p99_ms", "database"} <= set(result)
    assert result["notifications"] > 0 and result["failed"] == 0 and result["rate_per_s"] > 0
    # every notification answered 204 is one payment (the bench checks it and fails otherwise)
    assert result["payments_recorded"] >= result["notifications"]
