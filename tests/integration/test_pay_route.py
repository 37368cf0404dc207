"""POST /api/v1/bills/{bill_id}/pay through the whole server: session, the pay right on the plant,
the body, WeChat Pay's answers, and the payment landing when the notification comes."""

from __future__ import annotations

import pytest
from pay_support import make_fake, open_bill, pay_settings

from settlement import models as m
from tests.integration.miniapp_support import FakeWechatApi, client_with_fake_wechat, login


@pytest.fixture
async def world(settings, aiohttp_client, tmp_path):
    fake_wechat = FakeWechatApi()
    async with make_fake(settings.mp_appid) as fake_pay:
        client = await client_with_fake_wechat(aiohttp_client, pay_settings(settings, fake_pay, tmp_path / "keys"),
                                               fake_wechat)
        bill = await open_bill(30000)
        payer = await m.WechatIdentity.create(app_id=settings.mp_appid, openid="o-finance")
        viewer = await m.WechatIdentity.create(app_id=settings.mp_appid, openid="o-family")
        await m.WechatIdentity.create(app_id=settings.mp_appid, openid="o-stranger")
        await m.PlantAccess.create(plant=bill["plant"], identity=payer, right=m.PlantRight.PAY)
        await m.PlantAccess.create(plant=bill["plant"], identity=viewer, right=m.PlantRight.VIEW)
        people = {who: await login(client, fake_wechat, openid) for who, openid in (
            ("owner", bill["identity"].openid), ("payer", "o-finance"), ("viewer", "o-family"),
            ("stranger", "o-stranger"))}
        yield {"client": client, "fake": fake_pay, "bill": bill["bill"], "people": people,
               "path": f"/api/v1/bills/{bill['bill'].id}/pay"}


async def test_the_owner_and_the_payer_get_a_signed_order(world):
    client, path = world["client"], world["path"]
    owner = await client.post(path, json={}, headers=world["people"]["owner"])
    assert owner.status == 200, await owner.text()
    body = await owner.json()
    params = body["request_payment"]
    assert set(params) == {"timeStamp", "nonceStr", "package", "signType", "paySign"}
    assert params["signType"] == "RSA" and params["package"].startswith("prepay_id=")
    assert body["amount_fen"] == 30000 and not body["reused"]

    payer = await client.post(path, json={"amount_fen": 10000}, headers=world["people"]["payer"])
    assert payer.status == 200
    paid_part = await payer.json()
    order = await m.PayOrder.get(out_trade_no=paid_part["out_trade_no"])
    assert order.payer_id == (await m.WechatIdentity.get(openid="o-finance")).id and order.amount_fen == 10000

    # the finance clerk pays; WeChat Pay tells us; the bill is partly paid, by them
    world["fake"].pay_order(order.out_trade_no)
    assert await world["fake"].notify_payment(str(client.make_url("/pay/notify")), order.out_trade_no) == (204, "")
    bill = await m.Bill.get(id=world["bill"].id)
    assert (bill.state, bill.paid_fen) == (m.BillState.PARTLY_PAID, 10000)
    payment = await m.Payment.get(bill_id=bill.id)
    assert payment.payer_id == order.payer_id and payment.owner_id == bill.owner_id


async def test_who_may_not_pay(world):
    client, path = world["client"], world["path"]
    assert (await client.post(path, json={}, headers=world["people"]["viewer"])).status == 403
    assert (await client.post(path, json={}, headers=world["people"]["stranger"])).status == 404
    assert (await client.post(path, json={})).status == 401
    assert await m.PayOrder.all().count() == 0


@pytest.mark.parametrize("body, status, code", [
    ({"amount_fen": 30001}, 409, "amount_above_owed"),
    ({"amount_fen": 0}, 400, "invalid_body"),
    ({"amount_fen": "100"}, 400, "invalid_body"),
    ({"amount_fen": 1.5}, 400, "invalid_body"),
    ({"amount": 100}, 400, "invalid_body"),
    (None, 400, "invalid_body"),
])
async def test_bad_amounts(world, body, status, code):
    client, path = world["client"], world["path"]
    kwargs = {"json": body} if body is not None else {"data": b""}
    resp = await client.post(path, headers=world["people"]["owner"], **kwargs)
    assert resp.status == status
    assert (await resp.json())["error"]["code"] in (code, "invalid_json")
    assert await m.PayOrder.all().count() == 0


async def test_wechat_pay_failures(world):
    client, path, fake = world["client"], world["path"], world["fake"]
    fake.fail_next("jsapi", status=400, code="PARAM_ERROR")
    refused = await client.post(path, json={}, headers=world["people"]["owner"])
    assert refused.status == 502 and (await refused.json())["error"]["code"] == "pay_refused"
    fake.fail_next("jsapi", status=500, code="SYSTEM_ERROR")
    down = await client.post(path, json={}, headers=world["people"]["owner"])
    assert down.status == 503 and (await down.json())["error"]["code"] == "pay_unavailable"
    ok = await client.post(path, json={}, headers=world["people"]["owner"])
    assert ok.status == 200


async def test_the_route_is_in_the_openapi_document(world):
    document = await (await world["client"].get("/api/v1/openapi.json")).json()
    operation = document["paths"]["/bills/{bill_id}/pay"]["post"]
    assert {"200", "401", "403", "404", "409", "502", "503"} <= set(operation["responses"])
