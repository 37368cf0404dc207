"""Readings in: the one service that takes meter register readings from every source.

The HTTP ingest of AMI head-ends, the CSV import and the manual readings staff enter through the
bot all call :func:`ingest_readings`. A batch is judged row by row: good rows are kept, bad rows
are reported with a stable code and a message that names the row and the field, and a refused
row changes nothing. Everything a batch writes (readings, conflicts kept for staff, audit events)
is written in one transaction.

The rules written down
----------------------
* **A row** is ``{"meter": serial, "register": DL/T 645 id, "read_at": time, "value": reading}``.
  ``read_at`` is ISO 8601 text or a ``datetime``; without an offset it is Asia/Shanghai local
  time. ``value`` is in meter units before the multiplier, a decimal string or a number, at most
  4 decimals, ``0 <= value < 10**meter.register_digits``.
* **Time.** A reading more than 5 minutes after ``now`` is in the future and refused, and so is a
  reading dated (local date) before the meter's ``installed_on`` or after its ``removed_on``.
* **Idempotency.** The key is (meter, register, read_at). The same value again is a
  *duplicate*: reported, nothing written. The value compared is the *effective* one, the
  highest revision (a staff correction); a re-send of the value first received (revision 0)
  after staff corrected it is a duplicate too, the correction has already answered it.
  Another value for a key that is taken is refused as ``conflicting_reading``.
* **Registers only count up** — with one exception, the rollover. A value below the reading
  before it (or above the reading after it, when a gap is backfilled) is refused as
  ``reading_decreased`` unless it is a rollover: *a lower value is a rollover only when the
  previous value is in the top 10 % of the dial and the new one in the bottom 10 %*, e.g.
  999 950.00 → 12.30 on a 6-digit dial (10**6). Anything else is refused for staff to look at.
  Meter replacement is not a decrease: the new meter is another ``Meter`` with its own serial,
  and its readings start a series of their own.
* **Neighbours.** Each row is compared with the nearest effective reading before and after it,
  stored or accepted earlier in the same batch: the rows of a batch are taken in the order
  (meter, register, read_at, position), so of two different values for one key in a batch the
  first one wins and the second is the conflict.
* **Plausibility.** A reading is kept but *flagged* ``implausible_energy`` when the energy since
  the register's previous reading, (value − previous) × multiplier, is more than the plant or the
  site could make or draw in the time between: ``bound_kw × max(hours, 1) × margin``. For
  generation and export registers (a generation meter, the grid meter's reverse registers) the
  bound is the plant's ``capacity_kwp``; for import (the grid meter's forward registers) it is the
  connection capacity of the plant's nearby-consumption terms (``connection_kva``, the
  transformers) where there are any, else ``capacity_kwp × site_kw_per_kwp``. The margin and
  the multiple are settings (:class:`EnergyLimits`); an interval shorter than an hour is judged
  as an hour, so that the last digit of a ×1000 meter read every 15 minutes is no jump. A
  flagged reading is stored with its figures (``Reading.flag_detail``), reported in the row's
  ``flag``, audited (``FlagReading``), and trusted by nothing: later rows are judged against the
  last unflagged reading (so one absurd spike does not get every honest reading after it refused
  as a decrease), and a reading cycle leaves it out and holds the form for staff with a finding
  that names the register and the figures (:mod:`settlement.cycles.runs`). A staff correction (a
  higher revision) replaces it like any other reading.
* **Conflicts** (``conflicting_reading``, ``reading_decreased``) are also kept as
  ``ReadingConflict`` rows for staff, once per (meter, register, time, value, code) while
  unresolved, so a collector retrying a batch does not pile them up. Malformed rows are only
  reported.
* **Audit.** A batch that writes anything leaves one ``IngestReadings`` event (actor
  ``received_from``, after = the counts); a batch that writes nothing (all duplicates or
  refused) leaves the database exactly as it was. Each manual reading by staff also gets its
  own ``RecordManualReading`` event with actor ``staff:<id>``.
* **Concurrency.** The unique key (meter, register, read_at, revision) is the final guard: when
  another process inserts the same key between our check and our write, the transaction rolls
  back and the batch is judged again against what is now stored, so the row comes back as a
  duplicate or a conflict, never as a server error.

Queries per batch do not grow with its size: its meters in one query, their plants' capacities
and connection capacities in two, the stored readings of its window in one, the nearest stored
readings before and after the window in three, the open conflicts in one, then one bulk insert.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import re
import uuid
from bisect import bisect_left, insort
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.functions import Max, Min
from tortoise.transactions import in_transaction

from settlement import audit
from settlement import text as outside_text
from settlement.errors import Conflict, Forbidden, InvalidInput
from settlement.models import (
    Collector,
    Meter,
    MeterKind,
    NearbyConsumptionTerms,
    Plant,
    Reading,
    ReadingConflict,
    ReadingSource,
    Staff,
    StaffRole,
)
from settlement.clock import LOCAL, UTC, utc_now

log = logging.getLogger("pvsettle.readings")


#: Rows one call takes; the HTTP ingest answers 413 above it, the CSV import sends fewer.
MAX_BATCH_ROWS = 5_000
#: Decimals a reading may carry (the column's scale): more would be silently rounded.
MAX_DECIMALS = 4
#: Clock skew allowed between a collector and us before a reading counts as in the future.
FUTURE_TOLERANCE = dt.timedelta(minutes=5)
#: Share of the dial at each end that makes a lower value a rollover (see the module docstring).
ROLLOVER_BAND = Decimal("0.1")
#: Times a batch is judged again after a concurrent insert took one of its keys.
WRITE_ATTEMPTS = 3
#: Serials and values longer than this are refused before any parsing.
MAX_TEXT = 40
#: Chunk of an ``IN (…)`` list: below SQLite's limit of bound variables (32 766 since 3.32).
IN_CHUNK = 5_000

FIELDS = ("meter", "register", "read_at", "value")
# DL/T 645 ids of electricity meters (8 hex digits) or CJ/T 188 ids of water and gas meters (4);
# which one a meter reports is its own register list, checked with the meter
_REGISTER = re.compile(r"^([0-9A-Fa-f]{4}){1,2}$")
_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,4})?$")
_STAFF_WHO_RECORD = (StaffRole.OPERATOR, StaffRole.ADMIN)


class RowStatus(StrEnum):
    CREATED = "created"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


class RowErrorCode(StrEnum):
    """Why a row was refused; stable strings that collectors and staff may rely on."""

    INVALID_ROW = "invalid_row"  # not an object / mapping
    MISSING_FIELD = "missing_field"
    INVALID_FIELD = "invalid_field"  # wrong type or unparseable
    INVALID_TEXT = outside_text.CODE  # NUL, a control character or a lone surrogate (settlement.text)
    UNKNOWN_METER = "unknown_meter"
    UNKNOWN_REGISTER = "unknown_register"  # the meter does not report this register
    VALUE_OUT_OF_RANGE = "value_out_of_range"  # negative, or not below 10**register_digits
    TOO_MANY_DECIMALS = "too_many_decimals"
    READING_IN_FUTURE = "reading_in_future"
    METER_NOT_IN_SERVICE = "meter_not_in_service"  # before installed_on or after removed_on
    CONFLICTING_READING = "conflicting_reading"
    READING_DECREASED = "reading_decreased"


CONFLICT_CODES = (RowErrorCode.CONFLICTING_READING, RowErrorCode.READING_DECREASED)
#: The flag of a reading kept but not trusted (``Reading.flag``, a row's ``flag``).
IMPLAUSIBLE_ENERGY = "implausible_energy"
IMPORT_PREFIX = "0001"  # DL/T 645 forward active: on the grid meter, energy drawn from the grid


@dataclass(frozen=True)
class EnergyLimits:
    """How much energy a register may advance between two readings before the reading is flagged.

    Parameters
    ----------
    margin : Decimal [-]
        Multiplies every bound: energy above ``bound_kw × hours × margin`` is implausible
        (``PVSETTLE_READING_ENERGY_MARGIN``). 1.2 as the cycle's own check (billing_engine's
        ``plausibility_factor``): a PV plant's output does not exceed its DC capacity for long.
    site_kw_per_kwp : Decimal [kW/kWp]
        The site's draw bound when the plant has no connection capacity on file, as a multiple of
        its PV capacity (``PVSETTLE_READING_SITE_KW_PER_KWP``). Rooftop PV covers a part of a
        site's load; 10× is far above any site it could share, far below a meter glitch.
    min_hours : Decimal [h]
        Intervals shorter than this are judged as this long (a last-digit step of a meter with a
        large multiplier read every few minutes is no jump).
    """

    margin: Decimal = Decimal("1.2")
    site_kw_per_kwp: Decimal = Decimal("10")
    min_hours: Decimal = Decimal("1")


@dataclass(frozen=True)
class _Bounds:
    """What one meter's plant can make and its site can draw [kW], and where the figure comes from."""

    plant_kw: Decimal | None
    site_kw: Decimal | None
    site_basis: str  # "connection" (terms' connection_kva) or "capacity" (capacity × multiple)


