"""Work that outlives WeChat's 5 s: acknowledged at once, finished in a tracked background task,
its result sent as a customer-service message through the real WeChat client (to the fake WeChat
server); report links; and shutdown waiting for the work in flight."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from urllib.parse import parse_qs, urlsplit

import pytest

from bot import app as bot_app_module
from bot import owner
from bot.report_links import report_link
from server.app import create_app
from settlement import models as m
from settlement.fakes.wechat_server import FakeWechat
from settlement.notify.outbox import NotifyApps
from tests.integration.billed_plant import walked_plant
from tests.integration.bot_support import *  # noqa: F403
from tests.integration.bot_support import OPERATOR, OWNER, VIEWER, Bot, audit_events, november_cycle
from settlement.clock import utc_now
from webapp.keys import notify_apps_key



def _messages(fake: FakeWechat, openid: str) -> list[str]:
    return [s.text for s in fake.sent if s.kind == "custom" and s.touser == openid]


# ---------------------------------------------------------------------- 报表


async def test_report_is_acknowledged_then_sent_with_figures_and_a_signed_link(bot: Bot, people, fake_wechat):
    reply = await bot.say(VIEWER, "报表 2026-10")
    assert "正在处理2026-10 报表" in reply.text
    await bot.idle()
    [text] = _messages(fake_wechat, VIEWER)
    assert "2026-10 周期报表：1 个电站周期" in text
    assert "应收 ¥7,659.67（含违约金 ¥91.27），已收 ¥3,000.00，余额抵扣 ¥5.00" in text
    assert "欠费 ¥4,654.67" in text
    link = next(line for line in text.splitlines() if "/wechat/report/" in line)
    parts = urlsplit(link)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    resp = await bot.client.get(parts.path, params=query)
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/csv")
    csv = (await resp.read()).decode("utf-8-sig")
    assert "PV-E1" in csv and "4654.67" in csv
    [event] = await audit_events("IssueReportLink")
    assert event.actor == f"staff:{people['viewer'].id}" and event.entity_id == "cycle:2026-10"


async def test_report_links_refuse_tampering_and_expiry(bot: Bot, people):
    secret = bot.settings.secret_key
    path, _ = report_link("2026-10", "csv", secret)
    parts = urlsplit(path)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert (await bot.client.get(parts.path, params=query)).status == 200
    moved = parts.path.replace("2026-10", "2026-09")
    assert (await bot.client.get(moved, params=query)).status == 403
    assert (await bot.client.get(parts.path.replace(".csv", ".xlsx"), params=query)).status == 403
    assert (await bot.client.get(parts.path, params={**query, "exp": str(int(query["exp"]) + 1)})).status == 403
    assert (await bot.client.get(parts.path, params={**query, "sig": "0" * 64})).status == 403
    assert (await bot.client.get(parts.path)).status == 403
    old, _ = report_link("2026-10", "csv", secret, now=utc_now() - dt.timedelta(days=2))
    old_parts = urlsplit(old)
    assert (await bot.client.get(old_parts.path, params=dict(parse_qs(old_parts.query)))).status == 403
    xlsx, _ = report_link("2026-10", "xlsx", secret)
    resp = await bot.client.get(urlsplit(xlsx).path, params=dict(parse_qs(urlsplit(xlsx).query)))
    assert resp.status == 200 and (await resp.read())[:2] == b"PK"


async def test_report_of_a_malformed_period_is_answered_at_once(bot: Bot, people, fake_wechat):
    reply = await bot.say(VIEWER, "报表 2026-13")
    assert "期间格式应为 YYYY-MM" in reply.text
    await bot.idle()
    assert fake_wechat.sent == [] and await audit_events("IssueReportLink") == []


# ---------------------------------------------------------------------- 重发


async def test_reissue_sends_a_draft_and_the_outbox_notifies_the_owner(bot: Bot, people, fake_wechat, notify_apps):
    cycle = await november_cycle(people, apps=notify_apps)
    form = await m.ConfirmationForm.get(cycle=cycle)
    await m.ConfirmationForm.filter(id=form.id).update(state=m.FormState.DRAFT, sent_at=None, answer_due_at=None)
    reply = await bot.say(OPERATOR, "重发 PV-E1 2026-11")
    assert "正在处理重发确认单" in reply.text
    await bot.idle()
    form = await m.ConfirmationForm.get(id=form.id)
    assert form.state == m.FormState.SENT and form.sent_at is not None
    [row] = await m.OutboxMessage.filter(dedupe_key__startswith=f"form:{form.id}:FormSent:")
    assert row.recipient == OWNER and row.state == m.OutboxState.PENDING and row.template == "form_sent"
    [to_staff] = _messages(fake_wechat, OPERATOR)
    assert "已发给业主" in to_staff and f"已排入通知发件箱 1 条（编号 #{row.id}）" in to_staff
    [sent] = await audit_events("SendForm", entity_id=str(form.id))
    assert sent.actor == f"staff:{people['operator'].id}"


async def test_reissue_of_a_sent_form_queues_a_new_notification(bot: Bot, people, fake_wechat, notify_apps):
    cycle = await november_cycle(people, apps=notify_apps)
    form = await m.ConfirmationForm.get(cycle=cycle)
    first = await m.OutboxMessage.filter(dedupe_key__startswith=f"form:{form.id}:").count()  # the cycle run's
    await bot.say(OPERATOR, "resend pv-e1 2026-11", msg_id=88_000_000_001)
    await bot.idle()
    [again] = await m.OutboxMessage.filter(dedupe_key__startswith=f"form:{form.id}:Reissue:88000000001:")
    assert again.recipient == OWNER and again.event == "FormSent"
    assert await m.OutboxMessage.filter(dedupe_key__startswith=f"form:{form.id}:").count() == first + 1
    [to_staff] = _messages(fake_wechat, OPERATOR)
    assert "已再次通知业主" in to_staff and f"#{again.id}" in to_staff
    assert await audit_events("SendForm", actor=f"staff:{people['operator'].id}") == []
    [notified] = await audit_events("NotifyForm")
    assert notified.entity_id == str(form.id) and notified.after == {"outbox": [again.id]}


async def test_reissue_writes_for_the_official_account_the_app_was_built_with(wechat_settings, fake_wechat,
                                                                              aiohttp_client):
    """The app factory keeps the settings' WeChat apps on the app and the bot hands them to the
    outbox: an owner known only in the official account is told by template message, from that
    account. The app ids are this test's own, so only the app can have named them."""
    settings = dataclasses.replace(wechat_settings, mp_appid="wxreissuemp0000042", oa_appid="wxreissueoa0000042",
                                   dispatcher_interval="0")
    fake_wechat.register_app(settings.oa_appid, settings.oa_secret, "oa")  # for the reply to staff
    client = await aiohttp_client(create_app(settings))
    assert client.app[notify_apps_key] == NotifyApps("wxreissuemp0000042", "wxreissueoa0000042")
    world = await walked_plant(apps=client.app[notify_apps_key])
    await m.WechatIdentity.create(app_id=settings.oa_appid, openid=OWNER, owner=world["owner"])
    await m.WechatIdentity.create(app_id=settings.oa_appid, openid=OPERATOR, staff=world["staff"])
    cycle = await november_cycle(world, apps=client.app[notify_apps_key])
    form = await m.ConfirmationForm.get(cycle=cycle)
    bot = Bot(client, settings)
    await bot.say(OPERATOR, "重发 PV-E1 2026-11", msg_id=88_000_000_042)
    await bot.idle()
    [again] = await m.OutboxMessage.filter(dedupe_key__startswith=f"form:{form.id}:Reissue:88000000042:")
    assert (again.recipient, again.channel, again.app_id) == (OWNER, "template", "wxreissueoa0000042")
    [to_staff] = _messages(fake_wechat, OPERATOR)
    assert "已再次通知业主" in to_staff


