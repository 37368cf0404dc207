"""Reconciliation with WeChat Pay: orders whose notification never came are settled from a query,
and each day's trade bill is compared with what is recorded here."""

from __future__ import annotations

import datetime as dt

import pytest
from pay_support import admin, fake_pay, open_bill, pay_port  # noqa: F401

from settlement import models as m
from settlement.pay import reconcile as pay_reconcile
from settlement.pay import payments
from settlement.models import NotificationOutcome
from settlement.clock import LOCAL, local_today, utc_now



async def _started(pay_port, amount: int = 10000, total: int = 10000, now: dt.datetime | None = None):
    world = await open_bill(total)
    start = await payments.start_payment(pay_port, world["bill"].id, world["identity"].id, amount, now=now)
    return world, start


async def test_a_silent_order_is_settled_from_the_query_and_the_late_notification_changes_nothing(pay_port, fake_pay,
                                                                                                  notify_apps):
    world, start = await _started(pay_port)
    fake_pay.pay_order(start.out_trade_no)
    created = (await m.PayOrder.get(out_trade_no=start.out_trade_no)).created_at

    early = await pay_reconcile.reconcile_orders(pay_port, now=created + dt.timedelta(minutes=5), apps=notify_apps)
    assert early["orders_queried"] == 0  # the notification may still come: nobody asks yet
    done = await pay_reconcile.reconcile_orders(pay_port, now=created + dt.timedelta(minutes=11), apps=notify_apps)
    assert (done["orders_queried"], done["orders_paid"]) == (1, 1)
    bill = await m.Bill.get(id=world["bill"].id)
    assert (bill.state, bill.paid_fen) == (m.BillState.PAID, 10000)
    payment = await m.Payment.get(bill_id=bill.id)
    assert payment.transaction_id == fake_pay.orders[start.out_trade_no].transaction_id
    assert await m.AuditEvent.filter(action="RecordPayment", actor="wechatpay:query").count() == 1

    handled = await payments.handle_notification(pay_port, *fake_pay.payment_notification(start.out_trade_no),
                                                 apps=notify_apps)
    assert (handled.status, handled.outcome) == (204, NotificationOutcome.DUPLICATE)
    assert await m.Payment.all().count() == 1
    assert (await m.Bill.get(id=bill.id)).paid_fen == 10000
    assert await m.CreditEntry.all().count() == 0
    again = await pay_reconcile.reconcile_orders(pay_port, now=created + dt.timedelta(minutes=30), apps=notify_apps)
    assert again["orders_queried"] == 0  # paid orders are not asked about again


async def test_an_unpaid_order_is_asked_again_later_and_closed_when_it_expires(pay_port, fake_pay, notify_apps):
    world, start = await _started(pay_port)
    created = (await m.PayOrder.get(out_trade_no=start.out_trade_no)).created_at
    first = await pay_reconcile.reconcile_orders(pay_port, now=created + dt.timedelta(minutes=11), apps=notify_apps)
    assert (first["orders_queried"], first["orders_closed"]) == (1, 0)
    soon = await pay_reconcile.reconcile_orders(pay_port, now=created + dt.timedelta(minutes=15), apps=notify_apps)
    assert soon["orders_queried"] == 0  # asked 4 minutes ago
    expired = await pay_reconcile.reconcile_orders(pay_port, now=created + dt.timedelta(hours=2, minutes=1),
                                                   apps=notify_apps)
    assert expired["orders_closed"] == 1
    assert fake_pay.orders[start.out_trade_no].trade_state == "CLOSED"
    assert (await m.PayOrder.get(out_trade_no=start.out_trade_no)).state == m.PayOrderState.CLOSED
    assert (await m.Bill.get(id=world["bill"].id)).state == m.BillState.OPEN


async def test_a_query_that_fails_is_retried_on_a_later_tick(pay_port, fake_pay, notify_apps):
    world, start = await _started(pay_port)
    fake_pay.pay_order(start.out_trade_no)
    created = (await m.PayOrder.get(out_trade_no=start.out_trade_no)).created_at
    fake_pay.fail_next("query", status=500, code="SYSTEM_ERROR")
    failed = await pay_reconcile.reconcile_orders(pay_port, now=created + dt.timedelta(minutes=11), apps=notify_apps)
    assert (failed["query_failures"], failed["orders_paid"]) == (1, 0)
    later = await pay_reconcile.reconcile_orders(pay_port, now=created + dt.timedelta(minutes=12), apps=notify_apps)
    assert later["orders_paid"] == 1


async def test_a_query_answer_for_another_amount_is_not_recorded(pay_port, fake_pay, notify_apps):
    world, start = await _started(pay_port)
    fake_pay.pay_order(start.out_trade_no)
    fake_pay.orders[start.out_trade_no].total = 1  # WeChat Pay says it was paid for 0.01 元
    created = (await m.PayOrder.get(out_trade_no=start.out_trade_no)).created_at
    done = await pay_reconcile.reconcile_orders(pay_port, now=created + dt.timedelta(minutes=11), apps=notify_apps)
    assert done["orders_paid"] == 0
    assert await m.Payment.all().count() == 0
    assert (await m.PayOrder.get(out_trade_no=start.out_trade_no)).state == m.PayOrderState.PENDING


