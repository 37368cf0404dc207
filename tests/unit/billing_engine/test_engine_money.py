"""Money: exact units, one rounding rule (half up), no float on the way to fen."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from billing_engine import money
from billing_engine.errors import BillingError


def test_decimal_inputs_convert_exactly() -> None:
    assert money.price_micro("0.6234") == 623_400
    assert money.price_micro(Decimal("1.114")) == 1_114_000
    assert money.price_micro(0.1) == 100_000  # the float a person typed, not its binary value
    assert money.price_micro(np.float64(0.39)) == 390_000
    assert money.ppm("0.85") == 850_000
    assert money.yuan_to_fen("12.30") == 1230


@pytest.mark.parametrize("value, what", [("0.1234567", "decimals"), ("-0.1", "≥ 0"),
                                         ("abc", "number"), ("NaN", "finite"), (True, "number")])
def test_bad_prices_are_refused_not_rounded(value, what) -> None:
    with pytest.raises(BillingError, match=what):
        money.price_micro(value, where="prices.peak")


def test_half_a_fen_rounds_up_exactly() -> None:
    # 1 kWh at 0.005 yuan = 0.5 fen → 1;  1 kWh at 0.025 yuan = 2.5 fen → 3 (half-even gives 2).
    assert money.amount_fen(1000, 5000).item() == 1
    assert money.amount_fen(1000, 25_000).item() == 3
    # 0.4999995 yuan·… : 1.5 kWh × 0.333333 = 0.4999995 yuan = 49.99995 fen → 50.
    assert money.amount_fen(1500, 333_333).item() == 50
    # The float trap: 1 kWh × 1.005 yuan is 100.5 fen; in binary float 1.005 * 100 = 100.49999….
    assert round(1.005 * 100) == 100
    assert money.amount_fen(1000, 1_005_000).item() == 101


def test_negative_amounts_round_half_away_from_zero() -> None:
    assert money.round_div(np.array([-25, -24, -26, 25]), 10).tolist() == [-3, -2, -3, 3]
    assert money.round_div(np.array([5, 15, -5]), 10).tolist() == [1, 2, -1]


@pytest.mark.parametrize("denom", [2, 3, 7, 10, 113, 10**7])
def test_round_div_matches_decimal_half_up(denom: int) -> None:
    rng = np.random.default_rng(denom)
    n = rng.integers(-10**12, 10**12, 2000)
    expected = [int((Decimal(int(x)) / denom).quantize(Decimal(1), rounding="ROUND_HALF_UP"))
                for x in n]
    assert money.round_div(n, denom).tolist() == expected
    pos = np.abs(n)
    assert money.round_div(pos, denom).tolist() == [abs(e) for e in
                                                   [int((Decimal(int(x)) / denom).quantize(
                                                       Decimal(1), rounding="ROUND_HALF_UP"))
                                                    for x in pos]]


def test_products_beyond_int64_are_still_exact() -> None:
    big = np.array([9 * 10**15], dtype=np.int64)
    out = money.round_product(big, 10**6, 730, divisor=10**13)
    assert out.tolist() == [int((Decimal(9 * 10**15) * 10**6 * 730 / 10**13).quantize(Decimal(1)))]


def test_vat_included_and_excluded() -> None:
    # 113.00 yuan including 13 % VAT contains 13.00 yuan of tax.
    assert money.tax_fen(11300, 130_000, included=True).item() == 1300
    amount, tax = money.with_vat(np.array([10000, 9000]), 130_000, included=False)
    assert amount.tolist() == [11300, 10170] and tax.tolist() == [1300, 1170]
    amount, tax = money.with_vat(np.array([9000]), 130_000, included=True)
    # 9000 × 0.13 / 1.13 = 1035.398… → 1035
    assert amount.tolist() == [9000] and tax.tolist() == [1035]
    assert money.tax_fen(np.array([123]), 0, included=True).tolist() == [0]


def test_money_arithmetic_refuses_floats() -> None:
    with pytest.raises(TypeError):
        money.amount_fen(np.array([1.5]), 1000)


def test_discounted_price_is_stated_to_a_micro_yuan_half_up() -> None:
    # 0.123455 × 0.5 = 0.0617275 → 0.061728 yuan/kWh.
    assert money.scale_price(123_455, 500_000).item() == 61_728
    assert money.format_price(61_728) == "0.061728"
    assert money.format_price(1_000_000) == "1"


def test_energy_quantized_to_wh() -> None:
    assert money.energy_wh([1.2344, 1.2346, 0.0]).tolist() == [1234, 1235, 0]
    with pytest.raises(BillingError, match="finite"):
        money.energy_wh([1.0, float("nan")])


def test_prorate() -> None:
    # A 30.00 yuan monthly charge for 15 of 31 days: 1451.6… → 1452.
    assert money.prorate_fen(3000, 15 * 96, 31 * 96).item() == 1452
