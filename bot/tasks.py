"""The bot's background work: tasks that outlive the request that started them.

WeChat waits 5 s for a reply. A command that is slow by nature (a report, a reissue) or that
runs late is acknowledged at once and finished here; its result goes to the user as a
customer-service message. Every task is tracked, so that shutting the server down waits for them
(up to ``DRAIN_TIMEOUT_S``) instead of dropping them, and cancels only what is still running then.

The resource is registered on the root app by ``server/app.py`` after the WeChat API client, so it
is torn down first, while the database, Redis and the outbound HTTP session are still open
(a sub-app's own clean-ups would run after the root's).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from aiohttp import web

log = logging.getLogger("pvsettle.bot")

#: How long shutdown waits for background work before cancelling it [s].
DRAIN_TIMEOUT_S = 30.0


class BackgroundTasks:
    """A set of running tasks; failures are logged, never lost silently."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task] = set()
        self.closing = False

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task:
        if self.closing:
            coro.close()
            raise RuntimeError("the server is shutting down")
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("bot background task failed", exc_info=exc, extra={"task": task.get_name()})

    def __len__(self) -> int:
        return len(self._tasks)

    async def join(self) -> None:
        """Wait until every task started so far (and any they start) has finished."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def drain(self, timeout: float = DRAIN_TIMEOUT_S) -> int:
        """Stop taking work, wait up to ``timeout`` for what runs, cancel the rest; returns how many
        were cancelled."""
        self.closing = True
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        left = list(self._tasks)
        for task in left:
            task.cancel()
        if left:
            await asyncio.gather(*left, return_exceptions=True)
            log.warning("bot background tasks cancelled at shutdown", extra={"cancelled": len(left)})
        return len(left)


bot_tasks_key = web.AppKey("bot_tasks_key", BackgroundTasks)


async def bot_tasks_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx of the root app: the bot's background tasks, drained on shutdown."""
    tasks = BackgroundTasks()
    app[bot_tasks_key] = tasks
    yield
    await tasks.drain()
