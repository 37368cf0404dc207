"""One cleanup_ctx per resource: start, yield, stop. aiohttp runs a cleanup only when its start-up
finished, and stops them in reverse order."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from settlement.infra import db
from settlement.infra.redis_client import Namespace, RedisGuard, open_redis
from webapp.keys import http_client_key, redis_guard_key, redis_key, redis_ns_key, settings_key

log = logging.getLogger("pvsettle.server")

# WeChat answers in well under a second; a call that takes longer than this is treated as failed
# so that a slow upstream cannot pile up requests.
OUTBOUND_TIMEOUT = aiohttp.ClientTimeout(total=10, connect=3)


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    await db.open_database(settings.database_url)
    log.info("database connected", extra={"backend": "postgres" if settings.uses_postgres else "sqlite"})
    yield
    await db.close_database()


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    client = open_redis(settings.redis_url, connect_timeout_s=settings.redis_connect_timeout_ms / 1000,
                        timeout_s=settings.redis_timeout_ms / 1000)
    app[redis_key] = client
    app[redis_ns_key] = Namespace(settings.redis_prefix)
    app[redis_guard_key] = RedisGuard(retry_s=settings.redis_retry_ms / 1000)
    # Not pinged here: a server whose Redis is down still starts and says so on /healthz.
    yield
    await client.aclose()


async def http_client_ctx(app: web.Application) -> AsyncIterator[None]:
    """The one outbound ClientSession (WeChat API calls)."""
    async with aiohttp.ClientSession(timeout=OUTBOUND_TIMEOUT, raise_for_status=False) as session:
        app[http_client_key] = session
        yield
