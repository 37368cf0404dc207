"""E-invoices of paid bills: requested once the bill is paid, issued by the scheduler's ``invoices``
job through the tax system (its fake), retried while it is away, listed in GET /api/v1/bills/{id}.

The owner's bill is 1,234.56 yuan, 200.00 paid; the rest, 1,034.56, is paid here. VAT at 13 %
included: 123456 × 0.13 / 1.13 = 14202.69 → 14203 fen.
"""

from __future__ import annotations

import datetime as dt

import pytest

from server import scheduler
from settlement import models as m
from settlement.billing import invoices
from settlement.errors import Conflict
from settlement.fakes.tax_system import FakeTaxSystem, with_check
from settlement.notify.outbox import NotifyApps
from tests.integration.miniapp_support import *  # noqa: F403
from tests.integration.miniapp_support import login, owner_world
from settlement.clock import UTC

TAX_ID = with_check("91320412MA1XXXXX2")
NOW = dt.datetime(2026, 10, 25, 2, tzinfo=UTC)


@pytest.fixture
async def owner(api, fake_wechat, settings):
    world, identity = await owner_world("PV-1", "常州某厂", "o-owner", settings.mp_appid)
    await m.Owner.filter(id=world.owner.id).update(tax_id=TAX_ID)
    return world, await login(api, fake_wechat, "o-owner")


async def pay_the_rest_of(bill: m.Bill, transaction_id: str) -> None:
    await m.Payment.create(transaction_id=transaction_id, channel=m.PaymentChannel.WECHAT, bill=bill,
                           owner_id=bill.owner_id, amount_fen=103456, paid_at=NOW)
    await m.Bill.filter(id=bill.id).update(state=m.BillState.PAID, paid_fen=123456)


async def pay_the_rest(bill: m.Bill) -> None:
    await pay_the_rest_of(bill, "wx-rest")


def context(tax: FakeTaxSystem | None) -> scheduler.JobContext:
    return scheduler.JobContext(tax=tax, notify=NotifyApps("wx-mp", "wx-oa"))


async def invoices_job(tax: FakeTaxSystem | None) -> dict[str, int]:
    [job] = [j for j in scheduler.JOBS if j.name == "invoices"]
    return await job.run(NOW, context(tax))


async def test_a_paid_bill_gets_exactly_one_invoice_and_the_api_lists_it(api, owner):
    world, headers = owner
    tax = FakeTaxSystem()
    assert (await invoices_job(tax))["invoices_requested"] == 0  # partly paid: nothing yet
    await pay_the_rest(world.bill)
    assert await invoices_job(tax) == {"invoices_requested": 1, "invoices_without_tax_id": 0,
                                       "invoices_nothing_to_invoice": 0, "invoices_issued": 1,
                                       "invoices_failed": 0, "invoices_waiting": 0}
    # run again (and again): the same one invoice
    for _ in range(2):
        assert (await invoices_job(tax))["invoices_requested"] == 0
    assert len(tax.issued) == 1 and await m.InvoiceRequest.all().count() == 1
    [(draft, issued)] = tax.issued.values()
    assert (draft.request_key, draft.buyer_name, draft.buyer_tax_id, draft.amount_fen, draft.tax_fen) == (
        f"bill:{world.bill.id}", "常州某厂", TAX_ID, 123456, 14203)

    body = await (await api.get(f"/api/v1/bills/{world.bill.id}", headers=headers)).json()
    [listed] = body["invoices"]
    assert {k: listed[k] for k in ("number", "amount_fen", "tax_fen", "state")} == {
        "number": issued.number, "amount_fen": 123456, "tax_fen": 14203, "state": "issued"}
    stored = (await m.InvoiceRequest.get()).issued_at
    assert dt.datetime.fromisoformat(listed["issued_at"].replace("Z", "+00:00")) == stored
    # its payments get no invoice of their own now
    payment = await m.Payment.get(transaction_id="wx-rest")
    with pytest.raises(Conflict):
        await invoices.request_for_payment(payment.id, world.owner.id, "常州某厂", TAX_ID)


