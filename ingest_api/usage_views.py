"""``POST /usage``: interval usage of prepaid services' meters, charged as it arrives (settlement.prepaid)."""

from __future__ import annotations

import json
from decimal import Decimal

from aiohttp import web

from ingest_api.auth import collector_key
from ingest_api.views import _refuse_constant
from settlement import prepaid
from settlement.errors import InvalidInput

routes = web.RouteTableDef()


@routes.post("/usage")
async def post_usage(request: web.Request) -> web.Response:
    """``{"usage": [{"meter", "start", "quantity"}, …]}`` → ``{"services", "stored", "changed",
    "unchanged", "charged_fen"}``; a bad row refuses the whole batch (400, naming it)."""
    request[collector_key]  # authenticated by the sub-app's middleware
    try:
        document = json.loads(await request.read(), parse_float=Decimal, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise InvalidInput("the body is not valid JSON", code="invalid_json") from None
    if not isinstance(document, dict) or not isinstance(document.get("usage"), list):
        raise InvalidInput('the body must be an object {"usage": [ ... ]}', code="invalid_body")
    return web.json_response(await prepaid.record_usage_batch(document["usage"]))
