"""What a command handler works with: who sent the message, and the resources it may use."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import redis.asyncio as redis_asyncio
from tortoise.exceptions import IntegrityError

from settlement.owners.access import Principal
from settlement.billing.ebill_links import public_origin
from settlement.models import Owner, Staff, StaffRole, WechatIdentity
from settlement.notify.outbox import NotifyApps
from settlement.ports.pay import WechatPay
from settlement.ports.wechat import WechatApi
from settlement.infra.redis_client import Namespace
from webapp.settings import Settings
from settlement.clock import utc_now



@dataclass
class Env:
    """The resources of the running server a handler may use, and the message's own facts."""

    settings: Settings
    redis: redis_asyncio.Redis
    ns: Namespace
    wechat: WechatApi
    notify: NotifyApps  # our mini-program and official account, for the messages a command writes
    pay: WechatPay | None = None  # None while WeChat Pay is not configured
    msg_id: int | None = None
    now: dt.datetime = field(default_factory=lambda: utc_now())

    @property
    def app_id(self) -> str:
        """The official account's AppID: the app of every identity the bot knows."""
        return self.settings.oa_appid

    @property
    def public_url(self) -> str:
        """Where links sent to users start (no trailing slash)."""
        return public_origin(self.settings.public_url, f"http://{self.settings.host}:{self.settings.port}")


@dataclass
class Caller:
    """The sender: their WechatIdentity in the official account (None until they need one), and
    the owner and staff records it is bound to, if any."""

    openid: str
    identity: WechatIdentity | None
    staff: Staff | None
    owner: Owner | None = None

    @property
    def role(self) -> StaffRole | None:
        """The staff role, or None for anyone who is not active staff."""
        return self.staff.role if self.staff is not None and self.staff.active else None

    @property
    def owner_id(self) -> int | None:
        return self.identity.owner_id if self.identity is not None else None

    def principal(self) -> Principal | None:
        if self.identity is None:
            return None
        return Principal(identity_id=self.identity.id, openid=self.openid, owner_id=self.identity.owner_id)


async def find_caller(app_id: str, openid: str) -> Caller:
    """The sender as the database knows them (one query); creates nothing."""
    identity = await WechatIdentity.filter(app_id=app_id, openid=openid).select_related("owner", "staff").first()
    if identity is None:
        return Caller(openid=openid, identity=None, staff=None)
    return Caller(openid=openid, identity=identity, staff=identity.staff, owner=identity.owner)


async def ensure_identity(caller: Caller, app_id: str) -> WechatIdentity:
    """The sender's identity, created on first need (subscribing, binding, reporting a fault).

    The unique key (app_id, openid) settles a race with another process creating it.
    """
    if caller.identity is None:
        try:
            caller.identity = await WechatIdentity.create(app_id=app_id, openid=caller.openid)
        except IntegrityError:
            caller.identity = await WechatIdentity.get(app_id=app_id, openid=caller.openid)
    return caller.identity


@dataclass
class Later:
    """Work to finish after the reply: ``ack`` is answered at once, ``run`` gives the text sent
    afterwards as a customer-service message."""

    run: Callable[[], Awaitable[str | None]]
    ack: str
