"""Modbus TCP inverters, polled through ``pymodbus``'s asyncio client.

SunSpec inverters are found by their marker and model chain: the 'SunS' marker at register
40000 (or 0, or 50000), then models one after another (ID, length, points) until ID 0xFFFF. The
points of the common model (1) and of the inverter models (101-103: single, split and three
phase, integer with scale factors) are decoded by ``pysunspec2``'s own model definitions
(``sunspec2.device.Model`` over the registers read), so offsets, scale factors and
"not implemented" values (0x8000, 0xFFFF…) are SunSpec's and not ours. An inverter without
SunSpec is read by a configured register map (:class:`gateway.config.RegisterMap`: address,
type, word order, scale) with pymodbus's ``convert_from_registers``.

A poll gives the lifetime energy counter [Wh], AC power [W], the status (ok, standby, fault) and
the alarm bits (SunSpec Evt1); it is judged before it becomes a sample: power above twice the
rating, a counter below its last value, a point not implemented, an unknown operating state are
faults, never samples.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from sunspec2 import device as sunspec_device

from gateway.config import REGISTER_TYPES, InverterConfig, LinkConfig, PointConfig, RegisterMap
from gateway.errors import DeviceFault

UTC = dt.timezone.utc
SUNSPEC_BASES = (40000, 0, 50000)
SUNS = [0x5375, 0x6E53]  # "SunS"
END_OF_CHAIN = 0xFFFF
INVERTER_MODELS = (101, 102, 103)
MAX_MODELS = 64
#: SunSpec operating state (model 101-103 St) → the server's sample status.
SUNSPEC_STATUS = {1: "standby", 2: "standby", 3: "ok", 4: "ok", 5: "ok", 6: "standby", 7: "fault", 8: "standby"}
#: Power above this multiple of the rating is a broken reading, not a sunny day.
POWER_OVER_RATED = 2
#: An inverter at night draws a little from the grid; SunSpec shows it as negative W.
STANDBY_DRAW_W = 200

# pymodbus logs every timeout and refused request at ERROR on its own logger; the gateway reports
# those itself, as device status, once per change
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class InverterRead:
    """One poll of one inverter.

    Attributes
    ----------
    serial : str
    read_at : datetime
        Gateway clock, UTC, whole seconds.
    energy_wh : int
        Lifetime counter [Wh].
    power_w : int
        AC power [W].
    status : str
        "ok", "standby" or "fault".
    alarms : tuple of str
        The alarm bits set (SunSpec Evt1 names; a vendor map has none).
    """

    serial: str
    read_at: dt.datetime
    energy_wh: int
    power_w: int
    status: str
    alarms: tuple[str, ...] = ()

    def sample(self) -> dict:
        """The row of ``POST /ingest/v1/telemetry``."""
        return {"device": self.serial, "ts": self.read_at.isoformat(), "power_w": self.power_w,
                "energy_wh": self.energy_wh, "status": self.status}


@dataclass
class _Chain:
    base: int
    models: dict[int, tuple[int, int]]  # model id → (address of its ID register, length)
    serial_number: str = ""


class ModbusLink:
    """One Modbus TCP endpoint (an inverter, or a gateway in front of several units)."""

    def __init__(self, link: LinkConfig):
        self.link = link
        # retries=0: the gateway's own backoff decides when to ask again, and reports each fault
        self.client = AsyncModbusTcpClient(link.host, port=link.port, timeout=link.timeout_s, retries=0,
                                           reconnect_delay=0)
        self.lock = asyncio.Lock()
        self.chains: dict[int, _Chain] = {}
        self.last_wh: dict[str, int] = {}
        self.last_read_at: dict[str, dt.datetime] = {}

    @property
    def where(self) -> str:
        return f"{self.link.host}:{self.link.port}"

    async def close(self) -> None:
        self.client.close()

    async def _registers(self, unit: int, address: int, count: int, function: str = "holding") -> list[int]:
        if not self.client.connected and not await self.client.connect():
            raise DeviceFault("unreachable", f"cannot connect to {self.where}")
        read = self.client.read_input_registers if function == "input" else self.client.read_holding_registers
        try:
            answer = await read(address, count=count, device_id=unit)
        except ModbusIOException as exc:
            self.client.close()  # a late answer must not be taken for the next request's
            if "device id" in str(exc):
                raise DeviceFault("wrong_address", f"asked unit {unit} on {self.where}, another unit answered") from None
            raise DeviceFault("timeout", f"unit {unit} on {self.where}: no answer within {self.link.timeout_s:g} s") from None
        except ConnectionException as exc:
            raise DeviceFault("unreachable", f"{self.where}: {exc}") from None
        except ModbusException as exc:
            self.client.close()
            raise DeviceFault("garbled", f"unit {unit} on {self.where}: {exc}") from None
        if answer.isError():
            raise DeviceFault("device_error", f"unit {unit} on {self.where} refused to read {count} registers at "
                                              f"{address} (Modbus exception {getattr(answer, 'exception_code', '?')})")
        if len(answer.registers) != count:
            raise DeviceFault("garbled", f"unit {unit}: asked {count} registers, got {len(answer.registers)}")
        return list(answer.registers)

    async def discover(self, unit: int) -> _Chain:
        """The SunSpec model chain of ``unit``."""
        for base in SUNSPEC_BASES:
            try:
                marker = await self._registers(unit, base, 2)
            except DeviceFault as fault:
                if fault.code == "device_error":  # no such registers here: try the next base
                    continue
                raise
            if marker == SUNS:
                break
        else:
            raise DeviceFault("not_sunspec", f"unit {unit} on {self.where}: no 'SunS' marker at "
                                             f"{', '.join(map(str, SUNSPEC_BASES))}")
        models: dict[int, tuple[int, int]] = {}
        address = base + 2
        for _ in range(MAX_MODELS):
            model_id, length = await self._registers(unit, address, 2)
            if model_id == END_OF_CHAIN:
                break
            models.setdefault(model_id, (address, length))
            address += 2 + length
        else:
            raise DeviceFault("not_sunspec", f"unit {unit}: the model chain has no end after {MAX_MODELS} models")
        chain = _Chain(base, models)
        if 1 in models:
            common = await self._model(unit, chain, 1)
            chain.serial_number = str(common.SN.value or "")
        if not any(m in models for m in INVERTER_MODELS):
            raise DeviceFault("not_sunspec", f"unit {unit}: no inverter model (101-103) in its chain "
                                             f"({', '.join(map(str, models))})")
        return chain

    async def _model(self, unit: int, chain: _Chain, model_id: int) -> sunspec_device.Model:
        address, length = chain.models[model_id]
        registers = await self._registers(unit, address, 2 + length)
        data = b"".join(r.to_bytes(2, "big") for r in registers)
        try:
            return sunspec_device.Model(model_id=model_id, model_len=length, data=data)
        except (sunspec_device.ModelError, ValueError, KeyError, IndexError) as exc:
            raise DeviceFault("garbled", f"unit {unit}: model {model_id} does not decode: {exc}") from None

    async def read_inverter(self, inverter: InverterConfig, maps: dict[str, RegisterMap], *,
                            now: dt.datetime | None = None) -> InverterRead:
        """Poll one inverter and judge what it says.

        Raises
        ------
        DeviceFault
            A fault of the link, ``not_sunspec``, ``absurd_value``, ``counter_decreased``.
        """
        async with self.lock:
            read_at = (now or dt.datetime.now(UTC)).replace(microsecond=0)
            before = self.last_read_at.get(inverter.serial)
            if before is not None and read_at <= before:  # samples are keyed by the second, as readings
                read_at = before + dt.timedelta(seconds=1)
            if inverter.map == "sunspec":
                energy, power, status, alarms = await self._sunspec(inverter)
            else:
                energy, power, status, alarms = await self._vendor(inverter, maps[inverter.map])
        who = f"inverter {inverter.serial} (unit {inverter.unit})"
        if power < 0:
            if power < -STANDBY_DRAW_W:
                raise DeviceFault("absurd_value", f"{who}: AC power {power} W, far below zero")
            power = 0
        if inverter.rated_w and power > POWER_OVER_RATED * inverter.rated_w:
            raise DeviceFault("absurd_value", f"{who}: AC power {power} W, above twice its rating "
                                              f"{inverter.rated_w} W")
        if energy < 0 or energy >= 10**12:
            raise DeviceFault("absurd_value", f"{who}: lifetime energy {energy} Wh")
        before = self.last_wh.get(inverter.serial)
        if before is not None and energy < before:
            raise DeviceFault("counter_decreased", f"{who}: lifetime energy {energy} Wh, below its last {before} Wh")
        self.last_wh[inverter.serial] = energy
        self.last_read_at[inverter.serial] = read_at
        return InverterRead(inverter.serial, read_at, energy, power, status, alarms)

    async def _sunspec(self, inverter: InverterConfig) -> tuple[int, int, str, tuple[str, ...]]:
        unit = inverter.unit
        chain = self.chains.get(unit)
        if chain is None:
            chain = self.chains[unit] = await self.discover(unit)
        model_id = next(m for m in INVERTER_MODELS if m in chain.models)
        try:
            model = await self._model(unit, chain, model_id)
        except DeviceFault:
            self.chains.pop(unit, None)  # the device may have been replaced: find its chain again
            raise
        who = f"inverter {inverter.serial} (unit {unit})"
        values = {}
        for name in ("WH", "W", "St"):
            point = model.points[name]
            try:
                values[name] = point.cvalue if name != "St" else point.value
            except (sunspec_device.ModelError, TypeError, ValueError) as exc:
                raise DeviceFault("absurd_value", f"{who}: point {name} does not decode: {exc}") from None
            if values[name] is None:
                raise DeviceFault("absurd_value", f"{who}: point {name} of model {model_id} is not implemented")
        status = SUNSPEC_STATUS.get(int(values["St"]))
        if status is None:
            raise DeviceFault("absurd_value", f"{who}: operating state {values['St']} is none of SunSpec's")
        alarms: tuple[str, ...] = ()
        event = model.points["Evt1"].value
        if event:
            names = {s["value"]: s["name"] for s in model.points["Evt1"].pdef.get("symbols", [])}
            alarms = tuple(names.get(bit, f"bit{bit}") for bit in range(32) if event >> bit & 1)
        return int(round(values["WH"])), int(round(values["W"])), status, alarms

    async def _point(self, unit: int, point: PointConfig, function: str) -> float:
        registers = await self._registers(unit, point.address, REGISTER_TYPES[point.type], function)
        kind = getattr(AsyncModbusTcpClient.DATATYPE, point.type.upper())
        value = AsyncModbusTcpClient.convert_from_registers(registers, kind, word_order=point.word_order)
        return float(value) * point.scale  # type: ignore[arg-type]

    async def _vendor(self, inverter: InverterConfig, register_map: RegisterMap) -> tuple[int, int, str, tuple[str, ...]]:
        unit = inverter.unit
        assert register_map.energy is not None  # the config refuses a map without it
        energy = await self._point(unit, register_map.energy, register_map.function)
        power = await self._point(unit, register_map.power, register_map.function) if register_map.power else 0.0
        status = "ok" if power > 0 else "standby"
        if register_map.status is not None:
            code = int(await self._point(unit, register_map.status, register_map.function))
            point = register_map.status
            found = [s for s in ("ok", "standby", "fault") if code in getattr(point, s)]
            if not found:
                raise DeviceFault("absurd_value", f"inverter {inverter.serial}: status code {code} is in none of "
                                                  f"the map's ok/standby/fault lists")
            status = found[0]
        return int(round(energy)), int(round(power)), status, ()
