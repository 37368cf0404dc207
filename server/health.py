"""Operator endpoints: /healthz really checks the database and Redis, /metrics for Prometheus."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from settlement.infra import db
from webapp.keys import metrics_registry_key, redis_key

# A dependency that does not answer within this is reported down: health checks must answer
# quickly even when a dependency hangs (load balancers time out after a few seconds).
CHECK_TIMEOUT_S = 1.5

routes = web.RouteTableDef()


async def _check(probe: Callable[[], Awaitable[object]]) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await probe()
    except TimeoutError:
        return "error: no answer within %.1f s" % CHECK_TIMEOUT_S
    except Exception as exc:  # any failure of the dependency is the answer, not a crash
        return f"error: {type(exc).__name__}"
    return "ok"


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """``ok``; ``degraded`` (still 200) when only Redis is down, since the API serves without it
    (rate limits per process, no live stream); ``unavailable`` (503) when the database is down."""
    db_state, redis_state = await asyncio.gather(_check(db.ping), _check(request.app[redis_key].ping))
    if db_state != "ok":
        status = "unavailable"
    else:
        status = "ok" if redis_state == "ok" else "degraded"
    body = {"status": status, "db": db_state, "redis": redis_state}
    return web.json_response(body, status=503 if status == "unavailable" else 200)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[metrics_registry_key])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
