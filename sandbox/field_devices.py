"""Field device simulators for tests, benches and the demo: DL/T 645 meters on a TCP bus and SunSpec
inverters on Modbus TCP, fed from the demo's sky (:mod:`sandbox.simulator`).

* :class:`MeterBusSimulator` — one TCP port that plays a DTU in transparent mode with an RS-485
  bus of meters behind it. The TCP server is the ``dlt645`` library's ``AsyncTcpServer``, and
  each meter is the library's ``MeterServerService`` (it decodes requests and encodes answers);
  what is added is the bus: a request goes to the meter whose address it carries, and a meter
  not addressed stays silent, as it does on RS-485 (the library's single-meter server answers
  every address with an error frame).
* :class:`InverterSimulator` — a pymodbus ``ModbusTcpServer`` holding, per unit, the SunSpec
  marker, the common model (1), an inverter model (101, 102 or 103) and the end marker, encoded
  by ``pysunspec2``'s model definitions, refreshed on every read (pymodbus's ``SimDevice.action``).

Energy follows power: :meth:`~MeterBusSimulator.step` advances every meter and inverter by its
power (the sun's elevation at its site × clear-sky fraction × its clouds) × the time since the
last step. Tests set values directly instead and call nothing.

Faults (``fault`` of a meter or inverter), to test what the gateway refuses. Where the library
cannot produce a wrong answer (it only builds honest frames), the frame is spoiled here by hand
after the library built it: noted at each spot.

=================  ==============================================================================
``silent``         no answer at all (a dead meter, a broken wire)
``garbled``        random bytes instead of the answer (noise, a wrong baud rate)
``bad_checksum``   the honest frame with its checksum byte off by one
``wrong_address``  an honest frame from another address (two meters with one address, a crosstalk)
``absurd``         the energy answer carries BCD digits above 9 (a meter's memory gone bad)
``hang``           reads the request and never answers, the TCP connection left open
=================  ==============================================================================
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal

import numpy as np
from dlt645 import MeterServerService
from dlt645.aio import AsyncTcpServer
from dlt645.model.types.dlt645_type import CtrlCode, PasswordManager
from dlt645.protocol.protocol import DLT645Protocol

from gateway.meters import DATE_DI, POWER_DI, READ_DIS, TIME_DI, small_data_map
from sandbox.simulator import clear_sky_fraction
from settlement.telemetry.solar import DEFAULT_LATITUDE, DEFAULT_LONGITUDE, sun_elevation_deg
from settlement.clock import LOCAL, utc_now
from settlement.telemetry.store import datetime_to_us

CENT = Decimal("0.01")
BROADCAST = bytes([0xAA] * 6)
#: The simulator's own TOU day (rate 1 sharp, 2 peak, 3 flat, 4 valley), by local hour: a shape
#: like Zhejiang's, enough for the four rate registers to move at different times.
RATE_OF_HOUR = [4] * 8 + [2, 1, 1, 4, 4, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 3]


def sky_power(rated: float, now: dt.datetime, latitude: float, longitude: float, clearness: float) -> float:
    """Power of a PV plant of ``rated`` (W or kW, the same unit back) at ``now`` under the demo's sky."""
    elevation = float(sun_elevation_deg(np.array([datetime_to_us(now)], dtype=np.int64), latitude, longitude)[0])
    return rated * clear_sky_fraction(elevation) * clearness


