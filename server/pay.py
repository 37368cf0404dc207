"""The WeChat Pay port as an app resource, and the pay jobs the scheduler runs.

:func:`pay_api_ctx` opens wechatpayv3's client once (its httpx pool; in platform-certificate mode
the certificates are fetched) and stores the port under ``pay_api_key``. Public-key mode when
``PVSETTLE_PAY_PUBLIC_KEY_PATH`` and ``PVSETTLE_PAY_PUBLIC_KEY_ID`` are set, certificate mode
otherwise. Requests go to ``PVSETTLE_PAY_API_BASE``.

A server without the pay settings (tests, a half-configured demo) starts without WeChat Pay and
says so in its log: /pay/notify then answers 503 (WeChat Pay sends again later) and paying a bill
answers 503. ``pvsettle serve`` does the same when none of the seven WeChat Pay settings is set,
and refuses to start when only some are (:mod:`webapp.settings`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from settlement.adapters.wechatpay_v3 import open_wechat_pay
from settlement.notify.outbox import NotifyApps
from settlement.ports.pay import PayCallFailed, WechatPay
from webapp.keys import pay_api_key, settings_key
from webapp.settings import Settings

log = logging.getLogger("pvsettle.pay")
REQUIRED = ("pay_mchid", "pay_apiv3_key", "pay_private_key_path", "pay_cert_serial", "pay_notify_url", "mp_appid")

def missing_settings(settings: Settings) -> list[str]:
    return [Settings.env_name(name) for name in REQUIRED if not getattr(settings, name)]


def open_from_settings(settings: Settings):
    """``open_wechat_pay`` with the settings' keys read from their files."""
    public_key = None
    if settings.pay_public_key_path and settings.pay_public_key_id:
        public_key = Path(settings.pay_public_key_path).read_text()
    return open_wechat_pay(
        mchid=settings.pay_mchid, appid=settings.mp_appid, apiv3_key=settings.pay_apiv3_key,
        private_key_pem=Path(settings.pay_private_key_path).read_text(), cert_serial=settings.pay_cert_serial,
        notify_url=settings.pay_notify_url, api_base=settings.pay_api_base, public_key_pem=public_key,
        public_key_id=settings.pay_public_key_id if public_key else None)


async def pay_api_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    missing = missing_settings(settings)
    if missing:
        log.warning("WeChat Pay is off: %s not set", ", ".join(missing))
        yield
        return
    try:
        opened = open_from_settings(settings)
        pay = await opened.__aenter__()
    except Exception:
        # certificate mode with WeChat Pay unreachable, or unreadable keys: serve the rest
        log.exception("WeChat Pay is off: the client could not be opened")
        yield
        return
    app[pay_api_key] = pay
    try:
        yield
    finally:
        await opened.__aexit__(None, None, None)


async def scheduled(now: dt.datetime, pay: WechatPay | None, *, apps: NotifyApps) -> dict[str, int]:
    """The scheduler's pay work: query silent orders and refunds, and reconcile yesterday's trade
    bill once it is ready. Nothing when this process has no WeChat Pay (``pay`` is None: the
    scheduler's context holds what ``pay_api_ctx`` stored under ``pay_api_key``, if anything).
    ``apps`` are our WeChat apps, for the receipts of payments found by the queries."""
    from settlement.pay import reconcile as pay_reconcile

    if pay is None:
        return {}
    done = await pay_reconcile.reconcile_orders(pay, now=now, apps=apps)
    # top-ups whose notification never came
    done.update(await pay_reconcile.reconcile_topups(pay, now=now, apps=apps))
    try:
        report = await pay_reconcile.trade_bill_due(pay, now=now)
    except PayCallFailed as exc:
        log.warning("trade bill not reconciled yet: %s", exc)  # the next tick tries again
        report = None
    done["trade_bill_mismatches"] = report.mismatch_count if report is not None else 0
    return done
