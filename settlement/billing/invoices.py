"""E-invoices (电子发票) for money an owner paid: one per paid bill, per payment, or per owner and month.

A request is an :class:`~settlement.models.InvoiceRequest` keyed ``bill:<id>``, ``payment:<id>``
or ``month:<owner>:<YYYY-MM>`` (asking again returns the same request), with the buyer's tax
details as the owner gives them. A bill that is paid gets its request by itself
(:func:`request_for_paid_bills`, the scheduler's ``invoices`` job), with the owner's name and tax id
on file; an owner without a valid tax id on file gets none by itself (a personal buyer's details
are asked for, not guessed). The request is made from the bill's state, not from the payment
event, so a payment recorded by any path (WeChat Pay, an import, staff, a prepaid true-up) and
a run that failed half-way lose nothing: the next run makes what is missing, and the unique key
makes it once. The same request can be asked for at once (:func:`request_for_bill`): by a
mini-program user with the pay right on the bill's plant, or by staff (the bot's 开票, ``pvsettle
invoices request``), under the same rules — the bill paid in full, the owner's valid tax id on
file, something left to invoice — audited as RequestInvoice; asking again answers the request
there is. :func:`issue_requested` hands requested ones to the tax
system (:class:`settlement.ports.tax.TaxInvoicing`) and keeps what became of each::

    requested ──issued──▶ issued (number, rendered document)
        ├──refused by the tax system──▶ failed (reason; asking again with corrected details
        │                                        makes it requested again)
        └──tax system away──▶ requested (tried again on the next run)

Money is never invoiced twice: a month's invoice covers the owner's payments in that local
month that have no invoice of their own (nor their bill's), a payment in a month already invoiced
gets none, and a bill's invoice covers its payments that have none of their own (nor their
month's); what a bill was paid from prepaid credit was invoiced with the top-up, if at all.
The amount is what was paid less what was refunded (asked or done); VAT is taken out of it at
the electricity rate (DOMAIN.md "Money": 13 %), rounded once.

Errors are :mod:`settlement.errors`'.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from billing_engine import money
from settlement import audit, templating
from settlement.cycles.runs import parse_period
from settlement.errors import Conflict, Forbidden, InvalidInput, NotFound
from settlement.models import (
    Bill,
    BillState,
    InvoiceRequest,
    InvoiceState,
    Owner,
    Payment,
    Refund,
    RefundState,
    Staff,
    StaffRole,
)
from settlement.money_text import format_yuan
from settlement.ports.tax import InvoiceDraft, TaxInvoicing, TaxRefused, TaxUnavailable
from settlement.clock import LOCAL, UTC, utc_now

VAT_RATE = Decimal("0.13")
ITEM = "*供电*电费"
TAX_ID = re.compile(r"^[0-9A-Z]{15,20}$")
_ENV = templating.environment()


def _buyer(name: str, tax_id: str) -> tuple[str, str]:
    name, tax_id = (name or "").strip(), (tax_id or "").strip().upper()
    if not name or len(name) > 100:
        raise InvalidInput("the buyer's name is 1 to 100 characters", code="bad_buyer")
    if not TAX_ID.match(tax_id):
        raise InvalidInput("the buyer's tax id is 15 to 20 letters and digits", code="bad_tax_id")
    return name, tax_id


async def _net_fen(payment: Payment) -> int:
    refunds = await Refund.filter(payment_id=payment.id, state__in=[RefundState.PENDING, RefundState.SUCCEEDED]) \
        .values_list("amount_fen", flat=True)
    return payment.amount_fen - int(sum(refunds))


def _tax(amount_fen: int) -> int:
    return int(money.tax_fen(amount_fen, money.ppm(VAT_RATE), included=True))


def _month_of(payment: Payment) -> str:
    return f"{payment.paid_at.astimezone(LOCAL):%Y-%m}"


async def _save(key: str, owner_id: int, fields: dict) -> InvoiceRequest:
    existing = await InvoiceRequest.get_or_none(request_key=key)
    if existing is not None:
        if existing.state != InvoiceState.FAILED:
            return existing
        # asked again after a refusal, with details the owner may have corrected
        await InvoiceRequest.filter(id=existing.id, state=InvoiceState.FAILED).update(
            state=InvoiceState.REQUESTED, failure=None, **fields)
        return await InvoiceRequest.get(id=existing.id)
    try:
        return await InvoiceRequest.create(request_key=key, owner_id=owner_id, **fields)
    except IntegrityError:  # asked twice at once: one request
        return await InvoiceRequest.get(request_key=key)


def bill_key(bill_id: int) -> str:
    """The request key of a bill's own invoice."""
    return f"bill:{bill_id}"


