"""A prepaid site run for 60 days of interval data with top-ups (issue 11's simulation).

Every night the day's 96 intervals arrive; the scheduler's prepaid tick runs at 09:00 and 15:00;
the owner tops up through WeChat Pay (real signed notifications) on day 0 and day 35. The site
uses nothing while its supply is cut. Checked against figures computed independently from
billing_engine in prepaid_support: every day's charge, the moment of the warning, the cut-off
notice, the cut-off and the restore (each exactly once: device log and outbox rows), the
month's true-up against the bill of the confirmed form, and the final balance to the fen.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from prepaid_support import (
    LOCAL,
    RATES,
    TERMS,
    charged_by_day,
    day_rows,
    device,  # noqa: F401
    expected_daily_fen,
    kwh_per_rate,
    ledger_sum,
    local,
    notify,
    prepaid_site,
    rate_prices,
    top_up,
)
from pay_support import fake_pay, pay_port  # noqa: F401

from billing_engine.pricing import price_cycle
from settlement.billing import bills
from settlement.notify import outbox
from settlement.prepaid import accounts as prepaid
from settlement import models as m
from settlement.models import OutboxMessage

WARNING_FEN = 30000
GRACE_HOURS = 12
TOPUPS = {0: 150000, 35: 300000}  # sim day → fen
FIRST_DAY = dt.date(2026, 3, 1)
DAYS = 60


def _profile(rng: np.random.Generator, day: dt.date, off_from: dt.datetime | None,
             on_from: dt.datetime | None) -> np.ndarray:
    """A factory's day [kWh per interval, whole Wh]: busy 08:00–18:00; nothing while cut off."""
    wh = np.where((np.arange(96) >= 32) & (np.arange(96) < 72), rng.integers(800, 2400, 96), rng.integers(200, 600, 96))
    start = dt.datetime.combine(day, dt.time(), tzinfo=LOCAL)
    for i in range(96):
        at = start + dt.timedelta(minutes=15 * i)
        if off_from is not None and at >= off_from and (on_from is None or at < on_from):
            wh[i] = 0
    return wh / 1000


async def _owner_rows(event: str, identity: m.WechatIdentity) -> int:
    return await OutboxMessage.filter(event=event, recipient=identity.openid).count()


