"""Test support for the official-account bot: WeChat's side of the protocol, built independently
of the code under test.

- Messages are XML as WeChat sends them; plaintext requests are signed here with hashlib, safe-mode
  requests encrypted and signed by wechatpy's own ``WeChatCrypto`` (the reply is decrypted by it too).
- ``bot_app``: the whole server app (as ``pvsettle serve`` builds it) against the fake WeChat server
  of ``wechat_fixtures``, so customer-service messages really leave through the adapter.
- ``people``: an owner (via :func:`tests.integration.billed_plant.walked_plant`, a plant with a
  partly paid bill) with a bound official-account user, and one staff user of each role.

Import everything into a test module: ``from tests.integration.bot_support import *  # noqa: F403``
(it re-exports the WeChat fixtures).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import itertools
import secrets
import time
from decimal import Decimal
from typing import Any

import pytest
import xmltodict
from wechatpy.crypto import WeChatCrypto

from server.app import create_app
from settlement import models as m
from settlement.notify.outbox import NotifyApps
from webapp.settings import Settings
from tests.integration.billed_plant import walked_plant
from tests.integration.wechat_fixtures import *  # noqa: F403
from tests.integration.wechat_fixtures import fake_wechat, wechat_settings  # noqa: F401
from settlement.clock import LOCAL

__all__ = ["fake_wechat", "wechat_settings", "wechat_redis", "wechat_api_factory", "wechat_api",
           "bot_app", "bot", "people", "Bot", "text_xml", "event_xml", "location_xml", "media_xml",
           "OWNER", "STRANGER", "VIEWER", "OPERATOR", "ADMIN", "ACCOUNT", "audit_events", "november_cycle"]

ACCOUNT = "gh_0123456789ab"  # the official account's original id (ToUserName)
OWNER, STRANGER = "o-owner-00000000000000001", "o-stranger-000000000000001"
VIEWER, OPERATOR, ADMIN = "o-staff-viewer-0000000001", "o-staff-operator-00000001", "o-staff-admin-000000001"
_msg_ids = itertools.count(6_000_000_000_000_000_001)


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def text_xml(openid: str, content: str, *, msg_id: int | None = None, create_time: int | None = None) -> str:
    msg_id = next(_msg_ids) if msg_id is None else msg_id
    return (f"<xml><ToUserName>{_cdata(ACCOUNT)}</ToUserName><FromUserName>{_cdata(openid)}</FromUserName>"
            f"<CreateTime>{create_time or int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content>{_cdata(content)}</Content><MsgId>{msg_id}</MsgId></xml>")


def event_xml(openid: str, event: str, key: str | None = None, *, create_time: int | None = None,
              extra: str = "") -> str:
    key_xml = f"<EventKey>{_cdata(key)}</EventKey>" if key is not None else ""
    return (f"<xml><ToUserName>{_cdata(ACCOUNT)}</ToUserName><FromUserName>{_cdata(openid)}</FromUserName>"
            f"<CreateTime>{create_time or int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            f"<Event>{_cdata(event)}</Event>{key_xml}{extra}</xml>")


def location_xml(openid: str, lat: str, lon: str, label: str = "") -> str:
    return (f"<xml><ToUserName>{_cdata(ACCOUNT)}</ToUserName><FromUserName>{_cdata(openid)}</FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[location]]></MsgType>"
            f"<Location_X>{lat}</Location_X><Location_Y>{lon}</Location_Y><Scale>15</Scale>"
            f"<Label>{_cdata(label)}</Label><MsgId>{next(_msg_ids)}</MsgId></xml>")


def media_xml(openid: str, kind: str) -> str:
    return (f"<xml><ToUserName>{_cdata(ACCOUNT)}</ToUserName><FromUserName>{_cdata(openid)}</FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType>{_cdata(kind)}</MsgType>"
            f"<MediaId><![CDATA[media-1]]></MediaId><PicUrl><![CDATA[http://example.invalid/p.jpg]]></PicUrl>"
            f"<MsgId>{next(_msg_ids)}</MsgId></xml>")


def sign(token: str, *parts: str) -> str:
    return hashlib.sha1("".join(sorted([token, *parts])).encode()).hexdigest()


@dataclasses.dataclass
class Reply:
    status: int
    body: str
    xml: dict[str, Any] | None

    @property
    def text(self) -> str | None:
        """The reply's text content (None for ``success`` or an error)."""
        return self.xml.get("Content") if self.xml else None


