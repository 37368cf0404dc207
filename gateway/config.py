"""The gateway's configuration file (TOML): the server, the links to the field, the devices.

Every refusal names the line it is about (:class:`~gateway.errors.ConfigError`), so that an
operator at a site with a laptop fixes the file without reading code. The format::

    [gateway]
    server = "https://pvsettle.example.com"   # the base URL; posts go to <server>/ingest/v1/…
    key_file = "/etc/pvsettle/gateway.key"    # the collector key (or PVSETTLE_GATEWAY_KEY)
    queue = "/var/lib/pvsettle-gateway/queue.sqlite3"
    batch_size = 500                          # rows per POST
    flush_interval_s = 5                      # how often the queue is sent

    [[link]]                                  # one TCP port of a DTU / serial server, one RS-485 bus
    name = "roof-a"
    protocol = "dlt645"                       # or "modbus"
    tcp = "10.0.0.20:8899"                    # or serial = "/dev/ttyUSB0" (needs pyserial)
    timeout_s = 2.0

    [[meter]]
    serial = "M-PV-0001"                      # the meter's serial on the server
    link = "roof-a"
    address = "000012345678"                  # 12 digits, or "discover" (alone on its bus)
    interval_s = 60
    max_clock_skew_s = 300

    [[inverter]]
    serial = "INV-0001"                       # the telemetry device's serial on the server
    link = "roof-a-inv"                       # a modbus link
    unit = 1
    map = "sunspec"                           # or the name of a [register_map.NAME]

    [register_map.acme]                       # a vendor without SunSpec
    function = "input"                        # or "holding"
    energy = { address = 30000, type = "uint32", word_order = "little", scale = 1000 }  # × scale → Wh
    power = { address = 30010, type = "int32", scale = 1 }                               # × scale → W
    status = { address = 30020, type = "uint16", ok = [1, 2], standby = [0], fault = [3] }
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gateway.errors import ConfigError

#: The registers the confirmation forms need: forward and reverse active, total and rates 1–4.
FORM_REGISTERS = tuple(f"000{kind}0{rate}00" for kind in (1, 2) for rate in range(5))
REGISTER_TYPES = {"uint16": 1, "int16": 1, "uint32": 2, "int32": 2, "uint64": 4, "float32": 2}
MAX_INTERVAL_S = 86_400


@dataclass(frozen=True)
class LinkConfig:
    """One way to the field: a TCP port (a DTU or serial server in transparent mode, a Modbus TCP
    device or gateway) or a local serial port. Requests on one link go one at a time (RS-485 is
    half duplex: two meters on one bus cannot talk at once)."""

    name: str
    protocol: str  # "dlt645" | "modbus"
    host: str = ""
    port: int = 0
    serial_port: str = ""
    baudrate: int = 2400  # DL/T 645-2007's default rate (and 8E1)
    parity: str = "E"
    timeout_s: float = 2.0  # [s] one request's answer
    line: int | None = None


@dataclass(frozen=True)
class MeterConfig:
    """A DL/T 645-2007 meter on a link."""

    serial: str
    link: str
    address: str  # 12 decimal digits, or "discover"
    registers: tuple[str, ...] = FORM_REGISTERS
    interval_s: float = 60.0  # [s]
    max_clock_skew_s: float = 300.0  # [s] beyond it the meter's readings are not trusted
    read_power: bool = True
    timezone: str = "Asia/Shanghai"  # meters keep local time
    line: int | None = None


@dataclass(frozen=True)
class PointConfig:
    """One value of a vendor register map: ``raw × scale`` in the map's unit (Wh, W)."""

    address: int
    type: str = "uint16"
    word_order: str = "big"
    scale: float = 1.0
    ok: tuple[int, ...] = ()
    standby: tuple[int, ...] = ()
    fault: tuple[int, ...] = ()


@dataclass(frozen=True)
class RegisterMap:
    name: str
    function: str = "holding"  # "holding" (FC 3) or "input" (FC 4)
    energy: PointConfig | None = None  # lifetime counter → Wh
    power: PointConfig | None = None  # AC power → W
    status: PointConfig | None = None
    line: int | None = None