async def test_the_trade_bill_reports_every_kind_of_mismatch(pay_port, fake_pay, notify_apps):
    day = dt.date.today() - dt.timedelta(days=1)
    at = dt.datetime.combine(day, dt.time(12), LOCAL)
    recorded = []
    for amount in (1000, 2000, 3000, 4000):
        world, start = await _started(pay_port, amount, total=amount)
        order = fake_pay.pay_order(start.out_trade_no, at=at)
        await payments.handle_notification(pay_port, *fake_pay.payment_notification(start.out_trade_no),
                                           now=utc_now(), apps=notify_apps)
        recorded.append(order)
    same, hidden, changed, refunded = recorded
    fake_pay.hidden_from_bill.add(hidden.transaction_id)  # recorded here, not in WeChat Pay's bill
    fake_pay.bill_amounts[changed.transaction_id] = 2999  # WeChat Pay's bill shows another amount
    fake_pay.extra_bill_rows[day].append({  # paid at WeChat Pay, never recorded here
        "time": at, "transaction_id": "4200000000000000000000000077", "out_trade_no": "UNKNOWN-77",
        "openid": "o-x", "state": "SUCCESS", "total": 555, "description": "电费"})
    # a refund done that day, and one more refund WeChat Pay made that we never asked for
    payment = await m.Payment.get(transaction_id=refunded.transaction_id)
    refund = await payments.request_refund(payment.id, 400, "多收", await admin(), pay=pay_port, apps=notify_apps)
    fake_pay.settle_refund(refund.out_refund_no, at=at)
    await payments.handle_notification(pay_port, *fake_pay.refund_notification(refund.out_refund_no), apps=notify_apps)
    fake_pay.extra_bill_rows[day].append({
        "time": at, "transaction_id": same.transaction_id, "out_trade_no": same.out_trade_no, "openid": "o-x",
        "state": "REFUND", "total": 0, "refund_id": "50300000000000000000000000099", "out_refund_no": "R-FOREIGN",
        "refund": 100, "description": "电费"})

    report = await pay_reconcile.reconcile_trade_bill(pay_port, day)
    kinds = {(x["kind"], x.get("transaction_id") or x.get("refund_id"), x["there_fen"], x["here_fen"])
             for x in report.mismatches}
    assert kinds == {("missing_there", hidden.transaction_id, None, 2000),
                     ("amount_differs", changed.transaction_id, 2999, 3000),
                     ("missing_here", "4200000000000000000000000077", 555, None),
                     ("missing_here", "50300000000000000000000000099", 100, None)}
    assert report.mismatch_count == 4
    assert (report.trades_there, report.trades_here) == (4, 4)
    assert (report.paid_there_fen, report.paid_here_fen) == (1000 + 2999 + 4000 + 555, 10000)
    assert (report.refunded_there_fen, report.refunded_here_fen) == (500, 400)
    again = await pay_reconcile.reconcile_trade_bill(pay_port, day)
    assert again.id == report.id and await m.TradeBillReport.all().count() == 1


async def test_the_daily_job_waits_for_ten_and_runs_once(pay_port, fake_pay):
    today = local_today()
    nine = dt.datetime.combine(today, dt.time(9, 59), LOCAL)
    assert await pay_reconcile.trade_bill_due(pay_port, now=nine) is None
    ten = dt.datetime.combine(today, dt.time(10, 1), LOCAL)
    report = await pay_reconcile.trade_bill_due(pay_port, now=ten)
    assert report.bill_date == today - dt.timedelta(days=1) and report.mismatch_count == 0
    assert await pay_reconcile.trade_bill_due(pay_port, now=ten) is None
    assert sum(1 for c in fake_pay.calls if c["endpoint"] == "tradebill") == 1


@pytest.mark.parametrize("text, where", [
    ("交易时间,微信订单号\r\n`2026-10-01 10:00:00,`42", "line 1"),
    (None, "line 2"),
])
def test_a_malformed_trade_bill_names_its_line(text, where):
    from settlement.fakes.pay_server import BILL_HEADER

    if text is None:
        row = ["`x"] * len(BILL_HEADER.split(","))
        text = BILL_HEADER + "\r\n" + ",".join(row) + "\r\n"
    with pytest.raises(ValueError, match=where):
        pay_reconcile.parse_trade_bill(text)


def test_trade_bill_amounts_are_exact_fen():
    assert pay_reconcile._fen("12.34") == 1234 and pay_reconcile._fen("0.01") == 1
    with pytest.raises(ValueError):
        pay_reconcile._fen("0.001")
    with pytest.raises(ValueError):
        pay_reconcile._fen("1,000.00")
