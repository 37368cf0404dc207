"""Prepaid accounts under hostile conditions: duplicate top-up notifications, a switch that never
acknowledges, readings that come after the cut-off, top-ups while a cut-off is pending or under
way, quiet hours and holidays. None of them may lose money or leave a paid site cut off."""

from __future__ import annotations

import asyncio
import datetime as dt

import numpy as np
import pytest
from pay_support import fake_pay, make_fake, pay_port, pay_settings  # noqa: F401
from prepaid_support import (
    charged_by_day,
    day_rows,
    device,  # noqa: F401
    expected_daily_fen,
    ledger_sum,
    local,
    notify,
    prepaid_site,
    top_up,
)

from server.app import create_app
from settlement.pay import reconcile as pay_reconcile
from settlement.prepaid import accounts as prepaid
from settlement import models as m
from settlement.models import NotificationOutcome, OutboxMessage
from settlement.clock import utc_now

DAY = dt.date(2026, 3, 2)  # a Monday
HEAVY = np.full(96, 5.0)  # [kWh per interval]: about 250 元 a day at these prices
LIGHT = np.full(96, 0.1)
# the night's cut-off notice goes out at 08:00; with a 2-hour grace period the cut-off is due at 10:00
CUT_AT = local(2026, 3, 3, 10, 30)


async def _owner_rows(event: str, identity: m.WechatIdentity) -> int:
    return await OutboxMessage.filter(event=event, recipient=identity.openid).count()


async def _account(site) -> m.PrepaidAccount:
    return await m.PrepaidAccount.get(id=site["account"].id)


async def _in_debt(site, pay_port, fake_pay, *, amount_fen: int = 10000, apps):  # noqa: F811
    """Top up ``amount_fen`` on the morning of DAY, then a heavy day drives the account below zero
    (ingested at 00:30 the next night): the cut-off notice waits for 08:00, the cut-off is due a
    grace period later."""
    at = local(2026, 3, 2, 7)
    _, note = await top_up(pay_port, fake_pay, site["account"], site["identity"], amount_fen, at)
    assert (await notify(pay_port, note, at, apps=apps)).status == 204
    night = local(2026, 3, 3, 0, 30)
    await prepaid.record_usage(site["service"].id, day_rows(DAY, HEAVY), now=night, apps=apps)
    account = await _account(site)
    assert account.available_fen < 0 and account.alert_state == m.AlertState.CUTOFF_PENDING
    return night


async def test_a_duplicate_top_up_notification_credits_once(settings, device, aiohttp_client, tmp_path):
    """The same notification three times over /pay/notify, two of them at once: one payment, one credit."""
    from webapp.keys import pay_api_key

    async with make_fake(settings.mp_appid) as fake:
        app = create_app(pay_settings(settings, fake, tmp_path / "keys"))
        client = await aiohttp_client(app)
        url = str(client.make_url("/pay/notify"))
        site = await prepaid_site(settings, device)
        start = await prepaid.start_topup(app[pay_api_key], site["account"].number, site["identity"].id, 12345)
        fake.pay_order(start.out_trade_no)
        notification = fake.payment_notification(start.out_trade_no)
        assert await fake.post(url, notification) == (204, "")
        answers = await asyncio.gather(fake.post(url, notification), fake.post(url, notification))
        assert answers == [(204, ""), (204, "")]
    account = await _account(site)
    assert account.available_fen == 12345 == await ledger_sum(account)
    assert await m.PrepaidEntry.filter(account_id=account.id, kind=m.EntryKind.TOPUP).count() == 1
    payment = await m.Payment.get(out_trade_no=start.out_trade_no)
    assert (payment.amount_fen, payment.bill_id, payment.owner_id) == (12345, None, site["owner"].id)
    outcomes = sorted(n.outcome for n in await m.PayNotification.filter(out_trade_no=start.out_trade_no))
    assert outcomes == [NotificationOutcome.ACCEPTED, NotificationOutcome.DUPLICATE, NotificationOutcome.DUPLICATE]
    assert (await m.TopUpOrder.get(out_trade_no=start.out_trade_no)).state == m.PayOrderState.PAID
    assert await _owner_rows("TopUpReceived", site["identity"]) == 1


