"""Money as text (settlement.money_text): every form to the fen, by integer arithmetic only."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_engine.money import yuan_to_fen
from settlement.money_text import format_yuan, wechat_amount, yuan

# far beyond any bill (settlement.billing.bills.MAX_PAYMENT_FEN is 10**12), both signs
AMOUNTS = st.integers(min_value=-10**15, max_value=10**15)


def test_people_read_grouped_yuan_and_files_plain_yuan():
    assert [format_yuan(f) for f in (0, 5, 99, 100, 740350, 123456789, -1250)] == \
        ["0.00", "0.05", "0.99", "1.00", "7,403.50", "1,234,567.89", "-12.50"]
    assert format_yuan(740350, grouping=False) == "7403.50"
    assert format_yuan(-5, grouping=False) == "-0.05"
    assert yuan(740350) == Decimal("7403.50") and str(yuan(5)) == "0.05"


def test_wechat_amounts_carry_the_symbol_after_the_sign():
    assert [wechat_amount(f) for f in (0, 5, 123456, -1250)] == ["¥0.00", "¥0.05", "¥1234.56", "-¥12.50"]
    assert wechat_amount(np.int64(465467)) == "¥4654.67"  # payloads may carry numpy integers


@pytest.mark.parametrize("amount", [7403.5, Decimal("7403.50"), "7403.50", True, None])
def test_an_amount_is_integer_fen_never_a_float_or_a_bool(amount):
    with pytest.raises(TypeError):
        format_yuan(amount)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        yuan(amount)  # type: ignore[arg-type]


@given(AMOUNTS)
def test_every_form_reads_back_as_the_same_fen(fen: int):
    if fen >= 0:  # what staff type is never negative
        assert yuan_to_fen(format_yuan(fen, grouping=False)) == fen
    assert yuan(fen) * 100 == fen
    assert format_yuan(fen) == f"{Decimal(fen).scaleb(-2):,.2f}"
    assert wechat_amount(fen).replace("¥", "") == format_yuan(fen, grouping=False)


@given(AMOUNTS)
def test_the_forms_it_replaced_wrote_the_same(fen: int):
    # the invoice's Decimal division, the outbox's digits by hand and the prepaid notes' float
    # (exact only below 2**53 / 100 fen, far above any amount here) all wrote the same text
    assert format_yuan(fen, grouping=False) == f"{Decimal(fen) / 100:.2f}"
    sign = "-" if fen < 0 else ""
    assert wechat_amount(fen) == f"{sign}¥{abs(fen) // 100}.{abs(fen) % 100:02d}"
    if abs(fen) < 2**53 // 1000:
        assert format_yuan(fen, grouping=False) == f"{fen / 100:.2f}"