@dataclass(frozen=True)
class RowError:
    code: str
    message: str  # for developers and collectors (English)
    figures: dict[str, Any] | None = None  # a flag's figures, for the words people read (the bot)


@dataclass(frozen=True)
class RowResult:
    """The outcome of one row; ``index`` is its position in the batch given."""

    index: int
    status: RowStatus
    error: RowError | None = None
    flag: RowError | None = None  # created, but suspect (``implausible_energy``)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "status": str(self.status)}
        if self.error is not None:
            out["error"] = {"code": self.error.code, "message": self.error.message}
        if self.flag is not None:
            out["flag"] = {"code": self.flag.code, "message": self.flag.message}
        return out


@dataclass(frozen=True)
class IngestResult:
    """Per-row outcomes of one batch, in the order of the rows given."""

    results: tuple[RowResult, ...]
    conflicts_recorded: int = 0

    def count(self, status: RowStatus) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def created(self) -> int:
        return self.count(RowStatus.CREATED)

    @property
    def duplicates(self) -> int:
        return self.count(RowStatus.DUPLICATE)

    @property
    def rejected(self) -> int:
        return self.count(RowStatus.REJECTED)

    @property
    def flagged(self) -> int:
        """Rows created but flagged as suspect (counted in ``created`` too)."""
        return sum(1 for r in self.results if r.flag is not None)

    def counts(self) -> dict[str, int]:
        return {"created": self.created, "duplicates": self.duplicates, "rejected": self.rejected,
                "flagged": self.flagged}

    def as_dict(self) -> dict[str, Any]:
        """The HTTP answer: counts and one result per row (a flagged row carries its ``flag``)."""
        return {**self.counts(), "results": [r.as_dict() for r in self.results]}


