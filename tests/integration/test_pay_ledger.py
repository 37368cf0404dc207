"""A property over random histories of bills, partial payments, overpayments, refunds and duplicate
notifications: every fen that came in is somewhere, to the fen.

    Σ payments − Σ refunds (asked or done) = Σ applied to bills + account credit

Payments go through the real path (prepay, the fake WeChat Pay paying, a signed and encrypted
notification, delivered once or several times), offline ones through bills.record_payment,
refunds through request_refund and WeChat Pay's answer (done or failed).
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pay_support import admin, fake_pay, open_bill, pay_port  # noqa: F401

from settlement.billing import bills
from settlement.pay import payments
from settlement import models as m
from settlement.billing.bills import owed_fen
from settlement.errors import Conflict

OPS = st.lists(st.one_of(
    st.tuples(st.just("bill"), st.integers(1, 50_000), st.integers(0, 2)),
    st.tuples(st.just("wechat"), st.integers(0, 99), st.integers(1, 100), st.integers(1, 3)),
    st.tuples(st.just("offline"), st.integers(0, 99), st.integers(1, 60_000)),
    st.tuples(st.just("late_wechat"), st.integers(0, 99)),
    st.tuples(st.just("refund"), st.integers(0, 99), st.integers(1, 100), st.sampled_from(["SUCCESS", "CLOSED"]),
              st.integers(1, 2)),
    st.tuples(st.just("again"), st.integers(0, 99)),
), min_size=1, max_size=12)


async def _ledger() -> tuple[int, int, int, int]:
    paid_in = sum(await m.Payment.all().values_list("amount_fen", flat=True))
    refunded = sum(await m.Refund.filter(state__in=[m.RefundState.PENDING, m.RefundState.SUCCEEDED])
                   .values_list("amount_fen", flat=True))
    applied = sum(p + c for p, c in await m.Bill.all().values_list("paid_fen", "credit_applied_fen"))
    credit = sum(await m.CreditEntry.all().values_list("amount_fen", flat=True))
    return paid_in, refunded, applied, credit


@given(ops=OPS)
@settings(max_examples=30, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
async def test_every_fen_is_accounted_for(pay_port, fake_pay, ops, notify_apps):
    boss = await m.Staff.filter(role=m.StaffRole.ADMIN).first() or await admin()
    owners = [w["owner"] for w in [await open_bill(1) for _ in range(3)]] if not await m.Owner.exists() else \
        list(await m.Owner.all().order_by("id").limit(3))
    bill_ids: list[int] = list(await m.Bill.all().order_by("id").values_list("id", flat=True))
    sent: list[tuple[dict, bytes]] = []

    async def notify(note):
        sent.append(note)
        return await payments.handle_notification(pay_port, *note, apps=notify_apps)

    async def wechat_pay(bill: m.Bill, amount: int, copies: int) -> None:
        identity = await m.WechatIdentity.get(owner_id=bill.owner_id)
        start = await payments.start_payment(pay_port, bill.id, identity.id, amount)
        fake_pay.pay_order(start.out_trade_no)
        note = fake_pay.payment_notification(start.out_trade_no)
        for _ in range(copies):
            handled = await notify(note)
            assert handled.status == 204

    for op in ops:
        kind = op[0]
        if kind == "bill":
            world = await open_bill(op[1], owner=owners[op[2]])
            from tortoise.transactions import in_transaction

            async with in_transaction() as conn:  # as issuing does: the owner's credit pays first
                await bills._apply_credit([world["bill"]], conn)
            bill_ids.append(world["bill"].id)
        elif kind in ("wechat", "offline", "late_wechat") and bill_ids:
            bill = await m.Bill.get(id=bill_ids[op[1] % len(bill_ids)])
            if bill.state not in bills.OPEN:
                continue
            if kind == "wechat":
                await wechat_pay(bill, max(1, owed_fen(bill) * op[2] // 100), op[3])
            elif kind == "offline":
                await bills.record_payment(bill.id, op[2], m.PaymentChannel.BANK_TRANSFER, f"T{len(sent)}-{bill.id}-"
                                           f"{await m.Payment.all().count()}", apps=notify_apps)
            else:  # paid at the counter while the owner pays with WeChat: the WeChat money is credit
                identity = await m.WechatIdentity.get(owner_id=bill.owner_id)
                start = await payments.start_payment(pay_port, bill.id, identity.id)
                await bills.record_payment(bill.id, owed_fen(bill), m.PaymentChannel.COUNTER, f"C-{start.out_trade_no}",
                                           apps=notify_apps)
                fake_pay.pay_order(start.out_trade_no)
                assert (await notify(fake_pay.payment_notification(start.out_trade_no))).status == 204
        elif kind == "refund":
            candidates = list(await m.Payment.all().order_by("id"))
            if not candidates:
                continue
            payment = candidates[op[1] % len(candidates)]
            left = await payments.refundable_fen(payment)
            if left <= 0:
                continue
            try:
                refund = await payments.request_refund(payment.id, max(1, left * op[2] // 100), "退款", boss,
                                                       pay=pay_port, apps=notify_apps)
            except Conflict as exc:
                assert exc.code == "refund_too_large"  # its credit went to later bills
                continue
            if payment.channel == m.PaymentChannel.WECHAT:
                fake_pay.settle_refund(refund.out_refund_no, op[3])
                note = fake_pay.refund_notification(refund.out_refund_no)
                for _ in range(op[4]):
                    assert (await notify(note)).status == 204
        elif kind == "again" and sent:
            assert (await notify(sent[op[1] % len(sent)])).status == 204

        paid_in, refunded, applied, credit = await _ledger()
        assert paid_in - refunded == applied + credit, (op, paid_in, refunded, applied, credit)

    for bill in await m.Bill.all():
        assert 0 <= bill.paid_fen + bill.credit_applied_fen <= bill.total_fen
        if bill.state in (*bills.OPEN, m.BillState.PAID):
            assert bill.state == bills.state_of(bill)
    for owner in await m.Owner.all():
        assert await bills.credit_balance(owner.id) >= 0
    transactions = await m.Payment.all().values_list("transaction_id", flat=True)
    assert len(transactions) == len(set(transactions))
