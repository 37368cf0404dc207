"""POST /ingest/v1/telemetry on the whole server: keys, hostile bodies, answers, live state."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json

import pytest

from settlement.telemetry import live
from settlement import models as m
from webapp.keys import redis_key, redis_ns_key
from tests.integration.test_telemetry_ingest import iso, make_plant, sample
from settlement.clock import utc_now

KEY = "telemetry-collector-key-0123456789abcdefghijkl"
URL = "/ingest/v1/telemetry"


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def telemetry_client(client):
    await make_plant("PV-H", {"INV-1": 8000})
    await m.Collector.create(name="logger-gw-1", key_sha256=hashlib.sha256(KEY.encode()).hexdigest())
    return client


async def post(client, body, headers=None):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    resp = await client.post(URL, data=data,
                             headers={"Content-Type": "application/json", **(auth() if headers is None else headers)})
    return resp.status, await resp.json()


async def nothing_stored() -> bool:
    return (await m.TelemetrySample.all().count(), await m.TelemetryRollup.all().count(),
            await m.AuditEvent.filter(action="IngestTelemetry").count()) == (0, 0, 0)


async def test_http_a_logger_posts_a_batch_and_the_plant_goes_live(telemetry_client):
    body = {"samples": [sample("10-10 09:00", 1_000_000, 2400), sample("10-10 09:05", 1_000_200, 2600),
                        sample("10-10 09:05", 1_000_200, device="NOPE")]}
    status, answer = await post(telemetry_client, body, headers={**auth(), "X-Request-Id": "gw-1-batch-9"})
    assert status == 200
    assert answer == {"created": 2, "updated": 0, "duplicates": 0, "rejected": 1, "flagged": 0, "flags": [],
                      "errors": [{"index": 2, "code": "unknown_device",
                                  "message": "row 2: field 'device': no device has the serial 'NOPE'"}]}
    event = await m.AuditEvent.get(action="IngestTelemetry")
    assert (event.actor, event.request_id) == ("collector:logger-gw-1", "gw-1-batch-9")
    metrics = await (await telemetry_client.get("/metrics")).text()
    assert 'pvsettle_ingest_telemetry_total{status="created"} 2.0' in metrics
    # the samples are in the past (2026-10-10), so nothing is live; a sample of now is
    app = telemetry_client.server.app
    plant = await m.Plant.get(code="PV-H")
    assert await live.latest_state(app[redis_key], app[redis_ns_key], plant.id) is None
    moment = utc_now().replace(microsecond=0)
    status, answer = await post(telemetry_client, {"samples": [
        {"device": "INV-1", "ts": moment.isoformat(), "power_w": 3100, "energy_wh": 1_000_200}]})
    assert answer["created"] == 1
    # published right after the answer, off the request
    for _ in range(100):
        state = await live.latest_state(app[redis_key], app[redis_ns_key], plant.id)
        if state is not None:
            break
        await asyncio.sleep(0.02)
    assert state["ts"] == moment.isoformat() and state["power_w"] == 3100


async def test_http_reposting_the_same_batch_is_idempotent(telemetry_client):
    body = {"samples": [sample("10-10 09:00", 1_000_000), sample("10-10 09:05", 1_000_200)]}
    assert (await post(telemetry_client, body))[1]["created"] == 2
    status, answer = await post(telemetry_client, body)
    assert status == 200 and (answer["created"], answer["duplicates"]) == (0, 2)


@pytest.mark.parametrize("headers", [
    pytest.param({}, id="no header"),
    pytest.param(auth("forged-key"), id="forged key"),
    pytest.param(auth(KEY + "x"), id="one character more"),
    pytest.param({"Authorization": f"Basic {KEY}"}, id="basic"),
    pytest.param(auth("k" * 5000), id="huge key"),
])
async def test_http_without_a_valid_key_nothing_is_taken(telemetry_client, headers):
    status, answer = await post(telemetry_client, {"samples": [sample("10-10 09:00", 1)]}, headers=headers)
    assert status == 401 and answer["error"]["code"] == "unauthorized"
    assert await nothing_stored()


async def test_http_a_deactivated_collector_is_refused(telemetry_client):
    await m.Collector.filter(name="logger-gw-1").update(active=False)
    status, _ = await post(telemetry_client, {"samples": [sample("10-10 09:00", 1)]})
    assert status == 401 and await nothing_stored()


async def test_http_more_than_10000_samples_is_413(telemetry_client):
    rows = [sample("10-10 09:00", i) for i in range(10_001)]
    status, answer = await post(telemetry_client, {"samples": rows})
    assert status == 413 and answer["error"]["code"] == "too_many_samples" and "10000" in answer["error"]["message"]
    assert await nothing_stored()


async def test_http_a_20_mb_body_is_413_and_never_read_whole(telemetry_client):
    body = b'{"samples": [' + b" " * (20 * 1024 * 1024) + b"]}"
    resp = await telemetry_client.post(URL, data=io.BytesIO(body), headers={"Content-Type": "application/json", **auth()})
    status, answer = resp.status, await resp.json()
    assert status == 413 and answer["error"]["code"] == "request_entity_too_large"
    assert "Traceback" not in answer["error"]["message"]
    assert await nothing_stored()


@pytest.mark.parametrize("data, code", [
    pytest.param(b"this is not json", "invalid_json", id="text"),
    pytest.param(b"", "invalid_json", id="empty"),
    pytest.param(b'{"samples": [', "invalid_json", id="truncated"),
    pytest.param(b"\xff\xfe\x00garbage", "invalid_json", id="not utf-8"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, "invalid_json", id="nested deeply"),
    pytest.param(b'{"samples": [{"device": "INV-1", "ts": "2026-10-10T09:00+08:00", "energy_wh": NaN}]}',
                 "invalid_json", id="NaN literal"),
    pytest.param(b'{"samples": [{"device": "INV-1", "ts": "2026-10-10T09:00+08:00", "power_w": -Infinity}]}',
                 "invalid_json", id="Infinity literal"),
    pytest.param(b'{"samples": [{"energy_wh": 1' + b"0" * 5000 + b"}]}", "invalid_json", id="5000-digit number"),
    pytest.param(b"[]", "invalid_body", id="a list"),
    pytest.param(b"{}", "invalid_body", id="no samples"),
    pytest.param(b'{"readings": []}', "invalid_body", id="readings, not samples"),
    pytest.param(b'{"samples": {"device": "INV-1"}}', "invalid_body", id="samples an object"),
])
async def test_http_a_malformed_body_is_400_and_writes_nothing(telemetry_client, data, code):
    status, answer = await post(telemetry_client, data)
    assert status == 400 and answer["error"]["code"] == code
    assert "Traceback" not in answer["error"]["message"]
    assert await nothing_stored()


async def test_http_absurd_values_are_refused_one_by_one(telemetry_client):
    body = (b'{"samples": ['
            b'{"device": "INV-1", "ts": "2026-10-10T09:00+08:00", "power_w": -250, "energy_wh": 5},'
            b'{"device": "INV-1", "ts": "2026-10-10T09:00+08:00", "energy_wh": 100000000000000000000},'
            b'{"device": "INV-1", "ts": "2026-10-10T09:00+08:00", "energy_wh": 1e400},'
            b'{"device": "INV-1", "ts": "2026-10-10T09:00+08:00", "energy_wh": "NaN"},'
            b'{"device": "INV-1", "ts": "3000-01-01T00:00:00+08:00", "energy_wh": 5},'
            b'{"device": "INV-1", "ts": {"$gt": ""}, "energy_wh": 5},'
            b'{"device": "INV-1\'; DROP TABLE telemetry_sample; --", "ts": "2026-10-10T09:00+08:00"},'
            b'{"device": "INV-1", "ts": "2026-10-10T09:00+08:00", "power_w": 9e18},'
            b'null'
            b']}')
    status, answer = await post(telemetry_client, body)
    assert status == 200
    assert [e["code"] for e in answer["errors"]] == [
        "value_out_of_range", "value_out_of_range", "invalid_field", "invalid_field", "ts_in_future",
        "invalid_field", "unknown_device", "value_out_of_range", "invalid_row"]
    assert (answer["created"], answer["rejected"]) == (0, 9)
    assert await nothing_stored()
    # the table is alive and well
    status, answer = await post(telemetry_client, {"samples": [
        {"device": "INV-1", "ts": iso("10-10 09:00"), "energy_wh": 5, "power_w": 0}]})
    assert answer["created"] == 1


async def test_http_other_methods_get_the_json_error_shape(telemetry_client):
    resp = await telemetry_client.get(URL, headers=auth())
    assert resp.status == 405 and (await resp.json())["error"]["code"] == "method_not_allowed"
