"""Invalidating the mini-program's cached view of who may see what.

The mini-program API caches, per WeChat user, the owner they are bound to and the plants they may
see (``miniprogram_api.gate``), for a few seconds, under a generation number. Whoever changes a
user's binding or grants — the API itself, the bot, a staff tool — calls :func:`invalidate` after
the change commits, and every process sees the change on that user's next request.
"""

from __future__ import annotations

import redis.asyncio as redis_asyncio

from settlement.infra.redis_client import Namespace

GENERATION_TTL_S = 24 * 3600  # far longer than a cached principal lives


def principal_key_prefix(ns: Namespace, identity_id: int) -> str:
    return ns.key("mp-principal", identity_id) + ":"


def generation_key(ns: Namespace, identity_id: int) -> str:
    return ns.key("mp-principal-gen", identity_id)


async def invalidate(client: redis_asyncio.Redis, ns: Namespace, *identity_ids: int) -> None:
    """What these WeChat users may see has changed: their cached principals are not read again."""
    async with client.pipeline(transaction=False) as pipe:
        for identity_id in identity_ids:
            pipe.incr(generation_key(ns, identity_id))
            pipe.expire(generation_key(ns, identity_id), GENERATION_TTL_S)
        await pipe.execute()
