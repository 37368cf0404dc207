"""A WeChat payment received shows as a receipt on the e-bill page and leaves a PaymentReceived
message in the notification outbox for the owner."""

from __future__ import annotations

from pay_support import fake_pay, open_bill, pay_port  # noqa: F401

from settlement.billing import ebill
from settlement.pay import payments
from settlement import models as m


async def test_the_receipt_on_the_e_bill_and_in_the_outbox(pay_port, fake_pay, notify_apps):
    world = await open_bill(23456)
    start = await payments.start_payment(pay_port, world["bill"].id, world["identity"].id, 20000)
    order = fake_pay.pay_order(start.out_trade_no)
    notification = fake_pay.payment_notification(start.out_trade_no)
    await payments.handle_notification(pay_port, *notification, apps=notify_apps)
    await payments.handle_notification(pay_port, *notification, apps=notify_apps)  # a retry: one receipt, not two

    page = await ebill.render_bill(world["bill"].id)
    assert order.transaction_id in page and "微信支付" in page and "200.00" in page
    english = await ebill.render_bill(world["bill"].id, "en")
    assert "WeChat Pay" in english and order.transaction_id in english

    payment = await m.Payment.get(transaction_id=order.transaction_id)
    messages = await m.OutboxMessage.filter(event="PaymentReceived")
    assert len(messages) == 1
    assert messages[0].recipient == world["identity"].openid
    assert str(payment.id) in messages[0].dedupe_key
    assert messages[0].payload["context"]["amount_fen"] == 20000
    assert messages[0].payload["context"]["owed_fen"] == 3456


async def test_someone_paying_for_the_owner_gets_the_receipt_too(pay_port, fake_pay, notify_apps):
    world = await open_bill(10000)
    family = await m.WechatIdentity.create(app_id=world["identity"].app_id, openid="o-family-payer")
    await m.PlantAccess.create(plant=world["plant"], identity=family, right=m.PlantRight.PAY)
    start = await payments.start_payment(pay_port, world["bill"].id, family.id, 10000)
    fake_pay.pay_order(start.out_trade_no)
    notification = fake_pay.payment_notification(start.out_trade_no)
    await payments.handle_notification(pay_port, *notification, apps=notify_apps)
    await payments.handle_notification(pay_port, *notification, apps=notify_apps)

    messages = await m.OutboxMessage.filter(event="PaymentReceived").order_by("id")
    assert sorted(x.recipient for x in messages) == sorted([world["identity"].openid, "o-family-payer"])
    assert {x.payload["context"]["amount_fen"] for x in messages} == {10000}
