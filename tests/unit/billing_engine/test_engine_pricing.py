"""Cycle pricing under contract terms, worked by hand to the fen."""

from __future__ import annotations

import numpy as np
import pytest

from billing_engine import ContractTerms, PricingError, price_cycle
from billing_engine.pricing import PRICING_MODELS, LineKind

# Jiangsu-shape grid prices (illustrative) for sharp, peak, flat, valley [µyuan/kWh].
GRID = np.array([1_114_000, 970_000, 650_000, 390_000])
SELF_USE = np.array([[100.0, 200.0, 300.0, 400.0]])


def test_discount_085_with_floor_and_cap_by_hand() -> None:
    # Unit prices: sharp 1.114 × 0.85 = 0.9469 → capped at 0.90; peak 0.97 × 0.85 = 0.8245;
    # flat 0.65 × 0.85 = 0.5525; valley 0.39 × 0.85 = 0.3315 → floor 0.35.
    # Amounts: 100 × 0.90 = 90.00 元; 200 × 0.8245 = 164.90; 300 × 0.5525 = 165.75;
    # 400 × 0.35 = 140.00 → total 560.65 元.  VAT 13 % included: 9000×13/113 = 1035.40 → 1035;
    # 16490 → 1897.08 → 1897; 16575 → 1906.86 → 1907; 14000 → 1610.62 → 1611; tax 6450.
    terms = ContractTerms("discount", discount="0.85", floor_price="0.35", cap_price="0.90",
                          vat_rate="0.13", prices_include_vat=True)
    cycle = price_cycle(terms, GRID, SELF_USE)
    assert cycle.unit_price_micro[0].tolist() == [900_000, 824_500, 552_500, 350_000]
    assert cycle.amount_fen[0].tolist() == [9000, 16490, 16575, 14000]
    assert cycle.tax_fen[0].tolist() == [1035, 1897, 1907, 1611]
    assert cycle.total_fen.tolist() == [56065] and cycle.tax_total_fen.tolist() == [6450]
    lines = cycle.lines(0)
    assert [(ln.kind, ln.period, ln.unit_price) for ln in lines] == [
        ("self_use", 0, "0.9"), ("self_use", 1, "0.8245"), ("self_use", 2, "0.5525"),
        ("self_use", 3, "0.35")]


def test_discount_without_clamp_and_vat_excluded() -> None:
    # 123.456 kWh × (0.97 × 0.85 = 0.8245) = 101.789472 元 → 10179 fen net;
    # VAT 13 % added: 1323.27 → 1323; payable 11502.
    terms = ContractTerms("discount", discount="0.85", vat_rate="0.13", prices_include_vat=False)
    cycle = price_cycle(terms, [970_000], [[123.456]])
    assert cycle.amount_fen.tolist() == [[11502]] and cycle.tax_fen.tolist() == [[1323]]


def test_fixed_price_model() -> None:
    # 0.45 元/kWh whatever the period: 1000 kWh → 450.00 元.
    terms = ContractTerms("fixed", fixed_price="0.45", vat_rate="0")
    cycle = price_cycle(terms, GRID, SELF_USE)
    assert cycle.unit_price_micro[0].tolist() == [450_000] * 4
    assert cycle.total_fen.tolist() == [45000]


def test_grid_model_and_per_plant_grid_prices() -> None:
    terms = ContractTerms("grid", vat_rate="0")
    grid = np.array([[500_000, 300_000], [600_000, 200_000]])
    cycle = price_cycle(terms, grid, [[10.0, 10.0], [10.0, 10.0]])
    assert cycle.amount_fen.tolist() == [[500, 300], [600, 200]]
    assert cycle.total_fen.tolist() == [800, 800]


