"""The gateway polls a DL/T 645 bus and a SunSpec inverter over real TCP and what they said arrives
through the real ingest API in the database, value by value."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from gateway.config import parse
from gateway.runner import Gateway
from gateway.uplink import Uplink
from settlement import models as m
from tests.gateway.conftest import GEN, GEN_ADDRESS, GRID, INV, KEY, Clock, config_text

ENV = {"PVSETTLE_GATEWAY_KEY": KEY}


async def stored_readings(serial: str) -> dict[tuple[dt.datetime, str], Decimal]:
    rows = await m.Reading.filter(meter__serial=serial).values_list("read_at", "register", "value", "revision", "source")
    assert all(r[3] == 0 and r[4] == m.ReadingSource.AMI for r in rows)
    return {(r[0].astimezone(dt.timezone.utc), r[1]): r[2] for r in rows}


def expected(values: dict[int, Decimal], read_at: dt.datetime) -> dict[tuple[dt.datetime, str], Decimal]:
    return {(read_at, f"{di:08X}"): value for di, value in values.items()}


async def test_meters_and_an_inverter_polled_over_tcp_arrive_value_by_value(server, bus, inverters):
    config = parse(config_text(server, bus.port, inverters.port), environ=ENV)
    clock = Clock()
    gateway = Gateway(config, now=clock)
    try:
        await _two_polls(gateway, config, clock, bus, inverters)
    finally:
        await gateway.close()


async def _two_polls(gateway, config, clock, bus, inverters):
    first = clock()
    for meter in config.meters:
        assert await gateway.poll_meter(meter)
    assert await gateway.poll_inverter(config.inverters[0])
    shown_first = {address: sim.values() for address, sim in bus.meters.items()}
    async with Uplink(config.server, config.key) as uplink:
        assert await gateway.forward_once(uplink)
        assert gateway.queue.pending() == {"readings": 0, "telemetry": 0, "status": 0}
        # the sky moves: a midday hour of a 10 kW plant, then the next poll
        noon = dt.datetime(2026, 6, 21, 4, 0, tzinfo=dt.timezone.utc)  # 12:00 in Shanghai
        bus.step(noon)
        bus.step(noon + dt.timedelta(hours=1))
        gen = bus.meters[GEN_ADDRESS]
        assert gen.values()[0x00010000] > Decimal("1243.62")  # it produced
        inverters.inverters[3].energy_wh += 1500
        inverters.inverters[3].power_w, inverters.inverters[3].state = 0, 8
        clock.advance(60)
        for meter in config.meters:
            assert await gateway.poll_meter(meter)
        assert await gateway.poll_inverter(config.inverters[0])
        assert await gateway.forward_once(uplink)
    second = clock()

    grid = next(s for s in bus.meters.values() if s.address != GEN_ADDRESS)
    # energy to 0.01 kWh: every register of both polls, exactly what the meters showed
    got_gen = await stored_readings(GEN)
    assert got_gen == {**expected(shown_first[GEN_ADDRESS], first), **expected(gen.values(), second)}
    assert got_gen[(first, "00010000")] == Decimal("1243.62")  # 1234.56 + 2.01 + 3.02 + 4.03
    assert got_gen[(first, "00010100")] == Decimal("1234.56")
    assert len(got_gen) == 20
    got_grid = await stored_readings(GRID)
    assert got_grid == {**expected(shown_first[grid.address], first), **expected(grid.values(), second)}
    assert got_grid[(first, "00020400")] == Decimal("999.99") and got_grid[(first, "00020000")] == Decimal("1000.05")

    samples = await m.TelemetrySample.filter(device__serial=INV).order_by("ts").values_list(
        "ts", "power_w", "energy_wh", "status")
    assert [(s[0].astimezone(dt.timezone.utc), s[1], s[2], s[3]) for s in samples] == [
        (first, 4321, 1_234_567, "ok"), (second, 0, 1_236_067, "standby")]

    statuses = {s.device: s for s in await m.FieldDeviceStatus.all()}
    assert {k: (s.kind, s.state, s.code) for k, s in statuses.items()} == {
        GEN: ("meter", "online", ""), GRID: ("meter", "online", ""), INV: ("inverter", "online", "")}
    assert gateway.stats.rows_sent == {"readings": 40, "telemetry": 2, "status": 3}
    assert gateway.stats.rows_refused == {"readings": 0, "telemetry": 0, "status": 0}


async def test_a_vendor_register_map_is_read_with_its_scale_and_word_order(server, bus):
    """An inverter without SunSpec: lifetime energy in kWh × 1000 as a little-endian uint32 in input
    registers, power as int32, a status code."""
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    energy_kwh = 98_765  # → 98,765,000 Wh
    words = [energy_kwh & 0xFFFF, energy_kwh >> 16]  # little word order: low word first
    # shared registers: the input registers (FC 4) the map names are these
    device = SimDevice(id=1, simdata=[SimData(address=30000, values=words + [0] * 8 + [0, 2500] + [0] * 8 + [2],
                                              datatype=DataType.REGISTERS)])
    modbus = ModbusTcpServer([device], address=("127.0.0.1", 0))
    await modbus.serve_forever(background=True)
    port = modbus.transport.sockets[0].getsockname()[1]
    try:
        extra = """
[register_map.acme]
function = "input"
energy = { address = 30000, type = "uint32", word_order = "little", scale = 1000 }
power = { address = 30010, type = "int32", scale = 1 }
status = { address = 30020, type = "uint16", ok = [1, 2], standby = [0], fault = [3] }
"""
        text = config_text(server, bus.port, port, extra=extra).replace('unit = 3\n', 'unit = 1\nmap = "acme"\n')
        config = parse(text, environ=ENV)
        clock = Clock()
        gateway = Gateway(config, now=clock)
        assert await gateway.poll_inverter(config.inverters[0])
        async with Uplink(config.server, config.key) as uplink:
            assert await gateway.forward_once(uplink)
        sample = await m.TelemetrySample.get(device__serial=INV)
        assert (sample.energy_wh, sample.power_w, sample.status) == (98_765_000, 2500, "ok")
        await gateway.close()
    finally:
        await modbus.shutdown()


async def test_a_meter_alone_on_its_bus_is_found_by_its_address(server, inverters):
    """address = "discover": the broadcast read-address request (AA…AA), answered by the one meter."""
    from sandbox.field_devices import MeterBusSimulator, SimMeter

    alone = await MeterBusSimulator([SimMeter("000098765432", forward=[Decimal("7.77")] * 4)]).start()
    try:
        text = config_text(server, alone.port, inverters.port)
        text = text.replace('address = "000012345601"', 'address = "discover"')
        text = text[:text.index('[[meter]]\nserial = "M-GRID-1"')] + text[text.index("[[inverter]]"):]
        config = parse(text, environ=ENV)
        gateway = Gateway(config, now=Clock())
        try:
            assert await gateway.poll_meter(config.meters[0])
            assert gateway.devices[GEN].address == "000098765432"
            async with Uplink(config.server, config.key) as uplink:
                assert await gateway.forward_once(uplink)
        finally:
            await gateway.close()
        assert dict(await m.Reading.filter(meter__serial=GEN).values_list("register", "value"))["00010000"] \
            == Decimal("31.08")
    finally:
        await alone.stop()
