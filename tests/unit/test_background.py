"""Background loops stop when asked, even when a cancellation is lost on the way (Python 3.11)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import pytest

from settlement.infra import background

log = logging.getLogger("tests.background")


async def _ended(task: asyncio.Task) -> None:
    """Guard against the failure under test: a loop that never ends would hang the suite."""
    async with asyncio.timeout(10):
        await background.stop(task)


async def test_a_loop_whose_step_lost_the_cancellation_still_stops():
    # what Python 3.11's wait_for does to a cancellation that arrives as its call completes
    # (redis-py sends every command through one): taken, and the step returns as if nothing happened
    inside = asyncio.Event()
    steps = []

    async def step() -> None:
        steps.append(1)
        inside.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            return

    task = asyncio.create_task(background.repeat(step, 0.01, log=log, failure="step failed"))
    await inside.wait()
    await _ended(task)
    assert task.cancelled()
    assert steps == [1]  # no step after the stop was asked for


async def test_a_loop_stopped_while_it_pauses_ends_at_once():
    ran = asyncio.Event()

    async def step() -> None:
        ran.set()

    task = asyncio.create_task(background.repeat(step, 3600, log=log, failure="step failed"))
    await ran.wait()
    await _ended(task)
    assert task.cancelled()


async def test_a_failing_step_is_logged_and_the_next_runs(caplog):
    calls = []
    enough = asyncio.Event()

    async def step() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("database away")
        enough.set()

    task = asyncio.create_task(background.repeat(step, 0, log=log, failure="step failed"))
    with caplog.at_level(logging.ERROR, logger="tests.background"):
        await enough.wait()
        await _ended(task)
    failures = [r for r in caplog.records if r.getMessage() == "step failed"]
    assert len(failures) == 2 and all(r.exc_info[0] is ConnectionError for r in failures)


async def test_stop_raises_the_error_a_task_ended_with():
    started = asyncio.Event()

    async def stubborn() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        finally:
            raise RuntimeError("could not flush")

    task = asyncio.create_task(stubborn())
    await started.wait()
    with pytest.raises(RuntimeError, match="could not flush"):
        await _ended(task)


async def test_stop_leaves_the_callers_own_cancellation_alone():
    # the stopping task is itself cancelled while it waits (a second Ctrl-C, a shutdown timeout)
    slow_started = asyncio.Event()

    async def slow_to_stop() -> None:
        slow_started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(3600)  # cleaning up for a long time
            raise

    slow = asyncio.create_task(slow_to_stop())
    await slow_started.wait()
    stopper = asyncio.create_task(background.stop(slow))
    await asyncio.sleep(0.01)
    stopper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopper
    slow.cancel()
    await asyncio.wait([slow])



async def test_a_waiting_loop_whose_work_lost_the_cancellation_still_stops():
    # the live publisher's shape: wait for work, do it; the work swallows the stop (as 3.11's
    # wait_for inside redis-py can), and nobody will set the event again
    from settlement.telemetry.ingest import LivePublisher

    inside = asyncio.Event()
    published = []

    async def swallowing_publication(self) -> None:
        published.append(1)
        inside.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            return

    LivePublisher._publish_pending, original = swallowing_publication, LivePublisher._publish_pending
    try:
        publisher = LivePublisher(redis=None, namespace=None)
        publisher.request([1], now=dt.datetime(2026, 12, 4, tzinfo=dt.timezone.utc))
        await inside.wait()
        await _ended(publisher._task)
        assert publisher._task.cancelled() and published == [1]
    finally:
        LivePublisher._publish_pending = original


async def test_wait_returns_when_the_event_is_set_and_raises_when_asked_to_stop():
    event = asyncio.Event()
    waiter = asyncio.create_task(background.wait(event))
    await asyncio.sleep(0)
    event.set()
    await asyncio.wait_for(waiter, 1)

    async def asked_to_stop() -> None:
        asyncio.current_task().cancel()
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            pass  # lost, as a library may lose it
        await background.wait(asyncio.Event())  # must not wait: the stop is pending

    task = asyncio.create_task(asked_to_stop())
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 1)
