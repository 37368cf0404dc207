"""``POST /usage``: interval usage of prepaid services' meters, charged as it arrives (settlement.prepaid.accounts)."""

from __future__ import annotations

from aiohttp import web

from ingest_api.auth import collector_key
from ingest_api.batches import TooManyRows, batch_rows, decode
from ingest_api.responses import json_error
from settlement.prepaid import accounts as prepaid
from webapp.keys import notify_apps_key

routes = web.RouteTableDef()


@routes.post("/usage")
async def post_usage(request: web.Request) -> web.Response:
    """``{"usage": [{"meter", "start", "quantity"}, …]}`` → ``{"services", "stored", "changed",
    "unchanged", "charged_fen"}``; a bad row refuses the whole batch (400, naming it), more than
    ``MAX_USAGE_ROWS`` rows are 413 as on the other ingest endpoints."""
    request[collector_key]  # authenticated by the sub-app's middleware
    try:
        rows = batch_rows(decode(await request.read(), exact_decimals=True), "usage", prepaid.MAX_USAGE_ROWS,
                          noun="usage rows")
    except TooManyRows as exc:
        return json_error(413, exc.code, exc.params)
    return web.json_response(await prepaid.record_usage_batch(rows, apps=request.config_dict[notify_apps_key]))
