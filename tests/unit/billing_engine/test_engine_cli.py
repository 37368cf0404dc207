"""``python -m billing_engine bill``: the DESIGN.md JSON on success; one line and exit 2 on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
TARIFF = ROOT / "billing_engine" / "tariffs" / "jiangsu-2025.json"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "billing_engine", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def write_csv(path: Path, start: str, values: list[float], step: int = 15, header: bool = True,
              stamps: list[str] | None = None) -> Path:
    if stamps is None:
        t0 = np.datetime64(start, "m")
        stamps = [str(t0 + i * np.timedelta64(step, "m")).replace("T", " ") for i in range(len(values))]
    lines = (["timestamp,kwh"] if header else []) + [f"{t},{v}" for t, v in zip(stamps, values)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def bill_an_hour_under(tmp_path: Path, document: dict, name: str) -> tuple[Path, subprocess.CompletedProcess]:
    """``bill`` of four 1 kWh quarters of 2025-07-01 under ``document``, written to ``name``."""
    tariff = tmp_path / name
    tariff.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    csv = write_csv(tmp_path / "load.csv", "2025-07-01T00:00", [1.0] * 4)
    return tariff, run("bill", "--tariff", str(tariff), "--intervals", str(csv))


def assert_bad_input(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_happy_path_prints_exactly_the_design_shape(tmp_path: Path) -> None:
    # 1 kW from 2025-07-31 00:00 to 2025-08-01 24:00: two days, two months.
    csv = write_csv(tmp_path / "load.csv", "2025-07-31T00:00", [0.25] * 192)
    proc = run("bill", "--tariff", str(TARIFF), "--intervals", str(csv))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    out = json.loads(proc.stdout)
    assert list(out) == ["currency", "months", "total_fen"]
    assert out["currency"] == "CNY"
    assert [m["month"] for m in out["months"]] == ["2025-07", "2025-08"]
    for month in out["months"]:
        assert list(month) == ["month", "kwh", "periods", "energy_fen", "fixed_fen", "total_fen"]
        assert month["kwh"] == 24.0
        for period in month["periods"]:
            assert list(period) == ["period", "kwh", "amount_fen"]
            assert isinstance(period["period"], int) and isinstance(period["amount_fen"], int)
        assert month["energy_fen"] == sum(p["amount_fen"] for p in month["periods"])
        assert month["total_fen"] == month["energy_fen"] + month["fixed_fen"]
    # One July day by hand: sharp 3 kWh × 1.114 = 334.2 fen → 334; peak 5 × 0.97 = 485;
    # flat 8 × 0.65 = 520; valley 8 × 0.39 = 312 → 1651 fen.
    july = out["months"][0]
    assert [(p["period"], p["kwh"], p["amount_fen"]) for p in july["periods"]] == [
        (0, 3.0, 334), (1, 5.0, 485), (2, 8.0, 520), (3, 8.0, 312)]
    assert out["total_fen"] == sum(m["total_fen"] for m in out["months"]) == 2 * 1651
    assert proc.stdout.startswith('{"currency":"CNY","months":[{"month":"2025-07","kwh":24.0,')


def test_hourly_csv_without_header_and_with_utc_offsets(tmp_path: Path) -> None:
    stamps = [f"2025-07-30T{h:02d}:00:00+00:00" for h in range(16, 24)] + \
             [f"2025-07-31T{h:02d}:00:00+00:00" for h in range(0, 16)]
    csv = write_csv(tmp_path / "h.csv", "", [1.0] * 24, header=False, stamps=stamps)
    out = json.loads(run("bill", "--tariff", str(TARIFF), "--intervals", str(csv)).stdout)
    # 16:00Z on 30 July is 00:00 on 31 July in Shanghai: exactly one local day.
    assert out["months"][0]["month"] == "2025-07" and out["months"][0]["kwh"] == 24.0
    assert out["total_fen"] == 1651


def test_urdb_record_as_tariff(tmp_path: Path) -> None:
    record = {"energyratestructure": [[{"rate": 0.1}], [{"rate": 0.2}]],
              "energyweekdayschedule": [[0] * 12 + [1] * 12] * 12,
              "energyweekendschedule": [[0] * 24] * 12, "fixedchargefirstmeter": 5}
    tariff = tmp_path / "urdb.json"
    tariff.write_text(json.dumps(record), encoding="utf-8")
    csv = write_csv(tmp_path / "load.csv", "2025-01-06T00:00", [1.0] * 24, step=60)  # a Monday
    out = json.loads(run("bill", "--tariff", str(tariff), "--intervals", str(csv)).stdout)
    month = out["months"][0]
    assert month["periods"] == [{"period": 0, "kwh": 12.0, "amount_fen": 120},
                                {"period": 1, "kwh": 12.0, "amount_fen": 240}]
    # One day of 31 carries 1/31 of the 5.00 monthly charge: 16.1 → 16 fen.
    assert month["fixed_fen"] == 16 and month["total_fen"] == 376
    # a URDB record's money is its own (USD unless it says otherwise): cents, not fen of yuan
    assert out["currency"] == "USD"
    tariff.write_text(json.dumps({**record, "currency": "EUR"}), encoding="utf-8")
    assert json.loads(run("bill", "--tariff", str(tariff), "--intervals", str(csv)).stdout)["currency"] == "EUR"


def test_schedule_leaving_hours_without_a_period(tmp_path: Path) -> None:
    obj = json.loads(TARIFF.read_text(encoding="utf-8"))
    obj["versions"][0]["day_schedules"]["spring_autumn"] = [
        r for r in obj["versions"][0]["day_schedules"]["spring_autumn"] if r[0] != "02:00"]
    bad, proc = bill_an_hour_under(tmp_path, obj, "gap.json")
    assert_bad_input(proc, str(bad), "versions[0].day_schedules.spring_autumn", "02:00-06:00 has no period")


def test_negative_price(tmp_path: Path) -> None:
    obj = json.loads(TARIFF.read_text(encoding="utf-8"))
    obj["versions"][0]["prices"]["valley"] = "-0.39"
    bad, proc = bill_an_hour_under(tmp_path, obj, "neg.json")
    assert_bad_input(proc, str(bad), "versions[0].prices.valley", "≥ 0")


def test_urdb_record_with_demand_charges(tmp_path: Path) -> None:
    record = {"energyratestructure": [[{"rate": 0.1}]], "energyweekdayschedule": [[0] * 24] * 12,
              "energyweekendschedule": [[0] * 24] * 12,
              "demandratestructure": [[{"rate": 12.5}]], "demandweekdayschedule": [[0] * 24] * 12,
              "demandweekendschedule": [[0] * 24] * 12}
    bad, proc = bill_an_hour_under(tmp_path, record, "demand.json")
    assert_bad_input(proc, str(bad), "demandratestructure", "not supported")


@pytest.mark.parametrize("case, fragments", [
    ("gap", ["line 5", "gap: 1 interval(s) missing between 2025-07-01T00:30 and 2025-07-01T01:00"]),
    ("duplicate", ["line 5", "duplicate timestamp 2025-07-01T00:30"]),
    ("mixed", ["line 7", "mixed step: 30 min from 2025-07-01T01:00 to 2025-07-01T01:30"]),
    ("backwards", ["line 5", "timestamps must increase"]),
    ("bad_time", ["line 3", "timestamp: not an ISO 8601 time: 'yesterday'"]),
    ("bad_kwh", ["line 4", "kwh: not a number: 'lots'"]),
    ("negative_kwh", ["line 4", "kwh: must be a finite number ≥ 0"]),
    ("three_fields", ["line 2", "expected 2 fields"]),
    ("before_tariff", ["line 2", "before the tariff's first effective date 2025-06-01"]),
    ("empty", ["no intervals"]),
])
def test_bad_interval_files(tmp_path: Path, case: str, fragments: list[str]) -> None:
    t = [f"2025-07-01 {h:02d}:{m:02d}" for h in range(3) for m in (0, 15, 30, 45)]
    rows = {
        "gap": t[:3] + t[4:8],
        "duplicate": t[:3] + [t[2]] + t[3:6],
        "mixed": t[:5] + [t[6], t[8], t[10]],
        "backwards": t[:3] + [t[1]] + t[4:6],
        "bad_time": t[:1] + ["yesterday"] + t[2:4],
        "bad_kwh": t[:4],
        "negative_kwh": t[:4],
        "three_fields": t[:4],
        "before_tariff": ["2025-05-31 23:30", "2025-05-31 23:45", "2025-06-01 00:00"],
        "empty": [],
    }[case]
    values = ["0.5"] * len(rows)
    if case == "bad_kwh":
        values[2] = "lots"
    if case == "negative_kwh":
        values[2] = "-1"
    lines = ["timestamp,kwh"] + [f"{a},{b}" for a, b in zip(rows, values)]
    if case == "three_fields":
        lines[1] += ",extra"
    csv = tmp_path / f"{case}.csv"
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert_bad_input(run("bill", "--tariff", str(TARIFF), "--intervals", str(csv)),
                     str(csv), *fragments)


def test_unreadable_files_and_bad_json(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "load.csv", "2025-07-01T00:00", [1.0] * 4)
    assert_bad_input(run("bill", "--tariff", str(tmp_path / "missing.json"), "--intervals", str(csv)),
                     "missing.json", "cannot read")
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "pvsettle-tariff/1",\n  "periods": [,]}', encoding="utf-8")
    assert_bad_input(run("bill", "--tariff", str(broken), "--intervals", str(csv)),
                     "broken.json: line 2 column", "invalid JSON")


def test_usage_errors_are_one_line_exit_2() -> None:
    assert_bad_input(run("bill", "--tariff", "x.json"), "--intervals")
    assert_bad_input(run("frobnicate"), "invalid choice")
