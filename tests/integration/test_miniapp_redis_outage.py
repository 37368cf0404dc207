"""The mini-program API with its Redis hung (SIGSTOP) or gone (killed), then back.

Each test starts a redis-server of its own on a free port (no persistence), points the whole
server app at it, logs owners in, and then takes Redis away: reads of plants, forms and bills
still answer 200 from the database, logins work, a logged-out token stays refused, rate limits
still hold (per process), the live stream and logout answer 503 with Retry-After, and /healthz
says ``degraded``. Each answer must come within :data:`ANSWER_BOUND_S` — a bound against
hanging on Redis (the client's 2 s of old), not a benchmark. Then Redis comes back and the API
uses it again.

The database is the suite's (SQLite, or PostgreSQL when PVSETTLE_DATABASE_URL says so).
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from settlement import models as m
from settlement.infra.redis_client import Namespace, open_redis
from settlement.owners.sessions import session_key_name
from tests.integration.miniapp_support import *  # noqa: F403
from tests.integration.miniapp_support import login, owner_world

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs the redis-server binary")

ANSWER_BOUND_S = 1.0  # [s] generous on a shared 2-core machine: Redis's timeout here is 0.3 s
READY_WITHIN_S = 15.0  # [s] for a started or resumed Redis to be used again


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OwnRedis:
    """A redis-server process this test starts, pauses, resumes, kills and starts again."""

    def __init__(self, port: int):
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.proc: subprocess.Popen | None = None

    async def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + READY_WITHIN_S
        while not await self._pong():
            assert self.proc.poll() is None, "redis-server exited at start"
            assert time.monotonic() < deadline, "redis-server did not answer PING"
            await asyncio.sleep(0.05)

    async def _pong(self) -> bool:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        try:
            writer.write(b"PING\r\n")
            return await asyncio.wait_for(reader.readline(), 1) == b"+PONG\r\n"
        except (OSError, TimeoutError):
            return False
        finally:
            writer.close()
            await writer.wait_closed()

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGCONT)  # a stopped process dies only once it runs
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill()


@pytest.fixture
async def own_redis() -> AsyncIterator[OwnRedis]:
    server = OwnRedis(_free_port())
    await server.start()
    yield server
    server.stop()


@pytest.fixture
async def settings(settings, own_redis):
    """The suite's settings (its database), with this test's own Redis and short Redis timeouts."""
    return dataclasses.replace(settings, redis_url=own_redis.url, redis_connect_timeout_ms=300,
                               redis_timeout_ms=300, redis_retry_ms=500)


async def _timed(call: Awaitable) -> tuple[object, float]:
    started = time.monotonic()
    resp = await call
    await resp.read()
    return resp, time.monotonic() - started


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + READY_WITHIN_S
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


def _reads(world) -> list[str]:
    return ["/api/v1/me", "/api/v1/plants", f"/api/v1/plants/{world.plant.id}", "/api/v1/forms",
            f"/api/v1/forms/{world.form.id}", "/api/v1/bills", f"/api/v1/bills/{world.bill.id}",
            f"/api/v1/plants/{world.plant.id}/history?span=month"]


async def _check_serving_without_redis(api, fake_wechat, world, owner: dict, closed: dict) -> tuple[dict, dict]:
    """What must hold while Redis is away; returns a token made then and one whose logout was refused."""
    for path in _reads(world):
        resp, took = await _timed(api.get(path, headers=owner))
        assert resp.status == 200, (path, await resp.text())
        assert took < ANSWER_BOUND_S, (path, took)
    plants = await (await api.get("/api/v1/plants", headers=owner)).json()
    assert plants["items"][0]["id"] == world.plant.id and plants["items"][0]["status"] == "unknown"
    forms = await (await api.get("/api/v1/forms", headers=owner)).json()
    assert [f["id"] for f in forms["items"]] == [world.form.id]
    bill = await (await api.get(f"/api/v1/bills/{world.bill.id}", headers=owner)).json()
    assert bill["total_fen"] == 123456 and bill["owed_fen"] == 123456 - 20000

    health, took = await _timed(api.get("/healthz"))
    body = await health.json()
    assert health.status == 200 and body["status"] == "degraded" and body["db"] == "ok", body
    assert body["redis"].startswith("error:")
    assert took < 2.0  # /healthz's own check gives up after 1.5 s

    # a token logged out before the outage stays refused: the database has its logout
    resp, took = await _timed(api.get("/api/v1/me", headers=closed))
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "session_closed"
    assert took < ANSWER_BOUND_S

    # logging in works; WeChat's session_key is not kept (a warning says so), the token is
    started = time.monotonic()
    fresh = await login(api, fake_wechat, "o-during-outage")
    assert time.monotonic() - started < ANSWER_BOUND_S
    assert (await api.get("/api/v1/me", headers=fresh)).status == 200

    # the live stream cannot be served without Redis pub/sub: a fast 503 saying when to retry
    resp, took = await _timed(api.get(f"/api/v1/plants/{world.plant.id}/live", headers=owner))
    assert resp.status == 503 and int(resp.headers["Retry-After"]) >= 1
    assert (await resp.json())["error"]["code"] == "redis_unavailable"
    assert took < ANSWER_BOUND_S

    # a logout cannot be made final in Redis now: 503, and the database refuses the token already
    leaving = await login(api, fake_wechat, "o-leaving")
    resp, took = await _timed(api.delete("/api/v1/session", headers=leaving))
    assert resp.status == 503 and int(resp.headers["Retry-After"]) >= 1 and took < ANSWER_BOUND_S
    assert (await api.get("/api/v1/me", headers=leaving)).status == 401
    return fresh, leaving


async def _check_redis_used_again(api, own_redis, settings, world, owner: dict, closed: dict, fresh: dict,
                                  leaving: dict) -> None:
    async def healthy() -> bool:
        return (await (await api.get("/healthz")).json())["status"] == "ok"

    await _until(healthy, "/healthz says ok again")
    client, ns = open_redis(own_redis.url), Namespace(settings.redis_prefix)
    try:
        identity_id = int(owner["Authorization"].split(".")[1])

        async def counted() -> int:
            keys = [k async for k in client.scan_iter(match=ns.key("ratelimit", "identity", identity_id, "*"))]
            return sum(int(v) for v in await client.mget(keys)) if keys else 0

        async def counted_in_redis() -> bool:
            # before and after: a paused Redis runs the commands it was sent meanwhile when it resumes
            before = await counted()
            assert (await api.get("/api/v1/me", headers=owner)).status == 200
            return await counted() > before

        await _until(counted_in_redis, "requests are counted in Redis again")
        for path in _reads(world):
            assert (await api.get(path, headers=owner)).status == 200, path
        assert (await api.get("/api/v1/me", headers=fresh)).status == 200  # made without Redis, known now
        assert (await api.get("/api/v1/me", headers=closed)).status == 401  # never back to life
        # the logout refused during the outage is repeated and finished
        assert (await api.delete("/api/v1/session", headers=leaving)).status == 204
        resp = await api.get("/api/v1/me", headers=leaving)
        assert resp.status == 401 and (await resp.json())["error"]["code"] == "session_closed"
        sid = leaving["Authorization"].split()[1].split(".")[2]
        assert await client.get(session_key_name(ns, sid)) == b"closed"
        assert await m.MiniProgramSession.filter(session_id=sid, closed_at__isnull=False).exists()
    finally:
        await client.aclose()


async def _owner_and_closed(api, fake_wechat, settings):
    world, _ = await owner_world("PV-R", "常州某厂", "o-owner", settings.mp_appid)
    owner = await login(api, fake_wechat, "o-owner")
    closed = await login(api, fake_wechat, "o-owner")
    assert (await api.delete("/api/v1/session", headers=closed)).status == 204
    for path in _reads(world):
        assert (await api.get(path, headers=owner)).status == 200, path
    return world, owner, closed


async def test_api_serves_while_redis_hangs_then_uses_it_again(api, fake_wechat, settings, own_redis):
    world, owner, closed = await _owner_and_closed(api, fake_wechat, settings)
    own_redis.pause()
    try:
        fresh, leaving = await _check_serving_without_redis(api, fake_wechat, world, owner, closed)
    finally:
        own_redis.resume()
    await _check_redis_used_again(api, own_redis, settings, world, owner, closed, fresh, leaving)


async def test_api_serves_while_redis_is_gone_then_restarted_empty(api, fake_wechat, settings, own_redis):
    world, owner, closed = await _owner_and_closed(api, fake_wechat, settings)
    own_redis.kill()
    fresh, leaving = await _check_serving_without_redis(api, fake_wechat, world, owner, closed)
    await own_redis.start()  # a new Redis, which knows no session: the database does
    await _check_redis_used_again(api, own_redis, settings, world, owner, closed, fresh, leaving)


async def test_rate_limit_holds_without_redis(api, fake_wechat, settings, own_redis):
    world, _ = await owner_world("PV-L", "限流", "o-limited", settings.mp_appid)
    headers = await login(api, fake_wechat, "o-limited")
    own_redis.kill()
    limit = settings.api_rate_limit
    if time.time() % 60 > 45:  # all of it in one one-minute window, or the count starts again
        await asyncio.sleep(60 - time.time() % 60)
    statuses = [(await api.get("/api/v1/me", headers=headers)).status for _ in range(limit + 1)]
    assert statuses[:limit] == [200] * limit and statuses[limit] == 429
    resp = await api.get("/api/v1/bills", headers=headers)
    assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
