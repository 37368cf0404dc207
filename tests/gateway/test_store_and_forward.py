"""Store and forward across a server outage: what was read waits in the gateway's SQLite queue and
arrives once, in order, when the server is back; an answer lost after the server committed is
sent again and taken as duplicates."""

from __future__ import annotations


import pytest

from gateway.config import parse
from gateway.errors import UplinkError
from gateway.queue import Queue
from gateway.runner import Gateway
from gateway.uplink import Uplink
from settlement import models as m
from tests.e2e.processes import free_port
from tests.gateway.conftest import GEN, GRID, INV, KEY, Clock, config_text


async def polls(gateway: Gateway, clock: Clock, bus, n: int) -> None:
    for _ in range(n):
        for meter in gateway.config.meters:
            assert await gateway.poll_meter(meter)
        assert await gateway.poll_inverter(gateway.config.inverters[0])
        for sim in bus.meters.values():
            sim.forward[1] += 1  # each poll sees new values
        clock.advance(60)


async def test_readings_wait_out_an_outage_and_arrive_once_in_order(outage, bus, inverters, tmp_path):
    config = parse(config_text(outage.url, bus.port, inverters.port, queue=str(tmp_path / "queue.sqlite3")),
                   environ={"PVSETTLE_GATEWAY_KEY": KEY})
    clock = Clock(minutes_back=30)
    gateway = Gateway(config, now=clock)
    try:
        async with Uplink(config.server, config.key) as uplink:
            outage.mode = "down"
            await polls(gateway, clock, bus, 3)
            assert not await gateway.forward_once(uplink)
            assert gateway.queue.pending() == {"readings": 60, "telemetry": 3, "status": 3}
            assert await m.Reading.all().count() == 0

            outage.mode = "lost"  # the server commits, the answer never comes back
            assert not await gateway.forward_once(uplink)
            assert await m.FieldDeviceStatus.all().count() == 3  # statuses go first: they were taken
            assert gateway.queue.pending()["status"] == 3  # and are still queued: no answer, no delete

            await polls(gateway, clock, bus, 1)  # the gateway goes on reading meanwhile
            outage.mode = "up"
            assert await gateway.forward_once(uplink)
            assert gateway.queue.pending() == {"readings": 0, "telemetry": 0, "status": 0}
    finally:
        await gateway.close()
    # every reading once: 4 polls × 2 meters × 10 registers; samples 4; nothing doubled
    readings = await m.Reading.all().order_by("id").values_list("meter__serial", "register", "read_at", "revision")
    assert len(readings) == 80 and len(set(readings)) == 80 and {r[3] for r in readings} == {0}
    assert {r[0] for r in readings} == {GEN, GRID}
    # sent in the order read: a register's readings are stored in the order of their times
    for meter in (GEN, GRID):
        times = [r[2] for r in readings if r[0] == meter and r[1] == "00010100"]
        assert len(times) == 4 and times == sorted(times)
    assert await m.TelemetrySample.filter(device__serial=INV).count() == 4
    assert gateway.stats.rows_sent["status"] == 3


async def test_what_a_killed_gateway_left_in_its_queue_is_sent_by_the_next_one(server, bus, inverters, tmp_path):
    """The queue is a file: a new gateway process on it sends what the last one read and did not send."""
    path = tmp_path / "queue.sqlite3"
    dead = f"http://127.0.0.1:{free_port()}"  # nobody listens: connection refused
    config = parse(config_text(dead, bus.port, inverters.port, queue=str(path)), environ={"PVSETTLE_GATEWAY_KEY": KEY})
    clock = Clock(minutes_back=10)
    first = Gateway(config, now=clock)
    await polls(first, clock, bus, 2)
    async with Uplink(config.server, config.key) as uplink:
        with pytest.raises(UplinkError):
            await uplink.post("readings", first.queue.take("readings", 10).rows)
        assert not await first.forward_once(uplink)
    await first.close()  # as good as killed: nothing was sent

    again = parse(config_text(server, bus.port, inverters.port, queue=str(path)), environ={"PVSETTLE_GATEWAY_KEY": KEY})
    second = Gateway(again, queue=Queue(path))
    try:
        async with Uplink(again.server, again.key) as uplink:
            assert await second.forward_once(uplink)
    finally:
        await second.close()
    assert await m.Reading.all().count() == 40
    assert await m.TelemetrySample.all().count() == 2


async def test_a_batch_the_server_refuses_whole_is_set_aside_not_retried_forever(server, bus, inverters, tmp_path):
    config = parse(config_text(server, bus.port, inverters.port, queue=str(tmp_path / "q.sqlite3")),
                   environ={"PVSETTLE_GATEWAY_KEY": KEY})
    gateway = Gateway(config, now=Clock())
    try:
        gateway.queue.put("readings", [{"meter": GEN, "register": "00010000", "read_at": "x", "value": "1"}])
        gateway.queue.db.execute("UPDATE outbox SET row = '[1, 2]'")  # a row that is no object: 400 for the batch
        async with Uplink(config.server, config.key) as uplink:
            assert await gateway.forward_once(uplink)
        assert gateway.queue.pending()["readings"] == 0 and gateway.queue.dead_count() == 1
    finally:
        await gateway.close()


async def test_a_wrong_key_keeps_everything_queued(server, bus, inverters):
    config = parse(config_text(server, bus.port, inverters.port), environ={"PVSETTLE_GATEWAY_KEY": "not-our-key"})
    gateway = Gateway(config, now=Clock())
    try:
        assert await gateway.poll_meter(config.meters[0])
        async with Uplink(config.server, config.key) as uplink:
            assert not await gateway.forward_once(uplink)
        assert gateway.queue.pending()["readings"] == 10
    finally:
        await gateway.close()