def test_tiered_contract_by_hand() -> None:
    # Blocks 0–500 kWh at 0.50, 500–1000 at 0.60, above at 0.70; a cycle of 1000 kWh self-use
    # after 300 kWh this year (annual basis): 200 kWh in block 1 (100.00 元), 500 in block 2
    # (300.00 元), 300 in block 3 (210.00 元).
    terms = ContractTerms("tiered", tiers=((500, "0.50"), (1000, "0.60"), (None, "0.70")),
                          tier_basis="annual", vat_rate="0")
    cycle = price_cycle(terms, GRID, SELF_USE, ytd_self_use_kwh=[300.0])
    assert cycle.kind.tolist() == [LineKind.SELF_USE] * 3
    assert cycle.block.tolist() == [0, 1, 2] and cycle.period.tolist() == [-1, -1, -1]
    assert cycle.wh[0].tolist() == [200_000, 500_000, 300_000]
    assert cycle.amount_fen[0].tolist() == [10000, 30000, 21000]
    per_cycle = ContractTerms("tiered", tiers=((500, "0.50"), (1000, "0.60"), (None, "0.70")),
                              vat_rate="0")
    assert price_cycle(per_cycle, GRID, SELF_USE).wh[0].tolist() == [500_000, 500_000, 0]


def test_export_is_informational_and_fixed_charge_counts() -> None:
    # Export 50 kWh at the coal benchmark 0.391 元 = 19.55 元, shown, not charged;
    # a 10.00 元 monthly service fee is charged.
    terms = ContractTerms("fixed", fixed_price="0.40", feed_in_price="0.391", fixed_monthly="10",
                          vat_rate="0")
    cycle = price_cycle(terms, [0], [[100.0]], export_kwh=[[50.0]], grid_kwh=[[20.0]])
    assert cycle.kind.tolist() == [LineKind.SELF_USE, LineKind.EXPORT, LineKind.FIXED]
    assert cycle.informational.tolist() == [False, True, False]
    assert cycle.amount_fen[0].tolist() == [4000, 1955, 1000]
    assert cycle.total_fen.tolist() == [5000]


def test_unknown_pricing_model_is_a_value_error_naming_it() -> None:
    with pytest.raises(ValueError) as info:
        ContractTerms("spot")
    assert str(info.value) == "unknown pricing model 'spot'"
    assert set(PRICING_MODELS) == {"discount", "grid", "fixed", "tiered"}


@pytest.mark.parametrize("kwargs, where", [
    ({"model": "discount", "floor_price": "0.5", "cap_price": "0.4"}, "floor_price"),
    ({"model": "fixed"}, "fixed_price"),
    ({"model": "fixed", "fixed_price": "-0.1"}, "fixed_price"),
    ({"model": "discount", "vat_rate": "1.2"}, "vat_rate"),
    ({"model": "tiered"}, "tiers"),
    ({"model": "tiered", "tiers": ((100, "0.5"), (50, "0.6"), (None, "0.7"))}, "tiers[1].up_to_kwh"),
])
def test_bad_terms_name_the_field(kwargs, where) -> None:
    with pytest.raises(PricingError) as info:
        ContractTerms(**kwargs)
    assert info.value.where == where


def test_bad_energies_are_refused() -> None:
    terms = ContractTerms("grid", vat_rate="0")
    with pytest.raises(PricingError, match="self_use_kwh: energy must be ≥ 0"):
        price_cycle(terms, [1, 2], [[1.0, -2.0]])
    with pytest.raises(PricingError, match="grid_price_micro"):
        price_cycle(terms, [0.5, 0.6], [[1.0, 2.0]])
    with pytest.raises(PricingError, match="grid_price_micro"):
        price_cycle(terms, [1, 2, 3], [[1.0, 2.0]])
    with pytest.raises(PricingError, match="export_kwh"):
        price_cycle(ContractTerms("grid", feed_in_price="0.3"), [1, 2], [[1.0, 2.0]],
                    export_kwh=[[1.0]])


def test_terms_are_hashable_for_grouping_plants() -> None:
    a = ContractTerms("discount", discount="0.85")
    b = ContractTerms("discount", discount="0.85")
    assert a == b and len({a, b}) == 1


def test_terms_expose_their_integer_units() -> None:
    terms = ContractTerms("discount", discount="0.85", floor_price="0.35", cap_price="0.9",
                          vat_rate="0.13", feed_in_price="0.391", fixed_monthly="10")
    assert (terms.discount_ppm, terms.vat_ppm) == (850_000, 130_000)
    assert (terms.floor_micro, terms.cap_micro, terms.feed_in_micro) == (350_000, 900_000, 391_000)
    assert terms.fixed_price_micro is None and terms.fixed_monthly_fen == 1000
