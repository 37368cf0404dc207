"""Handlers: parse the body, call the readings service, answer. Nothing else happens here."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ingest_api.auth import collector_key
from ingest_api.batches import TooManyRows, batch_rows, decode, rows_counter
from ingest_api.responses import json_error
from settlement.errors import InvalidInput
from settlement.i18n import Ref
from settlement.models import ReadingSource
from settlement.readings.ingest import MAX_BATCH_ROWS, RowStatus, ingest_readings
from webapp.keys import metrics_registry_key, settings_key
from webapp.settings import energy_limits

routes = web.RouteTableDef()

class BatchTooLarge(TooManyRows):
    """More rows than one request may carry (answered 413)."""

    code = "too_many_readings"


def parse_batch(body: bytes) -> list[Any]:
    """The rows of ``{"readings": [ {...}, ... ]}``; row fields are judged later, row by row.

    Numbers keep their decimals exactly (parsed as Decimal, never float); NaN and Infinity,
    which Python's json would take, are not JSON and refuse the body.

    Raises
    ------
    InvalidInput
        Not JSON, or not that shape (code ``invalid_json`` or ``invalid_body``).
    BatchTooLarge
        More than ``MAX_BATCH_ROWS`` rows.
    """
    rows = batch_rows(decode(body, exact_decimals=True), "readings", MAX_BATCH_ROWS, too_many=BatchTooLarge,
                      noun="readings")
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise InvalidInput(f"readings[{index}] must be an object with meter, register, read_at and value",
                               code="invalid_body", params={"problems": [Ref("problem.row_shape", {"key": "readings", "index": index})]})
    return rows


@routes.post("/readings")
async def post_readings(request: web.Request) -> web.Response:
    collector = request[collector_key]
    try:
        rows = parse_batch(await request.read())
    except BatchTooLarge as exc:
        return json_error(413, exc.code, exc.params)
    result = await ingest_readings(rows, source=ReadingSource.AMI, received_from=f"collector:{collector.name}",
                                   limits=energy_limits(request.config_dict[settings_key]))
    counter = rows_counter(request.config_dict[metrics_registry_key], "pvsettle_ingest_readings",
                           "Reading rows received from collectors")
    for status in RowStatus:
        counter.labels(str(status)).inc(result.count(status))
    return web.json_response(result.as_dict())
