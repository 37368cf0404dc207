"""Root middlewares: request ids, metrics, and the one place exceptions become HTTP answers.

Errors leave in the JSON shape of :mod:`webapp.json_errors` (``{"error": {"code": …, "message": …}}``,
the catalogue's message in the caller's language) with a fitting 4xx/5xx status. An unexpected
exception is logged with its traceback and answered with a plain 500: no stack trace ever leaves
the server. Sub-apps that speak another protocol (the official account, WeChat Pay notifications)
catch their own errors first and answer in that protocol.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, Counter, Histogram

from server.logs import request_id_var
from settlement.errors import DomainError
from webapp.json_errors import domain_status, error_response, json_error, kept_headers

log = logging.getLogger("pvsettle.http")

REQUEST_ID_HEADER = "X-Request-Id"
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")

#: The longest URL (request target) answered normally [bytes]: aiohttp's own request-line limit.
MAX_URL_BYTES = 8190
#: What the HTTP parser reads of a request line [bytes]. aiohttp answers a longer line itself, in
#: plain text, before any middleware runs; read this far, a URL over MAX_URL_BYTES reaches
#: :func:`url_length_middleware` and is answered in the JSON shape. Past this the parser's plain
#: 400 remains (set as the root app's ``handler_args``).
MAX_REQUEST_LINE_BYTES = 64 * 1024


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Take the caller's X-Request-Id when it is sane, else make one, and echo it back."""
    given = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = given if _REQUEST_ID_OK.match(given) else uuid.uuid4().hex
    token = request_id_var.set(request_id)
    try:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            exc.headers[REQUEST_ID_HEADER] = request_id
            raise
        response.headers[REQUEST_ID_HEADER] = request_id
        return response
    finally:
        request_id_var.reset(token)


@web.middleware
async def url_length_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """414 in the JSON shape for a URL longer than :data:`MAX_URL_BYTES`, before anything reads it."""
    if len(request.raw_path) > MAX_URL_BYTES:
        return json_error(414, "uri_too_long", f"the URL has more than {MAX_URL_BYTES} bytes: send less in the query")
    return await handler(request)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        # aiohttp's own 404/405/413 pages become the JSON shape; Allow etc. headers are kept
        code = exc.reason.lower().replace(" ", "_")
        return error_response(request, exc.status, code, headers=kept_headers(exc))
    except DomainError as exc:
        return error_response(request, domain_status(exc), exc.code, exc.params)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(request, 500, "internal_error")


def metrics_middleware_factory(registry: CollectorRegistry):
    requests = Counter("pvsettle_http_requests", "HTTP requests answered",
                       ["method", "route", "status"], registry=registry)
    latency = Histogram("pvsettle_http_request_seconds", "HTTP request latency [s]", ["route"],
                        registry=registry,
                        buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))

    @web.middleware
    async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            # the route's pattern, not the raw path, so ids do not explode the label set
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else "unmatched"
            requests.labels(request.method, route, str(status)).inc()
            latency.labels(route).observe(time.perf_counter() - started)

    return metrics_middleware
