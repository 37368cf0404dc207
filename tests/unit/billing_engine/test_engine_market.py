"""billing_engine.market: interval settlement at market prices, checked to the fen.

The oracle is a plain-Python loop over the same data in Decimal kWh and yuan/kWh, written from
the rule in the module docstring and not from the engine's integer arithmetic.  The
hand-worked cases are the ones written out in billing_engine/README.md ("Market settlement").
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing_engine import market, money
from billing_engine.errors import IntervalDataError, PricingError

DAY = np.datetime64("2025-07-01T00:00")


def starts(n: int, step: int, t0: np.datetime64 = DAY) -> np.ndarray:
    return t0 + np.arange(n) * np.timedelta64(step, "m")


def fen(yuan: Decimal) -> int:
    """The oracle's one rounding: yuan → fen, half up (ties away from zero)."""
    return int((yuan * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def kwh(wh: int) -> Decimal:
    return Decimal(int(wh)) / 1000


def yuan_per_kwh(micro: int) -> Decimal:
    return Decimal(int(micro)) / 10**6


def factor(ppm: int) -> Decimal:
    return Decimal(int(ppm)) / 10**6


def oracle_days(wh: np.ndarray, price: np.ndarray, per_day: int, unit) -> list[list[int]]:
    """Per meter, per day: round_half_up(Σ kWh × unit(market price)) in fen, by loops."""
    out = []
    for m in range(wh.shape[0]):
        row = []
        for d in range(wh.shape[1] // per_day):
            total = Decimal(0)
            for i in range(d * per_day, (d + 1) * per_day):
                p = price[m, i] if price.ndim == 2 else price[i]
                total += kwh(wh[m, i]) * unit(yuan_per_kwh(p))
            row.append(fen(total))
        out.append(row)
    return out


# ----------------------------------------------------------------------------- the day axis

def test_a_whole_day_of_quarters_and_of_hours() -> None:
    axis = market.day_axis(starts(192, 15))
    assert axis.step_minutes == 15 and axis.per_day == 96 and axis.intervals == 192
    assert [str(d) for d in axis.days] == ["2025-07-01", "2025-07-02"]
    hourly = market.day_axis(starts(24, 60))
    assert hourly.per_day == 24 and hourly.days.size == 1 and hourly.start == DAY


@pytest.mark.parametrize("case, fragment, index", [
    ("gap", "gap: 1 interval(s) missing between 2025-07-01T10:00 and 2025-07-01T10:30", 41),
    ("duplicate", "duplicate interval start 2025-07-01T10:00", 41),
    ("backwards", "comes after", 41),
    ("thirty", "30-minute intervals", 1),
    ("late start", "day not tiled: 2025-07-01 starts at 00:15", 0),
    ("early end", "day not tiled: 2025-07-01 ends at 23:45", 94),
    ("off boundary", "not on a 15-minute boundary", 5),
    ("hour off the hour", "hourly intervals start on the hour", 0),
    ("one", "has one interval only", 0),
])
def test_series_that_do_not_tile_days_are_refused_at_the_offending_start(
        case: str, fragment: str, index: int) -> None:
    ts = starts(96, 15)
    if case == "gap":
        ts = np.delete(ts, 41)
    elif case == "duplicate":
        ts = np.insert(ts, 41, ts[40])
    elif case == "backwards":
        ts[40], ts[41] = ts[41], ts[40]
    elif case == "thirty":
        ts = starts(48, 30)
    elif case == "late start":
        ts = starts(96, 15, DAY + np.timedelta64(15, "m"))
    elif case == "early end":
        ts = ts[:-1]
    elif case == "off boundary":
        ts = ts.astype("datetime64[s]")
        ts[5] += np.timedelta64(60, "s")
    elif case == "hour off the hour":
        ts = starts(24, 60, DAY + np.timedelta64(15, "m"))
    elif case == "one":
        ts = ts[:1]
    with pytest.raises(IntervalDataError) as err:
        market.day_axis(ts)
    assert fragment in err.value.message
    assert err.value.index == index


def test_a_missing_day_between_two_days_is_a_gap() -> None:
    ts = np.concatenate([starts(24, 60), starts(24, 60, DAY + np.timedelta64(2, "D"))])
    with pytest.raises(IntervalDataError, match="gap: 24 interval"):
        market.day_axis(ts)


def test_a_given_step_other_than_15_or_60_is_refused() -> None:
    with pytest.raises(IntervalDataError, match="30-minute"):
        market.day_axis(starts(48, 30), step_minutes=30)


def test_hourly_prices_repeat_over_quarters_and_coarser_energy_is_refused() -> None:
    assert market.repeat_prices([1, -2], 60, 15).tolist() == [1, 1, 1, 1, -2, -2, -2, -2]
    with pytest.raises(IntervalDataError):
        market.repeat_prices([1] * 96, 15, 60)


# ----------------------------------------------------------------------------- hand-worked cases

def hourly_day(values: dict[int, int], default: int = 0) -> np.ndarray:
    out = np.full(24, default, dtype=np.int64)
    for hour, v in values.items():
        out[hour] = v
    return out


def test_readme_case_1_market_price_times_discount_with_a_negative_price() -> None:
    # 2.5 kWh × 0.4123 + 3 kWh × −0.05 + 1.25 kWh × 0.3311 = 1.294625 yuan; × 0.9 = 1.1651625
    # yuan = 116.51625 fen → 117.
    wh = hourly_day({10: 2500, 11: 3000, 12: 1250})
    price = hourly_day({10: 412300, 11: -50000, 12: 331100}, default=300000)
    out = market.settle(market.market_terms("market_discount", discount="0.9"), wh, price,
                        market.day_axis(starts(24, 60)))
    assert out.amount_fen.tolist() == [[117]]
    assert out.wh.tolist() == [[6750]]
    assert out.total_fen.tolist() == [117]


def test_readme_case_2_rounded_once_a_day_not_once_an_interval() -> None:
    # 96 quarters of 1 Wh at 0.30 yuan/kWh: 0.03 fen each (0 if rounded each), 2.88 fen a day → 3.
    wh = np.ones(96, dtype=np.int64)
    out = market.settle(market.market_terms("market_discount"), wh, np.full(96, 300000),
                        market.day_axis(starts(96, 15)))
    assert out.amount_fen.tolist() == [[3]]


def test_readme_case_3_a_tie_rounds_away_from_zero_on_both_signs() -> None:
    # 0.125 kWh × 0.2 yuan/kWh = 2.5 fen → 3; at −0.2 yuan/kWh, −2.5 fen → −3.
    wh = hourly_day({9: 125})
    axis = market.day_axis(starts(24, 60))
    terms = market.market_terms("market_discount")
    assert market.settle(terms, wh, hourly_day({9: 200000}), axis).amount_fen.tolist() == [[3]]
    assert market.settle(terms, wh, hourly_day({9: -200000}), axis).amount_fen.tolist() == [[-3]]


def test_readme_case_4_fixed_price_with_a_market_pass_through() -> None:
    # F 0.40, R 0.35, s 0.5.  09:00 10.333 kWh at P 0.30: unit 0.40 + 0.5 × (−0.05) = 0.375;
    # 13:00 20 kWh at P 0.52: unit 0.485.  3.874875 + 9.7 = 13.574875 yuan = 1357.4875 fen → 1357.
    terms = market.market_terms("fixed_pass_through", fixed_price="0.40", reference_price="0.35",
                                pass_through="0.5")
    wh = hourly_day({9: 10333, 13: 20000})
    price = hourly_day({9: 300000, 13: 520000}, default=999999)
    out = market.settle(terms, wh, price, market.day_axis(starts(24, 60)))
    assert out.amount_fen.tolist() == [[1357]]
    # s = 0 is the plain fixed price: 30.333 kWh × 0.40 = 12.1332 yuan → 1213 fen.
    plain = market.market_terms("fixed_pass_through", fixed_price="0.40", reference_price="0.35",
                                pass_through="0")
    assert market.settle(plain, wh, price, market.day_axis(starts(24, 60))).amount_fen.tolist() \
        == [[1213]]


def test_readme_case_5_deviation_against_a_day_ahead_position() -> None:
    # 10:00 position 5 kWh, metered 4.213, DA 0.35, RT 0.41; 10:15 position 5, metered 6.1,
    # DA 0.35, RT −0.02.  Day-ahead line 10 kWh × 0.35 = 3.50 yuan = 350 fen.  Deviation line
    # −0.787 × 0.41 + 1.1 × −0.02 = −0.32267 − 0.022 = −0.34467 yuan = −34.467 fen → −34.
    # Amount 316.  Without a position: 4.213 × 0.41 + 6.1 × −0.02 = 1.60533 yuan → 161.
    metered = np.zeros((2, 96), dtype=np.int64)
    metered[:, 40], metered[:, 41] = 4213, 6100
    position = np.zeros((2, 96), dtype=np.int64)
    position[:, 40:42] = 5000
    da = np.full(96, 350000)
    rt = np.full(96, 410000)
    rt[41] = -20000
    out = market.settle_deviation(metered, position, da, rt, market.day_axis(starts(96, 15)),
                                  has_position=[True, False])
    assert out.day_ahead_fen.tolist() == [[350], [0]]
    assert out.deviation_fen.tolist() == [[-34], [161]]
    assert out.amount_fen.tolist() == [[316], [161]]
    assert out.position_wh.tolist() == [[10000], [0]]
    assert out.metered_wh.tolist() == [[10313], [10313]]


# ----------------------------------------------------------------------------- against the oracle

@st.composite
def profiles(draw, *, signed_energy: bool = False):
    step = draw(st.sampled_from(market.STEPS_MINUTES))
    per_day = 1440 // step
    meters = draw(st.integers(1, 3))
    days = draw(st.integers(1, 2))
    n = days * per_day
    lo = -2_000_000 if signed_energy else 0
    wh = np.array(draw(st.lists(st.integers(lo, 2_000_000), min_size=meters * n,
                                max_size=meters * n)), dtype=np.int64).reshape(meters, n)
    # Sparse profiles too: many zeros make ties and small sums likely.
    wh[:, draw(st.lists(st.integers(0, n - 1), max_size=n))] = 0
    per_meter_prices = draw(st.booleans())
    shape = (meters, n) if per_meter_prices else (n,)
    size = int(np.prod(shape))
    price = np.array(draw(st.lists(st.integers(-1_500_000, 9_999_999), min_size=size,
                                   max_size=size)), dtype=np.int64).reshape(shape)
    return step, wh, price


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                           HealthCheck.data_too_large])


@SETTINGS
@given(profiles(), st.integers(0, 1_500_000))
def test_market_discount_equals_the_decimal_loop(data, discount_ppm: int) -> None:
    step, wh, price = data
    axis = market.day_axis(starts(wh.shape[1], step))
    k = factor(discount_ppm)
    out = market.settle(market.MarketDiscount(discount_ppm), wh, price, axis)
    expected = oracle_days(wh, price, axis.per_day, lambda p: p * k)
    assert out.amount_fen.tolist() == expected
    assert out.total_fen.tolist() == [sum(row) for row in expected]


@SETTINGS
@given(profiles(), st.integers(0, 2_000_000), st.integers(-500_000, 2_000_000),
       st.integers(0, 1_000_000))
def test_fixed_pass_through_equals_the_decimal_loop(data, fixed: int, reference: int,
                                                    share: int) -> None:
    step, wh, price = data
    axis = market.day_axis(starts(wh.shape[1], step))
    out = market.settle(market.FixedPassThrough(fixed, reference, share), wh, price, axis)
    f, r, s = yuan_per_kwh(fixed), yuan_per_kwh(reference), factor(share)
    assert out.amount_fen.tolist() == oracle_days(wh, price, axis.per_day,
                                                  lambda p: f + s * (p - r))


@SETTINGS
@given(profiles(), st.data())
def test_deviation_equals_the_decimal_loop(data, draw) -> None:
    step, metered, rt = data
    meters, n = metered.shape
    axis = market.day_axis(starts(n, step))
    position = np.array(draw.draw(st.lists(st.integers(0, 2_000_000), min_size=meters * n,
                                           max_size=meters * n)), dtype=np.int64).reshape(meters, n)
    da = np.array(draw.draw(st.lists(st.integers(-1_000_000, 5_000_000), min_size=n, max_size=n)),
                  dtype=np.int64)
    has = draw.draw(st.lists(st.booleans(), min_size=meters, max_size=meters))
    out = market.settle_deviation(metered, position, da, rt, axis, has_position=has)
    for m in range(meters):
        for d in range(axis.days.size):
            da_yuan, dev_yuan = Decimal(0), Decimal(0)
            for i in range(d * axis.per_day, (d + 1) * axis.per_day):
                q = kwh(position[m, i]) if has[m] else Decimal(0)
                p_rt = yuan_per_kwh(rt[m, i] if rt.ndim == 2 else rt[i])
                da_yuan += q * yuan_per_kwh(da[i])
                dev_yuan += (kwh(metered[m, i]) - q) * p_rt
            assert out.day_ahead_fen[m, d] == fen(da_yuan)
            assert out.deviation_fen[m, d] == fen(dev_yuan)
            assert out.amount_fen[m, d] == fen(da_yuan) + fen(dev_yuan)


@settings(max_examples=300, deadline=None)
@given(st.integers(-(2**62) + 1, 2**62 - 1), st.integers(-(2**62) + 1, 2**62 - 1),
       st.integers(0, market.MAX_FACTOR_PPM))
def test_the_int64_split_rounds_like_python_integers(a: int, b: int, k: int) -> None:
    got = market._round_factor(np.array([a], dtype=np.int64), np.array([b], dtype=np.int64), k)
    numer = a * 10**6 + b * k
    q, r = divmod(abs(numer), 10**13)
    q += 2 * r >= 10**13
    assert got.dtype == np.int64
    assert int(got[0]) == (-q if numer < 0 else q)


def test_energies_beyond_int64_products_fall_back_to_exact_python_integers() -> None:
    # 10 TWh in one hour at 9.99 yuan/kWh: Wh × µyuan × 24 leaves int64; the result stays exact.
    wh = hourly_day({0: 10**13, 1: 3})
    price = hourly_day({0: 9_990_000, 1: 1})
    out = market.settle(market.MarketDiscount(900_000), wh, price, market.day_axis(starts(24, 60)))
    assert out.amount_fen.tolist() == oracle_days(wh[None, :], price, 24,
                                                  lambda p: p * Decimal("0.9"))


def test_a_kwh_float_goes_through_energy_wh_and_a_float_array_is_refused() -> None:
    axis = market.day_axis(starts(24, 60))
    with pytest.raises(IntervalDataError, match="integer Wh"):
        market.settle(market.MarketDiscount(10**6), np.ones(24), np.ones(24, dtype=np.int64), axis)
    wh = money.energy_wh(np.full(24, 0.5))
    assert market.settle(market.MarketDiscount(10**6), wh, np.full(24, 100000), axis
                         ).amount_fen.tolist() == [[120]]


def test_shapes_that_do_not_match_the_axis_are_refused() -> None:
    axis = market.day_axis(starts(24, 60))
    terms = market.MarketDiscount(10**6)
    with pytest.raises(IntervalDataError, match="23 intervals"):
        market.settle(terms, np.ones(23, dtype=np.int64), np.ones(24, dtype=np.int64), axis)
    with pytest.raises(IntervalDataError, match="price_micro must have shape"):
        market.settle(terms, np.ones((2, 24), dtype=np.int64), np.ones((3, 24), dtype=np.int64),
                      axis)


@pytest.mark.parametrize("form, terms, fragment", [
    ("spot", {}, "unknown market contract form 'spot'"),
    ("market_discount", {"discount": "-0.1"}, "discount must be ≥ 0"),
    ("market_discount", {"discount": "11"}, "at most 10"),
    ("market_discount", {"discount": "0.1234567"}, "more decimals"),
    ("market_discount", {"discount": "abc"}, "must be a number"),
    ("fixed_pass_through", {"fixed_price": "0.4"}, "reference_price"),
    ("fixed_pass_through", {"fixed_price": "0.4000001", "reference_price": "0.3"}, "more decimals"),
])
def test_bad_contract_terms_are_pricing_errors(form: str, terms: dict, fragment: str) -> None:
    with pytest.raises(PricingError) as err:
        market.market_terms(form, **terms)
    assert fragment in str(err.value)


def test_market_prices_may_be_negative_and_are_exact() -> None:
    assert market.market_price_micro("-0.0321") == -32100
    assert market.market_price_micro("0.345670") == 345670
    with pytest.raises(ValueError, match="more decimals"):
        market.market_price_micro("0.3456701")


@pytest.mark.parametrize("a, b, k, expected", [
    (5 * 10**6, 0, 0, 1),  # exactly half a fen from the fixed part → 1
    (-5 * 10**6, 0, 0, -1),  # and away from zero when negative
    (0, 5 * 10**6, 10**6, 1),  # half a fen of market value at factor 1
    (0, -5 * 10**6, 10**6, -1),
    (0, 10**7, 500_000, 1),  # 1 fen × 0.5 = half a fen → 1
    (0, -(10**7), 500_000, -1),
    (0, 10**7 - 1, 500_000, 0),  # just below half
    (10**7, -3 * 10**7, 500_000, -1),  # 1 fen − 0.5 × 3 fen = −0.5 fen → −1
    (2**62 - 1, 2**62 - 1, 10**7, None),  # the largest inputs stay exact (checked against int)
])
def test_the_split_at_ties_and_edges(a: int, b: int, k: int, expected: int | None) -> None:
    got = int(market._round_factor(np.array([a], dtype=np.int64), np.array([b], dtype=np.int64), k)[0])
    numer = a * 10**6 + b * k
    q, r = divmod(abs(numer), 10**13)
    q += 2 * r >= 10**13
    assert got == (-q if numer < 0 else q)
    if expected is not None:
        assert got == expected
