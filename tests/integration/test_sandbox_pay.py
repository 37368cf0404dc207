"""The sandbox's wx.requestPayment: only the merchant's signed parameters of the payer's own open
order are paid, and the payment then arrives as WeChat Pay's signed, encrypted notification; a
refund is finished by the sandbox's WeChat Pay and notified the same way."""

from __future__ import annotations

import asyncio
import dataclasses
import socket

from aiohttp.test_utils import TestServer
from pay_support import MERCHANT_SERIAL, admin, merchant_key, open_bill

from sandbox.app import install
from sandbox.people import BY_KEY
from server import scheduler
from server.app import create_app
from settlement import models as m
from settlement.pay import payments
from settlement.fakes.pay_server import private_pem
from settlement.fakes.tax_system import with_check
from webapp.keys import pay_api_key, tax_key
from webapp.settings import PAY_API_BASE, WECHAT_API_BASE


async def test_a_sandbox_payment_is_checked_then_notified_like_wechat_pay(settings, aiohttp_client, tmp_path,
                                                                          notify_apps):
    key = tmp_path / "apiclient_key.pem"
    key.write_text(private_pem(merchant_key()))
    settings = dataclasses.replace(
        settings, wechat_api_base=WECHAT_API_BASE, pay_api_base=PAY_API_BASE, pay_mchid="1900000109",
        pay_apiv3_key="0123456789abcdef0123456789ABCDEF", pay_private_key_path=str(key),
        pay_cert_serial=MERCHANT_SERIAL, pay_notify_url="https://example.invalid/pay/notify")
    # served on the settings' port: the sandbox points WeChat Pay's notify URL at this process
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = dataclasses.replace(settings, port=port)
    app = install(create_app(settings))
    client = await aiohttp_client(TestServer(app, host="127.0.0.1", port=port))
    aming = BY_KEY["aming"]
    owner = await m.Owner.create(name="沙箱业主有限公司", kind=m.OwnerKind.COMMERCIAL,
                                 tax_id=with_check("91320400MA0000001"))
    await m.WechatIdentity.create(app_id=settings.mp_appid, openid=aming.mp_openid, owner=owner)
    world = await open_bill(12345, appid=settings.mp_appid, owner=owner)

    code = (await (await client.post("/sandbox/api/login", json={"user": "aming"})).json())["code"]
    token = (await (await client.post("/api/v1/session", json={"code": code})).json())["token"]
    order = await client.post(f"/api/v1/bills/{world['bill'].id}/pay", json={},
                              headers={"Authorization": f"Bearer {token}"})
    assert order.status == 200, await order.text()
    order = await order.json()
    good = {"user": "aming", "out_trade_no": order["out_trade_no"], "request_payment": order["request_payment"]}

    async def pay(body: dict) -> tuple[int, dict]:
        response = await client.post("/sandbox/api/pay", json=body)
        return response.status, await response.json()

    forged = {**order["request_payment"], "paySign": order["request_payment"]["paySign"][::-1]}
    status, body = await pay({**good, "request_payment": forged})
    assert (status, body["error"]["code"]) == (400, "bad_pay_sign")
    other = {**order["request_payment"], "package": "prepay_id=wx-another-order"}
    assert (await pay({**good, "request_payment": other}))[1]["error"]["code"] == "bad_package"
    assert (await pay({**good, "user": "xiaohong"}))[1]["error"]["code"] == "other_payer"
    assert (await pay({**good, "out_trade_no": "261010B999N1"}))[0] == 404
    bill = await m.Bill.get(id=world["bill"].id)
    assert (bill.state, bill.paid_fen) == (m.BillState.OPEN, 0)  # nothing moved

    status, body = await pay(good)
    assert (status, body["notify_status"]) == (200, 204), body
    bill = await m.Bill.get(id=world["bill"].id)
    assert (bill.state, bill.paid_fen) == (m.BillState.PAID, 12345)
    payment = await m.Payment.get(bill_id=bill.id)
    assert payment.transaction_id == body["transaction_id"]
    kept = await m.PayNotification.get(out_trade_no=order["out_trade_no"])
    assert kept.status == 204 and kept.headers["Wechatpay-Serial"].startswith("PUB_KEY_ID_")
    assert (await pay(good))[0] == 409  # paid once

    # the demo's tax system issues the paid bill's e-invoice on the scheduler's invoices job
    invoicing = [job for job in scheduler.JOBS if job.name == "invoices"]
    report = await scheduler.run_all(None, scheduler.JobContext(tax=app[tax_key], notify=notify_apps), invoicing)
    assert not report.failed
    invoice = await m.InvoiceRequest.get(owner=owner)
    assert (invoice.state, invoice.amount_fen, invoice.buyer_tax_id) == (
        m.InvoiceState.ISSUED, 12345, owner.tax_id)
    assert invoice.invoice_number

    # an admin refunds part of it; the sandbox's WeChat Pay finishes the refund and notifies
    refund = await payments.request_refund(payment.id, 2345, "多收了", await admin(), pay=app[pay_api_key],
                                           apps=notify_apps)
    assert refund.state == m.RefundState.PENDING
    for _ in range(100):
        refund = await m.Refund.get(id=refund.id)
        if refund.state != m.RefundState.PENDING:
            break
        await asyncio.sleep(0.1)
    assert refund.state == m.RefundState.SUCCEEDED
    bill = await m.Bill.get(id=world["bill"].id)
    assert (bill.paid_fen, bill.state) == (12345 - 2345, m.BillState.PARTLY_PAID)
    refunds = await m.PayNotification.filter(status=204).count()
    assert refunds == 2  # the payment's and the refund's notification, both verified
