"""Outages (settlement.telemetry.outages): opened only while the sun is up, closed by production, alarms for staff.

The plant is in Shanghai; the sun is at least 10° up from 05:45 to 18:03 local time on 2026-06-15,
and from 05:46 on 2026-06-16.
"""

from __future__ import annotations

import datetime as dt

import pytest

from settlement import models as m
from settlement.telemetry import outages
from settlement.telemetry.outages import (SILENCE, check_outages, mark_outage_alarms_notified, outage_alarms_due,
                                send_outage_alarms)
from tests.integration.test_telemetry_ingest import ingest, local, make_plant, sample


def every_5_minutes(start: str, end: str, energy: int = 1_000_000, power: int = 3000, step_wh: int = 250,
                    **extra) -> list[dict]:
    rows, when = [], local(start)
    while when <= local(end):
        rows.append(sample(when.strftime("%Y-%m-%d %H:%M"), energy, power, **extra))
        energy += step_wh
        when += dt.timedelta(minutes=5)
    return rows


async def check(at: str) -> dict[str, int]:
    return await check_outages(local(at))


@pytest.fixture
async def plant(db):
    return await make_plant("PV-O", {"INV-1": 8000})


async def test_a_plant_that_stops_at_noon_has_an_outage_until_it_produces_again(plant):
    await ingest(every_5_minutes("2026-06-15 09:00", "2026-06-15 12:00"), now="2026-06-15 12:00:30")
    assert await check("2026-06-15 12:20") == {"outages_opened": 0, "outages_closed": 0}  # 20 minutes: not yet
    assert await check("2026-06-15 12:31") == {"outages_opened": 1, "outages_closed": 0}
    assert await check("2026-06-15 12:40") == {"outages_opened": 0, "outages_closed": 0}  # no second one
    outage = await m.PlantOutage.get(plant=plant)
    assert (outage.cause, outage.started_at, outage.ended_at) == ("silent", local("2026-06-15 12:05"), None)
    assert (outage.notified, outage.end_notified, outage.detail) == ("pending", None, "最后发电 2026-06-15 12:00")
    assert outage.detected_at == local("2026-06-15 12:31")

    # a sample without production (the logger is back, the inverter is not) does not end it
    await ingest([sample("2026-06-15 13:00", 1_009_000, 0)], now="2026-06-15 13:00:10")
    assert await check("2026-06-15 13:05") == {"outages_opened": 0, "outages_closed": 0}
    await ingest(every_5_minutes("2026-06-15 14:05", "2026-06-15 14:30", energy=1_009_100), now="2026-06-15 14:31")
    assert await check("2026-06-15 14:32") == {"outages_opened": 0, "outages_closed": 1}
    outage = await m.PlantOutage.get(plant=plant)
    assert (outage.ended_at, outage.end_notified) == (local("2026-06-15 14:05"), "pending")
    assert [e.action for e in await m.AuditEvent.filter(entity="plant_outage").order_by("id")] == [
        "OpenOutage", "CloseOutage"]


async def test_an_outage_starts_where_production_stopped_not_at_the_last_producing_sample(plant):
    # every 15 minutes until 12:00: the 12:15 sample did not come, so production stopped by then
    rows, energy = [], 1_000_000
    for i in range(13):  # 09:00 … 12:00
        rows.append(sample((local("2026-06-15 09:00") + dt.timedelta(minutes=15 * i)).strftime("%Y-%m-%d %H:%M"),
                           energy, 3000))
        energy += 750
    await ingest(rows, now="2026-06-15 12:00:30")
    assert (await check("2026-06-15 12:31"))["outages_opened"] == 1
    assert (await m.PlantOutage.get(plant=plant)).started_at == local("2026-06-15 12:15")


async def test_a_sample_without_production_is_where_the_outage_starts(plant):
    await ingest(every_5_minutes("2026-06-15 09:00", "2026-06-15 12:00")
                 + [sample("2026-06-15 12:02", 1_009_000, 0)], now="2026-06-15 12:02:30")
    assert (await check("2026-06-15 12:40"))["outages_opened"] == 1
    assert (await m.PlantOutage.get(plant=plant)).started_at == local("2026-06-15 12:02")