# --- parsing (no I/O) ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Parsed:
    """A row whose fields are well-formed; not yet checked against its meter."""

    index: int
    name: str
    serial: str
    register: str
    read_at: dt.datetime  # UTC
    value: Decimal
    received: str  # the value as received, for conflicts kept for staff


@dataclass
class _Candidate:
    """A row checked against its meter, to be judged against the stored series."""

    parsed: _Parsed
    meter: Meter


class _Refused(Exception):
    def __init__(self, code: RowErrorCode, message: str):
        super().__init__(message)
        self.error = RowError(str(code), message)


def _show(raw: object) -> str:
    text = repr(raw)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _local(at: dt.datetime) -> str:
    return at.astimezone(LOCAL).isoformat()


def _required(name: str, raw: Mapping, key: str) -> object:
    value = raw.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise _Refused(RowErrorCode.MISSING_FIELD, f"{name}: field '{key}' is missing")
    return value


def _text(name: str, key: str, value: object) -> str:
    if not isinstance(value, str):
        raise _Refused(RowErrorCode.INVALID_FIELD,
                       f"{name}: field '{key}' must be a string, not {type(value).__name__} {_show(value)}")
    text = value.strip()
    if len(text) > MAX_TEXT:
        raise _Refused(RowErrorCode.INVALID_FIELD, f"{name}: field '{key}' {_show(value)} is too long")
    return text


def _read_at(name: str, value: object) -> dt.datetime:
    """``read_at`` as an aware UTC datetime; naive times are Asia/Shanghai local time.

    Raises
    ------
    _Refused
        When it is neither a datetime nor ISO 8601 text.
    """
    if isinstance(value, dt.datetime):
        at = value
    elif isinstance(value, str):
        text = _text(name, "read_at", value)
        try:
            at = dt.datetime.fromisoformat(text)
        except ValueError:
            raise _Refused(RowErrorCode.INVALID_FIELD,
                           f"{name}: field 'read_at' {_show(value)} is not an ISO 8601 time") from None
    else:
        raise _Refused(RowErrorCode.INVALID_FIELD,
                       f"{name}: field 'read_at' must be ISO 8601 text, not {type(value).__name__} {_show(value)}")
    if at.tzinfo is None or at.utcoffset() is None:
        at = at.replace(tzinfo=LOCAL)
    try:
        return at.astimezone(UTC)
    except (OverflowError, ValueError):  # year 1 or 9999 pushed over the edge by the offset
        raise _Refused(RowErrorCode.INVALID_FIELD, f"{name}: field 'read_at' {_show(value)} is out of range") from None


