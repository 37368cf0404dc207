"""Market price curves from CSV and XLSX (issue 17, point 1): stored exactly with their source and
version, a second import of the same file changes nothing, a new version is kept beside the old,
and every hostile file is refused by its line with nothing stored.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
from pathlib import Path

import openpyxl
import pytest

from settlement import models as m
from settlement.errors import NotFound
from settlement.market import prices
from settlement.portfolio.sheets import UnreadableFile

HEADER = "node,market,source,version,start,price_yuan_per_mwh"
DAY = dt.datetime(2025, 7, 1)


def rows(node: str = "SD.JINAN", market: str = "day-ahead", *, days: int = 1, step: int = 15,
         source: str = "sd-px", version: str = "v1", first: dt.datetime = DAY, base: float = 300.0,
         offset: str = "") -> list[str]:
    n = days * 1440 // step
    return [f"{node},{market},{source},{version},{(first + dt.timedelta(minutes=step * i)).isoformat(sep=' ')}"
            f"{offset},{base + i * 0.125:.3f}" for i in range(n)]


def write(path: Path, lines: list[str], header: str = HEADER) -> Path:
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


async def snapshot() -> dict:
    out = {}
    for model in (m.PriceCurve, m.PriceDay, m.AuditEvent):
        out[model.__name__] = [{k: v for k, v in r.items() if k not in ("imported_at", "created_at")}
                               for r in await model.all().order_by("id").values()]
    return out


async def assert_nothing_stored() -> None:
    assert await m.PriceCurve.all().count() == 0
    assert await m.PriceDay.all().count() == 0
    assert await m.AuditEvent.all().count() == 0


async def test_csv_of_two_nodes_and_both_markets_stored_exactly_and_again_changes_nothing(db, tmp_path):
    file = write(tmp_path / "prices.csv", rows(days=2) + rows(market="real-time", days=2, base=-80)
                 + rows(node="SD.QINGDAO", days=2, base=412.5) + rows(node="SD.QINGDAO", market="实时", days=2))

    checked = await prices.import_prices(file, check=True)
    assert checked.problems == [] and not checked.stored
    assert [c.new_days for c in checked.curves] == [2, 2, 2, 2]
    await assert_nothing_stored()  # a check stores nothing

    first = await prices.import_prices(file)
    assert first.problems == [] and first.stored
    assert [(c.node, c.market, c.created, c.new_days) for c in first.curves] == [
        ("SD.JINAN", "day-ahead", True, 2), ("SD.JINAN", "real-time", True, 2),
        ("SD.QINGDAO", "day-ahead", True, 2), ("SD.QINGDAO", "real-time", True, 2)]
    curve = await m.PriceCurve.get(node="SD.JINAN", market=m.PriceMarket.REAL_TIME)
    assert (curve.source, curve.version, curve.unit, curve.step_minutes, curve.file_name) == \
        ("sd-px", "v1", "yuan/MWh", 15, "prices.csv")
    day2 = await m.PriceDay.get(curve=curve, day=dt.date(2025, 7, 2))
    # interval 96 + 5 of the file: −80 + 101 × 0.125 = −67.375 yuan/MWh = −0.067375 yuan/kWh
    assert len(day2.prices_micro) == 96 and day2.prices_micro[5] == -67375
    assert day2.prices_micro[0] == (-80 + 96 * 0.125) * 1000
    events = await m.AuditEvent.filter(action="ImportPrices").count()
    assert events == 4

    before = await snapshot()
    again = await prices.import_prices(file)
    assert again.problems == [] and [c.unchanged_days for c in again.curves] == [2, 2, 2, 2]
    assert [c.new_days for c in again.curves] == [0, 0, 0, 0]
    assert await snapshot() == before  # no row, no audit event


async def test_xlsx_hourly_yuan_per_kwh_with_number_and_date_cells(db, tmp_path):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "prices"
    sheet.append(["Node", "Market", "Source", "Version", "Start", "price_yuan_per_kwh"])
    for h in range(24):
        # number cells hold binary floats: 0.3456 must still be 345 600 µyuan/kWh exactly
        sheet.append(["Guangdong", "day-ahead", "gd-px", "2025-07-01 final", DAY + dt.timedelta(hours=h),
                      0.3456 + h / 10000 if h != 3 else "-0.05"])
    path = tmp_path / "gd.xlsx"
    book.save(path)
    out = await prices.import_prices(path)
    assert out.problems == [] and out.stored
    (shown,) = await prices.day_prices("Guangdong", dt.date(2025, 7, 1), [m.PriceMarket.DAY_AHEAD])
    assert shown.curve.step_minutes == 60 and shown.curve.unit == "yuan/kWh"
    assert shown.prices_micro[:5] == [345600, 345700, 345800, -50000, 346000]
    as_json = shown.as_dict()
    assert as_json["intervals"][1] == {"start": "2025-07-01T01:00+08:00", "price_yuan_per_kwh": "0.3457"}
    assert as_json["intervals"][3]["price_yuan_per_kwh"] == "-0.05"


async def test_a_new_version_is_kept_beside_the_old_and_show_takes_the_last(db, tmp_path):
    await prices.import_prices(write(tmp_path / "v1.csv", rows(days=1)))
    v2 = await prices.import_prices(write(tmp_path / "v2.csv", rows(days=1, version="v2", base=310)))
    assert v2.problems == [] and v2.curves[0].created
    assert await m.PriceCurve.filter(node="SD.JINAN").count() == 2
    (latest,) = await prices.day_prices("SD.JINAN", dt.date(2025, 7, 1), [m.PriceMarket.DAY_AHEAD])
    assert latest.curve.version == "v2" and latest.prices_micro[0] == 310_000
    assert latest.other_versions == ["sd-px/v1"]
    (old,) = await prices.day_prices("SD.JINAN", dt.date(2025, 7, 1), [m.PriceMarket.DAY_AHEAD], version="v1")
    assert old.prices_micro[0] == 300_000
    with pytest.raises(NotFound, match="no real-time prices of node 'SD.JINAN' on 2025-07-01"):
        await prices.day_prices("SD.JINAN", dt.date(2025, 7, 1), [m.PriceMarket.REAL_TIME])


async def test_new_days_join_their_version_and_a_changed_stored_day_is_refused(db, tmp_path):
    await prices.import_prices(write(tmp_path / "june.csv", rows(days=1)))
    more = await prices.import_prices(write(tmp_path / "more.csv", rows(days=2)))
    assert more.problems == [] and (more.curves[0].new_days, more.curves[0].unchanged_days) == (1, 1)
    before = await snapshot()

    changed = rows(days=3)
    changed[50] = changed[50].rsplit(",", 1)[0] + ",999.000"  # a stored day with another price
    out = await prices.import_prices(write(tmp_path / "changed.csv", changed))
    assert not out.stored
    assert [str(p) for p in out.problems] == [
        "changed.csv line 2: 2025-07-01 of day-ahead SD.JINAN (sd-px, v1) is stored with other prices "
        "(interval 50: 0.30625 stored, 0.999 here): a stored day is never rewritten, import corrected "
        "prices under a new version"]
    assert await snapshot() == before  # not even the third day, which was new


async def test_a_stored_curve_keeps_its_step(db, tmp_path):
    await prices.import_prices(write(tmp_path / "q.csv", rows(days=1)))
    out = await prices.import_prices(write(tmp_path / "h.csv", rows(days=1, step=60, first=DAY + dt.timedelta(days=1))))
    assert [str(p) for p in out.problems] == [
        "h.csv line 2: day-ahead SD.JINAN (sd-px, v1) is stored at 15-minute intervals, this file has "
        "60-minute ones: import it as a new version"]
    assert await m.PriceDay.all().count() == 1


def _replace(lines: list[str], i: int, column: int, value: str) -> list[str]:
    cells = lines[i].split(",")
    cells[column] = value
    return [*lines[:i], ",".join(cells), *lines[i + 1:]]


# Data row i of rows() is file line i + 2 (line 1 is the header).
HOSTILE = {
    "gap": (lambda r: r[:41] + r[42:], None,
            ["line 43: day-ahead SD.JINAN (sd-px, v1): gap: 1 interval(s) missing between "
             "2025-07-01T10:00 and 2025-07-01T10:30"]),
    "duplicate": (lambda r: r[:41] + [r[40]] + r[41:], None,
                  ["line 43: day-ahead SD.JINAN (sd-px, v1): duplicate interval start 2025-07-01T10:00"]),
    "out of order": (lambda r: r[:40] + [r[41], r[40]] + r[42:], None, ["line 43:", "comes after"]),
    "day not tiled at the end": (lambda r: r[:-1], None, ["line 96:", "day not tiled: 2025-07-01 ends at 23:45"]),
    "day not tiled at the start": (lambda r: r[1:], None, ["line 2:", "starts at 00:15"]),
    "end-labelled 00:15 to 24:00": (lambda r: rows(first=DAY + dt.timedelta(minutes=15)), None,
                                    ["line 2:", "starts at 00:15"]),
    "30-minute intervals": (lambda r: rows(step=30), None, ["line 3:", "30-minute intervals"]),
    "hourly off the hour": (lambda r: rows(step=60, first=DAY + dt.timedelta(minutes=30)), None,
                            ["line 2:", "hourly intervals start on the hour"]),
    "offset +00:00": (lambda r: rows(offset="+00:00"), None, ["line 2: column 'start': offset +0000", "UTC+8"]),
    "offset Z": (lambda r: _replace(r, 7, 4, "2025-07-01T01:45Z"), None, ["line 9:", "offset +0000"]),
    "offset +08:00 is fine but not +09:00": (lambda r: _replace(r, 7, 4, "2025-07-01T02:45+09:00"), None,
                                            ["line 9:", "offset +0900"]),
    "not a time": (lambda r: _replace(r, 7, 4, "2025-07-01 24:00"), None,
                   ["line 9: column 'start': not an ISO 8601 time: '2025-07-01 24:00'"]),
    "not a number": (lambda r: _replace(r, 10, 5, "3O5.1"), None,
                     ["line 12: column 'price_yuan_per_mwh': not a number: '3O5.1'"]),
    "a float's worth of decimals": (lambda r: _replace(r, 10, 5, "305.1234"), None,
                                    ["line 12:", "more than 3 decimals"]),
    "NaN": (lambda r: _replace(r, 10, 5, "NaN"), None, ["line 12:", "not a finite number"]),
    "absurd": (lambda r: _replace(r, 10, 5, "1e9"), None, ["line 12:", "beyond ±100 yuan/kWh"]),
    "empty price": (lambda r: _replace(r, 10, 5, ""), None, ["line 12:", "not a number"]),
    "unknown market": (lambda r: _replace(r, 3, 1, "intraday"), None,
                       ["line 5: column 'market': 'intraday' is not day-ahead or real-time"]),
    "control character in a node": (lambda r: _replace(r, 3, 0, "SD.JI\x1bNAN"), None,
                                    ["line 5: column 'node': holds U+001B at position 6"]),
    "empty version": (lambda r: _replace(r, 3, 3, " "), None, ["line 5: column 'version' is empty"]),
    "too long a source": (lambda r: _replace(r, 3, 2, "s" * 65), None, ["line 5:", "longer than 64"]),
    "two bad rows, both named": (lambda r: _replace(_replace(r, 10, 5, "x"), 20, 5, "y"), None,
                                 ["line 12:", "line 22:"]),
    "no unit": (lambda r: r, "node,market,source,version,start,price", ["line 1:", "exactly one price column",
                                                                        "unknown column(s) price"]),
    "two units": (lambda r: [x + ",0.3" for x in r], HEADER + ",price_yuan_per_kwh",
                  ["line 1:", "exactly one price column"]),
    "missing column": (lambda r: [x.split(",", 1)[1] for x in r], "market,source,version,start,price_yuan_per_mwh",
                       ["line 1: the header lacks node"]),
    "header only": (lambda r: [], HEADER, ["line 1: no price rows"]),
}


@pytest.mark.parametrize("case", list(HOSTILE))
async def test_hostile_price_files_are_refused_by_line_with_nothing_stored(db, tmp_path, case):
    change, header, fragments = HOSTILE[case]
    good = rows(node="OK.NODE")
    if header is not None:  # a header case changes the columns of every row
        good = change(good)
    file = write(tmp_path / "prices.csv", change(rows()) + good, header=header or HEADER)
    out = await prices.import_prices(file)
    assert not out.stored and out.problems
    text = "\n".join(str(p) for p in out.problems)
    for fragment in fragments:
        assert fragment in text, text
    assert all(str(p).startswith("prices.csv line ") for p in out.problems), text
    if header is None and case not in ("two bad rows, both named", "offset +00:00"):
        assert len(out.problems) == 1, text  # one mistake, one message (no echo as a gap)
    await assert_nothing_stored()  # not even the good node's curve


async def test_unreadable_files_are_refused_whole(db, tmp_path):
    latin = tmp_path / "latin.csv"
    latin.write_bytes((HEADER + "\nN\xe4,day-ahead,s,v,2025-07-01 00:00,1\n").encode("latin-1"))
    fake = tmp_path / "fake.xlsx"
    fake.write_bytes(b"PK\x03\x04 not really a zip")
    book = openpyxl.Workbook()
    book.active.title = "Sheet1"
    other = tmp_path / "other.xlsx"
    book.save(other)
    for path, fragment in ((latin, "not UTF-8"), (fake, "not an .xlsx workbook"),
                           (other, "has no sheet 'prices'"), (tmp_path / "none.csv", "no such file"),
                           (write(tmp_path / "p.json", rows()), "not a .csv file or an .xlsx")):
        with pytest.raises(UnreadableFile, match=fragment):
            await prices.import_prices(path)
    await assert_nothing_stored()


async def _pvsettle(settings, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "PVSETTLE_DATABASE_URL": settings.database_url, "PVSETTLE_REDIS_URL": settings.redis_url}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "server.cli", "prices", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode, out.decode(), err.decode()


async def test_cli_check_import_again_show_and_refuse(db, tmp_path):
    file = write(tmp_path / "prices.csv", rows(days=2) + rows(market="real-time", days=2, step=60))
    code, out, err = await _pvsettle(db, "import", str(file), "--check")
    assert code == 0, err
    assert out.splitlines()[0] == ("create day-ahead SD.JINAN source=sd-px version=v1 (15-minute, yuan/MWh) "
                                   "2025-07-01..2025-07-02: 2 new days, 0 unchanged")
    assert "would add 4 days in 2 curves" in err
    assert await m.PriceDay.all().count() == 0

    code, out, err = await _pvsettle(db, "import", str(file))
    assert code == 0 and "added 4 days in 2 curves" in err, err
    code, out, err = await _pvsettle(db, "import", str(file), "--json")
    assert code == 0, err
    assert [c["unchanged_days"] for c in json.loads(out)["curves"]] == [2, 2]
    assert await m.PriceDay.all().count() == 4

    code, out, err = await _pvsettle(db, "show", "--node", "SD.JINAN", "--date", "2025-07-02")
    assert code == 0, err
    shown = json.loads(out)
    assert [c["market"] for c in shown["curves"]] == ["day-ahead", "real-time"]
    assert len(shown["curves"][0]["intervals"]) == 96 and len(shown["curves"][1]["intervals"]) == 24
    assert shown["curves"][1]["intervals"][0] == {"start": "2025-07-02T00:00+08:00", "price_yuan_per_kwh": "0.303"}

    code, out, err = await _pvsettle(db, "show", "--node", "SD.JINAN", "--date", "2025-07-03",
                                     "--market", "day-ahead")
    assert code == 2 and "no day-ahead prices of node 'SD.JINAN' on 2025-07-03" in err
    code, out, err = await _pvsettle(db, "show", "--node", "SD.JINAN", "--date", "July 3rd")
    assert code == 2 and "not a date" in err

    bad = write(tmp_path / "bad.csv", rows()[:41] + rows()[42:])
    code, out, err = await _pvsettle(db, "import", str(bad))
    assert code == 2 and out == ""
    assert err.splitlines()[0].startswith("bad.csv line 43: day-ahead SD.JINAN (sd-px, v1): gap")
    assert err.strip().endswith("1 problems, nothing stored")
    code, out, err = await _pvsettle(db, "import", str(tmp_path / "missing.xlsx"))
    assert code == 2 and "no such file" in err
    assert await m.PriceDay.all().count() == 4


async def test_hostile_xlsx_is_refused_by_sheet_row_with_nothing_stored(db, tmp_path):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "prices"
    sheet.append(["node", "market", "source", "version", "start", "price_yuan_per_kwh"])
    for h in range(24):
        if h == 6:
            continue  # a gap: 06:00 missing
        price = 0.3456789 if h == 9 else 0.35  # a number cell finer than 1e-6 yuan/kWh
        sheet.append(["GD", "real-time", "gd-px", "v1", DAY + dt.timedelta(hours=h), price])
    sheet.append(["GD", "real-time", "gd-px", "v1", "2025-07-02T00:00:00+00:00", 0.35])
    path = tmp_path / "bad.xlsx"
    book.save(path)
    out = await prices.import_prices(path)
    assert [str(p) for p in out.problems] == [
        "sheet prices row 10: column 'price_yuan_per_kwh': 0.3456789 has more than 6 decimals "
        "(prices are kept to 1e-6 yuan/kWh, exactly)",
        "sheet prices row 25: column 'start': offset +0000 in '2025-07-02T00:00:00+00:00': market times are "
        "China time, UTC+8 (+08:00), without daylight saving"]
    await assert_nothing_stored()
    # A curve with a refused row is not also checked for tiling; with the cells mended, the gap
    # is what is left, named by its row (07:00 follows 05:00).
    sheet.cell(row=10, column=6, value="0.3")
    sheet.delete_rows(25)
    book.save(path)
    out = await prices.import_prices(path)
    assert [str(p) for p in out.problems] == [
        "sheet prices row 8: real-time GD (gd-px, v1): gap: 1 interval(s) missing between 2025-07-01T05:00 and "
        "2025-07-01T07:00 (60-minute intervals)"]
    await assert_nothing_stored()


async def test_a_file_of_a_thousand_one_row_curves_stops_at_a_hundred_problems(db, tmp_path):
    file = write(tmp_path / "prices.csv", [f"N{i},day-ahead,s,v,2025-07-01 00:00,1" for i in range(1000)])
    out = await prices.import_prices(file)
    assert len(out.problems) == prices.MAX_PROBLEMS + 1
    assert str(out.problems[0]) == "prices.csv line 2: day-ahead N0 (s, v): day not tiled: 2025-07-01 has one interval only"
    assert str(out.problems[-1]) == "prices.csv: stopped after 100 problems"
    await assert_nothing_stored()
