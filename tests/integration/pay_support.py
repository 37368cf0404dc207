"""Fixtures for the WeChat Pay tests: a merchant with locally generated RSA keys, a fake WeChat Pay
that signs and encrypts like the real one, the port on it, and bills to pay.

Keys are made once per test run (2048-bit RSA takes a while); each test gets its own fake server
and database.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import secrets
from decimal import Decimal
from pathlib import Path

import pytest

from settlement import models as m
from settlement.adapters.wechatpay_v3 import open_wechat_pay
from settlement.fakes.pay_server import FakeWechatPay, new_rsa_key, private_pem, public_pem
from webapp.settings import Settings
from settlement.clock import UTC

MCHID = "1900000109"
APIV3_KEY = "0123456789abcdef0123456789ABCDEF"


@functools.cache
def merchant_key():
    return new_rsa_key()


@functools.cache
def stranger_key():
    """A key WeChat Pay never issued: forged signatures are made with it."""
    return new_rsa_key()


MERCHANT_SERIAL = secrets.token_hex(20).upper()


def make_fake(appid: str, mode: str = "public_key") -> FakeWechatPay:
    return FakeWechatPay(mchid=MCHID, appid=appid, apiv3_key=APIV3_KEY,
                         merchant_public_key_pem=public_pem(merchant_key()), merchant_serial=MERCHANT_SERIAL,
                         mode=mode)


def pay_settings(settings: Settings, fake: FakeWechatPay, folder: Path) -> Settings:
    """The test settings with WeChat Pay pointed at the fake (public-key or certificate mode as the fake)."""
    folder.mkdir(parents=True, exist_ok=True)
    private = folder / "apiclient_key.pem"
    private.write_text(private_pem(merchant_key()))
    extra = {}
    if fake.mode == "public_key":
        public = folder / "wechatpay_public.pem"
        public.write_text(fake.public_key_pem)
        extra = {"pay_public_key_path": str(public), "pay_public_key_id": fake.public_key_id}
    return dataclasses.replace(settings, pay_mchid=MCHID, pay_apiv3_key=APIV3_KEY, pay_private_key_path=str(private),
                               pay_cert_serial=MERCHANT_SERIAL, pay_notify_url="http://127.0.0.1:1/pay/notify",
                               pay_api_base=fake.base_url, **extra)


def open_port(fake: FakeWechatPay, appid: str):
    """The real adapter, opened on the fake."""
    keys = {"public_key_pem": fake.public_key_pem, "public_key_id": fake.public_key_id} \
        if fake.mode == "public_key" else {}
    return open_wechat_pay(mchid=MCHID, appid=appid, apiv3_key=APIV3_KEY, private_key_pem=private_pem(merchant_key()),
                           cert_serial=MERCHANT_SERIAL, notify_url="http://127.0.0.1:1/pay/notify",
                           api_base=fake.base_url, **keys)


@pytest.fixture
async def fake_pay(settings):
    async with make_fake(settings.mp_appid) as fake:
        yield fake


@pytest.fixture
async def pay_port(db, fake_pay):
    """The database connected and the port on the fake, without the HTTP app."""
    async with open_port(fake_pay, db.mp_appid) as port:
        yield port


_seq = iter(range(1, 10**9))


async def open_bill(total_fen: int, *, allow_partial: bool = True, appid: str = "wxtestmp0000000001",
                    paid_fen: int = 0, owner: m.Owner | None = None) -> dict:
    """An owner with a mini-program identity, a plant under a contract, and one open bill."""
    n = next(_seq)
    owner = owner or await m.Owner.create(name=f"业主{n}")
    identity = await m.WechatIdentity.get_or_none(owner=owner, app_id=appid) or \
        await m.WechatIdentity.create(app_id=appid, openid=f"o-owner-{n}-{secrets.token_hex(4)}", owner=owner)
    plant = await m.Plant.create(code=f"PAY{n:05d}", name=f"屋顶{n}", owner=owner, capacity_kwp=Decimal("50"))
    await m.Contract.create(plant=plant, effective_from=dt.date(2025, 1, 1), tariff_code="t",
                            pricing_model=m.PricingModel.FIXED_PRICE, fixed_price=Decimal("0.5"),
                            allow_partial_payment=allow_partial)
    start = dt.datetime(2026, 9, 1, tzinfo=UTC)
    cycle = await m.ReadingCycle.create(plant=plant, period="2026-10", starts_at=start,
                                        ends_at=start + dt.timedelta(days=30))
    form = await m.ConfirmationForm.create(cycle=cycle, state=m.FormState.CONFIRMED, lines=[], periods={},
                                           generation_kwh=Decimal("1"), self_use_kwh=Decimal("1"),
                                           export_kwh=Decimal("0"), grid_kwh=Decimal("0"))
    state = m.BillState.PAID if paid_fen >= total_fen else m.BillState.PARTLY_PAID if paid_fen else m.BillState.OPEN
    bill = await m.Bill.create(number=f"202610-PAY{n:05d}-1", cycle=cycle, form=form, plant=plant, owner=owner,
                               state=state, issued_at=dt.datetime(2026, 10, 10, 2, tzinfo=UTC),
                               due_on=dt.date(2026, 10, 25), total_fen=total_fen, tax_fen=0, paid_fen=paid_fen)
    await m.BillLine.create(bill=bill, seq=1, kind=m.LineKind.ENERGY, description="自用电量", amount_fen=total_fen)
    return {"owner": owner, "identity": identity, "plant": plant, "bill": bill}


async def admin() -> m.Staff:
    return await m.Staff.create(name="财务管理员", role=m.StaffRole.ADMIN)


@pytest.fixture
async def paying(settings, aiohttp_client, tmp_path):
    """The whole server with WeChat Pay on a fake, and a bill with a pending order the fake has paid."""
    from server.app import create_app
    from webapp.keys import pay_api_key
    from settlement.pay import payments

    async with make_fake(settings.mp_appid) as fake:
        app = create_app(pay_settings(settings, fake, tmp_path / "keys"))
        client = await aiohttp_client(app)
        world = await open_bill(23456)
        start = await payments.start_payment(app[pay_api_key], world["bill"].id, world["identity"].id)
        fake.pay_order(start.out_trade_no)
        yield {"fake": fake, "app": app, "client": client, "url": str(client.make_url("/pay/notify")),
               "world": world, "out_trade_no": start.out_trade_no}
