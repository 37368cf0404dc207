"""The owner-facing prepaid routes through the whole server: balance, statement and a top-up
order, for the owner, a payer and a viewer; the top-up lands when WeChat Pay's notification comes."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from pay_support import make_fake, pay_settings
from prepaid_support import day_rows, device, prepaid_site  # noqa: F401

from settlement import models as m
from settlement.prepaid import accounts as prepaid
from webapp.keys import wechat_api_key
from tests.integration.miniapp_support import FakeWechatApi, client_with_fake_wechat, login
from settlement.clock import LOCAL, utc_now


@pytest.fixture
async def world(settings, aiohttp_client, tmp_path, device):  # noqa: F811
    fake_wechat = FakeWechatApi()
    async with make_fake(settings.mp_appid) as fake_pay:
        client = await client_with_fake_wechat(aiohttp_client, pay_settings(settings, fake_pay, tmp_path / "keys"),
                                               fake_wechat)
        site = await prepaid_site(settings, device)
        payer = await m.WechatIdentity.create(app_id=settings.mp_appid, openid="o-finance", nickname="财务小李")
        viewer = await m.WechatIdentity.create(app_id=settings.mp_appid, openid="o-family")
        await m.PlantAccess.create(plant=site["plant"], identity=payer, right=m.PlantRight.PAY)
        await m.PlantAccess.create(plant=site["plant"], identity=viewer, right=m.PlantRight.VIEW)
        people = {who: await login(client, fake_wechat, openid) for who, openid in (
            ("owner", site["identity"].openid), ("payer", "o-finance"), ("viewer", "o-family"))}
        yield {"client": client, "fake": fake_pay, "site": site, "people": people,
               "path": f"/api/v1/plants/{site['plant'].id}/prepaid"}


async def test_balance_statement_and_a_top_up_by_the_payer(world, notify_apps):
    client, path, people = world["client"], world["path"], world["people"]
    now = utc_now()
    today = now.astimezone(LOCAL).date()
    # yesterday's usage has been charged
    yesterday = today - dt.timedelta(days=1)
    await prepaid.record_usage(world["site"]["service"].id, day_rows(yesterday, np.full(96, 0.25)), now=now,
                               apps=notify_apps)

    viewer = await client.post(path + "/topup", json={"amount_fen": 5000}, headers=people["viewer"])
    assert viewer.status == 403
    bad = await client.post(path + "/topup", json={"amount_fen": 0}, headers=people["payer"])
    assert bad.status == 400
    resp = await client.post(path + "/topup", json={"amount_fen": 50000}, headers=people["payer"])
    assert resp.status == 200, await resp.text()
    order = await resp.json()
    assert order["amount_fen"] == 50000 and order["request_payment"]["package"].startswith("prepay_id=")
    world["fake"].pay_order(order["out_trade_no"])
    assert await world["fake"].notify_payment(str(client.make_url("/pay/notify")), order["out_trade_no"]) == (204, "")

    for who in ("owner", "viewer"):
        account = await client.get(path, headers=people[who])
        assert account.status == 200
        body = await account.json()
        assert body["balance_fen"] == 50000 and body["charges_fen"] > 0
        assert body["available_fen"] == body["balance_fen"] - body["charges_fen"]
        assert body["services"] == [{"name": "电", "utility": "electricity", "unit": "kWh"}]
    statement = await (await client.get(path + "/statement?days=7", headers=people["owner"])).json()
    kinds = [e["kind"] for e in statement["entries"]]
    assert kinds == ["charge", "topup"]
    assert statement["services"][0]["quantity"] == pytest.approx(24.0)
    assert statement["entries"][-1]["available_after_fen"] == statement["account"]["available_fen"]
    told = await m.OutboxMessage.get(event="TopUpReceived")
    assert told.payload["context"]["what"].startswith("财务小李充值")


async def test_a_plant_without_a_prepaid_account(world):
    await m.PrepaidAccount.filter(id=world["site"]["account"].id).update(plant_id=None)
    resp = await world["client"].get(world["path"], headers=world["people"]["owner"])
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_prepaid"


async def test_paying_by_account_number_only_where_the_owner_allows_it(world, settings):
    client = world["client"]
    await m.WechatIdentity.create(app_id=settings.mp_appid, openid="o-neighbour")
    number = world["site"]["account"].number
    body = {"number": number, "amount_fen": 3000}
    stranger = await login(client, client.app[wechat_api_key], "o-neighbour")
    refused = await client.post("/api/v1/prepaid/topup", json=body, headers=stranger)
    assert refused.status == 404
    unknown = await client.post("/api/v1/prepaid/topup", json={**body, "number": "PA0000000000"},
                                headers=world["people"]["payer"])
    assert unknown.status == 404
    await m.PrepaidAccount.filter(id=world["site"]["account"].id).update(allow_pay_by_number=True)
    allowed = await client.post("/api/v1/prepaid/topup", json=body, headers=stranger)
    assert allowed.status == 200 and (await allowed.json())["amount_fen"] == 3000
