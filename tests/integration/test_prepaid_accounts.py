"""Prepaid accounts beyond the daily cycle: paying for others, several utilities on one statement,
cycles settled for good, and bad input refused without a change."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import threading

import numpy as np
import pytest
from pay_support import fake_pay, pay_port  # noqa: F401
from prepaid_support import (
    RATES,
    charged_by_day,
    day_rows,
    device,  # noqa: F401
    ledger_sum,
    local,
    notify,
    prepaid_site,
    top_up,
)

import billing_engine
from settlement.billing import bills
from settlement.prepaid import accounts as prepaid
from settlement import models as m
from settlement.errors import Forbidden, InvalidInput, NotFound
from settlement.models import OutboxMessage

WATER = {"format": "pvsettle-tariff/1", "name": "Water", "periods": ["flat"],
         "versions": [{"effective_from": "2025-01-01",
                       "seasons": [{"name": "all", "months": list(range(1, 13)), "weekday": "all"}],
                       "day_schedules": {"all": [["00:00", "24:00", "flat"]]},
                       "prices": {"flat": "4.20"}, "fixed_monthly": "6.00", "vat_rate": "0.09"}]}
GAS = {"format": "pvsettle-tariff/1", "name": "Gas", "periods": ["flat"],
       "versions": [{"effective_from": "2025-01-01",
                     "seasons": [{"name": "all", "months": list(range(1, 13)), "weekday": "all"}],
                     "day_schedules": {"all": [["00:00", "24:00", "flat"]]},
                     "prices": {"flat": "3.05"}, "vat_rate": "0.09",
                     "tiers": {"basis": "monthly", "blocks": [{"up_to_kwh": 30, "adder": "0"},
                                                              {"up_to_kwh": None, "adder": "0.61"}]}}]}
DAY = dt.date(2026, 3, 2)


async def _someone(settings, **kw) -> m.WechatIdentity:
    return await m.WechatIdentity.create(app_id=settings.mp_appid, openid=f"o-other-{secrets.token_hex(4)}", **kw)


async def test_a_family_member_with_the_pay_right_tops_up_and_the_owner_is_told_who(
        settings, device, pay_port, fake_pay, notify_apps):  # noqa: F811
    site = await prepaid_site(settings, device)
    daughter = await _someone(settings, nickname="小王")
    await m.PlantAccess.create(plant=site["plant"], identity=daughter, right=m.PlantRight.PAY)
    at = local(2026, 3, 2, 10)
    _, note = await top_up(pay_port, fake_pay, site["account"], daughter, 20000, at)
    assert (await notify(pay_port, note, at, apps=notify_apps)).status == 204
    entry = await m.PrepaidEntry.get(account_id=site["account"].id, kind=m.EntryKind.TOPUP)
    assert (entry.amount_fen, entry.payer_id) == (20000, daughter.id)
    told = await OutboxMessage.get(event="TopUpReceived", recipient=site["identity"].openid)
    assert told.payload["context"]["what"].startswith("小王充值")
    assert (await m.Payment.get(id=entry.payment_id)).payer_id == daughter.id


async def test_the_top_up_notice_never_shows_a_piece_of_the_payers_openid(
        settings, device, pay_port, fake_pay, notify_apps):  # noqa: F811
    # issue #24 point 6: it read "微信用户hter"
    site = await prepaid_site(settings, device)
    letters = "GHJKLMNQRSTUVWXYZ"  # not in field keys, amounts or account numbers: only the openid could match
    at = local(2026, 3, 2, 10)
    for n, nickname in enumerate((None, "", "  \t ", "小\x07王", "OPENID", "张三李四王五赵六钱七", "阿明")):
        openid = "o" + "".join(secrets.choice(letters) for _ in range(27))
        payer = await m.WechatIdentity.create(app_id=settings.mp_appid, openid=openid,
                                              nickname=openid if nickname == "OPENID" else nickname)
        await m.PlantAccess.create(plant=site["plant"], identity=payer, right=m.PlantRight.PAY)
        _, note = await top_up(pay_port, fake_pay, site["account"], payer, 1000 + n, at + dt.timedelta(minutes=n))
        assert (await notify(pay_port, note, at + dt.timedelta(minutes=n), apps=notify_apps)).status == 204
        payment = await m.Payment.get(payer_id=payer.id)
        told = await OutboxMessage.get(dedupe_key__startswith=f"prepaid:{site['account'].id}:topup:{payment.id}:")
        shown = json.dumps([told.payload["data"], told.payload["oa_data"], told.payload["context"]["what"]],
                           ensure_ascii=False)
        assert not any(openid[i:i + 3] in shown for i in range(len(openid) - 2)), (nickname, shown)
        what = told.payload["context"]["what"]
        expected = {"张三李四王五赵六钱七": "张三李四王五赵…", "阿明": "阿明"}.get(nickname, "微信用户")
        assert what.startswith(f"{expected}充值，余额"), what
        assert len(told.payload["data"]["thing5"]) <= 20 and told.payload["data"]["thing5"].endswith("元")


async def test_who_may_top_up(settings, device, pay_port):  # noqa: F811
    site = await prepaid_site(settings, device)
    number = site["account"].number
    stranger = await _someone(settings)
    viewer = await _someone(settings)
    await m.PlantAccess.create(plant=site["plant"], identity=viewer, right=m.PlantRight.VIEW)
    with pytest.raises(NotFound):
        await prepaid.start_topup(pay_port, number, stranger.id, 1000)
    with pytest.raises(Forbidden):
        await prepaid.start_topup(pay_port, number, viewer.id, 1000)
    with pytest.raises(NotFound):
        await prepaid.start_topup(pay_port, "PA0000000000", site["identity"].id, 1000)
    for bad in (0, -5, 10**9, 12.5, True):
        with pytest.raises(InvalidInput):
            await prepaid.start_topup(pay_port, number, site["identity"].id, bad)
    assert not await m.TopUpOrder.filter(account_id=site["account"].id).exists()
    # the owner lets anyone who knows the number pay
    await m.PrepaidAccount.filter(id=site["account"].id).update(allow_pay_by_number=True)
    start = await prepaid.start_topup(pay_port, number, stranger.id, 1000)
    assert start.out_trade_no.startswith("T") and start.amount_fen == 1000
    assert (await prepaid.start_topup(pay_port, number, viewer.id, 500)).amount_fen == 500


def _tariff_money(doc: dict, month_start: dt.date, intervals: np.ndarray) -> int:
    """billing_engine's figure for the span from the month's start [fen]."""
    if not intervals.size:
        return 0
    tariff = billing_engine.parse_tariff(doc)
    return int(billing_engine.bill(tariff, intervals, np.datetime64(month_start.isoformat(), "m"), 15).total_fen[0])


async def test_electricity_water_and_gas_on_one_statement(settings, device, pay_port, fake_pay,  # noqa: F811
                                                          notify_apps):
    site = await prepaid_site(settings, device)
    account = site["account"]
    await m.Tariff.create(code="water-2025", name="Water", effective_from=dt.date(2025, 1, 1), document=WATER)
    await m.Tariff.create(code="gas-2025", name="Gas", effective_from=dt.date(2025, 1, 1), document=GAS)
    water = await prepaid.add_service(account.id, "水", m.Utility.WATER, "m3", tariff_code="water-2025")
    gas = await prepaid.add_service(account.id, "燃气", m.Utility.GAS, "m3", tariff_code="gas-2025")
    with pytest.raises(InvalidInput):
        await prepaid.add_service(account.id, "水2", m.Utility.WATER, "kWh", tariff_code="water-2025")
    with pytest.raises(NotFound):
        await prepaid.add_service(account.id, "水3", m.Utility.WATER, "m3", tariff_code="nope")
    at = local(2026, 3, 1, 8)
    _, note = await top_up(pay_port, fake_pay, account, site["identity"], 500000, at)
    await notify(pay_port, note, at, apps=notify_apps)

    rng = np.random.default_rng(3)
    use = {"电": rng.integers(0, 2000, (3, 96)) / 1000, "水": rng.integers(0, 80, (3, 96)) / 1000,
           "燃气": rng.integers(0, 300, (3, 96)) / 1000}  # gas crosses its 30 m3 tier on the second day
    for n in range(3):
        day = dt.date(2026, 3, 1) + dt.timedelta(days=n)
        night = local(2026, 3, 2 + n, 0, 30)
        for service, name in ((site["service"], "电"), (water, "水"), (gas, "燃气")):
            await prepaid.record_usage(service.id, day_rows(day, use[name][n]), now=night, apps=notify_apps)

    statement = await prepaid.statement(account.id)
    services = {s["name"]: s for s in statement["services"]}
    assert [(s["utility"], s["unit"]) for s in statement["services"]] == \
        [("electricity", "kWh"), ("water", "m3"), ("gas", "m3")]
    for name, doc in (("水", WATER), ("燃气", GAS)):
        # the service's days add up to billing_engine's figure for the three days together
        assert services[name]["charged_fen"] == _tariff_money(doc, dt.date(2026, 3, 1), use[name].ravel())
        assert services[name]["quantity"] == pytest.approx(use[name].sum(), abs=1e-9)
    gas_days = [-e.amount_fen for e in await m.PrepaidEntry.filter(service_id=gas.id).order_by("day")]
    assert gas_days == [_tariff_money(GAS, dt.date(2026, 3, 1), use["燃气"][:n + 1].ravel())
                        - _tariff_money(GAS, dt.date(2026, 3, 1), use["燃气"][:n].ravel()) for n in range(3)]
    total = sum(s["charged_fen"] for s in statement["services"])
    assert statement["account"]["available_fen"] == 500000 - total == await ledger_sum(account)
    assert [e["kind"] for e in statement["entries"]].count("charge") == 9
    assert statement["entries"][-1]["available_after_fen"] == statement["account"]["available_fen"]


async def test_usage_of_a_settled_cycle_is_not_charged_again(settings, device, pay_port, fake_pay,  # noqa: F811
                                                             notify_apps):
    site = await prepaid_site(settings, device, reading_day=2)
    service = site["service"]
    profile = np.full(96, 0.5)
    await prepaid.record_usage(service.id, day_rows(DAY, profile), now=local(2026, 3, 3, 1), apps=notify_apps)
    cycle = await m.ReadingCycle.create(plant=site["plant"], period="2026-04", starts_at=local(2026, 3, 2),
                                        ends_at=local(2026, 4, 2))
    await m.ConfirmationForm.create(cycle=cycle, state=m.FormState.CONFIRMED, lines=[],
                                    periods={r: {"self_use": "12.000"} for r in RATES}, generation_kwh=48,
                                    self_use_kwh=48, export_kwh=0, grid_kwh=0)
    assert await bills.issue_bills("2026-04", now=local(2026, 4, 3), apps=notify_apps) == 1
    await prepaid.tick(local(2026, 4, 3, 9), apps=notify_apps)
    bill = await m.Bill.get(cycle=cycle)
    before = await charged_by_day(site["account"])
    late = profile.copy()
    late[40] = 7.0
    await prepaid.record_usage(service.id, day_rows(DAY, late)[40:41], now=local(2026, 4, 5), apps=notify_apps)
    assert await charged_by_day(site["account"]) == before
    true_up = await m.PrepaidEntry.get(account_id=site["account"].id, kind=m.EntryKind.TRUE_UP)
    assert sum(before.values()) - true_up.amount_fen == bill.total_fen
    assert (await m.Bill.get(id=bill.id)).state == m.BillState.PAID


async def test_bad_usage_is_refused_and_changes_nothing(db, settings, device, notify_apps):  # noqa: F811
    site = await prepaid_site(settings, device)
    good = day_rows(DAY, np.full(96, 0.5))
    now = local(2026, 3, 3, 1)
    for rows in (good[:10] + [(good[10][0], "-1")], good[:10] + [(good[10][0], "NaN")],
                 good[:10] + [(dt.datetime(2026, 3, 2, 10, 7), "1")], good[:10] + [("yesterday", "1")],
                 good[:10] + [(good[10][0] + dt.timedelta(minutes=5), "1")], good[:10] + [(good[10][0], "1e9")],
                 good[:10] + [(local(2026, 3, 4), "1")], good[:10] + [(good[10][0],)], good[:10] + [None]):
        with pytest.raises(InvalidInput):
            await prepaid.record_usage(site["service"].id, rows, now=now, apps=notify_apps)
    assert not await m.PrepaidUsage.filter(service_id=site["service"].id).exists()
    assert not await m.PrepaidEntry.filter(account_id=site["account"].id).exists()
    with pytest.raises(NotFound):
        await prepaid.record_usage(999999, good, now=now, apps=notify_apps)


async def test_the_scheduler_tick_cuts_off_when_due_through_the_process_device(
        settings, device, pay_port, fake_pay, notify_apps):  # noqa: F811
    from server import scheduler

    site = await prepaid_site(settings, device, grace_hours=1)
    at = local(2026, 3, 2, 7)
    _, note = await top_up(pay_port, fake_pay, site["account"], site["identity"], 1000, at)
    await notify(pay_port, note, at, apps=notify_apps)
    await prepaid.record_usage(site["service"].id, day_rows(DAY, np.full(96, 1.0)), now=local(2026, 3, 3, 0, 30),
                               apps=notify_apps)
    # the notice went out at 08:00: grace until 09:00
    early = await scheduler.tick(local(2026, 3, 3, 8, 30), device=device, notify=notify_apps)
    done = await scheduler.tick(local(2026, 3, 3, 9), device=device, notify=notify_apps)
    assert early["prepaid_evaluated"] == 0 and early["commands_acknowledged"] == 0
    assert done["commands_acknowledged"] == 1
    assert device.executed_actions(site["meter"].serial) == ["cut_off"]


async def test_annual_tier_blocks_count_the_earlier_months_of_the_year(db, settings, device, notify_apps):  # noqa: F811
    site = await prepaid_site(settings, device)
    doc = {**WATER, "versions": [{**WATER["versions"][0], "fixed_monthly": "0",
                                  "tiers": {"basis": "annual", "blocks": [{"up_to_kwh": 10, "adder": "0"},
                                                                          {"up_to_kwh": None, "adder": "1.00"}]}}]}
    await m.Tariff.create(code="water-annual", name="Water", effective_from=dt.date(2025, 1, 1), document=doc)
    water = await prepaid.add_service(site["account"].id, "水", m.Utility.WATER, "m3", tariff_code="water-annual")
    january, february = np.zeros(96), np.zeros(96)
    january[40], february[40] = 8.0, 5.0
    await prepaid.record_usage(water.id, day_rows(dt.date(2026, 1, 15), january), now=local(2026, 1, 16),
                               apps=notify_apps)
    await prepaid.record_usage(water.id, day_rows(dt.date(2026, 2, 2), february), now=local(2026, 2, 3),
                               apps=notify_apps)
    charged = await charged_by_day(site["account"])
    tariff = billing_engine.parse_tariff(doc)
    feb = np.concatenate([np.zeros(96), february])  # from the 1st of the month
    expected = int(billing_engine.bill(tariff, feb, np.datetime64("2026-02-01T00:00"), 15, ytd_kwh=8).total_fen[0])
    assert charged[dt.date(2026, 2, 2)] == expected == round((5 * 4.20 + 3 * 1.00) * 100)


async def test_usage_is_priced_in_a_thread_and_posted_on_the_loop(db, settings, device, monkeypatch,  # noqa: F811
                                                                  notify_apps):
    site = await prepaid_site(settings, device)
    await m.Tariff.create(code="water-2025", name="Water", effective_from=dt.date(2025, 1, 1), document=WATER)
    water = await prepaid.add_service(site["account"].id, "水", m.Utility.WATER, "m3", tariff_code="water-2025")
    threads = []
    priced = prepaid.cumulative_fen

    def priced_where(*args):
        threads.append(threading.current_thread())
        return priced(*args)

    monkeypatch.setattr(prepaid, "cumulative_fen", priced_where)
    use = np.zeros(96)
    use[40] = 5.0
    await prepaid.record_usage(water.id, day_rows(dt.date(2026, 3, 1), use), now=local(2026, 3, 2), apps=notify_apps)
    assert threads and threading.current_thread() not in threads
    charged = await charged_by_day(site["account"])
    assert charged[dt.date(2026, 3, 1)] == _tariff_money(WATER, dt.date(2026, 3, 1), use)


async def test_a_bill_of_a_cycle_the_account_never_charged_stays_postpaid(db, settings, device,  # noqa: F811
                                                                          notify_apps):
    site = await prepaid_site(settings, device)
    cycle = await m.ReadingCycle.create(plant=site["plant"], period="2026-02", starts_at=local(2026, 1, 1),
                                        ends_at=local(2026, 2, 1))
    await m.ConfirmationForm.create(cycle=cycle, state=m.FormState.CONFIRMED, lines=[],
                                    periods={r: {"self_use": "10.000"} for r in RATES}, generation_kwh=40,
                                    self_use_kwh=40, export_kwh=0, grid_kwh=0)
    await prepaid.record_usage(site["service"].id, day_rows(DAY, np.full(96, 0.5)), now=local(2026, 3, 3, 1),
                               apps=notify_apps)
    assert await bills.issue_bills("2026-02", now=local(2026, 3, 3, 2), apps=notify_apps) == 1
    assert (await prepaid.tick(local(2026, 3, 3, 9), apps=notify_apps))["prepaid_true_ups"] == 0
    bill = await m.Bill.get(cycle=cycle)
    assert (bill.state, bill.paid_fen) == (m.BillState.OPEN, 0)
    assert not await m.PrepaidEntry.filter(kind=m.EntryKind.TRUE_UP).exists()
