"""The late fee of a bill over spans of constant arrears (settlement.billing.late_fees._late_fee_total)."""

import datetime as dt

from billing_engine.latefee import LateFeeRates
from settlement.billing.late_fees import _late_fee_total

RATES = LateFeeRates(residential="0.001", current_year="0.002", cross_year="0.003")
DUE = dt.date(2026, 12, 20)


def test_unpaid_across_the_year_end():
    # 12-21 … 12-31: 11 days at 2 ‰; 01-01 … 01-09: 9 days at 3 ‰ → 100 000 × (0.022 + 0.027) = 4 900
    assert _late_fee_total(100_000, DUE, [], dt.date(2027, 1, 9), False, RATES) == 4_900


def test_a_partial_payment_lowers_the_arrears_from_its_day():
    # 12-21 … 12-25 on 100 000 at 2 ‰ = 1 000; paid 60 000 on 12-25; 12-26 … 12-31 on 40 000 = 480;
    # 01-01 … 01-04 on 40 000 at 3 ‰ = 480
    payments = [(dt.date(2026, 12, 25), 60_000)]
    assert _late_fee_total(100_000, DUE, payments, dt.date(2027, 1, 4), False, RATES) == 1_000 + 480 + 480


def test_residential_pays_one_per_mille_on_every_day():
    assert _late_fee_total(100_000, DUE, [], dt.date(2027, 1, 9), True, RATES) == 2_000  # 20 days × 1 ‰


def test_the_minimum_is_one_yuan_and_nothing_before_the_due_date():
    assert _late_fee_total(1_000, DUE, [], dt.date(2026, 12, 22), False, RATES) == 100  # 4 fen → 1 元
    assert _late_fee_total(100_000, DUE, [], DUE, False, RATES) == 0
    assert _late_fee_total(100_000, DUE, [(dt.date(2026, 12, 1), 100_000)], dt.date(2027, 3, 1), False, RATES) == 0


def test_a_payment_before_the_due_date_counts_from_the_start():
    # 30 000 paid early: 70 000 unpaid over 12-21 … 12-30 at 2 ‰ = 1 400
    payments = [(dt.date(2026, 12, 10), 30_000)]
    assert _late_fee_total(100_000, DUE, payments, dt.date(2026, 12, 30), False, RATES) == 1_400
