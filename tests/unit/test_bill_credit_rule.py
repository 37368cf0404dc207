"""Money for a bill: what it owes is paid, the rest is the owner's account credit
(settlement.billing.bills.split_to_bill), to the fen. Payments and refunds that come back both
divide this way; tests/integration/test_pay_ledger.py checks the ledger it keeps."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from settlement.billing.bills import MAX_PAYMENT_FEN, split_to_bill


@pytest.mark.parametrize(("amount", "owed", "parts"), [
    (465467, 465467, (465467, 0)),  # exactly what is owed
    (100000, 465467, (100000, 0)),  # part of it
    (500000, 465467, (465467, 34533)),  # more: the rest is credit
    (1, 0, (0, 1)),  # an open bill that owes nothing takes nothing
    (5000, -200, (0, 5000)),  # nor one paid beyond its total
    (5000, None, (0, 5000)),  # no open bill: all of it is credit
])
def test_the_bill_takes_what_it_owes_and_credit_the_rest(amount, owed, parts):
    assert split_to_bill(amount, owed) == parts


@given(st.integers(1, MAX_PAYMENT_FEN), st.one_of(st.none(), st.integers(-MAX_PAYMENT_FEN, MAX_PAYMENT_FEN)))
def test_no_fen_is_lost_or_made(amount: int, owed: int | None):
    to_bill, to_credit = split_to_bill(amount, owed)
    assert to_bill + to_credit == amount
    assert to_bill >= 0 and to_credit >= 0
    assert to_bill <= max(owed or 0, 0)
    assert to_credit == 0 or to_bill == max(owed or 0, 0)  # credit only once the bill is paid