async def test_the_tax_system_away_is_retried_then_issued_once(api, owner):
    world, headers = owner
    await pay_the_rest(world.bill)
    tax = FakeTaxSystem(unavailable=2)
    first = await invoices_job(tax)
    assert (first["invoices_requested"], first["invoices_issued"], first["invoices_waiting"]) == (1, 0, 1)
    body = await (await api.get(f"/api/v1/bills/{world.bill.id}", headers=headers)).json()
    assert body["invoices"] == [{"number": None, "amount_fen": 123456, "tax_fen": 14203, "issued_at": None,
                                 "state": "requested"}]
    # a process without a tax system keeps the request as it is
    assert (await invoices_job(None)) == {"invoices_requested": 0, "invoices_without_tax_id": 0,
                                          "invoices_nothing_to_invoice": 0}
    second = await invoices_job(tax)
    assert (second["invoices_issued"], second["invoices_waiting"]) == (0, 1)
    third = await invoices_job(tax)
    assert (third["invoices_requested"], third["invoices_issued"], third["invoices_waiting"]) == (0, 1, 0)
    assert (await invoices_job(tax))["invoices_issued"] == 0
    assert len(tax.issued) == 1 and tax.calls == 3
    request = await m.InvoiceRequest.get()
    assert (request.state, request.invoice_number, request.amount_fen) == (
        m.InvoiceState.ISSUED, tax.issued[f"bill:{world.bill.id}"][1].number, 123456)


async def test_an_owner_without_a_tax_id_on_file_gets_no_invoice_by_itself(api, owner):
    world, _ = owner
    await m.Owner.filter(id=world.owner.id).update(tax_id=None)
    await pay_the_rest(world.bill)
    done = await invoices_job(FakeTaxSystem())
    assert (done["invoices_requested"], done["invoices_without_tax_id"]) == (0, 0)
    assert await m.InvoiceRequest.all().count() == 0
    # a malformed one on file is counted, and asked for nothing
    await m.Owner.filter(id=world.owner.id).update(tax_id="not-a-tax-id")
    done = await invoices_job(FakeTaxSystem())
    assert (done["invoices_requested"], done["invoices_without_tax_id"]) == (0, 1)
    assert await m.InvoiceRequest.all().count() == 0


async def test_bills_that_get_no_invoice_do_not_hold_back_those_after_them(api, owner, settings):
    world, _ = owner
    await m.Owner.filter(id=world.owner.id).update(tax_id="not-a-tax-id")
    await pay_the_rest(world.bill)
    other, _ = await owner_world("PV-2", "别家", "o-other", settings.mp_appid)
    await m.Owner.filter(id=other.owner.id).update(tax_id=TAX_ID)
    await pay_the_rest_of(other.bill, "wx-rest-2")
    done = await invoices.request_for_paid_bills(limit=1)
    assert (done["invoices_requested"], done["invoices_without_tax_id"]) == (1, 1)
    assert await m.InvoiceRequest.filter(request_key=f"bill:{other.bill.id}").count() == 1


async def test_another_owners_bill_is_404_as_before(api, owner, fake_wechat, settings):
    world, _ = owner
    await pay_the_rest(world.bill)
    await invoices_job(FakeTaxSystem())
    await owner_world("PV-2", "别家", "o-other", settings.mp_appid)
    other = await login(api, fake_wechat, "o-other")
    resp = await api.get(f"/api/v1/bills/{world.bill.id}", headers=other)
    assert resp.status == 404
    assert "invoices" not in await resp.text()


async def test_the_e_bill_and_its_pdf_show_the_invoice_number_once_issued(api, owner):
    import io

    import pypdf

    from settlement.billing import ebill, ebill_pdf

    world, _ = owner
    await pay_the_rest(world.bill)
    tax = FakeTaxSystem(unavailable=1)
    await invoices_job(tax)  # requested, not issued: nothing to show yet
    assert "发票号码" not in await ebill.render_bill(world.bill.id)
    await invoices_job(tax)
    [(_, issued)] = tax.issued.values()
    page = await ebill.render_bill(world.bill.id)
    assert f'<td class="invoice-number">{issued.number}</td>' in page and "发票号码" in page
    assert "1,234.56" in page and "142.03" in page
    view = await ebill.bill_view(world.bill.id, "en")
    assert [(i["number"], i["amount"], i["tax"]) for i in view["bill"]["invoices"]] == [
        (issued.number, "1,234.56", "142.03")]
    text = "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(ebill_pdf.render_pdf(view))).pages)
    assert issued.number in text and "Invoice number" in text
