"""One WeChat user is one person: binding in the mini-program binds the official account and the
other way round — by unionid where WeChat gives it (both apps on one open-platform account), by a
one-time link code otherwise. The real adapter talks to the fake WeChat (code2session and the
official account's user/info tell the unionid as WeChat does); the bot gets signed XML."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from settlement.owners import bindings
from settlement import models as m
from tests.integration.bot_support import *  # noqa: F403
from tests.integration.bot_support import Bot
from settlement.clock import utc_now

NOT_BOUND = "您还没有绑定业主账户"


@pytest.fixture
async def person(people, fake_wechat, wechat_settings):
    """A would-be owner's WeChat user in both apps (mini-program and official account) and an
    invitation code for the walked plant's owner."""
    code, _ = await bindings.issue_invitation(people["owner"].id, people["operator"])
    return {"mp": "o-mp-aming", "oa": "o-oa-aming", "unionid": "u-aming", "invitation": code,
            "owner": people["owner"], "mp_appid": wechat_settings.mp_appid, "oa_appid": wechat_settings.oa_appid}


def share_open_platform(fake_wechat, person) -> None:
    fake_wechat.share_open_platform(person["mp_appid"], person["oa_appid"])
    fake_wechat.register_user(person["mp_appid"], person["mp"], unionid=person["unionid"])
    fake_wechat.register_user(person["oa_appid"], person["oa"], unionid=person["unionid"])


async def mp_login(bot_app, fake_wechat, person, openid: str | None = None) -> tuple[dict, dict]:
    """POST /api/v1/session with a fresh wx.login code: (headers, the session's ``me``)."""
    code = fake_wechat.register_login_code(person["mp_appid"], openid or person["mp"])
    resp = await bot_app.post("/api/v1/session", json={"code": code})
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    return {"Authorization": f"Bearer {body['token']}"}, body["me"]


async def oa_identity(person) -> m.WechatIdentity | None:
    return await m.WechatIdentity.get_or_none(app_id=person["oa_appid"], openid=person["oa"])


async def test_binding_in_the_mini_program_binds_the_official_account_by_unionid(bot: Bot, bot_app, fake_wechat,
                                                                                  person):
    share_open_platform(fake_wechat, person)
    headers, me = await mp_login(bot_app, fake_wechat, person)
    assert me["bound"] is False
    resp = await bot_app.post("/api/v1/binding", json={"invitation_code": person["invitation"]}, headers=headers)
    assert resp.status == 200 and (await resp.json())["by"] == "invitation"

    # the bot has never seen this follower: user/info tells the unionid, the binding follows
    reply = await bot.say(person["oa"], "账单")
    assert NOT_BOUND not in reply.text
    assert "账单" in reply.text or "¥" in reply.text
    identity = await oa_identity(person)
    assert (identity.owner_id, identity.unionid) == (person["owner"].id, person["unionid"])
    [call] = fake_wechat.calls_to("user_info")
    assert call.body["openid"] == person["oa"] and call.errcode == 0
    event = await m.AuditEvent.filter(action="BindOwner", entity_id=str(identity.id)).get()
    assert event.after == {"owner": person["owner"].id, "by": "unionid"}
    reply = await bot.say(person["oa"], "发电")
    assert NOT_BOUND not in reply.text and len(fake_wechat.calls_to("user_info")) == 1  # asked once

    # unbinding in the mini-program leaves the official account too: one person
    assert (await bot_app.delete("/api/v1/binding", headers=headers)).status == 204
    assert (await oa_identity(person)).owner_id is None
    assert NOT_BOUND in (await bot.say(person["oa"], "账单")).text


async def test_binding_in_the_official_account_binds_the_mini_program_at_login(bot: Bot, bot_app, fake_wechat,
                                                                                person):
    share_open_platform(fake_wechat, person)
    reply = await bot.event(person["oa"], "subscribe")  # user/info on the first event: the unionid is kept
    assert (await oa_identity(person)).unionid == person["unionid"]
    reply = await bot.say(person["oa"], f"绑定 {person['invitation']}")
    assert "绑定成功" in reply.text
    _, me = await mp_login(bot_app, fake_wechat, person)  # code2session tells the same unionid
    assert me["bound"] is True and me["owner"]["id"] == person["owner"].id
    mp = await m.WechatIdentity.get(app_id=person["mp_appid"], openid=person["mp"])
    assert mp.unionid == person["unionid"] and mp.owner_id == person["owner"].id


async def test_without_unionid_the_mini_program_makes_a_link_code_for_the_official_account(bot: Bot, bot_app,
                                                                                           fake_wechat, person):
    headers, _ = await mp_login(bot_app, fake_wechat, person)  # no open platform: no unionid anywhere
    await bot_app.post("/api/v1/binding", json={"invitation_code": person["invitation"]}, headers=headers)
    assert NOT_BOUND in (await bot.say(person["oa"], "账单")).text  # nothing links them yet

    resp = await bot_app.post("/api/v1/binding/link-code", headers=headers)
    assert resp.status == 201
    link = await resp.json()
    assert link["send"] == f"绑定 {link['code']}" and len(link["code"]) == 10
    expires = dt.datetime.fromisoformat(link["expires_at"])
    assert dt.timedelta(minutes=9) < expires - utc_now() <= dt.timedelta(minutes=10)
    reply = await bot.say(person["oa"], link["send"])
    assert "绑定成功" in reply.text and "pages/bind/link" not in reply.text  # linked: no code back
    identity = await oa_identity(person)
    assert identity.owner_id == person["owner"].id
    event = await m.AuditEvent.filter(action="BindOwner", entity_id=str(identity.id)).get()
    assert event.after["by"] == "link"
    assert NOT_BOUND not in (await bot.say(person["oa"], "账单")).text

    # used once
    other = "o-oa-stranger"
    assert "绑定成功" not in (await bot.say(other, link["send"])).text
    assert (await m.WechatIdentity.get(openid=other)).owner_id is None


