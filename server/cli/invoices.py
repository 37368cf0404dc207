"""``pvsettle invoices …``: staff ask for a paid bill's e-invoice (电子发票) now.

==================================================  ==================================================
``pvsettle invoices request --bill NUMBER``         ask for the e-invoice of bill NUMBER (as printed on
``--staff ID``                                      the bill, e.g. ``202610-PV00001-1``); prints the
                                                    request ``{"bill", "request_key", "state", "made",
                                                    "amount_fen", "tax_fen", "buyer_name",
                                                    "buyer_tax_id", "number"}``
==================================================  ==================================================

It goes through :func:`settlement.billing.invoices.request_for_bill`, the rule the bot's 开票 and
the mini-program's ``POST /api/v1/bills/{bill_id}/invoice`` use too: the bill paid in full, the
owner's valid tax id on file as the buyer, audited (RequestInvoice, as the staff member
``--staff``, an active operator or admin). Asking again prints the request there is with
``"made": false``. The scheduler's ``invoices`` job hands the request to the tax system. A
refused request (no such bill or staff member, a bill not paid in full, no tax id on file,
nothing left to invoice) prints its reason to stderr and exits 2; nothing is changed.
"""

from __future__ import annotations

import argparse
import json
import sys

from server.cli.common import on_database


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``invoices`` command to the ``pvsettle`` parser."""
    invoices = subparsers.add_parser("invoices", help="e-invoices (电子发票) of paid bills: ask for one now")
    sub = invoices.add_subparsers(dest="action", metavar="ACTION", required=True)
    request = sub.add_parser("request", help="ask for a paid bill's e-invoice (the owner on file as the buyer)")
    request.add_argument("--bill", required=True, metavar="NUMBER",
                         help="the bill's number as printed on it (202610-PV00001-1), not its id")
    request.add_argument("--staff", type=int, required=True, metavar="ID",
                         help="the staff member who asks (an active operator or admin; the staff id)")
    request.set_defaults(func=cmd_request)


def _refused(action: str, message: str) -> int:
    print(f"pvsettle invoices {action}: {message}", file=sys.stderr)
    return 2


def cmd_request(args: argparse.Namespace) -> int:
    from settlement.billing import invoices
    from settlement.errors import DomainError, NotFound
    from settlement.models import Bill, Staff

    number = args.bill.strip()

    async def work():
        bill = await Bill.get_or_none(number=number) if 0 < len(number) <= 32 else None
        if bill is None:
            raise NotFound(f"no bill {number[:32]!r}", code="unknown_bill", params={"bill": number[:32]})
        staff = await Staff.get_or_none(id=args.staff) if 0 < args.staff < 2**31 else None
        if staff is None:
            raise NotFound(f"no staff member {args.staff}", code="unknown_staff")
        asked, made = await invoices.request_for_bill(bill.id, staff=staff)
        return bill, asked, made

    try:
        bill, asked, made = on_database(work)
    except DomainError as exc:
        return _refused("request", exc.message)
    print(json.dumps({"bill": bill.number, "request_key": asked.request_key, "state": asked.state.value,
                      "made": made, "amount_fen": asked.amount_fen, "tax_fen": asked.tax_fen,
                      "buyer_name": asked.buyer_name, "buyer_tax_id": asked.buyer_tax_id,
                      "number": asked.invoice_number}, ensure_ascii=False))
    return 0
