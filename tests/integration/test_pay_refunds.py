"""Refunds started by an admin with a reason: full or partial, from account credit first, then from
the bill; refund notifications handled like payment ones; a refund that fails gives the money back."""

from __future__ import annotations

import datetime as dt

import pytest
from pay_support import admin, fake_pay, open_bill, pay_port, stranger_key  # noqa: F401

from settlement.billing import bills
from settlement.billing import ebill
from settlement.pay import reconcile as pay_reconcile
from settlement.pay import payments
from settlement import models as m
from settlement.billing.bills import credit_balance
from settlement.errors import Conflict, Forbidden, InvalidInput, NotFound
from settlement.models import NotificationOutcome



async def _paid(pay_port, fake_pay, total: int, amount: int | None = None, *, paid_fen: int = 0, apps):
    """A bill paid through WeChat Pay (the notification recorded)."""
    world = await open_bill(total, paid_fen=paid_fen)
    start = await payments.start_payment(pay_port, world["bill"].id, world["identity"].id, amount)
    fake_pay.pay_order(start.out_trade_no)
    handled = await payments.handle_notification(pay_port, *fake_pay.payment_notification(start.out_trade_no),
                                                 apps=apps)
    assert handled.outcome == NotificationOutcome.ACCEPTED
    payment = await m.Payment.get(out_trade_no=start.out_trade_no)
    return world, payment


async def test_a_partial_refund_reopens_the_bill_once_done(pay_port, fake_pay, notify_apps):
    world, payment = await _paid(pay_port, fake_pay, 10000, apps=notify_apps)
    staff = await admin()
    refund = await payments.request_refund(payment.id, 3000, "抄表有误，多收电费", staff, pay=pay_port, apps=notify_apps)
    assert (refund.state, refund.out_refund_no) == (m.RefundState.PENDING, f"R{payment.id}N1")
    assert refund.refund_id == fake_pay.refunds[refund.out_refund_no].refund_id
    bill = await m.Bill.get(id=world["bill"].id)
    assert (bill.paid_fen, bill.state) == (7000, m.BillState.PARTLY_PAID)
    assert fake_pay.calls[-1]["body"]["amount"] == {"refund": 3000, "total": 10000, "currency": "CNY"}

    fake_pay.settle_refund(refund.out_refund_no)
    notification = fake_pay.refund_notification(refund.out_refund_no)
    handled = await payments.handle_notification(pay_port, *notification, apps=notify_apps)
    assert (handled.status, handled.outcome) == (204, NotificationOutcome.ACCEPTED)
    again = await payments.handle_notification(pay_port, *notification, apps=notify_apps)
    assert again.outcome == NotificationOutcome.DUPLICATE
    refund = await m.Refund.get(id=refund.id)
    assert refund.state == m.RefundState.SUCCEEDED and refund.settled_at is not None
    assert (await m.Bill.get(id=bill.id)).paid_fen == 7000
    events = await m.AuditEvent.filter(entity="payment", entity_id=str(payment.id)).values_list("action", "reason")
    assert ("RequestRefund", "抄表有误，多收电费") in events and ("SettleRefund", None) in events
    # the e-bill lists the refund beside the payment: 100.00 − 30.00 = the 70.00 paid
    page = await ebill.render_bill(bill.id)
    assert "100.00" in page and "-30.00" in page and "退款" in page and "70.00" in page
    assert "Refund" in await ebill.render_bill(bill.id, "en")


