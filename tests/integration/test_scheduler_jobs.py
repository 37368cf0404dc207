"""The scheduler's registry of jobs (server.scheduler): one job's failure is its own, each job has
its own Redis lock (extended while it runs) and interval, and its runs are counted at /metrics.

Two :class:`Scheduler` objects on one Redis client play two server processes: each takes its
locks with its own tokens, exactly as two processes do (the e2e test in test_cycle_processes.py
runs two real ones on a real Redis).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging

import pytest
from prometheus_client import CollectorRegistry

from server import scheduler
from server.app import create_app
from server.scheduler import Job, JobContext, Scheduler
from settlement import models as m
from settlement.cycles import forms
from settlement.infra import db as database
from settlement.infra.redis_client import Namespace, open_redis
from settlement.notify.outbox import NotifyApps
from tests.integration.billed_plant import walked_plant
from tests.integration.bot_support import november_cycle

NOW = dt.datetime(2026, 6, 15, 4, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
async def redis(settings):
    client = open_redis(settings.redis_url)
    yield client, Namespace(settings.redis_prefix)
    await client.aclose()


@pytest.fixture
def job_context(notify_apps) -> JobContext:
    """What the app's scheduler hands its jobs, the settings' WeChat apps included."""
    return JobContext(notify=notify_apps)


def counting(name: str, calls: list[str], **counters: int) -> Job:
    async def run(now: dt.datetime, context: JobContext) -> dict[str, int]:
        calls.append(name)
        return dict(counters)
    return Job(name, run)


def runs(registry: CollectorRegistry, job: str, outcome: str) -> float | None:
    return registry.get_sample_value("pvsettle_scheduler_job_runs_total", {"job": job, "outcome": outcome})


async def test_a_job_that_raises_does_not_stop_the_others_and_is_counted(db, redis, caplog, job_context):
    calls: list[str] = []

    async def broken(now: dt.datetime, context: JobContext) -> dict[str, int]:
        calls.append("broken")
        raise RuntimeError("pay query failed")

    registry = CollectorRegistry()
    jobs = (counting("first", calls, a=1), Job("broken", broken), counting("last", calls, b=2))
    sched = Scheduler(*redis, interval=0, context=job_context, jobs=jobs, registry=registry, actor="scheduler:test")
    report = await sched.run_pass(NOW)
    assert calls == ["first", "broken", "last"]
    assert report.done == {"a": 1, "b": 2} and list(report.failed) == ["broken"]
    assert [runs(registry, *sample) for sample in (("first", "ok"), ("broken", "failed"), ("last", "ok"))] == [1, 1, 1]
    assert runs(registry, "broken", "ok") is None
    assert registry.get_sample_value("pvsettle_scheduler_job_seconds_count", {"job": "broken"}) == 1
    [failure] = [r for r in caplog.records if r.getMessage() == "scheduler job broken failed"]
    assert failure.levelno == logging.ERROR and "pay query failed" in str(failure.exc_info[1])
    # the pass did something: one audit event, with what each job did and which failed
    [event] = await m.AuditEvent.filter(action="SchedulerTick")
    assert (event.actor, event.after["a"], event.after["b"], event.after["failed"]) == (
        "scheduler:test", 1, 2, ["broken"])
    assert set(event.after["jobs"]) == {"first", "broken", "last"}
    # the next pass (interval 0: at once) tries the failed job again
    await sched.run_pass(NOW)
    assert calls[3:] == ["first", "broken", "last"] and runs(registry, "broken", "failed") == 2


async def test_an_idle_pass_leaves_no_audit_event(db, redis, job_context):
    calls: list[str] = []
    sched = Scheduler(*redis, interval=0, context=job_context, jobs=(counting("idle", calls, forms_created=0),))
    report = await sched.run_pass(NOW)
    assert calls == ["idle"] and report.done == {"forms_created": 0}
    assert not await m.AuditEvent.filter(action="SchedulerTick").exists()


async def test_the_pay_job_raising_leaves_dunning_outages_and_trips_to_run(db, monkeypatch, notify_apps):
    async def broken(now: dt.datetime, pay, *, apps) -> dict[str, int]:
        raise ConnectionError("WeChat Pay unreachable")

    monkeypatch.setattr(scheduler.pay, "scheduled", broken)
    report = await scheduler.run_all(NOW, JobContext(notify=notify_apps))
    assert list(report.failed) == ["pay"]
    assert list(report.ran) == [job.name for job in scheduler.JOBS]
    assert {"late_fee_lines", "dunning_reminders", "outage_alarms", "trip_alarms"} <= set(report.done)
    # tick(), as the tests of each step call it, runs all of them too, then raises what failed
    with pytest.raises(ExceptionGroup) as raised:
        await scheduler.tick(NOW, notify=notify_apps)
    assert [type(e) for e in raised.value.exceptions] == [ConnectionError]


async def test_a_job_running_past_its_lock_expiry_keeps_its_lock(db, redis, job_context):
    client, namespace = redis
    expiry = 1.0
    key = namespace.key("lock", "scheduler", "long")
    other_process = client.lock(key, timeout=30, blocking=False, thread_local=False)
    taken_meanwhile: list[bool] = []

    async def long_run(now: dt.datetime, context: JobContext) -> dict[str, int]:
        started = asyncio.get_running_loop().time()
        while asyncio.get_running_loop().time() - started < 2.5 * expiry:  # well past the expiry
            taken_meanwhile.append(await other_process.acquire())
            await asyncio.sleep(expiry / 10)
        return {"done": 1}

    sched = Scheduler(client, namespace, interval=0, context=job_context, jobs=(Job("long", long_run),),
                      lock_expiry=expiry)
    report = await sched.run_pass(NOW)
    assert report.done == {"done": 1} and not report.failed
    assert len(taken_meanwhile) > 10 and not any(taken_meanwhile)
    assert await other_process.acquire()  # released once the job was done
    await other_process.release()


async def test_two_schedulers_never_run_the_same_job_at_once(db, redis, job_context):
    started, release = asyncio.Event(), asyncio.Event()
    calls: list[str] = []

    running: list[str] = []

    async def slow(now: dt.datetime, context: JobContext) -> dict[str, int]:
        calls.append("slow")
        if running:  # fail rather than wait for a release that only follows the second pass
            raise AssertionError("slow is running in the other process")
        running.append("slow")
        started.set()
        await release.wait()
        running.remove("slow")
        return {"slow": 1}

    jobs = (Job("slow", slow), counting("quick", calls, quick=1))
    one, two = (Scheduler(*redis, interval=0, context=job_context, jobs=jobs, actor=f"scheduler:{n}")
                for n in ("one", "two"))
    first = asyncio.create_task(one.run_pass(NOW))
    await started.wait()
    # while the first process runs "slow", the second skips it but still does "quick"
    second = await two.run_pass(NOW)
    assert list(second.ran) == ["quick"] and second.done == {"quick": 1}
    release.set()
    assert list((await first).ran) == ["slow", "quick"]
    assert calls == ["slow", "quick", "quick"]
    # once freed, the other process may run it
    release.clear()
    started.clear()
    task = asyncio.create_task(two.run_pass(NOW))
    await started.wait()
    release.set()
    assert list((await task).ran) == ["slow", "quick"]


async def test_many_passes_of_two_schedulers_overlap_no_job_with_itself(db, redis, job_context):
    running: dict[str, int] = {"a": 0, "b": 0}
    most: dict[str, int] = {"a": 0, "b": 0}
    count: dict[str, int] = {"a": 0, "b": 0}

    def job(name: str) -> Job:
        async def run(now: dt.datetime, context: JobContext) -> dict[str, int]:
            running[name] += 1
            most[name] = max(most[name], running[name])
            for _ in range(3):  # yield to the other scheduler in the middle of the job
                await asyncio.sleep(0)
            running[name] -= 1
            count[name] += 1
            return {}
        return Job(name, run)

    jobs = (job("a"), job("b"))
    one, two = (Scheduler(*redis, interval=0, context=job_context, jobs=jobs) for _ in range(2))
    for _ in range(20):
        await asyncio.gather(one.run_pass(NOW), two.run_pass(NOW))
    assert most == {"a": 1, "b": 1}
    assert count["a"] >= 20 and count["b"] >= 20  # each pair of passes ran each job at least once


async def test_each_job_keeps_its_interval_across_processes(db, redis, job_context):
    client, namespace = redis
    calls: list[str] = []
    hourly = dataclasses.replace(counting("hourly", calls), every=dt.timedelta(hours=1))
    brief = dataclasses.replace(counting("brief", calls), every=dt.timedelta(seconds=0.5))
    jobs = (counting("every_pass", calls), hourly, brief)
    one, two = (Scheduler(client, namespace, interval=0, context=job_context, jobs=jobs) for _ in range(2))
    await one.run_pass(NOW)
    assert calls == ["every_pass", "hourly", "brief"]
    calls.clear()
    await two.run_pass(NOW)  # another process, at once: only the job without an interval
    assert calls == ["every_pass"]
    calls.clear()
    assert await client.pttl(namespace.key("scheduler", "not-before", "hourly")) > 3_500_000
    while await client.exists(namespace.key("scheduler", "not-before", "brief")):
        await asyncio.sleep(0.05)  # half a second passes
    await one.run_pass(NOW)
    assert calls == ["every_pass", "brief"]


async def test_the_running_scheduler_counts_its_jobs_at_metrics(settings, aiohttp_client):
    # the loop makes one pass at start, then sleeps an hour: one pass to look at
    client = await aiohttp_client(create_app(dataclasses.replace(settings, scheduler_interval=3600)))
    # the pass is over once its last job is counted (it waited for "trips" while "sessions" came after)
    last = f'pvsettle_scheduler_job_runs_total{{job="{scheduler.JOBS[-1].name}",outcome="ok"}} 1.0'
    while last not in (text := await (await client.get("/metrics")).text()):
        await asyncio.sleep(0.05)
    for job in scheduler.JOBS:
        assert f'pvsettle_scheduler_job_runs_total{{job="{job.name}",outcome="ok"}} 1.0' in text
        assert f'pvsettle_scheduler_job_seconds_count{{job="{job.name}"}} 1.0' in text
    assert 'outcome="failed"' not in text


async def test_the_apps_scheduler_writes_for_the_official_account_of_its_settings(settings, aiohttp_client):
    """The app's scheduler hands its jobs the WeChat apps the app factory took from the settings:
    the bill its bills job issues is told to an owner known only in the official account by
    template message, from that account. The app ids are this test's own."""
    own = dataclasses.replace(settings, scheduler_interval=3600, mp_appid="wxschedmp000000042",
                              oa_appid="wxschedoa000000042")
    apps = NotifyApps.from_settings(own)
    await database.open_database(own.database_url)
    try:  # a form confirmed and not billed yet, before the app's first pass
        world = await walked_plant(apps=apps)
        owner = await m.WechatIdentity.create(app_id=own.oa_appid, openid="o-sched-owner", owner=world["owner"])
        cycle = await november_cycle(world, apps=apps)
        await forms.confirm_form((await forms.latest_form(cycle.id)).id, staff=world["staff"])
    finally:
        await database.close_database()
    # the loop makes one pass at start, then sleeps an hour
    client = await aiohttp_client(create_app(own))
    last = f'pvsettle_scheduler_job_runs_total{{job="{scheduler.JOBS[-1].name}",outcome="ok"}} 1.0'
    while last not in await (await client.get("/metrics")).text():
        await asyncio.sleep(0.05)
    bill = await m.Bill.get(cycle=cycle)
    [row] = await m.OutboxMessage.filter(dedupe_key=f"bill:{bill.id}:BillIssued:{owner.id}")
    assert (row.recipient, row.channel, row.app_id) == ("o-sched-owner", "template", "wxschedoa000000042")
