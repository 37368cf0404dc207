"""The outbox dispatcher as a background task of every server process (cleanup_ctx).

It is built from the settings (``PVSETTLE_NOTIFY_TEMPLATES``, ``PVSETTLE_NOTIFY_RATE``,
``PVSETTLE_DISPATCHER_INTERVAL``) on the app's WeChat port and Redis, drains what is due, then
polls every interval. Several processes may run it at once: rows are claimed
(:mod:`settlement.notify.dispatcher`). ``PVSETTLE_DISPATCHER_INTERVAL=0`` runs none in this process.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

from aiohttp import web

from settlement.infra import background
from settlement.billing import ebill_links
from settlement.notify.dispatcher import Dispatcher
from webapp.keys import notify_apps_key, redis_key, redis_ns_key, settings_key, wechat_api_key
from webapp.settings import Settings

log = logging.getLogger("pvsettle.dispatcher")


def ebill_signer(settings: Settings) -> Callable[[str], str]:
    """An e-bill path of a notification as the absolute signed link users open."""
    origin = settings.public_url or f"http://{settings.host}:{settings.port}"
    return lambda path: origin + ebill_links.sign_path(path, settings.secret_key)


def build_dispatcher(app: web.Application, **options) -> Dispatcher:
    """A dispatcher on the app's resources; ``options`` go to :class:`Dispatcher`."""
    settings: Settings = app[settings_key]
    apps = app[notify_apps_key]  # the same apps as the rows were written for
    options.setdefault("rate_per_s", settings.notify_rate)
    if settings.secret_key:
        options.setdefault("sign_link", ebill_signer(settings))
    return Dispatcher(app[wechat_api_key], app[redis_key], app[redis_ns_key],
                      template_ids=json.loads(settings.notify_templates), mp_appid=apps.mp_appid,
                      oa_appid=apps.oa_appid, **options)


async def dispatcher_ctx(app: web.Application) -> AsyncIterator[None]:
    """Needs the database, Redis and ``wechat_api_ctx`` before it."""
    settings: Settings = app[settings_key]
    interval = float(Decimal(settings.dispatcher_interval))
    if interval == 0:
        yield
        return
    dispatcher = build_dispatcher(app)
    # database, Redis or WeChat away: logged, tried again on the next poll
    task = asyncio.create_task(background.repeat(dispatcher.drain, interval, log=log, failure="outbox dispatch failed"),
                               name="pvsettle-dispatcher")
    yield
    await background.stop(task)
