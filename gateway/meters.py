"""DL/T 645-2007 meters, polled through the ``dlt645`` library's asyncio client.

A :class:`MeterLink` is one RS-485 bus behind one TCP port of a DTU or serial server in
transparent mode (or a local serial port): the meters on it answer one at a time, so every
request on a link waits for the one before. The library builds the request frames
(``DLT645Protocol.build_frame``), splits the byte stream into frames and checks their checksums
(its ``AsyncTcpClient``), and decodes the data items (its ``handle_response`` and data map);
what this module adds is *why* an answer is not a reading. The library's client answers None
alike for silence, noise, a frame with a bad checksum and a frame from another meter; a status
report must say which, so the bytes heard for each request are kept (:class:`_TapReader`) and
the frame is judged here before the library decodes it.

One poll of a meter reads its energy registers (forward/reverse active, total and rates 1–4,
data identifiers 0001xx00 / 0002xx00, XXXXXX.XX kWh), the instantaneous total active power
(0203 0000, XX.XXXX kW) and its clock (0400 0101 date, 0400 0102 time). The poll is all or
nothing: a fault in any answer makes no reading at all, so a confirmation form never sees half
a meter at one time. The multiplier (倍率) is not applied: the server applies it, where it lives.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import struct
from copy import deepcopy
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

from dlt645.aio import AsyncMeterClientService, AsyncTcpClient
from dlt645.model.data.data_handler import DIMap
from dlt645.model.types.dlt645_type import CtrlCode, PasswordManager
from dlt645.protocol.protocol import DLT645Protocol

from gateway.config import LinkConfig, MeterConfig
from gateway.errors import DeviceFault

UTC = dt.timezone.utc
POWER_DI = 0x02030000  # instantaneous total active power [kW]
DATE_DI = 0x04000101  # YYMMDDWW
TIME_DI = 0x04000102  # hhmmss
BROADCAST = bytes([0xAA] * 6)
#: Every data identifier the gateway may read (the energy registers a config may list, power, clock).
READ_DIS = tuple(int(f"000{kind}0{rate}00", 16) for kind in (1, 2) for rate in range(5)) + (POWER_DI, DATE_DI, TIME_DI)


def small_data_map(dis=READ_DIS) -> dict:
    """A private copy of the library's data items for ``dis`` only.

    The library gives each client and server service a deep copy of its whole data map (every
    data identifier of the standard): about a second of CPU per copy, a minute for a site of
    sixty buses. The items are the library's own, copied one by one.
    """
    return {di: deepcopy(DIMap[di]) for di in dis}


class _ClientService(AsyncMeterClientService):
    """The library's asyncio client service on a small data map (see :func:`small_data_map`)."""

    def __init__(self, client):  # the parent's __init__ less its whole-map copy; same attributes
        self.address = bytearray(6)
        self.password_manager = PasswordManager()
        self.operation_code = bytearray(4)
        self.client = client
        self.data_map = small_data_map()
#: Energy registers are XXXXXX.XX: the dial rolls over at 10**6 kWh.
DIAL_KWH = Decimal(10**6)
#: A lower value is a rollover only from the top 10 % of the dial into the bottom 10 % (the
#: server's rule too, settlement.readings.ingest): anything else is a counter going backwards.
ROLLOVER_BAND = Decimal("0.1")
#: Bytes kept of one request's answer for the fault report (a frame is at most 12 + 255 + 4).
HEARD_LIMIT = 1024


@dataclass(frozen=True)
class MeterRead:
    """One poll of one meter.

    Attributes
    ----------
    serial : str
        The meter's serial on the server.
    read_at : datetime
        When it was read (gateway clock, UTC, whole seconds): the readings' time.
    registers : dict
        Data identifier (8 hex digits) → register value [kWh, meter units before the multiplier],
        exact to 0.01.
    power_kw : Decimal or None
        Instantaneous total active power [kW].
    clock_skew_s : float or None
        The meter's clock minus the gateway's [s].
    address : str
        The meter's address (12 digits), discovered or configured.
    """

    serial: str
    read_at: dt.datetime
    registers: dict[str, Decimal]
    power_kw: Decimal | None = None
    clock_skew_s: float | None = None
    address: str = ""

    def readings(self) -> list[dict]:
        """The rows of ``POST /ingest/v1/readings`` (values as exact decimal strings)."""
        stamp = self.read_at.isoformat()
        return [{"meter": self.serial, "register": di, "read_at": stamp, "value": f"{value:.2f}"}
                for di, value in self.registers.items()]


class _TapReader:
    """The library client's StreamReader, keeping a copy of what it reads for the fault report."""

    def __init__(self, inner: asyncio.StreamReader, heard: bytearray):
        self.inner, self.heard = inner, heard

    async def read(self, n: int = -1) -> bytes:
        data = await self.inner.read(n)
        if len(self.heard) < HEARD_LIMIT:
            self.heard.extend(data[: HEARD_LIMIT - len(self.heard)])
        return data

    def __getattr__(self, name):
        return getattr(self.inner, name)