def _value(name: str, value: object) -> tuple[Decimal, str]:
    """The reading as a Decimal and as received; floats go through their shortest repr."""
    if isinstance(value, bool):  # a bool is an int to Python, never a reading
        raise _Refused(RowErrorCode.INVALID_FIELD, f"{name}: field 'value' must be a number, not {value!r}")
    if isinstance(value, Decimal):
        number, received = value, str(value)
    elif isinstance(value, int):
        number, received = Decimal(value), str(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise _Refused(RowErrorCode.INVALID_FIELD, f"{name}: field 'value' {value!r} is not a finite number")
        number, received = Decimal(repr(value)), repr(value)
    elif isinstance(value, str):
        received = _text(name, "value", value)
        if not _DECIMAL.match(received):
            raise _Refused(RowErrorCode.INVALID_FIELD, f"{name}: field 'value' {_show(value)} is not a decimal number")
        number = Decimal(received)
    else:
        raise _Refused(RowErrorCode.INVALID_FIELD,
                       f"{name}: field 'value' must be a number, not {type(value).__name__} {_show(value)}")
    if not number.is_finite():
        raise _Refused(RowErrorCode.INVALID_FIELD, f"{name}: field 'value' {_show(value)} is not a finite number")
    return number, received[:32]


def _parse(index: int, name: str, raw: object) -> _Parsed:
    if not isinstance(raw, Mapping):
        raise _Refused(RowErrorCode.INVALID_ROW,
                       f"{name}: must be an object with {', '.join(FIELDS)}, not {type(raw).__name__}")
    refused = outside_text.refused_field(raw, FIELDS, name)
    if refused is not None:
        raise _Refused(RowErrorCode.INVALID_TEXT, refused)
    serial = _text(name, "meter", _required(name, raw, "meter"))
    register = _text(name, "register", _required(name, raw, "register"))
    if not _REGISTER.match(register):
        raise _Refused(RowErrorCode.INVALID_FIELD,
                       f"{name}: field 'register' {_show(register)} is not a register id "
                       "(DL/T 645: 8 hex digits; CJ/T 188 for water and gas: 4)")
    read_at = _read_at(name, _required(name, raw, "read_at"))
    value, received = _value(name, _required(name, raw, "value"))
    return _Parsed(index=index, name=name, serial=serial, register=register.upper(), read_at=read_at,
                   value=value, received=received)


def _check_meter(row: _Parsed, meter: Meter | None, now: dt.datetime) -> _Candidate:
    """What can be judged from the row and its meter alone."""
    name = row.name
    if meter is None:
        raise _Refused(RowErrorCode.UNKNOWN_METER, f"{name}: field 'meter': no meter has the serial {_show(row.serial)}")
    if row.register not in {str(r).upper() for r in meter.registers}:
        raise _Refused(RowErrorCode.UNKNOWN_REGISTER,
                       f"{name}: field 'register': meter {meter.serial} does not report register {row.register}")
    # the column holds 10 whole digits, whatever a meter's dial claims
    digits = min(meter.register_digits, 10)
    dial = 10 ** digits
    if row.value < 0:
        raise _Refused(RowErrorCode.VALUE_OUT_OF_RANGE, f"{name}: field 'value' {row.received} is negative")
    if row.value >= dial:
        raise _Refused(RowErrorCode.VALUE_OUT_OF_RANGE,
                       f"{name}: field 'value' {row.received} does not fit the {digits}-digit "
                       f"dial of meter {meter.serial} (it must be below {dial})")
    if row.value != row.value.quantize(Decimal(1).scaleb(-MAX_DECIMALS)):
        raise _Refused(RowErrorCode.TOO_MANY_DECIMALS,
                       f"{name}: field 'value' {row.received} has more than {MAX_DECIMALS} decimals")
    if row.read_at > now + FUTURE_TOLERANCE:
        raise _Refused(RowErrorCode.READING_IN_FUTURE,
                       f"{name}: field 'read_at' {_local(row.read_at)} is in the future (now is {_local(now)})")
    local_day = row.read_at.astimezone(LOCAL).date()
    if local_day < meter.installed_on:
        raise _Refused(RowErrorCode.METER_NOT_IN_SERVICE,
                       f"{name}: field 'read_at' {_local(row.read_at)} is before meter {meter.serial} "
                       f"was installed on {meter.installed_on}")
    if meter.removed_on is not None and local_day > meter.removed_on:
        raise _Refused(RowErrorCode.METER_NOT_IN_SERVICE,
                       f"{name}: field 'read_at' {_local(row.read_at)} is after meter {meter.serial} "
                       f"was removed on {meter.removed_on}")
    return _Candidate(parsed=row, meter=meter)


def is_rollover(earlier: Decimal, later: Decimal, register_digits: int) -> bool:
    """Whether ``later`` < ``earlier`` is explained by the dial wrapping past 10**digits.

    The same rule as billing_engine's: only when the wrapped advance ``later + dial − earlier``
    is at most 10 % of the dial, e.g. 999 950.00 → 12.30 on a 6-digit dial (an advance of
    62.30). A larger "wrap" would be a month of implausible energy: it is refused here rather
    than accepted and then zeroed and flagged by the engine.
    """
    dial = Decimal(10) ** register_digits
    return later < earlier and later + dial - earlier <= dial * ROLLOVER_BAND


# --- judging against the stored series ----------------------------------------------------------


@dataclass
class _Series:
    """One (meter, register): effective values by time, sorted times, and where each came from."""

    times: list[dt.datetime] = field(default_factory=list)
    effective: dict[dt.datetime, Decimal] = field(default_factory=dict)
    _revision: dict[dt.datetime, int] = field(default_factory=dict)
    original: dict[dt.datetime, Decimal] = field(default_factory=dict)  # revision 0, as first received
    from_batch: set[dt.datetime] = field(default_factory=set)
    suspect: set[dt.datetime] = field(default_factory=set)  # effective value flagged: no neighbour

    def add_stored(self, at: dt.datetime, revision: int, value: Decimal, flag: str | None = None) -> None:
        if at not in self.effective:
            insort(self.times, at)
        if revision >= self._revision.get(at, -1):
            self.effective[at], self._revision[at] = value, revision
            if flag:
                self.suspect.add(at)
            else:
                self.suspect.discard(at)
        if revision == 0:
            self.original[at] = value

    def accept(self, at: dt.datetime, value: Decimal, *, suspect: bool = False) -> None:
        insort(self.times, at)
        self.effective[at] = self.original[at] = value
        self._revision[at] = 0
        self.from_batch.add(at)
        if suspect:
            self.suspect.add(at)

    def neighbours(self, at: dt.datetime) -> tuple[dt.datetime | None, dt.datetime | None]:
        """The nearest trusted (unflagged) readings before and after ``at``."""
        times, suspect = self.times, self.suspect
        before = bisect_left(times, at) - 1
        while before >= 0 and times[before] in suspect:
            before -= 1
        after = before + 1
        while after < len(times) and (times[after] <= at or times[after] in suspect):
            after += 1
        return (times[before] if before >= 0 else None), (times[after] if after < len(times) else None)


@dataclass
class _Plan:
    outcomes: dict[int, RowResult]
    readings: list[Reading]
    conflicts: list[ReadingConflict]


def _chunks(values: Sequence, size: int = IN_CHUNK) -> Iterable[list]:
    values = list(values)
    for start in range(0, len(values), size):
        yield values[start:start + size]


async def _load_meters(serials: set[str]) -> dict[str, Meter]:
    meters: dict[str, Meter] = {}
    for chunk in _chunks(sorted(serials)):
        for meter in await Meter.filter(serial__in=chunk):
            meters[meter.serial] = meter
    return meters


async def _load_bounds(meters: Iterable[Meter], limits: EnergyLimits) -> dict[int, _Bounds]:
    """Per plant of these meters: what it can make and what its site can draw [kW]."""
    plant_ids = sorted({m.plant_id for m in meters})
    capacity: dict[int, Decimal] = {}
    connection: dict[int, Decimal] = {}
    for chunk in _chunks(plant_ids):
        capacity.update(await Plant.filter(id__in=chunk).values_list("id", "capacity_kwp"))
        # the latest terms win (a plant has few versions, ordered so that the last one stays)
        for plant_id, kva in await NearbyConsumptionTerms.filter(plant_id__in=chunk).order_by(
                "effective_from", "id").values_list("plant_id", "connection_kva"):
            connection[plant_id] = kva
    bounds = {}
    for plant_id in plant_ids:
        kwp = Decimal(capacity[plant_id]) if capacity.get(plant_id) is not None else None
        plant_kw = kwp if kwp is not None and kwp > 0 else None  # unknown capacity: no bound
        if connection.get(plant_id):
            bounds[plant_id] = _Bounds(plant_kw, Decimal(connection[plant_id]), "connection")
        else:
            bounds[plant_id] = _Bounds(plant_kw, plant_kw * limits.site_kw_per_kwp if plant_kw else None,
                                       "capacity")
    return bounds


async def _load_stored(candidates: list[_Candidate]) -> dict[tuple[int, str], _Series]:
    """The stored readings each candidate is judged against, in four queries whatever the size.

    The window [earliest, latest] of the batch is loaded whole; for each series the nearest
    stored reading before and after the window is found by aggregate, then fetched.
    """
    series: dict[tuple[int, str], _Series] = {(c.meter.id, c.parsed.register): _Series() for c in candidates}
    if not candidates:
        return series
    meter_ids = sorted({c.meter.id for c in candidates})
    registers = sorted({c.parsed.register for c in candidates})
    earliest = min(c.parsed.read_at for c in candidates)
    latest = max(c.parsed.read_at for c in candidates)
    columns = ("meter_id", "register", "read_at", "revision", "value", "flag")
    stored: list[tuple] = []
    edges: dict[tuple[int, str, dt.datetime], None] = {}
    for chunk in _chunks(meter_ids):
        mine = Reading.filter(meter_id__in=chunk, register__in=registers)
        stored += await mine.filter(read_at__gte=earliest, read_at__lte=latest).values_list(*columns)
        for aggregate, condition in ((Max, {"read_at__lt": earliest}), (Min, {"read_at__gt": latest})):
            # the nearest trusted reading: a flagged one is no neighbour (a correction of it is)
            found = await (Reading.filter(meter_id__in=chunk, register__in=registers, flag__isnull=True,
                                          **condition)
                           .group_by("meter_id", "register").annotate(edge=aggregate("read_at"))
                           .values_list("meter_id", "register", "edge"))
            edges.update({(mid, reg, at): None for mid, reg, at in found if (mid, reg) in series})
    edge_times = sorted({at for _, _, at in edges})
    for chunk in _chunks(edge_times):
        rows = await Reading.filter(meter_id__in=meter_ids, register__in=registers,
                                    read_at__in=chunk).values_list(*columns)
        stored += [row for row in rows if (row[0], row[1], row[2]) in edges]
    for meter_id, register, at, revision, value, flag in stored:
        if (meter_id, register) in series:
            series[(meter_id, register)].add_stored(at, revision, value, flag)
    return series


async def _load_open_conflicts(candidates: list[_Candidate]) -> set[tuple[str, str, dt.datetime, Decimal, str]]:
    """Unresolved conflicts the batch may repeat, so that a retried batch does not add them again."""
    if not candidates:
        return set()
    serials = sorted({c.meter.serial for c in candidates})
    earliest = min(c.parsed.read_at for c in candidates)
    latest = max(c.parsed.read_at for c in candidates)
    keys = set()
    for chunk in _chunks(serials):
        rows = await ReadingConflict.filter(meter_serial__in=chunk, resolved_at__isnull=True,
                                            read_at__gte=earliest, read_at__lte=latest).values_list(
            "meter_serial", "register", "read_at", "value", "code")
        for serial, register, at, value, code in rows:
            try:
                keys.add((serial, register, at, Decimal(value), code))
            except InvalidOperation:
                continue  # not written by this service; it cannot match a parsed value anyway
    return keys


async def _plan(parsed: list[_Parsed], *, now: dt.datetime, source: ReadingSource, received_from: str,
                staff: Staff | None, limits: EnergyLimits) -> _Plan:
    """Judge every well-formed row; returns what to write and every row's outcome."""
    outcomes: dict[int, RowResult] = {}
    meters = await _load_meters({row.serial for row in parsed})
    candidates: list[_Candidate] = []
    for row in parsed:
        try:
            candidates.append(_check_meter(row, meters.get(row.serial), now))
        except _Refused as refused:
            outcomes[row.index] = RowResult(row.index, RowStatus.REJECTED, refused.error)
    bounds = await _load_bounds([c.meter for c in candidates], limits)
    series = await _load_stored(candidates)
    open_conflicts = await _load_open_conflicts(candidates)

    readings: list[Reading] = []
    conflicts: list[ReadingConflict] = []
    candidates.sort(key=lambda c: (c.meter.id, c.parsed.register, c.parsed.read_at, c.parsed.index))
    for candidate in candidates:
        row, meter = candidate.parsed, candidate.meter
        line = series[(meter.id, row.register)]
        refusal = _judge(row, meter, line)
        if refusal is None:
            if row.read_at in line.effective:
                outcomes[row.index] = RowResult(row.index, RowStatus.DUPLICATE)
                continue
            implausible = _implausible(row, meter, line, bounds[meter.plant_id], limits)
            flag, detail = implausible if implausible else (None, None)
            line.accept(row.read_at, row.value, suspect=flag is not None)
            readings.append(Reading(meter=meter, register=row.register, read_at=row.read_at, value=row.value,
                                    source=source, revision=0, entered_by=staff,
                                    flag=IMPLAUSIBLE_ENERGY if flag else None, flag_detail=detail))
            outcomes[row.index] = RowResult(row.index, RowStatus.CREATED, flag=flag)
            continue
        code, message, stored_value = refusal
        outcomes[row.index] = RowResult(row.index, RowStatus.REJECTED, RowError(str(code), message))
        key = (meter.serial, row.register, row.read_at, row.value, str(code))
        if key not in open_conflicts:
            open_conflicts.add(key)
            conflicts.append(ReadingConflict(
                meter_serial=meter.serial, register=row.register, read_at=row.read_at, value=row.received,
                stored_value=str(stored_value)[:32], code=str(code), message=message[:300], source=str(source),
                received_from=received_from[:100]))
    return _Plan(outcomes=outcomes, readings=readings, conflicts=conflicts)


def _judge(row: _Parsed, meter: Meter, line: _Series) -> tuple[RowErrorCode, str, Decimal] | None:
    """None when the row fits its series (new or a duplicate), else (code, message, value it contradicts)."""
    name, at = row.name, row.read_at
    if at in line.effective:
        have = line.effective[at]
        if row.value == have or row.value == line.original.get(at):
            return None
        where = "an earlier row of this batch has" if at in line.from_batch else "the stored reading is"
        return (RowErrorCode.CONFLICTING_READING,
                f"{name}: field 'value' {row.received} conflicts with meter {meter.serial} register "
                f"{row.register} at {_local(at)}: {where} {have}", have)
    before, after = line.neighbours(at)
    if before is not None:
        previous = line.effective[before]
        if row.value < previous and not is_rollover(previous, row.value, meter.register_digits):
            return (RowErrorCode.READING_DECREASED,
                    f"{name}: field 'value' {row.received} is below {previous}, the reading of meter "
                    f"{meter.serial} register {row.register} at {_local(before)}, and no rollover explains it",
                    previous)
    if after is not None:
        following = line.effective[after]
        if following < row.value and not is_rollover(row.value, following, meter.register_digits):
            return (RowErrorCode.READING_DECREASED,
                    f"{name}: field 'value' {row.received} is above {following}, the later reading of meter "
                    f"{meter.serial} register {row.register} at {_local(after)}, and no rollover explains it",
                    following)
    return None


def _implausible(row: _Parsed, meter: Meter, line: _Series, bounds: _Bounds,
                 limits: EnergyLimits) -> tuple[RowError, dict[str, Any]] | None:
    """The flag and its figures when the energy since the previous trusted reading is more than
    the plant could make (generation, export) or the site could draw (import); else None.

    Called for a row that :func:`_judge` accepted, so a lower value is a rollover.
    """
    if meter.kind not in (MeterKind.GRID, MeterKind.GENERATION):
        return None  # water and gas [m³]: no plant or site figure bounds them
    before, _ = line.neighbours(row.read_at)
    if before is None:
        return None  # the first reading of a register: no interval to judge
    importing = meter.kind == MeterKind.GRID and row.register.startswith(IMPORT_PREFIX)
    bound_kw = bounds.site_kw if importing else bounds.plant_kw
    if bound_kw is None:
        return None
    previous = line.effective[before]
    advance = row.value - previous if row.value >= previous else row.value + 10 ** meter.register_digits - previous
    kwh = advance * meter.multiplier
    hours = Decimal((row.read_at - before).total_seconds()) / 3600
    limit = bound_kw * max(hours, limits.min_hours) * limits.margin
    if kwh <= limit:
        return None
    what = ("import", "the site could draw") if importing else (
        "export" if meter.kind == MeterKind.GRID else "generation", "the plant could make")
    basis = {"connection": f"connection {bound_kw.normalize():f} kVA",
             "capacity": f"{limits.site_kw_per_kwp.normalize():f} × {bounds.plant_kw.normalize():f} kWp"
             }[bounds.site_basis] if importing else f"{bound_kw.normalize():f} kWp"
    step = Decimal(1).scaleb(-MAX_DECIMALS)  # readings as stored, whatever digits they came with
    previous_text, value_text = str(previous.quantize(step)), str(row.value.quantize(step))
    figures = {"kind": what[0], "previous": previous_text, "previous_at": before.isoformat(),
               "value": value_text, "multiplier": meter.multiplier, "hours": f"{hours:.2f}",
               "kwh": f"{kwh:.3f}", "bound_kw": f"{bound_kw.normalize():f}", "basis": basis,
               "margin": f"{limits.margin.normalize():f}", "limit_kwh": f"{limit:.3f}"}
    finding = (f"meter {meter.serial} register {row.register}: {previous_text} → {value_text} since "
               f"{_local(before)} is {kwh:,.3f} kWh of {what[0]} in {hours:.2f} h (×{meter.multiplier}), more "
               f"than {what[1]}: {limit:,.3f} kWh ({basis} × {max(hours, limits.min_hours):.2f} h × "
               f"{limits.margin.normalize():f})")
    return (RowError(IMPLAUSIBLE_ENERGY, f"{row.name}: {finding}; kept, flagged for staff", figures),
            {**figures, "message": finding[:500]})


# --- the service --------------------------------------------------------------------------------


def _check_staff(staff: Staff) -> None:
    if not staff.active or staff.role not in _STAFF_WHO_RECORD:
        raise Forbidden(f"staff {staff.id} may not record readings (needs an active operator or admin)")


async def ingest_readings(rows: Iterable[object], *, source: ReadingSource, received_from: str,
                          staff: Staff | None = None, now: dt.datetime | None = None,
                          row_names: Sequence[str] | None = None,
                          limits: EnergyLimits | None = None) -> IngestResult:
    """Take a batch of register readings: keep the good rows, report every row's outcome.

    The rules (rollover, duplicates, conflicts, backfills, concurrency) are in the module
    docstring.

    Parameters
    ----------
    rows : iterable of mapping
        ``{"meter": serial, "register": "00010000", "read_at": ISO 8601 text or datetime,
        "value": decimal text or number}``; values [meter units, before the multiplier].
    source : ReadingSource
        Stored on each reading: ``ami``, ``imported`` or ``manual``.
    received_from : str
        Who sent it, for conflicts and the audit trail: ``collector:<name>``, ``import:<file>``
        or ``staff:<id>``.
    staff : Staff, optional
        The staff member entering manual readings (an active operator or admin): stored as
        ``entered_by`` and audited per reading.
    now : datetime, optional
        The clock readings in the future are judged by; defaults to the current time.
    row_names : sequence of str, optional
        How messages name each row, default ``row <index>``; the CSV import names lines.
    limits : EnergyLimits, optional
        When a reading's energy is implausible (the settings' margins; defaults otherwise).

    Returns
    -------
    IngestResult
        One ``RowResult`` per row in the order given: created (with a ``flag`` when its energy is
        implausible), duplicate, or rejected with a code and a message naming the row and the
        field.

    Raises
    ------
    InvalidInput
        More than ``MAX_BATCH_ROWS`` rows, or ``row_names`` of the wrong length.
    Forbidden
        ``staff`` is inactive or only a viewer.
    Conflict
        Concurrent writers kept taking the batch's keys for ``WRITE_ATTEMPTS`` tries in a row.
    """
    rows = list(rows)
    if len(rows) > MAX_BATCH_ROWS:
        raise InvalidInput(f"a batch holds at most {MAX_BATCH_ROWS} readings, not {len(rows)}",
                           code="too_many_readings", params={"limit": MAX_BATCH_ROWS})
    names = list(row_names) if row_names is not None else [f"row {i}" for i in range(len(rows))]
    if len(names) != len(rows):
        raise InvalidInput(f"{len(names)} row names for {len(rows)} rows")
    if staff is not None:
        _check_staff(staff)
    now = utc_now() if now is None else (now if now.tzinfo else now.replace(tzinfo=LOCAL))

    refused: dict[int, RowResult] = {}
    parsed: list[_Parsed] = []
    for index, (raw, name) in enumerate(zip(rows, names)):
        try:
            parsed.append(_parse(index, name, raw))
        except _Refused as exc:
            refused[index] = RowResult(index, RowStatus.REJECTED, exc.error)

    for attempt in range(1, WRITE_ATTEMPTS + 1):
        plan = await _plan(parsed, now=now, source=source, received_from=received_from, staff=staff,
                           limits=limits or EnergyLimits())
        outcomes = {**refused, **plan.outcomes}
        result = IngestResult(results=tuple(outcomes[i] for i in range(len(rows))),
                              conflicts_recorded=len(plan.conflicts))
        try:
            await _write(plan, result, source=source, received_from=received_from, staff=staff)
        except IntegrityError:
            # another writer took one of our keys after we looked: judge the batch again
            log.warning("concurrent insert of the same readings, judging the batch again",
                        extra={"attempt": attempt, "received_from": received_from})
            continue
        return result
    raise Conflict(f"the readings of this batch kept changing under it for {WRITE_ATTEMPTS} tries, send it again",
                   code="concurrent_writes")


async def _write(plan: _Plan, result: IngestResult, *, source: ReadingSource, received_from: str,
                 staff: Staff | None) -> None:
    if not plan.readings and not plan.conflicts:
        return
    async with in_transaction() as conn:
        if staff is None:
            await Reading.bulk_create(plan.readings, batch_size=1000, using_db=conn)
        else:
            # few rows, each needs its id for its own audit event
            for reading in plan.readings:
                await reading.save(using_db=conn)
                meter: Meter = reading.meter
                await audit.record(
                    audit.actor_of(staff), "RecordManualReading", "reading", reading.id,
                    after={"meter": meter.serial, "register": reading.register, "read_at": reading.read_at,
                           "value": reading.value, "source": source},
                    using_db=conn)
        if plan.conflicts:
            await ReadingConflict.bulk_create(plan.conflicts, batch_size=1000, using_db=conn)
        for reading in plan.readings:
            if reading.flag:  # few: each its own event, for staff going through the audit trail
                meter = reading.meter
                await audit.record(
                    received_from[:64], "FlagReading", "reading",
                    f"{meter.serial}/{reading.register}/{int(reading.read_at.timestamp())}",
                    after={"meter": meter.serial, "register": reading.register, "read_at": reading.read_at,
                           "value": reading.value, "flag": reading.flag, **(reading.flag_detail or {})},
                    using_db=conn)
        times = [r.read_at for r in plan.readings] or [c.read_at for c in plan.conflicts]
        await audit.record(
            received_from[:64], "IngestReadings", "reading_batch", uuid.uuid4().hex,
            after={**result.counts(), "conflicts_recorded": result.conflicts_recorded, "source": source,
                   "rows": len(result.results), "from": min(times), "to": max(times)},
            using_db=conn)


async def list_conflicts(unresolved_only: bool = True, limit: int = 100) -> list[ReadingConflict]:
    """Refused readings kept for staff, newest first.

    Parameters
    ----------
    unresolved_only : bool
        Only those no staff member has resolved yet.
    limit : int
        At most this many, 1–1000.
    """
    if not 1 <= limit <= 1000:
        raise InvalidInput(f"limit must be between 1 and 1000, not {limit}")
    query = ReadingConflict.all()
    if unresolved_only:
        query = query.filter(resolved_at__isnull=True)
    return await query.order_by("-received_at", "-id").limit(limit)


def conflict_as_dict(conflict: ReadingConflict) -> dict[str, Any]:
    """A conflict as plain JSON-safe data (times in Asia/Shanghai local time)."""
    return {
        "id": conflict.id, "meter": conflict.meter_serial, "register": conflict.register,
        "read_at": _local(conflict.read_at), "value": conflict.value, "stored_value": conflict.stored_value,
        "code": conflict.code, "message": conflict.message, "source": conflict.source,
        "received_from": conflict.received_from, "received_at": _local(conflict.received_at),
        "resolved_at": _local(conflict.resolved_at) if conflict.resolved_at else None,
        "resolution": conflict.resolution,
    }


# --- collectors ---------------------------------------------------------------------------------


def key_sha256(key: str) -> str:
    """What is stored of a collector's key: its SHA-256, hex."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


async def add_collector(name: str, key: str) -> Collector:
    """Allow a new collector to push readings with ``key`` (only its hash is stored).

    Raises
    ------
    InvalidInput
        An empty or overlong name.
    Conflict
        A collector of that name (or, astronomically unlikely, that key) exists.
    """
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise InvalidInput("a collector's name has 1 to 100 characters")
    try:
        async with in_transaction() as conn:
            collector = await Collector.create(name=name, key_sha256=key_sha256(key), using_db=conn)
            await audit.record(audit.SYSTEM, "AddCollector", "collector", collector.id, after={"name": name},
                               using_db=conn)
    except IntegrityError:
        raise Conflict(f"a collector named {name!r} exists", code="collector_exists") from None
    return collector


async def collector_for_key(key: str) -> Collector | None:
    """The active collector whose key this is, or None."""
    if not key:
        return None
    return await Collector.get_or_none(key_sha256=key_sha256(key), active=True)
