"""Test support for the mini-program API: a WeChat port fake that behaves like WeChat, and a
portfolio of two owners with plants, forms, bills and people granted rights.

:class:`FakeWechatApi` implements :class:`settlement.ports.wechat.WechatApi` for login and phone
numbers the way WeChat does: a wx.login or getPhoneNumber code works once (40029 / 40163 after),
an unknown code is 40029, and codes can be primed to answer 45011 (rate limit), 40226 (risky
user) or to be unreachable (WechatUnavailable).
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field
from decimal import Decimal

from settlement import models as m
from settlement.ports.wechat import (InvalidCode, MiniProgramSession, OfficialAccountUser, RateLimited, RiskyUser,
                                     WechatUnavailable)
from tests.integration.billed_plant import plain_bill



@dataclass
class FakeWechatApi:
    users: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # code -> (openid, unionid)
    phones: dict[str, str] = field(default_factory=dict)  # phone code -> number
    failures: dict[str, Exception] = field(default_factory=dict)  # code -> what WeChat answers
    used: set[str] = field(default_factory=set)
    calls: list[tuple[str, str]] = field(default_factory=list)

    def login_code(self, openid: str, unionid: str | None = None) -> str:
        code = "wxcode-" + secrets.token_hex(8)
        self.users[code] = (openid, unionid)
        return code

    def phone_code(self, number: str) -> str:
        code = "phcode-" + secrets.token_hex(8)
        self.phones[code] = number
        return code

    def fail(self, code: str, errcode: int) -> None:
        self.failures[code] = {45011: RateLimited(45011, "api minute-quota reach limit"),
                               40226: RiskyUser(40226, "high risk user"),
                               -1: WechatUnavailable(-1, "system error")}[errcode]

    def _spend(self, call: str, code: str, issued: dict, refusal: InvalidCode):
        """What a one-time ``code`` stands for, as WeChat takes it: the call noted, a failure set
        for the code raised, a code used already or never issued refused with ``refusal``."""
        self.calls.append((call, code))
        if code in self.failures:
            raise self.failures[code]
        if code in self.used or code not in issued:
            raise refusal
        self.used.add(code)
        return issued[code]

    async def code2session(self, code: str) -> MiniProgramSession:
        openid, unionid = self._spend("code2session", code, self.users, InvalidCode(40029, "invalid code"))
        return MiniProgramSession(openid=openid, session_key="sk-" + secrets.token_hex(12), unionid=unionid)

    async def phone_number(self, code: str) -> str:
        return self._spend("phone_number", code, self.phones, InvalidCode(40163, "code been used"))

    async def send_subscribe_message(self, *args, **kwargs) -> None:
        raise NotImplementedError("the mini-program API sends no messages")

    send_template_message = send_subscribe_message
    send_customer_service_text = send_subscribe_message

    async def user_info(self, openid: str) -> OfficialAccountUser:
        # the official account's, asked by the bot where a whole app is served with this fake
        # (test_outside_text_property): a follower without unionid
        return OfficialAccountUser(openid=openid, subscribed=True)


@dataclass
class OwnerWorld:
    """One owner's things: ids to reach them by, per kind of route resource."""

    owner: m.Owner
    plant: m.Plant
    form: m.ConfirmationForm
    bill: m.Bill
    fault: m.FaultReport
    attachment: m.Attachment
    grant: m.PlantAccess

    def id_of(self, path_param: str) -> int:
        return {"plant_id": self.plant.id, "form_id": self.form.id, "bill_id": self.bill.id,
                "fault_id": self.fault.id, "attachment_id": self.attachment.id,
                "grant_id": self.grant.id}[path_param]


async def owner_world(code: str, name: str, openid: str, app_id: str) -> tuple[OwnerWorld, m.WechatIdentity]:
    """An owner with a bound identity, one plant with a sent form and an open bill, a fault report
    with a photo record and a grant to a family member."""
    made = await plain_bill(code, "2026-09", total_fen=123456, paid_fen=20000, due_on=dt.date(2026, 10, 20),
                            form_state=m.FormState.SENT, owner_name=name,
                            energies=("1000", "800", "200", "300"))
    plant = made["plant"]
    await m.Contract.create(plant=plant, effective_from=dt.date(2026, 1, 1), tariff_code="jiangsu-2025",
                            pricing_model=m.PricingModel.GRID_DISCOUNT, discount=Decimal("0.85"))
    owner = await m.Owner.get(id=plant.owner_id)
    identity = await m.WechatIdentity.create(app_id=app_id, openid=openid, owner=owner)
    family = await m.WechatIdentity.create(app_id=app_id, openid=openid + "-family")
    grant = await m.PlantAccess.create(plant=plant, identity=family, right=m.PlantRight.VIEW)
    fault = await m.FaultReport.create(plant=plant, reported_by=identity, text="逆变器报警")
    await m.SubscribeAcceptance.create(identity=identity, template_id=f"tmpl-{code}", answer=m.SubscribeAnswer.ACCEPT,
                                       accepts=1)
    attachment = await m.Attachment.create(storage_key=f"00/{code}.png", content_type="image/png", size_bytes=8,
                                           sha256="0" * 64, uploaded_by=identity, fault=fault)
    await m.PrepaidAccount.create(number=f"PA-{code}", owner=owner, plant=plant, name=f"{name}预付费",
                                  switch_serial=f"SW-{code}")  # the prepaid routes have something to show
    return OwnerWorld(owner=owner, plant=plant, form=made["form"], bill=made["bill"], fault=fault,
                      attachment=attachment, grant=grant), identity


def _image(fmt: str, size: tuple[int, int] = (8, 6)) -> bytes:
    """A real, small image (uploads are decoded in full, a header alone is refused)."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(out, format=fmt)
    return out.getvalue()


PNG = _image("PNG")
JPEG = _image("JPEG")


# --- fixtures (import them into a test module: from tests.integration.miniapp_support import *) ---

import pytest  # noqa: E402

from webapp.keys import wechat_api_key  # noqa: E402


@pytest.fixture
def fake_wechat() -> FakeWechatApi:
    return FakeWechatApi()


async def client_with_fake_wechat(aiohttp_client, settings, fake: FakeWechatApi):
    """A test client on the whole server app of ``settings``, the WeChat port played by ``fake``."""
    from server.app import create_app

    app = create_app(settings)

    async def use_fake(app) -> None:
        app[wechat_api_key] = fake  # replaces the real adapter the app's resources made

    app.on_startup.append(use_fake)
    return await aiohttp_client(app)


@pytest.fixture
async def api(settings, aiohttp_client, fake_wechat):
    """A test client on the whole server app, with the WeChat port played by :class:`FakeWechatApi`."""
    return await client_with_fake_wechat(aiohttp_client, settings, fake_wechat)


async def login(api, fake: FakeWechatApi, openid: str) -> dict[str, str]:
    """Log ``openid`` in through POST /api/v1/session; the Authorization header to use."""
    resp = await api.post("/api/v1/session", json={"code": fake.login_code(openid)})
    assert resp.status == 201, await resp.text()
    return {"Authorization": f"Bearer {(await resp.json())['token']}"}


__all__ = ["FakeWechatApi", "OwnerWorld", "owner_world", "login", "client_with_fake_wechat", "fake_wechat", "api",
           "PNG", "JPEG"]
