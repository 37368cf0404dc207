"""The composition root: builds the root aiohttp app from settings, mounts the sub-apps."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry

import bot.app
import bot.tasks
import ingest_api.app
import miniprogram_api.app
import pages.app
import pay_api.app
from server import health
from settlement.notify.outbox import NotifyApps
from webapp.keys import metrics_registry_key, notify_apps_key, settings_key
from server.middleware import (
    MAX_REQUEST_LINE_BYTES,
    error_middleware,
    metrics_middleware_factory,
    request_id_middleware,
    url_length_middleware,
)
from server.resources import database_ctx, http_client_ctx, redis_ctx
from server.dispatcher import dispatcher_ctx
from server.pay import pay_api_ctx
from server.scheduler import scheduler_ctx
from webapp.settings import Settings
from server.telemetry_mqtt import telemetry_mqtt_ctx
from server.wechat import wechat_api_ctx

# Large enough for a photo attached to a dispute or fault report; anything bigger is refused (413).
MAX_BODY_BYTES = 8 * 1024 * 1024


def create_app(settings: Settings) -> web.Application:
    registry = CollectorRegistry()
    app = web.Application(
        middlewares=[request_id_middleware, metrics_middleware_factory(registry), url_length_middleware,
                     error_middleware],
        client_max_size=MAX_BODY_BYTES,
        handler_args={"max_line_size": MAX_REQUEST_LINE_BYTES},
    )
    app[settings_key] = settings
    app[notify_apps_key] = NotifyApps.from_settings(settings)
    app[metrics_registry_key] = registry
    app.cleanup_ctx.extend([database_ctx, redis_ctx, http_client_ctx, wechat_api_ctx, pay_api_ctx, scheduler_ctx])
    app.cleanup_ctx.append(dispatcher_ctx)  # the notification outbox, sent while everything above is open
    # last, so torn down first: the bot's background work finishes while the rest is still open
    app.cleanup_ctx.append(bot.tasks.bot_tasks_ctx)
    app.cleanup_ctx.append(telemetry_mqtt_ctx)  # data loggers' telemetry over MQTT, when PVSETTLE_MQTT_URL is set
    app.add_routes(health.routes)
    app.add_subapp("/api/v1", miniprogram_api.app.create_app())
    app.add_subapp("/wechat", bot.app.create_app())
    app.add_subapp("/ingest/v1", ingest_api.app.create_app())
    app.add_subapp("/e", pages.app.create_app())
    app.add_subapp("/pay", pay_api.app.create_app())
    return app