async def _bill_invoiced(bill_id: int | None) -> bool:
    return bill_id is not None and await InvoiceRequest.filter(
        request_key=bill_key(bill_id), state__not=InvoiceState.FAILED).exists()


async def request_for_payment(payment_id: int, owner_id: int, buyer_name: str, buyer_tax_id: str) -> InvoiceRequest:
    """An e-invoice for one of the owner's payments (a bill payment or a prepaid top-up).

    Raises NotFound (not the owner's payment), Conflict (its month is invoiced already, or
    nothing is left after refunds), InvalidInput (buyer details).
    """
    name, tax_id = _buyer(buyer_name, buyer_tax_id)
    payment = await Payment.get_or_none(id=payment_id)
    if payment is None or payment.owner_id != owner_id:
        raise NotFound("no such payment", code="not_found")
    month = _month_of(payment)
    if await InvoiceRequest.filter(request_key=f"month:{owner_id}:{month}", state__not=InvoiceState.FAILED).exists():
        raise Conflict(f"{month} is invoiced as a whole already", code="already_invoiced")
    if await _bill_invoiced(payment.bill_id):
        raise Conflict("the bill this payment paid is invoiced already", code="already_invoiced")
    amount = await _net_fen(payment)
    if amount <= 0:
        raise Conflict("nothing of this payment is left to invoice", code="nothing_to_invoice")
    return await _save(f"payment:{payment.id}", owner_id, {
        "payment_id": payment.id, "buyer_name": name, "buyer_tax_id": tax_id, "amount_fen": amount,
        "tax_fen": _tax(amount)})


async def request_for_month(owner_id: int, month: str, buyer_name: str, buyer_tax_id: str, *,
                            now: dt.datetime | None = None) -> InvoiceRequest:
    """One e-invoice for the owner's payments in a local calendar month that is over.

    Raises NotFound (no owner), InvalidInput (month, buyer), Conflict (the month is not over,
    or nothing in it is left to invoice).
    """
    name, tax_id = _buyer(buyer_name, buyer_tax_id)
    year, mon = parse_period(month)
    if await Owner.get_or_none(id=owner_id) is None:
        raise NotFound("no such owner", code="not_found")
    first = dt.datetime(year, mon, 1, tzinfo=LOCAL)
    end = dt.datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=LOCAL)
    if (now or utc_now()) < end:
        raise Conflict(f"{month} is not over yet", code="month_open")
    payments = await Payment.filter(owner_id=owner_id, paid_at__gte=first.astimezone(UTC),
                                    paid_at__lt=end.astimezone(UTC))
    own = set(await InvoiceRequest.filter(payment_id__in=[p.id for p in payments],
                                          state__not=InvoiceState.FAILED).values_list("payment_id", flat=True))
    bills = set(await InvoiceRequest.filter(
        request_key__in=[bill_key(p.bill_id) for p in payments if p.bill_id is not None],
        state__not=InvoiceState.FAILED).values_list("request_key", flat=True))
    own |= {p.id for p in payments if p.bill_id is not None and bill_key(p.bill_id) in bills}
    amount = sum([await _net_fen(p) for p in payments if p.id not in own])
    if amount <= 0:
        raise Conflict(f"nothing paid in {month} is left to invoice", code="nothing_to_invoice")
    return await _save(f"month:{owner_id}:{month}", owner_id, {
        "month": month, "buyer_name": name, "buyer_tax_id": tax_id, "amount_fen": amount, "tax_fen": _tax(amount)})


async def _bill_amount_fen(bill: Bill) -> int:
    """What was paid against the bill and is not invoiced otherwise [fen]."""
    amount = 0
    for payment in await Payment.filter(bill_id=bill.id):
        if await InvoiceRequest.filter(payment_id=payment.id, state__not=InvoiceState.FAILED).exists():
            continue
        if await InvoiceRequest.filter(request_key=f"month:{bill.owner_id}:{_month_of(payment)}",
                                       state__not=InvoiceState.FAILED).exists():
            continue
        amount += await _net_fen(payment)
    return amount


