"""``POST /ingest/v1/device-status``: a collector tells what the field devices it polls are doing.

Body ``{"statuses": [{"device", "kind", "state", "observed_at", "code", "message"}, …]}``, at most
2,000 rows (413 above); the rules are in :mod:`settlement.telemetry.device_status`. The answer
(200) is ``{"stored", "duplicates", "stale", "rejected", "errors": [{"index", "code", "message"}]}``.
"""

from __future__ import annotations

from aiohttp import web

from ingest_api.auth import collector_key
from ingest_api.batches import TooManyRows, batch_rows, decode
from ingest_api.responses import json_error
from settlement.telemetry.device_status import MAX_BATCH_STATUSES, record_device_statuses

routes = web.RouteTableDef()


@routes.post("/device-status")
async def post_device_status(request: web.Request) -> web.Response:
    collector = request[collector_key]
    try:
        rows = batch_rows(decode(await request.read()), "statuses", MAX_BATCH_STATUSES, noun="statuses")
    except TooManyRows as exc:
        return json_error(413, exc.code, exc.params)
    result = await record_device_statuses(collector, rows)
    return web.json_response(result.as_dict())
