"""The /wechat endpoint as WeChat and as an attacker see it: the URL check, plaintext and safe mode,
signatures, timestamps, body limits, hostile XML, replays, and replies that stay valid XML."""

from __future__ import annotations

import time

import pytest
import xmltodict

from bot.protocol import MAX_BODY_BYTES, MAX_SKEW_S
from settlement import models as m
from tests.integration.bot_support import *  # noqa: F403
from tests.integration.bot_support import OWNER, STRANGER, Bot, audit_events, event_xml, sign, text_xml


async def _state() -> tuple:
    """Counts of everything a message could change: nothing hostile may move any of them."""
    return (await m.AuditEvent.all().count(), await m.WechatIdentity.all().count(),
            await m.FaultReport.all().count(), await m.Payment.all().count(), await m.Reading.all().count(),
            await m.ConfirmationForm.all().count(), await m.OwnerInvitation.filter(used_at__isnull=False).count())


# ---------------------------------------------------------------------- the URL check


async def test_url_check_echoes_echostr_for_a_good_signature(bot: Bot):
    query = {**bot.query(), "echostr": "5937491053981642"}
    resp = await bot.client.get("/wechat", params=query)
    assert resp.status == 200 and await resp.text() == "5937491053981642"


@pytest.mark.parametrize("change", ["signature", "timestamp", "token"])
async def test_url_check_refuses_a_bad_signature_or_an_old_timestamp(bot: Bot, change: str):
    query = {**bot.query(), "echostr": "5937491053981642"}
    if change == "signature":
        query["signature"] = "0" * 40
    elif change == "timestamp":
        stale = str(int(time.time()) - MAX_SKEW_S - 5)
        query.update(timestamp=stale, signature=sign(bot.settings.oa_token, stale, query["nonce"]))
    else:
        query["signature"] = sign("not-the-token", query["timestamp"], query["nonce"])
    resp = await bot.client.get("/wechat", params=query)
    assert resp.status == 403
    assert "5937491053981642" not in await resp.text()


# ---------------------------------------------------------------------- both modes


@pytest.mark.parametrize("safe", [False, True], ids=["plaintext", "safe"])
async def test_a_text_message_is_answered_in_the_mode_it_came_in(bot: Bot, people, safe: bool):
    reply = await bot.say(OWNER, "帮助", safe=safe)
    assert reply.status == 200
    assert reply.xml["ToUserName"] == OWNER and reply.xml["MsgType"] == "text"
    assert "绑定" in reply.text and "账单" in reply.text
    if safe:
        assert "<Encrypt>" in reply.body or reply.xml  # decrypted by wechatpy in Bot.post


async def test_safe_mode_reply_is_encrypted_for_the_account(bot: Bot, people):
    query = bot.query()
    wrapped = xmltodict.parse(bot.crypto.encrypt_message(text_xml(OWNER, "帮助"), query["nonce"],
                                                         query["timestamp"]))["xml"]
    query.update(encrypt_type="aes", msg_signature=wrapped["MsgSignature"])
    resp = await bot.client.post("/wechat", params=query,
                                 data=f"<xml><Encrypt><![CDATA[{wrapped['Encrypt']}]]></Encrypt></xml>")
    body = await resp.text()
    assert resp.status == 200 and "帮助" not in body and "<Encrypt>" in body
    outer = xmltodict.parse(body)["xml"]
    plain = bot.crypto.decrypt_message(body, outer["MsgSignature"], outer["TimeStamp"], outer["Nonce"])
    assert "绑定" in xmltodict.parse(plain)["xml"]["Content"]


