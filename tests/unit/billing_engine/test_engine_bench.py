"""The benchmark runs and reports exactly the agreed keys (speed itself is not a test)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from billing_engine import bench

KEYS = {"meter_years", "dtype", "input_bytes", "interval_seconds", "floor_seconds",
        "ratio_to_floor", "peak_mem_bytes", "register_meters", "register_seconds"}


def test_run_small() -> None:
    out = bench.run(meter_years=8, register_meters=500, dtype="float64", repeat=1)
    assert KEYS <= set(out)
    assert out["meter_years"] == 8 and out["dtype"] == "float64"
    assert out["input_bytes"] == 8 * 365 * 96 * 8
    assert out["register_meters"] == 500
    assert out["peak_mem_bytes"] >= out["input_bytes"]
    assert all(out[k] > 0 for k in ("interval_seconds", "floor_seconds", "register_seconds"))
    assert out["pysam_seconds_per_meter_year"] is not None and out["speedup_vs_pysam"] > 0


def test_cli_bench_prints_one_json_object() -> None:
    proc = subprocess.run([sys.executable, "-m", "billing_engine", "bench", "--meter-years", "4",
                           "--register-meters", "100", "--no-pysam"],
                          cwd=Path(__file__).resolve().parents[3], capture_output=True, text=True,
                          timeout=120, check=True)
    out = json.loads(proc.stdout)
    assert KEYS <= set(out) and out["dtype"] == "float32"
    assert out["pysam_seconds_per_meter_year"] is None and out["speedup_vs_pysam"] is None
