"""Paying a bill: JSAPI prepay orders made or reused, the amount due or a part of it, paid by the
owner or someone with the pay right, and the paySign the mini-program hands to wx.requestPayment."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from pay_support import fake_pay, merchant_key, open_bill, pay_port  # noqa: F401

from settlement import models as m
from settlement.pay import payments
from settlement.errors import Conflict, Forbidden, InvalidInput, NotFound
from settlement.ports.pay import PayRejected, PayUnavailable
from settlement.clock import UTC, utc_now



def verify_pay_sign(appid: str, params: dict) -> None:
    message = f"{appid}\n{params['timeStamp']}\n{params['nonceStr']}\n{params['package']}\n"
    merchant_key().public_key().verify(base64.b64decode(params["paySign"]), message.encode(), padding.PKCS1v15(),
                                       hashes.SHA256())


async def test_a_prepay_order_for_what_is_owed_signed_for_wx_request_payment(pay_port, fake_pay, settings):
    world = await open_bill(12345, paid_fen=345)
    result = await payments.start_payment(pay_port, world["bill"].id, world["identity"].id)
    params = result.request_payment()
    assert result.amount_fen == 12000 and not result.reused
    assert params["signType"] == "RSA" and params["package"].startswith("prepay_id=wx")
    assert params["timeStamp"].isdigit() and len(params["nonceStr"]) == 32
    verify_pay_sign(settings.mp_appid, params)
    with pytest.raises(InvalidSignature):  # the signature covers the appId: another app's would not verify
        verify_pay_sign("wxanotherapp000001", params)
    at_wechat = fake_pay.orders[result.out_trade_no]
    assert (at_wechat.total, at_wechat.payer_openid, at_wechat.appid) == \
        (12000, world["identity"].openid, settings.mp_appid)
    assert params["package"] == f"prepay_id={at_wechat.prepay_id}"
    order = await m.PayOrder.get(out_trade_no=result.out_trade_no)
    assert order.out_trade_no == f"261010B{world['bill'].id}N1"
    assert (order.state, order.amount_fen, order.attempt) == (m.PayOrderState.PENDING, 12000, 1)


async def test_an_order_is_reused_while_valid_and_never_for_another_amount(pay_port, fake_pay):
    world = await open_bill(50000)
    now = dt.datetime(2026, 10, 12, 1, tzinfo=UTC)
    bill, who = world["bill"].id, world["identity"].id
    first = await payments.start_payment(pay_port, bill, who, now=now)
    again = await payments.start_payment(pay_port, bill, who, now=now + dt.timedelta(minutes=30))
    assert again.reused and again.out_trade_no == first.out_trade_no and again.package == first.package
    assert again.nonce_str != first.nonce_str  # a fresh signature each time

    part = await payments.start_payment(pay_port, bill, who, 20000, now=now + dt.timedelta(minutes=31))
    assert not part.reused and part.out_trade_no != first.out_trade_no and part.amount_fen == 20000
    # near its expiry an order is not handed out again: the payer needs time to pay
    late = await payments.start_payment(pay_port, bill, who, now=now + dt.timedelta(hours=1, minutes=55))
    assert not late.reused and late.out_trade_no not in (first.out_trade_no, part.out_trade_no)
    rows = await m.PayOrder.filter(bill_id=bill).order_by("attempt").values_list("out_trade_no", "amount_fen")
    assert rows == [(first.out_trade_no, 50000), (part.out_trade_no, 20000), (late.out_trade_no, 50000)]
    assert {no: fake_pay.orders[no].total for no, _ in rows} == dict(rows)


async def test_the_amount_is_checked_against_what_is_owed_and_the_contract(pay_port):
    world = await open_bill(10000)
    bill, who = world["bill"].id, world["identity"].id
    with pytest.raises(Conflict) as above:
        await payments.start_payment(pay_port, bill, who, 10001)
    assert above.value.code == "amount_above_owed"
    for bad in (0, -5, True, 12.5, "100"):
        with pytest.raises(InvalidInput):
            await payments.start_payment(pay_port, bill, who, bad)
    strict = await open_bill(10000, allow_partial=False)
    with pytest.raises(Conflict) as partial:
        await payments.start_payment(pay_port, strict["bill"].id, strict["identity"].id, 5000)
    assert partial.value.code == "partial_not_allowed"
    whole = await payments.start_payment(pay_port, strict["bill"].id, strict["identity"].id, 10000)
    assert whole.amount_fen == 10000
    assert await m.PayOrder.filter(bill_id=bill).count() == 0


async def test_who_may_pay(pay_port, settings):
    world = await open_bill(10000)
    bill = world["bill"]
    payer = await m.WechatIdentity.create(app_id=settings.mp_appid, openid="o-finance")
    viewer = await m.WechatIdentity.create(app_id=settings.mp_appid, openid="o-family")
    stranger = await m.WechatIdentity.create(app_id=settings.mp_appid, openid="o-stranger")
    revoked = await m.WechatIdentity.create(app_id=settings.mp_appid, openid="o-former")
    await m.PlantAccess.create(plant=world["plant"], identity=payer, right=m.PlantRight.PAY)
    await m.PlantAccess.create(plant=world["plant"], identity=viewer, right=m.PlantRight.VIEW)
    await m.PlantAccess.create(plant=world["plant"], identity=revoked, right=m.PlantRight.PAY,
                               revoked_at=utc_now())
    paid_for_owner = await payments.start_payment(pay_port, bill.id, payer.id)
    assert (await m.PayOrder.get(out_trade_no=paid_for_owner.out_trade_no)).payer_id == payer.id
    with pytest.raises(Forbidden):
        await payments.start_payment(pay_port, bill.id, viewer.id)
    for nobody in (stranger, revoked):
        with pytest.raises(NotFound):
            await payments.start_payment(pay_port, bill.id, nobody.id)
    with pytest.raises(NotFound):
        await payments.start_payment(pay_port, 10**6, payer.id)


async def test_nothing_to_pay_on_a_paid_or_written_off_bill(pay_port):
    paid = await open_bill(10000, paid_fen=10000)
    with pytest.raises(Conflict) as closed:
        await payments.start_payment(pay_port, paid["bill"].id, paid["identity"].id)
    assert closed.value.code == "bill_closed"


async def test_a_refused_prepay_ends_the_attempt_and_the_next_is_a_new_one(pay_port, fake_pay):
    world = await open_bill(10000)
    fake_pay.fail_next("jsapi", status=400, code="PARAM_ERROR")
    with pytest.raises(PayRejected):
        await payments.start_payment(pay_port, world["bill"].id, world["identity"].id)
    fake_pay.fail_next("jsapi", status=500, code="SYSTEM_ERROR")
    with pytest.raises(PayUnavailable):
        await payments.start_payment(pay_port, world["bill"].id, world["identity"].id)
    ok = await payments.start_payment(pay_port, world["bill"].id, world["identity"].id)
    states = await m.PayOrder.filter(bill_id=world["bill"].id).order_by("attempt").values_list("attempt", "state")
    assert states == [(1, m.PayOrderState.FAILED), (2, m.PayOrderState.FAILED), (3, m.PayOrderState.PENDING)]
    assert ok.out_trade_no.endswith("N3")
