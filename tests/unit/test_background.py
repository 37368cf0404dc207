"""Background loops stop when asked, even when a cancellation is lost on the way (Python 3.11)."""

from __future__ import annotations

import asyncio
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

