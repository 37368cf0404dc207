"""Staff commands in the official account, by role: each one's reply, the state it changes and the
audit event it leaves; refusals (no role, a lower role, no such plant) change nothing; hostile text
in arguments is only ever a value."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest

from settlement import models as m
from tests.integration.billed_plant import plain_bill
from tests.integration.bot_support import *  # noqa: F403
from tests.integration.bot_support import (
    ADMIN,
    OPERATOR,
    OWNER,
    STRANGER,
    VIEWER,
    Bot,
    audit_events,
    november_cycle,
)
from settlement.clock import UTC, local_today, utc_now



async def _snapshot() -> tuple:
    """Everything a staff command can change, counted and summed."""
    bills = await m.Bill.all().values_list("state", "paid_fen", "total_fen")
    forms = await m.ConfirmationForm.all().values_list("state", "version")
    return (await m.Reading.all().count(), await m.ReadingConflict.all().count(), sorted(map(tuple, bills)),
            sorted(map(tuple, forms)), await m.Payment.all().count(), await m.CreditEntry.all().count(),
            await m.OwnerInvitation.all().count(), await m.Refund.all().count(), await m.AuditEvent.all().count(),
            await m.Plant.all().count(), await m.FaultReport.all().count(), await m.InvoiceRequest.all().count())


# ---------------------------------------------------------------------- who may


STAFF_COMMANDS = ["抄表 PV-E1 00020000 700", "调整 PV-E1 PV-E1-G 00010000 1800 原因 误读", "重发 PV-E1 2026-10",
                  "确认 1", "收款 202610-PV-E1-1 100 转账", "邀请 PV-E1", "退款 1 100 原因 多付",
                  "工单 1 受理", "开票 202610-PV-E1-1", "欠费", "电站 PV-E1", "报表 2026-10", "通知 202610-PV-E1-1"]


@pytest.mark.parametrize("text", STAFF_COMMANDS)
@pytest.mark.parametrize("who", [OWNER, STRANGER])
async def test_staff_commands_from_someone_not_staff_are_refused_and_change_nothing(bot: Bot, people, fake_wechat,
                                                                                   text, who):
    before = await _snapshot()
    reply = await bot.say(who, text)
    assert "仅限登记的运维人员" in reply.text
    await bot.idle()
    assert await _snapshot() == before
    assert fake_wechat.sent == []  # nothing went out later either


@pytest.mark.parametrize("text", ["抄表 PV-E1 00020000 700", "收款 202610-PV-E1-1 100 转账", "邀请 PV-E1",
                                  "确认 1", "重发 PV-E1 2026-10", "工单 1 受理", "开票 202610-PV-E1-1"])
async def test_a_viewer_may_look_but_not_change(bot: Bot, people, text: str):
    before = await _snapshot()
    reply = await bot.say(VIEWER, text)
    assert "需要操作员或更高权限，您的角色是查看员" in reply.text
    assert await _snapshot() == before


async def test_an_inactive_staff_member_is_no_staff(bot: Bot, people):
    people["operator"].active = False
    await people["operator"].save()
    before = await _snapshot()
    assert "仅限登记的运维人员" in (await bot.say(OPERATOR, "抄表 PV-E1 00020000 700")).text
    assert await _snapshot() == before


# ---------------------------------------------------------------------- 抄表


async def test_reading_records_a_manual_reading_with_its_audit(bot: Bot, people):
    reply = await bot.say(OPERATOR, "抄表 PV-E1 PV-E1-G 00010000 1750.5 2026-11-05 08:00")
    assert "已录入读数" in reply.text and "PV-E1-G" in reply.text and "2026-11-05 08:00" in reply.text
    reading = await m.Reading.get(read_at=dt.datetime(2026, 11, 5, 0, tzinfo=UTC), register="00010000")
    assert reading.value == Decimal("1750.5") and reading.source == m.ReadingSource.MANUAL
    assert reading.entered_by_id == people["operator"].id and reading.meter_id == people["gen_meter"].id
    [event] = await audit_events("RecordManualReading")
    assert event.actor == f"staff:{people['operator'].id}" and event.entity_id == str(reading.id)
    assert len(await audit_events("IngestReadings")) == 1


async def test_a_reading_no_plant_could_make_is_recorded_flagged_and_staff_are_told(bot: Bot, people):
    reply = await bot.say(OPERATOR, "抄表 PV-E1 PV-E1-G 00010000 999999 2026-11-05 08:00")
    assert "已录入读数" in reply.text and "已标记为异常" in reply.text
    assert re.search(r"折合 [\d.]+ kWh.*上限 [\d.]+ kWh", reply.text), reply.text  # the figures, in words
    reading = await m.Reading.get(read_at=dt.datetime(2026, 11, 5, 0, tzinfo=UTC), register="00010000")
    assert reading.flag == "implausible_energy" and reading.entered_by_id == people["operator"].id
    assert len(await audit_events("FlagReading")) == 1


async def test_reading_finds_the_meter_of_a_register_only_one_meter_has(bot: Bot, people):
    reply = await bot.say(OPERATOR, "ｒｅａｄ　ｐｖ－ｅ１　００020000　６５０ 2026-11-05T08:00")
    assert "已录入读数" in reply.text and "PV-E1-N" in reply.text
    assert await m.Reading.filter(meter=people["grid_meter"], register="00020000", value=Decimal("650")).exists()


async def test_reading_asks_for_the_meter_when_two_have_the_register(bot: Bot, people):
    before = await _snapshot()
    reply = await bot.say(OPERATOR, "抄表 PV-E1 00010000 1750")
    assert "请写明电表编号" in reply.text and "PV-E1-G" in reply.text and "PV-E1-N" in reply.text
    assert await _snapshot() == before


async def test_reading_repeated_is_a_duplicate_and_a_lower_one_is_a_conflict_for_staff(bot: Bot, people):
    await bot.say(OPERATOR, "抄表 PV-E1 PV-E1-G 00010000 1750 2026-11-05 08:00")
    again = await bot.say(OPERATOR, "抄表 PV-E1 PV-E1-G 00010000 1750 2026-11-05 08:00")
    assert "已有相同读数" in again.text
    assert await m.Reading.filter(read_at=dt.datetime(2026, 11, 5, 0, tzinfo=UTC)).count() == 1
    lower = await bot.say(OPERATOR, "抄表 PV-E1 PV-E1-G 00010000 1600 2026-11-06 08:00")
    assert "读数未录入" in lower.text and "读数小于前一次读数" in lower.text
    assert await m.ReadingConflict.filter(code="reading_decreased").count() == 1


@pytest.mark.parametrize(("text", "expect"), [
    ("抄表 PV-E1 PV-E1-G 00010000 1750 2099-01-01 00:00", "抄表时间在未来"),
    ("抄表 PV-E1 PV-E1-G 00010000 1750.12345", "小数位过多"),
    ("抄表 PV-E1 PV-E1-G 00010000 -5", "读数超出表盘范围"),
    ("抄表 PV-E1 PV-E1-G 00010000 1750 昨天", "时间格式"),
    ("抄表 PV-E1 PV-E1-G 0001 1750", "不是电表编号"),
    ("抄表 PV-E1 00099999 1750", "没有找到该寄存器"),
    ("抄表 PV-NOPE 00010000 1750", "没有这个电站"),
])
async def test_reading_refusals_say_why_and_record_nothing(bot: Bot, people, text: str, expect: str):
    before = await _snapshot()
    reply = await bot.say(OPERATOR, text)
    assert expect in reply.text
    assert await _snapshot() == before


# ---------------------------------------------------------------------- 调整


async def test_adjust_a_reading_makes_a_new_form_version(bot: Bot, people, notify_apps):
    cycle = await november_cycle(people, apps=notify_apps)
    reply = await bot.say(OPERATOR, "调整 PV-E1 PV-E1-G 00010200 680 原因 峰段读数抄错，现场复核")
    assert "已调整 PV-E1 2026-11" in reply.text and "第 2 版" in reply.text and "峰段读数抄错" in reply.text
    # the rates no longer add up to the total (1930 vs 1940 on the dial): v2 stays with staff
    assert "草稿" in reply.text
    forms = await m.ConfirmationForm.filter(cycle=cycle).order_by("version")
    assert [f.state for f in forms] == [m.FormState.ADJUSTED, m.FormState.DRAFT]
    [reading_event] = await audit_events("AdjustReading")
    [form_event] = await audit_events("AdjustForm")
    assert reading_event.actor == form_event.actor == f"staff:{people['operator'].id}"
    assert reading_event.reason == "峰段读数抄错，现场复核" and form_event.entity_id == str(forms[1].id)
    corrected = await m.Reading.filter(meter=people["gen_meter"], register="00010200").order_by("-revision").first()
    assert corrected.value == Decimal("680") and corrected.revision == 1


async def test_adjust_an_energy_directly(bot: Bot, people, notify_apps):
    cycle = await november_cycle(people, apps=notify_apps)
    reply = await bot.say(ADMIN, "调整 PV-E1 电量 发电 峰 2000 原因 电表故障，按逆变器估算")
    assert "峰时段发电电量设为 2,000.000 kWh" in reply.text
    form = await m.ConfirmationForm.get(cycle=cycle, version=2)
    assert form.periods["peak"]["generation"] == "2000.000"
    [event] = await audit_events("AdjustEnergy")
    assert event.reason == "电表故障，按逆变器估算" and event.actor == f"staff:{people['admin'].id}"


@pytest.mark.parametrize(("text", "expect"), [
    ("调整 PV-E1 PV-E1-G 00010200 680 原因 误读", "确认单已确认，不能再调整"),  # 2026-10 is confirmed
    ("调整 PV-E1 PV-E1-G 00010200 680", "缺少「原因」"),
    ("调整 PV-E1 PV-E1-X 00010200 680 原因 误读", "该电站没有这块电表"),
    ("调整 PV-E1 电量 发电 峰值 2000 原因 误读", "时段为 尖/峰/平/谷"),
])
async def test_adjust_refusals_change_nothing(bot: Bot, people, text: str, expect: str):
    before = await _snapshot()
    assert expect in (await bot.say(OPERATOR, text)).text
    assert await _snapshot() == before


# ---------------------------------------------------------------------- 确认


async def test_confirm_on_the_owners_written_word(bot: Bot, people, notify_apps):
    cycle = await november_cycle(people, apps=notify_apps)
    form = await m.ConfirmationForm.get(cycle=cycle)
    reply = await bot.say(OPERATOR, f"确认 #{form.id} 原因 业主 11-03 盖章回函")
    assert f"确认单 #{form.id}" in reply.text and "盖章回函" in reply.text
    assert (await m.ConfirmationForm.get(id=form.id)).state == m.FormState.CONFIRMED
    [confirmed] = await audit_events("ConfirmForm", entity_id=str(form.id))
    [word] = await audit_events("RecordOwnerWord")
    assert confirmed.actor == word.actor == f"staff:{people['operator'].id}"
    assert word.reason == "业主 11-03 盖章回函" and word.entity_id == str(form.id)
    again = await bot.say(OPERATOR, f"确认 {form.id}")
    assert "当前状态（已确认）不允许此操作" in again.text


# ---------------------------------------------------------------------- 收款


async def test_collect_records_an_offline_payment_in_exact_fen(bot: Bot, people):
    bill = people["bill"]
    reply = await bot.say(OPERATOR, f"收款 {bill.number} 1,000.01 转账 BANK-20261120-7")
    assert "已登记收款 ¥1,000.01" in reply.text and "银行转账" in reply.text and "尚欠 ¥3,654.66" in reply.text
    payment = await m.Payment.get(transaction_id="bank_transfer:BANK-20261120-7")
    assert payment.amount_fen == 100001 and payment.recorded_by_id == people["operator"].id
    assert (await m.Bill.get(id=bill.id)).paid_fen == 300000 + 100001
    [event] = await audit_events("RecordPayment", actor=f"staff:{people['operator'].id}")
    assert event.after["amount_fen"] == 100001 and event.entity_id == str(bill.id)
    # the same slip again: not recorded twice
    again = await bot.say(OPERATOR, f"收款 {bill.number} 1000.01 bank BANK-20261120-7")
    assert "已登记过" in again.text
    assert await m.Payment.filter(bill=bill).count() == 2  # the walk's own payment and this one


async def test_collect_without_a_reference_uses_the_message_and_overpayment_becomes_credit(bot: Bot, people):
    bill = people["bill"]
    reply = await bot.say(ADMIN, f"收款 {bill.id} 5000 柜台", msg_id=77_000_000_001)
    assert "¥345.33 超出欠款" in reply.text and "已缴清" in reply.text
    payment = await m.Payment.get(transaction_id="counter:bot-77000000001")
    assert payment.amount_fen == 500000
    assert await m.CreditEntry.filter(payment=payment, amount_fen=34533).exists()


@pytest.mark.parametrize(("text", "expect"), [
    ("收款 202610-PV-E1-1 12.345 转账", "最多两位小数"),
    ("收款 202610-PV-E1-1 -5 转账", "最多两位小数"),
    ("收款 202610-PV-E1-1 1e3 转账", "最多两位小数"),
    ("收款 202610-PV-E1-1 100 支付宝", "收款方式为"),
    ("收款 202610-PV-E1-1 100 微信", "由支付通知自动入账"),
    ("收款 NO-SUCH-BILL 100 转账", "没有这张账单"),
    ("收款 202610-PV-E1-1 0 转账", "金额不正确"),
])
async def test_collect_refusals_change_nothing(bot: Bot, people, text: str, expect: str):
    before = await _snapshot()
    assert expect in (await bot.say(OPERATOR, text)).text
    assert await _snapshot() == before


# ---------------------------------------------------------------------- 邀请, 退款, 通知


async def test_invite_gives_a_code_the_owner_can_bind_with(bot: Bot, people):
    reply = await bot.say(OPERATOR, "邀请 PV-E1")
    code = reply.text.split("绑定邀请码：")[1].split()[0]
    [event] = await audit_events("IssueInvitation")
    assert event.actor == f"staff:{people['operator'].id}" and event.entity_id == str(people["owner"].id)
    bound = await bot.say(STRANGER, f"绑定 {code}")
    assert "绑定成功" in bound.text


async def test_refund_of_an_offline_payment_is_recorded_and_the_bill_owes_again(bot: Bot, people, fake_wechat):
    payment = await m.Payment.get(transaction_id="bank_transfer:BANK-PV-E1-1020")
    reply = await bot.say(ADMIN, f"退款 {payment.transaction_id} 100 原因 多收了 100 元，财务已转回")
    assert "正在处理退款" in reply.text
    await bot.idle()
    [text] = [s.text for s in fake_wechat.sent if s.touser == ADMIN]
    assert "已退款 ¥100.00" in text and "财务已退回" in text and "尚欠 ¥4,754.67" in text
    refund = await m.Refund.get(payment=payment)
    assert refund.amount_fen == 10000 and refund.state == m.RefundState.SUCCEEDED
    assert refund.requested_by_id == people["admin"].id and refund.reason == "多收了 100 元，财务已转回"
    assert (await m.Bill.get(id=people["bill"].id)).paid_fen == 300000 - 10000
    [event] = await audit_events("RequestRefund")
    assert event.actor == f"staff:{people['admin'].id}" and event.entity_id == str(payment.id)


@pytest.mark.parametrize(("text", "expect"), [
    ("退款 {id} 3000.01 原因 多付", "退款金额超过可退金额"),
    ("退款 {wechat} 1 原因 多付", "微信支付未配置"),
    ("退款 999999 1 原因 多付", "没有这笔付款"),
])
async def test_refund_refusals_change_nothing(bot: Bot, people, fake_wechat, text: str, expect: str):
    payment = await m.Payment.get(transaction_id="bank_transfer:BANK-PV-E1-1020")
    wechat = await m.Payment.create(transaction_id="4200000000202611220000000001", channel=m.PaymentChannel.WECHAT,
                                    bill=people["bill"], owner=people["owner"], amount_fen=100, paid_at=people["bill"].issued_at)
    before = await _snapshot()
    reply = await bot.say(ADMIN, text.format(id=payment.id, wechat=wechat.transaction_id))
    await bot.idle()
    said = reply.text + "".join(s.text for s in fake_wechat.sent if s.touser == ADMIN)
    assert expect in said
    assert await _snapshot() == before


async def test_refund_needs_an_admin_and_a_reason(bot: Bot, people):
    before = await _snapshot()
    assert "需要管理员或更高权限" in (await bot.say(OPERATOR, "退款 1 100 原因 多付")).text
    assert "缺少「原因」" in (await bot.say(ADMIN, "退款 1 100")).text
    assert await _snapshot() == before


async def test_notice_shows_where_the_bills_notifications_stand(bot: Bot, people):
    bill = people["bill"]
    empty = await bot.say(VIEWER, f"通知 {bill.number}")
    assert "还没有任何通知记录" in empty.text
    await bot.say(OPERATOR, f"收款 {bill.number} 100 转账 SLIP-1")  # queues PaymentReceived for the owner
    failed = await m.OutboxMessage.create(
        dedupe_key=f"bill:{bill.id}:BillIssued:{people['owner_identity'].id}", event="BillIssued",
        channel="template", recipient=OWNER, app_id=bot.settings.oa_appid, template="bill_issued", payload={},
        state=m.OutboxState.FAILED, attempts=1, last_error="43004 require subscribe",
        not_before=utc_now())
    reply = await bot.say(VIEWER, f"通知 {bill.number}")
    queued = await m.OutboxMessage.get(dedupe_key__startswith=f"bill:{bill.id}:PaymentReceived:")
    assert f"账单 {bill.number} 的通知（最近 2 条）" in reply.text
    assert f"#{queued.id} 收款 → …{OWNER[-6:]}（公众号模板消息）：待发送" in reply.text
    assert f"#{failed.id} 账单出具" in reply.text and "发送失败（43004 require subscribe）" in reply.text
    events = await audit_events("ViewDelivery")
    assert [e.after for e in events] == [{"messages": 0}, {"messages": 2}]
    assert "没有这张账单" in (await bot.say(VIEWER, "通知 NOPE")).text


# ---------------------------------------------------------------------- 欠费, 电站


async def test_arrears_lists_overdue_bills_oldest_first_with_what_is_owed(bot: Bot, people):
    today = local_today()
    await plain_bill("PV-A1", "2026-08", total_fen=120000, paid_fen=20000, due_on=today - dt.timedelta(days=60),
                     owner_name="甲厂")
    await plain_bill("PV-A2", "2026-09", total_fen=50000, due_on=today - dt.timedelta(days=5), owner_name="乙厂")
    await plain_bill("PV-A3", "2026-09", total_fen=70000, due_on=today + dt.timedelta(days=3), owner_name="丙厂")
    await plain_bill("PV-A4", "2026-07", total_fen=90000, paid_fen=90000, due_on=today - dt.timedelta(days=90))
    reply = await bot.say(VIEWER, "欠费")
    lines = [line for line in reply.text.splitlines() if line.startswith("·")]
    # the walked bill (due 2026-10-25) is older than 5 days but younger than 60
    assert [line.split()[1] for line in lines] == ["202608-PV-A1-1", "202610-PV-E1-1", "202609-PV-A2-1"]
    assert "甲厂 欠 ¥1,000.00，逾期 60 天" in reply.text and "乙厂 欠 ¥500.00，逾期 5 天" in reply.text
    assert "3 笔，合计 ¥6,154.67" in reply.text
    assert "PV-A3" not in reply.text and "PV-A4" not in reply.text
    month = await bot.say(VIEWER, "arrears 30")
    assert "PV-A1" in month.text and "PV-A2" not in month.text
    events = await audit_events("ListArrears")
    assert [e.entity_id for e in events] == ["1d", "30d"] and events[0].after == {"count": 3, "owed_fen": 615467}


async def test_plant_status_shows_capacity_live_state_alarms_and_faults(bot: Bot, people):
    from webapp.keys import redis_key, redis_ns_key
    from settlement.telemetry import live

    plant = people["plant"]
    now = utc_now()
    app = bot.client.app
    await live.publish_state(app[redis_key], app[redis_ns_key], plant.id,
                             {"ts": now.isoformat(), "power_w": 48000, "today_kwh": "201.25"})
    device = await m.TelemetryDevice.create(plant=plant, serial="INV-E1-1")
    await m.TelemetrySample.create(device=device, ts=now - dt.timedelta(minutes=5), received_at=now, power_w=47000,
                                   energy_wh=9_000_000, status="ok")
    await m.PlantOutage.create(plant=plant, cause="fault", started_at=now - dt.timedelta(hours=2),
                               detected_at=now - dt.timedelta(hours=1), detail="INV-E1-2 报 E21")
    await m.FaultReport.create(plant=plant, text="组件破损")
    reply = await bot.say(VIEWER, "电站 pv-e1")
    text = reply.text
    assert "PV-E1" in text and people["owner"].name in text and "100.000 kWp" in text
    assert "在线" in text and "48.000 kW" in text and "201.250 kWh" in text
    assert "47.000 kW" in text and "1 条未恢复" in text and "INV-E1-2 报 E21" in text and "报修：1 条" in text
    [event] = await audit_events("ViewPlant")
    assert event.entity_id == str(plant.id) and event.actor == f"staff:{people['viewer'].id}"


async def test_plant_status_of_an_unknown_plant(bot: Bot, people):
    assert "没有这个电站" in (await bot.say(VIEWER, "电站 PV-NOPE")).text
    assert await audit_events("ViewPlant") == []


# ---------------------------------------------------------------------- 工单 (issue #24 point 3)


async def _fault_state(report_id: int) -> tuple:
    report = await m.FaultReport.get(id=report_id)
    return (report.state, report.staff_note, report.handled_by_id, await m.AuditEvent.all().count(),
            await m.OutboxMessage.filter(event="FaultUpdated").count())


async def test_an_owners_report_alarms_each_active_staff_member_once(bot: Bot, people):
    people["admin"].active = False
    await people["admin"].save()
    await bot.say(OWNER, "报修 逆变器显示 E21 故障，屋顶有焦味")
    report = await m.FaultReport.get()
    alarms = await m.OutboxMessage.filter(event="FaultReported")
    assert sorted(a.recipient for a in alarms) == sorted([VIEWER, OPERATOR])  # not the one who left
    assert all(a.dedupe_key.startswith(f"fault:{report.id}:FaultReported:") for a in alarms)
    assert alarms[0].payload["data"]["character_string2"] == f"F{report.id}"
    assert alarms[0].payload["data"]["phrase3"] == "新报修"
    assert alarms[0].payload["data"]["thing4"].startswith("逆变器显示 E21")


async def test_staff_move_a_fault_report_along_and_the_owner_is_told_each_step(bot: Bot, people):
    report = await m.FaultReport.create(plant=people["plant"], text="组件破损")
    reply = await bot.say(OPERATOR, f"工单 #{report.id} 受理 明天上午到场，请留门")
    assert f"报修 #{report.id}" in reply.text and "处理中" in reply.text and "明天上午到场，请留门" in reply.text
    report = await m.FaultReport.get(id=report.id)
    assert (report.state, report.staff_note, report.handled_by_id) == \
        (m.FaultState.IN_PROGRESS, "明天上午到场，请留门", people["operator"].id)
    reply = await bot.say(ADMIN, f"工单 F{report.id} 已修复")
    assert "已解决" in reply.text
    report = await m.FaultReport.get(id=report.id)
    assert report.state == m.FaultState.RESOLVED and report.resolved_at is not None
    events = await audit_events("ChangeFaultState", entity_id=str(report.id))
    assert [e.after["state"] for e in events] == ["in_progress", "resolved"]
    assert [e.actor for e in events] == [f"staff:{people['operator'].id}", f"staff:{people['admin'].id}"]
    told = await m.OutboxMessage.filter(event="FaultUpdated").order_by("id")
    assert [t.payload["data"]["phrase3"] for t in told] == ["处理中", "已解决"]
    assert [t.payload["data"]["thing4"] for t in told] == ["明天上午到场，请留门", "无"]
    owner_openids = set(await m.WechatIdentity.filter(owner_id=people["owner"].id).values_list("openid", flat=True))
    assert {t.recipient for t in told} <= owner_openids


@pytest.mark.parametrize(("text", "expected"), [
    ("工单 999999 受理", "没有这条报修"),
    ("工单 {id} 已修复", None),  # fine once; then below it is resolved
])
async def test_fault_command_refusals_change_nothing(bot: Bot, people, text, expected):
    report = await m.FaultReport.create(plant=people["plant"], text="组件破损")
    if expected is None:
        await bot.say(OPERATOR, text.format(id=report.id))
        before = await _fault_state(report.id)
        for again, says in ((f"工单 {report.id} 受理", "不允许此操作"), (f"工单 {report.id} 已修复", "不允许此操作")):
            assert says in (await bot.say(OPERATOR, again)).text
        assert await _fault_state(report.id) == before
        return
    before = await _fault_state(report.id)
    assert expected in (await bot.say(OPERATOR, text)).text
    assert await _fault_state(report.id) == before


@pytest.mark.parametrize(("text", "says"), [
    ("工单 {id} 打开", "应为 受理、处理中 或 已修复"),
    ("工单 {id} open", "应为 受理、处理中 或 已修复"),
    ("工单 abc 受理", "报修编号是数字"),
    ("工单 {id} 受理 " + "长" * 501, "备注太长"),
    ("工单 {id} 受理 到场\x85检查", "控制字符"),  # C1: C0 cannot be written in XML at all
    ("工单 {id}", "用法"),
])
async def test_hostile_fault_commands_are_refused_and_change_nothing(bot: Bot, people, text, says):
    report = await m.FaultReport.create(plant=people["plant"], text="组件破损")
    before = await _fault_state(report.id)
    reply = await bot.say(OPERATOR, text.format(id=report.id))
    assert says in reply.text, reply.text
    assert await _fault_state(report.id) == before


# ---------------------------------------------------------------------- hostile arguments


HOSTILE = ["'; DROP TABLE plant; --", "{0.__class__}", "%s%s%n", "{{7*7}}", "${jndi:ldap://x}", "PV-E1' OR '1'='1",
           "../../etc/passwd", "]]><xml>"]


@pytest.mark.parametrize("arg", HOSTILE)
@pytest.mark.parametrize("template", ["抄表 {a} 00010000 1", "调整 {a} M 00010000 1 原因 x", "重发 {a} 2026-10",
                                      "确认 {a}", "收款 {a} 100 转账", "收款 202610-PV-E1-1 {a} 转账",
                                      "邀请 {a}", "欠费 {a}", "电站 {a}", "报表 {a}", "通知 {a}", "发电 {a}",
                                      "绑定 {a}", "退款 {a} 100 原因 x", "退款 1 {a} 原因 x"])
async def test_sql_and_format_strings_in_arguments_are_only_values(bot: Bot, people, arg: str, template: str):
    before = await _snapshot()
    who = OWNER if template.startswith(("发电", "绑定")) else ADMIN
    reply = await bot.say(who, template.format(a=arg))
    await bot.idle()
    assert reply.status == 200 and reply.text
    assert "49" not in reply.text and "class" not in reply.text.replace(arg, "")
    after = await _snapshot()
    # the only thing that may move is the audit trail of a refused bind (none) — nothing does
    assert after == before, reply.text
    assert await m.Plant.filter(code="PV-E1").exists()


async def test_hostile_text_in_a_reason_is_stored_as_typed(bot: Bot, people, notify_apps):
    await november_cycle(people, apps=notify_apps)
    reason = "{0.__class__} %s%s%n '; DROP TABLE plant; -- {{7*7}}"
    reply = await bot.say(OPERATOR, f"调整 PV-E1 PV-E1-G 00010200 680 原因 {reason}")
    assert reason in reply.text
    [event] = await audit_events("AdjustReading")
    assert event.reason == reason
    assert await m.Plant.all().count() == 1


# ---------------------------------------------------------------------- 开票 (issue #24 point 2)


async def _invoice_state() -> tuple:
    return (await m.InvoiceRequest.all().count(), await m.AuditEvent.filter(action="RequestInvoice").count())


async def test_staff_ask_for_a_paid_bills_invoice_once(bot: Bot, people, notify_apps):
    """The walked bill (tests/integration/billed_plant.py) is partly paid: 开票 is refused and asks
    for nothing. Once the 4 654.67 元 left is paid, the request is the two payments, 3 000.00 +
    4 654.67 = 7 654.67 元 (the 5.00 元 of credit was invoiced with its own payment, if at all):
    VAT 765 467 × 13 / 113 = 88 062.58 → 88 063 fen."""
    bill = people["bill"]
    before = await _snapshot()
    reply = await bot.say(OPERATOR, f"开票 {bill.number}")
    assert f"账单 {bill.number} 尚未缴清" in reply.text
    assert await _snapshot() == before

    from settlement.billing import bills

    await bills.record_payment(bill.id, 465467, m.PaymentChannel.BANK_TRANSFER, "BANK-REST", apps=notify_apps,
                               staff=people["operator"])
    reply = await bot.say(OPERATOR, f"开票 {bill.number.lower()}")  # the number is case-blind, as for 收款
    assert f"已为账单 {bill.number} 申请电子发票：¥7,654.67（其中税额 ¥880.63）" in reply.text
    assert "常州某纺织有限公司（91320400MA1XXXXXX）" in reply.text
    [request] = await m.InvoiceRequest.all()
    assert (request.request_key, request.amount_fen, request.tax_fen, request.state) == (
        f"bill:{bill.id}", 765467, 88063, m.InvoiceState.REQUESTED)
    [event] = await audit_events("RequestInvoice")
    assert (event.actor, event.entity, event.entity_id, event.after["amount_fen"]) == (
        f"staff:{people['operator'].id}", "bill", str(bill.id), 765467)

    # asked again (by id this time, by an admin): the request there is, nothing new
    reply = await bot.say(ADMIN, f"invoice {bill.id}")
    assert f"账单 {bill.number} 已申请过电子发票（待开具）" in reply.text
    assert await _invoice_state() == (1, 1)


@pytest.mark.parametrize(("text", "expected"), [
    ("开票 202610-NOPE-1", "没有这张账单"),
    ("开票 202610-PV-E1-1 多余", "开票 <账单号>"),
])
async def test_invoice_command_refusals_change_nothing(bot: Bot, people, text, expected):
    before = await _snapshot()
    assert expected in (await bot.say(OPERATOR, text)).text
    assert await _snapshot() == before


async def test_an_owner_without_a_tax_id_gets_no_invoice_from_staff_either(bot: Bot, people, notify_apps):
    from settlement.billing import bills

    await m.Owner.filter(id=people["owner"].id).update(tax_id=None)
    await bills.record_payment(people["bill"].id, 465467, m.PaymentChannel.BANK_TRANSFER, "BANK-REST",
                               apps=notify_apps, staff=people["operator"])
    before = await _snapshot()
    assert "没有登记有效的纳税人识别号" in (await bot.say(OPERATOR, f"开票 {people['bill'].number}")).text
    assert await _snapshot() == before
