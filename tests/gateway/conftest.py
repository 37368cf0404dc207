"""What the gateway tests share: a plant with a generation meter, a grid meter and an inverter on
the whole server app (real ingest API on a real TCP port), its collector key, and the simulators."""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal

import aiohttp
import pytest
from aiohttp import web

from gateway.config import FORM_REGISTERS
from sandbox.field_devices import InverterSimulator, MeterBusSimulator, SimInverter, SimMeter
from settlement import models as m

KEY = "gateway-collector-key-0123456789abcdefghijklmn"
GEN, GRID, INV = "M-GEN-1", "M-GRID-1", "INV-G1"
GEN_ADDRESS, GRID_ADDRESS = "000012345601", "000012345602"


def d(text: str) -> Decimal:
    return Decimal(text)


@pytest.fixture
async def server(client):
    """The base URL of the whole server app, with the plant's devices and the gateway's collector."""
    owner = await m.Owner.create(name="屋顶业主")
    plant = await m.Plant.create(code="PV-G", name="PV-G", owner=owner, capacity_kwp=Decimal("30.000"),
                                 latitude=Decimal("31.230000"), longitude=Decimal("121.470000"))
    for serial, kind in ((GEN, m.MeterKind.GENERATION), (GRID, m.MeterKind.GRID)):
        await m.Meter.create(plant=plant, serial=serial, kind=kind, multiplier=1, register_digits=6,
                             registers=list(FORM_REGISTERS), installed_on=dt.date(2026, 1, 1))
    await m.TelemetryDevice.create(plant=plant, serial=INV, rated_power_w=8000)
    await m.Collector.create(name="site-gateway", key_sha256=hashlib.sha256(KEY.encode()).hexdigest())
    return str(client.make_url("")).rstrip("/")


@pytest.fixture
async def bus():
    """A DTU port with the generation meter and the grid meter behind it."""
    meters = [SimMeter(GEN_ADDRESS, forward=[d("1234.56"), d("2.01"), d("3.02"), d("4.03")], power_kw=d("3.2101")),
              SimMeter(GRID_ADDRESS, forward=[d("10.10"), d("20.20"), d("30.30"), d("40.40")],
                       reverse=[d("0.01"), d("0.02"), d("0.03"), d("999.99")], power_kw=d("0.5000"), load_kw=2.0)]
    simulator = await MeterBusSimulator(meters).start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def inverters():
    simulator = await InverterSimulator([SimInverter(unit=3, serial_number="SN-G1", rated_w=8000, energy_wh=1_234_567,
                                                     power_w=4321, state=4)]).start()
    yield simulator
    await simulator.stop()


def config_text(server: str, bus_port: int, inverter_port: int, *, timeout_s: float = 0.5, interval_s: float = 60,
                extra: str = "", queue: str = ":memory:") -> str:
    return f"""
[gateway]
server = "{server}"
queue = "{queue}"
flush_interval_s = 0.05

[[link]]
name = "roof-dtu"
protocol = "dlt645"
tcp = "127.0.0.1:{bus_port}"
timeout_s = {timeout_s}

[[link]]
name = "roof-inverters"
protocol = "modbus"
tcp = "127.0.0.1:{inverter_port}"
timeout_s = {timeout_s}

[[meter]]
serial = "{GEN}"
link = "roof-dtu"
address = "{GEN_ADDRESS}"
interval_s = {interval_s}

[[meter]]
serial = "{GRID}"
link = "roof-dtu"
address = "{GRID_ADDRESS}"
interval_s = {interval_s}

[[inverter]]
serial = "{INV}"
link = "roof-inverters"
unit = 3
rated_w = 8000
interval_s = {interval_s}
{extra}
"""


class Clock:
    """The gateway's clock in a test: now, moved on by hand (readings need distinct times)."""

    def __init__(self, minutes_back: float = 2):
        self.t = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(minutes=minutes_back)

    def __call__(self) -> dt.datetime:
        return self.t

    def advance(self, seconds: float = 1) -> None:
        self.t += dt.timedelta(seconds=seconds)


class Outage:
    """In front of the server: ``up`` passes requests on, ``down`` answers 503 as a restarting
    server or its proxy does, ``lost`` passes the request on and loses the answer (502)."""

    def __init__(self, target: str):
        self.target, self.mode, self.seen = target, "up", 0

    async def handle(self, request: web.Request) -> web.Response:
        self.seen += 1
        if self.mode == "down":
            return web.json_response({"error": {"code": "unavailable", "message": "down"}}, status=503)
        async with aiohttp.ClientSession() as session:
            async with session.post(self.target + request.path, data=await request.read(),
                                    headers={"Authorization": request.headers["Authorization"],
                                             "Content-Type": "application/json"}) as resp:
                body, status = await resp.read(), resp.status
        if self.mode == "lost":
            return web.Response(status=502, text="bad gateway")
        return web.Response(body=body, status=status, content_type="application/json")


@pytest.fixture
async def outage(server, aiohttp_server):
    proxy = Outage(server)
    app = web.Application()
    app.router.add_post("/{tail:.*}", proxy.handle)
    front = await aiohttp_server(app)
    proxy.url = str(front.make_url("")).rstrip("/")
    return proxy
