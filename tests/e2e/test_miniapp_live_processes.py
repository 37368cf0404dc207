"""The live stream across processes, through Redis pub/sub. Needs a real Redis: the in-process
emulation cannot be shared between processes.

- A sample ingested by ``POST /ingest/v1/telemetry`` on one `pvsettle serve` process reaches a
  client streaming from another within 1 s of the POST.
- A state published by a third process (a script calling :func:`settlement.telemetry.live.publish_state`,
  the contract itself) reaches clients of both servers within 1 s; a stopping server ends its
  streams at once instead of waiting out its shutdown timeout.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import textwrap
import time

import aiohttp
import pytest

from settlement.infra import db as database
from settlement import models as m
from settlement.infra.redis_client import Namespace, open_redis
from settlement.owners.sessions import TokenClaims, session_key_name, sign_token
from tests.conftest import REDIS_URL
from tests.e2e.processes import ServerProcess, free_port, settings_env
from settlement.clock import utc_now

pytestmark = pytest.mark.skipif(not REDIS_URL, reason="needs PVSETTLE_REDIS_URL: the in-process Redis emulation "
                                                      "is per process, so no other process can publish to it")

COLLECTOR_KEY = "k" * 43
PUBLISHER = textwrap.dedent("""
    import asyncio, json, sys, time
    from settlement.telemetry.live import publish_state
    from settlement.infra.redis_client import Namespace, open_redis

    async def main(url, prefix, plant_id, power):
        client = open_redis(url)
        await client.ping()  # connected before the clock starts
        sent = time.time()
        await publish_state(client, Namespace(prefix), plant_id,
                            {"ts": "2026-07-15T02:00:00+00:00", "power_w": power, "today_kwh": "12.345"})
        await client.aclose()
        print(json.dumps({"sent": sent}))

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
""")


async def _session_header(settings) -> tuple[int, dict[str, str]]:
    """A plant with an inverter, a collector, and a logged-in owner, made the way POST /session
    leaves them (WeChat is not under test)."""
    from settlement.readings.ingest import add_collector

    await database.open_database(settings.database_url)
    try:
        owner = await m.Owner.create(name="业主")
        plant = await m.Plant.create(code="PV-LIVE", name="屋顶", owner=owner, capacity_kwp="100")
        await m.TelemetryDevice.create(plant=plant, serial="INV-LIVE-1", rated_power_w=100_000)
        await add_collector("logger-live", COLLECTOR_KEY)
        identity = await m.WechatIdentity.create(app_id=settings.mp_appid, openid="o-live", owner=owner)
    finally:
        await database.close_database()
    client = open_redis(settings.redis_url)
    await client.set(session_key_name(Namespace(settings.redis_prefix), "live-session"),
                     json.dumps({"identity_id": identity.id, "session_key": "sk"}), ex=600)
    await client.aclose()
    token = sign_token(TokenClaims(identity.id, "live-session", int(time.time()) + 600), settings.secret_key)
    return plant.id, {"Authorization": f"Bearer {token}"}


async def _next_state(resp: aiohttp.ClientResponse, timeout: float) -> tuple[dict, float]:
    async with asyncio.timeout(timeout):
        while True:
            line = (await resp.content.readline()).decode()
            if not line:
                raise EOFError("stream ended")
            if line.startswith("data: "):
                return json.loads(line[len("data: "):]), time.time()


async def test_a_sample_published_elsewhere_reaches_clients_of_both_servers_within_a_second(settings, tmp_path):
    plant_id, headers = await _session_header(settings)
    servers = [ServerProcess(["serve"], settings_env(settings, tmp_path, port=port), tmp_path, port)
               for port in (free_port(), free_port())]
    try:
        for server in servers:
            await server.wait_healthy()
        async with aiohttp.ClientSession() as session:
            streams = [await session.get(f"{s.base}/api/v1/plants/{plant_id}/live", headers=headers)
                       for s in servers]
            for resp in streams:
                assert resp.status == 200, await resp.text()
                assert (await resp.content.readline()).startswith(b"retry:")  # subscribed before this line
            for power in (1111, 2222):
                publisher = subprocess.run(
                    [sys.executable, "-c", PUBLISHER, settings.redis_url, settings.redis_prefix, str(plant_id),
                     str(power)], capture_output=True, text=True, timeout=60)
                assert publisher.returncode == 0, publisher.stderr
                sent = json.loads(publisher.stdout)["sent"]
                for resp in streams:
                    state, received = await _next_state(resp, timeout=5)
                    assert state["power_w"] == power and state["plant_id"] == plant_id
                    assert received - sent < 1.0, f"{received - sent:.3f} s"
            # a server told to stop ends its open stream at once, not after its 60 s shutdown timeout
            started = time.monotonic()
            servers[0].proc.send_signal(signal.SIGTERM)
            with pytest.raises(EOFError):
                while True:
                    await _next_state(streams[0], timeout=20)
            assert servers[0].proc.wait(20) is not None
            assert time.monotonic() - started < 10, servers[0].output()[-2000:]
            for resp in streams:
                resp.close()
    finally:
        for server in servers:
            server.stop()


async def test_a_sample_ingested_by_one_server_reaches_a_client_of_the_other_within_a_second(settings, tmp_path):
    import datetime as dt

    plant_id, headers = await _session_header(settings)
    client_side, ingest_side = servers = [
        ServerProcess(["serve"], settings_env(settings, tmp_path, port=port), tmp_path, port)
        for port in (free_port(), free_port())]
    try:
        for server in servers:
            await server.wait_healthy()
        async with aiohttp.ClientSession() as session:
            stream = await session.get(f"{client_side.base}/api/v1/plants/{plant_id}/live", headers=headers)
            assert stream.status == 200, await stream.text()
            assert (await stream.content.readline()).startswith(b"retry:")
            now = utc_now().replace(microsecond=0)
            for n, power in enumerate((41_000, 52_000)):
                sample = {"device": "INV-LIVE-1", "ts": (now + dt.timedelta(minutes=n)).isoformat(),
                          "power_w": power, "energy_wh": 5_000_000 + 1_000 * n}
                posted = time.time()
                async with session.post(f"{ingest_side.base}/ingest/v1/telemetry", json={"samples": [sample]},
                                        headers={"Authorization": f"Bearer {COLLECTOR_KEY}"}) as resp:
                    assert resp.status == 200, await resp.text()
                    assert (await resp.json())["created"] == 1
                state, received = await _next_state(stream, timeout=5)
                assert state["plant_id"] == plant_id and state["power_w"] == power
                assert received - posted < 1.0, f"{received - posted:.3f} s"
            stream.close()
    finally:
        for server in servers:
            server.stop()
