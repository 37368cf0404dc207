"""Hostile device input: each answer that cannot be a reading is refused, reported to the server as
the device's status, and the gateway goes on polling the others."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal

import pytest

from gateway.config import parse
from gateway.runner import Gateway
from gateway.uplink import Uplink
from settlement import models as m
from tests.gateway.conftest import GEN, GEN_ADDRESS, GRID, GRID_ADDRESS, INV, KEY, Clock, config_text

ENV = {"PVSETTLE_GATEWAY_KEY": KEY}


async def status_of(serial: str) -> tuple[str, str]:
    status = await m.FieldDeviceStatus.get(device=serial)
    return status.state, status.code


async def forward(gateway: Gateway) -> None:
    async with Uplink(gateway.config.server, gateway.config.key) as uplink:
        assert await gateway.forward_once(uplink)


@pytest.mark.parametrize("fault, state, code", [
    ("silent", "offline", "timeout"),  # an address that does not answer
    ("garbled", "fault", "garbled"),
    ("bad_checksum", "fault", "bad_checksum"),
    ("wrong_address", "fault", "wrong_address"),  # a slave answering for another address
    ("absurd", "fault", "absurd_value"),  # BCD digits above 9
])
async def test_a_meter_answering_what_is_no_reading_is_refused_and_reported(server, bus, inverters, fault, state, code):
    gateway = Gateway(parse(config_text(server, bus.port, inverters.port, timeout_s=0.3), environ=ENV), now=Clock())
    try:
        gen, grid = gateway.config.meters
        bus.meters[GEN_ADDRESS].fault = fault
        bus.meters[GEN_ADDRESS].answer_as = GRID_ADDRESS  # the wrong address is a real one on the bus
        assert not await gateway.poll_meter(gen)
        gateway.now.advance()
        assert await gateway.poll_meter(grid)  # the next meter on the same bus is read as ever
        await forward(gateway)
        assert await m.Reading.filter(meter__serial=GEN).count() == 0
        assert await m.Reading.filter(meter__serial=GRID).count() == 10
        assert await status_of(GEN) == (state, code)
        assert await status_of(GRID) == ("online", "")
        detail = (await m.FieldDeviceStatus.get(device=GEN)).message
        assert GEN_ADDRESS in detail

        bus.meters[GEN_ADDRESS].fault = None  # mended: read again, reported back online
        gateway.now.advance()
        assert await gateway.poll_meter(gen)
        await forward(gateway)
        assert await m.Reading.filter(meter__serial=GEN).count() == 10
        status = await m.FieldDeviceStatus.get(device=GEN)
        assert (status.state, status.code, status.since) == ("online", "", status.observed_at)
    finally:
        await gateway.close()


async def test_a_clock_off_by_more_than_the_skew_and_a_counter_going_backwards_make_no_readings(server, bus, inverters):
    gateway = Gateway(parse(config_text(server, bus.port, inverters.port, timeout_s=0.3), environ=ENV), now=Clock())
    try:
        gen = gateway.config.meters[0]
        sim = bus.meters[GEN_ADDRESS]
        sim.clock_skew_s = -301  # the config allows 300 s
        assert not await gateway.poll_meter(gen)
        await forward(gateway)
        assert await status_of(GEN) == ("fault", "clock_skew")
        sim.clock_skew_s = 120  # within the skew: read
        gateway.now.advance()
        assert await gateway.poll_meter(gen)
        sim.forward[0] -= Decimal("0.01")  # the total goes back 0.01 kWh, far from a rollover
        gateway.now.advance()
        assert not await gateway.poll_meter(gen)
        await forward(gateway)
        assert await status_of(GEN) == ("fault", "counter_decreased")
        assert await m.Reading.filter(meter__serial=GEN).count() == 10  # the one good poll only
    finally:
        await gateway.close()


async def test_a_rollover_of_the_dial_is_no_decrease(server, bus, inverters):
    """999,990.00 → 12.30 kWh on a 6-digit dial: read past the library's 800,000 kWh sign digit,
    passed on, and the server takes it as the rollover it is."""
    gateway = Gateway(parse(config_text(server, bus.port, inverters.port), environ=ENV), now=Clock(minutes_back=30))
    try:
        gen = gateway.config.meters[0]
        sim = bus.meters[GEN_ADDRESS]
        sim.forward = [Decimal("999990.00"), Decimal(0), Decimal(0), Decimal(0)]
        assert await gateway.poll_meter(gen)
        sim.forward = [Decimal("12.30"), Decimal(0), Decimal(0), Decimal(0)]
        gateway.now.advance(900)
        assert await gateway.poll_meter(gen)
        await forward(gateway)
        assert sorted(await m.Reading.filter(meter__serial=GEN, register="00010100").values_list("value", flat=True)) \
            == [Decimal("12.30"), Decimal("999990.00")]
    finally:
        await gateway.close()


async def test_an_inverter_showing_absurd_power_or_not_answering_is_refused_and_reported(server, bus, inverters):
    gateway = Gateway(parse(config_text(server, bus.port, inverters.port, timeout_s=0.3), environ=ENV), now=Clock())
    try:
        inverter = gateway.config.inverters[0]
        inverters.inverters[3].fault = "absurd"  # 30 kW on an 8 kW inverter
        assert not await gateway.poll_inverter(inverter)
        await forward(gateway)
        assert await status_of(INV) == ("fault", "absurd_value")
        inverters.inverters[3].fault = "silent"  # the Modbus gateway says its target did not answer
        gateway.now.advance()
        assert not await gateway.poll_inverter(inverter)
        await forward(gateway)
        assert await status_of(INV) == ("fault", "device_error")
        inverters.inverters[3].fault = None
        inverters.inverters[3].energy_wh = 1000  # below the 1,234,567 Wh it never showed us: first poll, taken
        gateway.now.advance()
        assert await gateway.poll_inverter(inverter)
        inverters.inverters[3].energy_wh = 999
        gateway.now.advance()
        assert not await gateway.poll_inverter(inverter)
        await forward(gateway)
        assert await status_of(INV) == ("fault", "counter_decreased")
        assert await m.TelemetrySample.filter(device__serial=INV).values_list("energy_wh", flat=True) == [1000]
    finally:
        await gateway.close()


async def test_a_hung_socket_times_out_and_the_running_gateway_goes_on_with_the_others(server, bus, inverters):
    """A DTU that takes the connection, reads every request and never answers; the gateway runs as
    `pvsettle gateway run` does, its devices on their schedules, until the healthy ones have arrived."""
    heard = []

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # hand-written on purpose: the library's server always answers; this one holds the socket open
        while data := await reader.read(1024):
            heard.append(data)
        writer.close()

    hung = await asyncio.start_server(hang, "127.0.0.1", 0)
    hung_port = hung.sockets[0].getsockname()[1]
    extra = f"""
