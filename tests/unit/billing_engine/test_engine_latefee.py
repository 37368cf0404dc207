"""Late fee by days overdue: residential, current year, year crossing, the 1 元 minimum."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from billing_engine import BillingError, LateFeeRates, late_fee_fen
from billing_engine.latefee import overdue_days


def test_residential_one_per_mille_per_day() -> None:
    # 500.00 元 overdue 10 days (due 10 March, paid 20 March): 500 × 1 ‰ × 10 = 5.00 元.
    assert late_fee_fen(50_000, dt.date(2025, 3, 10), dt.date(2025, 3, 20), residential=True) == 500


def test_small_fees_are_charged_one_yuan() -> None:
    # 50.00 元 × 1 ‰ × 3 days = 0.15 元 → 1.00 元.
    assert late_fee_fen(5_000, dt.date(2025, 3, 10), dt.date(2025, 3, 13), residential=True) == 100
    # Paid on or before the due date: nothing, not even the minimum.
    assert late_fee_fen(5_000, dt.date(2025, 3, 10), dt.date(2025, 3, 10), residential=True) == 0
    assert late_fee_fen(0, dt.date(2025, 3, 10), dt.date(2025, 4, 10), residential=True) == 0


def test_others_two_per_mille_in_the_year() -> None:
    # 12 345.67 元 × 2 ‰ × 15 days = 370.3701 元 → 37037 fen.
    assert late_fee_fen(1_234_567, dt.date(2025, 5, 1), dt.date(2025, 5, 16),
                        residential=False) == 37037


def test_arrears_crossing_a_year_end() -> None:
    # Due 20 Dec 2024, paid 10 Jan 2025: 21–31 Dec = 11 days at 2 ‰, 1–10 Jan = 10 days at 3 ‰:
    # 123.45 元 × (0.022 + 0.030) = 6.4194 元 → 642 fen.
    assert overdue_days(np.datetime64("2024-12-20"), np.datetime64("2025-01-10")) == (11, 10)
    assert late_fee_fen(12_345, dt.date(2024, 12, 20), dt.date(2025, 1, 10), residential=False) == 642
    # Residential: all 21 days at 1 ‰: 2.59245 元 → 259 fen.
    assert late_fee_fen(12_345, dt.date(2024, 12, 20), dt.date(2025, 1, 10), residential=True) == 259


def test_half_a_fen_rounds_up() -> None:
    # 10 002.50 元 × 2 ‰ × 1 day = 20.005 元 → 20.01 元.
    assert late_fee_fen(1_000_250, dt.date(2025, 3, 10), dt.date(2025, 3, 11), residential=False) == 2001


def test_vectorized_over_bills_with_contract_rates() -> None:
    rates = LateFeeRates(residential="0.0005", current_year="0.001", cross_year="0.0015",
                         minimum_fen=50)
    fees = late_fee_fen(np.array([100_000, 100_000, 1_000, 100_000]),
                        np.array(["2025-01-31"] * 3 + ["2025-12-30"], dtype="datetime64[D]"),
                        np.array(["2025-02-10"] * 3 + ["2026-01-02"], dtype="datetime64[D]"),
                        residential=np.array([True, False, False, False]), rates=rates)
    # 1000 元 × 0.5 ‰ × 10 = 5 元; × 1 ‰ × 10 = 10 元; 10 元 × 1 ‰ × 10 = 0.1 元 → 0.50 元 minimum;
    # due 30 Dec, paid 2 Jan: 1 day at 1 ‰ + 2 days at 1.5 ‰ = 4 ‰ → 4 元.
    assert fees.tolist() == [500, 1000, 50, 400]


def test_bad_arrears() -> None:
    with pytest.raises(BillingError, match="integer fen"):
        late_fee_fen(10.5, dt.date(2025, 1, 1), dt.date(2025, 1, 2), residential=True)
    with pytest.raises(BillingError, match="≥ 0"):
        late_fee_fen(-1, dt.date(2025, 1, 1), dt.date(2025, 1, 2), residential=True)