async def test_a_top_up_notification_with_another_amount_is_refused(settings, device, pay_port, fake_pay,  # noqa: F811
                                                                    notify_apps):
    site = await prepaid_site(settings, device)
    at = local(2026, 3, 2, 7)
    no, _ = await top_up(pay_port, fake_pay, site["account"], site["identity"], 5000, at)
    forged = fake_pay.payment_notification(no, timestamp=int(at.timestamp()),
                                           resource_changes={"amount": {"total": 500000, "payer_total": 500000,
                                                                        "currency": "CNY", "payer_currency": "CNY"}})
    handled = await notify(pay_port, forged, at, apps=notify_apps)
    assert handled.status == 400 and handled.outcome == NotificationOutcome.REFUSED
    assert (await _account(site)).available_fen == 0
    assert not await m.Payment.filter(out_trade_no=no).exists()


async def test_a_cut_off_never_acknowledged_is_retried_then_alarms_staff(  # noqa: F811
        settings, device, pay_port, fake_pay, notify_apps):
    site = await prepaid_site(settings, device, grace_hours=2)
    serial = site["meter"].serial
    await _in_debt(site, pay_port, fake_pay, apps=notify_apps)
    before = await _account(site)
    device.silence(serial)
    now = CUT_AT
    for _ in range(12):  # well past every retry
        await prepaid.tick(now, device, apps=notify_apps)
        now += dt.timedelta(hours=2)
    calls = [c for c in device.log if c.serial == serial]
    assert [c.outcome for c in calls] == ["silent"] * prepaid.MAX_ATTEMPTS
    assert len({c.command_id for c in calls}) == 1  # the same command, retried
    command = await m.SupplyCommand.get(account_id=before.id)
    assert (command.kind, command.state, command.attempts) == \
        (m.CommandKind.CUT_OFF, m.CommandState.FAILED, prepaid.MAX_ATTEMPTS)
    alarms = await OutboxMessage.filter(event="DeviceAlarm")
    assert len(alarms) == 1 and alarms[0].payload["context"]["what"] == "断电指令未确认"
    account = await _account(site)
    # no money moved, and the account says what is known: cut-off decided, supply unknown
    assert account.available_fen == before.available_fen == await ledger_sum(account)
    assert (account.alert_state, account.supply) == (m.AlertState.CUT_OFF, m.SupplyState.UNKNOWN)

    # the switch answers again and the owner pays: supply is restored, the cut-off is never retried
    device.silence(serial, False)
    _, note = await top_up(pay_port, fake_pay, account, site["identity"], 100000, now)
    assert (await notify(pay_port, note, now, apps=notify_apps)).status == 204
    await prepaid.tick(now, device, apps=notify_apps)
    await prepaid.tick(now + dt.timedelta(days=1), device, apps=notify_apps)
    assert device.executed_actions(serial) == ["restore"]
    account = await _account(site)
    assert (account.alert_state, account.supply) == (m.AlertState.NORMAL, m.SupplyState.ON)
    assert await OutboxMessage.filter(event="DeviceAlarm").count() == 1