class _WatchedTcpClient(AsyncTcpClient):
    """The library's TCP transport with the bytes of the latest request kept in ``heard``."""

    def __init__(self, ip: str, port: int, timeout: float):
        super().__init__(ip=ip, port=port, timeout=timeout)
        self.heard = bytearray()

    async def connect(self) -> bool:
        ok = await super().connect()
        if ok and self.reader is not None and not isinstance(self.reader, _TapReader):
            self.reader = _TapReader(self.reader, self.heard)  # type: ignore[assignment]
        return ok


def _address_bytes(address: str) -> bytes:
    """A printed meter address (12 digits, most significant first) as the frame carries it: BCD,
    least significant byte first (DL/T 645-2007 §7.1)."""
    return bytes(int(address[i:i + 2], 16) for i in range(10, -1, -2))


def _address_text(raw: bytes) -> str:
    return "".join(f"{b:02X}" for b in reversed(raw))


def _valid_bcd(data: bytes, *, signed: bool = False) -> bool:
    for i, byte in enumerate(data):
        if signed and i == len(data) - 1:
            byte &= 0x7F  # the top bit of a power value is its sign (reverse power)
        if byte >> 4 > 9 or byte & 0x0F > 9:
            return False
    return True


def energy_of(data: bytes) -> Decimal:
    """An energy register's value from its 4 BCD bytes (XXXXXX.XX, least significant byte first).

    Decoded here, not by the library: its data items take the top bit of every value for a sign
    (right for power and combined energy), so a forward or reverse register past 800,000.00 kWh,
    which DL/T 645-2007 counts unsigned up to 999,999.99, would come back negative.
    """
    digits = "".join(f"{b:02X}" for b in reversed(data))
    return Decimal(digits).scaleb(-2)


def _bad_checksum_frame(heard: bytes) -> bool:
    """Whether ``heard`` holds something shaped like a whole frame (68 A0..A5 68 C L DATA CS 16)
    whose checksum is wrong: the library drops such a frame as noise, the report says what it was."""
    start = heard.find(0x68)
    while start != -1 and start + 12 <= len(heard):
        if heard[start + 7] == 0x68:
            end = start + 10 + heard[start + 9]  # where the checksum is
            if end + 1 < len(heard) and heard[end + 1] == 0x16 \
                    and DLT645Protocol.calculate_checksum(heard[start:end]) != heard[end]:
                return True
        start = heard.find(0x68, start + 1)
    return False


