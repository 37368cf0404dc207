"""``pvsettle collector add``, ``pvsettle readings import`` and ``readings conflicts`` as an operator
runs them: the installed console script in its own process, on this test's database."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import os
import subprocess
from collections.abc import Awaitable, Callable
from decimal import Decimal

import pytest

from settlement import models as m
from tests.e2e.processes import PVSETTLE
from tests.integration.test_readings_ingest import EXPORT, TOTAL, make_meters
from settlement.clock import LOCAL, UTC

pytestmark = pytest.mark.slow


Cli = Callable[..., Awaitable[subprocess.CompletedProcess]]


@pytest.fixture
def cli(db, tmp_path) -> Cli:
    """Run ``pvsettle ARGS…`` on this test's database (the ORM stays connected in this process)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVSETTLE_")}
    env["PVSETTLE_DATABASE_URL"] = db.database_url

    async def run(*args: str) -> subprocess.CompletedProcess:
        return await asyncio.to_thread(subprocess.run, [PVSETTLE, *args], env=env, cwd=tmp_path,
                                       capture_output=True, text=True, timeout=120)

    return run


@pytest.fixture
async def meters(db):
    return await make_meters()


def rejected_lines(proc: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in proc.stderr.splitlines()]


async def test_collector_add_prints_the_key_once_and_keeps_only_its_hash(cli):
    proc = await cli("collector", "add", "head-end-1")
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    assert printed["collector"] == "head-end-1" and len(printed["key"]) >= 43
    collector = await m.Collector.get(name="head-end-1")
    assert collector.key_sha256 == hashlib.sha256(printed["key"].encode()).hexdigest() and collector.active
    event = await m.AuditEvent.get(action="AddCollector")
    assert event.after == {"name": "head-end-1"}  # the key is nowhere but in the output

    again = await cli("collector", "add", "head-end-1")
    assert again.returncode == 1 and again.stdout == ""
    assert again.stderr.strip() == "pvsettle collector add: a collector named 'head-end-1' exists"
    assert await m.Collector.all().count() == 1


async def test_import_keeps_good_rows_reports_bad_ones_and_is_idempotent(cli, meters, tmp_path):
    csv_file = tmp_path / "readings.csv"
    # a BOM and the columns in another order, as spreadsheets write them
    csv_file.write_text(
        "\ufeffread_at,meter,value,register\n"
        "2026-08-01 00:00,M1,1000.00,00010000\n"  # naive: Asia/Shanghai
        "2026-09-01T00:00:00+08:00,M1,1100.50,00010000\n"
        "2026-08-01 00:00,M1,12.3,00020000\n"
        "\n"
        "2026-08-01 00:00,NOPE,1,00010000\n"  # line 6: unknown meter
        "2026-10-01 00:00,M1,1050,00010000\n"  # line 7: below the reading before it
        "2026-13-45,M1,1,00010000\n"  # line 8
        "2099-01-01 00:00,M1,99999,00010000\n"  # line 9: in the future
        '"2026-08-01 00:00","C012; DROP TABLE reading",1,00010000\n'  # line 10
        "2026-08-01 00:00,M1,123.4567891234,00010100\n",  # line 11
        encoding="utf-8")
    proc = await cli("readings", "import", str(csv_file))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"file": str(csv_file), "rows": 9, "created": 3, "duplicates": 0,
                                       "rejected": 6, "flagged": 0}
    rejected = rejected_lines(proc)
    assert [(r["line"], r["meter"], r["error"]["code"]) for r in rejected] == [
        (6, "NOPE", "unknown_meter"), (7, "M1", "reading_decreased"), (8, "M1", "invalid_field"),
        (9, "M1", "reading_in_future"), (10, "C012; DROP TABLE reading", "unknown_meter"),
        (11, "M1", "too_many_decimals")]
    assert rejected[2]["error"]["message"] == "line 8: field 'read_at' '2026-13-45' is not an ISO 8601 time"
    assert rejected[1]["read_at"] == "2026-10-01 00:00" and rejected[1]["value"] == "1050"

    readings = await m.Reading.filter(meter__serial="M1").order_by("register", "read_at")
    assert [(r.register, r.read_at, r.value, r.source) for r in readings] == [
        (TOTAL, dt.datetime(2026, 7, 31, 16, tzinfo=UTC), Decimal("1000.0000"), m.ReadingSource.IMPORTED),
        (TOTAL, dt.datetime(2026, 8, 31, 16, tzinfo=UTC), Decimal("1100.5000"), m.ReadingSource.IMPORTED),
        (EXPORT, dt.datetime(2026, 7, 31, 16, tzinfo=UTC), Decimal("12.3000"), m.ReadingSource.IMPORTED)]
    [conflict] = await m.ReadingConflict.all()
    assert (conflict.code, conflict.received_from, conflict.source) == (
        "reading_decreased", "import:readings.csv", "imported")
    assert (await m.AuditEvent.get(action="IngestReadings")).actor == "import:readings.csv"

    again = await cli("readings", "import", str(csv_file), "--source", "ami")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == {"file": str(csv_file), "rows": 9, "created": 0, "duplicates": 3,
                                        "rejected": 6, "flagged": 0}
    assert await m.Reading.all().count() == 3 and await m.ReadingConflict.all().count() == 1

    listed = await cli("readings", "conflicts")
    assert listed.returncode == 0, listed.stderr
    shown = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(c["meter"], c["register"], c["read_at"], c["value"], c["stored_value"], c["code"], c["received_from"])
            for c in shown] == [("M1", TOTAL, "2026-10-01T00:00:00+08:00", "1050", "1100.50",
                                 "reading_decreased", "import:readings.csv")]  # judged against line 3


