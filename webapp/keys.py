"""Typed application state, declared once (aiohttp AppKey)."""

from __future__ import annotations

import aiohttp
import redis.asyncio as redis_asyncio
from aiohttp import web
from prometheus_client import CollectorRegistry

from settlement.notify.outbox import NotifyApps
from settlement.ports.device_control import DeviceControl
from settlement.ports.pay import WechatPay
from settlement.ports.tax import TaxInvoicing
from settlement.ports.wechat import WechatApi
from settlement.infra.redis_client import Namespace, RedisGuard
from webapp.settings import Settings

settings_key = web.AppKey("settings_key", Settings)
# our mini-program and official account, from the settings: which channel each message takes
notify_apps_key = web.AppKey("notify_apps_key", NotifyApps)
redis_key = web.AppKey("redis_key", redis_asyncio.Redis)
redis_ns_key = web.AppKey("redis_ns_key", Namespace)
redis_guard_key = web.AppKey("redis_guard_key", RedisGuard)  # this process's view of whether Redis answers
http_client_key = web.AppKey("http_client_key", aiohttp.ClientSession)
metrics_registry_key = web.AppKey("metrics_registry_key", CollectorRegistry)
wechat_api_key = web.AppKey("wechat_api_key", WechatApi)
pay_api_key = web.AppKey("pay_api_key", WechatPay)
# the prepaid switches this process commands; absent: supply commands wait, pending, for a process that has them
device_control_key = web.AppKey("device_control_key", DeviceControl)
# the tax system this process issues e-invoices through; absent: invoice requests wait, requested
tax_key = web.AppKey("tax_key", TaxInvoicing)