@dataclass(frozen=True)
class InverterConfig:
    """A Modbus inverter on a link: SunSpec (``map = "sunspec"``) or a vendor register map."""

    serial: str
    link: str
    unit: int = 1
    map: str = "sunspec"
    interval_s: float = 60.0  # [s]
    rated_w: int | None = None  # [W] power above twice this is absurd
    line: int | None = None


@dataclass(frozen=True)
class GatewayConfig:
    server: str
    key: str
    queue: str
    batch_size: int = 500
    flush_interval_s: float = 5.0  # [s]
    links: dict[str, LinkConfig] = field(default_factory=dict)
    meters: tuple[MeterConfig, ...] = ()
    inverters: tuple[InverterConfig, ...] = ()
    register_maps: dict[str, RegisterMap] = field(default_factory=dict)
    path: str = ""


class _Lines:
    """Where things are in the file: tomllib parses without positions, so the line of the n-th
    ``[[meter]]`` or of a key under it is found by reading the text again."""

    def __init__(self, text: str):
        self.lines = text.splitlines()
        self.headers: list[tuple[int, str]] = []  # (line number, header text without brackets)
        for number, raw in enumerate(self.lines, 1):
            match = re.match(r"\s*\[\[?\s*([^\]]+?)\s*\]\]?", raw)
            if match and not raw.lstrip().startswith("#"):
                self.headers.append((number, match.group(1)))

    def table(self, name: str, index: int | None = None) -> int | None:
        found = [n for n, h in self.headers if h == name]
        if index is None:
            return found[0] if found else None
        return found[index] if index < len(found) else None

    def key(self, table_line: int | None, key: str) -> int | None:
        if table_line is None:
            return None
        ends = [n for n, _ in self.headers if n > table_line]
        end = ends[0] if ends else len(self.lines) + 1
        pattern = re.compile(rf"\s*{re.escape(key)}\s*=")
        for number in range(table_line + 1, end):
            if pattern.match(self.lines[number - 1]):
                return number
        return table_line


class _Table:
    """One table of the file and the place of its keys, for refusals that name the line."""

    def __init__(self, data: Any, what: str, lines: _Lines, line: int | None, path: str, known: set[str]):
        if not isinstance(data, dict):
            raise ConfigError(f"{what} must be a table", line=line, path=path)
        self.data, self.what, self.lines, self.line, self.path = data, what, lines, line, path
        for key in data:
            if key not in known:
                raise ConfigError(f"{what}: unknown key {key!r} (known: {', '.join(sorted(known))})",
                                  line=lines.key(line, key), path=path)

    def fail(self, key: str | None, message: str) -> ConfigError:
        return ConfigError(f"{self.what}: {message}", line=self.lines.key(self.line, key) if key else self.line,
                           path=self.path)

    def text(self, key: str, default: str | None = None) -> str:
        value = self.data.get(key, default)
        if value is None:
            raise self.fail(None, f"{key!r} is missing")
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"{key!r} must be text, not {value!r}")
        return value.strip()

    def number(self, key: str, default: float, low: float, high: float) -> float:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise self.fail(key, f"{key!r} must be a number from {low:g} to {high:g}, not {value!r}")
        return float(value)

    def integer(self, key: str, default: int | None, low: int, high: int) -> int | None:
        value = self.data.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(key, f"{key!r} must be a whole number from {low} to {high}, not {value!r}")
        return value


def load(path: str | os.PathLike, *, environ: dict[str, str] | None = None) -> GatewayConfig:
    """Read and check a configuration file.

    Parameters
    ----------
    path : path
        The TOML file.
    environ : dict, optional
        Where ``PVSETTLE_GATEWAY_KEY`` is looked up when the file names no ``key_file``
        (default ``os.environ``).

    Raises
    ------
    ConfigError
        The file cannot be read, is not TOML, or says something the gateway cannot run; the
        message names the line.
    """
    path = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the configuration: {exc}", path=path) from None
    return parse(text, path=path, environ=os.environ if environ is None else environ)