async def test_import_streams_a_large_file_in_batches(cli, meters, tmp_path):
    start = dt.datetime(2026, 1, 1, tzinfo=LOCAL)
    lines = ["meter,register,read_at,value"]
    for i in range(4_500):  # three batches of at most 2,000
        lines.append(f"M1,00010000,{(start + dt.timedelta(minutes=15 * i)).isoformat()},{i}.5")
    lines[2_001] = "M1,00010000,2026-01-21T20:00:00+08:00,0"  # line 2002: the first row of the second batch
    csv_file = tmp_path / "quarter-hours.csv"
    csv_file.write_text("\n".join(lines) + "\n")
    proc = await cli("readings", "import", str(csv_file))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"file": str(csv_file), "rows": 4500, "created": 4499, "duplicates": 0,
                                       "rejected": 1, "flagged": 0}
    [rejected] = rejected_lines(proc)
    assert rejected["line"] == 2002 and rejected["error"]["code"] == "reading_decreased"
    assert rejected["error"]["message"].startswith("line 2002: field 'value' 0 is below 1999.5000")
    assert await m.Reading.all().count() == 4499


@pytest.mark.parametrize("content, says", [
    pytest.param(b"serial,register,read_at,value\nM1,00010000,2026-08-01,1\n",
                 "line 1: the header is 'serial,register,read_at,value', expected meter,register,read_at,value",
                 id="wrong header"),
    pytest.param(b"meter,register,read_at\nM1,00010000,2026-08-01\n", "line 1: the header", id="a column short"),
    pytest.param(b"", "line 1: the file is empty", id="empty"),
    pytest.param(b"meter,register,read_at,value\nM1,00010000,2026-08-01 00:00,1\nM\xe9ter,00010000,2026-09-01,2\n",
                 "line 3: not UTF-8 text", id="latin-1"),
    pytest.param(b"meter,register,read_at,value\nM1,00010000,2026-08-01 00:00,1\n\"M1,00010000,2026-09-01,2\n",
                 "line 3: unexpected end of data", id="open quote"),
    pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "line 1: not UTF-8 text", id="an image"),
])
async def test_a_malformed_file_is_refused_whole_naming_the_line(cli, meters, tmp_path, content, says):
    csv_file = tmp_path / "bad.csv"
    csv_file.write_bytes(content)
    proc = await cli("readings", "import", str(csv_file))
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith(f"pvsettle readings import: {csv_file}: {says}")
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert await m.Reading.all().count() == 0  # not even the good line before the fault


async def test_a_row_with_a_wrong_field_count_is_one_rejected_row_and_the_rest_is_imported(cli, meters, tmp_path):
    csv_file = tmp_path / "ragged.csv"
    csv_file.write_text("meter,register,read_at,value\n"
                        "M1,00010000,2026-08-01 00:00,1000\n"
                        "M1,00010000,2026-09-01 00:00,1100,oops\n"  # line 3: a field too many
                        "M1,00010000\n"  # line 4: a field short
                        "M1,00020000,2026-08-01 00:00,12\n", encoding="utf-8")
    proc = await cli("readings", "import", str(csv_file))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"file": str(csv_file), "rows": 4, "created": 2, "duplicates": 0,
                                       "flagged": 0, "rejected": 2}
    assert rejected_lines(proc) == [
        {"line": 3, "fields": ["M1", "00010000", "2026-09-01 00:00", "1100", "oops"],
         "error": {"code": "wrong_field_count", "message": "line 3: 5 fields, the header has 4"}},
        {"line": 4, "fields": ["M1", "00010000"],
         "error": {"code": "wrong_field_count", "message": "line 4: 2 fields, the header has 4"}}]
    assert await m.Reading.all().count() == 2


@pytest.mark.parametrize("name", ["missing.csv", "."])
async def test_an_unreadable_file_is_exit_2_without_a_traceback(cli, tmp_path, name):
    proc = await cli("readings", "import", str(tmp_path / name))
    assert proc.returncode == 2
    assert proc.stderr.startswith("pvsettle readings import: ") and "cannot read the file" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


async def test_conflicts_with_nothing_to_show_print_nothing_and_a_bad_limit_is_refused(cli):
    proc = await cli("readings", "conflicts")
    assert (proc.returncode, proc.stdout) == (0, "")
    bad = await cli("readings", "conflicts", "--limit", "0")
    assert bad.returncode == 2 and "limit must be between 1 and 1000" in bad.stderr