class MeterLink:
    """One bus of DL/T 645 meters behind one TCP port (or serial port); requests one at a time.

    Parameters
    ----------
    link : LinkConfig
        Where the bus is and how long one answer may take (``timeout_s`` [s]).
    """

    def __init__(self, link: LinkConfig):
        self.link = link
        if link.serial_port:
            try:
                from dlt645.aio import AsyncRtuClient
            except ImportError as exc:  # pragma: no cover - dlt645 depends on pyserial
                raise DeviceFault("unreachable", f"serial ports need pyserial: {exc}") from None
            self.client = AsyncRtuClient(port=link.serial_port, baud_rate=link.baudrate, data_bits=8,
                                         stop_bits=1, parity=link.parity, timeout=link.timeout_s)
        else:
            self.client = _WatchedTcpClient(link.host, link.port, link.timeout_s)
        # decodes answers with its own data map (one per link: it keeps the address it expects)
        self.service = _ClientService(self.client)
        self.lock = asyncio.Lock()
        self.last: dict[str, dict[str, Decimal]] = {}  # meter serial → its last good registers
        self.last_read_at: dict[str, dt.datetime] = {}

    @property
    def where(self) -> str:
        return self.link.serial_port or f"{self.link.host}:{self.link.port}"

    async def close(self) -> None:
        await self.client.disconnect()

    async def _ask(self, address: bytes, ctrl: int, data: bytes) -> bytes:
        """Send one request and return the decoded data field of its answer.

        Raises
        ------
        DeviceFault
            unreachable, timeout, garbled, bad_checksum, wrong_address, device_error.
        """
        who = _address_text(address)
        if not await self.client.connect():
            raise DeviceFault("unreachable", f"cannot connect to {self.where}")
        heard = getattr(self.client, "heard", None)
        if heard is not None:
            heard.clear()
        request = DLT645Protocol.build_frame(address, ctrl, data)
        raw = await self.client.send_request(bytes(request), retries=0)
        if raw is None:
            # a late answer to this request must not be read as the answer to the next one
            await self.client.disconnect()
            got = bytes(heard or b"")
            if not got:
                raise DeviceFault("timeout", f"meter {who} on {self.where}: no answer within {self.link.timeout_s:g} s")
            if _bad_checksum_frame(got):
                raise DeviceFault("bad_checksum", f"meter {who} on {self.where}: a frame with a wrong checksum "
                                                  f"({got[:32].hex(' ')})")
            raise DeviceFault("garbled", f"meter {who} on {self.where}: {len(got)} bytes that are no DL/T 645 "
                                         f"frame ({got[:32].hex(' ')})")
        frame = DLT645Protocol.deserialize(raw)
        if address != BROADCAST and bytes(frame.addr) != address:
            await self.client.disconnect()
            raise DeviceFault("wrong_address", f"asked meter {who} on {self.where}, meter "
                                               f"{_address_text(bytes(frame.addr))} answered")
        if frame.ctrl_code & 0x40:
            code = frame.data[0] if frame.data else 0
            raise DeviceFault("device_error", f"meter {who} refused the request (error byte {code:02X})")
        if frame.ctrl_code != ctrl | 0x80:
            await self.client.disconnect()
            raise DeviceFault("garbled", f"meter {who}: control code {frame.ctrl_code:02X} answers "
                                         f"no request of ours ({ctrl | 0x80:02X} expected)")
        self._frame = frame
        return bytes(frame.data)

    async def _read(self, address: bytes, di: int):
        """The library's DataItem of data identifier ``di`` of the meter at ``address`` (an energy
        register's exact value: see :func:`energy_of`)."""
        data = await self._ask(address, CtrlCode.ReadData, struct.pack("<I", di))
        who = _address_text(address)
        if data[:4] != struct.pack("<I", di):
            await self.client.disconnect()
            raise DeviceFault("garbled", f"meter {who}: asked {di:08X}, the answer carries data "
                                         f"identifier {data[:4][::-1].hex().upper()}")
        if not _valid_bcd(data[4:], signed=(di >> 24) == 0x02):
            raise DeviceFault("absurd_value", f"meter {who}: {di:08X} holds digits that are no BCD "
                                              f"({data[4:].hex(' ')})")
        if di >> 24 == 0x00:
            return energy_of(data[4:8])
        self.service.address = bytearray(address)
        item = self.service.handle_response(self._frame)
        if item is None:
            raise DeviceFault("garbled", f"meter {who}: the answer to {di:08X} does not decode")
        return item

    async def discover(self) -> str:
        """The address of the one meter on this bus (read address, broadcast AA…AA)."""
        async with self.lock:
            data = await self._ask(BROADCAST, CtrlCode.ReadAddress, b"")
        if len(data) != 6 or not _valid_bcd(data):
            raise DeviceFault("garbled", f"the address answer on {self.where} is no address ({data.hex(' ')})")
        return _address_text(data)

    async def read_meter(self, meter: MeterConfig, *, address: str | None = None,
                         now: dt.datetime | None = None) -> MeterRead:
        """Poll one meter: its registers, power and clock, judged.

        Parameters
        ----------
        meter : MeterConfig
        address : str, optional
            The address to ask (default the configured one; the runner passes a discovered one).
        now : datetime, optional
            The readings' time (default the clock, UTC).

        Raises
        ------
        DeviceFault
            Any fault of :meth:`_ask`, ``absurd_value``, ``counter_decreased``, ``clock_skew``.
        """
        address = address or meter.address
        raw_address = _address_bytes(address)
        async with self.lock:
            read_at = (now or dt.datetime.now(UTC)).replace(microsecond=0)
            before = self.last_read_at.get(meter.serial)
            if before is not None and read_at <= before:
                # readings are keyed by the second (meter, register, read_at): two polls in one
                # second would be one reading twice, or a conflict if the meter moved between them
                read_at = before + dt.timedelta(seconds=1)
            registers: dict[str, Decimal] = {}
            for di in meter.registers:
                registers[di] = await self._read(raw_address, int(di, 16))
            power = None
            if meter.read_power:
                item = await self._read(raw_address, POWER_DI)
                power = Decimal(f"{float(item.value):.4f}")
            date = (await self._read(raw_address, DATE_DI)).value
            clock = (await self._read(raw_address, TIME_DI)).value
            ours = dt.datetime.now(UTC)
        try:
            # the library gives the BCD digits most significant first: YYMMDDWW and hhmmss
            theirs = dt.datetime(2000 + int(date[0:2]), int(date[2:4]), int(date[4:6]), int(clock[0:2]),
                                 int(clock[2:4]), int(clock[4:6]), tzinfo=ZoneInfo(meter.timezone))
        except (ValueError, TypeError, IndexError):
            raise DeviceFault("absurd_value", f"meter {address}: its clock reads {date!r} {clock!r}, no time") from None
        skew = (theirs - ours).total_seconds()
        if abs(skew) > meter.max_clock_skew_s:
            raise DeviceFault("clock_skew", f"meter {address}: its clock is {skew:+.0f} s off the gateway's "
                                            f"(at most ±{meter.max_clock_skew_s:g} s); its readings are not sent")
        previous = self.last.get(meter.serial, {})
        for di, value in registers.items():
            before = previous.get(di)
            if before is not None and value < before and not (
                    before >= DIAL_KWH * (1 - ROLLOVER_BAND) and value < DIAL_KWH * ROLLOVER_BAND):
                raise DeviceFault("counter_decreased", f"meter {address}: register {di} reads {value:.2f} kWh, "
                                                       f"below its last {before:.2f} kWh")
        self.last[meter.serial] = registers
        self.last_read_at[meter.serial] = read_at
        return MeterRead(serial=meter.serial, read_at=read_at, registers=registers, power_kw=power,
                         clock_skew_s=skew, address=address)