async def test_without_unionid_the_bots_binding_reply_carries_a_mini_program_link(bot: Bot, bot_app, fake_wechat,
                                                                                  person):
    reply = await bot.say(person["oa"], f"绑定 {person['invitation']}")
    found = re.search(r"pages/bind/link\?code=([0-9A-Z]{10})", reply.text)
    assert "绑定成功" in reply.text and found, reply.text
    headers, me = await mp_login(bot_app, fake_wechat, person)
    assert me["bound"] is False
    resp = await bot_app.post("/api/v1/binding", json={"invitation_code": found.group(1)}, headers=headers)
    assert resp.status == 200, await resp.text()
    assert (await resp.json()) == {"owner": {"id": person["owner"].id, "name": person["owner"].name}, "by": "link"}
    assert (await bot_app.get("/api/v1/me", headers=headers)).status == 200
    # 绑定 alone, when bound, makes a fresh one (the old one is spent)
    again = await bot.say(person["oa"], "绑定")
    fresh = re.search(r"pages/bind/link\?code=([0-9A-Z]{10})", again.text)
    assert fresh and fresh.group(1) != found.group(1)


async def test_link_codes_never_bind_someone_else_or_twice_or_late(bot: Bot, bot_app, fake_wechat, person, people):
    headers, _ = await mp_login(bot_app, fake_wechat, person)
    await bot_app.post("/api/v1/binding", json={"invitation_code": person["invitation"]}, headers=headers)
    maker = await m.WechatIdentity.get(app_id=person["mp_appid"], openid=person["mp"])

    # a user bound to another owner is never moved by this owner's code
    other_owner = await m.Owner.create(name="别的业主")
    other_invitation, _ = await bindings.issue_invitation(other_owner.id, people["operator"])
    assert "绑定成功" in (await bot.say("o-oa-other", f"绑定 {other_invitation}")).text
    code, _ = await bindings.issue_link_code(maker.id)
    reply = await bot.say("o-oa-other", f"绑定 {code}")
    assert "已绑定其他业主" in reply.text
    assert (await m.WechatIdentity.get(openid="o-oa-other")).owner_id == other_owner.id

    # not in the app it was made in
    second_headers, _ = await mp_login(bot_app, fake_wechat, person, openid="o-mp-someone")
    resp = await bot_app.post("/api/v1/binding", json={"invitation_code": code}, headers=second_headers)
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "link_same_app"

    # not for a user WeChat says is someone else (another unionid)
    someone = await m.WechatIdentity.create(app_id=person["oa_appid"], openid="o-oa-u2", unionid="u-other")
    maker.unionid = "u-aming"
    await maker.save(update_fields=["unionid"])
    with pytest.raises(bindings.InvalidInput):
        await bindings.bind_with_invitation(someone.id, code)

    # expired after 10 minutes; a newer code makes the older one useless
    late = await m.WechatIdentity.create(app_id=person["oa_appid"], openid="o-oa-late")
    code, expires_at = await bindings.issue_link_code(maker.id)
    with pytest.raises(bindings.InvalidInput):
        await bindings.bind_with_invitation(late.id, code, now=expires_at + dt.timedelta(seconds=1))
    newer, _ = await bindings.issue_link_code(maker.id)
    with pytest.raises(bindings.InvalidInput):
        await bindings.bind_with_invitation(late.id, code)

    # not once its maker has left the owner
    await bindings.unbind(maker.id)
    with pytest.raises(bindings.InvalidInput):
        await bindings.bind_with_invitation(late.id, newer)
    assert (await m.WechatIdentity.get(id=late.id)).owner_id is None
    resp = await bot_app.post("/api/v1/binding/link-code", headers=headers)  # unbound: no link code to make
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_bound"


async def test_unionid_never_moves_someone_bound_to_another_owner(bot: Bot, bot_app, fake_wechat, person, people):
    share_open_platform(fake_wechat, person)
    other_owner = await m.Owner.create(name="别的业主")
    other_invitation, _ = await bindings.issue_invitation(other_owner.id, people["operator"])
    assert "绑定成功" in (await bot.say(person["oa"], f"绑定 {other_invitation}")).text
    # the mini-program identity exists, bound to nobody yet: login links it to the OA's owner …
    headers, me = await mp_login(bot_app, fake_wechat, person)
    assert me["owner"]["id"] == other_owner.id
    # … and binding it to another owner needs an unbind first, as ever
    resp = await bot_app.post("/api/v1/binding", json={"invitation_code": person["invitation"]}, headers=headers)
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "already_bound"

    # two identities of one unionid bound to two owners: linking decides nothing for them
    a = await m.WechatIdentity.create(app_id=person["mp_appid"], openid="o-mp-split", unionid="u-split",
                                      owner=person["owner"])
    b = await m.WechatIdentity.create(app_id=person["oa_appid"], openid="o-oa-split", unionid="u-split",
                                      owner=other_owner)
    assert await bindings.link_by_unionid(a.id) == [] and await bindings.link_by_unionid(b.id) == []
    assert (await m.WechatIdentity.get(id=b.id)).owner_id == other_owner.id
