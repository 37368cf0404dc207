"""The WeChat API adapter as an app resource: built from the settings on the app's one outbound
ClientSession and Redis, stored under ``wechat_api_key``."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from settlement.adapters.wechat_http import AiohttpWechatApi
from webapp.keys import http_client_key, redis_key, redis_ns_key, settings_key, wechat_api_key


async def wechat_api_ctx(app: web.Application) -> AsyncIterator[None]:
    """Needs ``redis_ctx`` and ``http_client_ctx`` before it; holds nothing of its own to close."""
    app[wechat_api_key] = AiohttpWechatApi.from_settings(app[settings_key], app[http_client_key],
                                                         app[redis_key], app[redis_ns_key])
    yield