async def test_safe_mode_refuses_a_wrong_msg_signature_and_another_accounts_message(bot: Bot, people):
    from wechatpy.crypto import WeChatCrypto

    before = await _state()
    query = bot.query()
    wrapped = xmltodict.parse(bot.crypto.encrypt_message(text_xml(OWNER, "绑定 AAAA"), query["nonce"],
                                                         query["timestamp"]))["xml"]
    body = f"<xml><Encrypt><![CDATA[{wrapped['Encrypt']}]]></Encrypt></xml>"
    resp = await bot.client.post("/wechat", params={**query, "encrypt_type": "aes", "msg_signature": "f" * 40},
                                 data=body)
    assert resp.status == 403
    # correctly signed with our token, but encrypted for another AppID: wechatpy's AppID check refuses it
    other = WeChatCrypto(bot.settings.oa_token, bot.settings.oa_aes_key, "wx-some-other-app")
    query = bot.query()
    wrapped = xmltodict.parse(other.encrypt_message(text_xml(OWNER, "帮助"), query["nonce"], query["timestamp"]))["xml"]
    resp = await bot.client.post("/wechat", params={**query, "encrypt_type": "aes",
                                                    "msg_signature": wrapped["MsgSignature"]},
                                 data=f"<xml><Encrypt><![CDATA[{wrapped['Encrypt']}]]></Encrypt></xml>")
    assert resp.status == 400
    assert await _state() == before


# ---------------------------------------------------------------------- hostile requests


async def test_a_bad_signature_is_refused_and_changes_nothing(bot: Bot, people):
    before = await _state()
    query = {**bot.query(), "signature": "da39a3ee5e6b4b0d3255bfef95601890afd80709"}
    reply = await bot.post(text_xml(OWNER, "报修 逆变器冒烟"), query=query)
    assert reply.status == 403 and reply.xml is None
    reply = await bot.post(text_xml(OWNER, "报修 逆变器冒烟"), query={k: v for k, v in bot.query().items()
                                                                   if k != "signature"})
    assert reply.status == 403
    assert await _state() == before


@pytest.mark.parametrize("skew", [-(MAX_SKEW_S + 60), MAX_SKEW_S + 60])
async def test_a_timestamp_beyond_the_skew_is_refused(bot: Bot, people, skew: int):
    before = await _state()
    query = bot.query(timestamp=str(int(time.time()) + skew))  # correctly signed, only the time is off
    reply = await bot.post(text_xml(OWNER, "报修 逆变器冒烟"), query=query)
    assert reply.status == 403
    assert await _state() == before