async def request_for_paid_bills(*, limit: int = 100) -> dict[str, int]:
    """Make the one invoice request of each paid bill that has none yet (safe to run again).

    The buyer is the owner as on file (name, tax id). Bills whose owner has no tax id are not
    looked at; those whose owner's tax id is malformed, or whose payments are all invoiced
    otherwise (or were credit), get none and are counted. At most ``limit`` requests a run.

    Returns
    -------
    dict
        ``{"invoices_requested": n, "invoices_without_tax_id": n, "invoices_nothing_to_invoice": n}``.
    """
    done = {"invoices_requested": 0, "invoices_without_tax_id": 0, "invoices_nothing_to_invoice": 0}
    asked = {int(k.split(":", 1)[1]) for k in await InvoiceRequest.filter(request_key__startswith="bill:")
             .values_list("request_key", flat=True)}
    # no limit on the bills looked at: a bill skipped (no valid tax id, nothing left to invoice) is
    # looked at again each run, and a limit would let such bills hold back the ones after them
    paid = await Bill.filter(state=BillState.PAID, owner__tax_id__isnull=False).exclude(id__in=list(asked)) \
        .order_by("id").prefetch_related("owner")
    for bill in paid:
        if done["invoices_requested"] >= limit:
            break
        try:
            name, tax_id = _buyer(bill.owner.name, bill.owner.tax_id or "")
        except InvalidInput:
            done["invoices_without_tax_id"] += 1
            continue
        amount = await _bill_amount_fen(bill)
        if amount <= 0:
            done["invoices_nothing_to_invoice"] += 1
            continue
        await _save(bill_key(bill.id), bill.owner_id, {
            "buyer_name": name, "buyer_tax_id": tax_id, "amount_fen": amount, "tax_fen": _tax(amount)})
        done["invoices_requested"] += 1
    return done


async def request_for_bill(bill_id: int, *, staff: Staff | None = None,
                           openid: str | None = None) -> tuple[InvoiceRequest, bool]:
    """The e-invoice of one paid bill, asked for now rather than left to the ``invoices`` job.

    The buyer is the owner as on file (name, tax id), as for the requests the job makes, so the
    two can never ask differently for the same bill. Asking again answers the request there is
    (requested or issued) and changes nothing; one the tax system refused is asked again with
    the owner's details as they are now.

    Parameters
    ----------
    bill_id : int
    staff : Staff, optional
        The staff member who asks (the bot's 开票, the CLI): an active operator or admin.
    openid : str, optional
        The mini-program user who asks; the caller has checked their pay right on the bill's plant.
        Without it, ``staff`` is needed.

    Returns
    -------
    (InvoiceRequest, bool)
        The bill's request, and whether this call made it (or asked again after a refusal).

    Raises
    ------
    Forbidden
        No ``openid`` and ``staff`` is missing or not an active operator or admin (``role_required``).
    NotFound
        No bill ``bill_id`` (``unknown_bill``).
    Conflict
        The bill is not paid in full (``bill_not_paid``), its owner has no valid tax id on file
        (``no_tax_id``: a personal buyer's details are asked for, never guessed), or everything
        paid on it is invoiced otherwise or was account credit (``nothing_to_invoice``).
    """
    if openid is None and (staff is None or not staff.active
                           or staff.role not in (StaffRole.OPERATOR, StaffRole.ADMIN)):
        raise Forbidden("requesting an invoice needs the operator or admin role", code="role_required")
    key = bill_key(bill_id)
    async with in_transaction() as conn:
        # the bill locked: two requests for it at once are one after the other, the second answered
        bill = await Bill.filter(id=bill_id).using_db(conn).select_for_update().first()
        if bill is None:
            raise NotFound(f"no bill {bill_id}", code="unknown_bill", params={"bill": bill_id})
        existing = await InvoiceRequest.get_or_none(request_key=key).using_db(conn)
        if existing is not None and existing.state != InvoiceState.FAILED:
            return existing, False
        if bill.state != BillState.PAID:
            raise Conflict(f"bill {bill.number} is {bill.state.value}, not paid in full", code="bill_not_paid",
                           params={"bill": bill.number})
        owner = await Owner.get(id=bill.owner_id).using_db(conn)
        try:
            name, tax_id = _buyer(owner.name, owner.tax_id or "")
        except InvalidInput:
            raise Conflict(f"owner {owner.id} has no valid tax id on file", code="no_tax_id") from None
        amount = await _bill_amount_fen(bill)
        if amount <= 0:
            raise Conflict(f"nothing paid on bill {bill.number} is left to invoice", code="nothing_to_invoice")
        fields = {"buyer_name": name, "buyer_tax_id": tax_id, "amount_fen": amount, "tax_fen": _tax(amount)}
        before = None
        if existing is not None:  # refused by the tax system before: asked again with today's details
            before = {"state": existing.state, "failure": existing.failure}
            await InvoiceRequest.filter(id=existing.id).using_db(conn).update(
                state=InvoiceState.REQUESTED, failure=None, **fields)
            request = await InvoiceRequest.get(id=existing.id).using_db(conn)
        else:
            try:
                async with in_transaction():  # a savepoint: the invoices job may have made it meanwhile
                    request = await InvoiceRequest.create(request_key=key, owner_id=bill.owner_id, **fields)
            except IntegrityError:
                return await InvoiceRequest.get(request_key=key).using_db(conn), False
        await audit.record(audit.actor_of(staff, openid=openid), "RequestInvoice", "bill", bill.id, before=before,
                           after={"request": request.id, "request_key": key, "amount_fen": amount,
                                  "tax_fen": fields["tax_fen"], "buyer_tax_id": tax_id, "state": request.state},
                           using_db=conn)
    return request, True