[[link]]
name = "dead-dtu"
protocol = "dlt645"
tcp = "127.0.0.1:{hung_port}"
timeout_s = 0.2

[[meter]]
serial = "M-HUNG"
link = "dead-dtu"
address = "000000000777"
interval_s = 0.05
"""
    owner = await m.Owner.first()
    plant = await m.Plant.create(code="PV-H", name="PV-H", owner=owner, capacity_kwp=Decimal("5"))
    await m.Meter.create(plant=plant, serial="M-HUNG", kind=m.MeterKind.GENERATION, registers=["00010000"],
                         installed_on=dt.date(2026, 1, 1))
    bus.meters[GRID_ADDRESS].fault = "garbled"
    gateway = Gateway(parse(config_text(server, bus.port, inverters.port, timeout_s=0.2, interval_s=0.05, extra=extra),
                            environ=ENV))
    runner = asyncio.create_task(gateway.run())
    try:
        for _ in range(400):  # until what the healthy devices said and the sick ones' statuses are in
            await asyncio.sleep(0.05)
            assert not runner.done(), runner
            statuses = dict(await m.FieldDeviceStatus.all().values_list("device", "code"))
            if (await m.Reading.filter(meter__serial=GEN).count() >= 20
                    and await m.TelemetrySample.filter(device__serial=INV).exists()
                    and statuses.get("M-HUNG") == "timeout" and statuses.get(GRID) == "garbled"):
                break
        else:
            raise AssertionError(f"not all arrived: {statuses}, {gateway.stats}")
        assert heard, "the hung DTU was asked"
        assert await m.Reading.filter(meter__serial__in=["M-HUNG", GRID]).count() == 0
        assert gateway.devices["M-HUNG"].failures >= 1
    finally:
        gateway.stop()
        await runner
        hung.close()
        await hung.wait_closed()


async def test_a_dtu_nobody_answers_at_is_offline_unreachable(server, bus, inverters):
    from tests.e2e.processes import free_port

    text = config_text(server, free_port(), inverters.port, timeout_s=0.3)
    gateway = Gateway(parse(text, environ=ENV), now=Clock())
    try:
        assert not await gateway.poll_meter(gateway.config.meters[0])
        assert await gateway.poll_inverter(gateway.config.inverters[0])  # the other link is fine
        await forward(gateway)
        assert await status_of(GEN) == ("offline", "unreachable")
        assert await status_of(INV) == ("online", "")
    finally:
        await gateway.close()


async def test_inverter_alarms_are_reported_once_with_the_status_and_the_samples_go_on(server, bus, inverters):
    gateway = Gateway(parse(config_text(server, bus.port, inverters.port), environ=ENV), now=Clock())
    try:
        inverter = gateway.config.inverters[0]
        inverters.inverters[3].events = 0b1 | 0b1000  # SunSpec Evt1 bits 0 and 3 (pysunspec2's model 103 names)
        for _ in range(3):
            assert await gateway.poll_inverter(inverter)
            gateway.now.advance()
        inverters.inverters[3].events = 0
        assert await gateway.poll_inverter(inverter)
        rows = gateway.queue.take("status", 100).rows
        assert [(r["state"], r["code"]) for r in rows] == [("online", "alarms"), ("online", "")]
        assert rows[0]["message"] == "alarms set: GROUND_FAULT, DC_DISCONNECT"
        await forward(gateway)
        assert await m.TelemetrySample.filter(device__serial=INV).count() == 4
    finally:
        await gateway.close()
