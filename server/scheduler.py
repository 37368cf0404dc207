"""The scheduler: a background task in every server process, of which one at a time does the work.

Each tick (``PVSETTLE_SCHEDULER_INTERVAL`` seconds) a process tries to take a Redis lock with an
expiry (redis-py's Lock: SET NX PX to take, a script to release only its own token). The one that
gets it, and only it, does what is due:

* for each reading day, the cycle of its latest cut-off: while the 72-hour reading window after
  the cut-off is open, only plants whose readings are all in get their form (the rest wait for
  their head-end); once it has closed, the rest get drafts flagged MISSING for staff;
* forms past their answer date are auto-confirmed;
* final forms are billed;
* bills of prepaid plants are settled from their accounts (true-up), cut-offs whose grace is
  over are decided and supply commands sent (settlement.prepaid);
* late fees are accrued (once a day per bill: the accrual key is the day);
* outages are opened and closed, and their staff alarms written to the outbox (settlement.outages);
* plants that trip repeatedly are flagged, one staff alarm per episode (settlement.trips);
* the records of mini-program sessions past their expiry are deleted (settlement.sessions).

If the holder dies, the lock expires and another process takes over on a later tick. Every tick
that did the work leaves an audit event naming the process, so an operator can see who ran what.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import socket
import time
from collections.abc import AsyncIterator

from aiohttp import web

from server import pay
from server.keys import redis_key, redis_ns_key, settings_key
from settlement import audit, bills, cycles, dunning, forms
from settlement import outages, prepaid, sessions, trips

log = logging.getLogger("pvsettle.scheduler")
UTC = dt.timezone.utc


async def tick(now: dt.datetime | None = None, trip_rule: trips.TripRule = trips.TripRule()) -> dict:
    """Everything that is due at ``now``; safe to run again (each step is idempotent).

    ``trip_rule`` is the repeated-trip setting (``PVSETTLE_REPEATED_TRIPS`` in ``…_DAYS``).
    """
    now = now or dt.datetime.now(UTC)
    done = {"forms_created": 0, "plants_waiting": 0, "auto_confirmed": 0, "bills_issued": 0, "late_fee_lines": 0}
    for reading_day, period in cycles.due_periods(now):
        _, cut_off = cycles.cycle_span(period, reading_day)
        result = await cycles.run_cycle(period, reading_day=reading_day, now=now,
                                        wait_for_readings=now < cut_off + cycles.WINDOW)
        done["forms_created"] += result.forms_created
        done["plants_waiting"] += result.plants_waiting
    done["auto_confirmed"] = await forms.auto_confirm_due(now)
    done["bills_issued"] = await bills.issue_bills(now=now)
    # prepaid: bills of prepaid plants settled from their accounts before late fees, cut-offs due, commands
    done.update(await prepaid.tick(now, prepaid.active_device()))
    done["late_fee_lines"] = await bills.accrue_late_fees(now.astimezone(cycles.LOCAL).date())
    done.update(await pay.scheduled(now))  # WeChat Pay: silent orders queried, yesterday's trade bill
    done.update({f"dunning_{k}": v for k, v in (await dunning.run(now)).items()})  # reminders, escalations
    done.update(await outages.check_outages(now))  # plants that stopped producing in daylight, for staff alarms
    done["outage_alarms"] = await outages.send_outage_alarms(now)  # into the outbox, marked in its transaction
    done.update(await trips.check_repeated_trips(now, trip_rule))  # plants that trip again and again
    done["trip_alarms"] = await trips.send_trip_alarms(now)  # one per episode, not per trip
    done["sessions_purged"] = await sessions.purge_expired(now)  # their tokens are refused by their expiry anyway
    return done


async def scheduler_ctx(app: web.Application) -> AsyncIterator[None]:
    """The background task of this process (cleanup_ctx: started, then cancelled and awaited)."""
    settings = app[settings_key]
    if settings.scheduler_interval == 0:
        yield
        return
    task = asyncio.create_task(_loop(app, settings.scheduler_interval), name="pvsettle-scheduler")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):  # the cancellation we asked for
        await task


def tick_log_level(done: dict) -> int:
    """INFO for a tick that did something, DEBUG for one that found nothing due: every few
    seconds an empty line would bury what matters (the demo ticks every 5 s)."""
    return logging.INFO if any(done.values()) else logging.DEBUG


async def _loop(app: web.Application, interval: int) -> None:
    me = f"scheduler:{socket.gethostname()}:{os.getpid()}"
    trip_rule = trips.TripRule.from_settings(app[settings_key])
    lock = app[redis_key].lock(app[redis_ns_key].key("lock", "scheduler"),
                               # long enough for a big cycle run; a dead holder frees it after this
                               timeout=max(10 * interval, 600), blocking=False)
    while True:
        try:
            if await lock.acquire():
                try:
                    started = dt.datetime.now(UTC)
                    clock = time.perf_counter()
                    done = await tick(started, trip_rule)
                    await audit.record(me, "SchedulerTick", "scheduler", me,
                                       after={"started": started, "finished": dt.datetime.now(UTC), **done})
                    log.log(tick_log_level(done), "scheduler tick",
                            extra={"seconds": round(time.perf_counter() - clock, 3), **done})
                finally:
                    await lock.release()
        except asyncio.CancelledError:
            raise
        except Exception:
            # a failed tick (database or Redis away) is logged and retried on the next one
            log.exception("scheduler tick failed")
        await asyncio.sleep(interval)
