"""Dunning on the walked plant (tests/integration/billed_plant.py: due 2026-10-25, 4563.40 元 of
principal unpaid after 10-20, late fee 2 ‰ a day, 91.27 元 accrued through 11-04): reminders per
stage with the late fee to date, escalation to staff, per-contract plans, stopped by payment."""

from __future__ import annotations

import datetime as dt

from settlement.billing import bills
from settlement.billing import dunning
from settlement.notify import outbox
from settlement import models as m
from settlement.models import OutboxMessage, OutboxState, SubscribeAcceptance, SubscribeAnswer, WechatIdentity
from tests.integration.billed_plant import local, walked_plant
from tests.integration.test_notify_support import TEMPLATE_IDS, bound_owners, dispatcher  # noqa: F401 (a fixture)
from tests.integration.wechat_fixtures import *  # noqa: F403


async def _reminders() -> list[OutboxMessage]:
    return await OutboxMessage.filter(event="ArrearsReminder").order_by("id")


async def test_stages_amounts_with_late_fee_and_escalation(db, bound_owners, notify_apps):  # noqa: F811
    walked = await walked_plant(apps=notify_apps)
    bill = walked["bill"]
    await WechatIdentity.create(app_id=db.oa_appid, openid="staff-oa", staff=walked["staff"])
    # 10-20: 5 days before the due date, no stage yet (the first is 3 days before)
    assert (await dunning.run(local(2026, 10, 20, 10), apps=notify_apps))["reminders"] == 0
    assert (await dunning.run(local(2026, 10, 22, 10), apps=notify_apps))["reminders"] == 1
    # 11-05, day 11: stage +7; late fee through 11-04 = 91.27 元, already charged
    await dunning.run(local(2026, 11, 5, 10), apps=notify_apps)
    await dunning.run(local(2026, 11, 5, 11), apps=notify_apps)  # again the same day: nothing new
    rows = await _reminders()
    assert [r.dedupe_key.split(":")[3] for r in rows] == ["-3", "7"]
    assert rows[1].payload["data"]["amount3"] == "¥4654.67"  # 4563.40 + 91.27
    assert rows[1].payload["data"]["thing5"] == "含滞纳金¥91.27，请尽快缴费"
    # 11-10, day 16: stage +15; fee through 11-09 = 456340 × 0.002 × 15 = 136.90 元, 45.63 not yet accrued
    await dunning.run(local(2026, 11, 10, 10), apps=notify_apps)
    latest = (await _reminders())[-1]
    assert latest.dedupe_key.startswith(f"bill:{bill.id}:ArrearsReminder:15:")
    assert latest.payload["data"]["amount3"] == "¥4700.30"
    assert latest.payload["oa_data"]["keyword2"] == "¥4700.30（含滞纳金¥136.90）"
    assert await OutboxMessage.filter(event="ArrearsEscalated").count() == 0
    # 11-24, day 30: the last reminder and the escalation to staff
    done = await dunning.run(local(2026, 11, 24, 10), apps=notify_apps)
    assert done["escalations"] == 1
    escalation = await OutboxMessage.get(event="ArrearsEscalated")
    assert (escalation.recipient, escalation.channel) == ("staff-oa", "template")
    assert escalation.payload["data"]["thing5"] == "逾期30天，请跟进催收"


async def test_a_contract_plan_sets_the_stages(db, bound_owners, notify_apps):  # noqa: F811
    walked = await walked_plant(apps=notify_apps)
    contract = await m.Contract.get(plant=walked["plant"])
    await m.DunningPlan.create(contract=contract, offsets=[0, 5], escalate_after=5)
    await WechatIdentity.create(app_id=db.oa_appid, openid="staff-oa", staff=walked["staff"])
    done = await dunning.run(local(2026, 11, 1, 10), apps=notify_apps)  # day 7
    assert done["escalations"] == 1
    assert [r.dedupe_key.split(":")[3] for r in await _reminders()] == ["5"]


async def test_payment_stops_dunning_at_once(db, bound_owners, fake_wechat, wechat_api, wechat_redis,  # noqa: F811
                                             notify_apps):
    walked = await walked_plant(apps=notify_apps)
    bill = walked["bill"]
    identity = await WechatIdentity.get(owner=walked["owner"])
    await SubscribeAcceptance.create(identity=identity, template_id=TEMPLATE_IDS["arrears_reminder"],
                                     answer=SubscribeAnswer.ACCEPT, accepts=5)
    noon = local(2026, 11, 5, 12)
    await dunning.run(local(2026, 11, 5, 10), apps=notify_apps)
    first = (await _reminders())[-1]
    d = dispatcher(wechat_api, wechat_redis, db, clock=lambda: noon)
    assert await d.run_once() >= 1
    assert (await OutboxMessage.get(id=first.id)).state == OutboxState.SENT
    # the next stage is written, then the owner pays everything before it goes out
    await dunning.run(local(2026, 11, 10, 10), apps=notify_apps)
    second = (await _reminders())[-1]
    await bills.record_payment(bill.id, bills.owed_fen(await m.Bill.get(id=bill.id)), m.PaymentChannel.BANK_TRANSFER,
                               "BANK-ALL", staff=walked["staff"], paid_at=local(2026, 11, 10, 11), apps=notify_apps)
    assert (await m.Bill.get(id=bill.id)).state == m.BillState.PAID
    await d.run_once()
    second = await OutboxMessage.get(id=second.id)
    assert (second.state, second.last_error) == (OutboxState.FAILED, "paid")
    assert [msg.data["character_string1"] for msg in fake_wechat.sent if msg.template_id == TEMPLATE_IDS[
        "arrears_reminder"]] == [bill.number]  # only the first reminder reached WeChat
    # a paid bill is not reminded any more
    assert (await dunning.run(local(2026, 11, 24, 10), apps=notify_apps))["reminders"] == 0


async def test_pending_reminders_of_a_paid_bill_are_cancelled_by_the_run(db, bound_owners, notify_apps):  # noqa: F811
    walked = await walked_plant(apps=notify_apps)
    bill = walked["bill"]
    await dunning.run(local(2026, 11, 5, 10), apps=notify_apps)
    await bills.record_payment(bill.id, bills.owed_fen(await m.Bill.get(id=bill.id)), m.PaymentChannel.COUNTER,
                               "CASH-1", staff=walked["staff"], paid_at=local(2026, 11, 6, 9), apps=notify_apps)
    assert (await dunning.run(local(2026, 11, 6, 10), apps=notify_apps))["cancelled"] == 1
    row = (await _reminders())[-1]
    assert (row.state, row.last_error) == (OutboxState.FAILED, "paid")
    state = await outbox.delivery_state(bill_id=bill.id)
    assert ("ArrearsReminder", "failed", "paid") in [(s["event"], s["state"], s["reason"]) for s in state]


async def test_reminders_keep_quiet_hours(db, bound_owners, notify_apps):  # noqa: F811
    await walked_plant(apps=notify_apps)
    await dunning.run(local(2026, 11, 5, 23, 30), apps=notify_apps)
    row = (await _reminders())[-1]
    assert row.not_before == local(2026, 11, 6, 8).astimezone(dt.timezone.utc)
