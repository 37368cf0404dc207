"""The sandbox's WeChat and WeChat Pay: the project's fakes (:mod:`settlement.fakes`) served on
ports of their own inside the demo process, with the server's outbound clients pointed at them.

They speak the real protocols, so everything else runs the production code: code2session and
stable_token through :mod:`settlement.adapters.wechat_http`, subscribe / template /
customer-service sends through the dispatcher and the bot, prepay, query, refund and trade bill
through wechatpayv3, and a payment comes back as a signed, AES-256-GCM encrypted v3 notification
POSTed to ``/pay/notify``.

Each fake gets a port of its own rather than a path under the demo's: WeChat Pay signs the
request path, and the clients sign ``/v3/…`` as on the real host.

:func:`sandbox_fakes_ctx` must run before the resources that read the settings (it is inserted
first): it replaces the app's settings with a copy whose ``wechat_api_base`` / ``pay_api_base``,
WeChat Pay public key (the fake's platform key) and notify URL (this process) fit the fakes. A
base URL given in the environment is kept and that fake is not started: the demo then talks to
whatever the user pointed it at, and the sandbox says the part it cannot play is off.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from cryptography.hazmat.primitives import serialization

from server import pay as server_pay
from settlement.infra import background
from settlement.fakes.pay_server import FakeWechatPay, public_pem
from settlement.fakes.wechat_server import FakeWechat
from webapp.keys import settings_key
from webapp.settings import PAY_API_BASE, WECHAT_API_BASE, Settings
from settlement.clock import utc_now

log = logging.getLogger("pvsettle.sandbox")
REFUND_AFTER = dt.timedelta(seconds=3)  # the real one takes minutes to days; a sandbox user waits seconds
REFUND_POLL_S = 1.0

sandbox_wechat_key = web.AppKey("sandbox_wechat_key", FakeWechat)
sandbox_pay_key = web.AppKey("sandbox_pay_key", FakeWechatPay)


def own_origin(settings: Settings) -> str:
    """Where this process answers, as the fakes on the same machine reach it."""
    host = "127.0.0.1" if settings.host in ("", "0.0.0.0", "::") else settings.host
    return f"http://{host}:{settings.port}"


def make_fake_pay(settings: Settings) -> FakeWechatPay:
    """WeChat Pay for the demo merchant: it checks requests against the merchant's key (the
    public half of ``PVSETTLE_PAY_PRIVATE_KEY_PATH``) and signs with a platform key of its own."""
    private = serialization.load_pem_private_key(Path(settings.pay_private_key_path).read_bytes(), password=None)
    return FakeWechatPay(mchid=settings.pay_mchid, appid=settings.mp_appid, apiv3_key=settings.pay_apiv3_key,
                         merchant_public_key_pem=public_pem(private), merchant_serial=settings.pay_cert_serial)


async def sandbox_fakes_ctx(app: web.Application) -> AsyncIterator[None]:
    """Start the fakes, point the settings at them; stop them after everything else closed."""
    settings: Settings = app[settings_key]
    changes: dict[str, str] = {}
    wechat: FakeWechat | None = None
    pay: FakeWechatPay | None = None
    try:
        if settings.wechat_api_base == WECHAT_API_BASE:
            wechat = FakeWechat()
            wechat.register_app(settings.mp_appid, settings.mp_secret, "mp")
            wechat.register_app(settings.oa_appid, settings.oa_secret, "oa")
            # the two apps share an open-platform account, so WeChat tells each user's unionid in
            # both: binding in one binds the other (settlement.owners.bindings)
            wechat.share_open_platform(settings.mp_appid, settings.oa_appid)
            from sandbox.people import USERS

            for person in USERS:
                wechat.register_user(settings.mp_appid, person.mp_openid, unionid=person.unionid)
                wechat.register_user(settings.oa_appid, person.oa_openid, unionid=person.unionid)
            changes["wechat_api_base"] = await wechat.start("127.0.0.1", 0)
            app[sandbox_wechat_key] = wechat
        else:
            log.warning("sandbox WeChat is off: PVSETTLE_WECHAT_API_BASE is set to %s", settings.wechat_api_base)
        if settings.pay_api_base == PAY_API_BASE and not server_pay.missing_settings(settings):
            pay = make_fake_pay(settings)
            base = await pay.start("127.0.0.1", 0)
            # the merchant "downloads" the platform's public key, as a public-key-mode merchant does
            Path(settings.var_dir).mkdir(parents=True, exist_ok=True)
            public_key = Path(settings.var_dir) / "sandbox-wechatpay-public.pem"
            public_key.write_text(pay.public_key_pem)
            changes.update(pay_api_base=base, pay_public_key_path=str(public_key),
                           pay_public_key_id=pay.public_key_id, pay_notify_url=own_origin(settings) + "/pay/notify")
            app[sandbox_pay_key] = pay
        else:
            log.warning("sandbox WeChat Pay is off: PVSETTLE_PAY_API_BASE is set or the pay settings are missing")
        app[settings_key] = dataclasses.replace(settings, **changes)
        log.info("sandbox fakes started", extra={"sandbox": changes})
        yield
    finally:
        if pay is not None:
            await pay.close()
        if wechat is not None:
            await wechat.close()


async def settle_refunds(pay: FakeWechatPay, now: dt.datetime) -> int:
    """WeChat Pay finishing the refunds it has held for ``REFUND_AFTER``: each becomes SUCCESS and
    its REFUND.SUCCESS notification (signed, encrypted) goes to the refund's notify URL, or the
    order's. A notification that is not answered 2xx is left to the reconciliation's query, as
    after the real one's retries. Returns how many were settled."""
    settled = 0
    for item in list(pay.refunds.values()):
        if item.status != "PROCESSING" or now - item.created < REFUND_AFTER:
            continue
        pay.settle_refund(item.out_refund_no, at=now)
        settled += 1
        status, answer = await pay.notify_refund(item.notify_url or item.order.notify_url, item.out_refund_no)
        if status >= 300:
            log.warning("sandbox refund notification answered %s: %s", status, answer[:200])
    return settled


async def refund_settler_ctx(app: web.Application) -> AsyncIterator[None]:
    """After everything else has started (the notifications go to this process's /pay/notify)."""
    pay = app.get(sandbox_pay_key)
    if pay is None:
        yield
        return
    task = asyncio.create_task(  # a failure is tried again on the next poll
        background.repeat(lambda: settle_refunds(pay, utc_now()), REFUND_POLL_S, log=log,
                          failure="sandbox refund settling failed"), name="pvsettle-sandbox-refunds")
    yield
    await background.stop(task)
