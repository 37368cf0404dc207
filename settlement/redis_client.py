"""Redis through redis-py's ``redis.asyncio``, or fakeredis's in-process emulation behind the same
client interface for the embedded default, so there is one code path.

Every key goes through a :class:`Namespace`, so several deployments or test runs share one Redis
without touching each other's keys.
"""

from __future__ import annotations

import redis.asyncio as redis_asyncio

# Bounded so that an unreachable Redis answers an error quickly instead of hanging a request.
CONNECT_TIMEOUT_S = 1.0
COMMAND_TIMEOUT_S = 2.0


def open_redis(url: str) -> redis_asyncio.Redis:
    """A client for ``url``; empty means the in-process emulation (one process only)."""
    if not url:
        import fakeredis

        return fakeredis.FakeAsyncRedis(decode_responses=False)
    return redis_asyncio.Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=COMMAND_TIMEOUT_S,
        health_check_interval=30,
    )


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
