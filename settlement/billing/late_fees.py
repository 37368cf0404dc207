"""Late fees (违约金): how much a bill owes for being late, and the daily accrual that adds it.

The fee itself is the engine's (:mod:`billing_engine.latefee`, DOMAIN.md "Late fees"); here it is
applied to a bill over the spans its unpaid principal stayed constant, and added as one late-fee
line per day of accrual (the accrual key makes a day's line exactly once, whichever process
writes it). The scheduler runs :func:`accrue_late_fees` daily.
"""

from __future__ import annotations

import datetime as dt

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from billing_engine.latefee import LateFeeRates, late_fee_fen
from settlement import audit
from settlement.billing.bills import OPEN, state_of
from settlement.models import Bill, BillLine, LineKind, OwnerKind
from settlement.clock import LOCAL, local_today


def _late_fee_total(principal: int, due: dt.date, payments: list[tuple[dt.date, int]], through: dt.date,
                    residential: bool, rates: LateFeeRates) -> int:
    """The whole late fee of a bill from the day after ``due`` through ``through``.

    The unpaid principal is constant between payments, so the fee is a sum over those spans,
    each computed by the engine as the fee to its end minus the fee to its start (both counted
    from the due date, so the year-end split stays where the rules put it). The 1 元 minimum
    applies once, to the total.
    """
    no_minimum = LateFeeRates(residential=rates.residential, current_year=rates.current_year,
                              cross_year=rates.cross_year, minimum_fen=0)
    total, unpaid, start = 0, principal, due
    for day, amount in sorted(payments) + [(through, 0)]:
        end = min(max(day, due), through)
        if unpaid > 0 and end > start:
            total += late_fee_fen(unpaid, due, end, residential=residential, rates=no_minimum) - \
                late_fee_fen(unpaid, due, start, residential=residential, rates=no_minimum)
        start = max(start, end)
        unpaid = max(unpaid - amount, 0)
    return max(total, rates.minimum_fen) if total > 0 else 0


def late_fee_to_date(bill: Bill, today: dt.date) -> tuple[int, int]:
    """(the whole late fee of the bill through yesterday, what its late-fee lines charge already)
    [fen], for a bill whose lines, payments, owner and plant contracts are loaded.

    The fee runs through yesterday: today is not over.
    """
    contract = max(bill.plant.contracts, key=lambda c: c.effective_from)
    rates = LateFeeRates(residential=contract.late_fee_rate, current_year=contract.late_fee_rate,
                         cross_year=contract.late_fee_rate_cross_year)
    principal = sum(l.amount_fen for l in bill.lines if l.kind != LineKind.LATE_FEE) - bill.credit_applied_fen
    payments = [(p.paid_at.astimezone(LOCAL).date(), p.amount_fen) for p in bill.payments]
    fee = _late_fee_total(principal, bill.due_on, payments, today - dt.timedelta(days=1),
                          bill.owner.kind == OwnerKind.RESIDENTIAL, rates)
    charged = sum(l.amount_fen for l in bill.lines if l.kind == LineKind.LATE_FEE)
    return fee, charged


async def accrue_late_fees(today: dt.date | None = None) -> int:
    """Add the late fee grown since the last accrual to every overdue bill; returns lines added."""
    today = today or local_today()
    added = 0
    bills = await Bill.filter(state__in=list(OPEN), due_on__lt=today).prefetch_related("lines", "payments", "owner",
                                                                                        "plant__contracts")
    for bill in bills:
        fee, charged = late_fee_to_date(bill, today)
        if fee <= charged:
            continue
        key = (today - dt.timedelta(days=1)).isoformat()
        try:
            async with in_transaction() as conn:
                locked = await Bill.filter(id=bill.id).using_db(conn).select_for_update().first()
                seq = await BillLine.filter(bill_id=bill.id).using_db(conn).count() + 1
                await BillLine.create(bill_id=bill.id, seq=seq, kind=LineKind.LATE_FEE,
                                      description=f"违约金（至 {key}）", amount_fen=fee - charged,
                                      accrual_key=key, using_db=conn)
                locked.total_fen += fee - charged
                locked.state = state_of(locked)
                await locked.save(using_db=conn, update_fields=["total_fen", "state"])
                await audit.record(audit.SYSTEM, "AccrueLateFee", "bill", bill.id,
                                   before={"total_fen": locked.total_fen - (fee - charged)},
                                   after={"total_fen": locked.total_fen, "late_fee_through": key}, using_db=conn)
            added += 1
        except IntegrityError:
            continue  # this day's accrual was written by another process
    return added
