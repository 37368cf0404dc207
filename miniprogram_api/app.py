"""The owner-facing JSON API (/api/v1) as an aiohttp sub-app.

Every route is declared once in :mod:`miniprogram_api.registry` (by the ``views_*`` modules) and
wrapped here: session token, per-user rate limit, the right on the plant the path id belongs to,
query and body validation — in that order, so a stranger learns nothing from an id (401 before
404 before 400). Errors are DESIGN.md's JSON shape; the root app's middleware maps the domain's
exceptions, this module answers 401, 429 and 503 (a route that cannot do without Redis while
Redis does not answer, with Retry-After) itself.
"""

from __future__ import annotations

import math
import time

from aiohttp import web
from pydantic import BaseModel

from miniprogram_api import gate, live, openapi
from miniprogram_api import views_bills, views_forms, views_misc, views_plants, views_session  # noqa: F401
from miniprogram_api import views_pay  # noqa: F401  (POST /bills/{bill_id}/pay, WeChat Pay)
from miniprogram_api import views_prepaid  # noqa: F401  (/plants/{plant_id}/prepaid…: balance, statement, top-up)
from miniprogram_api import views_i18n  # noqa: F401  (/i18n: the message catalogue for clients)
from miniprogram_api.common import api, principal_key, token_claims_key
from miniprogram_api.registry import Call, Route, json_model, parse_json_body, parse_query
from settlement.owners.access import Principal, require
from settlement.errors import NotFound
from settlement.models import Attachment, Bill, ConfirmationForm, FaultReport, FormState, Plant
from settlement.infra.redis_client import RedisUnavailable, seconds_left
from settlement.owners.sessions import InvalidToken, verify_token
from webapp.keys import redis_guard_key, redis_key, redis_ns_key, settings_key
from webapp.client_address import client_of
from webapp.json_errors import error_response

MAX_ID = 2**31 - 1
# rate-limit counts of this process for while Redis does not answer (gate.LocalWindows)
local_windows_key = web.AppKey("local_windows_key", gate.LocalWindows)
RATE_WINDOW_S = gate.RATE_WINDOW_S
# logins are counted per address (there is no user yet): a guard against hammering WeChat's
# code2session through us, generous because owners behind one carrier NAT share an address
# (the address: webapp.client_address, which sees through PVSETTLE_TRUSTED_PROXIES)
LOGIN_LIMIT_PER_ADDRESS = 300


def _unauthorized(request: web.Request, code: str) -> web.Response:
    return error_response(request, 401, code, headers={"WWW-Authenticate": 'Bearer realm="pvsettle"'})


async def _plant_of_plant(ident: int) -> int | None:
    return ident if await Plant.exists(id=ident) else None


async def _plant_of_form(ident: int) -> int | None:
    # a draft is staff's until it is sent: to the owner it does not exist yet
    rows = await ConfirmationForm.filter(id=ident).exclude(state=FormState.DRAFT).values_list(
        "cycle__plant_id", flat=True)
    return rows[0] if rows else None


async def _plant_of_bill(ident: int) -> int | None:
    rows = await Bill.filter(id=ident).values_list("plant_id", flat=True)
    return rows[0] if rows else None


async def _plant_of_fault(ident: int) -> int | None:
    rows = await FaultReport.filter(id=ident).values_list("plant_id", flat=True)
    return rows[0] if rows else None


async def _plant_of_attachment(ident: int) -> int | None:
    rows = await Attachment.filter(id=ident).values_list("form__cycle__plant_id", "fault__plant_id")
    return (rows[0][0] or rows[0][1]) if rows else None


PLANT_OF = {"plant": _plant_of_plant, "form": _plant_of_form, "bill": _plant_of_bill, "fault": _plant_of_fault,
            "attachment": _plant_of_attachment}


