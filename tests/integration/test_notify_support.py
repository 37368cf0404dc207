"""Helpers for the notification tests: people with identities and accepts, and a dispatcher
on the real WeChat adapter pointed at the fake WeChat server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from settlement.notify import outbox
from settlement.notify.dispatcher import Dispatcher
from settlement.models import (Owner, OutboxMessage, Staff, SubscribeAcceptance, SubscribeAnswer,
                               WechatIdentity)
from settlement.infra.redis_client import Namespace
from webapp.settings import Settings

TEMPLATE_IDS = {name: f"tpl-{name}" for name in outbox.TEMPLATE_NAMES}
BILL_PAYLOAD = {"bill_number": "202611-P001-1", "plant_name": "阳光工业园一号屋顶电站", "total_fen": 123456,
                "owed_fen": 123456, "due_on": "2026-12-07", "bill_id": 1}


async def person(settings: Settings, n: int, *, mp: bool = True, oa: bool = True, accepts: int = 0,
                 template: str = "bill_issued") -> tuple[Owner, WechatIdentity | None, WechatIdentity | None]:
    """An owner with a mini-program identity (``accepts`` accepts of ``template``) and/or an
    official-account identity."""
    owner = await Owner.create(name=f"业主{n}")
    mp_identity = oa_identity = None
    if mp:
        mp_identity = await WechatIdentity.create(app_id=settings.mp_appid, openid=f"mp-openid-{n}", owner=owner)
        if accepts:
            await SubscribeAcceptance.create(identity=mp_identity, template_id=TEMPLATE_IDS[template],
                                             answer=SubscribeAnswer.ACCEPT, accepts=accepts)
    if oa:
        oa_identity = await WechatIdentity.create(app_id=settings.oa_appid, openid=f"oa-openid-{n}", owner=owner)
    return owner, mp_identity, oa_identity


async def staff_member(settings: Settings, n: int) -> WechatIdentity:
    staff = await Staff.create(name=f"运维{n}")
    return await WechatIdentity.create(app_id=settings.oa_appid, openid=f"staff-openid-{n}", staff=staff)


def dispatcher(api, redis, settings: Settings, **options: Any) -> Dispatcher:
    options.setdefault("backoff", 0.0)
    options.setdefault("rate_per_s", 1000)
    return Dispatcher(api, redis, Namespace(settings.redis_prefix), template_ids=TEMPLATE_IDS,
                      mp_appid=settings.mp_appid, oa_appid=settings.oa_appid, **options)


def settings_templates() -> str:
    return json.dumps(TEMPLATE_IDS)


async def rows() -> list[OutboxMessage]:
    return await OutboxMessage.all().order_by("id")


@pytest.fixture
def bound_owners(monkeypatch, settings):
    """Every owner made during the test gets a mini-program identity at once."""
    original = Owner.create

    async def create(*args, **kwargs):
        owner = await original(*args, **kwargs)
        await WechatIdentity.create(app_id=settings.mp_appid, openid=f"mp-owner-{owner.id}", owner=owner)
        return owner

    monkeypatch.setattr(Owner, "create", create)
