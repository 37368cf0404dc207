"""``GET /plants/{id}/live``: the plant's live state as Server-Sent Events.

Any process can serve any client: a stream subscribes to the plant's Redis pub/sub channel
(:mod:`settlement.telemetry.live`), so a sample ingested by another process reaches it. On connect the
last known state is sent first (subscribing before reading it, so nothing published in between
is lost); then every state published, each as ``event: state`` with the JSON in ``data``; a
comment line ``: heartbeat`` every 15 s keeps proxies from closing a quiet stream and finds
clients that left.

Streams end cleanly when the client goes away (its connection closes: noticed within a second)
and when the server shuts down: aiohttp waits for running handlers before it runs the cleanup
part of a cleanup_ctx, so the open streams are tracked (registry made by :func:`streams_ctx`)
and told to end on ``on_shutdown`` (:func:`end_streams`), which comes first. A stopping server
therefore closes every stream within about a second instead of waiting out its shutdown timeout.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web
from redis.exceptions import RedisError

from miniprogram_api.common import api
from miniprogram_api.registry import Call
from settlement.telemetry import live
from settlement.owners.access import Right
from settlement.infra.redis_client import RedisUnavailable
from webapp.keys import redis_guard_key, redis_key, redis_ns_key

log = logging.getLogger("pvsettle.live")

HEARTBEAT_S = 15.0
POLL_S = 1.0  # how often a quiet stream looks at its client and the server's shutdown
END_WAIT_S = 5.0


class LiveStreams:
    """The open streams of this process, so shutdown can end them."""

    def __init__(self) -> None:
        self.stopping = asyncio.Event()
        self.open: set[asyncio.Task] = set()

    async def end_all(self) -> None:
        self.stopping.set()
        pending = [t for t in self.open if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=END_WAIT_S)


live_streams_key = web.AppKey("live_streams_key", LiveStreams)


async def streams_ctx(app: web.Application) -> AsyncIterator[None]:
    app[live_streams_key] = LiveStreams()
    yield
    await app[live_streams_key].end_all()  # normally done already by end_streams


async def end_streams(app: web.Application) -> None:
    await app[live_streams_key].end_all()


def _event(body: str | bytes) -> bytes:
    text = body.decode() if isinstance(body, bytes) else body
    # one data line per line of the payload (SSE); JSON from json.dumps has none, but be exact
    return ("event: state\n" + "".join(f"data: {line}\n" for line in text.splitlines() or [""]) + "\n").encode()


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


@api.get("/plants/{plant_id}/live", resource="plant", needs=Right.VIEW, stream=True, tag="plants")
async def plant_live(request: web.Request, call: Call):
    """The plant's live power and today's energy as Server-Sent Events (``event: state``)."""
    streams = request.app[live_streams_key]
    client, ns = request.config_dict[redis_key], request.config_dict[redis_ns_key]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                           "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    channel = live.channel(ns, call.plant_id)
    pubsub = client.pubsub()
    try:
        with request.config_dict[redis_guard_key].using():  # at once while this process knows Redis is down
            await pubsub.subscribe(channel)
            state = await live.latest_state(client, ns, call.plant_id)  # before the 200: Redis answers
    except (RedisError, RedisUnavailable):
        await pubsub.aclose()
        log.warning("live stream of plant %s: Redis refused the subscription", call.plant_id, exc_info=True)
        raise RedisUnavailable("the live stream needs Redis", request.config_dict[redis_guard_key].retry_after_s) \
            from None
    task = asyncio.current_task()
    streams.open.add(task)
    try:
        await response.prepare(request)
        await response.write(b"retry: 3000\n\n")
        if state is not None:
            await response.write(_event(json.dumps(state, ensure_ascii=False)))
        last_write = time.monotonic()
        while not streams.stopping.is_set() and not _gone(request):
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=POLL_S)
            if message is not None and message.get("type") == "message":
                await response.write(_event(message["data"]))
                last_write = time.monotonic()
            elif time.monotonic() - last_write >= HEARTBEAT_S:
                await response.write(b": heartbeat\n\n")
                last_write = time.monotonic()
    except ConnectionError:  # the client left between two writes
        log.debug("client left the live stream of plant %s", call.plant_id)
    except RedisError:  # Redis went away mid-stream: end it, the client reconnects (retry: 3000)
        log.warning("live stream of plant %s lost Redis", call.plant_id, exc_info=True)
    finally:
        streams.open.discard(task)
        try:
            await pubsub.unsubscribe(channel)
        except RedisError:
            log.debug("live stream of plant %s: unsubscribe failed, closing anyway", call.plant_id)
        finally:
            await pubsub.aclose()
    if response.prepared:
        try:
            await response.write_eof()
        except ConnectionError:
            log.debug("client of plant %s left before the end of its stream", call.plant_id)
    return response
