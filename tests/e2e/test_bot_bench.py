"""`pvsettle bench bot` runs end to end and prints the keys issue 7 names (a smoke run, not a measurement)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.conftest import DATABASE_URL, REDIS_URL
from tests.e2e.processes import PVSETTLE


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["plaintext", "safe"])
def test_bench_bot_prints_its_json(tmp_path, mode: str):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVSETTLE_")}
    env.update(PVSETTLE_REDIS_URL=REDIS_URL, PVSETTLE_DATABASE_URL=DATABASE_URL or f"sqlite://{tmp_path}/x.sqlite3")
    args = [PVSETTLE, "bench", "bot", "--messages", "20", "--owners", "3"] + (["--safe"] if mode == "safe" else [])
    done = subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert {"messages", "p50_ms", "p99_ms", "database"} <= set(result)
    assert result["messages"] == 20 and result["mode"] == mode
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert set(result["p99_ms_by_command"]) == {"发电", "账单", "缴费", "帮助", "发电 <plant>"}
    assert result["database"] == ("postgres" if DATABASE_URL.startswith("postgres") else "sqlite")
    assert result["redis"] == ("redis" if REDIS_URL else "emulated")
    # hostile requests: refused by the protocol layer, or answered harmlessly, and nothing changed
    statuses = {kind: set(h["statuses"]) for kind, h in result["hostile"].items()}
    assert statuses == {"billion_laughs": {"400"}, "external_entity": {"400"}, "oversize_body": {"413"},
                        "bad_signature": {"403"}, "stale_timestamp": {"403"}, "replayed_message": {"200"},
                        "staff_command_from_owner": {"200"}, "sql_in_argument": {"200"},
                        "format_string_in_argument": {"200"}}
    assert result["hostile_changed_anything"] is False
