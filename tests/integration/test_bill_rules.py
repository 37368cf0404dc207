"""Bill rules beyond the walkthrough: write-offs, refusals, credit across bills, hostile amounts."""

import datetime as dt
import threading

import pytest

from settlement.billing import bills, late_fees
from settlement import models as m
from settlement.errors import Conflict, Forbidden, InvalidInput, NotFound
from tests.integration.billed_plant import plain_bill, walked_plant

DUE = dt.date(2026, 10, 25)


@pytest.fixture
async def staff(db):
    return {role: await m.Staff.create(name=role.value, role=role) for role in m.StaffRole}


async def test_only_an_admin_writes_off_with_a_reason_and_then_nothing_more_is_paid(staff, notify_apps):
    bill = (await plain_bill("PV-W1", "2026-10", total_fen=50_000, paid_fen=10_000, due_on=DUE))["bill"]
    with pytest.raises(Forbidden):
        await bills.write_off(bill.id, "owner went bankrupt", staff[m.StaffRole.OPERATOR])
    with pytest.raises(InvalidInput):
        await bills.write_off(bill.id, "  ", staff[m.StaffRole.ADMIN])
    done = await bills.write_off(bill.id, "owner went bankrupt", staff[m.StaffRole.ADMIN])
    assert done.state == m.BillState.WRITTEN_OFF and done.written_off_at is not None
    event = await m.AuditEvent.get(action="WriteOffBill")
    assert (event.before, event.after, event.reason) == (
        {"state": "partly_paid", "owed_fen": 40_000}, {"state": "written_off"}, "owner went bankrupt")
    with pytest.raises(Conflict):
        await bills.record_payment(bill.id, 100, m.PaymentChannel.COUNTER, "C-1", staff=staff[m.StaffRole.OPERATOR],
                                   apps=notify_apps)
    with pytest.raises(Conflict):
        await bills.write_off(bill.id, "again", staff[m.StaffRole.ADMIN])
    assert await late_fees.accrue_late_fees(dt.date(2027, 1, 1)) == 0


@pytest.mark.parametrize("amount", [0, -100, 1.5, True, "100", 10**12 + 1, 10**30])
async def test_hostile_amounts_are_refused_and_change_nothing(staff, amount, notify_apps):
    bill = (await plain_bill("PV-H1", "2026-10", total_fen=50_000, due_on=DUE))["bill"]
    with pytest.raises(InvalidInput):
        await bills.record_payment(bill.id, amount, m.PaymentChannel.BANK_TRANSFER, "REF-1",
                                   staff=staff[m.StaffRole.OPERATOR], apps=notify_apps)
    assert await m.Payment.all().count() == 0
    assert (await m.Bill.get(id=bill.id)).paid_fen == 0


async def test_refusals_for_references_roles_and_unknown_bills(staff, notify_apps):
    bill = (await plain_bill("PV-R1", "2026-10", total_fen=50_000, due_on=DUE))["bill"]
    operator = staff[m.StaffRole.OPERATOR]
    for reference in ("", "   ", "x" * 51):
        with pytest.raises(InvalidInput):
            await bills.record_payment(bill.id, 100, m.PaymentChannel.BANK_TRANSFER, reference, staff=operator,
                                       apps=notify_apps)
    with pytest.raises(Forbidden):
        await bills.record_payment(bill.id, 100, m.PaymentChannel.BANK_TRANSFER, "REF", staff=staff[m.StaffRole.VIEWER],
                                   apps=notify_apps)
    with pytest.raises(NotFound):
        await bills.record_payment(999_999, 100, m.PaymentChannel.BANK_TRANSFER, "REF", staff=operator,
                                   apps=notify_apps)
    # SQL in a reference is just text
    await bills.record_payment(bill.id, 100, m.PaymentChannel.BANK_TRANSFER, "1'; DROP TABLE bill; --",
                               staff=operator, apps=notify_apps)
    assert (await m.Payment.get()).transaction_id == "bank_transfer:1'; DROP TABLE bill; --"
    assert await m.Bill.all().count() == 1


async def test_overpayment_credit_is_used_by_the_next_bills_oldest_first(staff, notify_apps):
    operator = staff[m.StaffRole.OPERATOR]
    first = await plain_bill("PV-C1", "2026-09", total_fen=10_000, due_on=DUE)
    await bills.record_payment(first["bill"].id, 25_000, m.PaymentChannel.BANK_TRANSFER, "OVER", staff=operator,
                               apps=notify_apps)
    assert await bills.credit_balance(first["plant"].owner_id) == 15_000
    # two new bills of the same owner get the credit in order: 12 000 then the 3 000 left
    a = await plain_bill("PV-C1", "2026-10", total_fen=12_000, due_on=DUE, plant=first["plant"])
    b = await plain_bill("PV-C1", "2026-11", total_fen=8_000, due_on=DUE, plant=first["plant"])
    from tortoise.transactions import in_transaction

    async with in_transaction() as conn:
        await bills._apply_credit([b["bill"], a["bill"]], conn)
    a_bill, b_bill = await m.Bill.get(id=a["bill"].id), await m.Bill.get(id=b["bill"].id)
    assert (a_bill.credit_applied_fen, a_bill.state) == (12_000, m.BillState.PAID)
    assert (b_bill.credit_applied_fen, b_bill.state, bills.owed_fen(b_bill)) == (3_000, m.BillState.PARTLY_PAID, 5_000)
    assert await bills.credit_balance(first["plant"].owner_id) == 0
    entries = await m.CreditEntry.filter(owner_id=first["plant"].owner_id).values_list("amount_fen", flat=True)
    assert sum(entries) == 0 and sorted(entries) == [-12_000, -3_000, 15_000]


async def test_bills_are_priced_in_a_thread_and_stored_on_the_loop(db, monkeypatch, notify_apps):
    threads = []
    engine = bills.price_cycle

    def priced_where(*args, **kwargs):
        threads.append(threading.current_thread())
        return engine(*args, **kwargs)

    monkeypatch.setattr(bills, "price_cycle", priced_where)
    walked = await walked_plant(apps=notify_apps)  # issues its bill through bills.issue_bills
    assert threads and threading.current_thread() not in threads
    assert (await m.BillLine.filter(bill_id=walked["bill"].id, kind=m.LineKind.ENERGY).order_by("seq")
            .values_list("amount_fen", flat=True)) == [445230, 232050, 79560]  # billed_plant's figures
