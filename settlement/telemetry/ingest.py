"""Telemetry in: the one service that takes inverter and data-logger samples from every path.

``POST /ingest/v1/telemetry`` and the MQTT subscriber both call :func:`ingest_samples`. A batch is
judged row by row; good rows are stored, bad rows are reported with a stable code and a message
naming the row and the field, and a refused row changes nothing. Everything a batch writes
(samples, the derived figures of their neighbours, rollups, one audit event) is written in one
transaction; the plants' live state is published to Redis after it commits.

The rules written down
----------------------
* **A row** is ``{"device": serial, "ts": ISO 8601, "power_w": W, "energy_wh": lifetime Wh,
  "status": "ok" | "standby" | "fault", "irradiance_w_m2": W/m²}``; ``device`` and ``ts`` are
  required, the rest may be missing or null (``status`` then "ok"). ``ts`` without an offset is
  Asia/Shanghai local time. Numbers are JSON numbers; fractions are rounded half up to whole
  units. Bounds: ``0 <= power_w <= 10**8`` and not above twice the device's rated power (or its
  plant's capacity), ``0 <= energy_wh < 10**12``, ``0 <= irradiance_w_m2 <= 2000``; ``ts`` from
  2010 on.
* **Receive time** — ``received_at`` is stored with every sample (the latest receipt for a sample
  sent again).
* **Clock skew.** A device whose latest sample in a batch is more than 5 minutes ahead of the
  receive time has a fast clock: all its samples in the batch are moved back by that lead,
  rounded to whole minutes (loggers keep whole-minute grids, so a clock that is wrong by whole
  minutes is corrected exactly), flagged ``clock_skew``, and the device's own time is kept in
  ``device_ts``. A sample more than a day ahead is not skew but nonsense: refused
  (``ts_in_future``). A batch re-sent later is corrected by the lead seen then; a retry within
  half a minute lands on the same times.
* **Idempotency and late data.** The key is (device, ts). The same values again are a
  *duplicate* (nothing written); other values under a stored key *update* it (the later receipt
  wins); within one batch the last row of a key wins and the earlier ones count as duplicates.
  Late and out-of-order samples are simply inserted where they belong in time.
* **Energy** comes only from the lifetime counters, never from power: see
  :mod:`settlement.telemetry.energy` (positive differences, a drop of more than 10 % is a reset,
  a smaller one a dip that is not counted twice, implausible jumps flagged). Each sample stores
  its interval energy, recomputed whenever a neighbour arrives late, so a backfill is never
  counted twice and every order of arrival gives the same figures.
* **Rollups** (15 minutes, local day, local month) are recomputed, for the buckets a batch
  touched only, from their samples (15 minutes) and from the finer rollups (days, months).
  Gaps stay gaps: a bucket without samples has no rollup.
* **Concurrency.** A batch locks its plants for its transaction, so two processes that ingest
  the same plants take turns and each recomputes against what the other wrote.

Queries per batch do not grow with its size, nor with the history stored (PostgreSQL: one
statement per step over arrays, index lookups per key; new samples go in with a binary ``COPY``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

import numpy as np
import redis.asyncio as redis_asyncio
from tortoise import connections
from tortoise.transactions import in_transaction

from settlement import audit
from settlement.infra import background
from settlement.telemetry import live
from settlement import text as outside_text
from settlement.errors import InvalidInput
from settlement.infra.redis_client import Namespace
from settlement.telemetry.energy import (
    DAY_US,
    MINUTE_US,
    NULL,
    QUARTER_US,
    CounterState,
    SampleFlag,
    interval_energies,
    local_day_of,
    local_month_of_quarter,
    next_local_month,
    quarter_of,
    quarter_rollups,
    rollup_changes,
)
from settlement.telemetry.store import EPOCH, ONE_US, StoredSamples, TelemetryStore, datetime_to_us, us_to_datetime
from settlement.clock import LOCAL, UTC, utc_now

log = logging.getLogger("pvsettle.telemetry")


#: Samples one call takes; the HTTP ingest answers 413 above it.
MAX_BATCH_SAMPLES = 10_000
#: A device this far ahead of the receive time has a fast clock [µs].
SKEW_TOLERANCE_US = 5 * MINUTE_US
#: Further ahead than this a time is refused, not corrected [µs].
MAX_AHEAD_US = DAY_US
#: Samples before this are a logger whose clock fell back to its epoch.
EARLIEST_TS = dt.datetime(2010, 1, 1, tzinfo=UTC)
MAX_POWER_W = 10**8
#: Power above this multiple of the device's rated power is refused [-].
POWER_OVER_RATED = 2
MAX_ENERGY_WH = 10**12
MAX_IRRADIANCE_W_M2 = 2_000
MAX_SERIAL = 64
#: Samples of one device further apart than this are judged as separate runs [µs].
WINDOW_GAP_US = DAY_US
#: A batch whose samples reach this close to now updates the plant's live state [µs].
LIVE_WITHIN_US = DAY_US
#: Devices whose latest sample is this much older than their plant's latest add no power to it [µs].
LIVE_POWER_WINDOW_US = 15 * MINUTE_US
#: Plants published per Redis round trip.
PUBLISH_CHUNK = 2_000

#: Beyond any sample: the bound of the last window of a device [µs].
FAR_FUTURE_US = datetime_to_us(dt.datetime(9000, 1, 1, tzinfo=UTC))

FIELDS = ("device", "ts", "power_w", "energy_wh", "status", "irradiance_w_m2")


class DeviceStatus(StrEnum):
    """What a device says of itself."""

    OK = "ok"
    STANDBY = "standby"  # not producing and not faulty: night, waiting for the grid
    FAULT = "fault"


STATUSES = frozenset(str(s) for s in DeviceStatus)


class RowStatus(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


class RowErrorCode(StrEnum):
    """Why a row was refused; stable strings that collectors may rely on."""

    INVALID_ROW = "invalid_row"
    MISSING_FIELD = "missing_field"
    INVALID_FIELD = "invalid_field"
    INVALID_TEXT = outside_text.CODE  # NUL, a control character or a lone surrogate (settlement.text)
    UNKNOWN_DEVICE = "unknown_device"
    VALUE_OUT_OF_RANGE = "value_out_of_range"
    TS_IN_FUTURE = "ts_in_future"
    TS_OUT_OF_RANGE = "ts_out_of_range"


@dataclass(frozen=True)
class RowError:
    code: str
    message: str


@dataclass
class TelemetryResult:
    """Per-row outcomes of one batch (in the order of the rows given) and what was noticed."""

    statuses: list[RowStatus]
    errors: dict[int, RowError] = field(default_factory=dict)
    flags: dict[int, SampleFlag] = field(default_factory=dict)
    plants: tuple[int, ...] = ()

    def count(self, status: RowStatus) -> int:
        return self.statuses.count(status)

    def counts(self) -> dict[str, int]:
        return {"created": self.count(RowStatus.CREATED), "updated": self.count(RowStatus.UPDATED),
                "duplicates": self.count(RowStatus.DUPLICATE), "rejected": self.count(RowStatus.REJECTED),
                "flagged": len(self.flags)}

    def as_dict(self) -> dict[str, Any]:
        """The HTTP answer: counts, each refused row's error, each flagged row's flags."""
        return {**self.counts(),
                "errors": [{"index": i, "code": e.code, "message": e.message} for i, e in sorted(self.errors.items())],
                "flags": [{"index": i, "flags": f.names()} for i, f in sorted(self.flags.items())]}


# --- parsing (no I/O) ---------------------------------------------------------------------------


class _Refused(Exception):
    def __init__(self, code: RowErrorCode, message: str):
        super().__init__(message)
        self.error = RowError(str(code), message)


def _show(raw: object, limit: int = 40) -> str:
    text = repr(raw)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _number(name: str, key: str, value: object, upper: int) -> int:
    """A JSON number as whole units, rounded half up; NULL when missing."""
    if value is None:
        return NULL
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise _Refused(RowErrorCode.INVALID_FIELD,
                       f"{name}: field '{key}' must be a number, not {type(value).__name__} {_show(value)}")
    if isinstance(value, int):
        whole = value
    else:
        if not math.isfinite(value):
            raise _Refused(RowErrorCode.INVALID_FIELD, f"{name}: field '{key}' {_show(value)} is not a finite number")
        if abs(value) > 10 * upper:
            whole = int(math.copysign(10 * upper, value))  # judged by the bound below, whatever its size
        else:
            whole = math.floor(value + 0.5) if isinstance(value, float) else int((value + Decimal("0.5")) // 1)
    if whole < 0:
        raise _Refused(RowErrorCode.VALUE_OUT_OF_RANGE, f"{name}: field '{key}' {_show(value)} is negative")
    if whole > upper:
        raise _Refused(RowErrorCode.VALUE_OUT_OF_RANGE,
                       f"{name}: field '{key}' {_show(value)} is beyond any device (at most {upper})")
    return whole


def _ts(name: str, value: object) -> int:
    if value is None:
        raise _Refused(RowErrorCode.MISSING_FIELD, f"{name}: field 'ts' is missing")
    if not isinstance(value, str):
        raise _Refused(RowErrorCode.INVALID_FIELD,
                       f"{name}: field 'ts' must be ISO 8601 text, not {type(value).__name__} {_show(value)}")
    if len(value) > 40:
        raise _Refused(RowErrorCode.INVALID_FIELD, f"{name}: field 'ts' {_show(value)} is too long")
    try:
        at = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise _Refused(RowErrorCode.INVALID_FIELD, f"{name}: field 'ts' {_show(value)} is not an ISO 8601 time") from None
    if at.tzinfo is None or at.utcoffset() is None:
        at = at.replace(tzinfo=LOCAL)
    try:
        at = at.astimezone(UTC)
    except (OverflowError, ValueError):
        raise _Refused(RowErrorCode.TS_OUT_OF_RANGE, f"{name}: field 'ts' {_show(value)} is out of range") from None
    if at < EARLIEST_TS:
        raise _Refused(RowErrorCode.TS_OUT_OF_RANGE,
                       f"{name}: field 'ts' {_show(value)} is before {EARLIEST_TS.year}: the device clock is not set")
    return (at - EPOCH) // ONE_US


@dataclass
class _Rows:
    """Well-formed rows as columns."""

    index: list[int] = field(default_factory=list)
    serial: list[str] = field(default_factory=list)
    ts: list[int] = field(default_factory=list)
    power: list[int] = field(default_factory=list)
    energy: list[int] = field(default_factory=list)
    status: list[str] = field(default_factory=list)
    irradiance: list[int] = field(default_factory=list)


def _parse_row(index: int, raw: object, serial: str | None, ts_cache: dict[str, int]) -> tuple:
    """(device, ts, power, energy, status, irradiance) of one row, or _Refused naming the field."""
    name = f"row {index}"
    if not isinstance(raw, Mapping):
        raise _Refused(RowErrorCode.INVALID_ROW,
                       f"{name}: must be an object with {', '.join(FIELDS)}, not {type(raw).__name__}")
    refused = outside_text.refused_field(raw, FIELDS, name)
    if refused is not None:
        raise _Refused(RowErrorCode.INVALID_TEXT, refused)
    device = raw.get("device")
    if serial is not None and device is None:
        device = serial
        refused = outside_text.message(f"{name}: the device of the topic", serial)  # MQTT topics are outside text too
        if refused is not None:
            raise _Refused(RowErrorCode.INVALID_TEXT, refused)
    if device is None or device == "":
        raise _Refused(RowErrorCode.MISSING_FIELD, f"{name}: field 'device' is missing")
    if not isinstance(device, str):
        raise _Refused(RowErrorCode.INVALID_FIELD,
                       f"{name}: field 'device' must be a string, not {type(device).__name__} {_show(device)}")
    if serial is not None and device != serial:
        raise _Refused(RowErrorCode.INVALID_FIELD,
                       f"{name}: field 'device' {_show(device)} is not the device of the topic ({serial})")
    if len(device) > MAX_SERIAL:
        raise _Refused(RowErrorCode.INVALID_FIELD, f"{name}: field 'device' {_show(device)} is too long")
    text = raw.get("ts")
    ts = ts_cache.get(text) if isinstance(text, str) else None
    if ts is None:
        ts = _ts(name, text)
        ts_cache[text] = ts
    power = _number(name, "power_w", raw.get("power_w"), MAX_POWER_W)
    energy = _number(name, "energy_wh", raw.get("energy_wh"), MAX_ENERGY_WH - 1)
    irradiance = _number(name, "irradiance_w_m2", raw.get("irradiance_w_m2"), MAX_IRRADIANCE_W_M2)
    status = raw.get("status")
    if status is None:
        status = str(DeviceStatus.OK)
    elif not isinstance(status, str) or status not in STATUSES:
        raise _Refused(RowErrorCode.INVALID_FIELD,
                       f"{name}: field 'status' {_show(status)} is not one of {', '.join(sorted(STATUSES))}")
    return device, ts, power, energy, status, irradiance


def _columns(rows: Sequence[object]) -> tuple[list, list, list, list, list, list]:
    """device, ts, power_w, energy_wh, status and irradiance_w_m2 of each row, as they came (None
    where a row is no object or lacks the field; status "ok" when an object lacks it)."""
    if all(type(r) is dict for r in rows):  # every row an object: each column in one pass in C
        device, times, power, energy, irradiance = (list(map(dict.get, rows, itertools.repeat(key))) for key in (
            "device", "ts", "power_w", "energy_wh", "irradiance_w_m2"))
        status = list(map(dict.get, rows, itertools.repeat("status"), itertools.repeat("ok")))
    else:
        device = [r.get("device") if type(r) is dict else None for r in rows]
        times = [r.get("ts") if type(r) is dict else None for r in rows]
        power = [r.get("power_w") if type(r) is dict else None for r in rows]
        energy = [r.get("energy_wh") if type(r) is dict else None for r in rows]
        status = [r.get("status", "ok") if type(r) is dict else None for r in rows]
        irradiance = [r.get("irradiance_w_m2") if type(r) is dict else None for r in rows]
    return device, times, power, energy, status, irradiance


def _quick(device: list, times: list, power: list, energy: list, status: list, irradiance: list,
           serial: str | None, ts_cache: dict[str, int]) -> list[bool]:
    """Which rows are well formed at a glance: taken as they are, without a row-by-row look."""
    # a batch names few devices: each distinct one is checked once (a time in ts_cache was checked
    # before it was parsed, a status in STATUSES is known, so neither holds what settlement.text refuses)
    bad_text = {d for d in set(d for d in device if type(d) is str) if outside_text.problem(d) is not None}
    quick = [type(d) is str and 0 < len(d) <= MAX_SERIAL and d not in bad_text and type(t) is str and t in ts_cache
             and (p is None or (type(p) is int and 0 <= p <= MAX_POWER_W))
             and (e is None or (type(e) is int and 0 <= e < MAX_ENERGY_WH))
             and (i is None or (type(i) is int and 0 <= i <= MAX_IRRADIANCE_W_M2))
             and type(s) is str and s in STATUSES
             for d, t, p, e, s, i in zip(device, times, power, energy, status, irradiance)]
    if serial is not None:
        quick = [q and d == serial for q, d in zip(quick, device)]
    return quick


def _parse(rows: Sequence[object], serial: str | None, refused: dict[int, RowError]) -> _Rows:
    """The well-formed rows as columns; each refused one's error into ``refused``.

    Rows are judged column by column first: an object whose numbers are plain JSON integers in
    bounds, whose status is known and whose time parses (each distinct text once: a batch shares
    few) is taken as it is. Any other row is judged field by field, which also words its error.
    """
    ts_cache: dict[str, int] = {}
    device, times, power, energy, status, irradiance = _columns(rows)
    for text in {t for t in times if type(t) is str}:
        if outside_text.problem(text) is not None:
            # refused, though _ts would read it: fromisoformat after strip() takes "\x0c2026-…" (a
            # form feed is whitespace to Python); judged one by one below, naming the field
            continue
        try:
            ts_cache[text] = _ts("", text)
        except _Refused:
            pass  # the rows with this time are judged one by one below, which words the error
    quick = _quick(device, times, power, energy, status, irradiance, serial, ts_cache)
    take = [i for i, q in enumerate(quick) if q]
    if len(take) == len(rows):
        out = _Rows(index=take, serial=device, ts=[ts_cache[t] for t in times],
                    power=[NULL if v is None else v for v in power],
                    energy=[NULL if v is None else v for v in energy], status=status,
                    irradiance=[NULL if v is None else v for v in irradiance])
        return out
    out = _Rows(index=take, serial=[device[i] for i in take], ts=[ts_cache[times[i]] for i in take],
                power=[NULL if power[i] is None else power[i] for i in take],
                energy=[NULL if energy[i] is None else energy[i] for i in take], status=[status[i] for i in take],
                irradiance=[NULL if irradiance[i] is None else irradiance[i] for i in take])
    for index, q in enumerate(quick):
        if q:
            continue
        try:
            parsed = _parse_row(index, rows[index], serial, ts_cache)
        except _Refused as exc:
            refused[index] = exc.error
            continue
        out.index.append(index)
        out.serial.append(parsed[0])
        out.ts.append(parsed[1])
        out.power.append(parsed[2])
        out.energy.append(parsed[3])
        out.status.append(parsed[4])
        out.irradiance.append(parsed[5])
    return out


@dataclass(frozen=True)
class _Device:
    id: int
    plant_id: int
    limit_w: float  # rated power, else the plant's capacity [W]


async def _load_devices(serials: Iterable[str]) -> dict[str, _Device]:
    found: dict[str, _Device] = {}
    store = TelemetryStore(connections.get("default"))
    for device_id, serial, plant_id, rated_w, capacity_kwp in await store.devices(sorted(set(serials))):
        limit = float(rated_w) if rated_w else float(capacity_kwp or 0) * 1000.0
        found[serial] = _Device(id=device_id, plant_id=plant_id, limit_w=limit)
    return found


# --- the batch, as columns ----------------------------------------------------------------------


@dataclass
class _Batch:
    """The accepted rows of a batch, one per (device, ts), sorted by (device, ts)."""

    index: np.ndarray
    device: np.ndarray
    ts: np.ndarray
    power: np.ndarray
    energy: np.ndarray
    status: np.ndarray  # of str objects
    irradiance: np.ndarray
    flags: np.ndarray
    device_ts: np.ndarray

    def take(self, rows: np.ndarray) -> _Batch:
        return _Batch(index=self.index[rows], device=self.device[rows], ts=self.ts[rows], power=self.power[rows],
                      energy=self.energy[rows], status=self.status[rows],
                      irradiance=self.irradiance[rows], flags=self.flags[rows], device_ts=self.device_ts[rows])


def _build_batch(rows: _Rows, devices: dict[str, _Device], now_us: int, refused: dict[int, RowError],
                 duplicates: set[int]) -> _Batch:
    """Devices resolved, bounds that need the device checked, clocks corrected, in-batch repeats dropped."""
    missing = _Device(id=-1, plant_id=-1, limit_w=0.0)
    found = [devices.get(serial, missing) for serial in rows.serial]
    device_ids = np.array([d.id for d in found], np.int64)
    limit = np.array([d.limit_w for d in found], float)
    ts = np.array(rows.ts, np.int64)
    power = np.array(rows.power, np.int64)
    unknown = device_ids < 0
    ahead = ~unknown & (ts > now_us + MAX_AHEAD_US)
    too_strong = ~unknown & ~ahead & (limit > 0) & (power > POWER_OVER_RATED * limit)
    for pos in np.flatnonzero(unknown | ahead | too_strong).tolist():
        index, serial = rows.index[pos], rows.serial[pos]
        name = f"row {index}"
        if unknown[pos]:
            refused[index] = RowError(str(RowErrorCode.UNKNOWN_DEVICE),
                                      f"{name}: field 'device': no device has the serial {_show(serial)}")
        elif ahead[pos]:
            refused[index] = RowError(
                str(RowErrorCode.TS_IN_FUTURE),
                f"{name}: field 'ts' {us_to_datetime(int(ts[pos])).astimezone(LOCAL).isoformat()} is more than a day "
                f"after the receive time {us_to_datetime(now_us).astimezone(LOCAL).isoformat()}")
        else:
            refused[index] = RowError(str(RowErrorCode.VALUE_OUT_OF_RANGE),
                                      f"{name}: field 'power_w' {int(power[pos])} is more than {POWER_OVER_RATED} "
                                      f"times the {limit[pos]:.0f} W device {serial} can make")
    pick = np.flatnonzero(~(unknown | ahead | too_strong))
    keep = pick.tolist()
    batch = _Batch(
        index=np.array(rows.index, np.int64)[pick], device=device_ids[pick], ts=ts[pick], power=power[pick],
        energy=np.array(rows.energy, np.int64)[pick], status=np.array(rows.status, object)[pick],
        irradiance=np.array(rows.irradiance, np.int64)[pick],
        flags=np.zeros(len(keep), np.int64), device_ts=np.full(len(keep), NULL, np.int64))
    if not keep:
        return batch
    # clock skew, per device: the lead of its latest sample, in whole minutes
    order = np.lexsort((batch.ts, batch.device))
    batch = batch.take(order)
    last = np.ones(len(batch.ts), bool)
    last[:-1] = batch.device[1:] != batch.device[:-1]
    group = np.cumsum(np.concatenate([[True], last[:-1]])) - 1
    lead_of_group = batch.ts[last] - now_us
    lead = lead_of_group[group]
    skewed = lead > SKEW_TOLERANCE_US
    if skewed.any():
        correction = (lead + MINUTE_US // 2) // MINUTE_US * MINUTE_US
        batch.device_ts[skewed] = batch.ts[skewed]
        batch.ts[skewed] -= correction[skewed]
        batch.flags[skewed] |= int(SampleFlag.CLOCK_SKEW)
        order = np.lexsort((batch.ts, batch.device))
        batch = batch.take(order)
    # the last row of a key wins: rows are stable-sorted, so among equal keys the later index wins
    order = np.lexsort((batch.index, batch.ts, batch.device))
    batch = batch.take(order)
    later_same = np.zeros(len(batch.ts), bool)
    later_same[:-1] = (batch.device[1:] == batch.device[:-1]) & (batch.ts[1:] == batch.ts[:-1])
    duplicates.update(batch.index[later_same].tolist())
    return batch.take(np.flatnonzero(~later_same))


# --- applying a batch ---------------------------------------------------------------------------


@dataclass
class _Writes:
    """What one batch changes, gathered over its rounds."""

    created: set[int] = field(default_factory=set)  # row indexes
    updated: set[int] = field(default_factory=set)
    duplicate: set[int] = field(default_factory=set)
    flags: dict[int, SampleFlag] = field(default_factory=dict)
    touched: set[tuple[int, int]] = field(default_factory=set)  # (plant, 15-minute bucket start)
    samples_written: int = 0
    # every sample of the windows judged, as now stored: (device, ts, interval, power, irradiance) arrays
    known: list[tuple[np.ndarray, ...]] = field(default_factory=list)
    windows: list[tuple[int, int, int]] = field(default_factory=list)  # (device, lo, hi)
    devices_of: dict[int, list[int]] = field(default_factory=dict)  # plant -> every device of it
    # device ids, ascending, and the plant of each: plants of many devices by bisection
    device_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    device_plants: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def know_devices(self, plant_of: Mapping[int, int]) -> None:
        self.device_ids = np.array(sorted(plant_of), np.int64)
        self.device_plants = np.array([plant_of[d] for d in self.device_ids.tolist()], np.int64)
        for device, plant in plant_of.items():
            self.devices_of.setdefault(plant, []).append(device)

    def plants(self, devices: np.ndarray) -> np.ndarray:
        """The plant of each of these devices (all of them known)."""
        return self.device_plants[np.searchsorted(self.device_ids, devices)]

    def touch(self, devices: np.ndarray, ts_us: np.ndarray) -> None:
        """The 15-minute buckets of these samples' plants need their rollups recomputed."""
        key = np.unique(self.plants(devices) * (1 << 40) + quarter_of(ts_us) // QUARTER_US)
        self.touched.update(zip((key >> 40).tolist(), ((key & ((1 << 40) - 1)) * QUARTER_US).tolist()))


def _windows(batch: _Batch) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Runs of one device's samples no further apart than WINDOW_GAP_US.

    Returns (window of each row, device, lo, hi, round) — the round is the window's place among
    its device's windows, so that windows of one device are judged one after another.
    """
    n = len(batch.ts)
    starts = np.ones(n, bool)
    starts[1:] = (batch.device[1:] != batch.device[:-1]) | (batch.ts[1:] - batch.ts[:-1] > WINDOW_GAP_US)
    window = np.cumsum(starts) - 1
    first, = np.nonzero(starts)
    last = np.append(first[1:] - 1, n - 1)
    device = batch.device[first]
    new_device = np.ones(len(first), bool)
    new_device[1:] = device[1:] != device[:-1]
    device_start = np.maximum.accumulate(np.where(new_device, np.arange(len(first)), 0))
    rounds = np.arange(len(first)) - device_start
    return window, device, batch.ts[first], batch.ts[last], rounds


def _same_values(stored: StoredSamples, i: int, batch: _Batch, j: int) -> bool:
    return (stored.power_w[i] == batch.power[j] and stored.energy_wh[i] == batch.energy[j]
            and stored.status[i] == batch.status[j] and stored.irradiance_w_m2[i] == batch.irradiance[j]
            and stored.device_ts_us[i] == batch.device_ts[j])


@dataclass
class _RowMatch:
    """Batch rows of a round's windows, sorted against the samples stored at their keys.

    Row numbers are into the batch (``*_rows``) and into the stored samples (``duplicate_of``,
    ``replaced``).
    """

    new_rows: np.ndarray  # no stored sample at the key
    duplicate_rows: np.ndarray  # the same values as stored: nothing written
    duplicate_of: np.ndarray
    updated_rows: np.ndarray  # other values than stored: the stored sample is replaced
    replaced: np.ndarray


def _match_stored(stored: StoredSamples, batch: _Batch, batch_window: np.ndarray,
                  window_ids: np.ndarray) -> _RowMatch:
    # stored rows at the batch's keys: duplicates stay as stored, others are replaced
    rows = np.flatnonzero(np.isin(batch_window, window_ids))
    match = np.full(len(rows), -1, np.int64)  # the stored row under each batch row's key
    if len(stored):
        stored_at = {k: i for i, k in enumerate(zip(stored.device.tolist(), stored.ts_us.tolist()))}
        match[:] = [stored_at.get(k, -1) for k in zip(batch.device[rows].tolist(), batch.ts[rows].tolist())]
    found = np.flatnonzero(match >= 0)
    same = np.array([_same_values(stored, i, batch, j) for i, j in zip(match[found].tolist(), rows[found].tolist())],
                    bool)
    return _RowMatch(new_rows=rows[match < 0], duplicate_rows=rows[found[same]], duplicate_of=match[found[same]],
                     updated_rows=rows[found[~same]], replaced=match[found[~same]])


def _window_sequences(stored: StoredSamples, batch: _Batch, batch_window: np.ndarray, window_ids: np.ndarray,
                      kept: np.ndarray, written: np.ndarray) -> tuple[np.ndarray, ...]:
    """One sequence per window: stored rows ``kept`` and batch rows ``written``, in time order.

    Returns (group, ts_us, energy_wh, source, row): the window's place in ``window_ids``, the
    sample's time and counter, 0 for a stored row and 1 for a batch row, and its row number there.
    """
    # (window_ids is ascending, so a window's place in it is found by bisection)
    seq_group = np.concatenate([np.searchsorted(window_ids, stored.key[kept]),
                                np.searchsorted(window_ids, batch_window[written])]).astype(np.int64)
    seq_ts = np.concatenate([stored.ts_us[kept], batch.ts[written]])
    seq_energy = np.concatenate([stored.energy_wh[kept], batch.energy[written]])
    seq_source = np.concatenate([np.zeros(len(kept), np.int64), np.ones(len(written), np.int64)])
    seq_row = np.concatenate([kept, written])
    order = np.lexsort((seq_ts, seq_group))
    return seq_group[order], seq_ts[order], seq_energy[order], seq_source[order], seq_row[order]


async def _rederive_following(store: TelemetryStore, keys: list[int], devices: np.ndarray, after: np.ndarray,
                              next_lo: np.ndarray, state_after: CounterState,
                              limit: np.ndarray) -> list[tuple[np.ndarray, ...]]:
    """Recompute the stored samples after each window whose reference changed.

    It goes on until one is a non-dip both before and after (from there on, nothing downstream
    depends on this batch). ``devices``, ``after`` and ``next_lo`` are per window of ``keys``;
    ``state_after`` is updated in place. Returns (device, ts, interval, flags) of the samples
    whose derived figures changed, one tuple per step.
    """
    local = {k: pos for pos, k in enumerate(keys)}
    changed = []
    pending = list(range(len(keys)))
    after = after.copy()
    while pending:
        found = await store.next_counter_samples([keys[p] for p in pending], devices[pending].tolist(),
                                                 after[pending].tolist(), next_lo[pending].tolist())
        if not len(found):
            break
        groups = np.array([local[int(k)] for k in found.key.tolist()], np.int64)
        order = np.argsort(groups)
        groups = groups[order]
        sub = CounterState(state_after.ts_us[groups], state_after.energy_wh[groups], state_after.present[groups])
        iv, fl, sub_after = interval_energies(np.arange(len(groups)), found.ts_us[order], found.energy_wh[order],
                                              sub, limit[groups])
        new_fl = (found.flags[order] & int(SampleFlag.CLOCK_SKEW)) | fl
        diff = (new_fl != found.flags[order]) | (iv != found.interval_wh[order])
        changed.append((found.device[order][diff], found.ts_us[order][diff], iv[diff], new_fl[diff]))
        pending = []
        was_dip = (found.flags[order] & int(SampleFlag.COUNTER_DIP)) != 0
        is_dip = (fl & int(SampleFlag.COUNTER_DIP)) != 0
        for pos, grp in enumerate(groups.tolist()):
            state_after.ts_us[grp] = sub_after.ts_us[pos]
            state_after.energy_wh[grp] = sub_after.energy_wh[pos]
            state_after.present[grp] = sub_after.present[pos]
            if was_dip[pos] or is_dip[pos]:
                pending.append(grp)
                after[grp] = found.ts_us[order][pos]
    return changed


async def _write_batch_rows(store: TelemetryStore, batch: _Batch, write_rows: np.ndarray, received_us: int,
                            flags: np.ndarray, interval: np.ndarray, is_new: np.ndarray, writes: _Writes) -> None:
    """Store the batch rows ``write_rows`` with their derived flags and interval energy [Wh]."""
    if not len(write_rows):
        return
    await store.upsert_samples(batch.device[write_rows], batch.ts[write_rows], received_us, batch.power[write_rows],
                               batch.energy[write_rows], batch.status[write_rows].tolist(),
                               flags, interval, batch.irradiance[write_rows],
                               batch.device_ts[write_rows], new=is_new[write_rows])
    writes.samples_written += len(write_rows)
    flagged = np.flatnonzero(flags)
    for j, f in zip(write_rows[flagged].tolist(), flags[flagged].tolist()):
        writes.flags[int(batch.index[j])] = SampleFlag(f)
    writes.touch(batch.device[write_rows], batch.ts[write_rows])


async def _apply_round(store: TelemetryStore, batch: _Batch, batch_window: np.ndarray, window_ids: np.ndarray,
                       w_dev: np.ndarray, w_lo: np.ndarray, w_hi: np.ndarray, next_lo: np.ndarray,
                       limit_of: dict[int, float], received_us: int, writes: _Writes) -> None:
    """Judge and write the windows ``window_ids`` (at most one per device)."""
    keys = window_ids.tolist()
    stored = await store.window_samples(keys, w_dev[window_ids].tolist(), w_lo[window_ids].tolist(),
                                        w_hi[window_ids].tolist())
    refs = await store.references_before(keys, w_dev[window_ids].tolist(), w_lo[window_ids].tolist())
    local = {k: pos for pos, k in enumerate(keys)}  # window -> group 0..g-1
    state = CounterState.empty(len(keys))
    for k, (ts, energy) in refs.items():
        state.ts_us[local[k]], state.energy_wh[local[k]], state.present[local[k]] = ts, energy, True
    limit = np.array([limit_of[int(w_dev[k])] for k in keys], float)

    m = _match_stored(stored, batch, batch_window, window_ids)
    writes.created.update(batch.index[m.new_rows].tolist())
    writes.duplicate.update(batch.index[m.duplicate_rows].tolist())
    writes.updated.update(batch.index[m.updated_rows].tolist())
    kept_mask = np.ones(len(stored), bool)
    kept_mask[m.replaced] = False
    kept = np.flatnonzero(kept_mask)
    b = np.sort(np.concatenate([m.new_rows, m.updated_rows]))
    is_new = np.zeros(len(batch.ts), bool)
    is_new[m.new_rows] = True
    seq_group, seq_ts, seq_energy, seq_source, seq_row = _window_sequences(stored, batch, batch_window, window_ids,
                                                                           kept, b)
    interval, counter_flags, state_after = interval_energies(seq_group, seq_ts, seq_energy, state, limit)

    # batch rows to write, with their derived figures
    is_batch = seq_source == 1
    write_rows = seq_row[is_batch]
    written_flags = batch.flags[write_rows] | counter_flags[is_batch]
    written_interval = interval[is_batch]
    # stored rows whose derived figures changed
    st = seq_row[~is_batch]
    new_flags = (stored.flags[st] & int(SampleFlag.CLOCK_SKEW)) | counter_flags[~is_batch]
    changed = (new_flags != stored.flags[st]) | (interval[~is_batch] != stored.interval_wh[st])
    updates = [(stored.device[st[changed]], stored.ts_us[st[changed]], interval[~is_batch][changed],
                new_flags[changed])]
    updates += await _rederive_following(store, keys, w_dev[window_ids], w_hi[window_ids], next_lo[window_ids],
                                         state_after, limit)

    await _write_batch_rows(store, batch, write_rows, received_us, written_flags, written_interval, is_new, writes)
    upd = tuple(np.concatenate(column) for column in zip(*updates))
    if len(upd[0]):
        await store.update_derived(*upd)
        writes.touch(upd[0], upd[1])
    # the windows' samples as they now are, so that their buckets need not be read back
    writes.known.append((np.concatenate([stored.device[st], batch.device[write_rows]]),
                         np.concatenate([stored.ts_us[st], batch.ts[write_rows]]),
                         np.concatenate([interval[~is_batch], written_interval]),
                         np.concatenate([stored.power_w[st], batch.power[write_rows]]),
                         np.concatenate([stored.irradiance_w_m2[st], batch.irradiance[write_rows]])))
    writes.windows += list(zip(w_dev[window_ids].tolist(), w_lo[window_ids].tolist(), w_hi[window_ids].tolist()))
    # flags of duplicates as stored, so that a re-sent batch reports what the first one did
    for j, i in zip(m.duplicate_rows.tolist(), m.duplicate_of.tolist()):
        if stored.flags[i]:
            writes.flags[int(batch.index[j])] = SampleFlag(int(stored.flags[i]))


def _runs(touched: set[tuple[int, int]]) -> tuple[list[int], list[int], list[int]]:
    """Touched (plant, bucket) pairs as runs of consecutive buckets: (plant, after, until) with
    the samples of the run's buckets in ``after < ts <= until``."""
    plants: list[int] = []
    after: list[int] = []
    until: list[int] = []
    for plant, bucket in sorted(touched):
        if plants and plants[-1] == plant and until[-1] == bucket:
            until[-1] = bucket + QUARTER_US
        else:
            plants.append(plant)
            after.append(bucket)
            until.append(bucket + QUARTER_US)
    return plants, after, until


async def _bucket_samples(store: TelemetryStore, touched: set[tuple[int, int]], writes: _Writes | None):
    """Every sample of the touched buckets: (plant, device, ts, interval, power, irradiance) arrays.

    Without ``writes`` all are read. With it, the samples of the windows the batch judged are
    taken as they are known (the batch's own and the stored ones around them, every one of them
    loaded or written just now) and only the rest of each touched bucket is read.
    """
    plants, after, until = _runs(touched)
    if writes is None or not writes.known:
        found = await store.bucket_samples(plants, after, until)
        return found.plant, found.device, found.ts_us, found.interval_wh, found.power_w, found.irradiance_w_m2
    windows: dict[int, list[tuple[int, int]]] = {}
    for device, lo, hi in writes.windows:
        windows.setdefault(device, []).append((lo, hi))
    devices_of = writes.devices_of
    pieces: tuple[list[int], list[int], list[int]] = ([], [], [])
    for plant, start, end in zip(plants, after, until):
        for device in devices_of.get(plant, []):
            cursor = start  # the pieces of (start, end] outside the device's windows [lo, hi]
            for lo, hi in sorted(windows.get(device, [])):
                if hi <= cursor or lo > end:
                    continue
                if lo - 1 > cursor:
                    pieces[0].append(device), pieces[1].append(cursor), pieces[2].append(lo - 1)
                cursor = max(cursor, hi)
            if end > cursor:
                pieces[0].append(device), pieces[1].append(cursor), pieces[2].append(end)
    rest = await store.device_samples(*pieces)
    device = np.concatenate([k[0] for k in writes.known])
    ts = np.concatenate([k[1] for k in writes.known])
    plant = writes.plants(device)
    wanted = np.array([p * (1 << 40) + b // QUARTER_US for p, b in touched], np.int64)
    inside = np.isin(plant * (1 << 40) + quarter_of(ts) // QUARTER_US, wanted)
    rest_plant = writes.plants(rest.device)
    return (np.concatenate([plant[inside], rest_plant]), np.concatenate([device[inside], rest.device]),
            np.concatenate([ts[inside], rest.ts_us]),
            np.concatenate([np.concatenate([k[2] for k in writes.known])[inside], rest.interval_wh]),
            np.concatenate([np.concatenate([k[3] for k in writes.known])[inside], rest.power_w]),
            np.concatenate([np.concatenate([k[4] for k in writes.known])[inside], rest.irradiance_w_m2]))


async def _recompute_rollups(store: TelemetryStore, touched: set[tuple[int, int]],
                             writes: _Writes | None = None) -> None:
    """Recompute the touched 15-minute buckets from their samples, and carry the change into
    their days and months."""
    if not touched:
        return
    quarters = quarter_rollups(*await _bucket_samples(store, touched, writes))
    old = await store.replace_quarters(quarters)
    days = rollup_changes(quarters, old, local_day_of)
    months = rollup_changes(quarters, old, local_month_of_quarter)
    # the changes that add up, days and months in one statement; a month recomputed below reads
    # its days, which are complete once the days to recompute are
    add_day, add_month = ~days.recompute, ~months.recompute
    await store.add_to_rollups(
        np.repeat(np.array(["day", "month"]), [int(add_day.sum()), int(add_month.sum())]),
        *(np.concatenate([getattr(days, name)[add_day], getattr(months, name)[add_month]])
          for name in ("plant", "bucket_us", "energy_wh", "samples", "max_power_w", "irradiation_wh_m2",
                       "has_irradiation")))
    for granularity, source, change, end_of in (("day", "15m", days, lambda start: start + DAY_US),
                                                ("month", "day", months, next_local_month)):
        redo = change.recompute
        if redo.any():
            await store.aggregate(source, granularity, change.plant[redo].tolist(), change.bucket_us[redo].tolist(),
                                  end_of(change.bucket_us[redo]).tolist())


async def _apply(store: TelemetryStore, batch: _Batch, devices: dict[str, _Device], received_us: int,
                 received_from: str) -> _Writes:
    writes = _Writes()
    plant_of = {d.id: d.plant_id for d in devices.values()}
    limit_of = {d.id: d.limit_w for d in devices.values()}
    # the plants' devices as loaded just before: a device is added by staff, not while it reports
    writes.know_devices(plant_of)
    await store.lock_plants(np.unique(writes.plants(batch.device)).tolist())
    batch_window, w_dev, w_lo, w_hi, w_round = _windows(batch)
    # the next window of the same device bounds how far a window's changes may reach
    next_lo = np.full(len(w_dev), FAR_FUTURE_US, np.int64)
    same = np.flatnonzero(w_dev[1:] == w_dev[:-1])
    next_lo[same] = w_lo[same + 1]
    for r in range(int(w_round.max()) + 1 if len(w_round) else 0):
        await _apply_round(store, batch, batch_window, np.flatnonzero(w_round == r), w_dev, w_lo, w_hi, next_lo,
                           limit_of, received_us, writes)
    await _recompute_rollups(store, writes.touched, writes)
    if writes.samples_written or writes.touched:
        await audit.record(received_from[:64], "IngestTelemetry", "telemetry_batch", uuid.uuid4().hex,
                           after={"created": len(writes.created), "updated": len(writes.updated),
                                  "duplicates": len(writes.duplicate), "flagged": len(writes.flags),
                                  "from": us_to_datetime(int(batch.ts.min())), "to": us_to_datetime(int(batch.ts.max())),
                                  "plants": len({p for p, _ in writes.touched})},
                           using_db=store.conn)
    return writes


# --- the service --------------------------------------------------------------------------------


async def ingest_samples(rows: Sequence[object], *, received_from: str, now: dt.datetime | None = None,
                         redis: redis_asyncio.Redis | None = None, namespace: Namespace | None = None,
                         device_serial: str | None = None, publisher: LivePublisher | None = None) -> TelemetryResult:
    """Take a batch of telemetry samples: keep the good rows, report every row's outcome.

    The rules (clock skew, duplicates, late data, counters, rollups) are in the module docstring.

    Parameters
    ----------
    rows : sequence of mapping
        ``{"device", "ts", "power_w" [W], "energy_wh" [Wh, lifetime counter], "status",
        "irradiance_w_m2" [W/m²]}``, at most ``MAX_BATCH_SAMPLES``.
    received_from : str
        Who sent it, for the audit trail: ``collector:<name>``.
    now : datetime, optional
        The receive time (stored as ``received_at``, and the clock skew is judged against it);
        defaults to the current time.
    redis, namespace : optional
        Where to publish the plants' live state (settlement/telemetry/live.py) after the batch is stored;
        without them nothing is published.
    device_serial : str, optional
        The device all rows are from (MQTT: from the topic); a row naming another is refused.
    publisher : LivePublisher, optional
        Publishes the live state after this call returns instead of before (``redis`` and
        ``namespace`` are then not needed).

    Returns
    -------
    TelemetryResult
        One status per row: created, updated, duplicate or rejected (with a code and a message
        naming the row and the field); the flags noticed per row; the plants touched.

    Raises
    ------
    InvalidInput
        More than ``MAX_BATCH_SAMPLES`` rows (code ``too_many_samples``).
    """
    rows = list(rows)
    if len(rows) > MAX_BATCH_SAMPLES:
        raise InvalidInput(f"a batch holds at most {MAX_BATCH_SAMPLES} samples, not {len(rows)}: send it in parts",
                           code="too_many_samples", params={"limit": MAX_BATCH_SAMPLES})
    now = utc_now() if now is None else (now if now.tzinfo else now.replace(tzinfo=LOCAL))
    received_us = datetime_to_us(now)
    refused: dict[int, RowError] = {}
    parsed = _parse(rows, device_serial, refused)
    devices = await _load_devices(parsed.serial) if parsed.index else {}
    in_batch_duplicates: set[int] = set()
    batch = _build_batch(parsed, devices, received_us, refused, in_batch_duplicates)
    writes = _Writes()
    if len(batch.ts):
        async with in_transaction() as conn:
            writes = await _apply(TelemetryStore(conn), batch, devices, received_us, received_from)
    plants = tuple(sorted({p for p, _ in writes.touched}))
    result = TelemetryResult(statuses=_row_statuses(len(rows), refused, writes), errors=refused, flags=writes.flags,
                             plants=plants)
    if plants and (publisher is not None or (redis is not None and namespace is not None)):
        await _publish_recent(writes, received_us, now, publisher, redis, namespace)
    return result


def _row_statuses(n_rows: int, refused: dict[int, RowError], writes: _Writes) -> list[RowStatus]:
    statuses = []
    for i in range(n_rows):
        if i in refused:
            statuses.append(RowStatus.REJECTED)
        elif i in writes.created:
            statuses.append(RowStatus.CREATED)
        elif i in writes.updated:
            statuses.append(RowStatus.UPDATED)
        else:
            statuses.append(RowStatus.DUPLICATE)
    return statuses


async def _publish_recent(writes: _Writes, received_us: int, now: dt.datetime, publisher: LivePublisher | None,
                          redis: redis_asyncio.Redis | None, namespace: Namespace | None) -> None:
    """Publish the live state of the plants whose touched buckets are recent enough to show live."""
    recent = {plant for plant, bucket in writes.touched
              if bucket + QUARTER_US >= received_us - LIVE_WITHIN_US}
    if recent and publisher is not None:
        publisher.request(recent, now)
    elif recent:
        await publish_live_states(redis, namespace, sorted(recent), now)


# --- repair ---------------------------------------------------------------------------------


async def rebuild_rollups(plant_ids: Sequence[int], *, plants_per_transaction: int = 20) -> dict[str, int]:
    """Recompute these plants' interval energies from their counters and their rollups from scratch.

    For samples stored without this service (the synthetic seed, a bulk import) and as a repair:
    the result is what ingesting the same samples would have left. Each group of plants is done in
    one transaction under the plants' locks, so it can run beside live ingest.

    Returns
    -------
    dict
        ``{"plants", "samples", "samples_changed", "quarter_rollups"}``.
    """
    done = {"plants": 0, "samples": 0, "samples_changed": 0, "quarter_rollups": 0}
    ids = sorted({int(p) for p in plant_ids})
    for start in range(0, len(ids), plants_per_transaction):
        chunk = ids[start:start + plants_per_transaction]
        async with in_transaction() as conn:
            store = TelemetryStore(conn)
            await store.lock_plants(chunk)
            devices = await store.devices_of_plants(chunk)
            if not devices:
                continue
            device_ids = [d for d, _, _, _ in devices]
            limit = np.array([float(rated) if rated else float(capacity or 0) * 1000.0
                              for _, _, rated, capacity in devices], float)
            keys = list(range(len(device_ids)))
            stored = await store.window_samples(keys, device_ids, [datetime_to_us(EARLIEST_TS)] * len(keys),
                                                [FAR_FUTURE_US] * len(keys))
            order = np.lexsort((stored.ts_us, stored.key))
            interval, counter_flags, _ = interval_energies(stored.key[order], stored.ts_us[order],
                                                           stored.energy_wh[order], CounterState.empty(len(keys)),
                                                           limit)
            flags = (stored.flags[order] & int(SampleFlag.CLOCK_SKEW)) | counter_flags
            changed = (flags != stored.flags[order]) | (interval != stored.interval_wh[order])
            await store.update_derived(stored.device[order][changed], stored.ts_us[order][changed],
                                       interval[changed], flags[changed])
            await store.delete_rollups(chunk)
            plant_of = {d: p for d, p, _, _ in devices}
            touched = set(zip((plant_of[int(d)] for d in stored.device.tolist()), quarter_of(stored.ts_us).tolist()))
            await _recompute_rollups(store, touched)
            done["plants"] += len({p for _, p, _, _ in devices})
            done["samples"] += len(stored)
            done["samples_changed"] += int(changed.sum())
        done["quarter_rollups"] += len(touched)
    return done


# --- live state ---------------------------------------------------------------------------------


def local_day_start(at: dt.datetime) -> dt.datetime:
    """00:00 Asia/Shanghai of the local day holding ``at``, in UTC."""
    local = at.astimezone(LOCAL)
    return dt.datetime.combine(local.date(), dt.time(), LOCAL).astimezone(UTC)


def _kwh_text(wh: int) -> str:
    return str((Decimal(wh) / 1000).quantize(Decimal("0.001")))


async def plant_states(plant_ids: Sequence[int], now: dt.datetime | None = None) -> dict[int, dict]:
    """The live state of each plant from the database, as published (settlement/telemetry/live.py).

    Returns
    -------
    dict
        ``{plant_id: {"ts": ISO 8601 UTC of the latest sample, "power_w": W, "today_kwh": decimal
        text, "status": "ok" | "standby" | "fault", "devices": how many reported}}`` for the plants
        with samples. ``power_w`` adds the latest power of each device whose latest sample is at
        most 15 minutes older than the plant's latest; ``status`` is "fault" when any device's
        latest sample says so; ``today_kwh`` is the energy since 00:00 local time of ``now``.
    """
    now = now or utc_now()
    store = TelemetryStore(connections.get("default"))
    latest = await store.latest_per_device(plant_ids)
    today = await store.rollup_energy("day", plant_ids, datetime_to_us(local_day_start(now)))
    per_plant: dict[int, list[tuple[int, int, str]]] = {}
    for plant, _device, ts, power, status in latest:
        per_plant.setdefault(plant, []).append((ts, power, status))
    states = {}
    for plant, devices in per_plant.items():
        newest = max(ts for ts, _, _ in devices)
        power = sum(p for ts, p, _ in devices if p != NULL and ts >= newest - LIVE_POWER_WINDOW_US)
        statuses = [s for ts, _, s in devices if ts >= newest - LIVE_POWER_WINDOW_US]
        status = DeviceStatus.FAULT if DeviceStatus.FAULT in statuses else (
            DeviceStatus.OK if DeviceStatus.OK in statuses else DeviceStatus.STANDBY)
        states[plant] = {"ts": us_to_datetime(newest).isoformat(), "power_w": int(power),
                         "today_kwh": _kwh_text(today.get(plant, 0)), "status": str(status),
                         "devices": len(devices)}
    return states


async def publish_live_states(redis: redis_asyncio.Redis, namespace: Namespace, plant_ids: Sequence[int],
                              now: dt.datetime | None = None) -> int:
    """Publish the live state of these plants (settlement/telemetry/live.py); returns how many were published."""
    states = await plant_states(plant_ids, now)
    for start in range(0, len(states), PUBLISH_CHUNK):
        chunk = dict(itertools.islice(states.items(), start, start + PUBLISH_CHUNK))
        await live.publish_states(redis, namespace, chunk)
    return len(states)


class LivePublisher:
    """Publishes plants' live state after their batches, off the caller's path.

    The HTTP ingest answers a batch once it is stored; the plants it touched are handed here and
    published (:func:`publish_live_states`, which reads their state as committed) by one task
    of the process, one publication after another. Plants asked for while a publication runs go
    out together in the next one, each with its state as it is then, so a state is never older
    than the last batch committed before its publication started. A publication that fails is
    logged; the plants' next batch publishes them again.
    """

    def __init__(self, redis: redis_asyncio.Redis, namespace: Namespace):
        self._redis, self._namespace = redis, namespace
        self._pending: dict[int, dt.datetime] = {}  # plant -> the latest receive time asked for
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="pvsettle-live-publisher")

    def request(self, plant_ids: Iterable[int], now: dt.datetime) -> None:
        for plant in plant_ids:
            self._pending[plant] = max(now, self._pending.get(plant, now))
        self._wake.set()

    async def _publish_pending(self) -> None:
        pending, self._pending = self._pending, {}
        if pending:
            await publish_live_states(self._redis, self._namespace, sorted(pending), max(pending.values()))

    async def _run(self) -> None:
        while True:
            await background.wait(self._wake)  # a cancellation lost in the last publication stops it here
            self._wake.clear()
            try:
                await self._publish_pending()
            except Exception:  # Redis or the database away for a moment: the next batch publishes again
                log.exception("live state not published")

    async def close(self) -> None:
        """Publish what is still pending, then stop."""
        await background.stop(self._task)
        try:
            await self._publish_pending()
        except Exception as exc:  # the database or Redis may already be closed at shutdown
            log.warning("live state of %d plants not published at shutdown: %s", len(self._pending), exc)
