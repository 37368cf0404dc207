"""Bills (电费账单): list, detail with lines, payments and e-invoices, e-bill link; payments made;
a paid bill's e-invoice asked for.

Paying comes with WeChat Pay ([pay]); until then there is no pay route at all.
"""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from miniprogram_api.common import api, ebill_url, settings
from miniprogram_api.pagination import decode_cursor, encode_cursor
from miniprogram_api.registry import Call
from miniprogram_api.schemas import (BillDetail, BillLineOut, BillQuery, BillSummary, InvoiceAsked, InvoiceOut, Page,
                                     PageQuery, PaymentOut)
from settlement.billing import ebill, invoices
from settlement.owners import owner_lists
from settlement.owners.access import Right, visible_plants
from settlement.models import Bill, BillLine, Contract, Payment
from settlement.clock import LOCAL, UTC
from webapp.json_errors import language_of

SUMMARY_FIELDS = ("id", "number", "plant_id", "plant__code", "cycle__period", "version", "state", "issued_at",
                  "due_on", "total_fen", "tax_fen", "paid_fen", "credit_applied_fen")


def _summary(row: dict) -> dict:
    return dict(id=row["id"], number=row["number"], plant_id=row["plant_id"], plant_code=row["plant__code"],
                period=row["cycle__period"], version=row["version"], state=str(row["state"]),
                issued_at=row["issued_at"], due_on=row["due_on"], total_fen=row["total_fen"],
                tax_fen=row["tax_fen"], paid_fen=row["paid_fen"], credit_applied_fen=row["credit_applied_fen"],
                owed_fen=row["total_fen"] - row["paid_fen"] - row["credit_applied_fen"])


@api.get("/bills", query=BillQuery, response=Page[BillSummary], tag="bills")
async def list_bills(request: web.Request, call: Call):
    """Bills of the user's plants, newest first, optionally of one state."""
    q: BillQuery = call.query
    secret = settings(request).secret_key
    rights = await visible_plants(call.principal)
    rows = await owner_lists.bill_page(sorted(rights), state=q.state, before_id=decode_cursor(q.cursor, secret),
                                       limit=q.limit + 1)
    more = len(rows) > q.limit
    rows = rows[:q.limit]
    # validated as one page, not 20 models: this is the API's busiest list
    return Page[BillSummary].model_validate({"items": [_row(r) for r in rows],
                                             "next_cursor": encode_cursor(rows[-1]["id"], secret) if more else None})


def _row(row: dict) -> dict:
    """A plain SQL row as the summary: times made aware (SQLite gives text), what is owed added."""
    out = dict(row, state=str(row["state"]), owed_fen=row["total_fen"] - row["paid_fen"] - row["credit_applied_fen"])
    if isinstance(out["issued_at"], str):
        out["issued_at"] = dt.datetime.fromisoformat(out["issued_at"])
    if out["issued_at"].tzinfo is None:
        out["issued_at"] = out["issued_at"].replace(tzinfo=UTC)
    return out


@api.get("/bills/{bill_id}", resource="bill", needs=Right.VIEW, response=BillDetail, tag="bills")
async def bill_detail(request: web.Request, call: Call):
    """One bill: its lines, what was paid, what is owed, its e-invoices, and the printable e-bill's link."""
    bill_id = call.ids["bill_id"]
    row = (await Bill.filter(id=bill_id).values(*SUMMARY_FIELDS, "plant__name", "written_off_at"))[0]
    lines = await BillLine.filter(bill_id=bill_id).order_by("seq")
    payments = await Payment.filter(bill_id=bill_id).order_by("paid_at", "id")
    # the contract version in force when the bill was issued is the one it was priced under
    issued_on = row["issued_at"].astimezone(LOCAL).date()
    contract = await Contract.filter(plant_id=row["plant_id"], effective_from__lte=issued_on) \
        .order_by("-effective_from").first()
    lang = language_of(request)  # the lines are worded as the caller's errors are
    return BillDetail(
        **_summary(row), plant_name=row["plant__name"], written_off_at=row["written_off_at"],
        discount=contract.discount if contract is not None else None,
        lines=[BillLineOut(seq=x.seq, kind=x.kind.value, description=ebill.line_text(x, lang), kwh=x.kwh,
                           unit_price=x.unit_price, amount_fen=x.amount_fen, tax_fen=x.tax_fen) for x in lines],
        payments=[PaymentOut(id=p.id, bill_id=p.bill_id, bill_number=row["number"], channel=p.channel.value,
                             amount_fen=p.amount_fen, paid_at=p.paid_at) for p in payments],
        invoices=[InvoiceOut(number=i.invoice_number, amount_fen=i.amount_fen, tax_fen=i.tax_fen,
                             issued_at=i.issued_at, state=i.state.value) for i in await invoices.bill_invoices(bill_id)],
        ebill_url=ebill_url(request, "bill", bill_id))


@api.post("/bills/{bill_id}/invoice", resource="bill", needs=Right.PAY, response=InvoiceAsked, tag="bills",
          errors=(409,),
          description="The buyer is the owner as on file (name and tax id). 409 ``bill_not_paid`` until the bill "
                      "is paid in full, ``no_tax_id`` when the owner has no valid tax id on file, "
                      "``nothing_to_invoice`` when all paid on it is invoiced otherwise. Asking again answers "
                      "the request there is (``made`` false).")
async def request_invoice(request: web.Request, call: Call):
    """Ask for the e-invoice of a paid bill now (the owner, or whoever has the pay right on its plant)."""
    asked, made = await invoices.request_for_bill(call.ids["bill_id"], openid=call.principal.openid)
    return InvoiceAsked(bill_id=call.ids["bill_id"], made=made, number=asked.invoice_number,
                        amount_fen=asked.amount_fen, tax_fen=asked.tax_fen, issued_at=asked.issued_at,
                        state=asked.state.value)


@api.get("/payments", query=PageQuery, response=Page[PaymentOut], tag="bills")
async def list_payments(request: web.Request, call: Call):
    """Payments made on the bills of the user's plants, newest first."""
    q: PageQuery = call.query
    secret = settings(request).secret_key
    after = decode_cursor(q.cursor, secret)
    rights = await visible_plants(call.principal)
    queryset = Payment.filter(bill__plant_id__in=list(rights))
    if after is not None:
        queryset = queryset.filter(id__lt=after)
    rows = await queryset.order_by("-id").limit(q.limit + 1).values(
        "id", "bill_id", "bill__number", "channel", "amount_fen", "paid_at")
    more = len(rows) > q.limit
    rows = rows[:q.limit]
    return Page[PaymentOut](
        items=[PaymentOut(id=r["id"], bill_id=r["bill_id"], bill_number=r["bill__number"], channel=str(r["channel"]),
                          amount_fen=r["amount_fen"], paid_at=r["paid_at"]) for r in rows],
        next_cursor=encode_cursor(rows[-1]["id"], secret) if more else None)
