"""`pvsettle portfolio import|export` as an operator runs them, against this test's database: the
check, the import, the same again (nothing changes), a refused file (exit 2, every problem on
stderr, nothing stored) and an export that imports back to no change."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from settlement import models as m
from tests.integration import portfolio_files as pf


async def _pvsettle(settings, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "PVSETTLE_DATABASE_URL": settings.database_url, "PVSETTLE_REDIS_URL": settings.redis_url}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "server.cli", "portfolio", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode, out.decode(), err.decode()


async def test_check_import_again_export(db, tmp_path):
    folder = pf.write_csv(tmp_path / "p", pf.portfolio(50))
    code, out, err = await _pvsettle(db, "import", str(folder), "--check")
    assert code == 0, err
    assert "plants.csv line 2: create plants PP0001: code=PP0001, name=1号厂房屋顶" in out
    assert err.strip().startswith("would change: staff 3 new, 0 updated, 0 unchanged, owners 25 new")
    assert await m.Plant.all().count() == 0

    code, out, err = await _pvsettle(db, "import", str(folder))
    assert code == 0, err
    assert await m.Plant.all().count() == 50 and await m.Meter.filter(kind=m.MeterKind.WATER).count() == 5
    admin = await m.Staff.get(code="S001")

    code, out, err = await _pvsettle(db, "import", str(folder), "--staff", str(admin.id), "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["stored"] is True and shown["changes"] == [] and shown["errors"] == []
    assert shown["counts"]["plants"] == {"created": 0, "updated": 0, "unchanged": 50}

    code, out, err = await _pvsettle(db, "import", str(folder))  # staff exist: say who imports
    assert code == 2 and "name the staff member who imports" in err

    bad = pf.portfolio(50)
    bad["plants"][0]["reading_day"] = 31
    bad["owners"][1]["name"] = "业主\x00"
    code, out, err = await _pvsettle(db, "import", str(pf.write_csv(tmp_path / "bad", bad)), "--staff", str(admin.id))
    assert code == 2
    assert "plants.csv line 2: column 'reading_day': 31 is not between 1 and 28" in err
    assert "owners.csv line 3: column 'name': holds NUL (U+0000) at position 2" in err
    assert err.strip().endswith("problems, nothing stored")
    assert (await m.Plant.get(code="PP0001")).reading_day == 1

    for target in (tmp_path / "out", tmp_path / "out.xlsx"):
        code, out, err = await _pvsettle(db, "export", str(target))
        assert code == 0, err
        code, out, err = await _pvsettle(db, "import", str(target), "--staff", str(admin.id), "--json")
        assert code == 0 and json.loads(out)["changes"] == [], out

    code, out, err = await _pvsettle(db, "import", str(tmp_path / "nowhere"))
    assert code == 2 and "no such file or folder" in err