async def test_sixty_days_of_a_prepaid_site(settings, device, pay_port, fake_pay, notify_apps):  # noqa: F811
    site = await prepaid_site(settings, device, warning_fen=WARNING_FEN, grace_hours=GRACE_HOURS)
    account, identity, serial = site["account"], site["identity"], site["meter"].serial
    rng = np.random.default_rng(11)
    profiles: dict[dt.date, np.ndarray] = {}
    off_from = on_from = None
    topped_up = 0
    moments: dict[str, dt.datetime] = {}
    expected_true_up = 0

    def expected_available() -> int:
        charges = expected_daily_fen(list(profiles), profiles)
        return topped_up - sum(charges.values()) + expected_true_up

    async def check_thresholds(now: dt.datetime) -> None:
        """After each step the account is where the independent balance puts it."""
        acc = await m.PrepaidAccount.get(id=account.id)
        assert acc.available_fen == expected_available() == await ledger_sum(acc)
        warned = await _owner_rows("LowBalance", identity)
        notices = await _owner_rows("CutOffPending", identity)
        if "warning" not in moments and acc.available_fen <= WARNING_FEN:
            moments["warning"] = now
        if "notice" not in moments and acc.available_fen <= 0:
            moments["notice"] = now
        assert warned == (1 if "warning" in moments else 0)
        assert notices == (1 if "notice" in moments else 0)

    for n in range(DAYS):
        day = FIRST_DAY + dt.timedelta(days=n)
        if n in TOPUPS:
            at = local(day.year, day.month, day.day, 10)
            _, note = await top_up(pay_port, fake_pay, account, identity, TOPUPS[n], at)
            assert (await notify(pay_port, note, at, apps=notify_apps)).status == 204
            topped_up += TOPUPS[n]
            await prepaid.tick(at, device, apps=notify_apps)
            await check_thresholds(at)
            if device.supply_on[serial] and off_from is not None and on_from is None:
                on_from = at
        for hour in (9, 15):
            at = local(day.year, day.month, day.day, hour)
            await prepaid.tick(at, device, apps=notify_apps)
            if device.supply_on[serial] is False and off_from is None:
                off_from = at
                moments["cut_off"] = at
            if device.supply_on[serial] and off_from is not None and on_from is None:
                on_from = at
            await check_thresholds(at)
        profiles[day] = _profile(rng, day, off_from, on_from)
        night = local(day.year, day.month, day.day) + dt.timedelta(days=1, minutes=30)
        result = await prepaid.record_usage(site["service"].id, day_rows(day, profiles[day]), now=night,
                                            apps=notify_apps)
        assert result.stored == 96 and result.days == (day,)
        await check_thresholds(night)

        if day == dt.date(2026, 4, 1):
            # March's reading cycle is billed from the confirmed form: the meter registers read
            # 2.5 kWh more peak self-use than the intervals summed to
            march = [d for d in profiles if d.month == 3]
            per_rate = sum(kwh_per_rate(d, profiles[d]) for d in march)
            per_rate[RATES.index("peak")] += 2.5
            cycle = await m.ReadingCycle.create(plant=site["plant"], period="2026-04",
                                                starts_at=local(2026, 3, 1), ends_at=local(2026, 4, 1))
            await m.ConfirmationForm.create(
                cycle=cycle, state=m.FormState.CONFIRMED, lines=[],
                periods={r: {"self_use": f"{per_rate[i]:.3f}"} for i, r in enumerate(RATES)},
                generation_kwh=per_rate.sum().round(3), self_use_kwh=per_rate.sum().round(3), export_kwh=0,
                grid_kwh=0)
            assert await bills.issue_bills("2026-04", now=night, apps=notify_apps) == 1
            assert (await prepaid.tick(night, device, apps=notify_apps))["prepaid_true_ups"] == 1
            bill = await m.Bill.get(cycle=cycle)
            charged = await charged_by_day(account)
            march_charged = sum(charged[d] for d in march)
            true_up = await m.PrepaidEntry.get(account_id=account.id, kind=m.EntryKind.TRUE_UP)
            # prepaid and postpaid take the same money for the same energy, to the fen
            assert march_charged - true_up.amount_fen == bill.total_fen
            assert (bill.state, bill.paid_fen) == (m.BillState.PAID, bill.total_fen)
            # without the registers' extra 2.5 kWh the daily charges are exactly the bill
            same_energy = sum(kwh_per_rate(d, profiles[d]) for d in march)
            assert march_charged == int(price_cycle(TERMS, rate_prices(dt.date(2026, 3, 31)),
                                                    [same_energy]).total_fen[0])
            assert true_up.amount_fen < 0  # 2.5 kWh of peak more: the true-up takes a little
            expected_true_up = true_up.amount_fen
            await check_thresholds(night)

    # every day's deduction is billing_engine's figure for that day
    expected = expected_daily_fen(list(profiles), profiles)
    charged = await charged_by_day(account)
    assert set(charged) <= set(expected) and len(expected) == DAYS
    # days cut off all day cost nothing and have no entry
    assert {d: charged.get(d, 0) for d in expected} == expected
    assert [d for d in expected if d not in charged] == [d for d in expected if not profiles[d].any()] != []

    # warning, cut-off notice, cut-off and restore: each once, in that order, at the right moment
    assert moments["warning"] < moments["notice"] < moments["cut_off"] < on_from
    acc = await m.PrepaidAccount.get(id=account.id)
    assert device.executed_actions(serial) == ["cut_off", "restore"]
    commands = await m.SupplyCommand.filter(account_id=account.id).order_by("id")
    assert [(c.kind, c.state) for c in commands] == [(m.CommandKind.CUT_OFF, m.CommandState.ACKNOWLEDGED),
                                                     (m.CommandKind.RESTORE, m.CommandState.ACKNOWLEDGED)]
    # the notice came in the night: it went out at 08:00 and the grace period ran from then; the
    # cut-off came at the first tick after it (09:00 or 15:00, outside the quiet hours)
    notice = await OutboxMessage.get(event="CutOffPending")
    assert notice.not_before == (outbox.quiet_until(moments["notice"]) or moments["notice"])
    due = notice.not_before + dt.timedelta(hours=GRACE_HOURS)
    assert acc.cutoff_due_at is None and due <= moments["cut_off"] < due + dt.timedelta(hours=18)
    assert commands[0].created_at == moments["cut_off"]
    # the restore was sent at the top-up itself
    assert on_from == local(2026, 4, 5, 10)
    for event, count in (("LowBalance", 1), ("CutOffPending", 1), ("SupplyCutOff", 1), ("SupplyRestored", 1),
                         ("TopUpReceived", 2)):
        assert await _owner_rows(event, identity) == count, event
    assert await OutboxMessage.filter(event="DeviceAlarm").count() == 0
    assert (acc.alert_state, acc.supply) == (m.AlertState.NORMAL, m.SupplyState.ON)

    # the final balance to the fen: top-ups − daily charges − the true-up
    assert acc.available_fen == sum(TOPUPS.values()) - sum(expected.values()) + expected_true_up
    assert acc.available_fen == await ledger_sum(acc)
    summary = await prepaid.balance(account.id)
    assert summary["balance_fen"] - summary["charges_fen"] == summary["available_fen"] == acc.available_fen
    assert summary["balance_fen"] == sum(TOPUPS.values())