def parse(text: str, *, path: str = "<config>", environ: dict[str, str] | None = None) -> GatewayConfig:
    """:func:`load` for the text of a file."""
    environ = {} if environ is None else environ
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib puts the place in the message only: "Invalid value (at line 3, column 8)"
        match = re.search(r"at line (\d+)", str(exc))
        raise ConfigError(f"not valid TOML: {exc}", line=int(match.group(1)) if match else None, path=path) from None
    lines = _Lines(text)
    top = _Table(data, "the file", lines, None, path, {"gateway", "link", "meter", "inverter", "register_map"})
    if "gateway" not in data:
        raise top.fail(None, "a [gateway] table is missing")
    gw = _Table(data["gateway"], "[gateway]", lines, lines.table("gateway"), path,
                {"server", "key_file", "queue", "batch_size", "flush_interval_s"})
    server = gw.text("server").rstrip("/")
    parts = urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise gw.fail("server", f"'server' must be an http:// or https:// URL, not {server!r}")
    if "key_file" in gw.data:
        key_path = gw.text("key_file")
        try:
            key = Path(key_path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise gw.fail("key_file", f"cannot read the key file: {exc}") from None
    else:
        key = environ.get("PVSETTLE_GATEWAY_KEY", "").strip()
    if not key or len(key) > 256 or any(c.isspace() for c in key):
        raise gw.fail("key_file" if "key_file" in gw.data else None,
                      "no collector key: give key_file, or set PVSETTLE_GATEWAY_KEY (one line, no spaces)")
    queue = gw.text("queue", str(Path(path).with_suffix(".queue.sqlite3")))
    batch_size = gw.integer("batch_size", 500, 1, 5_000)  # the readings endpoint takes 5,000 rows
    flush = gw.number("flush_interval_s", 5.0, 0.05, 3600)

    maps: dict[str, RegisterMap] = {}
    raw_maps = data.get("register_map", {})
    if not isinstance(raw_maps, dict):
        raise top.fail("register_map", "register_map must be tables [register_map.NAME]")
    for name, raw in raw_maps.items():
        maps[name] = _register_map(name, raw, lines, path)

    links: dict[str, LinkConfig] = {}
    for index, raw in enumerate(_array(data, "link", top)):
        link = _link(_Table(raw, f"link #{index + 1}", lines, lines.table("link", index), path,
                            {"name", "protocol", "tcp", "serial", "baudrate", "parity", "timeout_s"}))
        if link.name in links:
            raise ConfigError(f"link #{index + 1}: the name {link.name!r} is taken by an earlier link",
                              line=lines.key(link.line, "name"), path=path)
        links[link.name] = link

    meters: list[MeterConfig] = []
    inverters: list[InverterConfig] = []
    serials: set[str] = set()
    addresses: set[tuple[str, str]] = set()
    for index, raw in enumerate(_array(data, "meter", top)):
        table = _Table(raw, f"meter #{index + 1}", lines, lines.table("meter", index), path,
                       {"serial", "link", "address", "registers", "interval_s", "max_clock_skew_s", "read_power",
                        "timezone"})
        meter = _meter(table, links)
        if meter.serial in serials:
            raise table.fail("serial", f"the serial {meter.serial!r} is configured twice")
        if (meter.link, meter.address) in addresses:
            raise table.fail("address", f"two meters on link {meter.link!r} have the address {meter.address}")
        serials.add(meter.serial)
        addresses.add((meter.link, meter.address))
        meters.append(meter)
    for meter in meters:
        if meter.address == "discover" and sum(1 for m in meters if m.link == meter.link) > 1:
            raise ConfigError(f"meter {meter.serial!r}: address \"discover\" asks every meter on the bus at once; "
                              f"it works only for a meter alone on its link, and {meter.link!r} has more",
                              line=lines.key(meter.line, "address"), path=path)
    units: set[tuple[str, int]] = set()
    for index, raw in enumerate(_array(data, "inverter", top)):
        table = _Table(raw, f"inverter #{index + 1}", lines, lines.table("inverter", index), path,
                       {"serial", "link", "unit", "map", "interval_s", "rated_w"})
        inverter = _inverter(table, links, maps)
        if inverter.serial in serials:
            raise table.fail("serial", f"the serial {inverter.serial!r} is configured twice")
        if (inverter.link, inverter.unit) in units:
            raise table.fail("unit", f"two inverters on link {inverter.link!r} have unit {inverter.unit}")
        serials.add(inverter.serial)
        units.add((inverter.link, inverter.unit))
        inverters.append(inverter)
    if not meters and not inverters:
        raise top.fail(None, "no [[meter]] and no [[inverter]]: nothing to poll")
    return GatewayConfig(server=server, key=key, queue=queue, batch_size=batch_size, flush_interval_s=flush,
                         links=links, meters=tuple(meters), inverters=tuple(inverters), register_maps=maps, path=path)


def _array(data: dict, name: str, top: _Table) -> list:
    value = data.get(name, [])
    if not isinstance(value, list):
        raise top.fail(name, f"{name} must be written [[{name}]] (an array of tables)")
    return value


def _link(table: _Table) -> LinkConfig:
    name = table.text("name")
    protocol = table.text("protocol")
    if protocol not in ("dlt645", "modbus"):
        raise table.fail("protocol", f"'protocol' must be \"dlt645\" or \"modbus\", not {protocol!r}")
    timeout = table.number("timeout_s", 2.0, 0.01, 60)
    if ("tcp" in table.data) == ("serial" in table.data):
        raise table.fail(None, "give exactly one of tcp = \"HOST:PORT\" and serial = \"/dev/…\"")
    if "tcp" in table.data:
        host, _, port = table.text("tcp").rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise table.fail("tcp", f"'tcp' must be HOST:PORT, not {table.data['tcp']!r}")
        return LinkConfig(name, protocol, host=host.strip("[]"), port=int(port), timeout_s=timeout, line=table.line)
    if protocol != "dlt645":
        raise table.fail("serial", "Modbus RTU on a serial port is not supported: use Modbus TCP (tcp = …)")
    import importlib.util

    if importlib.util.find_spec("serial_asyncio") is None:
        # dlt645's asyncio serial client opens the port through pyserial-asyncio, an extra of ours
        raise table.fail("serial", "a serial port needs pyserial-asyncio: pip install 'pvsettle[serial]'")
    parity = table.text("parity", "E")
    if parity not in ("N", "E", "O"):
        raise table.fail("parity", f"'parity' must be \"N\", \"E\" or \"O\", not {parity!r}")
    baud = table.integer("baudrate", 2400, 300, 115_200)
    return LinkConfig(name, protocol, serial_port=table.text("serial"), baudrate=baud, parity=parity,
                      timeout_s=timeout, line=table.line)


def _meter(table: _Table, links: dict[str, LinkConfig]) -> MeterConfig:
    serial = table.text("serial")
    link = table.text("link")
    if link not in links:
        raise table.fail("link", f"no [[link]] is named {link!r}")
    if links[link].protocol != "dlt645":
        raise table.fail("link", f"link {link!r} speaks {links[link].protocol}, a meter needs a dlt645 link")
    address = table.text("address")
    if address != "discover" and not re.fullmatch(r"\d{12}", address):
        raise table.fail("address", f"'address' must be 12 digits (as printed on the meter) or \"discover\", "
                                    f"not {address!r}")
    registers = table.data.get("registers", list(FORM_REGISTERS))
    if not isinstance(registers, list) or not registers or not all(
            isinstance(r, str) and re.fullmatch(r"000[12]0[0-4]00", r) for r in registers):
        raise table.fail("registers", "'registers' must list energy data identifiers such as \"00010000\" "
                                      "(forward/reverse active 0001xx00/0002xx00, total and rates 1-4)")
    read_power = table.data.get("read_power", True)
    if not isinstance(read_power, bool):
        raise table.fail("read_power", "'read_power' must be true or false")
    zone = table.text("timezone", "Asia/Shanghai")
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(zone)
    except (ValueError, KeyError, OSError):
        raise table.fail("timezone", f"no time zone is named {zone!r}") from None
    return MeterConfig(serial=serial, link=link, address=address, registers=tuple(dict.fromkeys(registers)),
                       interval_s=table.number("interval_s", 60.0, 0.01, MAX_INTERVAL_S),
                       max_clock_skew_s=table.number("max_clock_skew_s", 300.0, 1, 86_400),
                       read_power=read_power, timezone=zone, line=table.line)


def _inverter(table: _Table, links: dict[str, LinkConfig], maps: dict[str, RegisterMap]) -> InverterConfig:
    serial = table.text("serial")
    link = table.text("link")
    if link not in links:
        raise table.fail("link", f"no [[link]] is named {link!r}")
    if links[link].protocol != "modbus":
        raise table.fail("link", f"link {link!r} speaks {links[link].protocol}, an inverter needs a modbus link")
    name = table.text("map", "sunspec")
    if name != "sunspec" and name not in maps:
        raise table.fail("map", f"'map' must be \"sunspec\" or a [register_map.NAME] of this file, not {name!r}")
    return InverterConfig(serial=serial, link=link, unit=table.integer("unit", 1, 0, 247), map=name,
                          interval_s=table.number("interval_s", 60.0, 0.01, MAX_INTERVAL_S),
                          rated_w=table.integer("rated_w", None, 1, 10**8), line=table.line)


def _register_map(name: str, raw: Any, lines: _Lines, path: str) -> RegisterMap:
    line = lines.table(f"register_map.{name}")
    table = _Table(raw, f"[register_map.{name}]", lines, line, path, {"function", "energy", "power", "status"})
    function = table.text("function", "holding")
    if function not in ("holding", "input"):
        raise table.fail("function", f"'function' must be \"holding\" or \"input\", not {function!r}")
    points: dict[str, PointConfig | None] = {}
    for key in ("energy", "power", "status"):
        value = table.data.get(key)
        if value is None:
            points[key] = None
            continue
        if not isinstance(value, dict):
            raise table.fail(key, f"{key!r} must be an inline table {{ address = …, type = … }}")
        unknown = set(value) - {"address", "type", "word_order", "scale", "ok", "standby", "fault"}
        if unknown:
            raise table.fail(key, f"{key!r}: unknown keys {', '.join(sorted(unknown))}")
        address = value.get("address")
        kind = value.get("type", "uint16")
        order = value.get("word_order", "big")
        scale = value.get("scale", 1)
        if isinstance(address, bool) or not isinstance(address, int) or not 0 <= address <= 65_535:
            raise table.fail(key, f"{key!r}: 'address' must be a register number 0-65535")
        if kind not in REGISTER_TYPES:
            raise table.fail(key, f"{key!r}: 'type' must be one of {', '.join(REGISTER_TYPES)}, not {kind!r}")
        if order not in ("big", "little"):
            raise table.fail(key, f"{key!r}: 'word_order' must be \"big\" or \"little\"")
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or scale <= 0:
            raise table.fail(key, f"{key!r}: 'scale' must be a positive number")
        codes = {}
        for state in ("ok", "standby", "fault"):
            listed = value.get(state, [])
            if not isinstance(listed, list) or not all(isinstance(c, int) and not isinstance(c, bool) for c in listed):
                raise table.fail(key, f"{key!r}: {state!r} must list whole numbers")
            codes[state] = tuple(listed)
        if key == "status" and not any(codes.values()):
            raise table.fail(key, "'status' must list the codes that mean ok, standby and fault")
        points[key] = PointConfig(address=address, type=kind, word_order=order, scale=float(scale), **codes)
    if points["energy"] is None:
        raise table.fail(None, "'energy' is missing: a register map needs the lifetime energy counter")
    return RegisterMap(name=name, function=function, line=line, **points)
