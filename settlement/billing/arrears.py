"""Arrears (欠费): bills still owed after their due date, for staff chasing them.

Rules written down
------------------
* A bill is **in arrears** when it is open or partly paid, something is still owed on it
  (total − paid − credit applied > 0), and its due date has passed: days past due = today −
  due date (local dates), at least 1 — the late fee also starts the day after the due date.
* ``min_days`` keeps the bills at least that many days past due (0 and 1 both mean every bill in
  arrears). Written-off and superseded bills are never arrears.
* Ordered by days past due (oldest debt first), then by what is owed (largest first), then by
  bill number, so the list is stable.
* Amounts are integer fen.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from settlement.errors import InvalidInput
from settlement.models import Bill, BillState
from settlement.clock import local_today

OPEN = (BillState.OPEN, BillState.PARTLY_PAID)
MAX_DAYS = 3650


@dataclass(frozen=True)
class Arrear:
    """One bill in arrears; ``owed_fen`` [fen] = total − paid − credit applied."""

    bill_id: int
    number: str
    plant_code: str
    plant_name: str
    owner_name: str
    due_on: dt.date
    days_past_due: int
    total_fen: int
    owed_fen: int
    state: BillState


@dataclass(frozen=True)
class ArrearsList:
    """Bills in arrears (at most ``limit`` of them) and the figures of all of them."""

    today: dt.date
    min_days: int
    items: tuple[Arrear, ...]
    count: int
    owed_fen: int


async def arrears(min_days: int = 1, *, today: dt.date | None = None, limit: int = 100) -> ArrearsList:
    """Bills at least ``min_days`` days past due with something still owed.

    Parameters
    ----------
    min_days : int
        Days past the due date, 0 to 3650 (0 and 1 alike: every bill in arrears).
    today : date, optional
        The local date to count from; today in Asia/Shanghai by default.
    limit : int
        Most bills listed in ``items``; ``count`` and ``owed_fen`` cover them all.

    Returns
    -------
    ArrearsList
    """
    if isinstance(min_days, bool) or not isinstance(min_days, int) or not 0 <= min_days <= MAX_DAYS:
        raise InvalidInput(f"days is a whole number from 0 to {MAX_DAYS}", code="bad_days")
    if not 1 <= limit <= 1000:
        raise InvalidInput("limit is 1 to 1000", code="bad_limit")
    today = today or local_today()
    latest_due = today - dt.timedelta(days=max(min_days, 1))
    rows = await Bill.filter(state__in=list(OPEN), due_on__lte=latest_due).values_list(
        "id", "number", "plant__code", "plant__name", "owner__name", "due_on", "total_fen", "paid_fen",
        "credit_applied_fen", "state")
    items = []
    for bill_id, number, code, name, owner, due_on, total, paid, credit, state in rows:
        owed = int(total) - int(paid) - int(credit)
        if owed <= 0:
            continue
        items.append(Arrear(bill_id=bill_id, number=number, plant_code=code, plant_name=name, owner_name=owner,
                            due_on=due_on, days_past_due=(today - due_on).days, total_fen=int(total),
                            owed_fen=owed, state=BillState(state)))
    items.sort(key=lambda a: (-a.days_past_due, -a.owed_fen, a.number))
    return ArrearsList(today=today, min_days=min_days, items=tuple(items[:limit]), count=len(items),
                       owed_fen=sum(a.owed_fen for a in items))
