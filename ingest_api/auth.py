"""Collector keys: ``Authorization: Bearer <key>``, checked against ``Collector.key_sha256``.

A missing, malformed, unknown or deactivated key gets the same 401, so the answer tells a
prober nothing about which keys exist.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from ingest_api.responses import json_error
from settlement.models import Collector
from settlement.readings.ingest import collector_for_key

collector_key = web.RequestKey("collector_key", Collector)

# A token_urlsafe(32) key is 43 characters; anything far longer is not a key of ours.
MAX_KEY_LENGTH = 256


def bearer_key(header: str) -> str:
    """The key of an ``Authorization: Bearer <key>`` header, or "" when there is none."""
    scheme, _, key = header.strip().partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key or len(key) > MAX_KEY_LENGTH:
        return ""
    return key


@web.middleware
async def collector_auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    collector = await collector_for_key(bearer_key(request.headers.get("Authorization", "")))
    if collector is None:
        return json_error(401, "unauthorized", headers={"WWW-Authenticate": 'Bearer realm="ingest"'})
    request[collector_key] = collector
    return await handler(request)