async def test_night_is_no_outage_and_a_plant_that_wakes_with_the_sun_has_none(plant):
    await ingest(every_5_minutes("2026-06-15 15:00", "2026-06-15 17:50"), now="2026-06-15 17:51")
    for at in ("2026-06-15 18:30", "2026-06-15 23:00", "2026-06-16 03:00", "2026-06-16 06:10"):
        assert await check(at) == {"outages_opened": 0, "outages_closed": 0}, at
    await ingest(every_5_minutes("2026-06-16 06:05", "2026-06-16 07:00", energy=1_020_000), now="2026-06-16 07:01")
    assert await check("2026-06-16 07:05") == {"outages_opened": 0, "outages_closed": 0}
    assert await m.PlantOutage.all().count() == 0


async def test_a_plant_that_does_not_wake_up_has_an_outage_from_sunrise(plant):
    await ingest(every_5_minutes("2026-06-15 15:00", "2026-06-15 17:50"), now="2026-06-15 17:51")
    assert await check("2026-06-16 06:15") == {"outages_opened": 0, "outages_closed": 0}  # 29 minutes of sun
    assert await check("2026-06-16 06:16") == {"outages_opened": 1, "outages_closed": 0}
    assert (await m.PlantOutage.get(plant=plant)).started_at == local("2026-06-16 05:46")


async def test_a_fault_status_opens_a_fault_outage(plant):
    await ingest(every_5_minutes("2026-06-15 09:00", "2026-06-15 10:00")
                 + every_5_minutes("2026-06-15 10:05", "2026-06-15 10:45", energy=1_003_250, power=0, step_wh=0,
                                   status="fault"), now="2026-06-15 10:46")
    assert await check("2026-06-15 10:46") == {"outages_opened": 1, "outages_closed": 0}
    outage = await m.PlantOutage.get(plant=plant)
    assert (outage.cause, outage.started_at, outage.detail) == ("fault", local("2026-06-15 10:05"), "设备故障: INV-1")
    await ingest([sample("2026-06-15 11:00", 1_003_400, 2000)], now="2026-06-15 11:00:20")
    assert await check("2026-06-15 11:01") == {"outages_opened": 0, "outages_closed": 1}
    assert (await m.PlantOutage.get(plant=plant)).ended_at == local("2026-06-15 11:00")


async def test_a_late_batch_closes_the_outage_when_production_really_resumed(plant):
    await ingest(every_5_minutes("2026-06-15 09:00", "2026-06-15 12:00"), now="2026-06-15 12:00:30")
    assert (await check("2026-06-15 12:45"))["outages_opened"] == 1
    # the uplink was down, the inverter was not: its buffer arrives at 16:00
    await ingest(every_5_minutes("2026-06-15 12:05", "2026-06-15 16:00", energy=1_009_250), now="2026-06-15 16:00:30")
    assert (await check("2026-06-15 16:01"))["outages_closed"] == 1
    outage = await m.PlantOutage.get(plant=plant)
    assert (outage.started_at, outage.ended_at) == (local("2026-06-15 12:05"), local("2026-06-15 12:05"))
    # no length: nothing happened, so the alarm not sent yet is void, and nothing is due
    assert (outage.notified, outage.end_notified) == ("void", "void")
    assert await outage_alarms_due() == []
    close = await m.AuditEvent.get(action="CloseOutage")
    assert close.after == {"ended_at": "2026-06-15T04:05:00+00:00", "alarm": "void"}


async def test_staff_told_of_an_outage_of_no_length_are_told_it_ended(plant):
    await ingest(every_5_minutes("2026-06-15 09:00", "2026-06-15 12:00"), now="2026-06-15 12:00:30")
    await check("2026-06-15 12:45")
    await mark_outage_alarms_notified(await outage_alarms_due(), at=local("2026-06-15 12:46"))
    await ingest(every_5_minutes("2026-06-15 12:05", "2026-06-15 13:00", energy=1_009_250), now="2026-06-15 13:00:30")
    assert (await check("2026-06-15 13:01"))["outages_closed"] == 1
    assert [(a.kind, a.ended_at) for a in await outage_alarms_due()] == [("ended", local("2026-06-15 12:05"))]


