"""POST /pay/notify with real WeChat Pay v3 notifications: RSA-SHA256 over ``timestamp\\nnonce\\nbody\\n``
by a locally generated platform key, resource AES-256-GCM encrypted with the APIv3 key.

A valid one pays the bill once, however often and however concurrently it comes; a forged,
tampered, replayed or contradicting one is refused with ``{"code": "FAIL"}`` and records nothing
but itself.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time

import pytest
from pay_support import make_fake, open_bill, pay_settings, paying, stranger_key  # noqa: F401 (paying)

from server.app import create_app
from settlement import models as m
from settlement.pay import payments
from settlement.fakes.pay_server import new_rsa_key
from settlement.models import NotificationOutcome




async def _bill(world) -> m.Bill:
    return await m.Bill.get(id=world["bill"].id)


async def test_a_valid_notification_pays_the_bill_once(paying):
    fake, url, no = paying["fake"], paying["url"], paying["out_trade_no"]
    status, text = await fake.notify_payment(url, no)
    assert (status, text) == (204, "")
    bill = await _bill(paying["world"])
    assert (bill.state, bill.paid_fen) == (m.BillState.PAID, 23456)
    payment = await m.Payment.get(bill_id=bill.id)
    assert (payment.transaction_id, payment.out_trade_no, payment.amount_fen, payment.channel) == \
        (fake.orders[no].transaction_id, no, 23456, m.PaymentChannel.WECHAT)
    assert payment.payer_id == paying["world"]["identity"].id
    assert payment.paid_at == fake.orders[no].success_time.replace(microsecond=0)
    order = await m.PayOrder.get(out_trade_no=no)
    assert order.state == m.PayOrderState.PAID and order.notified_at is not None

    # WeChat Pay retries (our answer got lost): same payment, nothing moves
    assert await fake.notify_payment(url, no) == (204, "")
    assert await m.Payment.filter(bill_id=bill.id).count() == 1
    assert (await _bill(paying["world"])).paid_fen == 23456
    outcomes = await m.PayNotification.all().order_by("id").values_list("outcome", "status", "out_trade_no")
    assert outcomes == [(NotificationOutcome.ACCEPTED, 204, no), (NotificationOutcome.DUPLICATE, 204, no)]
    audit = await m.AuditEvent.filter(action="RecordPayment", entity_id=str(bill.id)).values_list("actor", flat=True)
    assert audit == ["wechatpay:notification"]


async def test_two_hundred_concurrent_copies_make_one_payment(paying):
    fake, client, no = paying["fake"], paying["client"], paying["out_trade_no"]
    headers, body = fake.payment_notification(no)

    async def deliver():
        response = await client.post("/pay/notify", data=body, headers=headers)
        return response.status

    statuses = await asyncio.gather(*(deliver() for _ in range(200)))
    assert statuses == [204] * 200
    bill = await _bill(paying["world"])
    assert (bill.state, bill.paid_fen, bill.credit_applied_fen) == (m.BillState.PAID, 23456, 0)
    assert await m.Payment.filter(transaction_id=fake.orders[no].transaction_id).count() == 1
    assert await m.CreditEntry.filter(owner_id=bill.owner_id).count() == 0
    outcomes = await m.PayNotification.all().values_list("outcome", flat=True)
    assert sorted(outcomes) == [NotificationOutcome.ACCEPTED] + [NotificationOutcome.DUPLICATE] * 199


HOSTILE = {
    "wrong signature": ({"sign_with": "stranger"}, 401, "bad_signature"),
    "unknown serial": ({"serial": "PUB_KEY_ID_0000000000000000FORGED"}, 401, "unknown_serial"),
    "tampered ciphertext": ({"tamper_ciphertext": True}, 400, "undecryptable"),
    "wrong APIv3 key": ({"apiv3_key": "ffffffffffffffffffffffffffffffff"}, 400, "undecryptable"),
    "stale timestamp": ({"timestamp": "old"}, 401, "stale_timestamp"),
    "timestamp from the future": ({"timestamp": "future"}, 401, "stale_timestamp"),
    "other signature type": ({"signature_type": "WECHATPAY2-SM2-WITH-SM3"}, 401, "bad_signature"),
    "amount different from the order": ({"resource_changes": {"amount": {"total": 1, "currency": "CNY"}}}, 400,
                                         "amount"),
    "another currency": ({"resource_changes": {"amount": {"total": 23456, "currency": "USD"}}}, 400, "amount"),
    "another mchid": ({"resource_changes": {"mchid": "1900000999"}}, 400, "mchid"),
    "another appid": ({"resource_changes": {"appid": "wxotherapp00000001"}}, 400, "appid"),
    "no transaction id": ({"resource_changes": {"transaction_id": None}}, 400, "transaction_id"),
    "amount as text": ({"resource_changes": {"amount": {"total": "23456", "currency": "CNY"}}}, 400, "malformed"),
}


@pytest.mark.parametrize("case", list(HOSTILE), ids=list(HOSTILE))
async def test_hostile_notifications_are_refused_and_record_nothing(paying, case):
    fake, url, no = paying["fake"], paying["url"], paying["out_trade_no"]
    forge, status, why = HOSTILE[case]
    forge = dict(forge)
    if forge.get("sign_with") == "stranger":
        forge["sign_with"] = stranger_key()
    if forge.get("timestamp") == "old":
        forge["timestamp"] = int(time.time()) - 301
    elif forge.get("timestamp") == "future":
        forge["timestamp"] = int(time.time()) + 301
    answered, text = await fake.notify_payment(url, no, **forge)
    assert answered == status
    answer = json.loads(text)
    assert answer["code"] == "FAIL" and why in answer["message"] and "error" not in answer
    bill = await _bill(paying["world"])
    assert (bill.state, bill.paid_fen) == (m.BillState.OPEN, 0)
    assert await m.Payment.all().count() == 0
    assert await m.CreditEntry.all().count() == 0
    assert await m.AuditEvent.filter(action="RecordPayment").count() == 0
    assert (await m.PayOrder.get(out_trade_no=no)).state == m.PayOrderState.PENDING
    kept = await m.PayNotification.all()
    assert [(k.outcome, k.status) for k in kept] == [(NotificationOutcome.REFUSED, status)]
    assert why in kept[0].reason and kept[0].body and kept[0].headers["Wechatpay-Serial"]

    # the genuine one still pays the bill afterwards
    assert await fake.notify_payment(url, no) == (204, "")
    assert (await _bill(paying["world"])).state == m.BillState.PAID


async def test_garbage_is_refused_and_kept(paying):
    client = paying["client"]
    for headers, body in (({}, b"{}"), ({"Wechatpay-Signature": "x", "Wechatpay-Timestamp": "1",
                                        "Wechatpay-Nonce": "n", "Wechatpay-Serial": "s"}, b"\xff\xfe"),
                          ({}, b"")):
        response = await client.post("/pay/notify", data=body, headers=headers)
        assert response.status == 401
        assert (await response.json())["code"] == "FAIL"
    assert await m.PayNotification.filter(outcome=NotificationOutcome.REFUSED).count() == 3
    assert await m.Payment.all().count() == 0


async def test_the_error_shape_is_wechat_pays_not_the_apis(paying):
    client = paying["client"]
    response = await client.get("/pay/notify")
    assert response.status == 405
    assert (await response.json())["code"] == "FAIL"
    big = await client.post("/pay/notify", data=b"x" * (65 * 1024))
    assert big.status == 413 and (await big.json())["code"] == "FAIL"


async def test_a_payment_for_an_unknown_order_is_kept_for_staff(paying):
    fake, url = paying["fake"], paying["url"]
    headers, body = fake.build_notification("TRANSACTION.SUCCESS", {
        "appid": fake.appid, "mchid": fake.mchid, "out_trade_no": "OTHER-SYSTEM-0001", "transaction_id": "4200009999",
        "trade_type": "JSAPI", "trade_state": "SUCCESS", "success_time": "2026-10-12T10:00:00+08:00",
        "payer": {"openid": "o-somebody"}, "amount": {"total": 777, "currency": "CNY"}})
    assert await fake.post(url, (headers, body)) == (204, "")
    assert await fake.post(url, (headers, body)) == (204, "")
    payment = await m.Payment.get(transaction_id="4200009999")
    assert (payment.bill_id, payment.owner_id, payment.amount_fen) == (None, None, 777)
    kept = await m.PayNotification.filter(out_trade_no="OTHER-SYSTEM-0001").order_by("id")
    assert [k.outcome for k in kept] == [NotificationOutcome.UNMATCHED, NotificationOutcome.DUPLICATE]
    assert kept[0].resource["amount"]["total"] == 777


async def test_a_notification_that_is_not_a_success_changes_nothing(paying):
    fake, url, no = paying["fake"], paying["url"], paying["out_trade_no"]
    status = await fake.notify_payment(url, no, resource_changes={"trade_state": "PAYERROR"})
    assert status == (204, "")
    assert await m.Payment.all().count() == 0
    assert (await m.PayNotification.get()).outcome == NotificationOutcome.IGNORED


async def test_without_pay_settings_notifications_are_answered_503_and_kept(client):
    response = await client.post("/pay/notify", data=b"{}", headers={"Wechatpay-Serial": "x"})
    assert response.status == 503
    assert (await response.json())["code"] == "FAIL"
    assert (await m.PayNotification.get()).outcome == NotificationOutcome.ERROR


async def test_certificate_mode_verifies_with_a_rotated_platform_certificate(settings, aiohttp_client, tmp_path):
    async with make_fake(settings.mp_appid, mode="certificate") as fake:
        app = create_app(pay_settings(settings, fake, tmp_path / "keys"))
        client = await aiohttp_client(app)
        from webapp.keys import pay_api_key

        world = await open_bill(500)
        start = await payments.start_payment(app[pay_api_key], world["bill"].id, world["identity"].id)
        fake.pay_order(start.out_trade_no)
        fake.rotate_certificate()  # WeChat Pay signs with a certificate we have not downloaded yet
        url = str(client.make_url("/pay/notify"))
        assert await fake.notify_payment(url, start.out_trade_no) == (204, "")
        assert (await m.Bill.get(id=world["bill"].id)).state == m.BillState.PAID
        forged = await fake.notify_payment(url, start.out_trade_no, sign_with=new_rsa_key())
        assert forged[0] == 401


async def test_the_scheduler_tick_settles_a_silent_order(paying, notify_apps):
    from server import scheduler
    from webapp.keys import pay_api_key

    no = paying["out_trade_no"]
    created = (await m.PayOrder.get(out_trade_no=no)).created_at
    done = await scheduler.tick(created + dt.timedelta(minutes=11), pay=paying["app"][pay_api_key], notify=notify_apps)
    assert done["orders_paid"] == 1
    # paid in full; the same tick may add a late fee to the overdue test bill, so compare what was paid
    assert (await _bill(paying["world"])).paid_fen == 23456
    # the notification that finally comes changes nothing
    assert await paying["fake"].notify_payment(paying["url"], no) == (204, "")
    assert await m.Payment.all().count() == 1
    assert (await m.PayNotification.get()).outcome == NotificationOutcome.DUPLICATE


async def test_a_server_whose_certificates_cannot_be_fetched_serves_without_pay(settings, aiohttp_client, tmp_path):
    async with make_fake(settings.mp_appid, mode="certificate") as fake:
        fake.fail_next("certificates", status=500, times=5)
        client = await aiohttp_client(create_app(pay_settings(settings, fake, tmp_path / "keys")))
        from webapp.keys import pay_api_key

        assert pay_api_key not in client.app
        response = await client.post("/pay/notify", data=b"{}")
        assert response.status == 503 and (await response.json())["code"] == "FAIL"
        assert (await client.get("/healthz")).status == 200
