"""The scheduler's loop logs a tick that found nothing due at DEBUG, not at INFO every few seconds."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from server.app import create_app
from settlement import models as m


async def test_an_idle_tick_of_the_running_scheduler_logs_at_debug(settings, aiohttp_client, caplog):
    caplog.set_level(logging.DEBUG, logger="pvsettle.scheduler")
    # the loop ticks once at start, then sleeps an hour: exactly one tick to look at
    await aiohttp_client(create_app(dataclasses.replace(settings, scheduler_interval=3600)))
    while not [r for r in caplog.records if r.getMessage() == "scheduler tick"]:
        await asyncio.sleep(0.01)
    [record] = [r for r in caplog.records if r.getMessage() == "scheduler tick"]
    assert record.levelno == logging.DEBUG
    assert record.forms_created == 0 and record.trip_alarms == 0  # an empty portfolio: nothing due
    # nor an audit event: those are for passes that did something (the log line follows it)
    assert not await m.AuditEvent.filter(action="SchedulerTick").exists()
