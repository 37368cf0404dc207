"""E-invoices per payment or per month, issued through the tax-system port (its fake here)."""

from __future__ import annotations

import datetime as dt
import secrets

import pytest

from settlement.billing import invoices
from settlement import models as m
from settlement.errors import Conflict, InvalidInput, NotFound
from settlement.fakes.tax_system import FakeTaxSystem, credit_code_ok, with_check
from settlement.clock import UTC

TAX_ID = with_check("91320412MA1XXXXX2")
WRONG_CHECK = TAX_ID[:-1] + ("0" if TAX_ID[-1] != "0" else "1")


async def _payment(owner: m.Owner, amount_fen: int, paid_at: dt.datetime) -> m.Payment:
    return await m.Payment.create(transaction_id=f"4200{secrets.token_hex(8)}", out_trade_no="T260301A1N1",
                                  channel=m.PaymentChannel.WECHAT, owner=owner, amount_fen=amount_fen,
                                  paid_at=paid_at)


async def test_an_invoice_per_payment_and_one_for_the_rest_of_the_month(db):
    owner = await m.Owner.create(name="常州某纺织有限公司")
    tax = FakeTaxSystem()
    first = await _payment(owner, 113000, dt.datetime(2026, 3, 3, 2, tzinfo=UTC))
    second = await _payment(owner, 56500, dt.datetime(2026, 3, 20, 2, tzinfo=UTC))
    await m.Refund.create(payment=second, out_refund_no="R-inv-1", amount_fen=500, reason="多充",
                          state=m.RefundState.SUCCEEDED)

    request = await invoices.request_for_payment(first.id, owner.id, " 常州某纺织有限公司 ", TAX_ID.lower())
    assert (request.amount_fen, request.tax_fen, request.buyer_tax_id) == (113000, 13000, TAX_ID)
    assert (await invoices.request_for_payment(first.id, owner.id, "常州某纺织有限公司", TAX_ID)).id == request.id
    month = await invoices.request_for_month(owner.id, "2026-03", "常州某纺织有限公司", TAX_ID,
                                             now=dt.datetime(2026, 4, 1, tzinfo=UTC))
    assert month.amount_fen == 56000  # the second payment less its refund, not the first again
    assert month.tax_fen == round(56000 * 0.13 / 1.13)

    assert await invoices.issue_requested(tax) == {"invoices_issued": 2, "invoices_failed": 0, "invoices_waiting": 0}
    issued = await m.InvoiceRequest.get(id=request.id)
    assert issued.state == m.InvoiceState.ISSUED and issued.invoice_number
    assert issued.invoice_number in issued.document and TAX_ID in issued.document
    assert "¥1000.00" in issued.document and "¥130.00" in issued.document and "¥1130.00" in issued.document
    assert await invoices.issue_requested(tax) == {"invoices_issued": 0, "invoices_failed": 0, "invoices_waiting": 0}
    assert len(tax.issued) == 2

    # a payment of a month invoiced as a whole gets no invoice of its own
    third = await _payment(owner, 1000, dt.datetime(2026, 3, 25, 2, tzinfo=UTC))
    with pytest.raises(Conflict):
        await invoices.request_for_payment(third.id, owner.id, "常州某纺织有限公司", TAX_ID)


async def test_refused_and_unavailable(db):
    owner = await m.Owner.create(name="张三")
    stranger = await m.Owner.create(name="李四")
    tax = FakeTaxSystem()
    payment = await _payment(owner, 20000, dt.datetime(2026, 3, 3, 2, tzinfo=UTC))
    assert credit_code_ok(TAX_ID) and not credit_code_ok(WRONG_CHECK)
    with pytest.raises(NotFound):
        await invoices.request_for_payment(payment.id, stranger.id, "李四", TAX_ID)
    for name, tax_id in (("", TAX_ID), ("张三", "123"), ("张三", "91320412MA1X-XXX2X")):
        with pytest.raises(InvalidInput):
            await invoices.request_for_payment(payment.id, owner.id, name, tax_id)
    with pytest.raises(Conflict):
        await invoices.request_for_month(owner.id, "2026-03", "张三", TAX_ID, now=dt.datetime(2026, 3, 20, tzinfo=UTC))
    assert not await m.InvoiceRequest.exists()

    request = await invoices.request_for_payment(payment.id, owner.id, "张三", WRONG_CHECK)
    assert (await invoices.issue_requested(tax))["invoices_failed"] == 1
    failed = await m.InvoiceRequest.get(id=request.id)
    assert failed.state == m.InvoiceState.FAILED and "tax id" in failed.failure
    # corrected by the owner, the same request goes again; the tax system is away once
    again = await invoices.request_for_payment(payment.id, owner.id, "张三", TAX_ID)
    assert (again.id, again.state, again.buyer_tax_id) == (request.id, m.InvoiceState.REQUESTED, TAX_ID)
    tax.unavailable = 1
    assert (await invoices.issue_requested(tax))["invoices_waiting"] == 1
    assert (await invoices.issue_requested(tax))["invoices_issued"] == 1
    assert (await m.InvoiceRequest.get(id=request.id)).state == m.InvoiceState.ISSUED