async def test_an_overpayment_is_credit_and_its_refund_comes_from_the_credit(pay_port, fake_pay, notify_apps):
    # WeChat Pay charges at most what is owed: an overpayment comes from a bill paid another way meanwhile
    world, payment = await _paid(pay_port, fake_pay, 10000, apps=notify_apps)
    second = await open_bill(5000, owner=world["owner"])
    start = await payments.start_payment(pay_port, second["bill"].id, second["identity"].id)
    await bills.record_payment(second["bill"].id, 5000, m.PaymentChannel.BANK_TRANSFER, "BANK-1",  # paid meanwhile
                               apps=notify_apps)
    fake_pay.pay_order(start.out_trade_no)
    await payments.handle_notification(pay_port, *fake_pay.payment_notification(start.out_trade_no), apps=notify_apps)
    assert await credit_balance(world["owner"].id) == 5000  # the WeChat payment for a paid bill is credit

    late = await m.Payment.get(out_trade_no=start.out_trade_no)
    refund = await payments.request_refund(late.id, 5000, "重复缴费退回", await admin(), pay=pay_port, apps=notify_apps)
    assert await credit_balance(world["owner"].id) == 0
    assert (await m.Bill.get(id=second["bill"].id)).state == m.BillState.PAID  # untouched: credit paid it back
    fake_pay.settle_refund(refund.out_refund_no)
    await payments.handle_notification(pay_port, *fake_pay.refund_notification(refund.out_refund_no), apps=notify_apps)
    assert (await m.Refund.get(id=refund.id)).state == m.RefundState.SUCCEEDED


async def test_a_refund_that_fails_gives_the_money_back(pay_port, fake_pay, notify_apps):
    world, payment = await _paid(pay_port, fake_pay, 10000, apps=notify_apps)
    refund = await payments.request_refund(payment.id, 10000, "业主取消", await admin(), pay=pay_port, apps=notify_apps)
    assert (await m.Bill.get(id=world["bill"].id)).state == m.BillState.OPEN
    fake_pay.settle_refund(refund.out_refund_no, "ABNORMAL")
    handled = await payments.handle_notification(pay_port, *fake_pay.refund_notification(refund.out_refund_no),
                                                 apps=notify_apps)
    assert handled.outcome == NotificationOutcome.ACCEPTED
    assert (await m.Refund.get(id=refund.id)).state == m.RefundState.FAILED
    bill = await m.Bill.get(id=world["bill"].id)
    assert (bill.state, bill.paid_fen) == (m.BillState.PAID, 10000)
    assert await payments.refundable_fen(payment) == 10000

    fake_pay.fail_next("refund", status=400, code="NOT_ENOUGH")
    with pytest.raises(Conflict) as refused:
        await payments.request_refund(payment.id, 2000, "再试", await admin(), pay=pay_port, apps=notify_apps)
    assert refused.value.code == "refund_refused"
    bill = await m.Bill.get(id=world["bill"].id)
    assert (bill.state, bill.paid_fen) == (m.BillState.PAID, 10000)
    assert await credit_balance(world["owner"].id) == 0


async def test_who_may_refund_and_how_much(pay_port, fake_pay, notify_apps):
    world, payment = await _paid(pay_port, fake_pay, 10000, apps=notify_apps)
    operator = await m.Staff.create(name="运维", role=m.StaffRole.OPERATOR)
    retired = await m.Staff.create(name="离职", role=m.StaffRole.ADMIN, active=False)
    for who in (operator, retired, None):
        with pytest.raises(Forbidden):
            await payments.request_refund(payment.id, 100, "x", who, pay=pay_port, apps=notify_apps)
    boss = await admin()
    for bad in (0, -1, True, 1.5):
        with pytest.raises(InvalidInput):
            await payments.request_refund(payment.id, bad, "x", boss, pay=pay_port, apps=notify_apps)
    with pytest.raises(InvalidInput):
        await payments.request_refund(payment.id, 100, "   ", boss, pay=pay_port, apps=notify_apps)
    with pytest.raises(NotFound):
        await payments.request_refund(10**6, 100, "x", boss, pay=pay_port, apps=notify_apps)
    with pytest.raises(Conflict):
        await payments.request_refund(payment.id, 100, "x", boss, apps=notify_apps)  # no WeChat Pay to refund through
    await payments.request_refund(payment.id, 6000, "部分退款", boss, pay=pay_port, apps=notify_apps)
    with pytest.raises(Conflict) as too_much:
        await payments.request_refund(payment.id, 4001, "再退", boss, pay=pay_port, apps=notify_apps)
    assert too_much.value.code == "refund_too_large"
    assert await m.Refund.filter(payment_id=payment.id).count() == 1


