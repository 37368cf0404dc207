"""The WeChat Pay sub-app, mounted at ``/pay``: ``POST /pay/notify``.

It speaks WeChat Pay's protocol, not the API's: a notification recorded (or already recorded, or
kept for staff) is answered 204 with no body; any failure is a 4xx/5xx with
``{"code": "FAIL", "message": …}``, and WeChat Pay sends it again later (15 s, 15 s, 30 s, 3 m, …).
The sub-app's own middleware answers every error in that shape, so the root's JSON error
middleware (``{"error": …}``) never sees an exception from here.

WeChat Pay waits 5 s for the answer: the work is cut off at :data:`DEADLINE` and answered 503
rather than left to time out.
"""

from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from server.keys import pay_api_key
from settlement import payments
from settlement import text as outside_text
from settlement.models import NotificationOutcome

log = logging.getLogger("pvsettle.pay")
DEADLINE = 4.0  # [s] of work before answering 503: WeChat Pay gives up after 5 s
MAX_BODY = 64 * 1024  # [bytes] a notification is about 1 KiB


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


async def _keep_failure(request: web.Request, body: bytes, status: int, reason: str,
                        outcome: NotificationOutcome = NotificationOutcome.ERROR) -> None:
    """Keep a notification we could not handle; if even that fails, the log has it."""
    try:
        async with asyncio.timeout(1.0):
            await payments.keep_notification(payments.notification_fields(request.headers, body),
                                             payments.Handled(status, outcome, reason))
    except Exception:
        log.exception("could not keep a failed notification (%s)", reason)


def _refused_text(body: bytes) -> str | None:
    """What :mod:`settlement.text` refuses in a notification, raw or as a JSON escape
    (``\\u0000``), before anything reads it; None when there is nothing."""
    raw = body.decode("utf-8", errors="replace")
    refused = outside_text.message("the body", raw)
    if refused is not None:
        return refused
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        return None  # not JSON: the verification says so
    return outside_text.first_refused(document)


async def notify(request: web.Request) -> web.Response:
    """A payment or refund notification from WeChat Pay."""
    pay = request.config_dict.get(pay_api_key)
    if request.content_length is not None and request.content_length > MAX_BODY:
        reason = f"a notification is at most {MAX_BODY} bytes, this one has {request.content_length}"
        await _keep_failure(request, b"", 413, reason, NotificationOutcome.REFUSED)
        return fail(413, reason)
    body = await request.read()
    refused = _refused_text(body)
    if refused is not None:  # kept without its body, which the database could not hold (settlement.text)
        await _keep_failure(request, b"", 400, refused, NotificationOutcome.REFUSED)
        return fail(400, refused)
    if pay is None:
        await _keep_failure(request, body, 503, "WeChat Pay is not configured on this server")
        return fail(503, "WeChat Pay is not configured on this server")
    try:
        async with asyncio.timeout(DEADLINE):
            handled = await payments.handle_notification(pay, request.headers, body)
    except TimeoutError:
        log.error("a notification took more than %.1f s: answered 503", DEADLINE)
        await _keep_failure(request, body, 503, f"not handled within {DEADLINE} s")
        return fail(503, "busy, send again later")
    except Exception:
        log.exception("a notification failed")
        await _keep_failure(request, body, 500, "internal error")
        return fail(500, "internal error")
    if handled.accepted:
        return web.Response(status=204)
    return fail(handled.status, handled.reason or "refused")


def create_app() -> web.Application:
    app = web.Application(middlewares=[fail_middleware])
    app.router.add_post("/notify", notify)
    return app
