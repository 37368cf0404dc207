"""Redis through redis-py's ``redis.asyncio``, or fakeredis's in-process emulation behind the same
client interface for the embedded default, so there is one code path.

Every key goes through a :class:`Namespace`, so several deployments or test runs share one Redis
without touching each other's keys.

Redis is a cache and a meeting point here, never the only record of anything an owner depends
on: the mini-program API serves without it (``miniprogram_api.gate``). For that a Redis that does
not answer must fail fast — short connect and read timeouts — and a process that saw it fail stops
asking for a while (:class:`RedisGuard`), so an outage costs one timeout now and then, not one per
request.

Exceptions::

    RedisUnavailable          Redis did not answer, or this process is not asking it for now
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import redis.asyncio as redis_asyncio
import redis.exceptions

log = logging.getLogger("pvsettle.redis")

# Defaults of PVSETTLE_REDIS_CONNECT_TIMEOUT_MS / _TIMEOUT_MS / _RETRY_MS. A healthy Redis answers
# in well under a millisecond; half a second leaves room for a busy host and still lets a request
# that met a hung Redis answer from the database within a second.
CONNECT_TIMEOUT_S = 0.5
COMMAND_TIMEOUT_S = 0.5
RETRY_S = 2.0

# What an unreachable or hung Redis raises (builtin TimeoutError covers asyncio's). A ResponseError
# (a bug of ours, a wrong key type) is not an outage and is left to surface.
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


class RedisUnavailable(Exception):
    """Redis did not answer (or failed so recently that this process does not ask it yet)."""

    def __init__(self, message: str, retry_after_s: float):
        super().__init__(message)
        self.retry_after_s = retry_after_s


def open_redis(url: str, *, connect_timeout_s: float = CONNECT_TIMEOUT_S,
               timeout_s: float = COMMAND_TIMEOUT_S) -> redis_asyncio.Redis:
    """A client for ``url``; empty means the in-process emulation (one process only).

    ``connect_timeout_s`` bounds opening a connection and ``timeout_s`` each command's answer [s].
    """
    if not url:
        import fakeredis

        return fakeredis.FakeAsyncRedis(decode_responses=False)
    return redis_asyncio.Redis.from_url(
        url,
        socket_connect_timeout=connect_timeout_s,
        socket_timeout=timeout_s,
        health_check_interval=30,
    )


#: [s] a rate limit's fixed window: counted in Redis with INCR on a key per window, or in
#: :class:`LocalWindows` while Redis does not answer
WINDOW_S = 60


def seconds_left(window: int, now: float) -> int:
    """[s] until fixed window ``window`` (``int(now // WINDOW_S)``) ends, at least 1: a Retry-After."""
    return max(1, int((window + 1) * WINDOW_S - now + 0.999))


@dataclass
class LocalWindows:
    """Fixed windows counted in this process, for while Redis does not answer.

    At most ``max_keys`` counters a window: past that (addresses from all over the internet) the
    window starts over rather than grow without bound.
    """

    max_keys: int = 100_000
    counts: dict[tuple[str, object], int] = field(default_factory=dict)
    window: int = -1

    def count(self, kind: str, who: object, now: float) -> tuple[int, int]:
        """This event's number in ``who``'s current window, and [s] until the window ends."""
        window = self._roll(now)
        n = self.counts[(kind, who)] = self.counts.get((kind, who), 0) + 1
        return n, seconds_left(window, now)

    def _roll(self, now: float) -> int:
        """The window ``now`` is in; the counts start over when it is a new one."""
        window = int(now // WINDOW_S)
        if window != self.window or len(self.counts) >= self.max_keys:  # old counts are of no use
            self.counts.clear()
            self.window = window
        return window

    def after_redis(self, kind: str, who: object, now: float, counted: int) -> int:
        """The count to go by when Redis answered ``counted``: plus the events this process counted
        alone in this window while Redis did not answer (Redis never saw them), and remembered, so a
        later miss goes on from here. A Redis that misses an answer (a slow moment, a restart) must
        not start anyone's count over, nor forget what was counted while it was away."""
        self._roll(now)
        n = counted + self.counts.get((kind + ":alone", who), 0)
        if self.counts.get((kind, who), 0) < n:
            self.counts[(kind, who)] = n
        return n

    def without_redis(self, kind: str, who: object, now: float) -> tuple[int, int]:
        """Count an event Redis could not: on from the last count known (:meth:`after_redis`);
        this event's number and [s] until the window ends, as :meth:`count`."""
        window = self._roll(now)
        self.counts[(kind + ":alone", who)] = self.counts.get((kind + ":alone", who), 0) + 1
        n = self.counts[(kind, who)] = self.counts.get((kind, who), 0) + 1
        return n, seconds_left(window, now)


class RedisGuard:
    """This process's view of whether its Redis answers.

    After an outage error it reports Redis unavailable for ``retry_s`` [s]; the next use after
    that asks Redis again. Per process by design: it is what this process saw, which no other
    process needs.
    """

    def __init__(self, retry_s: float = RETRY_S, clock: Callable[[], float] = time.monotonic):
        self.retry_s = retry_s
        self._clock = clock
        self._down_until: float | None = None  # [monotonic s] None: Redis answered last time

    @property
    def available(self) -> bool:
        return self._down_until is None or self._clock() >= self._down_until

    @property
    def retry_after_s(self) -> float:
        """[s] until this process asks Redis again (the retry period while it answers)."""
        if self._down_until is None:
            return self.retry_s
        return max(0.0, self._down_until - self._clock())

    def failed(self, exc: BaseException) -> None:
        if self._down_until is None:
            log.warning("Redis did not answer (%s: %s): serving without it, asking again every %.1f s",
                        type(exc).__name__, exc, self.retry_s)
        self._down_until = self._clock() + self.retry_s

    def answered(self) -> None:
        if self._down_until is not None:
            log.warning("Redis answers again")
        self._down_until = None

    @contextmanager
    def using(self) -> Iterator[None]:
        """Wrap Redis calls: RedisUnavailable at once while Redis is down, or when the calls meet an outage.

        ::

            with guard.using():
                await client.set(key, value)
        """
        if not self.available:
            raise RedisUnavailable("Redis is not answering", self.retry_after_s)
        try:
            yield
        except OUTAGE_ERRORS as exc:
            self.failed(exc)
            raise RedisUnavailable(f"Redis did not answer: {type(exc).__name__}", self.retry_after_s) from exc
        self.answered()


class Namespace:
    """Builds this deployment's keys: ``Namespace("pvsettle:").key("lock", "cycle")``."""

    def __init__(self, prefix: str):
        self.prefix = prefix

    def key(self, *parts: object) -> str:
        return self.prefix + ":".join(str(p) for p in parts)

    async def delete_all(self, client: redis_asyncio.Redis) -> int:
        """Delete every key of this namespace (test clean-up); returns how many."""
        deleted = 0
        async for key in client.scan_iter(match=self.prefix + "*", count=500):
            deleted += await client.delete(key)
        return deleted
