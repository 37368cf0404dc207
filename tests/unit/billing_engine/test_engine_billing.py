"""Interval billing under a tariff, with figures worked by hand to the fen."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from billing_engine import bill, example, parse_tariff, summary
from billing_engine.pricing import LineKind

SHARP, PEAK, FLAT, VALLEY, DEEP = range(5)


def test_jiangsu_shape_july_month_by_hand() -> None:
    # A steady 1 kW through July 2025 (31 days, no holiday):
    #   sharp 3 h/day → 93 kWh × 1.1140 = 103.602 元 → 10360 fen (10360.2)
    #   peak  5 h/day → 155 kWh × 0.9700 = 150.350 元 → 15035 fen
    #   flat  8 h/day → 248 kWh × 0.6500 = 161.200 元 → 16120 fen
    #   valley 8 h/day → 248 kWh × 0.3900 = 96.720 元 →  9672 fen
    #   month 744 kWh, 51187 fen; VAT (13 %, included) per line:
    #   10360×13/113 = 1191.86 → 1192; 15035 → 1729.69 → 1730; 16120 → 1854.51 → 1855;
    #   9672 → 1112.71 → 1113; tax 5890.
    tariff = example("jiangsu-2025")
    result = bill(tariff, np.full(31 * 96, 0.25), "2025-07-01T00:00", 15)
    assert result.kind.tolist() == [LineKind.ENERGY] * 4
    assert result.period.tolist() == [SHARP, PEAK, FLAT, VALLEY]
    assert result.wh[0].tolist() == [93_000, 155_000, 248_000, 248_000]
    assert result.amount_fen[0].tolist() == [10360, 15035, 16120, 9672]
    assert result.tax_fen[0].tolist() == [1192, 1730, 1855, 1113]
    assert int(result.total_fen[0]) == 51187 and int(result.tax_total_fen[0]) == 5890
    assert summary(result) == {
        "currency": "CNY",
        "months": [{
            "month": "2025-07", "kwh": 744.0,
            "periods": [{"period": 0, "kwh": 93.0, "amount_fen": 10360},
                        {"period": 1, "kwh": 155.0, "amount_fen": 15035},
                        {"period": 2, "kwh": 248.0, "amount_fen": 16120},
                        {"period": 3, "kwh": 248.0, "amount_fen": 9672}],
            "energy_fen": 51187, "fixed_fen": 0, "total_fen": 51187,
        }],
        "total_fen": 51187,
    }


def test_holiday_deep_valley_in_october() -> None:
    # 1 kW on 2025-10-01 (holiday): 10–14 deep valley 4 kWh × 0.33 = 1.32 元; the rest of the
    # spring/autumn day: valley 2–6 = 4 kWh (10–14 is taken), flat 0–2, 6–10, 14–15, 22–24 = 9 kWh,
    # peak 15–22 = 7 kWh.
    result = bill(example("jiangsu-2025"), np.full(96, 0.25), "2025-10-01T00:00", 15)
    got = dict(zip(result.period.tolist(), result.wh[0].tolist()))
    assert got == {PEAK: 7000, FLAT: 9000, VALLEY: 4000, DEEP: 4000}
    assert dict(zip(result.period.tolist(), result.amount_fen[0].tolist()))[DEEP] == 132


def _flat_tariff(**version_extra) -> dict:
    version = {
        "effective_from": "2025-01-01",
        "seasons": [{"months": list(range(1, 13)), "weekday": "d"}],
        "day_schedules": {"d": [["00:00", "24:00", "all"]]},
        "prices": {"all": "0.5"},
    }
    version.update(version_extra)
    return {"format": "pvsettle-tariff/1", "periods": ["all"], "versions": [version]}


TIERS = {"basis": "monthly", "blocks": [{"up_to_kwh": 200, "adder": "0"},
                                        {"up_to_kwh": 400, "adder": "0.05"},
                                        {"up_to_kwh": None, "adder": "0.3"}]}


def test_monthly_tiers_by_hand() -> None:
    # 450 kWh in January: 450 × 0.5 = 22500 fen; block 2: 200 kWh × 0.05 = 1000 fen;
    # block 3: 50 kWh × 0.30 = 1500 fen.  February 100 kWh: block 1 only.
    tariff = parse_tariff(_flat_tariff(tiers=TIERS))
    kwh = np.zeros(31 * 24 + 28 * 24)
    kwh[0] = 450.0
    kwh[31 * 24] = 100.0
    result = bill(tariff, kwh, "2025-01-01T00:00", 60)
    lines = list(zip(result.kind.tolist(), result.block.tolist(), result.wh[0].tolist(),
                     result.amount_fen[0].tolist()))
    assert lines == [(LineKind.ENERGY, -1, 450_000, 22500),
                     (LineKind.TIER, 1, 200_000, 1000), (LineKind.TIER, 2, 50_000, 1500),
                     (LineKind.ENERGY, -1, 100_000, 5000),
                     (LineKind.TIER, 1, 0, 0), (LineKind.TIER, 2, 0, 0)]
    out = summary(result)
    assert [m["energy_fen"] for m in out["months"]] == [25000, 5000]
    assert out["total_fen"] == 30000


def test_annual_tiers_carry_the_year_to_date() -> None:
    # Annual blocks, 150 kWh already used this year: 300 kWh now → 50 in block 1, 200 in
    # block 2 (1000 fen), 50 in block 3 (1500 fen).
    tiers = dict(TIERS, basis="annual")
    tariff = parse_tariff(_flat_tariff(tiers=tiers))
    kwh = np.zeros(24)
    kwh[3] = 300.0
    result = bill(tariff, kwh, "2025-05-01T00:00", 60, ytd_kwh=150.0)
    tier = result.kind == LineKind.TIER
    assert result.wh[0, tier].tolist() == [200_000, 50_000]
    assert result.amount_fen[0, tier].tolist() == [1000, 1500]


def test_monthly_tiers_carry_the_month_to_date() -> None:
    # Data from 16 January with 350 kWh already used since the 1st: 100 kWh now → 50 in
    # block 2 (2.50 元), 50 in block 3 (15.00 元).
    tariff = parse_tariff(_flat_tariff(tiers=TIERS))
    kwh = np.zeros(24)
    kwh[0] = 100.0
    result = bill(tariff, kwh, "2025-01-16T00:00", 60, mtd_kwh=350.0)
    tier = result.kind == LineKind.TIER
    assert result.wh[0, tier].tolist() == [50_000, 50_000]
    assert result.amount_fen[0, tier].tolist() == [250, 1500]


def test_fixed_monthly_charge_is_prorated_by_coverage() -> None:
    # 30.00 元 per month; data covers 15 of 31 days of March, then all of April.
    tariff = parse_tariff(_flat_tariff(fixed_monthly="30.00"))
    result = bill(tariff, np.zeros((2, (15 + 30) * 96)), "2025-03-17T00:00", 15)
    fixed = result.kind == LineKind.FIXED
    # 3000 × 15/31 = 1451.6 → 1452; April whole: 3000.
    assert result.amount_fen[:, fixed].tolist() == [[1452, 3000], [1452, 3000]]
    assert summary(result, 1)["months"][0]["fixed_fen"] == 1452


def test_prices_excluding_vat_add_the_tax_per_line() -> None:
    # 100 kWh × 0.5 = 5000 fen net; VAT 13 % added: 650 → 5650 payable.
    tariff = parse_tariff(_flat_tariff(vat_rate="0.13", prices_include_vat=False))
    kwh = np.zeros(24)
    kwh[0] = 100.0
    result = bill(tariff, kwh, "2025-01-01T00:00", 60)
    assert result.amount_fen[0].tolist() == [5650] and result.tax_fen[0].tolist() == [650]


def test_version_change_splits_the_month_and_summary_merges_periods() -> None:
    obj = _flat_tariff()
    later = copy.deepcopy(obj["versions"][0])
    later["effective_from"] = "2025-01-16"
    later["prices"]["all"] = "0.6"
    obj["versions"].append(later)
    result = bill(parse_tariff(obj), np.full(31 * 24, 1.0), "2025-01-01T00:00", 60)
    # 360 kWh × 0.5 = 18000 fen; 384 kWh × 0.6 = 23040 fen.
    assert result.version.tolist() == [0, 1]
    assert result.amount_fen[0].tolist() == [18000, 23040]
    month = summary(result)["months"][0]
    assert month["periods"] == [{"period": 0, "kwh": 744.0, "amount_fen": 41040}]


@pytest.mark.parametrize("meters", [1, 7])
def test_many_meters_in_one_call_equal_one_by_one(meters: int) -> None:
    tariff = example("zhejiang-2024")
    data = np.round(np.random.default_rng(meters).uniform(0, 2, (meters, 96 * 40)), 3)
    together = bill(tariff, data, "2024-01-15T00:00", 15)
    for m in range(meters):
        alone = bill(tariff, data[m], "2024-01-15T00:00", 15)
        assert alone.amount_fen[0].tolist() == together.amount_fen[m].tolist()
        assert summary(alone) == summary(together, m)
