"""The scheduler: a background task in every server process, running a registry of independent jobs.

:data:`JOBS` lists them, in the order one pass runs them:

* ``cycles`` — for each reading day, the cycle of its latest cut-off: while the 72-hour reading
  window after the cut-off is open, only plants whose readings are all in get their form (the rest
  wait for their head-end); once it has closed, the rest get drafts flagged MISSING for staff;
* ``auto_confirm`` — forms past their answer date are auto-confirmed;
* ``bills`` — final forms are billed;
* ``prepaid`` — bills of prepaid plants are settled from their accounts (true-up), cut-offs whose
  grace is over are decided and supply commands sent (settlement.prepaid.accounts);
* ``late_fees`` — late fees are accrued (once a day per bill: the accrual key is the day);
* ``pay`` — WeChat Pay: silent orders and top-ups queried, yesterday's trade bill reconciled;
* ``invoices`` (once a minute) — each paid bill gets its one e-invoice request, and requested invoices are issued
  through the tax system (a tax system away leaves them requested for the next run; without a
  tax system in this process they wait for one that has it);
* ``dunning`` — reminders and escalations of overdue bills;
* ``outages`` — outages are opened and closed, and their staff alarms written to the outbox;
* ``trips`` — plants that trip repeatedly are flagged, one staff alarm per episode.
* ``sessions`` — the records of mini-program sessions past their expiry are deleted (their tokens
  are refused by their expiry anyway).

Every ``PVSETTLE_SCHEDULER_INTERVAL`` seconds each process makes a pass over the jobs. For each job
it tries to take that job's own Redis lock (redis-py's Lock: SET NX PX to take, a script to extend
or release only its own token); the process that gets it runs the job, unless the job ran (anywhere)
less than its interval ago, and the others go on to the next job. So a long cycle run holds up
neither the pay reconciliation nor the outage alarms, and no job ever runs in two processes at once:
while a job runs, a companion task extends its lock, so it never outlives its expiry; if the holder
dies, the lock expires and another process takes the job over on a later pass.

A job that raises is logged with its traceback and counted
(``pvsettle_scheduler_job_runs_total{job, outcome}``, durations in ``pvsettle_scheduler_job_seconds``);
the jobs after it still run, and it is tried again when its interval has passed. A pass in which a
job did something leaves an audit event naming the process and what each job did, so an operator
can see who ran what; an idle pass leaves none.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from redis.asyncio import Redis
from redis.asyncio.lock import Lock
from redis.exceptions import LockError

from server import pay
from settlement import audit
from settlement.infra import background
from settlement.billing import bills, invoices, late_fees
from settlement.cycles import runs as cycles
from settlement.billing import dunning
from settlement.cycles import forms
from settlement.telemetry import outages
from settlement.prepaid import accounts as prepaid
from settlement.owners import sessions
from settlement.telemetry import trips
from settlement.infra.redis_client import Namespace
from settlement.notify.outbox import NotifyApps
from settlement.ports.device_control import DeviceControl
from settlement.ports.pay import WechatPay
from settlement.ports.tax import TaxInvoicing
from webapp.keys import (device_control_key, metrics_registry_key, notify_apps_key, pay_api_key, redis_key,
                         redis_ns_key, settings_key, tax_key)
from settlement.clock import LOCAL, utc_now

log = logging.getLogger("pvsettle.scheduler")

# A job's lock expires this long after its last extension: a dead holder frees the job after at
# most this long. The holder extends it every third of that while the job runs.
LOCK_EXPIRY_S = 60.0
# A job is due again ``every`` after it last started, less this: asyncio may wake a sleep a hair
# early, and a job that runs every pass must not then skip every other one.
_DUE_SLACK_S = 0.1


@dataclasses.dataclass(frozen=True)
class JobContext:
    """What jobs get besides the time: the settings and ports they need, taken from the app once
    per process (:func:`scheduler_ctx`), so no job looks a resource up in a global."""

    trip_rule: trips.TripRule = trips.TripRule()  # PVSETTLE_REPEATED_TRIPS
    pay: WechatPay | None = None  # the app's pay_api_key; None: WeChat Pay is off in this process
    device: DeviceControl | None = None  # the app's device_control_key; None: supply commands wait
    tax: TaxInvoicing | None = None  # the app's tax_key; None: invoice requests wait, requested
    # the app's notify_apps_key: our mini-program and official account, for every message a job
    # writes; no default, so a context without them cannot write a message on the wrong channel
    notify: NotifyApps = dataclasses.field(kw_only=True)


JobRun = Callable[[dt.datetime, JobContext], Awaitable[dict[str, int]]]


@dataclasses.dataclass(frozen=True)
class Job:
    """One independent piece of scheduled work.

    Parameters
    ----------
    name : str
        Names its lock, its metrics labels and its entry in the audit event.
    run : callable
        ``await run(now, context)`` does what is due at ``now`` and returns counters of what it
        did (all zero when nothing was due). It must be safe to run again.
    every : datetime.timedelta or None
        The least time between two starts of the job, across every process; ``None``: the
        scheduler's interval (``PVSETTLE_SCHEDULER_INTERVAL``), i.e. on every pass.
    """

    name: str
    run: JobRun
    every: dt.timedelta | None = None


async def _cycles(now: dt.datetime, context: JobContext) -> dict[str, int]:
    done = {"forms_created": 0, "plants_waiting": 0}
    for reading_day, period in cycles.due_periods(now):
        _, cut_off = cycles.cycle_span(period, reading_day)
        result = await cycles.run_cycle(period, reading_day=reading_day, now=now, apps=context.notify,
                                        wait_for_readings=now < cut_off + cycles.WINDOW)
        done["forms_created"] += result.forms_created
        done["plants_waiting"] += result.plants_waiting
    return done


async def _auto_confirm(now: dt.datetime, context: JobContext) -> dict[str, int]:
    return {"auto_confirmed": await forms.auto_confirm_due(now)}


async def _bills(now: dt.datetime, context: JobContext) -> dict[str, int]:
    return {"bills_issued": await bills.issue_bills(now=now, apps=context.notify)}


async def _prepaid(now: dt.datetime, context: JobContext) -> dict[str, int]:
    return await prepaid.tick(now, context.device, apps=context.notify)


async def _late_fees(now: dt.datetime, context: JobContext) -> dict[str, int]:
    return {"late_fee_lines": await late_fees.accrue_late_fees(now.astimezone(LOCAL).date())}


async def _dunning(now: dt.datetime, context: JobContext) -> dict[str, int]:
    return {f"dunning_{k}": v for k, v in (await dunning.run(now, apps=context.notify)).items()}


async def _outages(now: dt.datetime, context: JobContext) -> dict[str, int]:
    done = await outages.check_outages(now)  # plants that stopped producing in daylight
    # the alarms of what the check just opened or closed, in the same run; sent into the outbox,
    # each marked in its transaction
    done["outage_alarms"] = await outages.send_outage_alarms(now, apps=context.notify)
    return done


async def _trips(now: dt.datetime, context: JobContext) -> dict[str, int]:
    done = await trips.check_repeated_trips(now, context.trip_rule)
    done["trip_alarms"] = await trips.send_trip_alarms(now, apps=context.notify)  # one per episode, not per trip
    return done


async def _sessions(now: dt.datetime, context: JobContext) -> dict[str, int]:
    return {"sessions_purged": await sessions.purge_expired(now)}


async def _pay(now: dt.datetime, context: JobContext) -> dict[str, int]:
    return await pay.scheduled(now, context.pay, apps=context.notify)


async def _invoices(now: dt.datetime, context: JobContext) -> dict[str, int]:
    done = await invoices.request_for_paid_bills()
    if context.tax is not None:
        done.update(await invoices.issue_requested(context.tax))
    return done


# The order of one pass. Where it matters, a job uses what an earlier one did in the same pass:
# a form made by ``cycles`` and auto-confirmed is billed by ``bills``, a bill is settled from its
# prepaid account by ``prepaid`` before ``late_fees`` looks at it. Across processes two different
# jobs may run at once (a job is exclusive only with itself); each already guards its rows (row
# locks, unique keys) against an owner or staff acting at the same moment, and late fees touch only
# bills days past due, long after their true-up: so order buys promptness, not correctness. Steps that must follow each other in one go (an outage check and its alarms)
# are one job. A new job goes where its inputs are ready.
JOBS: tuple[Job, ...] = (
    Job("cycles", _cycles),
    Job("auto_confirm", _auto_confirm),
    Job("bills", _bills),
    Job("prepaid", _prepaid),
    Job("late_fees", _late_fees),
    Job("pay", _pay),
    # once a minute, not every pass: it looks at every paid bill not yet invoiced (a company whose
    # tax id is wrong is looked at again each time), and an invoice is not awaited by the second
    Job("invoices", _invoices, every=dt.timedelta(minutes=1)),
    Job("dunning", _dunning),
    Job("outages", _outages),
    Job("trips", _trips),
    Job("sessions", _sessions),
)


@dataclasses.dataclass
class PassReport:
    """What one pass over the jobs did.

    ``done`` merges the counters of the jobs that ran; ``ran`` maps each job that ran to its start
    and end; ``failed`` each job that raised to its exception.
    """

    done: dict[str, int] = dataclasses.field(default_factory=dict)
    ran: dict[str, tuple[dt.datetime, dt.datetime]] = dataclasses.field(default_factory=dict)
    failed: dict[str, Exception] = dataclasses.field(default_factory=dict)

    def raise_failures(self) -> None:
        """Raise the failures, if any, together (after every job has had its turn)."""
        if self.failed:
            raise ExceptionGroup(f"scheduler jobs failed: {', '.join(self.failed)}", list(self.failed.values()))


async def _run_isolated(job: Job, now: dt.datetime, context: JobContext, report: PassReport) -> bool:
    """Run ``job`` into ``report``; True when it ran without raising."""
    started = utc_now()
    try:
        done = await job.run(now, context)
    except Exception as exc:  # one job's failure is its own: logged, counted, the others go on
        log.exception("scheduler job %s failed", job.name, extra={"job": job.name})
        report.failed[job.name] = exc
        return False
    finally:
        report.ran[job.name] = (started, utc_now())
    for key, value in done.items():
        report.done[key] = report.done.get(key, 0) + value
    return True


async def run_all(now: dt.datetime | None, context: JobContext, jobs: Sequence[Job] = JOBS) -> PassReport:
    """Every job once, in order, here and now: no locks, no intervals (tests, one-off runs).

    A job that raises is logged and reported in ``failed``; the jobs after it still run.
    """
    now = now or utc_now()
    report = PassReport()
    for job in jobs:
        await _run_isolated(job, now, context, report)
    return report


async def tick(now: dt.datetime | None = None, trip_rule: trips.TripRule = trips.TripRule(), *, notify: NotifyApps,
               pay: WechatPay | None = None, device: DeviceControl | None = None) -> dict[str, int]:
    """Everything that is due at ``now`` (every job once, in order); returns the merged counters.

    ``trip_rule`` is the repeated-trip setting (``PVSETTLE_REPEATED_TRIPS`` in ``…_DAYS``);
    ``pay`` and ``device`` the ports the pay and prepaid jobs use (None: that work waits, as in a
    process without them); ``notify`` our WeChat apps, for the messages the jobs write. A job
    that raises does not stop the ones after it; once all have run, the failures are raised
    together as an :class:`ExceptionGroup`.
    """
    report = await run_all(now, JobContext(trip_rule, pay, device, notify=notify))
    report.raise_failures()
    return report.done


def tick_log_level(done: dict) -> int:
    """INFO for a tick that did something, DEBUG for one that found nothing due: every few
    seconds an empty line would bury what matters (the demo ticks every 5 s)."""
    return logging.INFO if any(done.values()) else logging.DEBUG


class Scheduler:
    """One process's share of the scheduled work: passes over ``jobs``, each job under its lock.

    Parameters
    ----------
    redis, namespace
        Where the jobs' locks and due times live, shared by every process of the deployment.
    interval : float [s]
        Between the end of a pass and the start of the next; a job's default interval.
    context : JobContext
        What every job gets besides the time (:func:`scheduler_ctx` takes it from the app).
    jobs : sequence of Job
        In the order a pass runs them.
    registry : prometheus_client.CollectorRegistry
        Where the job metrics are registered (the app's, served at /metrics).
    lock_expiry : float [s]
        A job's lock expires this long after it was taken or last extended.
    """

    def __init__(self, redis: Redis, namespace: Namespace, *, interval: float,
                 context: JobContext, jobs: Sequence[Job] = JOBS,
                 registry: CollectorRegistry | None = None, lock_expiry: float = LOCK_EXPIRY_S,
                 actor: str | None = None):
        self.redis, self.namespace, self.interval = redis, namespace, interval
        self.context, self.jobs, self.lock_expiry = context, tuple(jobs), lock_expiry
        self.actor = actor or f"scheduler:{socket.gethostname()}:{os.getpid()}"
        registry = registry if registry is not None else CollectorRegistry()
        self.runs = Counter("pvsettle_scheduler_job_runs", "scheduler job runs, by outcome (ok, failed)",
                            ["job", "outcome"], registry=registry)
        self.seconds = Histogram("pvsettle_scheduler_job_seconds", "scheduler job run time [s]", ["job"],
                                 registry=registry,
                                 buckets=(0.01, 0.05, 0.25, 1, 5, 15, 60, 300, 900, 3600))
        # thread_local=False: the token belongs to this object, not to a thread (asyncio: one thread)
        self._locks: dict[str, Lock] = {
            job.name: redis.lock(namespace.key("lock", "scheduler", job.name), timeout=lock_expiry,
                                 blocking=False, thread_local=False)
            for job in self.jobs}

    def _due_key(self, job: Job) -> str:
        return self.namespace.key("scheduler", "not-before", job.name)

    async def run_pass(self, now: dt.datetime | None = None) -> PassReport:
        """Each job whose lock this process gets and whose interval has passed, in order."""
        now = now or utc_now()
        started = utc_now()
        clock = time.perf_counter()
        report = PassReport()
        for job in self.jobs:
            background.raise_if_cancelling()  # stopping: the jobs left wait for the next process
            try:
                await self._run_job(job, now, report)
            except Exception as exc:  # Redis away: the job's lock or due time failed; the next job may do
                log.exception("scheduler job %s: its lock or due time failed", job.name, extra={"job": job.name})
                report.failed.setdefault(job.name, exc)
                self.runs.labels(job.name, "failed").inc()
        if any(report.done.values()):
            await audit.record(self.actor, "SchedulerTick", "scheduler", self.actor, after={
                "started": started, "finished": utc_now(), **report.done,
                "jobs": {name: {"started": a, "finished": b} for name, (a, b) in report.ran.items()},
                "failed": sorted(report.failed)})
        log.log(tick_log_level(report.done), "scheduler tick",
                extra={"seconds": round(time.perf_counter() - clock, 3), **report.done,
                       "failed": sorted(report.failed)})
        return report

    async def _run_job(self, job: Job, now: dt.datetime, report: PassReport) -> None:
        lock = self._locks[job.name]
        if not await lock.acquire():
            return  # another process runs it now
        try:
            if await self.redis.exists(self._due_key(job)):
                return  # it ran less than its interval ago
            clock = time.perf_counter()
            keeper = asyncio.create_task(self._keep(job, lock), name=f"pvsettle-scheduler-lock-{job.name}")
            try:
                ok = await _run_isolated(job, now, self.context, report)
            finally:
                keeper.cancel()
                # wait for it without taking its CancelledError for ours: a suppress() here would
                # also swallow this task's own cancellation (server shutdown) and never end
                await asyncio.wait([keeper])
            took = time.perf_counter() - clock
            self.seconds.labels(job.name).observe(took)
            self.runs.labels(job.name, "ok" if ok else "failed").inc()
            every = job.every.total_seconds() if job.every is not None else self.interval
            rest = every - took - _DUE_SLACK_S
            if rest > 0:  # a failed job waits its interval too: a broken step is not hammered
                await self.redis.set(self._due_key(job), self.actor, px=int(rest * 1000))
        finally:
            with contextlib.suppress(LockError):  # expired meanwhile and maybe taken: not ours to free
                await lock.release()

    async def _keep(self, job: Job, lock: Lock) -> None:
        """Extend ``lock`` to its full expiry every third of it, until cancelled."""
        while True:
            await background.pause(self.lock_expiry / 3)
            try:
                await lock.reacquire()
            except LockError:
                # it expired (this process stalled longer than the expiry) and another process
                # may hold it now; the job's steps are idempotent, so finishing it is safe
                log.error("scheduler job %s lost its lock while running", job.name, extra={"job": job.name})
                return
            except Exception:  # Redis away for a moment: try again at the next third
                log.warning("scheduler job %s: lock not extended", job.name, exc_info=True,
                            extra={"job": job.name})

    async def run_forever(self) -> None:
        # a pass that raises could not write its audit event (database away): the next one retries
        await background.repeat(self.run_pass, self.interval, log=log, failure="scheduler tick failed")


async def scheduler_ctx(app: web.Application) -> AsyncIterator[None]:
    """The background task of this process (cleanup_ctx: started, then cancelled and awaited).

    Runs after ``pay_api_ctx`` and whatever stores ``device_control_key`` (the sandbox's switches):
    the jobs get the ports those opened, and they stay open until the task has stopped."""
    settings = app[settings_key]
    if settings.scheduler_interval == 0:
        yield
        return
    scheduler = Scheduler(app[redis_key], app[redis_ns_key], interval=settings.scheduler_interval,
                          context=JobContext(trips.TripRule.from_settings(settings), pay=app.get(pay_api_key),
                                             device=app.get(device_control_key), tax=app.get(tax_key),
                                             notify=app[notify_apps_key]),
                          registry=app[metrics_registry_key])
    task = asyncio.create_task(scheduler.run_forever(), name="pvsettle-scheduler")
    yield
    await background.stop(task)