async def test_a_reading_after_the_cut_off_is_charged_and_cuts_off_nothing_again(
        settings, device, pay_port, fake_pay, notify_apps):  # noqa: F811
    site = await prepaid_site(settings, device, grace_hours=2)
    serial, service = site["meter"].serial, site["service"]
    await _in_debt(site, pay_port, fake_pay, apps=notify_apps)
    await prepaid.tick(CUT_AT, device, apps=notify_apps)
    assert device.executed_actions(serial) == ["cut_off"]

    # the head-end delivers late: a corrected interval of the heavy day, and the morning of the
    # cut-off day (used before 09:00)
    heavy = HEAVY.copy()
    heavy[60] = 9.5
    morning = np.where(np.arange(96) < 36, 1.2, 0.0)
    later = local(2026, 3, 3, 11)
    result = await prepaid.record_usage(service.id, day_rows(DAY, heavy)[60:61], now=later, apps=notify_apps)
    assert (result.changed, result.stored) == (1, 0)
    await prepaid.record_usage(service.id, day_rows(DAY + dt.timedelta(days=1), morning)[:36], now=later,
                               apps=notify_apps)
    for hour in (15, 33, 57):
        await prepaid.tick(later + dt.timedelta(hours=hour), device, apps=notify_apps)

    expected = expected_daily_fen([DAY, DAY + dt.timedelta(days=1)], {DAY: heavy, DAY + dt.timedelta(days=1): morning})
    assert await charged_by_day(site["account"]) == expected
    # the correction posted only its difference, as a second entry of that day
    entries = await m.PrepaidEntry.filter(account_id=site["account"].id, kind=m.EntryKind.CHARGE, day=DAY) \
        .order_by("id")
    assert [e.key.rsplit(":", 1)[1] for e in entries] == ["1", "2"]
    assert -entries[1].amount_fen == expected[DAY] - expected_daily_fen([DAY], {DAY: HEAVY})[DAY] > 0
    account = await _account(site)
    assert account.available_fen == 10000 - sum(expected.values()) == await ledger_sum(account)
    assert device.executed_actions(serial) == ["cut_off"]
    assert await m.SupplyCommand.filter(account_id=account.id).count() == 1
    assert await _owner_rows("CutOffPending", site["identity"]) == 1
    assert (account.alert_state, account.supply) == (m.AlertState.CUT_OFF, m.SupplyState.OFF)


@pytest.mark.parametrize("stage", ["notice", "queued", "unanswered", "ack_lost", "cut_off"])
async def test_a_top_up_during_a_pending_cut_off_never_leaves_the_site_cut_off(
        settings, device, pay_port, fake_pay, stage, notify_apps):  # noqa: F811
    """notice: only the notice went out. queued: the command is decided but not sent.
    unanswered: sent, the switch did nothing and said nothing. ack_lost: sent, the switch cut
    off but its acknowledgement was lost. cut_off: cut off and acknowledged."""
    site = await prepaid_site(settings, device, grace_hours=2)
    serial = site["meter"].serial
    await _in_debt(site, pay_port, fake_pay, apps=notify_apps)
    now = CUT_AT
    if stage == "queued":
        await prepaid.tick(now, apps=notify_apps)  # no device port in this process: the command waits
    elif stage in ("unanswered", "ack_lost", "cut_off"):
        if stage == "unanswered":
            device.silence(serial)
        if stage == "ack_lost":
            device.lose_acks(serial)
        await prepaid.tick(now, device, apps=notify_apps)
    commands_before = await m.SupplyCommand.filter(account_id=site["account"].id).count()
    assert commands_before == (0 if stage == "notice" else 1)

    at = now + dt.timedelta(minutes=10)
    _, note = await top_up(pay_port, fake_pay, site["account"], site["identity"], 100000, at)
    assert (await notify(pay_port, note, at, apps=notify_apps)).status == 204
    device.silence(serial, False)
    device.lose_acks(serial, False)
    for hours in (0, 1, 6, 30):
        await prepaid.tick(at + dt.timedelta(hours=hours), device, apps=notify_apps)

    assert device.supply_on[serial] is True
    account = await _account(site)
    assert (account.alert_state, account.supply) == (m.AlertState.NORMAL, m.SupplyState.ON)
    expected = {"notice": [], "queued": [], "unanswered": ["restore"], "ack_lost": ["cut_off", "restore"],
                "cut_off": ["cut_off", "restore"]}[stage]
    assert device.executed_actions(serial) == expected
    cut_offs = await m.SupplyCommand.filter(account_id=account.id, kind=m.CommandKind.CUT_OFF)
    assert len(cut_offs) == (0 if stage == "notice" else 1)
    if stage in ("queued", "unanswered", "ack_lost"):
        assert cut_offs[0].state == m.CommandState.CANCELLED
    assert account.available_fen == await ledger_sum(account) > 0