@dataclass
class SimMeter:
    """One simulated DL/T 645-2007 generation meter.

    ``forward`` and ``reverse`` hold the rate registers 1–4 [kWh] (the totals are their sums,
    so that they add up as a meter's do); ``power_kw`` [kW]; ``clock_skew_s`` [s] its clock's
    error. For a grid meter (``load_kw`` > 0), forward is what the site draws beyond the PV and
    reverse what it exports.
    """

    address: str
    rated_kw: float = 10.0
    forward: list[Decimal] = field(default_factory=lambda: [Decimal(0)] * 4)
    reverse: list[Decimal] = field(default_factory=lambda: [Decimal(0)] * 4)
    power_kw: Decimal = Decimal(0)
    load_kw: float = 0.0
    latitude: float = DEFAULT_LATITUDE
    longitude: float = DEFAULT_LONGITUDE
    clearness: float = 1.0
    clock_skew_s: float = 0.0
    fault: str | None = None
    answer_as: str | None = None  # the address a ``wrong_address`` fault answers with
    clock_reads: int = 0  # requests of its time answered: the last request of a gateway's poll
    _fraction: list[float] = field(default_factory=lambda: [0.0] * 8)  # energy below 0.01 kWh, kept

    def total(self, registers: list[Decimal]) -> Decimal:
        return sum(registers, Decimal(0))

    def values(self) -> dict[int, Decimal]:
        """Every energy register by data identifier [kWh]."""
        out = {0x00010000: self.total(self.forward), 0x00020000: self.total(self.reverse)}
        for rate in range(4):
            out[0x00010100 + 0x100 * rate] = self.forward[rate]
            out[0x00020100 + 0x100 * rate] = self.reverse[rate]
        return out

    def advance(self, now: dt.datetime, hours: float, rng: random.Random) -> None:
        """Add ``hours`` [h] of the power at ``now`` to the register of ``now``'s rate."""
        self.clearness = min(1.0, max(0.25, self.clearness + rng.uniform(-0.05, 0.05)))
        pv = sky_power(self.rated_kw, now, self.latitude, self.longitude, self.clearness)
        rate = RATE_OF_HOUR[now.astimezone(LOCAL).hour] - 1
        net = pv - self.load_kw if self.load_kw else pv  # a generation meter counts its PV forward
        self.power_kw = Decimal(f"{abs(net):.4f}")
        registers, slot = (self.forward, rate) if net >= 0 else (self.reverse, 4 + rate)
        self._fraction[slot] += abs(net) * hours
        whole = Decimal(self._fraction[slot]).quantize(CENT, rounding=ROUND_FLOOR)
        self._fraction[slot] -= float(whole)
        registers[rate % 4] += whole


class _MeterService(MeterServerService):
    """The library's meter (request decoding, answer encoding) on a small data map (a copy of the
    library's whole map per meter costs a second: see :func:`gateway.meters.small_data_map`)."""

    def __init__(self, address: str):  # the parent's __init__ less its whole-map copy
        self.server = None
        self.address = bytearray(6)
        self.password_manager = PasswordManager()
        self.data_map = small_data_map(READ_DIS)
        self.clear_meter_event_records = []
        self.event_records = []
        self.time = None
        self.last_freeze_time = None
        self.baud_rate = 9600
        # as the frame carries it, A0 (the lowest two digits) first (DL/T 645-2007 §7.1); the
        # library's set_address("…") of text would keep the printed order on the wire
        self.set_address(bytearray(_frame_address(address)))


class _Bus:
    """What the library's TCP server calls for each request frame: the addressed meter answers."""

    def __init__(self, simulator: "MeterBusSimulator"):
        self.sim = simulator

    def handle_request(self, frame):
        address = bytes(frame.addr)
        if address == BROADCAST and frame.ctrl_code == CtrlCode.ReadAddress:
            # everyone on the bus would answer at once: only a lone meter gives a clean answer
            if len(self.sim.meters) != 1:
                return None
            meter = next(iter(self.sim.meters.values()))
        else:
            meter = self.sim.by_frame_address.get(address)
            if meter is None:
                return None
        if meter.fault in ("silent", "hang"):
            return None
        service = self.sim.services[meter.address]
        di = int.from_bytes(bytes(frame.data[:4]), "little") if frame.ctrl_code == CtrlCode.ReadData \
            and len(frame.data) >= 4 else None
        self.sim.load(meter, service, di)
        answer = service.handle_request(frame)
        if frame.ctrl_code == CtrlCode.ReadData and bytes(frame.data[:4]) == TIME_DI.to_bytes(4, "little"):
            meter.clock_reads += 1
        if answer is not None and frame.ctrl_code == CtrlCode.ReadData and frame.data[3] == 0x00:
            answer = self.sim.energy_answer(meter, frame, bytes(answer))
        if answer is None or meter.fault is None:
            return answer
        return self.sim.spoil(meter, frame, bytes(answer))


