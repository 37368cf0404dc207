"""``pvsettle report reliability``, ``pvsettle outages`` and ``pvsettle bench ingest`` as processes.

Episodes of repeated tripping are recorded in-process (the scheduler's check, called directly);
how the commands show them is what these tests look at, through the real console script."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from decimal import Decimal

import pytest

from settlement.infra import db
from settlement import models as m
from tests.conftest import DATABASE_URL, REDIS_URL
from tests.e2e.processes import PVSETTLE
from tests.integration.test_telemetry_ingest import LOCAL, local


def run(env: dict[str, str], *args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([PVSETTLE, *args], env=env, capture_output=True, text=True, timeout=300, cwd=cwd)


async def test_reliability_report_and_outages_for_staff(database_factory):
    url = await database_factory.migrated()
    await db.open_database(url)
    try:
        owner = await m.Owner.create(name="甲")
        plant = await m.Plant.create(code="PV-R1", name="一号", owner=owner, capacity_kwp=Decimal("10"))
        await m.PlantOutage.create(plant=plant, cause=m.OutageCause.FAULT, started_at=local("2026-06-10 09:00"),
                                   ended_at=local("2026-06-10 15:00"), detected_at=local("2026-06-10 09:31"))
        await m.PlantOutage.create(plant=plant, cause=m.OutageCause.SILENT, started_at=local("2026-06-30 22:00"),
                                   detected_at=local("2026-06-30 22:31"))
        device = await m.TelemetryDevice.create(plant=plant, serial="INV-R1", rated_power_w=10_000)
        for minute, energy in ((0, 1_000), (5, 1_400), (10, 1_900)):  # stored directly, as the seed does
            await m.TelemetrySample.create(device=device, ts=local(f"2026-06-10 16:{minute:02d}"),
                                           received_at=local("2026-06-10 16:30"), power_w=5000, energy_wh=energy)
    finally:
        await db.close_database()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVSETTLE_")}
    env["PVSETTLE_DATABASE_URL"] = url

    done = run(env, "report", "reliability", "--period", "2026-06", "--now", "2026-07-01T00:00+08:00")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    # one owner, 8 outage hours in 720: SAIFI 2, SAIDI 8 h, CAIDI 4 h, ASAI (720 − 8) / 720
    assert {k: report["portfolio"][k] for k in ("owners", "outages", "saifi", "saidi_hours", "caidi_hours", "asai")} == {
        "owners": 1, "outages": 2, "saifi": "2.0000", "saidi_hours": "8.00", "caidi_hours": "4.00", "asai": "0.9889"}
    assert [p["plant_code"] for p in report["plants"]] == ["PV-R1"]

    done = run(env, "outages")
    assert done.returncode == 0, done.stderr
    assert [(o["plant"], o["cause"], o["ended_at"]) for o in json.loads(done.stdout)["outages"]] == [
        ("PV-R1", "silent", None)]

    done = run(env, "telemetry", "rebuild", "--plant", "PV-R1")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"plants": 1, "samples": 3, "samples_changed": 2, "quarter_rollups": 2}
    done = run(env, "report", "reliability", "--period", "2026-06-10", "--plant", "PV-R1")
    assert json.loads(done.stdout)["plants"][0]["energy_kwh"] == "0.900"

    for args, says in ((["--period", "2026-13"], "YYYY-MM"), (["--period", "2026-06", "--plant", "NOPE"], "NOPE")):
        done = run(env, "report", "reliability", *args)
        assert done.returncode == 2 and says in done.stderr and "Traceback" not in done.stderr


async def test_outages_flag_a_plant_that_trips_repeatedly(database_factory):
    from settlement.telemetry.trips import check_repeated_trips

    url = await database_factory.migrated()
    await db.open_database(url)
    try:
        owner = await m.Owner.create(name="乙")
        plant = await m.Plant.create(code="PV-T1", name="二号", owner=owner, capacity_kwp=Decimal("10"))
        for when in ("2026-06-02 10:00", "2026-06-04 10:00", "2026-06-06 10:00"):
            await m.PlantOutage.create(plant=plant, cause=m.OutageCause.FAULT, started_at=local(when),
                                       ended_at=local(when.replace("10:00", "11:00")), detected_at=local(when))
        lone = await m.PlantOutage.create(plant=plant, cause=m.OutageCause.SILENT, started_at=local("2026-05-01 11:00"),
                                          ended_at=local("2026-05-01 12:30"), detected_at=local("2026-05-01 12:00"))
        steady = await m.Plant.create(code="PV-T2", name="三号", owner=owner, capacity_kwp=Decimal("10"))
        await m.PlantOutage.create(plant=steady, cause=m.OutageCause.FAULT, started_at=local("2026-06-03 10:00"),
                                   ended_at=local("2026-06-03 11:00"), detected_at=local("2026-06-03 10:00"))
        assert (await check_repeated_trips(local("2026-06-06 12:00")))["trip_episodes_opened"] == 1
    finally:
        await db.close_database()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVSETTLE_")}
    env["PVSETTLE_DATABASE_URL"] = url

    done = run(env, "outages")  # nothing open, the episode long over
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"outages": [], "repeated_trips": []}
    done = run(env, "outages", "--all")
    listed = json.loads(done.stdout)
    [episode] = listed["repeated_trips"]
    assert {k: episode[k] for k in ("plant", "trips", "threshold", "window_days", "started_at", "going_on",
                                    "notified")} == {
        "plant": "PV-T1", "trips": 3, "threshold": 3, "window_days": 7.0, "started_at": "2026-06-06T10:00:00+08:00",
        "going_on": False, "notified": "pending"}
    # each of the plant's outages names its episode; the other plant's one trip belongs to none
    assert [(o["plant"], o["started_at"][:10], o["repeated_trips"]) for o in listed["outages"]] == [
        ("PV-T1", "2026-06-06", episode["id"]), ("PV-T1", "2026-06-04", episode["id"]),
        ("PV-T2", "2026-06-03", None), ("PV-T1", "2026-06-02", episode["id"]), ("PV-T1", "2026-05-01", None)]
    assert lone.id == listed["outages"][-1]["id"]

    # the reliability report flags the plant in the month of its episode, and only that plant
    done = run(env, "report", "reliability", "--period", "2026-06", "--now", "2026-07-01T00:00+08:00")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [(p["plant_code"], p["outages"], p["trip_episodes"], p["repeated_tripping"]) for p in report["plants"]] == [
        ("PV-T1", 3, 1, True), ("PV-T2", 1, 0, False)]
    assert report["portfolio"]["plants_tripping_repeatedly"] == 1
    for args in (["--period", "2026-05"], ["--period", "2026-06", "--plant", "PV-T2"]):
        done = run(env, "report", "reliability", *args, "--now", "2026-07-01T00:00+08:00")
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["portfolio"]["plants_tripping_repeatedly"] == 0, args
        assert not any(p["repeated_tripping"] for p in report["plants"]), args
    done = run(env, "report", "reliability", "--period", "2026-06-06", "--plant", "PV-T1")  # a day of it
    assert json.loads(done.stdout)["plants"][0]["repeated_tripping"] is True


async def test_outages_list_repeated_tripping_going_on_now_under_its_own_rule(database_factory):
    """An episode that goes on is listed without --all, with the rule it was found under (here
    2 in 1 day, not the default), next to the open outage that belongs to it."""
    from settlement.telemetry.trips import TripRule, check_repeated_trips

    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    url = await database_factory.migrated()
    await db.open_database(url)
    try:
        owner = await m.Owner.create(name="丁")
        plant = await m.Plant.create(code="PV-T3", name="四号", owner=owner, capacity_kwp=Decimal("10"))
        await m.PlantOutage.create(plant=plant, cause=m.OutageCause.FAULT, started_at=now - dt.timedelta(hours=5),
                                   ended_at=now - dt.timedelta(hours=4), detected_at=now - dt.timedelta(hours=5))
        open_one = await m.PlantOutage.create(plant=plant, cause=m.OutageCause.SILENT,
                                              started_at=now - dt.timedelta(hours=2),
                                              detected_at=now - dt.timedelta(hours=1))
        found = await check_repeated_trips(now, TripRule(2, dt.timedelta(days=1)))
        assert found["trip_episodes_opened"] == 1
    finally:
        await db.close_database()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVSETTLE_")}
    env["PVSETTLE_DATABASE_URL"] = url

    done = run(env, "outages")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    [episode] = listed["repeated_trips"]
    assert {k: episode[k] for k in ("plant", "trips", "threshold", "window_days", "going_on", "notified")} == {
        "plant": "PV-T3", "trips": 2, "threshold": 2, "window_days": 1.0, "going_on": True, "notified": "pending"}
    assert dt.datetime.fromisoformat(episode["started_at"]) == now - dt.timedelta(hours=2)
    assert dt.datetime.fromisoformat(episode["ends_at"]) == now - dt.timedelta(hours=5) + dt.timedelta(days=1)
    assert [(o["id"], o["ended_at"], o["repeated_trips"]) for o in listed["outages"]] == [
        (open_one.id, None, episode["id"])]

    today = now.astimezone(LOCAL).date().isoformat()
    done = run(env, "report", "reliability", "--period", today)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [(p["plant_code"], p["trip_episodes"], p["repeated_tripping"]) for p in report["plants"]] == [
        ("PV-T3", 1, True)]
    assert report["portfolio"]["plants_tripping_repeatedly"] == 1


@pytest.mark.slow
def test_bench_ingest_prints_its_json(tmp_path):
    """A smoke run, not a measurement."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVSETTLE_")}
    env.update(PVSETTLE_REDIS_URL=REDIS_URL, PVSETTLE_DATABASE_URL=DATABASE_URL or f"sqlite://{tmp_path}/x.sqlite3")
    done = run(env, "bench", "ingest", "--plants", "20", "--batches", "2", "--batch-size", "100", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert set(result) == {"samples", "samples_per_s", "p99_batch_ms", "database", "collectors"}
    # four gateways by default, each posting its two timed batches of 100
    assert result["collectors"] == 4 and result["samples"] == 800
    assert result["samples_per_s"] > 0 and result["p99_batch_ms"] > 0
    assert result["database"] == ("postgres" if DATABASE_URL.startswith("postgres") else "sqlite")