async def test_no_cut_off_in_quiet_hours_or_on_a_holiday(settings, device, pay_port, fake_pay,  # noqa: F811
                                                         notify_apps):
    site = await prepaid_site(settings, device, grace_hours=1, holidays=[dt.date(2026, 3, 3)])
    serial = site["meter"].serial
    await _in_debt(site, pay_port, fake_pay, apps=notify_apps)
    for at in (local(2026, 3, 3, 3), local(2026, 3, 3, 10), local(2026, 3, 3, 23), local(2026, 3, 4, 7, 45)):
        await prepaid.tick(at, device, apps=notify_apps)  # quiet hours, the holiday, quiet hours again
    assert device.log == []
    await prepaid.tick(local(2026, 3, 4, 8), device, apps=notify_apps)
    assert device.executed_actions(serial) == ["cut_off"]


async def test_the_warning_goes_out_once_per_crossing(settings, device, pay_port, fake_pay, notify_apps):  # noqa: F811
    site = await prepaid_site(settings, device, warning_fen=20000)
    account, identity, service = site["account"], site["identity"], site["service"]
    at = local(2026, 3, 2, 7)
    _, note = await top_up(pay_port, fake_pay, account, identity, 30000, at)
    await notify(pay_port, note, at, apps=notify_apps)
    for n in range(3):  # three light days: below the warning level on the first, staying there
        day = DAY + dt.timedelta(days=n)
        await prepaid.record_usage(service.id, day_rows(day, LIGHT * 20), now=local(2026, 3, 3 + n, 0, 30),
                                   apps=notify_apps)
    assert await _owner_rows("LowBalance", identity) == 1
    _, note = await top_up(pay_port, fake_pay, account, identity, 50000, local(2026, 3, 5, 9))
    await notify(pay_port, note, local(2026, 3, 5, 9), apps=notify_apps)
    assert (await _account(site)).alert_state == m.AlertState.NORMAL
    for n in range(3, 7):
        day = DAY + dt.timedelta(days=n)
        await prepaid.record_usage(service.id, day_rows(day, LIGHT * 20), now=local(2026, 3, 3 + n, 0, 30),
                                   apps=notify_apps)
    assert await _owner_rows("LowBalance", identity) == 2  # a second crossing, a second warning


async def test_usage_top_ups_and_ticks_at_once_keep_the_ledger_whole(settings, device, pay_port, fake_pay,  # noqa: F811
                                                                     notify_apps):
    """Several server processes at once: readings of different days, top-ups and scheduler ticks
    race on one account; the account row lock serializes them and nothing is lost or doubled."""
    site = await prepaid_site(settings, device, grace_hours=0)
    at = local(2026, 3, 12, 10)
    notes = [(await top_up(pay_port, fake_pay, site["account"], site["identity"], 30000, at))[1] for _ in range(3)]
    days = [DAY + dt.timedelta(days=n) for n in range(6)]
    profiles = {d: np.full(96, 0.3 + n / 10) for n, d in enumerate(days)}
    await asyncio.gather(
        *(prepaid.record_usage(site["service"].id, day_rows(d, profiles[d]), now=at, apps=notify_apps) for d in days),
        *(notify(pay_port, note, at, apps=notify_apps) for note in notes), notify(pay_port, notes[0], at,
                                                                                  apps=notify_apps),
        prepaid.tick(at, device, apps=notify_apps), prepaid.tick(at, device, apps=notify_apps))
    account = await _account(site)
    expected = expected_daily_fen(days, profiles)
    assert await charged_by_day(account) == expected
    assert account.available_fen == 90000 - sum(expected.values()) == await ledger_sum(account)
    assert await m.PrepaidEntry.filter(account_id=account.id, kind=m.EntryKind.TOPUP).count() == 3
    entries = await m.PrepaidEntry.filter(account_id=account.id).order_by("id")
    running = 0
    for entry in entries:  # each entry's balance follows from the one before: no lost update
        running += entry.amount_fen
        assert entry.available_after_fen == running


