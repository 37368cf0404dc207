"""Background loops of a server process: a step repeated until the task is cancelled, and stopping it.

Python 3.11's ``asyncio.wait_for`` loses a cancellation that arrives just as the call it waits
for completes (CPython gh-86296; 3.12 rewrote it on ``asyncio.timeout``). redis-py sends every
command through one, so a loop that was talking to Redis when the server stopped could take the
cancellation for nothing and go on looping: the process never exited (the demo hung on Ctrl-C
now and then), and a lock keeper that missed its cancel held the scheduler up for good. The task
still knows it was asked to stop (``Task.cancelling()``), so the loops here look at every pause
instead of trusting the cancellation to reach them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable


def raise_if_cancelling() -> None:
    """Raise :class:`asyncio.CancelledError` if this task was asked to stop, even when a
    cancellation was lost on the way."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def wait(event: asyncio.Event) -> None:
    """Wait for ``event``, unless this task was asked to stop meanwhile.

    A loop that waits for work after doing some must look first: when a library swallowed the
    cancellation during the work, nobody will set the event again, and the task would wait for
    ever with its stop pending (a server's shutdown hung so, waiting for the live publisher).
    """
    raise_if_cancelling()
    await event.wait()


async def pause(seconds: float) -> None:
    """Sleep ``seconds`` [s], unless this task was asked to stop meanwhile."""
    raise_if_cancelling()
    await asyncio.sleep(seconds)


async def repeat(step: Callable[[], Awaitable[object]], every_s: float, *, log: logging.Logger,
                 failure: str) -> None:
    """Run ``step``, pause ``every_s`` [s], and again, until cancelled.

    A step that raises is logged as ``failure`` and the next one runs on time: the database,
    Redis or WeChat away for a moment must not end the loop.
    """
    while True:
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(failure)
        await pause(every_s)


async def stop(task: asyncio.Task) -> None:
    """Cancel ``task`` and wait until it has ended; an error it ended with is raised here.

    Waited for with :func:`asyncio.wait`, which never raises: a ``suppress(CancelledError)``
    around ``await task`` would also swallow a cancellation of the caller itself.
    """
    task.cancel()
    await asyncio.wait([task])
    if not task.cancelled() and task.exception() is not None:
        raise task.exception()