class MeterBusSimulator:
    """A DTU port with a bus of DL/T 645 meters behind it, on 127.0.0.1 (``port`` 0: any free one).

    Parameters
    ----------
    meters : list of SimMeter
    host, port : where to listen.
    clock : callable, optional
        The meters' clock (aware UTC) before their skew; default the system's.
    """

    def __init__(self, meters: list[SimMeter], *, host: str = "127.0.0.1", port: int = 0,
                 clock: Callable[[], dt.datetime] | None = None, seed: int = 7):
        self.meters = {m.address: m for m in meters}
        self.by_frame_address = {_frame_address(m.address): m for m in meters}
        self.services = {m.address: _MeterService(m.address) for m in meters}
        self.clock = clock or utc_now
        self.rng = random.Random(seed)
        self.requests = 0
        self.server = AsyncTcpServer(ip=host, port=port, timeout=30.0)
        self.server.service = _Bus(self)
        self._last_step: dt.datetime | None = None

    @property
    def port(self) -> int:
        return self.server.port

    async def start(self) -> "MeterBusSimulator":
        if not await self.server.start():
            raise OSError(f"the meter simulator cannot listen on {self.server.ip}:{self.server.port}")
        return self

    async def stop(self) -> None:
        await self.server.stop()

    def step(self, now: dt.datetime | None = None) -> None:
        """Advance every meter's registers by its power since the last step."""
        now = now or self.clock()
        hours = 0.0 if self._last_step is None else max(0.0, (now - self._last_step).total_seconds() / 3600)
        self._last_step = now
        for meter in self.meters.values():
            meter.advance(now, hours, self.rng)

    def load(self, meter: SimMeter, service: MeterServerService, di: int | None = None) -> None:
        """Put the meter's present value of ``di`` (default: all of them) into the library's data
        items before it answers (one item per request: a bus of meters answers thousands a second)."""
        self.requests += 1
        if di is None or di >> 24 == 0x00:
            for register, value in meter.values().items():
                if di is not None and register != di:
                    continue
                if value < 800_000 and not service.set_00(register, float(value)):  # above: see energy_answer
                    raise ValueError(f"the library refused {value} kWh for {register:08X}")
        if (di is None or di == POWER_DI) and not service.set_02(POWER_DI, float(meter.power_kw)):
            raise ValueError(f"the library refused {meter.power_kw} kW")
        if di is None or di in (DATE_DI, TIME_DI):
            moment = (self.clock() + dt.timedelta(seconds=meter.clock_skew_s)).astimezone(LOCAL)
            # DL/T 645 weekday: 0 is Sunday
            service.set_04(DATE_DI, moment.strftime("%y%m%d") + f"{moment.isoweekday() % 7:02d}")
            service.set_04(TIME_DI, moment.strftime("%H%M%S"))

    def energy_answer(self, meter: SimMeter, request, answer: bytes) -> bytes:
        """An energy answer carrying the register's true value. The library's data items take the
        top digit for a sign and refuse values from 800,000.00 kWh (its set_00 leaves the old
        value), where a real meter counts on to 999,999.99: above that the BCD is written by hand."""
        di = int.from_bytes(bytes(request.data[:4]), "little")
        value = meter.values().get(di)
        if value is None or value < 800_000:
            return answer
        digits = f"{int(value * 100):08d}"
        bcd = bytes(int(digits[i:i + 2], 16) for i in range(6, -1, -2))
        return bytes(DLT645Protocol.build_frame(bytes(request.addr), request.ctrl_code | 0x80,
                                                bytes(request.data[:4]) + bcd))

    def spoil(self, meter: SimMeter, request, answer: bytes) -> bytes:
        """The library's honest answer made hostile (by hand: the library never builds these)."""
        if meter.fault == "garbled":
            return bytes(self.rng.randrange(256) for _ in range(len(answer))).replace(b"\x68", b"\x69")
        if meter.fault == "bad_checksum":
            return answer[:-2] + bytes([(answer[-2] + 1) & 0xFF]) + answer[-1:]
        if meter.fault == "wrong_address":
            frame = DLT645Protocol.deserialize(answer)
            return bytes(DLT645Protocol.build_frame(_frame_address(meter.answer_as or "999999999999"),
                                                    frame.ctrl_code, bytes(frame.data)))
        if meter.fault == "absurd":
            frame = DLT645Protocol.deserialize(answer)
            data = bytes(frame.data)
            if data[3] == 0x00 and len(data) == 8:  # an energy answer: its value digits become 0xAB
                data = data[:4] + bytes([0xAB, 0xAB, 0x99, 0x99])
            return bytes(DLT645Protocol.build_frame(bytes(frame.addr), frame.ctrl_code, data))
        return answer


def _frame_address(address: str) -> bytes:
    return bytes(int(address[i:i + 2], 16) for i in range(10, -1, -2))


# --- SunSpec inverters ------------------------------------------------------------------------