class Bot:
    """Posts messages to /wechat the way WeChat does and reads the replies."""

    def __init__(self, client, settings: Settings):
        self.client = client
        self.settings = settings
        self.crypto = WeChatCrypto(settings.oa_token, settings.oa_aes_key, settings.oa_appid)

    def query(self, *, timestamp: str | None = None, nonce: str | None = None) -> dict[str, str]:
        timestamp = timestamp or str(int(time.time()))
        nonce = nonce or str(secrets.randbelow(10**10))
        return {"timestamp": timestamp, "nonce": nonce,
                "signature": sign(self.settings.oa_token, timestamp, nonce), "openid": "x"}

    async def post(self, xml: str | bytes, *, safe: bool = False, query: dict[str, str] | None = None,
                   headers: dict[str, str] | None = None) -> Reply:
        query = dict(query or self.query())
        body: str | bytes = xml
        if safe:
            wrapped = xmltodict.parse(self.crypto.encrypt_message(xml, query["nonce"], query["timestamp"]))["xml"]
            query.update(encrypt_type="aes", msg_signature=wrapped["MsgSignature"])
            body = f"<xml><ToUserName>{_cdata(ACCOUNT)}</ToUserName><Encrypt>{_cdata(wrapped['Encrypt'])}</Encrypt></xml>"
        resp = await self.client.post("/wechat", params=query, data=body, headers=headers)
        text = await resp.text()
        parsed = None
        if resp.status == 200 and text not in ("", "success"):
            if safe:
                outer = xmltodict.parse(text)["xml"]
                text = self.crypto.decrypt_message(text, outer["MsgSignature"], outer["TimeStamp"], outer["Nonce"])
            parsed = xmltodict.parse(text)["xml"]
        return Reply(resp.status, text, parsed)

    async def say(self, openid: str, content: str, *, safe: bool = False, **kw) -> Reply:
        return await self.post(text_xml(openid, content, **kw), safe=safe)

    async def event(self, openid: str, event: str, key: str | None = None, *, safe: bool = False) -> Reply:
        return await self.post(event_xml(openid, event, key), safe=safe)

    async def idle(self) -> None:
        """Wait until the bot's background work has finished."""
        from bot.tasks import bot_tasks_key

        await asyncio.wait_for(self.client.app[bot_tasks_key].join(), timeout=30)


@pytest.fixture
async def bot_app(wechat_settings: Settings, aiohttp_client):
    # no outbox dispatcher: notifications the commands queue stay where the tests can see them
    return await aiohttp_client(create_app(dataclasses.replace(wechat_settings, dispatcher_interval="0")))


@pytest.fixture
async def bot(bot_app, wechat_settings: Settings) -> Bot:
    return Bot(bot_app, wechat_settings)


@pytest.fixture
async def people(bot_app, wechat_settings: Settings, notify_apps) -> dict[str, Any]:
    """A walked plant (PV-E1) whose owner has an official-account user, and staff of each role."""
    world = await walked_plant("PV-E1", apps=notify_apps)
    app_id = wechat_settings.oa_appid
    world["owner_identity"] = await m.WechatIdentity.create(app_id=app_id, openid=OWNER, owner=world["owner"])
    for role, openid in ((m.StaffRole.VIEWER, VIEWER), (m.StaffRole.OPERATOR, OPERATOR),
                         (m.StaffRole.ADMIN, ADMIN)):
        staff = await m.Staff.create(name=f"运维{role.value}", role=role)
        world[role.value] = staff
        world[f"{role.value}_identity"] = await m.WechatIdentity.create(app_id=app_id, openid=openid, staff=staff)
    return world


async def november_cycle(people: dict[str, Any], *, apps: NotifyApps) -> m.ReadingCycle:
    """Readings for 2026-11-01 (continuing the walked plant's) and the cycle 2026-11 run: its form
    is sent to the owner."""
    from settlement.cycles import runs as cycles
    from tests.integration.billed_plant import GEN, REV

    when = dt.datetime(2026, 11, 1, tzinfo=LOCAL)
    rows = []
    for meter, registers, values in (
            (people["gen_meter"], GEN, ("1940.00", "100.00", "690.00", "750.00", "400.00")),
            (people["grid_meter"], REV, ("600.00", "50.00", "180.00", "240.00", "130.00")),
            (people["grid_meter"], GEN, ("20700.00", "0.00", "8150.00", "7350.00", "5200.00"))):
        rows += [m.Reading(meter=meter, register=r, read_at=when, value=Decimal(v), source=m.ReadingSource.AMI)
                 for r, v in zip(registers, values)]
    await m.Reading.bulk_create(rows)
    await cycles.run_cycle("2026-11", "PV-E1", now=dt.datetime(2026, 11, 1, 8, tzinfo=LOCAL), apps=apps)
    return await m.ReadingCycle.get(plant=people["plant"], period="2026-11")


async def audit_events(action: str | None = None, **filters) -> list[m.AuditEvent]:
    query = m.AuditEvent.all() if action is None else m.AuditEvent.filter(action=action)
    return await query.filter(**filters).order_by("id")