async def test_reissue_to_an_owner_without_wechat_says_to_call(bot: Bot, people, fake_wechat, notify_apps):
    await november_cycle(people, apps=notify_apps)
    await people["owner_identity"].delete()
    await bot.say(OPERATOR, "重发 PV-E1 2026-11")
    await bot.idle()
    [to_staff] = _messages(fake_wechat, OPERATOR)
    assert "没有可通知的用户" in to_staff and "电话联系" in to_staff


async def test_reissue_of_a_confirmed_form_is_refused_by_message(bot: Bot, people, fake_wechat):
    await bot.say(OPERATOR, "重发 PV-E1 2026-10")
    await bot.idle()
    [to_staff] = _messages(fake_wechat, OPERATOR)
    assert "当前状态（已确认）不允许此操作" in to_staff
    assert _messages(fake_wechat, OWNER) == [] and await audit_events("NotifyForm") == []


async def test_reissue_of_an_unknown_cycle_is_answered_at_once(bot: Bot, people, fake_wechat):
    reply = await bot.say(OPERATOR, "重发 PV-E1 2030-01")
    assert "该电站没有这个抄表周期" in reply.text
    await bot.idle()
    assert fake_wechat.sent == []


# ---------------------------------------------------------------------- the 5 s window


@pytest.fixture
def slow_generation(monkeypatch):
    """发电 takes 1 s and the request waits 0.05 s: the reply must come late, by message."""
    original = owner.HANDLERS["gen"]

    async def slow(*args):
        await asyncio.sleep(1.0)
        return await original(*args)

    monkeypatch.setitem(owner.HANDLERS, "gen", slow)
    monkeypatch.setattr(bot_app_module, "REPLY_DEADLINE_S", 0.05)


async def test_a_command_running_late_is_acknowledged_and_its_reply_sent_as_a_message(
        bot: Bot, people, fake_wechat, slow_generation):
    reply = await bot.say(OWNER, "发电")
    assert "正在处理" in reply.text  # answered without the command's result: it had not finished
    assert _messages(fake_wechat, OWNER) == []
    await bot.idle()
    [late] = _messages(fake_wechat, OWNER)
    assert "PV-E1" in late and "累计发电" in late


async def test_shutdown_waits_for_the_work_in_flight(bot: Bot, people, fake_wechat, slow_generation):
    reply = await bot.say(OWNER, "发电")
    assert "正在处理" in reply.text
    await bot.client.close()  # runs the clean-ups: the bot's tasks are drained before the database closes
    [late] = _messages(fake_wechat, OWNER)
    assert "累计发电" in late


async def test_a_late_reply_that_cannot_be_delivered_is_logged_not_raised(bot: Bot, people, fake_wechat,
                                                                         slow_generation, caplog):
    fake_wechat.unfollow(OWNER)
    await bot.say(OWNER, "发电")
    await bot.idle()
    assert _messages(fake_wechat, OWNER) == []
    assert any("could not be delivered" in r.message for r in caplog.records)