@dataclass
class SimInverter:
    """One simulated SunSpec inverter (model 101/102/103, integer points with scale factors).

    ``energy_wh`` [Wh] lifetime counter, ``power_w`` [W], ``state`` SunSpec St (4 MPPT, 8
    standby, 7 fault), ``events`` Evt1 bits. ``fault``: ``absurd`` shows 30 kW on any rating,
    ``silent`` answers Modbus exception 0x0B (gateway target failed to respond).
    """

    unit: int
    serial_number: str
    rated_w: int = 8_000
    energy_wh: float = 0.0
    power_w: float = 0.0
    state: int = 8
    events: int = 0
    model: int = 103
    latitude: float = DEFAULT_LATITUDE
    longitude: float = DEFAULT_LONGITUDE
    clearness: float = 1.0
    fault: str | None = None
    marker_step_s: float | None = None  # see marker_power

    def marker_power(self, now: dt.datetime) -> int:
        """The power of marker mode [W]: 1 + (the number of the step ``now`` is in, mod 4000), so that
        whoever sees it knows when it was set: the latest start of a step with that number."""
        assert self.marker_step_s
        return 1 + int(now.timestamp() // self.marker_step_s) % 4000

    def advance(self, now: dt.datetime, hours: float, rng: random.Random) -> None:
        if self.marker_step_s:
            self.energy_wh += self.power_w * hours
            self.power_w, self.state = self.marker_power(now), 4
            return
        self.clearness = min(1.0, max(0.25, self.clearness + rng.uniform(-0.05, 0.05)))
        self.power_w = sky_power(self.rated_w, now, self.latitude, self.longitude, self.clearness)
        self.energy_wh += self.power_w * hours
        self.state = 4 if self.power_w > 0 else 8

    def registers(self) -> list[int]:
        """The SunSpec block from register 40000: marker, model 1, the inverter model, end."""
        from sunspec2 import device as sunspec_device

        common = sunspec_device.Model(model_id=1)
        common.ID.value, common.L.value = 1, 66
        common.Mn.value, common.Md.value = "pvsettle", "sim-inverter"
        common.SN.value, common.Vr.value, common.DA.value = self.serial_number, "1.0", self.unit
        inverter = sunspec_device.Model(model_id=self.model)
        inverter.ID.value, inverter.L.value = self.model, 50
        inverter.W_SF.value, inverter.WH_SF.value = 0, 0
        power = 30_000 if self.fault == "absurd" else round(self.power_w)
        inverter.W.value, inverter.WH.value = power, int(self.energy_wh)
        inverter.St.value, inverter.Evt1.value = self.state, self.events
        raw = common.get_mb() + inverter.get_mb()
        words = [int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2)]
        return [0x5375, 0x6E53] + words + [0xFFFF, 0]


BLOCK_START = 40000
BLOCK_LEN = 2 + 68 + 52 + 2


class InverterSimulator:
    """A Modbus TCP endpoint (an inverter, or a Modbus gateway with several units) on 127.0.0.1."""

    def __init__(self, inverters: list[SimInverter], *, host: str = "127.0.0.1", port: int = 0,
                 clock: Callable[[], dt.datetime] | None = None, seed: int = 11):
        self.inverters = {i.unit: i for i in inverters}
        self.host, self._port = host, port
        self.clock = clock or utc_now
        self.rng = random.Random(seed)
        self.server = None
        self.requests = 0
        self._last_step: dt.datetime | None = None

    @property
    def port(self) -> int:
        return self._port

    async def start(self) -> "InverterSimulator":
        from pymodbus.server import ModbusTcpServer
        from pymodbus.simulator import DataType, SimData, SimDevice

        devices = []
        for unit, inverter in self.inverters.items():
            async def action(function_code, start_address, address, count, registers, set_values, _inv=inverter):
                return await self._action(_inv, start_address, registers)

            devices.append(SimDevice(id=unit, simdata=[SimData(address=BLOCK_START, values=inverter.registers(),
                                                                datatype=DataType.REGISTERS)], action=action))
        self.server = ModbusTcpServer(devices, address=(self.host, self._port))
        await self.server.serve_forever(background=True)
        self._port = self.server.transport.sockets[0].getsockname()[1]
        return self

    async def _action(self, inverter: SimInverter, start_address: int, registers: list[int]):
        from pymodbus.constants import ExcCodes

        self.requests += 1
        if inverter.fault == "silent":
            return ExcCodes.GATEWAY_NO_RESPONSE
        if inverter.marker_step_s:
            # the change shows from the start of its step, not from our next sky step
            inverter.power_w, inverter.state = inverter.marker_power(self.clock()), 4
        fresh = inverter.registers()
        offset = BLOCK_START - start_address
        registers[offset:offset + len(fresh)] = fresh
        return None

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.shutdown()

    def step(self, now: dt.datetime | None = None) -> None:
        now = now or self.clock()
        hours = 0.0 if self._last_step is None else max(0.0, (now - self._last_step).total_seconds() / 3600)
        self._last_step = now
        for inverter in self.inverters.values():
            inverter.advance(now, hours, self.rng)


