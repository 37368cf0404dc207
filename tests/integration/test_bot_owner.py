"""Owners in the official account: events (subscribe with and without an invitation QR code, scan,
unsubscribe, menu clicks, locations), every owner command, in both modes where it matters."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pypdf
import pytest

from settlement.owners import bindings
from settlement.telemetry import live
from settlement import models as m
from settlement.billing.ebill_links import verify_link
from tests.integration.billed_plant import plain_bill
from tests.integration.bot_support import *  # noqa: F403
from tests.integration.bot_support import (
    OPERATOR,
    OWNER,
    STRANGER,
    VIEWER,
    Bot,
    audit_events,
    location_xml,
    media_xml,
)
from settlement.clock import utc_now



async def _invitation(people) -> str:
    code, _ = await bindings.issue_invitation(people["owner"].id, people["operator"])
    return code


# ---------------------------------------------------------------------- events


@pytest.mark.parametrize("safe", [False, True], ids=["plaintext", "safe"])
async def test_subscribe_welcomes_with_binding_instructions_and_is_recorded(bot: Bot, people, safe: bool):
    reply = await bot.event(STRANGER, "subscribe", safe=safe)
    assert "欢迎" in reply.text and "绑定 邀请码" in reply.text
    identity = await m.WechatIdentity.get(app_id=bot.settings.oa_appid, openid=STRANGER)
    assert identity.owner_id is None
    [event] = await audit_events("SubscribeOfficialAccount")
    assert event.actor == f"wechat:{STRANGER}" and event.entity_id == str(identity.id)


@pytest.mark.parametrize("safe", [False, True], ids=["plaintext", "safe"])
async def test_subscribing_through_an_invitation_qr_code_binds_at_once(bot: Bot, people, safe: bool):
    code = await _invitation(people)
    reply = await bot.event(STRANGER, "subscribe", f"qrscene_{code}", safe=safe)
    assert "绑定成功" in reply.text and people["owner"].name in reply.text and "PV-E1" in reply.text
    identity = await m.WechatIdentity.get(app_id=bot.settings.oa_appid, openid=STRANGER)
    assert identity.owner_id == people["owner"].id
    [bound] = await audit_events("BindOwner")
    assert bound.after == {"owner": people["owner"].id, "by": "invitation"}
    assert (await m.OwnerInvitation.get(used_by_id=identity.id)).used_at is not None
    from webapp.keys import redis_key, redis_ns_key
    from settlement.owners.principal_cache import generation_key

    app = bot.client.app  # any cached view of this user is now stale for every process
    assert await app[redis_key].get(generation_key(app[redis_ns_key], identity.id)) == b"1"


async def test_a_qr_code_with_a_bad_invitation_welcomes_and_says_why(bot: Bot, people):
    reply = await bot.event(STRANGER, "subscribe", "qrscene_NOTACODE22")
    assert "欢迎" in reply.text and "未能绑定" in reply.text and "邀请码无效" in reply.text
    assert (await m.WechatIdentity.get(openid=STRANGER)).owner_id is None
    assert await audit_events("BindOwner") == []


async def test_a_follower_scanning_an_invitation_code_is_bound(bot: Bot, people):
    await bot.event(STRANGER, "subscribe")
    code = await _invitation(people)
    reply = await bot.event(STRANGER, "SCAN", code)
    assert "绑定成功" in reply.text
    assert (await m.WechatIdentity.get(openid=STRANGER)).owner_id == people["owner"].id


async def test_unsubscribe_is_recorded_and_answered_with_nothing(bot: Bot, people):
    reply = await bot.event(OWNER, "unsubscribe")
    assert reply.status == 200 and reply.body == "success"
    [event] = await audit_events("UnsubscribeOfficialAccount")
    assert event.entity_id == str(people["owner_identity"].id) and event.after == {"owner": people["owner"].id}
    # someone never seen: nothing to record, nothing created
    reply = await bot.event("o-never-seen", "unsubscribe")
    assert reply.body == "success" and not await m.WechatIdentity.exists(openid="o-never-seen")


@pytest.mark.parametrize(("key", "expect"), [("MY_GENERATION", "累计发电"), ("MY_BILLS", "待缴账单"),
                                             ("PAY", "pages/bill/detail?id="), ("NO_SUCH_KEY", "可用命令")])
async def test_menu_clicks_run_the_owner_commands(bot: Bot, people, key: str, expect: str):
    reply = await bot.event(OWNER, "CLICK", key)
    assert expect in reply.text


async def test_location_message_lists_the_owners_plants_by_distance(bot: Bot, people):
    plant = people["plant"]
    plant.latitude, plant.longitude = Decimal("31.780000"), Decimal("119.950000")
    await plant.save()
    reply = await bot.post(location_xml(OWNER, "31.790000", "119.950000", "常州武进"))
    assert "PV-E1" in reply.text and "1.1 km" in reply.text and "常州武进" in reply.text


async def test_staff_location_lists_plants_nearby_only(bot: Bot, people):
    plant = people["plant"]
    plant.latitude, plant.longitude = Decimal("31.780000"), Decimal("119.950000")
    await plant.save()
    near = await bot.post(location_xml(VIEWER, "31.700000", "119.900000"))
    assert "附近的电站" in near.text and "PV-E1" in near.text
    far = await bot.post(location_xml(VIEWER, "39.900000", "116.400000"))  # Beijing
    assert "PV-E1" not in far.text and "没有" in far.text


async def test_location_reports_and_other_events_are_answered_with_nothing(bot: Bot, people):
    before = await m.AuditEvent.all().count()
    reply = await bot.post(
        f"<xml><ToUserName>gh_x</ToUserName><FromUserName>{OWNER}</FromUserName><CreateTime>1790000001</CreateTime>"
        "<MsgType>event</MsgType><Event>LOCATION</Event><Latitude>31.78</Latitude><Longitude>119.95</Longitude>"
        "<Precision>30.0</Precision></xml>")
    assert reply.body == "success"
    reply = await bot.event(OWNER, "TEMPLATESENDJOBFINISH")
    assert reply.body == "success"
    assert await m.AuditEvent.all().count() == before


@pytest.mark.parametrize("kind", ["image", "voice", "video", "shortvideo", "link"])
async def test_media_messages_are_answered_with_a_pointer_to_text_commands(bot: Bot, people, kind: str):
    reply = await bot.post(media_xml(OWNER, kind))
    assert "只能读文字命令" in reply.text


# ---------------------------------------------------------------------- 绑定


@pytest.mark.parametrize("text", ["绑定 {code}", "bind {code}", "绑定{code}", "ＢＩＮＤ　{spaced}", "绑定 {lower}"])
async def test_bind_with_an_invitation_code_in_any_spelling(bot: Bot, people, text: str):
    code = await _invitation(people)
    spaced = " ".join(code[i:i + 5] for i in range(0, len(code), 5))
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in code)  # what a Chinese IME may type
    reply = await bot.say(STRANGER, text.format(code=code, spaced=full_width if "ＢＩＮＤ" in text else spaced,
                                                lower=code.lower()))
    assert "绑定成功" in reply.text
    assert (await m.WechatIdentity.get(openid=STRANGER)).owner_id == people["owner"].id


async def test_bind_refuses_unknown_codes_and_limits_attempts(bot: Bot, people):
    reply = await bot.say(STRANGER, "绑定 WRONGCODE2")
    assert "邀请码无效" in reply.text
    for _ in range(9):
        await bot.say(STRANGER, "绑定 WRONGCODE2")
    code = await _invitation(people)
    reply = await bot.say(STRANGER, f"绑定 {code}")  # the 11th try within the hour
    assert "次数过多" in reply.text
    assert (await m.WechatIdentity.get(openid=STRANGER)).owner_id is None
    assert (await m.OwnerInvitation.get(owner_id=people["owner"].id)).used_at is None


async def test_bind_refuses_a_user_bound_to_another_owner(bot: Bot, people):
    other = await m.Owner.create(name="别的业主")
    code, _ = await bindings.issue_invitation(other.id, people["operator"])
    reply = await bot.say(OWNER, f"绑定 {code}")
    assert "已绑定其他业主" in reply.text
    assert (await m.WechatIdentity.get(openid=OWNER)).owner_id == people["owner"].id


async def test_bind_without_a_code_shows_its_usage(bot: Bot, people):
    reply = await bot.say(STRANGER, "绑定")
    assert "用法：绑定 <邀请码>" in reply.text


# ---------------------------------------------------------------------- 发电


async def test_generation_shows_live_power_and_today_from_the_live_state(bot: Bot, people):
    from webapp.keys import redis_key, redis_ns_key

    app = bot.client.app
    now = utc_now()
    await live.publish_state(app[redis_key], app[redis_ns_key], people["plant"].id,
                             {"ts": now.isoformat(), "power_w": 61250, "today_kwh": "312.5"})
    reply = await bot.say(OWNER, "发电")
    assert "PV-E1" in reply.text and "在线" in reply.text
    assert "61.250 kW" in reply.text and "312.500 kWh" in reply.text


async def test_generation_without_data_says_so_and_guesses_nothing(bot: Bot, people):
    reply = await bot.say(OWNER, "gen PV-E1")
    assert "无实时数据" in reply.text and "实时功率：—" in reply.text and "今日发电：— kWh" in reply.text


async def test_generation_of_a_plant_not_theirs_is_not_found(bot: Bot, people):
    await plain_bill("PV-OTHER", "2026-10", total_fen=100, due_on=dt.date(2026, 11, 1))
    reply = await bot.say(OWNER, "发电 PV-OTHER")
    assert "没有这个电站" in reply.text and "PV-OTHER" in reply.text  # the code echoed, nothing of its data


async def test_owner_commands_from_someone_not_bound_point_to_binding(bot: Bot, people):
    for text in ("发电", "账单", "缴费", "报修 漏水"):
        reply = await bot.say(STRANGER, text)
        assert "还没有绑定业主账户" in reply.text, text
    assert not await m.WechatIdentity.exists(openid=STRANGER)


# ---------------------------------------------------------------------- 账单, 缴费


@pytest.mark.parametrize("word", ["账单", "bills", "ＢＩＬＬＳ", "  账单  "])
async def test_bills_list_what_is_owed_with_a_signed_e_bill_link(bot: Bot, people, word: str):
    reply = await bot.say(OWNER, word)
    bill = people["bill"]
    assert "待缴账单 1 笔，合计 ¥4,654.67" in reply.text and bill.number in reply.text
    link = next(line.strip() for line in reply.text.splitlines() if "/e/bill/" in line)
    parts = urlsplit(link)
    assert parts.netloc == f"{bot.settings.host}:{bot.settings.port}"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    verify_link("bill", bill.id, query["exp"], query["sig"], bot.settings.secret_key)  # raises if forged
    page = await bot.client.get(parts.path, params=query)
    assert page.status == 200 and "4,654.67" in await page.text()
    # and the same bill as a PDF, on the same signature
    pdf_link = next(line.strip() for line in reply.text.splitlines() if line.strip().startswith("PDF："))
    pdf = urlsplit(pdf_link.removeprefix("PDF："))
    assert pdf.path == parts.path + ".pdf" and pdf.query == parts.query
    resp = await bot.client.get(pdf.path, params=query)
    assert resp.status == 200 and resp.headers["Content-Type"] == "application/pdf"
    text = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(await resp.read())).pages)
    assert bill.number in text and "4,654.67" in text


async def test_bills_when_all_are_paid_show_the_latest(bot: Bot, people):
    bill = people["bill"]
    bill.paid_fen, bill.state = bill.total_fen - bill.credit_applied_fen, m.BillState.PAID
    await bill.save()
    reply = await bot.say(OWNER, "账单")
    assert "没有待缴账单" in reply.text and "已缴清" in reply.text and "/e/bill/" in reply.text
    assert f"/e/bill/{bill.id}.pdf?" in reply.text


async def test_pay_links_into_the_mini_program(bot: Bot, people):
    reply = await bot.say(OWNER, "缴费")
    bill = people["bill"]
    assert f'data-miniprogram-appid="{bot.settings.mp_appid}"' in reply.text
    assert f'data-miniprogram-path="pages/bill/detail?id={bill.id}"' in reply.text
    assert "¥4,654.67" in reply.text


async def test_pay_for_someone_who_may_only_view(bot: Bot, people):
    viewer = await m.WechatIdentity.create(app_id=bot.settings.oa_appid, openid="o-family-view")
    await m.PlantAccess.create(plant=people["plant"], identity=viewer, right=m.PlantRight.VIEW)
    assert "待缴账单" in (await bot.say("o-family-view", "账单")).text
    assert "没有此项权限" in (await bot.say("o-family-view", "缴费")).text


# ---------------------------------------------------------------------- 报修


@pytest.mark.parametrize("safe", [False, True], ids=["plaintext", "safe"])
async def test_repair_records_a_fault_report(bot: Bot, people, safe: bool):
    reply = await bot.say(OWNER, "报修 逆变器显示 E21 故障，屋顶有焦味", safe=safe)
    report = await m.FaultReport.get()
    assert f"#{report.id}" in reply.text and "PV-E1" in reply.text
    assert report.text == "逆变器显示 E21 故障，屋顶有焦味" and report.plant_id == people["plant"].id
    assert report.reported_by_id == people["owner_identity"].id
    [event] = await audit_events("ReportFault")
    assert event.actor == f"wechat:{OWNER}"


async def test_repair_names_the_plant_when_the_owner_has_several(bot: Bot, people):
    await plain_bill("PV-E2", "2026-10", total_fen=100, due_on=dt.date(2026, 11, 1),
                     plant=await m.Plant.create(code="PV-E2", name="仓库", owner=people["owner"],
                                                capacity_kwp=Decimal("20")))
    reply = await bot.say(OWNER, "报修 组件破损")
    assert "请写明电站编号" in reply.text and "PV-E1、PV-E2" in reply.text
    assert not await m.FaultReport.exists()
    reply = await bot.say(OWNER, "报修 pv-e2 组件破损")
    report = await m.FaultReport.get()
    assert report.text == "组件破损" and (await report.plant).code == "PV-E2" and "PV-E2" in reply.text


async def test_repair_without_text_shows_usage(bot: Bot, people):
    assert "用法：报修" in (await bot.say(OWNER, "报修")).text
    assert "请描述故障" in (await bot.say(OWNER, "报修 PV-E1")).text
    assert not await m.FaultReport.exists()


# ---------------------------------------------------------------------- 帮助 and the unknown


async def test_help_shows_owner_commands_and_staff_ones_by_role(bot: Bot, people):
    owner = (await bot.say(OWNER, "帮助")).text
    assert "绑定" in owner and "报修" in owner and "抄表" not in owner and "运维命令" not in owner
    viewer = (await bot.say(VIEWER, "help")).text
    assert "查看员" in viewer and "欠费" in viewer and "报表" in viewer and "抄表" not in viewer
    operator = (await bot.say(OPERATOR, "？")).text
    assert "操作员" in operator and "抄表" in operator and "收款" in operator and "退款" not in operator


async def test_an_unknown_word_points_to_help(bot: Bot, people):
    reply = await bot.say(OWNER, "你好")
    assert "没有「你好」这个命令" in reply.text and "帮助" in reply.text