async def test_a_plant_that_never_produced_is_out_from_its_first_sample_and_one_without_samples_is_not_judged(db):
    broken = await make_plant("PV-B", {"INV-B": 5000})
    await make_plant("PV-N", {"INV-N": 5000})  # never sent anything
    await ingest(every_5_minutes("2026-06-15 09:00", "2026-06-15 10:00", device="INV-B", power=0, step_wh=0,
                                 status="fault"), now="2026-06-15 10:01")
    assert await check("2026-06-15 10:01") == {"outages_opened": 1, "outages_closed": 0}
    outage = await m.PlantOutage.get()
    assert (outage.plant_id, outage.started_at, outage.cause) == (broken.id, local("2026-06-15 09:00"), "fault")


async def test_staff_alarms_wait_for_the_outbox_and_are_marked_once(plant):
    await ingest(every_5_minutes("2026-06-15 09:00", "2026-06-15 12:00"), now="2026-06-15 12:00:30")
    await check("2026-06-15 12:45")
    alarms = await outage_alarms_due()
    assert [(a.kind, a.plant_code, a.what, a.started_at, a.dedupe_key.endswith(":opened")) for a in alarms] == [
        ("opened", "PV-O", "无数据上报", local("2026-06-15 12:05"), True)]
    assert await mark_outage_alarms_notified(alarms, at=local("2026-06-15 12:46")) == 1
    assert await mark_outage_alarms_notified(alarms) == 0
    assert await outage_alarms_due() == []
    await ingest([sample("2026-06-15 13:00", 1_009_250, 2500)], now="2026-06-15 13:00:30")
    await check("2026-06-15 13:01")
    alarms = await outage_alarms_due()
    assert [(a.kind, a.what, a.ended_at) for a in alarms] == [("ended", "已恢复发电", local("2026-06-15 13:00"))]
    await mark_outage_alarms_notified(alarms)
    outage = await m.PlantOutage.get(plant=plant)
    assert (outage.notified, outage.notified_at, outage.end_notified) == (
        "notified", local("2026-06-15 12:46"), "notified")
    assert SILENCE == dt.timedelta(minutes=30)


@pytest.fixture
async def staff_on_wechat(plant, settings):
    """One active staff member on the official account, and one who left (no alarms for them)."""
    on_duty = await m.Staff.create(name="值班员", role=m.StaffRole.OPERATOR)
    left = await m.Staff.create(name="已离职", role=m.StaffRole.OPERATOR, active=False)
    await m.WechatIdentity.create(app_id=settings.oa_appid, openid="staff-oa", staff=on_duty)
    await m.WechatIdentity.create(app_id=settings.oa_appid, openid="left-oa", staff=left)


async def _alarm_rows() -> list[tuple[str, str, str, dict]]:
    return [(r.event, r.recipient, r.template, r.payload["data"])
            for r in await m.OutboxMessage.filter(template="outage_alarm").order_by("id")]


