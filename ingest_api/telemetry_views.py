"""``POST /ingest/v1/telemetry``: parse the body, call the telemetry service, answer.

Body ``{"samples": [{"device", "ts", "power_w", "energy_wh", "status", "irradiance_w_m2"}, …]}``
with at most 10,000 samples (413 above); the rules each sample is judged by are in
:mod:`settlement.telemetry.ingest`. The answer (200) counts the rows and names every refused one::

    {"created": n, "updated": n, "duplicates": n, "rejected": n, "flagged": n,
     "errors": [{"index": i, "code": "...", "message": "..."}],
     "flags": [{"index": i, "flags": ["clock_skew", "counter_reset", ...]}]}

A body that is not such JSON is 400 (``invalid_json``, ``invalid_body``) and changes nothing; a
missing or wrong collector key is 401 (:mod:`ingest_api.auth`); a body over the server's size limit
is 413 before it is read whole.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ingest_api.auth import collector_key
from ingest_api.batches import TooManyRows, batch_rows, decode, rows_counter
from ingest_api.responses import json_error
from settlement.telemetry.ingest import MAX_BATCH_SAMPLES, LivePublisher, RowStatus, ingest_samples
from webapp.keys import metrics_registry_key, redis_key, redis_ns_key

routes = web.RouteTableDef()


class _PublisherSlot:
    """Where the sub-app keeps its live-state publisher, made with the first batch."""

    publisher: LivePublisher | None = None


live_publisher_key = web.AppKey("live_publisher_key", _PublisherSlot)


async def live_publisher_ctx(app: web.Application):
    """cleanup_ctx of the ingest sub-app: the live-state publisher (settlement.telemetry.ingest.LivePublisher).

    It is made by the first batch, because Redis is the root app's (``request.config_dict``);
    at shutdown it publishes what is pending and stops.
    """
    slot = _PublisherSlot()
    app[live_publisher_key] = slot
    yield
    if slot.publisher is not None:
        await slot.publisher.close()


def _publisher(request: web.Request) -> LivePublisher | None:
    """The app's publisher; None on an app without :func:`live_publisher_ctx` (published inline)."""
    slot = request.app.get(live_publisher_key)
    if slot is None:
        return None
    if slot.publisher is None:
        slot.publisher = LivePublisher(request.config_dict[redis_key], request.config_dict[redis_ns_key])
    return slot.publisher

class TooManySamples(TooManyRows):
    """More samples than one request may carry (answered 413)."""

    code = "too_many_samples"


def parse_samples(body: bytes, key: str = "samples") -> list[Any]:
    """The rows of ``{"samples": [ {...}, ... ]}``; each row's fields are judged by the service.

    NaN and Infinity, which Python's json would take, are not JSON and refuse the body.

    Raises
    ------
    InvalidInput
        Not JSON, or not that shape (code ``invalid_json`` or ``invalid_body``).
    TooManySamples
        More than ``MAX_BATCH_SAMPLES`` rows.
    """
    return batch_rows(decode(body), key, MAX_BATCH_SAMPLES, too_many=TooManySamples, noun="samples")


@routes.post("/telemetry")
async def post_telemetry(request: web.Request) -> web.Response:
    collector = request[collector_key]
    try:
        rows = parse_samples(await request.read())
    except TooManySamples as exc:
        return json_error(413, exc.code, exc.params)
    # the answer does not wait for the live state: it is published right after, off this request
    result = await ingest_samples(rows, received_from=f"collector:{collector.name}", publisher=_publisher(request),
                                  redis=request.config_dict[redis_key], namespace=request.config_dict[redis_ns_key])
    counter = rows_counter(request.config_dict[metrics_registry_key], "pvsettle_ingest_telemetry",
                           "Telemetry samples received from collectors")
    for status in RowStatus:
        counter.labels(str(status)).inc(result.count(status))
    return web.json_response(result.as_dict())
