"""Dunning: reminders of unpaid bills on each contract's schedule, escalated to staff, stopped by payment.

:func:`run` (called by the scheduler each tick) writes, for every open bill, the reminder of the
latest stage it has reached — stages are days from the due date, from the contract's
:class:`DunningPlan` or :data:`DEFAULT_OFFSETS` (3 days before, the due day, +7, +15, +30) — once
per stage (dedupe key ``bill:<id>:ArrearsReminder:<stage>``), and from ``escalate_after`` days
(default 30) one escalation to every active staff member. A missed tick does not send the
stages it skipped: only the latest one. Each reminder states what is owed with the late fee
to date (the fee runs through yesterday, as :func:`settlement.billing.late_fees.accrue_late_fees` charges
it, so a fee not yet accrued is included).

Payment stops dunning at once: :func:`stale_reasons` is asked by the dispatcher right before it
sends a reminder, and a bill no longer open fails its reminder with the reason ``paid`` (or
``written_off``); :func:`run` also cancels the pending reminders of such bills.
Auto-confirm notices are checked the same way: a form already answered fails its notice with
``answered``.
"""

from __future__ import annotations

import datetime as dt

from tortoise.transactions import in_transaction

from settlement.notify import outbox
from settlement.billing.bills import OPEN, owed_fen
from settlement.billing.late_fees import late_fee_to_date
from settlement.models import (Bill, BillState, ConfirmationForm, FormState, OutboxMessage, OutboxState)
from settlement.clock import LOCAL, UTC, utc_now

DEFAULT_OFFSETS = (-3, 0, 7, 15, 30)
DEFAULT_ESCALATE_AFTER = 30


def _plan_of(bill: Bill) -> tuple[tuple[int, ...], int]:
    contract = max(bill.plant.contracts, key=lambda c: c.effective_from)
    plan = getattr(contract, "dunning_plan", None)
    if plan is None or not isinstance(plan.offsets, list) or not plan.offsets:
        return DEFAULT_OFFSETS, DEFAULT_ESCALATE_AFTER
    return tuple(sorted(int(o) for o in plan.offsets)), int(plan.escalate_after)


def amount_with_late_fee(bill: Bill, today: dt.date) -> tuple[int, int]:
    """(owed with the late fee to date, the whole late fee to date) [fen] of a bill whose lines,
    payments, owner and plant contracts are loaded."""
    fee, charged = late_fee_to_date(bill, today)
    return owed_fen(bill) + max(fee - charged, 0), max(fee, charged)


async def run(now: dt.datetime | None = None, *, apps: outbox.NotifyApps) -> dict[str, int]:
    """Write the reminders and escalations due at ``now``; cancel those of bills paid meanwhile.

    Returns ``{"reminders", "escalations", "cancelled"}`` (rows offered; repeats are no-ops).
    """
    now = (now or utc_now()).astimezone(UTC)
    today = now.astimezone(LOCAL).date()
    cancelled = await cancel_paid()
    # the earliest stage of any plan: a bill due later than that is not reminded yet
    earliest = min([DEFAULT_OFFSETS[0]] + [min(p) for p in await _plan_offsets()])
    bills = await Bill.filter(state__in=list(OPEN), due_on__lte=today - dt.timedelta(days=earliest)) \
        .prefetch_related("lines", "payments", "owner", "plant__contracts__dunning_plan")
    reminders = escalations = 0
    async with in_transaction() as conn:
        items = []
        for bill in bills:
            offsets, escalate_after = _plan_of(bill)
            days = (today - bill.due_on).days
            reached = [o for o in offsets if o <= days]
            if not reached:
                continue
            owed, fee = amount_with_late_fee(bill, today)
            if owed <= 0:
                continue
            stage = reached[-1]
            items.append((bill.owner_id, {"bill_number": bill.number, "plant_name": bill.plant.name,
                                          "owed_fen": owed, "late_fee_fen": fee, "due_on": bill.due_on,
                                          "stage": stage, "bill_id": bill.id},
                          f"bill:{bill.id}:ArrearsReminder:{stage}"))
            if days >= escalate_after:
                escalations += len(await outbox.notify_staff(
                    "ArrearsEscalated", "arrears_escalation",
                    {"bill_number": bill.number, "owner_name": bill.owner.name, "plant_name": bill.plant.name,
                     "owed_fen": owed, "days_overdue": days}, f"bill:{bill.id}:ArrearsEscalated",
                    using_db=conn, apps=apps, now=now))
        reminders = await outbox.notify_owners("ArrearsReminder", "arrears_reminder", items, using_db=conn,
                                               apps=apps, now=now)
    return {"reminders": reminders, "escalations": escalations, "cancelled": cancelled}


async def _plan_offsets() -> list[list[int]]:
    from settlement.models import DunningPlan

    return [list(o) for o in await DunningPlan.all().values_list("offsets", flat=True) if o]


def _context_id(row: OutboxMessage, name: str) -> int | None:
    value = ((row.payload or {}).get("context") or {}).get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


async def stale_reasons(rows: list[OutboxMessage]) -> dict[int, str]:
    """Rows no longer worth sending, by id, with the reason: reminders of bills no longer open
    (``paid``, ``written_off``) and auto-confirm notices of forms already answered."""
    bill_rows = {row.id: _context_id(row, "bill_id") for row in rows if row.template == "arrears_reminder"}
    form_rows = {row.id: _context_id(row, "form_id") for row in rows if row.template == "auto_confirm_coming"}
    reasons: dict[int, str] = {}
    if any(v is not None for v in bill_rows.values()):
        states = dict(await Bill.filter(id__in=[v for v in bill_rows.values() if v is not None])
                      .values_list("id", "state"))
        for row_id, bill_id in bill_rows.items():
            state = states.get(bill_id)
            if state is not None and BillState(state) not in OPEN:
                reasons[row_id] = "paid" if BillState(state) == BillState.PAID else BillState(state).value
    if any(v is not None for v in form_rows.values()):
        states = dict(await ConfirmationForm.filter(id__in=[v for v in form_rows.values() if v is not None])
                      .values_list("id", "state"))
        for row_id, form_id in form_rows.items():
            state = states.get(form_id)
            if state is not None and FormState(state) != FormState.SENT:
                reasons[row_id] = "answered"
    return reasons


async def cancel_paid() -> int:
    """Fail the pending reminders of bills no longer open, with the reason (``paid``, …)."""
    pending = await OutboxMessage.filter(template="arrears_reminder", state=OutboxState.PENDING)
    cancelled = 0
    by_reason: dict[str, list[int]] = {}
    for row_id, reason in (await stale_reasons(pending)).items():
        by_reason.setdefault(reason, []).append(row_id)
    for reason, ids in by_reason.items():
        cancelled += await OutboxMessage.filter(id__in=ids, state=OutboxState.PENDING, claimed_by__isnull=True) \
            .update(state=OutboxState.FAILED, last_error=reason)
    return cancelled

