"""Handlers: parse the body, call the readings service, answer. Nothing else happens here."""

from __future__ import annotations

import json
import weakref
from decimal import Decimal
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

from ingest_api.auth import collector_key
from ingest_api.responses import json_error
from server.keys import metrics_registry_key
from settlement.errors import InvalidInput
from settlement.models import ReadingSource
from settlement.readings import MAX_BATCH_ROWS, RowStatus, ingest_readings

routes = web.RouteTableDef()

_row_counters: weakref.WeakKeyDictionary[CollectorRegistry, Counter] = weakref.WeakKeyDictionary()


def _rows_counter(registry: CollectorRegistry) -> Counter:
    """The row counter of the root app's registry (made on first use: a sub-app cannot see it earlier)."""
    counter = _row_counters.get(registry)
    if counter is None:
        counter = Counter("pvsettle_ingest_readings", "Reading rows received from collectors", ["status"],
                          registry=registry)
        _row_counters[registry] = counter
    return counter


class BatchTooLarge(InvalidInput):
    """More rows than one request may carry (answered 413)."""

    code = "too_many_readings"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


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
    try:
        document = json.loads(body, parse_float=Decimal, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        reason = str(exc) if isinstance(exc, ValueError) else "nested too deeply"
        raise InvalidInput(f"the body is not valid JSON: {reason[:200]}", code="invalid_json") from None
    if not isinstance(document, dict) or not isinstance(document.get("readings"), list):
        raise InvalidInput('the body must be an object {"readings": [ ... ]}', code="invalid_body")
    rows = document["readings"]
    if len(rows) > MAX_BATCH_ROWS:
        raise BatchTooLarge(f"a batch holds at most {MAX_BATCH_ROWS} readings, this one has {len(rows)}: "
                            f"send it in parts")
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise InvalidInput(f"readings[{index}] must be an object with meter, register, read_at and value",
                               code="invalid_body")
    return rows


@routes.post("/readings")
async def post_readings(request: web.Request) -> web.Response:
    collector = request[collector_key]
    try:
        rows = parse_batch(await request.read())
    except BatchTooLarge as exc:
        return json_error(413, exc.code, exc.message)
    result = await ingest_readings(rows, source=ReadingSource.AMI, received_from=f"collector:{collector.name}")
    counter = _rows_counter(request.config_dict[metrics_registry_key])
    for status in RowStatus:
        counter.labels(str(status)).inc(result.count(status))
    return web.json_response(result.as_dict())
