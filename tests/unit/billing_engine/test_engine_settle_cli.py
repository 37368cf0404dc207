"""``python -m billing_engine settle``: the issue-17 JSON on success; one line naming the place and
exit 2 on bad input."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
DAY = np.datetime64("2025-07-01T00:00")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "billing_engine", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def stamps(n: int, step: int, t0: np.datetime64 = DAY) -> list[str]:
    return [str(t0 + i * np.timedelta64(step, "m")) for i in range(n)]


def write(path: Path, column: str, rows: list[tuple[str, str]], header: bool = True) -> Path:
    lines = ([f"start,{column}"] if header else []) + [f"{t},{v}" for t, v in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def prices(tmp_path: Path, values: list[str], step: int = 60, **kw) -> Path:
    return write(tmp_path / "prices.csv", "price_yuan_per_kwh",
                 list(zip(stamps(len(values), step), values)), **kw)


def energy(tmp_path: Path, values: list[str], step: int = 15, rows: list[tuple[str, str]] | None = None,
           **kw) -> Path:
    return write(tmp_path / "energy.csv", "kwh",
                 rows if rows is not None else list(zip(stamps(len(values), step), values)), **kw)


def settle(p: Path, e: Path, *extra: str) -> subprocess.CompletedProcess:
    return run("settle", "--prices", str(p), "--intervals", str(e), *extra)


def assert_bad_input(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_hourly_prices_and_quarter_hour_energy_match_a_decimal_loop(tmp_path: Path) -> None:
    rng = random.Random(17)
    # Two days of hourly prices, some negative, with up to 6 decimals; a third day of prices
    # that the energy does not use.
    price_text = [f"{rng.randint(-200000, 1500000) / 10**6:.6f}" for _ in range(72)]
    kwh_text = [f"{rng.randint(0, 40000) / 1000:.3f}" for _ in range(192)]
    proc = settle(prices(tmp_path, price_text), energy(tmp_path, kwh_text), "--discount", "0.9")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    out = json.loads(proc.stdout)
    assert list(out) == ["days", "total_kwh", "total_fen"]
    expected_days = []
    for d in range(2):
        yuan = sum((Decimal(kwh_text[i]) * Decimal(price_text[i // 4]) * Decimal("0.9")
                    for i in range(d * 96, (d + 1) * 96)), Decimal(0))
        day_kwh = sum((Decimal(kwh_text[i]) for i in range(d * 96, (d + 1) * 96)), Decimal(0))
        expected_days.append({"date": f"2025-07-0{d + 1}", "kwh": float(day_kwh),
                              "amount_fen": int((yuan * 100).quantize(Decimal(1), ROUND_HALF_UP))})
    assert out["days"] == expected_days
    assert out["total_fen"] == sum(d["amount_fen"] for d in expected_days)
    assert out["total_kwh"] == float(sum(Decimal(k) for k in kwh_text))


def test_readme_case_6_the_cli_rounds_each_day_once(tmp_path: Path) -> None:
    # Hour 09 at 0.2 yuan/kWh, others 0.3; 0.125 kWh in 09:00 and 0.001 kWh in each other quarter:
    # 0.125 × 0.2 + 92 × 0.001 × 0.3 = 0.025 + 0.0276 = 0.0526 yuan = 5.26 fen → 5.
    p = prices(tmp_path, ["0.3"] * 9 + ["0.2"] + ["0.3"] * 14)
    kwh = ["0.001"] * 96
    kwh[36], kwh[37], kwh[38], kwh[39] = "0.125", "0", "0", "0"
    proc = settle(p, energy(tmp_path, kwh))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"days": [{"date": "2025-07-01", "kwh": 0.217, "amount_fen": 5}],
                                       "total_kwh": 0.217, "total_fen": 5}


def test_no_header_an_explicit_plus_eight_and_kwh_past_a_wh_rounded_half_up(tmp_path: Path) -> None:
    p = write(tmp_path / "p.csv", "price_yuan_per_kwh",
              [(f"{t}+08:00", "1") for t in stamps(24, 60)], header=False)
    kwh = ["0"] * 96
    kwh[0] = "0.0005"  # half a Wh → 1 Wh, half up, from the text (no binary float in between)
    proc = settle(p, energy(tmp_path, kwh, header=False))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["total_kwh"] == 0.001


def day_of_quarters(values: str = "1") -> list[tuple[str, str]]:
    return list(zip(stamps(96, 15), [values] * 96))


# Data rows start at file line 2 (line 1 is the header): the row of interval i is line i + 2.
@pytest.mark.parametrize("case, fragments", [
    ("gap", ("energy.csv line 43", "gap: 1 interval(s) missing")),
    ("duplicate", ("energy.csv line 43", "duplicate interval start 2025-07-01T10:00")),
    ("thirty minutes", ("energy.csv line 3", "30-minute intervals")),
    ("day not tiled: late start", ("energy.csv line 2", "day not tiled", "starts at 00:15")),
    ("day not tiled: early end", ("energy.csv line 96", "day not tiled", "ends at 23:45")),
    ("not a number", ("energy.csv line 12", "kwh", "must be a number", "'1,5'")),
    ("negative kwh", ("energy.csv line 12", "kwh must be ≥ 0")),
    ("infinite kwh", ("energy.csv line 12", "kwh must be finite")),
    ("bad time", ("energy.csv line 12", "not an ISO 8601 time")),
    ("other offset", ("energy.csv line 2", "offset +0000", "UTC+8")),
    ("extra field", ("energy.csv line 5", "expected 2 fields")),
    ("bad header", ("energy.csv line 1", "not an ISO 8601 time: 'time'")),
    ("wrong header", ("energy.csv line 1", "header must be start,kwh")),
])
def test_bad_energy_files_are_refused_naming_the_line(tmp_path: Path, case: str,
                                                      fragments: tuple[str, ...]) -> None:
    rows = day_of_quarters()
    text = None
    if case == "gap":
        del rows[41]
    elif case == "duplicate":
        rows.insert(41, rows[40])
    elif case == "thirty minutes":
        rows = list(zip(stamps(48, 30), ["1"] * 48))
    elif case == "day not tiled: late start":
        rows = list(zip(stamps(96, 15, DAY + np.timedelta64(15, "m")), ["1"] * 96))
    elif case == "day not tiled: early end":
        rows = rows[:-1]
    elif case == "not a number":
        rows[10] = (rows[10][0], '"1,5"')
    elif case == "negative kwh":
        rows[10] = (rows[10][0], "-0.5")
    elif case == "infinite kwh":
        rows[10] = (rows[10][0], "inf")
    elif case == "bad time":
        rows[10] = ("2025-07-01 25:00", "1")
    elif case == "other offset":
        rows = [(f"{t}+00:00", v) for t, v in rows]
    elif case == "extra field":
        rows[3] = (rows[3][0], "1,2")
    elif case == "bad header":
        text = "time,kwh\n" + "".join(f"{t},{v}\n" for t, v in rows)
    elif case == "wrong header":
        text = "start,kw\n" + "".join(f"{t},{v}\n" for t, v in rows)
    e = energy(tmp_path, [], rows=rows)
    if text is not None:
        e.write_text(text, encoding="utf-8")
    assert_bad_input(settle(prices(tmp_path, ["0.5"] * 24), e), *fragments)


@pytest.mark.parametrize("case, fragments", [
    ("too many decimals", ("prices.csv line 7", "price_yuan_per_kwh", "more decimals")),
    ("not a number", ("prices.csv line 7", "must be a number")),
    ("empty", ("prices.csv line 7", "must be a number")),
    ("gap", ("prices.csv line 7", "gap")),
    ("day not tiled", ("prices.csv line 24", "day not tiled", "ends at 23:00")),
    ("off the hour", ("prices.csv line 2", "hourly intervals start on the hour")),
])
def test_bad_price_files_are_refused_naming_the_line(tmp_path: Path, case: str,
                                                     fragments: tuple[str, ...]) -> None:
    rows = list(zip(stamps(24, 60), ["0.5"] * 24))
    if case == "too many decimals":
        rows[5] = (rows[5][0], "0.1234567")
    elif case == "not a number":
        rows[5] = (rows[5][0], "abc")
    elif case == "empty":
        rows[5] = (rows[5][0], "")
    elif case == "gap":
        del rows[5]
    elif case == "day not tiled":
        rows = rows[:-1]
    elif case == "off the hour":
        rows = list(zip(stamps(24, 60, DAY + np.timedelta64(15, "m")), ["0.5"] * 24))
    p = write(tmp_path / "prices.csv", "price_yuan_per_kwh", rows)
    assert_bad_input(settle(p, energy(tmp_path, ["1"] * 96)), *fragments)


def test_a_day_without_prices_names_its_first_energy_line(tmp_path: Path) -> None:
    e = energy(tmp_path, ["1"] * 192)
    assert_bad_input(settle(prices(tmp_path, ["0.5"] * 24), e),
                     "energy.csv line 98", "no prices for 2025-07-02")


def test_hourly_energy_at_quarter_hour_prices_is_refused(tmp_path: Path) -> None:
    assert_bad_input(settle(prices(tmp_path, ["0.5"] * 96, step=15), energy(tmp_path, ["1"] * 24,
                                                                           step=60)),
                     "hourly energy cannot be priced at the 15-minute prices")


@pytest.mark.parametrize("discount, fragment", [("-0.1", "≥ 0"), ("x", "must be a number"),
                                                ("0.1234567", "more decimals"),
                                                ("12", "at most 10")])
def test_a_bad_discount_is_refused(tmp_path: Path, discount: str, fragment: str) -> None:
    assert_bad_input(settle(prices(tmp_path, ["0.5"] * 24), energy(tmp_path, ["1"] * 96),
                            "--discount", discount), "--discount", fragment)


def test_a_missing_file_and_an_empty_file_are_refused(tmp_path: Path) -> None:
    assert_bad_input(settle(tmp_path / "nope.csv", energy(tmp_path, ["1"] * 96)),
                     "nope.csv", "cannot read")
    (tmp_path / "empty.csv").write_text("start,kwh\n", encoding="utf-8")
    assert_bad_input(settle(prices(tmp_path, ["0.5"] * 24), tmp_path / "empty.csv"),
                     "empty.csv", "no intervals")
