"""Repeated tripping (settlement.telemetry.trips): episodes recorded by the check, one staff alarm per
episode through the outbox, the flag in the reliability report (``pvsettle outages`` lists them:
tests/e2e/test_telemetry_cli.py).

Trips are outage events, made here by hand at the times a sequence needs. The last test starts the
server app to check that the setting reaches its scheduler.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from decimal import Decimal

import pytest

from settlement import models as m
from settlement.telemetry.reliability import reliability_report
from settlement.telemetry.trips import TripRule, check_repeated_trips, send_trip_alarms
from tests.integration.test_telemetry_ingest import LOCAL, local
from tests.integration.test_telemetry_outages import plant, staff_on_wechat  # noqa: F401 (fixtures)


async def trip(p: m.Plant, start: str, hours: float = 1.0) -> None:
    """One outage of ``hours`` from ``start`` (local time)."""
    await m.PlantOutage.create(plant=p, cause=m.OutageCause.FAULT, started_at=local(start),
                               ended_at=local(start) + dt.timedelta(hours=hours), detected_at=local(start),
                               notified=m.AlarmState.NOTIFIED)


async def tick(at: str, apps, rule: TripRule = TripRule()) -> tuple[dict[str, int], int]:
    """What the scheduler's tick does for repeated trips at ``at``."""
    found = await check_repeated_trips(local(at), rule)
    return found, await send_trip_alarms(local(at), apps=apps)


async def alarms() -> list[tuple[str, dict]]:
    return [(r.recipient, r.payload["data"])
            for r in await m.OutboxMessage.filter(event="RepeatedTrips").order_by("id")]


async def test_two_trips_no_flag(plant, staff_on_wechat, notify_apps):
    await trip(plant, "2026-11-02 10:00")
    await trip(plant, "2026-11-03 10:00")
    assert await tick("2026-11-03 12:00", notify_apps) == ({"trip_episodes_opened": 0, "trip_episodes_extended": 0}, 0)
    assert await m.TripEpisode.all().count() == 0 and await alarms() == []


async def test_outages_of_no_length_are_no_trips(plant, staff_on_wechat, notify_apps):
    await trip(plant, "2026-11-02 10:00")
    await trip(plant, "2026-11-02 14:00")
    for at in ("2026-11-03 10:00", "2026-11-03 11:00"):  # closed at their start: a late sample, no trip
        await trip(plant, at, hours=0)
    assert await tick("2026-11-03 12:00", notify_apps) == ({"trip_episodes_opened": 0, "trip_episodes_extended": 0}, 0)
    await trip(plant, "2026-11-03 11:30")  # a real third one makes the episode
    assert (await tick("2026-11-03 12:00", notify_apps))[0]["trip_episodes_opened"] == 1


async def test_three_within_the_window_one_alarm_and_more_trips_no_more(plant, staff_on_wechat, notify_apps):
    for day in ("02", "04", "07"):
        await trip(plant, f"2026-11-{day} 10:00")
    assert await tick("2026-11-07 12:00", notify_apps) == ({"trip_episodes_opened": 1, "trip_episodes_extended": 0}, 1)
    episode = await m.TripEpisode.get(plant=plant)
    assert (episode.first_trip_at, episode.started_at, episode.trips, episode.ends_at, episode.notified) == (
        local("2026-11-02 10:00"), local("2026-11-07 10:00"), 3, local("2026-11-09 10:00"), "notified")
    assert await alarms() == [("staff-oa", {"thing1": "PV-O", "character_string2": "PV-O",
                                            "time3": "2026年11月07日 10:00", "thing4": "频繁跳闸: 7天内停运3次"})]
    # the next ticks, and a fourth trip while the count holds, add no alarm: one per episode
    assert await tick("2026-11-07 12:05", notify_apps) == ({"trip_episodes_opened": 0, "trip_episodes_extended": 0}, 0)
    await trip(plant, "2026-11-08 15:00")
    assert await tick("2026-11-08 17:00", notify_apps) == ({"trip_episodes_opened": 0, "trip_episodes_extended": 1}, 0)
    episode = await m.TripEpisode.get(plant=plant)
    assert (episode.trips, episode.last_trip_at, episode.ends_at) == (
        4, local("2026-11-08 15:00"), local("2026-11-11 10:00"))
    assert len(await alarms()) == 1
    assert [e.action for e in await m.AuditEvent.filter(entity="plant_trip_episode")] == ["FlagRepeatedTrips"]


async def test_three_spread_wider_than_the_window_none(plant, staff_on_wechat, notify_apps):
    for day in ("01", "05", "09"):
        await trip(plant, f"2026-11-{day} 10:00")
    assert await tick("2026-11-09 12:00", notify_apps) == ({"trip_episodes_opened": 0, "trip_episodes_extended": 0}, 0)
    assert await alarms() == []


async def test_a_new_episode_after_the_count_dropped_alarms_again(plant, staff_on_wechat, notify_apps):
    for when in ("2026-11-02 10:00", "2026-11-03 10:00", "2026-11-04 10:00"):
        await trip(plant, when)
    await tick("2026-11-04 12:00", notify_apps)
    # the episode ends on 11-09 10:00 (11-02 leaves the window); a trip on 11-09 20:00 counts
    # 11-03, 11-04 and itself: three again, after the count had dropped to two
    await trip(plant, "2026-11-09 20:00")
    assert await tick("2026-11-09 21:00", notify_apps) == ({"trip_episodes_opened": 1, "trip_episodes_extended": 0}, 1)
    assert [(e.started_at, e.trips) for e in await m.TripEpisode.filter(plant=plant).order_by("started_at")] == [
        (local("2026-11-04 10:00"), 3), (local("2026-11-09 20:00"), 3)]
    assert [a[1]["time3"] for a in await alarms()] == ["2026年11月04日 10:00", "2026年11月09日 20:00"]


