"""Fixtures for code that talks to WeChat: a fake WeChat server on a real port and the real adapter
pointed at it. Import them all into a test module (pytest finds fixtures by the module's names)::

    from tests.integration.wechat_fixtures import *  # noqa: F403

- ``fake_wechat``: a started :class:`settlement.fakes.wechat_server.FakeWechat` on 127.0.0.1, port 0,
  that knows the test settings' mini-program and official account (appid/secret from ``settings``);
  ``.base_url``, registration, fault injection, ``.calls`` and ``.sent``.
- ``wechat_settings``: the test ``settings`` with ``wechat_api_base`` pointing at the fake (for
  ``create_app``).
- ``wechat_redis``: a Redis client on the test's Redis (or the in-process emulation).
- ``wechat_api_factory``: ``await wechat_api_factory(**options)`` builds another adapter against the
  fake, as another process would: its own ClientSession, and its own Redis connection when a real
  Redis is used (the emulation lives in one process, so it is shared). ``options`` go to
  :class:`AiohttpWechatApi` (``call_timeout``, ``renew_before``, ``backoff``, ``clock``, secrets…).
- ``wechat_api``: one adapter from the factory with the defaults.
- ``SettableClock``: a clock to share between the fake and an adapter, moved with ``advance``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import redis.asyncio as redis_asyncio

from settlement.adapters.wechat_http import AiohttpWechatApi
from settlement.fakes.wechat_server import FakeWechat
from settlement.infra.redis_client import Namespace, open_redis
from webapp.settings import Settings

__all__ = ["SettableClock", "fake_wechat", "wechat_settings", "wechat_redis", "wechat_api_factory",
           "wechat_api"]

# Tests wait little between token fetch retries; the production default is 0.2 s.
TEST_BACKOFF = 0.01


class SettableClock:
    """Seconds since the epoch that move only when told to."""

    def __init__(self, start: float | None = None):
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
async def fake_wechat(settings: Settings) -> AsyncIterator[FakeWechat]:
    fake = FakeWechat()
    fake.register_app(settings.mp_appid, settings.mp_secret, "mp")
    fake.register_app(settings.oa_appid, settings.oa_secret, "oa")
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
def wechat_settings(settings: Settings, fake_wechat: FakeWechat) -> Settings:
    return dataclasses.replace(settings, wechat_api_base=fake_wechat.base_url)


@pytest.fixture
async def wechat_redis(settings: Settings) -> AsyncIterator[redis_asyncio.Redis]:
    client = open_redis(settings.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def wechat_api_factory(wechat_settings: Settings, wechat_redis: redis_asyncio.Redis
                             ) -> AsyncIterator[Callable[..., Awaitable[AiohttpWechatApi]]]:
    opened: list[Any] = []

    async def make(**options: Any) -> AiohttpWechatApi:
        session = aiohttp.ClientSession()
        opened.append(session)
        if wechat_settings.redis_url:
            redis = open_redis(wechat_settings.redis_url)
            opened.append(redis)
        else:
            redis = wechat_redis
        options.setdefault("backoff", TEST_BACKOFF)
        return AiohttpWechatApi.from_settings(wechat_settings, session, redis,
                                              Namespace(wechat_settings.redis_prefix), **options)

    yield make
    for resource in reversed(opened):
        await (resource.close() if isinstance(resource, aiohttp.ClientSession) else resource.aclose())


@pytest.fixture
async def wechat_api(wechat_api_factory: Callable[..., Awaitable[AiohttpWechatApi]]) -> AiohttpWechatApi:
    return await wechat_api_factory()
