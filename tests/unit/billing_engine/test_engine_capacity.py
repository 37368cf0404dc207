"""Nearby consumption: the 730 h capacity charge, system operation fee, wire loss, eligibility."""

from __future__ import annotations

import numpy as np
import pytest

from billing_engine import PricingError
from billing_engine.capacity import (HOURS_PER_MONTH, capacity_charge_fen, nearby_eligible,
                                     system_operation_fee_fen, wire_loss_fen)


def test_capacity_charge_formula_by_hand() -> None:
    # 1000 kVA × 730 h × 0.45 × 0.1234 元/kWh = 40 536.90 元; plus 5 000.00 元 under current
    # policy.  2500.5 kVA: 101 362.52… 元 → 10 136 252 fen.
    assert HOURS_PER_MONTH == 730
    got = capacity_charge_fen([1000, 2500.5], "0.1234", "0.45",
                              current_capacity_charge_fen=np.array([500_000, 0]))
    assert got.tolist() == [4_553_690, 10_136_252]


def test_capacity_charge_is_exact_for_large_plants() -> None:
    # 100 MVA: 100 000 × 730 × 0.6789 × 0.234567 = 11 625 070.1499 元 → 14.99 fen rounds to 15;
    # the product leaves int64 on the way and is done in Python integers, exactly.
    got = capacity_charge_fen([100_000], "0.234567", "0.6789")
    assert got.tolist() == [1_162_507_015]


def test_capacity_refuses_bad_input() -> None:
    with pytest.raises(PricingError, match="connection_kva"):
        capacity_charge_fen([-1], "0.1", "0.5")
    with pytest.raises(PricingError, match="td_price"):
        capacity_charge_fen([1], "-0.1", "0.5")


def test_system_operation_fee_and_wire_loss() -> None:
    # 12 345.678 kWh × 0.0123 元 = 151.85183… 元 → 15185 fen; summed over periods when 2-D.
    assert system_operation_fee_fen([12_345.678], "0.0123").tolist() == [15185]
    assert system_operation_fee_fen([[12_000.0, 345.678]], "0.0123").tolist() == [15185]
    # Wire loss 3 % of a 0.40 元 purchase price = 0.012 元/kWh: 1000 kWh → 12.00 元.
    assert wire_loss_fen([1000.0], "0.012").tolist() == [1200]


def test_eligibility_thresholds() -> None:
    ok = nearby_eligible(self_use_kwh=[600, 600, 590, 600], available_generation_kwh=[1000] * 4,
                         total_consumption_kwh=[2000, 1800, 1000, 1800],
                         from_2030=[False, True, False, False])
    # 600/1000 ≥ 60 % and 600/2000 = 30 %; from 2030 600/1800 = 33 % < 35 %; 59 % < 60 %.
    assert ok.tolist() == [True, False, False, True]