# --- a whole simulated site -------------------------------------------------------------------


@dataclass
class SimulatedSite:
    """Meter buses and inverter endpoints running together, and the gateway config that reads them."""

    buses: list[MeterBusSimulator]
    endpoints: list[InverterSimulator]
    meter_serial: str = "SIM-M-{:05d}"
    inverter_serial: str = "SIM-INV-{:05d}"

    def step(self, now: dt.datetime | None = None) -> None:
        for bus in self.buses:
            bus.step(now)
        for endpoint in self.endpoints:
            endpoint.step(now)

    def config_toml(self, server: str, *, queue: str = "gateway-queue.sqlite3", key_file: str | None = None,
                    interval_s: float = 60.0, timeout_s: float = 2.0, flush_interval_s: float = 5.0) -> str:
        """A gateway configuration for this site (meters ``SIM-M-00000``…, inverters ``SIM-INV-00000``…)."""
        lines = ["[gateway]", f'server = "{server}"', f'queue = "{queue}"', f"flush_interval_s = {flush_interval_s}"]
        if key_file:
            lines.append(f'key_file = "{key_file}"')
        n = 0
        for b, bus in enumerate(self.buses):
            lines += ["", "[[link]]", f'name = "bus-{b}"', 'protocol = "dlt645"', f'tcp = "127.0.0.1:{bus.port}"',
                      f"timeout_s = {timeout_s}"]
            for address in bus.meters:
                lines += ["", "[[meter]]", f'serial = "{self.meter_serial.format(n)}"', f'link = "bus-{b}"',
                          f'address = "{address}"', f"interval_s = {interval_s}"]
                n += 1
        n = 0
        for e, endpoint in enumerate(self.endpoints):
            lines += ["", "[[link]]", f'name = "modbus-{e}"', 'protocol = "modbus"',
                      f'tcp = "127.0.0.1:{endpoint.port}"', f"timeout_s = {timeout_s}"]
            for unit, inverter in endpoint.inverters.items():
                lines += ["", "[[inverter]]", f'serial = "{self.inverter_serial.format(n)}"', f'link = "modbus-{e}"',
                          f"unit = {unit}", f"rated_w = {inverter.rated_w}", f"interval_s = {interval_s}"]
                n += 1
        return "\n".join(lines) + "\n"


UNITS_PER_ENDPOINT = 10


@asynccontextmanager
async def simulate_site(meters: int, inverters: int, *, per_bus: int = 20, first_port: int = 0,
                        step_s: float = 5.0, seed: int = 7, marker: bool = False) -> AsyncIterator[SimulatedSite]:
    """Start ``meters`` meters on buses of ``per_bus`` and ``inverters`` inverters (10 units per
    Modbus endpoint) on 127.0.0.1, the sky moving every ``step_s`` [s]; stopped on exit."""
    rng = random.Random(seed)
    buses, endpoints = [], []
    port = first_port
    for start in range(0, meters, per_bus):
        bus_meters = [SimMeter(address=f"{100000 + i:012d}", rated_kw=rng.choice((5.0, 10.0, 30.0)),
                               forward=[Decimal(rng.randrange(0, 500_000)) / 100 for _ in range(4)])
                      for i in range(start, min(meters, start + per_bus))]
        buses.append(await MeterBusSimulator(bus_meters, port=port, seed=seed + start).start())
        port = port + 1 if port else 0
    for start in range(0, inverters, UNITS_PER_ENDPOINT):
        units = [SimInverter(unit=1 + i - start, serial_number=f"SIMSN{i:06d}", rated_w=rng.choice((5_000, 8_000, 20_000)),
                             energy_wh=float(rng.randrange(10**6, 10**8)), marker_step_s=step_s if marker else None)
                 for i in range(start, min(inverters, start + UNITS_PER_ENDPOINT))]
        endpoints.append(await InverterSimulator(units, port=port, seed=seed + start).start())
        port = port + 1 if port else 0
    site = SimulatedSite(buses, endpoints)
    site.step()

    async def sky() -> None:
        while True:
            await asyncio.sleep(step_s)
            site.step()

    task = asyncio.create_task(sky(), name="pvsettle-field-sky")
    try:
        yield site
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        for bus in buses:
            await bus.stop()
        for endpoint in endpoints:
            await endpoint.stop()
