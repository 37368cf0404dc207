"""The bot and text from outside (settlement.text): a message holding a control character gets a
polite refusal, and nothing is looked up, run or stored with it.

XML 1.0 itself cannot carry NUL or the other C0 controls (the parser refuses the message as
malformed, tested in test_bot_protocol.py); DEL and the C1 controls are legal XML characters and
reach the bot, so they are what is sent here.
"""

from __future__ import annotations

import pytest

from settlement import models as m
from tests.integration.bot_support import *  # noqa: F403
from tests.integration.bot_support import OWNER, Bot, event_xml, location_xml, text_xml


@pytest.mark.parametrize("safe", [False, True], ids=["plaintext", "safe-mode"])
@pytest.mark.parametrize("bad", ["\x7f", "\x85", "\x9f"])
async def test_a_repair_holding_a_control_character_is_refused_politely_and_not_kept(bot: Bot, people, safe, bad):
    before = await m.FaultReport.all().count()
    reply = await bot.say(OWNER, f"报修 逆变器{bad}报警", safe=safe)
    assert reply.status == 200
    assert "控制字符" in reply.text and "没有保存" in reply.text
    assert await m.FaultReport.all().count() == before


async def test_an_event_key_holding_a_control_character_binds_nothing(bot: Bot, people):
    reply = await bot.post(event_xml("o-newcomer-00000000000001", "subscribe", "qrscene_INV\x85ITE"))
    assert reply.status == 200 and "控制字符" in reply.text
    assert not await m.WechatIdentity.exists(openid="o-newcomer-00000000000001")


async def test_plain_text_with_tabs_and_newlines_still_runs(bot: Bot, people):
    reply = await bot.say(OWNER, "报修\t逆变器报警\n屋顶漏水")
    assert "控制字符" not in reply.text
    assert await m.FaultReport.all().count() == 1


@pytest.mark.parametrize("xml, field", [
    (text_xml("o-new\x85comer-0000000001", "帮助"), "FromUserName"),
    (location_xml(OWNER, "31\x85.7", "119.9", "屋顶"), "Location_X"),  # a field the bot reads as a number
    (location_xml(OWNER, "31.7", "119.9", "屋\x9f顶"), "Label"),
    (text_xml(OWNER, "帮助").replace("<MsgType><![CDATA[text]]>", "<MsgType><![CDATA[te\x7fxt]]>"), "MsgType"),
], ids=["sender", "latitude", "label", "kind"])
async def test_any_field_of_a_message_holding_a_control_character_is_refused_naming_it(bot: Bot, people, caplog,
                                                                                        xml, field):
    identities, events = await m.WechatIdentity.all().count(), await m.AuditEvent.all().count()
    with caplog.at_level("WARNING", logger="pvsettle.bot"):
        first = await bot.post(xml)
        again = await bot.post(xml)  # nothing of it was kept, its delivery keys neither: the same answer
    assert first.status == again.status == 200
    assert "控制字符" in first.text and "控制字符" in again.text
    refusals = [r for r in caplog.records if r.name == "pvsettle.bot" and r.msg == "refused a WeChat message's text"]
    assert len(refusals) == 2 and refusals[0].reason.startswith(f"{field} holds ")
    assert await m.WechatIdentity.all().count() == identities and await m.AuditEvent.all().count() == events