async def bill_invoices(bill_id: int) -> list[InvoiceRequest]:
    """The invoices of a bill: its own and those of its payments, oldest first."""
    payments = await Payment.filter(bill_id=bill_id).values_list("id", flat=True)
    keys = [bill_key(bill_id), *(f"payment:{p}" for p in payments)]
    return await InvoiceRequest.filter(request_key__in=keys).order_by("created_at", "id")


def render(request: InvoiceRequest) -> str:
    """The issued invoice as an HTML document."""
    return _ENV.get_template("invoice/e_invoice.html").render(
        number=request.invoice_number, issued_on=f"{request.issued_at.astimezone(LOCAL):%Y年%m月%d日}",
        buyer_name=request.buyer_name, buyer_tax_id=request.buyer_tax_id,
        item=ITEM if request.month is None else f"{ITEM}（{request.month}）",
        net_yuan=format_yuan(request.amount_fen - request.tax_fen, grouping=False), vat_percent=f"{VAT_RATE * 100:.0f}",
        tax_yuan=format_yuan(request.tax_fen, grouping=False),
        amount_yuan=format_yuan(request.amount_fen, grouping=False))


async def issue_requested(tax: TaxInvoicing, *, limit: int = 100) -> dict[str, int]:
    """Ask the tax system for every requested invoice; returns counts of what became of them."""
    done = {"invoices_issued": 0, "invoices_failed": 0, "invoices_waiting": 0}
    for request in await InvoiceRequest.filter(state=InvoiceState.REQUESTED).order_by("id").limit(limit):
        draft = InvoiceDraft(request_key=request.request_key, buyer_name=request.buyer_name,
                             buyer_tax_id=request.buyer_tax_id, item=ITEM, amount_fen=request.amount_fen,
                             tax_fen=request.tax_fen, vat_rate=str(VAT_RATE))
        try:
            issued = await tax.issue(draft)
        except TaxUnavailable:
            done["invoices_waiting"] += 1
            continue
        except TaxRefused as exc:
            await InvoiceRequest.filter(id=request.id, state=InvoiceState.REQUESTED).update(
                state=InvoiceState.FAILED, failure=exc.message[:200])
            done["invoices_failed"] += 1
            continue
        request.invoice_number, request.issued_at = issued.number, issued.issued_at
        await InvoiceRequest.filter(id=request.id, state=InvoiceState.REQUESTED).update(
            state=InvoiceState.ISSUED, invoice_number=issued.number, issued_at=issued.issued_at,
            document=render(request))
        done["invoices_issued"] += 1
    return done