async def test_credit_used_by_a_later_bill_cannot_be_taken_back(db, notify_apps):
    # a 5000 transfer for a bill of 1000: 4000 becomes credit, which the next bill uses
    world = await open_bill(1000)
    transfer = await bills.record_payment(world["bill"].id, 5000, m.PaymentChannel.BANK_TRANSFER, "T-9",
                                          apps=notify_apps)
    nxt = await open_bill(4000, owner=world["owner"])
    from tortoise.transactions import in_transaction

    async with in_transaction() as conn:
        await bills._apply_credit([nxt["bill"]], conn)
    assert await credit_balance(world["owner"].id) == 0
    boss = await admin()
    with pytest.raises(Conflict) as used:
        await payments.request_refund(transfer.id, 5000, "退回", boss, apps=notify_apps)
    assert used.value.code == "refund_too_large" and "at most 1000 fen" in used.value.message
    await payments.request_refund(transfer.id, 1000, "退回可退部分", boss, apps=notify_apps)
    first = await m.Bill.get(id=world["bill"].id)
    assert (first.state, first.paid_fen) == (m.BillState.OPEN, 0)
    assert (await m.Bill.get(id=nxt["bill"].id)).state == m.BillState.PAID


async def test_an_offline_payment_is_refunded_outside_wechat_pay(db, notify_apps):
    world = await open_bill(10000)
    payment = await bills.record_payment(world["bill"].id, 12000, m.PaymentChannel.COUNTER, "C-1", apps=notify_apps)
    assert await credit_balance(world["owner"].id) == 2000
    refund = await payments.request_refund(payment.id, 2000, "柜台多收，现金退回", await admin(), apps=notify_apps)
    assert refund.state == m.RefundState.SUCCEEDED and refund.settled_at is not None
    assert await credit_balance(world["owner"].id) == 0
    assert (await m.Bill.get(id=world["bill"].id)).state == m.BillState.PAID


async def test_a_pending_refund_is_settled_by_reconciliation(pay_port, fake_pay, notify_apps):
    world, payment = await _paid(pay_port, fake_pay, 10000, apps=notify_apps)
    fake_pay.fail_next("refund", status=500)  # WeChat Pay does not answer: was it made? ask later
    refund = await payments.request_refund(payment.id, 1000, "退款", await admin(), pay=pay_port, apps=notify_apps)
    assert refund.state == m.RefundState.PENDING and refund.out_refund_no not in fake_pay.refunds
    later = refund.created_at + dt.timedelta(minutes=11)
    done = await pay_reconcile.reconcile_orders(pay_port, now=later, apps=notify_apps)
    assert refund.out_refund_no in fake_pay.refunds  # asked again, with the same out_refund_no
    assert done["refunds_settled"] == 0
    fake_pay.settle_refund(refund.out_refund_no)
    done = await pay_reconcile.reconcile_orders(pay_port, now=later + dt.timedelta(minutes=1), apps=notify_apps)
    assert done["refunds_settled"] == 1
    assert (await m.Refund.get(id=refund.id)).state == m.RefundState.SUCCEEDED


async def test_hostile_refund_notifications(pay_port, fake_pay, notify_apps):
    world, payment = await _paid(pay_port, fake_pay, 10000, apps=notify_apps)
    refund = await payments.request_refund(payment.id, 1000, "退款", await admin(), pay=pay_port, apps=notify_apps)
    fake_pay.settle_refund(refund.out_refund_no)
    for forge, reason in (({"sign_with": stranger_key()}, "bad_signature"),
                          ({"resource_changes": {"amount": {"total": 10000, "refund": 9000}}}, "amount"),
                          ({"resource_changes": {"mchid": "1900000999"}}, "mchid")):
        handled = await payments.handle_notification(pay_port,
                                                     *fake_pay.refund_notification(refund.out_refund_no, **forge),
                                                     apps=notify_apps)
        assert handled.status >= 400 and reason in handled.reason
    assert (await m.Refund.get(id=refund.id)).state == m.RefundState.PENDING
    unknown = fake_pay.refund_notification(refund.out_refund_no, resource_changes={"out_refund_no": "R-NOT-OURS"})
    handled = await payments.handle_notification(pay_port, *unknown, apps=notify_apps)
    assert (handled.status, handled.outcome) == (204, NotificationOutcome.UNMATCHED)