async def test_an_oversize_body_is_refused_with_413(bot: Bot, people):
    before = await _state()
    huge = text_xml(OWNER, "报修 " + "很长" * (MAX_BODY_BYTES // 3))
    assert len(huge.encode()) > MAX_BODY_BYTES
    reply = await bot.post(huge)
    assert reply.status == 413

    async def endless():  # chunked, no Content-Length: refused as soon as the limit is passed
        for _ in range(100):
            yield b"<xml>" + b" " * 16_384

    resp = await bot.client.post("/wechat", params=bot.query(), data=endless())
    assert resp.status == 413
    assert await _state() == before


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<xml><ToUserName>gh_x</ToUserName><FromUserName>{openid}</FromUserName><CreateTime>{now}</CreateTime>
<MsgType>text</MsgType><Content>报修 &lol9;</Content><MsgId>1</MsgId></xml>"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><ToUserName>gh_x</ToUserName><FromUserName>{openid}</FromUserName><CreateTime>{now}</CreateTime>
<MsgType>text</MsgType><Content>报修 &xxe;</Content><MsgId>2</MsgId></xml>"""

PARAMETER_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote;]>
<xml><FromUserName>{openid}</FromUserName><CreateTime>{now}</CreateTime><MsgType>text</MsgType>
<Content>帮助</Content><MsgId>3</MsgId></xml>"""


@pytest.mark.parametrize("doc", [BILLION_LAUGHS, EXTERNAL_ENTITY, PARAMETER_ENTITY, BILLION_LAUGHS.lower()],
                         ids=["billion-laughs", "external-entity", "parameter-entity", "lower-case-doctype"])
@pytest.mark.parametrize("safe", [False, True], ids=["plaintext", "safe"])
async def test_xml_with_declarations_is_refused_before_parsing(bot: Bot, people, doc: str, safe: bool):
    before = await _state()
    reply = await bot.post(doc.format(openid=OWNER, now=int(time.time())), safe=safe)
    assert reply.status == 400
    assert "root:" not in reply.body and "lol" not in reply.body
    assert await _state() == before


@pytest.mark.parametrize("body", [b"", b"not xml at all", b"<xml><MsgType>text</MsgType>", b"\xff\xfe<\x00x\x00",
                                  b"<root><MsgType>text</MsgType></root>",
                                  b"<xml><MsgType>text</MsgType><Content>hi</Content></xml>",
                                  b"<xml><MsgType><a>b</a></MsgType><FromUserName>x</FromUserName></xml>"])
async def test_malformed_bodies_get_400_and_change_nothing(bot: Bot, people, body: bytes):
    before = await _state()
    reply = await bot.post(body)
    assert reply.status == 400
    assert await _state() == before


async def test_a_repeated_message_is_answered_once(bot: Bot, people):
    xml = text_xml(OWNER, "报修 逆变器报警灯亮了")
    first = await bot.post(xml)
    assert "报修已登记" in first.text
    # WeChat's retry: the same MsgId, a new signature
    again = await bot.post(xml)
    assert again.status == 200 and again.body == "success"
    assert await m.FaultReport.all().count() == 1
    assert len(await audit_events("ReportFault")) == 1


async def test_an_event_repeated_with_the_same_sender_and_time_is_answered_once(bot: Bot, people):
    xml = event_xml(STRANGER, "subscribe", create_time=1_790_000_000)
    first = await bot.post(xml)
    assert "欢迎" in first.text
    again = await bot.post(xml)
    assert again.body == "success"
    assert len(await audit_events("SubscribeOfficialAccount")) == 1


async def test_a_captured_request_replayed_with_another_body_does_nothing(bot: Bot, people):
    query = bot.query()
    first = await bot.post(text_xml(OWNER, "帮助"), query=query)
    assert "绑定" in first.text
    before = await _state()
    # plaintext mode signs only token, timestamp and nonce: the same query with a forged body
    replay = await bot.post(text_xml(OWNER, "报修 伪造的报修"), query=query)
    assert replay.status == 200 and replay.body == "success"
    assert await _state() == before


# ---------------------------------------------------------------------- replies stay XML


@pytest.mark.parametrize("text", ["]]><MsgType>news</MsgType><x>", "<![CDATA[", "a]]]]>b", "&amp;&lt;"])
@pytest.mark.parametrize("safe", [False, True], ids=["plaintext", "safe"])
async def test_user_text_echoed_in_a_reply_cannot_break_the_xml(bot: Bot, people, text: str, safe: bool):
    reply = await bot.say(OWNER, "乱码" + text, safe=safe)
    assert reply.status == 200 and reply.xml["MsgType"] == "text"
    assert set(reply.xml) == {"ToUserName", "FromUserName", "CreateTime", "MsgType", "Content"}
    assert ("乱码" + text)[:20] in reply.text


async def test_reply_to_a_message_without_reply_is_success(bot: Bot, people):
    reply = await bot.event(OWNER, "VIEW", "https://example.invalid/menu")
    assert reply.status == 200 and reply.body == "success"


async def test_without_redis_a_message_is_answered_busy_and_not_run(wechat_settings, aiohttp_client, people):
    import dataclasses
    import socket

    from server.app import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    broken = dataclasses.replace(wechat_settings, redis_url=f"redis://127.0.0.1:{closed}/0")
    bot = Bot(await aiohttp_client(create_app(broken)), broken)
    before = await _state()
    reply = await bot.say(OWNER, "报修 逆变器冒烟")
    assert reply.status == 200 and "系统繁忙" in reply.text and "没有处理" in reply.text
    assert await _state() == before