async def test_an_episode_longer_than_the_look_back_is_followed_not_found_again(plant, staff_on_wechat):
    # a trip every two days for 50 days: one episode however far it goes back
    start = local("2026-09-01 10:00")
    for i in range(25):
        await m.PlantOutage.create(plant=plant, cause=m.OutageCause.SILENT, started_at=start + dt.timedelta(days=2 * i),
                                   detected_at=start, notified=m.AlarmState.NOTIFIED)
        await check_repeated_trips(start + dt.timedelta(days=2 * i, hours=1))
    assert [(e.started_at, e.trips) for e in await m.TripEpisode.filter(plant=plant)] == [
        (local("2026-09-05 10:00"), 25)]


async def test_the_setting_decides_and_the_scheduler_tick_does_it(plant, staff_on_wechat, notify_apps):
    from server import scheduler

    await trip(plant, "2026-11-02 10:00")
    await trip(plant, "2026-11-02 16:00")
    done = await scheduler.tick(local("2026-11-02 18:00"), TripRule(2, dt.timedelta(days=1)), notify=notify_apps)
    assert (done["trip_episodes_opened"], done["trip_alarms"]) == (1, 1)
    assert (await scheduler.tick(local("2026-11-02 18:05"), TripRule(2, dt.timedelta(days=1)),
                                 notify=notify_apps))["trip_alarms"] == 0


async def test_the_reliability_report_flags_the_plant(plant):
    for day in ("02", "04", "07"):
        await trip(plant, f"2026-11-{day} 10:00")
    await check_repeated_trips(local("2026-11-07 12:00"))
    report = await reliability_report("2026-11", now=local("2026-11-30 00:00"))
    [figures] = report["plants"]
    assert (figures["outages"], figures["trip_episodes"], figures["repeated_tripping"]) == (3, 1, True)
    assert report["portfolio"]["plants_tripping_repeatedly"] == 1
    october = await reliability_report("2026-10", now=local("2026-11-30 00:00"))
    assert (october["plants"][0]["repeated_tripping"], october["portfolio"]["plants_tripping_repeatedly"]) == (
        False, 0)


@pytest.mark.parametrize("environ, flagged", [
    ({}, False),  # the default, 3 trips in 7 days: two trips are no episode
    ({"PVSETTLE_REPEATED_TRIPS": "2", "PVSETTLE_REPEATED_TRIPS_DAYS": "1"}, True)])
async def test_the_trip_setting_reaches_the_trip_job_of_the_running_scheduler(settings, aiohttp_client, environ,
                                                                               flagged):
    """The settings of a server process, not a rule handed in: its scheduler's own pass (the
    trips job, through ``scheduler_ctx`` and its JobContext) decides by them."""
    from server import scheduler
    from server.app import create_app
    from settlement.infra import db as database
    from webapp.settings import Settings

    given = Settings.from_env(environ, require_secrets=False)
    settings = dataclasses.replace(settings, repeated_trips=given.repeated_trips,
                                   repeated_trips_days=given.repeated_trips_days,
                                   scheduler_interval=3600)  # one pass at start, the next an hour on
    # two trips of the last few hours (the job looks at the real clock), made before the server
    # starts so that its first pass sees them; a plant without telemetry devices, so that the
    # outage check before the trips job adds no trip of its own
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    await database.open_database(settings.database_url)
    try:
        owner = await m.Owner.create(name="丙")
        tripping = await m.Plant.create(code="PV-S1", name="三号", owner=owner, capacity_kwp=Decimal("10"))
        for hours_ago in (5, 3):
            start = now - dt.timedelta(hours=hours_ago)
            await m.PlantOutage.create(plant=tripping, cause=m.OutageCause.FAULT, started_at=start,
                                       ended_at=start + dt.timedelta(hours=1), detected_at=start,
                                       notified=m.AlarmState.NOTIFIED)
        on_duty = await m.Staff.create(name="值班员", role=m.StaffRole.OPERATOR)
        await m.WechatIdentity.create(app_id=settings.oa_appid, openid="staff-oa", staff=on_duty)
    finally:
        await database.close_database()

    client = await aiohttp_client(create_app(settings))
    last = f'pvsettle_scheduler_job_runs_total{{job="{scheduler.JOBS[-1].name}",outcome="ok"}} 1.0'
    for _ in range(600):  # the first pass is over once its last job is counted
        if last in (text := await (await client.get("/metrics")).text()):
            break
        await asyncio.sleep(0.05)
    assert last in text and 'pvsettle_scheduler_job_runs_total{job="trips",outcome="ok"} 1.0' in text, text

    episodes = await m.TripEpisode.filter(plant=tripping)
    if not flagged:
        assert episodes == [] and not await m.OutboxMessage.filter(event="RepeatedTrips").exists()
        return
    [episode] = episodes
    assert (episode.threshold, episode.window_s, episode.trips, episode.notified) == (2, 86400, 2, "notified")
    assert (episode.first_trip_at, episode.started_at) == (now - dt.timedelta(hours=5), now - dt.timedelta(hours=3))
    # one alarm, worded by the rule of the setting
    started = (now - dt.timedelta(hours=3)).astimezone(LOCAL).strftime("%Y年%m月%d日 %H:%M")
    assert await alarms() == [("staff-oa", {"thing1": "三号", "character_string2": "PV-S1", "time3": started,
                                            "thing4": "频繁跳闸: 1天内停运2次"})]
