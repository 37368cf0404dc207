"""The root app: health, metrics, error shape, request ids."""

import asyncio
import dataclasses
import socket

import pytest
from aiohttp import web

from server.app import create_app


async def test_healthz_checks_database_and_redis(client):
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok", "db": "ok", "redis": "ok"}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_healthz_says_degraded_quickly_when_redis_is_unreachable(settings, aiohttp_client):
    """Still 200: the API serves without Redis (tests/integration/test_miniapp_redis_outage.py)."""
    broken = dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{_closed_port()}/0")
    client = await aiohttp_client(create_app(broken))
    # a guard against hanging, not a speed assertion: the check itself gives up after 1.5 s
    resp = await asyncio.wait_for(client.get("/healthz"), timeout=10)
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "degraded" and body["db"] == "ok"
    assert body["redis"].startswith("error:")


async def test_healthz_says_503_when_the_database_is_unreachable(settings, aiohttp_client, tmp_path):
    if settings.uses_postgres:
        url = f"postgres://postgres@127.0.0.1:{_closed_port()}/nothing"
    else:
        garbage = tmp_path / "not-a-database.sqlite3"
        garbage.write_bytes(b"this is not an SQLite file " * 100)
        url = f"sqlite://{garbage}"
    client = await aiohttp_client(create_app(dataclasses.replace(settings, database_url=url)))
    resp = await asyncio.wait_for(client.get("/healthz"), timeout=10)
    assert resp.status == 503
    body = await resp.json()
    assert body["db"].startswith("error:") and body["redis"] == "ok"


async def test_metrics_are_prometheus_text(client):
    await client.get("/healthz")
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    text = await resp.text()
    assert 'pvsettle_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text


async def test_unknown_path_gets_the_json_error_shape(client):
    resp = await client.get("/api/v1/no-such-thing")
    assert resp.status == 404
    body = await resp.json()
    assert body["error"]["code"] == "not_found"
    assert set(body["error"]) == {"code", "message"}


@pytest.mark.parametrize("path", ["/api/v1/bills?cursor=", "/ingest/v1/readings?x=", "/healthz?x="])
async def test_a_url_too_long_gets_the_json_error_shape_not_aiohttp_plain_text(client, path):
    resp = await client.get(path + "a" * 9000)  # over aiohttp's 8,190-byte request line
    assert resp.status == 414
    body = await resp.json()
    assert body["error"]["code"] == "uri_too_long" and set(body["error"]) == {"code", "message"}
    assert resp.headers["X-Request-Id"]


async def test_a_url_of_aiohttps_limit_is_still_answered(client):
    resp = await client.get("/healthz?x=" + "a" * 8000)
    assert resp.status == 200


async def test_wrong_method_keeps_allow_header(client):
    resp = await client.post("/healthz")
    assert resp.status == 405
    assert resp.headers["Allow"] == "GET,HEAD"
    assert (await resp.json())["error"]["code"] == "method_not_allowed"


async def test_request_id_is_taken_or_made_and_echoed(client):
    resp = await client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert resp.headers["X-Request-Id"] == "abc-123"
    resp = await client.get("/healthz", headers={"X-Request-Id": "bad id; <script>"})
    assert resp.headers["X-Request-Id"] != "bad id; <script>"
    assert len(resp.headers["X-Request-Id"]) == 32


async def test_unexpected_error_is_logged_and_answered_without_traceback(settings, aiohttp_client, caplog):
    from settlement.errors import NotFound

    app = create_app(settings)

    async def boom(request):
        raise RuntimeError("secret internals /etc/passwd")

    async def missing(request):
        raise NotFound("no such plant")

    app.router.add_get("/boom", boom)
    app.router.add_get("/missing", missing)
    client = await aiohttp_client(app)
    resp = await client.get("/boom", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert resp.status == 500
    text = await resp.text()
    assert "secret internals" not in text and "Traceback" not in text
    assert (await resp.json())["error"] == {"code": "internal_error",
                                            "message": "Internal server error: please try again later"}
    assert any("RuntimeError" in (r.exc_text or "") or r.exc_info for r in caplog.records)
    # the message is the catalogue's, in the caller's language; Chinese when the caller names none
    resp = await client.get("/missing", headers={"Accept-Language": "en"})
    assert resp.status == 404
    assert (await resp.json())["error"] == {"code": "not_found", "message": "Not found"}
    resp = await client.get("/missing")
    assert (await resp.json())["error"] == {"code": "not_found", "message": "没有找到"}
