"""`pvsettle bench api` runs end to end and prints the keys issue 5 names (a smoke run, not a measurement)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.conftest import DATABASE_URL, REDIS_URL
from tests.e2e.processes import PVSETTLE


@pytest.mark.slow
@pytest.mark.skipif(not REDIS_URL, reason="serve --workers 2 needs a real Redis (PVSETTLE_REDIS_URL)")
def test_bench_api_prints_its_json(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVSETTLE_")}
    env.update(PVSETTLE_REDIS_URL=REDIS_URL, PVSETTLE_DATABASE_URL=DATABASE_URL or f"sqlite://{tmp_path}/x.sqlite3")
    done = subprocess.run([PVSETTLE, "bench", "api", "--seconds", "1", "--connections", "4"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert {"rps", "p99_ms", "hello_rps", "workers", "database"} <= set(result)
    assert result["workers"] == 2 and result["non_2xx"] == 0 and result["rps"] > 0 and result["hello_rps"] > 0
    assert result["database"] == ("postgres" if DATABASE_URL.startswith("postgres") else "sqlite")