async def _refund_done_messages(owner: m.Owner) -> list[m.OutboxMessage]:
    openids = await m.WechatIdentity.filter(owner_id=owner.id).values_list("openid", flat=True)
    return await m.OutboxMessage.filter(event="RefundDone", recipient__in=list(openids))


async def test_the_owner_is_told_once_when_a_notified_refund_is_done(pay_port, fake_pay, notify_apps):
    # issue #24 point 3: nothing queued refund_done
    world, payment = await _paid(pay_port, fake_pay, 10000, apps=notify_apps)
    refund = await payments.request_refund(payment.id, 3001, "抄表有误，多收电费", await admin(), pay=pay_port,
                                           apps=notify_apps)
    assert await _refund_done_messages(world["owner"]) == []  # pending: not done yet
    fake_pay.settle_refund(refund.out_refund_no)
    notification = fake_pay.refund_notification(refund.out_refund_no)
    await payments.handle_notification(pay_port, *notification, apps=notify_apps)
    await payments.handle_notification(pay_port, *notification, apps=notify_apps)  # WeChat Pay repeats itself
    [message] = await _refund_done_messages(world["owner"])
    assert (message.template, message.state, message.recipient) == \
        ("refund_done", m.OutboxState.PENDING, world["identity"].openid)
    assert message.payload["data"]["amount1"] == "¥30.01"
    assert message.payload["data"]["character_string2"] == world["bill"].number
    assert message.dedupe_key == f"bill:{world['bill'].id}:RefundDone:{refund.id}:{world['identity'].id}"
    # the bot's 通知 reply names the event from the catalogue
    from settlement import i18n
    assert i18n.section("event", "zh")["RefundDone"] == "退款"


async def test_the_owner_is_told_once_when_reconciliation_finds_a_refund_done(pay_port, fake_pay, notify_apps):
    world, payment = await _paid(pay_port, fake_pay, 10000, apps=notify_apps)
    fake_pay.fail_next("refund", status=500)
    refund = await payments.request_refund(payment.id, 1234, "退款", await admin(), pay=pay_port, apps=notify_apps)
    later = refund.created_at + dt.timedelta(minutes=11)
    await pay_reconcile.reconcile_orders(pay_port, now=later, apps=notify_apps)  # asked again
    fake_pay.settle_refund(refund.out_refund_no)
    done = await pay_reconcile.reconcile_orders(pay_port, now=later + dt.timedelta(minutes=1), apps=notify_apps)
    assert done["refunds_settled"] == 1
    await payments.handle_notification(pay_port, *fake_pay.refund_notification(refund.out_refund_no),
                                       apps=notify_apps)  # the late notification changes nothing
    [message] = await _refund_done_messages(world["owner"])
    assert message.payload["data"]["amount1"] == "¥12.34"


async def test_a_failed_refund_tells_no_one_it_is_done(pay_port, fake_pay, notify_apps):
    world, payment = await _paid(pay_port, fake_pay, 10000, apps=notify_apps)
    refund = await payments.request_refund(payment.id, 1000, "退款", await admin(), pay=pay_port, apps=notify_apps)
    fake_pay.settle_refund(refund.out_refund_no, "CLOSED")
    await payments.handle_notification(pay_port, *fake_pay.refund_notification(refund.out_refund_no), apps=notify_apps)
    assert await _refund_done_messages(world["owner"]) == []