async def test_a_top_up_whose_notification_never_comes_is_found_by_query(  # noqa: F811
        settings, device, pay_port, fake_pay, notify_apps):
    site = await prepaid_site(settings, device)
    at = utc_now()
    paid_no, note = await top_up(pay_port, fake_pay, site["account"], site["identity"], 7000, at)
    unpaid = await prepaid.start_topup(pay_port, site["account"].number, site["identity"].id, 9000, now=at)
    assert await pay_reconcile.reconcile_topups(pay_port, now=at,
                                                apps=notify_apps) == {"topups_queried": 0, "topups_paid": 0,
                                                               "topups_closed": 0}  # not expired yet
    later = at + dt.timedelta(hours=3)
    assert await pay_reconcile.reconcile_topups(pay_port, now=later,
                                                apps=notify_apps) == {"topups_queried": 2, "topups_paid": 1,
                                                                  "topups_closed": 1}
    assert (await _account(site)).available_fen == 7000
    assert (await m.TopUpOrder.get(out_trade_no=unpaid.out_trade_no)).state == m.PayOrderState.CLOSED
    # the notification comes after all: nothing more
    assert (await notify(pay_port, note, at, apps=notify_apps)).outcome == NotificationOutcome.DUPLICATE
    assert (await _account(site)).available_fen == 7000 == await ledger_sum(await _account(site))
    assert paid_no != unpaid.out_trade_no


async def test_a_restore_never_acknowledged_alarms_once_and_is_never_given_up(
        settings, device, pay_port, fake_pay, notify_apps):  # noqa: F811
    site = await prepaid_site(settings, device, grace_hours=2)
    serial = site["meter"].serial
    await _in_debt(site, pay_port, fake_pay, apps=notify_apps)
    now = CUT_AT
    await prepaid.tick(now, device, apps=notify_apps)
    assert device.executed_actions(serial) == ["cut_off"]
    device.silence(serial)
    _, note = await top_up(pay_port, fake_pay, site["account"], site["identity"], 100000, now)
    await notify(pay_port, note, now, apps=notify_apps)
    for _ in range(20):
        now += dt.timedelta(hours=1)
        await prepaid.tick(now, device, apps=notify_apps)
    restore = await m.SupplyCommand.get(account_id=site["account"].id, kind=m.CommandKind.RESTORE)
    assert restore.state == m.CommandState.PENDING and restore.attempts > prepaid.MAX_ATTEMPTS
    alarms = await OutboxMessage.filter(event="DeviceAlarm")
    assert [a.payload["context"]["what"] for a in alarms] == ["复电指令未确认"]
    assert (await _account(site)).supply == m.SupplyState.UNKNOWN
    device.silence(serial, False)  # the link is repaired
    await prepaid.tick(now + dt.timedelta(hours=1), device, apps=notify_apps)
    assert device.executed_actions(serial) == ["cut_off", "restore"] and device.supply_on[serial]
    account = await _account(site)
    assert (account.supply, account.alert_state) == (m.SupplyState.ON, m.AlertState.NORMAL)
    assert await OutboxMessage.filter(event="DeviceAlarm").count() == 1


async def test_a_cut_off_retry_waits_out_the_quiet_hours(settings, device, pay_port, fake_pay,  # noqa: F811
                                                         notify_apps):
    site = await prepaid_site(settings, device, grace_hours=2)
    serial = site["meter"].serial
    await _in_debt(site, pay_port, fake_pay, apps=notify_apps)
    device.silence(serial)
    await prepaid.tick(local(2026, 3, 3, 21, 50), device, apps=notify_apps)  # first attempt, unanswered
    device.silence(serial, False)
    for at in (local(2026, 3, 3, 22, 30), local(2026, 3, 4, 3), local(2026, 3, 4, 7, 59)):
        await prepaid.tick(at, device, apps=notify_apps)
    assert device.executed_actions(serial) == []
    await prepaid.tick(local(2026, 3, 4, 8), device, apps=notify_apps)
    assert device.executed_actions(serial) == ["cut_off"]
