"""The WeChat Pay sub-app, mounted at ``/pay``: ``POST /pay/notify``.

It speaks WeChat Pay's protocol, not the API's: a notification recorded (or already recorded, or
kept for staff) is answered 204 with no body; any failure is a 4xx/5xx with
``{"code": "FAIL", "message": …}``, and WeChat Pay sends it again later (15 s, 15 s, 30 s, 3 m, …).
Deliveries whose signature does not hold are kept in bounded form, and beyond their source's rate
answered 429 and not kept (:mod:`pay_api.limits`, :class:`settlement.pay.payments.Delivery`).
The sub-app's own middleware answers every error in that shape, so the root's JSON error
middleware (``{"error": …}``) never sees an exception from here.

WeChat Pay waits 5 s for the answer: the work is cut off at :data:`DEADLINE` and answered 503
rather than left to time out.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from pay_api.limits import RefusalLimiter
from settlement.pay import payments
from settlement import text as outside_text
from settlement.models import NotificationOutcome
from webapp.client_address import client_of
from webapp.keys import notify_apps_key, pay_api_key, redis_key, redis_ns_key, settings_key

log = logging.getLogger("pvsettle.pay")
DEADLINE = 4.0  # [s] of work before answering 503: WeChat Pay gives up after 5 s
MAX_BODY = 64 * 1024  # [bytes] a notification is about 1 KiB
refusal_limiter_key = web.AppKey("refusal_limiter_key", RefusalLimiter)


def fail(status: int, message: str) -> web.Response:
    return web.json_response({"code": "FAIL", "message": message}, status=status)


@web.middleware
async def fail_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return fail(exc.status, exc.reason)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return fail(500, "internal error")


async def _keep(request: web.Request, record: dict, handled: payments.Handled,
                delivery: payments.Delivery | None) -> payments.Handled:
    """Keep a delivery nothing was recorded from: within the refusal limits when ``delivery`` is
    given, bounded and counted in the cap always; if even that fails, the log has it."""
    try:
        async with asyncio.timeout(1.0):
            if delivery is not None:
                return await payments.keep_unverified(record, handled, delivery)
            await payments.keep_notification(record, handled)
            await payments.prune_unverified(request.config_dict[settings_key].pay_refusals_kept)
    except Exception:
        log.exception("could not keep a failed notification (%s)", handled.reason)
    return handled


def _delivery(request: web.Request, limiter: RefusalLimiter) -> payments.Delivery:
    settings = request.config_dict[settings_key]
    source = client_of(request)

    async def admit() -> bool:
        return await limiter.admit(request.config_dict.get(redis_key), request.config_dict[redis_ns_key], source,
                                   settings.pay_refusal_rate)

    return payments.Delivery(source=source, admit=admit, keep_unverified=settings.pay_refusals_kept)


def _answer(request: web.Request, handled: payments.Handled) -> web.Response:
    if handled.accepted:
        return web.Response(status=204)
    if not handled.kept:
        left = request.app[refusal_limiter_key].retry_after()
        response = fail(429, f"too many refused notifications from this source: try again in {left} s")
        response.headers["Retry-After"] = str(left)
        return response
    return fail(handled.status, handled.reason or "refused")


def _refused_text(body: bytes) -> str | None:
    """What :mod:`settlement.text` refuses in a notification, raw or as a JSON escape
    (``\\u0000``), before anything reads it; None when there is nothing."""
    raw = body.decode("utf-8", errors="replace")
    refused = outside_text.message("the body", raw)
    if refused is not None:
        return refused
    if "\\" not in raw:  # no JSON escape (\uXXXX, \b, \f): nothing a parse could reveal, so no parse
        return None
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        return None  # not JSON: the verification says so
    return outside_text.first_refused(document)


async def notify(request: web.Request) -> web.Response:
    """A payment or refund notification from WeChat Pay."""
    pay = request.config_dict.get(pay_api_key)
    delivery = _delivery(request, request.app[refusal_limiter_key])
    fields = functools.partial(payments.notification_fields, request.headers, source=delivery.source)
    too_large = payments.Handled(413, NotificationOutcome.REFUSED, f"a notification is at most {MAX_BODY} bytes")
    if request.content_length is not None and request.content_length > MAX_BODY:
        record = fields(b"", size=request.content_length)
        return _answer(request, await _keep(request, record, too_large, delivery))
    body = await request.read()
    if len(body) > MAX_BODY:  # sent in chunks, without a Content-Length
        return _answer(request, await _keep(request, fields(body), too_large, delivery))
    refused = _refused_text(body)
    if refused is not None:  # kept without its body, which the database could not hold (settlement.text)
        handled = payments.Handled(400, NotificationOutcome.REFUSED, refused)
        return _answer(request, await _keep(request, fields(b"", size=len(body)), handled, delivery))
    if pay is None:
        # nothing can be verified: kept like a refusal, within the same limits
        unconfigured = payments.Handled(503, NotificationOutcome.ERROR, "WeChat Pay is not configured on this server")
        return _answer(request, await _keep(request, fields(body), unconfigured, delivery))
    try:
        async with asyncio.timeout(DEADLINE):
            handled = await payments.handle_notification(pay, request.headers, body, delivery=delivery,
                                                         apps=request.config_dict[notify_apps_key])
    except TimeoutError:
        log.error("a notification took more than %.1f s: answered 503", DEADLINE)
        await _keep(request, fields(body), payments.Handled(503, NotificationOutcome.ERROR,
                                                            f"not handled within {DEADLINE} s"), None)
        return fail(503, "busy, send again later")
    except Exception:
        log.exception("a notification failed")
        await _keep(request, fields(body), payments.Handled(500, NotificationOutcome.ERROR, "internal error"), None)
        return fail(500, "internal error")
    return _answer(request, handled)


def create_app() -> web.Application:
    app = web.Application(middlewares=[fail_middleware])
    app[refusal_limiter_key] = RefusalLimiter()
    app.router.add_post("/notify", notify)
    return app