async def test_an_outage_alarms_staff_once_through_the_outbox_and_its_end_and_a_new_one_too(plant, staff_on_wechat,
                                                                                            notify_apps):
    await ingest(every_5_minutes("2026-06-15 09:00", "2026-06-15 12:00"), now="2026-06-15 12:00:30")
    assert await send_outage_alarms(local("2026-06-15 12:30"), apps=notify_apps) == 0  # nothing open yet
    await check("2026-06-15 12:45")
    assert await send_outage_alarms(local("2026-06-15 12:46"), apps=notify_apps) == 1
    opened = ("OutageOpened", "staff-oa", "outage_alarm",
              {"thing1": "PV-O", "character_string2": "PV-O", "time3": "2026年06月15日 12:05", "thing4": "无数据上报"})
    assert await _alarm_rows() == [opened]
    # the next ticks, and another check while it is still out, write nothing more
    assert await send_outage_alarms(local("2026-06-15 12:50"), apps=notify_apps) == 0
    await check("2026-06-15 12:55")
    assert await send_outage_alarms(local("2026-06-15 12:56"), apps=notify_apps) == 0
    assert await _alarm_rows() == [opened]
    outage = await m.PlantOutage.get(plant=plant)
    assert (outage.notified, outage.notified_at, outage.end_notified) == ("notified", local("2026-06-15 12:46"), None)

    # production resumes: one "ended" alarm at the time it resumed
    await ingest([sample("2026-06-15 13:00", 1_009_250, 2500)], now="2026-06-15 13:00:30")
    await check("2026-06-15 13:01")
    assert await send_outage_alarms(local("2026-06-15 13:02"), apps=notify_apps) == 1
    assert await send_outage_alarms(local("2026-06-15 13:03"), apps=notify_apps) == 0
    ended = ("OutageEnded", "staff-oa", "outage_alarm",
             {"thing1": "PV-O", "character_string2": "PV-O", "time3": "2026年06月15日 13:00", "thing4": "已恢复发电"})
    assert await _alarm_rows() == [opened, ended]

    # it stops again: a new outage, a new alarm (its own key), not the old one again; its one
    # sample since the last outage gives no interval, so the stop is 15 minutes after it
    await check("2026-06-15 13:40")
    assert await send_outage_alarms(local("2026-06-15 13:41"), apps=notify_apps) == 1
    assert (await _alarm_rows())[2:] == [(*opened[:3], {**opened[3], "time3": "2026年06月15日 13:15"})]
    assert await m.PlantOutage.filter(plant=plant).count() == 2


async def test_the_outbox_row_and_the_mark_commit_together(plant, staff_on_wechat, monkeypatch, notify_apps):
    await ingest(every_5_minutes("2026-06-15 09:00", "2026-06-15 12:00"), now="2026-06-15 12:00:30")
    await check("2026-06-15 12:45")

    async def mark_fails(alarms, at=None, using_db=None):
        raise RuntimeError("the database went away while marking")

    monkeypatch.setattr(outages, "mark_outage_alarms_notified", mark_fails)
    with pytest.raises(RuntimeError):
        await send_outage_alarms(local("2026-06-15 12:46"), apps=notify_apps)
    assert await _alarm_rows() == []  # rolled back with the mark
    monkeypatch.undo()
    assert await send_outage_alarms(local("2026-06-15 12:47"), apps=notify_apps) == 1
    assert len(await _alarm_rows()) == 1


async def test_a_plant_code_wechat_would_refuse_is_replaced_by_its_id(db, settings, staff_on_wechat, notify_apps):
    odd = await make_plant("电站 一号", {"INV-Z": 8000})
    await ingest(every_5_minutes("2026-06-15 09:00", "2026-06-15 12:00", device="INV-Z"), now="2026-06-15 12:00:30")
    await check("2026-06-15 12:45")
    await send_outage_alarms(local("2026-06-15 12:46"), apps=notify_apps)
    assert [(row[3]["thing1"], row[3]["character_string2"]) for row in await _alarm_rows()] == [
        ("电站 一号", f"PLANT-{odd.id}")]


async def test_the_scheduler_tick_opens_the_outage_and_alarms_staff(plant, staff_on_wechat, notify_apps):
    from server import scheduler

    await ingest(every_5_minutes("2026-06-15 09:00", "2026-06-15 12:00"), now="2026-06-15 12:00:30")
    done = await scheduler.tick(local("2026-06-15 12:45"), notify=notify_apps)
    assert (done["outages_opened"], done["outage_alarms"]) == (1, 1)
    assert (await scheduler.tick(local("2026-06-15 12:50"), notify=notify_apps))["outage_alarms"] == 0
    assert [row[:2] for row in await _alarm_rows()] == [("OutageOpened", "staff-oa")]
