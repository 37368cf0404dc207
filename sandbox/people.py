"""The demo's WeChat users: strangers who become owners by binding, and O&M staff for the bot.

Owner users start unbound, as a real newcomer does: they log in to the mini-program (a login
code the sandbox registers with the fake WeChat, like ``wx.login`` gives one) and bind with an
invitation code staff issued (:func:`invite`, as the bot's 邀请 does). Each user has a
mini-program openid, an official-account openid and a unionid linking the two, as WeChat gives a
user of an open-platform account.

Every user follows the official account: their official-account identity (with the unionid) is
made at start, as WeChat would know it, so the dispatcher can fall back to a template message
for a bound owner who did not subscribe in the mini-program. Staff users get their staff record
there too (:func:`ensure_users`, idempotent by the official-account openid), so the bot console
can play an operator or an admin.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web
from tortoise.transactions import in_transaction

from settlement.owners import bindings
from settlement import models as m
from settlement.errors import NotFound
from webapp.keys import settings_key

INVITATION_TTL = dt.timedelta(days=1)


@dataclass(frozen=True)
class DemoUser:
    """One WeChat user of the sandbox; ``role`` is the staff role, or None for a would-be owner."""

    key: str
    nickname: str
    role: m.StaffRole | None = None

    @property
    def mp_openid(self) -> str:
        return f"o-sandbox-mp-{self.key}"

    @property
    def oa_openid(self) -> str:
        return f"o-sandbox-oa-{self.key}"

    @property
    def unionid(self) -> str:
        return f"u-sandbox-{self.key}"

    @property
    def staff_name(self) -> str:
        return f"沙箱{self.nickname}"

    def as_dict(self) -> dict:
        return {"key": self.key, "nickname": self.nickname, "role": self.role.value if self.role else None,
                "mp_openid": self.mp_openid, "oa_openid": self.oa_openid}


USERS: tuple[DemoUser, ...] = (
    DemoUser("aming", "阿明"),
    DemoUser("xiaohong", "小红"),
    DemoUser("laowang", "老王"),
    DemoUser("operator", "运维小周", m.StaffRole.OPERATOR),
    DemoUser("admin", "财务老陈", m.StaffRole.ADMIN),
)
BY_KEY = {user.key: user for user in USERS}


def user(key: str) -> DemoUser:
    found = BY_KEY.get(key)
    if found is None:
        raise NotFound(f"no sandbox user {key!r} (one of {', '.join(BY_KEY)})", code="unknown_user")
    return found


async def ensure_users(oa_appid: str) -> dict[str, m.Staff]:
    """The official-account identities of all users and the staff records of the staff users
    (made on first start); returns the staff records by user key."""
    staff: dict[str, m.Staff] = {}
    async with in_transaction():
        for person in USERS:
            identity = await m.WechatIdentity.get_or_none(app_id=oa_appid, openid=person.oa_openid)
            if person.role is None:
                if identity is None:
                    await m.WechatIdentity.create(app_id=oa_appid, openid=person.oa_openid, unionid=person.unionid,
                                                  nickname=person.nickname)
                continue
            record = await m.Staff.get_or_none(id=identity.staff_id) if identity and identity.staff_id else None
            if record is None:
                record = await m.Staff.create(name=person.staff_name, role=person.role)
            if identity is None:
                identity = await m.WechatIdentity.create(app_id=oa_appid, openid=person.oa_openid,
                                                         unionid=person.unionid, staff=record,
                                                         nickname=person.nickname)
            elif identity.staff_id != record.id:
                identity.staff_id = record.id
                await identity.save(update_fields=["staff_id"])
            staff[person.key] = record
    return staff


async def invite(owner_id: int, oa_appid: str) -> str:
    """An invitation code for the owner, issued by the sandbox's operator (audited as them)."""
    operator = (await ensure_users(oa_appid))["operator"]
    code, _ = await bindings.issue_invitation(owner_id, operator, INVITATION_TTL)
    return code


async def owners_overview(limit: int = 50) -> list[dict]:
    """The demo portfolio's owners with their plants, for the staff desk of the page."""
    owners = await m.Owner.all().order_by("id").limit(limit)
    plants = await m.Plant.filter(owner_id__in=[o.id for o in owners]).order_by("id") \
        .values("id", "code", "name", "owner_id", "capacity_kwp")
    bound = set(await m.WechatIdentity.filter(owner_id__in=[o.id for o in owners])
                .values_list("owner_id", flat=True))
    return [{"id": o.id, "name": o.name, "bound": o.id in bound,
             "plants": [{"id": p["id"], "code": p["code"], "name": p["name"], "capacity_kwp": str(p["capacity_kwp"])}
                        for p in plants if p["owner_id"] == o.id]} for o in owners]


async def bound_owner(person: DemoUser, mp_appid: str) -> dict | None:
    """The owner the user's mini-program identity is bound to, if any."""
    identity = await m.WechatIdentity.get_or_none(app_id=mp_appid, openid=person.mp_openid).prefetch_related("owner")
    if identity is None or identity.owner is None:
        return None
    return {"id": identity.owner.id, "name": identity.owner.name}


async def staff_id(person: DemoUser, oa_appid: str) -> int | None:
    """The staff record's id of a staff user (the id CLI commands such as ``--staff`` take)."""
    identity = await m.WechatIdentity.get_or_none(app_id=oa_appid, openid=person.oa_openid)
    return identity.staff_id if identity is not None else None


async def staff_ctx(app: web.Application) -> AsyncIterator[None]:
    """Needs the database: the users and staff exist before the first bot command."""
    await ensure_users(app[settings_key].oa_appid)
    yield