async def _count_address(request: web.Request) -> tuple[int, int]:
    """Count a request without a session (login) in the one-minute window of its address."""
    client, ns = request.config_dict[redis_key], request.config_dict[redis_ns_key]
    now = time.time()
    window = int(now // RATE_WINDOW_S)
    address = client_of(request)  # behind trusted proxies, the client they name
    key = ns.key("ratelimit", "address", address, window)
    try:
        with request.config_dict[redis_guard_key].using():
            async with client.pipeline(transaction=False) as pipe:
                pipe.incr(key)
                pipe.expire(key, RATE_WINDOW_S + 1)
                results = await pipe.execute()
    except RedisUnavailable:  # counted in this process until Redis answers (see gate)
        return request.app[local_windows_key].without_redis("address", address, now)
    return request.app[local_windows_key].after_redis("address", address, now, int(results[0])), \
        seconds_left(window, now)


def _too_many(request: web.Request, left: int) -> web.Response:
    return error_response(request, 429, "rate_limited", {"seconds": left}, {"Retry-After": str(left)})


async def _authenticate(request: web.Request, route: Route) -> Principal | None | web.Response:
    """The request's principal, or the answer that refuses it.

    None only for a route that ends the session (logout), repeated with a token whose session
    has ended already: it may finish what an earlier attempt started.
    """
    settings = request.config_dict[settings_key]
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _unauthorized(request, "unauthorized")
    try:
        claims = verify_token(token.strip(), settings.secret_key, now=time.time())
    except InvalidToken as exc:
        return _unauthorized(request, exc.code)
    admission = await gate.admit(request.config_dict[redis_key], request.config_dict[redis_guard_key],
                                 request.config_dict[redis_ns_key], claims, request.app[local_windows_key])
    if not admission.session_alive and not route.ends_session:
        return _unauthorized(request, "session_closed")
    if admission.count > settings.api_rate_limit:
        return _too_many(request, admission.retry_after)
    request[token_claims_key] = claims
    if not admission.session_alive:
        return None
    principal = admission.principal
    if principal is None:
        return _unauthorized(request, "invalid_token")
    return principal


def _redis_unavailable(request: web.Request, exc: RedisUnavailable) -> web.Response:
    left = max(1, math.ceil(exc.retry_after_s))
    return error_response(request, 503, "redis_unavailable", {"seconds": left}, {"Retry-After": str(left)})


def _wrap(route: Route):
    async def handler(request: web.Request) -> web.StreamResponse:
        principal = None
        if route.auth == "session":
            outcome = await _authenticate(request, route)
            if isinstance(outcome, web.Response):
                return outcome
            principal = outcome
            if principal is not None:
                request[principal_key] = principal
        else:
            count, left = await _count_address(request)
            if count > LOGIN_LIMIT_PER_ADDRESS:
                return _too_many(request, left)
        ids = {}
        for name in route.path_ids:
            value = int(request.match_info[name])
            if not 1 <= value <= MAX_ID:
                raise NotFound(f"no such {name.removesuffix('_id')}", code="not_found")
            ids[name] = value
        call = Call(principal=principal, ids=ids)
        if route.resource is not None:
            plant_id = await PLANT_OF[route.resource](ids[route.path_ids[0]])
            if plant_id is None:
                raise NotFound(f"no such {route.resource}", code="not_found")
            call.plant_id = plant_id
            call.right = await require(principal, plant_id, route.needs, what=route.resource)
        if route.query is not None:
            call.query = parse_query(route.query, request)
        if route.body is not None:
            call.body = parse_json_body(route.body, await request.read())
        try:
            result = await route.handler(request, call)
        except RedisUnavailable as exc:  # a route that cannot do without Redis (the live stream, logout)
            return _redis_unavailable(request, exc)
        if isinstance(result, web.StreamResponse):
            return result
        if result is None:
            return web.Response(status=204)
        assert isinstance(result, BaseModel)
        return json_model(result, route.status)

    handler.__name__ = route.handler.__name__
    return handler


def create_app() -> web.Application:
    app = web.Application()
    app[local_windows_key] = gate.LocalWindows()
    for route in api.routes:
        app.router.add_route(route.method, route.aiohttp_path, _wrap(route), name=route.handler.__name__)
    app.router.add_get("/openapi.json", openapi.serve)
    app.cleanup_ctx.append(live.streams_ctx)
    app.on_shutdown.append(live.end_streams)
    return app
