"""The SQL of the telemetry service, for PostgreSQL and for SQLite, inside the caller's transaction.

The telemetry path moves tens of thousands of rows per second, so it speaks SQL directly instead
of building model instances: on PostgreSQL every statement takes whole columns as arrays
(``unnest``) and converts times in the database (exact integer microseconds both ways); on
SQLite the same statements join a ``VALUES`` list and times are tortoise's own UTC text
(``str(datetime)``), so the ORM reads back exactly what is written here.

Times cross this module as int64 microseconds since the Unix epoch (UTC); a missing number as
:data:`settlement.telemetry.energy.NULL`.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from settlement.telemetry.energy import NULL, QUARTER_US, QuarterRollups, SampleFlag
from settlement.clock import UTC

EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = dt.timedelta(microseconds=1)
# rows per VALUES list on SQLite: well below its 32 766 bound variables
SQLITE_CHUNK = 2_000


def us_to_datetime(us: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=int(us))


def datetime_to_us(at: dt.datetime) -> int:
    return (at.astimezone(UTC) - EPOCH) // ONE_US


def _pg_ts(expr: str) -> str:
    return f"(to_timestamp(0) + ({expr}) * interval '1 microsecond')"


def _pg_us(expr: str) -> str:
    return f"(extract(epoch from {expr}) * 1000000)::bigint"


def _text(us: int) -> str:
    return str(us_to_datetime(us))


def _text_or_none(us: int) -> str | None:
    return None if us == NULL else _text(us)


def _us_of_text(value: Any) -> int:
    if value is None:
        return NULL
    if isinstance(value, dt.datetime):
        return datetime_to_us(value)
    return datetime_to_us(dt.datetime.fromisoformat(value))


def _none(value: int) -> int | None:
    return None if value == NULL else int(value)


def _nones(values: np.ndarray) -> list[int | None]:
    """``NULL`` as None, for the database."""
    return [None if v == NULL else v for v in values.tolist()]


def _or_null(value: Any) -> int:
    return NULL if value is None else int(value)


def _chunks(items: Sequence, size: int = SQLITE_CHUNK) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


# not under ANY(): there the planner turns a constant array into a hash table, which a cast of
# text it does not fold would forgo (a lookup per row and element)
_INTEGER_ARRAY = re.compile(r"(?<!ANY\()\$(\d+)::(int|bigint|smallint)\[\]")
_rewritten: dict[str, tuple[str, frozenset[int]]] = {}


def _integer_arrays_as_text(sql: str, params: Sequence) -> tuple:
    """PostgreSQL: integer array parameters sent as array literals (``'{1,2,3}'``) and cast there.

    asyncpg encodes a list element by element with an abstract-class check each, which costs the
    client more than the statement costs the server for the arrays of a telemetry batch; joining
    the numbers as text costs a tenth of that. Each statement's rewriting is kept.
    """
    found = _rewritten.get(sql)
    if found is None:
        positions = frozenset(int(m.group(1)) for m in _INTEGER_ARRAY.finditer(sql))
        found = (_INTEGER_ARRAY.sub(r"($\1::text)::\2[]", sql), positions)
        _rewritten[sql] = found
    text, positions = found
    values = [("{" + ",".join(map(str, p)) + "}") if i + 1 in positions else p for i, p in enumerate(params)]
    return (text, *values)


#: PostgreSQL's binary COPY: its header (signature, flags, extension length) and trailer.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_COPY_TRAILER = b"\xff\xff"
#: PostgreSQL counts time from 2000-01-01 UTC [µs since the Unix epoch].
_PG_EPOCH_US = 946_684_800_000_000
_BINARY_TYPES = {"int2": ">i2", "int4": ">i4", "int8": ">i8", "timestamptz": ">i8"}


def binary_copy(columns: Sequence[tuple[str, Any]]) -> bytes:
    """Rows in PostgreSQL's binary ``COPY`` format, built a column at a time.

    Parameters
    ----------
    columns : sequence of (type, values)
        ``type`` is ``int2``, ``int4``, ``int8``, ``timestamptz`` (values int64 µs since the Unix
        epoch) or ``text`` (values a list of str); numbers are int64 arrays with :data:`NULL`
        for a missing value. Every column has one value per row.

    Each tuple of the format is a field count and, per field, a length and the bytes (length -1:
    NULL). Rows whose NULLs and texts agree have the same layout, so each such group is one numpy
    record array; the groups follow one another (the order of rows in a COPY does not matter).
    """
    n = len(columns[0][1])
    key = np.zeros(n, np.int64)
    for kind, values in columns:
        if kind == "text":
            distinct = sorted(set(values))
            code = {v: c for c, v in enumerate(distinct)}
            key = key * (len(distinct) + 1) + np.array([code[v] for v in values], np.int64)
        else:
            key = key * 2 + (np.asarray(values) == NULL)
    parts = [_COPY_HEADER]
    for group in np.unique(key):
        rows = np.flatnonzero(key == group)
        layout: list[tuple[str, str]] = [("fields", ">i2")]
        fill: list[tuple[str, Any]] = [("fields", len(columns))]
        for i, (kind, values) in enumerate(columns):
            if kind == "text":
                data = values[rows[0]].encode()
                layout.append((f"l{i}", ">i4"))
                fill.append((f"l{i}", len(data)))
                if data:
                    layout.append((f"v{i}", f"S{len(data)}"))
                    fill.append((f"v{i}", data))
                continue
            column = np.asarray(values)[rows]
            if column[0] == NULL:
                layout.append((f"l{i}", ">i4"))
                fill.append((f"l{i}", -1))
                continue
            layout += [(f"l{i}", ">i4"), (f"v{i}", _BINARY_TYPES[kind])]
            fill += [(f"l{i}", np.dtype(_BINARY_TYPES[kind]).itemsize),
                     (f"v{i}", column - _PG_EPOCH_US if kind == "timestamptz" else column)]
        out = np.zeros(len(rows), np.dtype(layout))
        for name, value in fill:
            out[name] = value
        parts.append(out.tobytes())
    parts.append(_COPY_TRAILER)
    return b"".join(parts)


@dataclass
class StoredSamples:
    """Stored samples as columns; ``key`` is the caller's window index of each row."""

    key: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    device: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    ts_us: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    power_w: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    energy_wh: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    status: list[str] = field(default_factory=list)
    flags: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    interval_wh: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    irradiance_w_m2: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    device_ts_us: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence]) -> StoredSamples:
        """Rows of (key, device, ts_us, power, energy, status, flags, interval, irradiance, device_ts_us)."""
        if not rows:
            return cls()
        cols = list(zip(*rows))

        def ints(values) -> np.ndarray:
            return np.array([NULL if v is None else v for v in values], np.int64)

        return cls(key=ints(cols[0]), device=ints(cols[1]), ts_us=ints(cols[2]), power_w=ints(cols[3]),
                   energy_wh=ints(cols[4]), status=list(cols[5]), flags=ints(cols[6]), interval_wh=ints(cols[7]),
                   irradiance_w_m2=ints(cols[8]), device_ts_us=ints(cols[9]))

    def __len__(self) -> int:
        return len(self.ts_us)


@dataclass
class BucketSamples:
    """The samples of some plants' buckets, for recomputing their rollups."""

    plant: np.ndarray
    device: np.ndarray
    ts_us: np.ndarray
    interval_wh: np.ndarray
    power_w: np.ndarray
    irradiance_w_m2: np.ndarray


SAMPLE_COLUMNS_COPY = ("device_id", "ts", "received_at", "power_w", "energy_wh", "status", "flags", "interval_wh",
                       "irradiance_w_m2", "device_ts")
SAMPLE_COLUMNS = ("device_id", "ts", "power_w", "energy_wh", "status", "flags", "interval_wh",
                  "irradiance_w_m2", "device_ts")


class TelemetryStore:
    """The telemetry SQL on one connection (normally the caller's transaction)."""

    def __init__(self, conn: Any):
        self.conn = conn
        self.postgres = conn.capabilities.dialect == "postgres"

    async def _fetch(self, sql: str, params: Sequence = ()) -> list:
        async with self.conn.acquire_connection() as raw:
            if self.postgres:
                return await raw.fetch(*_integer_arrays_as_text(sql, params))
            return list(await raw.execute_fetchall(sql, list(params)))

    async def _execute(self, sql: str, params: Sequence = ()) -> None:
        async with self.conn.acquire_connection() as raw:
            if self.postgres:
                await raw.execute(*_integer_arrays_as_text(sql, params))
            else:
                await raw.execute(sql, list(params))

    async def _execute_many(self, sql: str, rows: Sequence[Sequence]) -> None:
        if not rows:
            return
        async with self.conn.acquire_connection() as raw:
            await raw.executemany(sql, rows)

    async def devices(self, serials: Sequence[str]) -> list[tuple[int, str, int, int | None, Any]]:
        """(id, serial, plant id, rated power [W], plant capacity [kWp]) of the devices with these
        serials and of every other device of their plants."""
        rows: list = []
        if not serials:
            return rows
        columns = "d.id, d.serial, d.plant_id, d.rated_power_w, p.capacity_kwp"
        if self.postgres:
            rows = await self._fetch(
                f"SELECT {columns} FROM telemetry_device d JOIN plant p ON p.id = d.plant_id WHERE d.plant_id IN "
                "(SELECT x.plant_id FROM telemetry_device x WHERE x.serial = ANY($1::text[]))", [list(serials)])
        else:
            for chunk in _chunks(list(serials)):
                marks = ",".join("?" * len(chunk))
                rows += await self._fetch(
                    f"SELECT {columns} FROM telemetry_device d JOIN plant p ON p.id = d.plant_id WHERE d.plant_id IN "
                    f"(SELECT x.plant_id FROM telemetry_device x WHERE x.serial IN ({marks}))", list(chunk))
        return list({r[0]: tuple(r) for r in rows}.values())

    async def devices_of_plants(self, plant_ids: Sequence[int]) -> list[tuple[int, int, int | None, Any]]:
        """(id, plant id, rated power [W], plant capacity [kWp]) of every device of these plants."""
        rows: list = []
        for chunk in _chunks(sorted(map(int, plant_ids))):
            if self.postgres:
                rows += await self._fetch(
                    "SELECT d.id, d.plant_id, d.rated_power_w, p.capacity_kwp FROM telemetry_device d "
                    "JOIN plant p ON p.id = d.plant_id WHERE d.plant_id = ANY($1::int[]) ORDER BY d.id", [list(chunk)])
            else:
                marks = ",".join("?" * len(chunk))
                rows += await self._fetch(
                    "SELECT d.id, d.plant_id, d.rated_power_w, p.capacity_kwp FROM telemetry_device d "
                    f"JOIN plant p ON p.id = d.plant_id WHERE d.plant_id IN ({marks}) ORDER BY d.id", list(chunk))
        return [tuple(r) for r in rows]

    async def delete_rollups(self, plant_ids: Sequence[int]) -> int:
        """Remove every rollup of these plants; returns how many."""
        from settlement.models import TelemetryRollup

        return await TelemetryRollup.filter(plant_id__in=list(plant_ids)).using_db(self.conn).delete()

    # --- locks ----------------------------------------------------------------------------------

    async def lock_plants(self, plant_ids: Sequence[int]) -> None:
        """Serialise ingests of the same plants until the transaction ends (sorted: no deadlocks).

        PostgreSQL: row locks on the plants that do not block foreign-key checks of other work
        (``FOR NO KEY UPDATE``). SQLite: a write that takes the database's write lock at once, so
        that everything read afterwards in the transaction is what it will write against.
        """
        ids = sorted({int(p) for p in plant_ids})
        if not ids:
            return
        if self.postgres:
            await self._fetch("SELECT id FROM plant WHERE id = ANY($1::int[]) ORDER BY id FOR NO KEY UPDATE", [ids])
        else:
            await self._execute("UPDATE plant SET name = name WHERE id = ?", [ids[0]])

    # --- samples --------------------------------------------------------------------------------

    # missing numbers come as -1 (NULL here), so that the columns become arrays without a look at each value
    _SELECT_SAMPLE_PG = ("s.device_id, {ts}, COALESCE(s.power_w, -1), COALESCE(s.energy_wh, -1), s.status, s.flags, "
                         "COALESCE(s.interval_wh, -1), COALESCE(s.irradiance_w_m2, -1), COALESCE({dts}, -1)"
                         ).format(ts=_pg_us("s.ts"), dts=_pg_us("s.device_ts"))
    _SELECT_SAMPLE_SQLITE = ("s.device_id, s.ts, s.power_w, s.energy_wh, s.status, s.flags, s.interval_wh, "
                             "s.irradiance_w_m2, s.device_ts")

    def _stored(self, rows: list) -> StoredSamples:
        if self.postgres:
            if not rows:
                return StoredSamples()
            cols = list(zip(*rows))
            ints = [None if i == 5 else np.array(c, np.int64) for i, c in enumerate(cols)]  # 5: the status
            return StoredSamples(key=ints[0], device=ints[1], ts_us=ints[2], power_w=ints[3], energy_wh=ints[4],
                                 status=list(cols[5]), flags=ints[6], interval_wh=ints[7], irradiance_w_m2=ints[8],
                                 device_ts_us=ints[9])
        return StoredSamples.from_rows([(r[0], r[1], _us_of_text(r[2]), *tuple(r)[3:9], _us_of_text(r[9]))
                                        for r in rows])

    async def _samples_per_window(self, key: Sequence[int], device: Sequence[int], lo_us: Sequence[int],
                                  hi_us: Sequence[int], pg_lateral: str, sqlite_join: str) -> StoredSamples:
        """The samples ``s`` joined to each window ``w(k, dev, lo, hi)`` (``lo``/``hi`` [µs]).

        PostgreSQL: ``JOIN LATERAL (pg_lateral) AS s``, the windows as arrays; SQLite:
        ``JOIN telemetry_sample s ON sqlite_join``, the windows as VALUES in chunks.
        """
        if not key:
            return StoredSamples()
        if self.postgres:
            rows = await self._fetch(
                f"SELECT w.k, {self._SELECT_SAMPLE_PG} "
                "FROM unnest($1::int[], $2::int[], $3::bigint[], $4::bigint[]) AS w(k, dev, lo, hi) "
                f"JOIN LATERAL ({pg_lateral}) AS s ON true",
                [list(map(int, key)), list(map(int, device)), list(map(int, lo_us)), list(map(int, hi_us))])
            return self._stored(rows)
        rows: list = []
        for chunk in _chunks(list(zip(key, device, lo_us, hi_us))):
            values = ",".join(["(?, ?, ?, ?)"] * len(chunk))
            params = [p for k, d, lo, hi in chunk for p in (int(k), int(d), _text(lo), _text(hi))]
            rows += await self._fetch(
                f"WITH w(k, dev, lo, hi) AS (VALUES {values}) SELECT w.k, {self._SELECT_SAMPLE_SQLITE} "
                f"FROM w JOIN telemetry_sample s ON {sqlite_join}",
                params)
        return self._stored(rows)

    async def window_samples(self, key: Sequence[int], device: Sequence[int], lo_us: Sequence[int],
                             hi_us: Sequence[int]) -> StoredSamples:
        """The stored samples of each window: device ``device[i]``, ``lo_us[i] <= ts <= hi_us[i]``."""
        return await self._samples_per_window(
            key, device, lo_us, hi_us,
            # an index range per window, whatever the planner's statistics (OFFSET 0: kept apart)
            "SELECT * FROM telemetry_sample x WHERE x.device_id = w.dev "
            f"AND x.ts >= {_pg_ts('w.lo')} AND x.ts <= {_pg_ts('w.hi')} OFFSET 0",
            "s.device_id = w.dev AND s.ts >= w.lo AND s.ts <= w.hi")

    async def references_before(self, key: Sequence[int], device: Sequence[int],
                                before_us: Sequence[int]) -> dict[int, tuple[int, int]]:
        """Per window: the latest stored counter sample before ``before_us`` that is not a dip.

        Returns ``{key: (ts_us, energy_wh)}`` for the windows that have one.
        """
        if not key:
            return {}
        dip = int(SampleFlag.COUNTER_DIP)
        if self.postgres:
            rows = await self._fetch(
                f"SELECT w.k, {_pg_us('r.ts')}, r.energy_wh "
                "FROM unnest($1::int[], $2::int[], $3::bigint[]) AS w(k, dev, lo) "
                "JOIN LATERAL (SELECT s.ts, s.energy_wh FROM telemetry_sample s WHERE s.device_id = w.dev "
                # "<> dip", not "= 0": the planner guesses an expression is rarely equal to a value,
                # would then expect to read a device's whole history for one row, and fetch and sort
                # all of it instead of walking the index back from ``lo`` (time growing with history)
                f"AND s.ts < {_pg_ts('w.lo')} AND s.energy_wh IS NOT NULL AND (s.flags & {dip}) <> {dip} "
                "ORDER BY s.ts DESC LIMIT 1) AS r ON true",
                [list(map(int, key)), list(map(int, device)), list(map(int, before_us))])
            return {int(k): (int(ts), int(e)) for k, ts, e in rows}
        found: dict[int, tuple[int, int]] = {}
        for chunk in _chunks(list(zip(key, device, before_us))):
            values = ",".join(["(?, ?, ?)"] * len(chunk))
            params = [p for k, d, lo in chunk for p in (int(k), int(d), _text(lo))]
            rows = await self._fetch(
                f"WITH w(k, dev, lo) AS (VALUES {values}) SELECT w.k, s.ts, s.energy_wh FROM w "
                "JOIN telemetry_sample s ON s.id = (SELECT x.id FROM telemetry_sample x WHERE x.device_id = w.dev "
                f"AND x.ts < w.lo AND x.energy_wh IS NOT NULL AND (x.flags & {dip}) = 0 ORDER BY x.ts DESC LIMIT 1)",
                params)
            found.update({int(r[0]): (_us_of_text(r[1]), int(r[2])) for r in rows})
        return found

    async def next_counter_samples(self, key: Sequence[int], device: Sequence[int], after_us: Sequence[int],
                                   before_us: Sequence[int]) -> StoredSamples:
        """Per window: the first stored counter sample after ``after_us`` and before ``before_us``."""
        return await self._samples_per_window(
            key, device, after_us, before_us,
            "SELECT * FROM telemetry_sample x WHERE x.device_id = w.dev "
            f"AND x.ts > {_pg_ts('w.lo')} AND x.ts < {_pg_ts('w.hi')} AND x.energy_wh IS NOT NULL "
            "ORDER BY x.ts LIMIT 1",
            "s.id = (SELECT x.id FROM telemetry_sample x WHERE x.device_id = w.dev "
            "AND x.ts > w.lo AND x.ts < w.hi AND x.energy_wh IS NOT NULL ORDER BY x.ts LIMIT 1)")

    async def upsert_samples(self, device: np.ndarray, ts_us: np.ndarray, received_us: int, power_w: np.ndarray,
                             energy_wh: np.ndarray, status: Sequence[str], flags: np.ndarray,
                             interval_wh: np.ndarray, irradiance_w_m2: np.ndarray,
                             device_ts_us: np.ndarray, new: np.ndarray | None = None) -> None:
        """Insert the samples, or replace what is stored under the same (device, ts).

        ``new`` marks the samples the caller knows are not stored (it read their keys under the
        plants' lock): on PostgreSQL those are copied in (``COPY``, the fastest way in, several
        times cheaper for the client than arrays), and only the rest take the upsert.
        """
        if len(ts_us) == 0:
            return
        if self.postgres and new is not None and new.any():
            await self._copy_samples(device[new], ts_us[new], received_us, power_w[new], energy_wh[new],
                                     [s for s, n in zip(status, new.tolist()) if n], flags[new], interval_wh[new],
                                     irradiance_w_m2[new], device_ts_us[new])
            rest = ~new
            if not rest.any():
                return
            device, ts_us, power_w, energy_wh, flags = device[rest], ts_us[rest], power_w[rest], energy_wh[rest], flags[rest]
            status = [s for s, r in zip(status, rest.tolist()) if r]
            interval_wh, irradiance_w_m2, device_ts_us = interval_wh[rest], irradiance_w_m2[rest], device_ts_us[rest]
        update = ("ON CONFLICT (device_id, ts) DO UPDATE SET received_at = excluded.received_at, "
                  "power_w = excluded.power_w, energy_wh = excluded.energy_wh, status = excluded.status, "
                  "flags = excluded.flags, interval_wh = excluded.interval_wh, "
                  "irradiance_w_m2 = excluded.irradiance_w_m2, device_ts = excluded.device_ts")
        if self.postgres:
            await self._execute(
                "INSERT INTO telemetry_sample (device_id, ts, received_at, power_w, energy_wh, status, flags, "
                "interval_wh, irradiance_w_m2, device_ts) "
                f"SELECT u.dev, {_pg_ts('u.ts')}, {_pg_ts('$3::bigint')}, NULLIF(u.p, -1), NULLIF(u.e, -1), u.st, "
                f"u.fl, NULLIF(u.iv, -1), NULLIF(u.irr, -1), CASE WHEN u.dts = -1 THEN NULL ELSE {_pg_ts('u.dts')} END "
                "FROM unnest($1::int[], $2::bigint[], $4::bigint[], $5::bigint[], $6::text[], $7::smallint[], "
                "$8::bigint[], $9::int[], $10::bigint[]) AS u(dev, ts, p, e, st, fl, iv, irr, dts) " + update,
                [device.tolist(), ts_us.tolist(), int(received_us), power_w.tolist(), energy_wh.tolist(),
                 list(status), flags.tolist(), interval_wh.tolist(), irradiance_w_m2.tolist(), device_ts_us.tolist()])
            return
        received = _text(received_us)
        rows = [(int(d), _text(t), received, _none(p), _none(e), s, int(f), _none(iv), _none(irr), _text_or_none(dts))
                for d, t, p, e, s, f, iv, irr, dts in zip(
                    device.tolist(), ts_us.tolist(), power_w.tolist(), energy_wh.tolist(), status, flags.tolist(),
                    interval_wh.tolist(), irradiance_w_m2.tolist(), device_ts_us.tolist())]
        await self._execute_many(
            "INSERT INTO telemetry_sample (device_id, ts, received_at, power_w, energy_wh, status, flags, "
            "interval_wh, irradiance_w_m2, device_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) " + update, rows)

    async def _copy_samples(self, device: np.ndarray, ts_us: np.ndarray, received_us: int, power_w: np.ndarray,
                            energy_wh: np.ndarray, status: Sequence[str], flags: np.ndarray,
                            interval_wh: np.ndarray, irradiance_w_m2: np.ndarray, device_ts_us: np.ndarray) -> None:
        """PostgreSQL: insert samples not stored yet with ``COPY`` (a stored key fails the transaction)."""
        n = len(ts_us)
        payload = binary_copy([("int4", device), ("timestamptz", ts_us), ("timestamptz", np.full(n, received_us)),
                               ("int4", power_w), ("int8", energy_wh), ("text", list(status)), ("int2", flags),
                               ("int8", interval_wh), ("int4", irradiance_w_m2), ("timestamptz", device_ts_us)])
        async with self.conn.acquire_connection() as raw:
            await raw.copy_to_table("telemetry_sample", source=io.BytesIO(payload), columns=SAMPLE_COLUMNS_COPY,
                                    format="binary")

    async def update_derived(self, device: np.ndarray, ts_us: np.ndarray, interval_wh: np.ndarray,
                             flags: np.ndarray) -> None:
        """Store recomputed interval energies and flags of samples already stored."""
        if len(ts_us) == 0:
            return
        if self.postgres:
            await self._execute(
                "UPDATE telemetry_sample AS s SET interval_wh = NULLIF(u.iv, -1), flags = u.fl "
                "FROM unnest($1::int[], $2::bigint[], $3::bigint[], $4::smallint[]) AS u(dev, ts, iv, fl) "
                f"WHERE s.device_id = u.dev AND s.ts = {_pg_ts('u.ts')}",
                [device.tolist(), ts_us.tolist(), interval_wh.tolist(), flags.tolist()])
            return
        await self._execute_many(
            "UPDATE telemetry_sample SET interval_wh = ?, flags = ? WHERE device_id = ? AND ts = ?",
            [(_none(iv), int(f), int(d), _text(t)) for d, t, iv, f in zip(
                device.tolist(), ts_us.tolist(), interval_wh.tolist(), flags.tolist())])

    # --- rollups --------------------------------------------------------------------------------

    async def bucket_samples(self, plant: Sequence[int], after_us: Sequence[int],
                             until_us: Sequence[int]) -> BucketSamples:
        """Every sample of each plant's devices with ``after_us[i] < ts <= until_us[i]``."""
        rows: list = []
        if plant:
            if self.postgres:
                rows = await self._fetch(
                    f"SELECT r.plant, s.device_id, {_pg_us('s.ts')}, s.interval_wh, s.power_w, s.irradiance_w_m2 "
                    "FROM unnest($1::int[], $2::bigint[], $3::bigint[]) AS r(plant, lo, hi) "
                    "JOIN telemetry_device d ON d.plant_id = r.plant "
                    "JOIN LATERAL (SELECT * FROM telemetry_sample x WHERE x.device_id = d.id "
                    f"AND x.ts > {_pg_ts('r.lo')} AND x.ts <= {_pg_ts('r.hi')} OFFSET 0) AS s ON true",
                    [list(map(int, plant)), list(map(int, after_us)), list(map(int, until_us))])
            else:
                for chunk in _chunks(list(zip(plant, after_us, until_us))):
                    values = ",".join(["(?, ?, ?)"] * len(chunk))
                    params = [p for pl, lo, hi in chunk for p in (int(pl), _text(lo), _text(hi))]
                    found = await self._fetch(
                        f"WITH r(plant, lo, hi) AS (VALUES {values}) "
                        "SELECT r.plant, s.device_id, s.ts, s.interval_wh, s.power_w, s.irradiance_w_m2 FROM r "
                        "JOIN telemetry_device d ON d.plant_id = r.plant "
                        "JOIN telemetry_sample s ON s.device_id = d.id AND s.ts > r.lo AND s.ts <= r.hi", params)
                    rows += [(r[0], r[1], _us_of_text(r[2]), r[3], r[4], r[5]) for r in found]
        cols = list(zip(*rows)) if rows else [()] * 6

        def ints(values) -> np.ndarray:
            return np.array([NULL if v is None else v for v in values], np.int64)

        return BucketSamples(plant=ints(cols[0]), device=ints(cols[1]), ts_us=ints(cols[2]),
                             interval_wh=ints(cols[3]), power_w=ints(cols[4]), irradiance_w_m2=ints(cols[5]))

    async def device_samples(self, device: Sequence[int], after_us: Sequence[int],
                             until_us: Sequence[int]) -> StoredSamples:
        """The samples of device ``device[i]`` with ``after_us[i] < ts <= until_us[i]`` (``key`` is i)."""
        return await self._samples_per_window(
            list(range(len(device))), device, after_us, until_us,
            "SELECT * FROM telemetry_sample x WHERE x.device_id = w.dev "
            f"AND x.ts > {_pg_ts('w.lo')} AND x.ts <= {_pg_ts('w.hi')} OFFSET 0",
            "s.device_id = w.dev AND s.ts > w.lo AND s.ts <= w.hi")

    async def replace_quarters(self, rollups: QuarterRollups) -> QuarterRollups:
        """Write 15-minute rollups over what the buckets held; returns what they held before.

        The old figures come back aligned with ``rollups`` (same order): energy, power and
        samples 0 and irradiation ``NULL`` for a bucket that had no rollup; its ``samples`` is
        then 0, which no stored bucket has.
        """
        n = len(rollups.bucket_us)
        old = QuarterRollups(rollups.plant, rollups.bucket_us, np.zeros(n, np.int64), np.zeros(n, np.int64),
                             np.zeros(n, np.int64), np.full(n, NULL, np.int64))
        if n == 0:
            return old
        distinct = "IS DISTINCT FROM" if self.postgres else "IS NOT"  # null-safe "differs"
        changed = " OR ".join(f"telemetry_rollup.{c} {distinct} excluded.{c}"
                              for c in ("energy_wh", "max_power_w", "samples", "irradiation_wh_m2"))
        update = ("ON CONFLICT (plant_id, granularity, bucket_start) DO UPDATE SET energy_wh = excluded.energy_wh, "
                  "max_power_w = excluded.max_power_w, samples = excluded.samples, "
                  "irradiation_wh_m2 = excluded.irradiation_wh_m2 WHERE " + changed)
        # (plant, bucket) as one sortable number, to place the rows read back
        key = rollups.plant * (1 << 40) + rollups.bucket_us // QUARTER_US
        order = np.argsort(key)
        if self.postgres:
            rows = await self._fetch(
                "WITH new AS (SELECT * FROM unnest($1::int[], $2::bigint[], $3::bigint[], $4::int[], $5::int[], "
                "$6::bigint[]) AS u(plant, b, e, p, n, irr)), "
                # one index lookup per bucket, never a scan of the whole rollup table (the LIMIT keeps
                # the planner from turning the LATERAL back into a join it may hash)
                "old AS (SELECT new.plant, new.b, r.energy_wh, r.max_power_w, r.samples, r.irradiation_wh_m2 "
                "FROM new JOIN LATERAL (SELECT * FROM telemetry_rollup x WHERE x.plant_id = new.plant "
                f"AND x.granularity = '15m' AND x.bucket_start = {_pg_ts('new.b')} LIMIT 1) AS r ON true), "
                "written AS (INSERT INTO telemetry_rollup (plant_id, granularity, bucket_start, energy_wh, max_power_w, "
                f"samples, irradiation_wh_m2) SELECT plant, '15m', {_pg_ts('b')}, e, p, n, NULLIF(irr, -1) FROM new "
                + update + ") SELECT * FROM old",
                [rollups.plant.tolist(), rollups.bucket_us.tolist(), rollups.energy_wh.tolist(),
                 rollups.max_power_w.tolist(), rollups.samples.tolist(), rollups.irradiation_wh_m2.tolist()])
        else:
            rows = []
            pairs = list(zip(rollups.plant.tolist(), rollups.bucket_us.tolist()))
            for chunk in _chunks(pairs):
                values = ",".join(["(?, ?, ?)"] * len(chunk))
                params = [v for p, b in chunk for v in (int(p), int(b), _text(b))]
                rows += await self._fetch(
                    f"WITH new(plant, b, bt) AS (VALUES {values}) SELECT new.plant, new.b, r.energy_wh, r.max_power_w, "
                    "r.samples, r.irradiation_wh_m2 FROM new JOIN telemetry_rollup r ON r.plant_id = new.plant "
                    "AND r.granularity = '15m' AND r.bucket_start = new.bt", params)
            await self._execute_many(
                "INSERT INTO telemetry_rollup (plant_id, granularity, bucket_start, energy_wh, max_power_w, samples, "
                "irradiation_wh_m2) VALUES (?, '15m', ?, ?, ?, ?, ?) " + update,
                [(int(pl), _text(b), int(e), int(p), int(n), _none(irr)) for pl, b, e, p, n, irr in zip(
                    rollups.plant.tolist(), rollups.bucket_us.tolist(), rollups.energy_wh.tolist(),
                    rollups.max_power_w.tolist(), rollups.samples.tolist(), rollups.irradiation_wh_m2.tolist())])
        if rows:
            plant, bucket, energy, power, samples, irradiation = zip(*rows)
            found = np.array(plant, np.int64) * (1 << 40) + np.array(bucket, np.int64) // QUARTER_US
            at = order[np.searchsorted(key[order], found)]
            old.energy_wh[at], old.max_power_w[at], old.samples[at] = energy, power, samples
            old.irradiation_wh_m2[at] = [_or_null(v) for v in irradiation]
        return old

    async def add_to_rollups(self, granularity: np.ndarray, plant: np.ndarray, bucket_us: np.ndarray,
                             energy_wh: np.ndarray, samples: np.ndarray, max_power_w: np.ndarray,
                             irradiation_wh_m2: np.ndarray, has_irradiation: np.ndarray) -> None:
        """Add changes to day or month rollups (made when missing); ``granularity`` is each row's.

        ``energy_wh``, ``samples`` and ``irradiation_wh_m2`` are added (the irradiation only where
        ``has_irradiation``, else the bucket's is left as it is); ``max_power_w`` raises the
        bucket's highest power.
        """
        if len(bucket_us) == 0:
            return
        greatest = "GREATEST" if self.postgres else "MAX"
        update = ("ON CONFLICT (plant_id, granularity, bucket_start) DO UPDATE SET "
                  "energy_wh = telemetry_rollup.energy_wh + excluded.energy_wh, "
                  "samples = telemetry_rollup.samples + excluded.samples, "
                  f"max_power_w = {greatest}(telemetry_rollup.max_power_w, excluded.max_power_w), "
                  "irradiation_wh_m2 = CASE WHEN excluded.irradiation_wh_m2 IS NULL THEN telemetry_rollup.irradiation_wh_m2 "
                  "ELSE COALESCE(telemetry_rollup.irradiation_wh_m2, 0) + excluded.irradiation_wh_m2 END")
        if self.postgres:
            await self._execute(
                "INSERT INTO telemetry_rollup (plant_id, granularity, bucket_start, energy_wh, max_power_w, samples, "
                f"irradiation_wh_m2) SELECT u.plant, u.g, {_pg_ts('u.b')}, u.e, u.p, u.n, "
                "CASE WHEN u.has_irr THEN u.irr END "
                "FROM unnest($1::int[], $2::bigint[], $3::bigint[], $4::int[], $5::int[], $6::bigint[], $7::text[], "
                "$8::bool[]) AS u(plant, b, e, p, n, irr, g, has_irr) " + update,
                [plant.tolist(), bucket_us.tolist(), energy_wh.tolist(), max_power_w.tolist(), samples.tolist(),
                 irradiation_wh_m2.tolist(), granularity.tolist(), has_irradiation.tolist()])
            return
        await self._execute_many(
            "INSERT INTO telemetry_rollup (plant_id, granularity, bucket_start, energy_wh, max_power_w, samples, "
            "irradiation_wh_m2) VALUES (?, ?, ?, ?, ?, ?, ?) " + update,
            [(int(pl), g, _text(b), int(e), int(p), int(n), int(irr) if has else None)
             for g, pl, b, e, p, n, irr, has in zip(
                granularity.tolist(), plant.tolist(), bucket_us.tolist(), energy_wh.tolist(), max_power_w.tolist(),
                samples.tolist(), irradiation_wh_m2.tolist(), has_irradiation.tolist())])

    async def aggregate(self, source: str, target: str, plant: Sequence[int], start_us: Sequence[int],
                        end_us: Sequence[int]) -> None:
        """Recompute ``target`` rollups (day, month) of each plant's ``[start, end)`` from its ``source`` ones.

        Sums of energy, samples and irradiation, the highest power. A bucket whose sources are
        all gone is left as it was (sources are never deleted by the service).
        """
        if not plant:
            return
        update = ("ON CONFLICT (plant_id, granularity, bucket_start) DO UPDATE SET energy_wh = excluded.energy_wh, "
                  "max_power_w = excluded.max_power_w, samples = excluded.samples, "
                  "irradiation_wh_m2 = excluded.irradiation_wh_m2")
        if self.postgres:
            await self._execute(
                "INSERT INTO telemetry_rollup (plant_id, granularity, bucket_start, energy_wh, max_power_w, samples, "
                f"irradiation_wh_m2) SELECT u.plant, $5, {_pg_ts('u.lo')}, SUM(r.energy_wh), MAX(r.max_power_w), "
                "SUM(r.samples), SUM(r.irradiation_wh_m2) "
                "FROM unnest($1::int[], $2::bigint[], $3::bigint[]) AS u(plant, lo, hi) "
                f"JOIN telemetry_rollup r ON r.plant_id = u.plant AND r.granularity = $4 "
                f"AND r.bucket_start >= {_pg_ts('u.lo')} AND r.bucket_start < {_pg_ts('u.hi')} "
                "GROUP BY u.plant, u.lo " + update,
                [list(map(int, plant)), list(map(int, start_us)), list(map(int, end_us)), source, target])
            return
        await self._execute_many(
            "INSERT INTO telemetry_rollup (plant_id, granularity, bucket_start, energy_wh, max_power_w, samples, "
            "irradiation_wh_m2) SELECT plant_id, ?, ?, SUM(energy_wh), MAX(max_power_w), SUM(samples), "
            "SUM(irradiation_wh_m2) FROM telemetry_rollup WHERE plant_id = ? AND granularity = ? "
            "AND bucket_start >= ? AND bucket_start < ? GROUP BY plant_id " + update,
            [(target, _text(lo), int(pl), source, _text(lo), _text(hi))
             for pl, lo, hi in zip(plant, start_us, end_us)])

    # --- live state -----------------------------------------------------------------------------

    async def latest_per_device(self, plant_ids: Sequence[int]) -> list[tuple[int, int, int, int, str]]:
        """(plant, device, ts_us, power_w, status) of each device's latest sample, for these plants."""
        if not plant_ids:
            return []
        if self.postgres:
            rows = await self._fetch(
                f"SELECT d.plant_id, d.id, {_pg_us('s.ts')}, s.power_w, s.status FROM telemetry_device d "
                "JOIN LATERAL (SELECT x.ts, x.power_w, x.status FROM telemetry_sample x WHERE x.device_id = d.id "
                "ORDER BY x.ts DESC LIMIT 1) AS s ON true WHERE d.plant_id = ANY($1::int[])",
                [sorted(map(int, plant_ids))])
            return [(int(p), int(d), int(t), _or_null(w), s) for p, d, t, w, s in rows]
        out = []
        for chunk in _chunks(sorted(map(int, plant_ids))):
            marks = ",".join("?" * len(chunk))
            rows = await self._fetch(
                "SELECT d.plant_id, d.id, s.ts, s.power_w, s.status FROM telemetry_device d "
                "JOIN telemetry_sample s ON s.id = (SELECT x.id FROM telemetry_sample x WHERE x.device_id = d.id "
                f"ORDER BY x.ts DESC LIMIT 1) WHERE d.plant_id IN ({marks})", list(chunk))
            out += [(int(r[0]), int(r[1]), _us_of_text(r[2]), _or_null(r[3]), r[4]) for r in rows]
        return out

    async def latest_producing_per_device(self, plant_ids: Sequence[int]) -> list[tuple[int, int, int]]:
        """(plant, device, ts_us) of each device's latest sample that showed it producing: power or
        interval energy, and no fault."""
        if not plant_ids:
            return []
        good = "(x.status <> 'fault' AND (x.power_w > 0 OR x.interval_wh > 0))"
        if self.postgres:
            rows = await self._fetch(
                f"SELECT d.plant_id, d.id, {_pg_us('s.ts')} FROM telemetry_device d "
                f"JOIN LATERAL (SELECT x.ts FROM telemetry_sample x WHERE x.device_id = d.id AND {good} "
                "ORDER BY x.ts DESC LIMIT 1) AS s ON true WHERE d.plant_id = ANY($1::int[])",
                [sorted(map(int, plant_ids))])
            return [(int(p), int(d), int(t)) for p, d, t in rows]
        out = []
        for chunk in _chunks(sorted(map(int, plant_ids))):
            marks = ",".join("?" * len(chunk))
            rows = await self._fetch(
                "SELECT d.plant_id, d.id, s.ts FROM telemetry_device d JOIN telemetry_sample s ON s.id = "
                f"(SELECT x.id FROM telemetry_sample x WHERE x.device_id = d.id AND {good} ORDER BY x.ts DESC LIMIT 1) "
                f"WHERE d.plant_id IN ({marks})", list(chunk))
            out += [(int(r[0]), int(r[1]), _us_of_text(r[2])) for r in rows]
        return out

    async def plant_samples_after(self, plant_id: int, after_us: int, limit: int) -> list[tuple[int, int, int, str, str]]:
        """(ts_us, power_w, interval_wh, status, device serial) of a plant's samples after a time, oldest first."""
        if self.postgres:
            rows = await self._fetch(
                f"SELECT {_pg_us('s.ts')}, s.power_w, s.interval_wh, s.status, d.serial FROM telemetry_sample s "
                f"JOIN telemetry_device d ON d.id = s.device_id WHERE d.plant_id = $1 AND s.ts > {_pg_ts('$2::bigint')} "
                "ORDER BY s.ts LIMIT $3", [int(plant_id), int(after_us), int(limit)])
            return [(int(t), _or_null(p), _or_null(i), st, serial) for t, p, i, st, serial in rows]
        rows = await self._fetch(
            "SELECT s.ts, s.power_w, s.interval_wh, s.status, d.serial FROM telemetry_sample s "
            "JOIN telemetry_device d ON d.id = s.device_id WHERE d.plant_id = ? AND s.ts > ? ORDER BY s.ts LIMIT ?",
            [int(plant_id), _text(after_us), int(limit)])
        return [(_us_of_text(r[0]), _or_null(r[1]), _or_null(r[2]), r[3], r[4]) for r in rows]

    async def active_quarters(self, plant_ids: Sequence[int], start_us: int,
                              end_us: int) -> list[tuple[int, int, int, int, int]]:
        """(plant, bucket_us, energy_wh, max_power_w, irradiation_wh_m2) of the 15-minute rollups in
        ``[start, end)`` that show production or carry irradiance (the rest say nothing more)."""
        out: list[tuple[int, int, int, int, int]] = []
        active = "(r.energy_wh > 0 OR r.max_power_w > 0 OR r.irradiation_wh_m2 IS NOT NULL)"
        for chunk in _chunks(sorted(map(int, plant_ids))):
            if self.postgres:
                rows = await self._fetch(
                    f"SELECT r.plant_id, {_pg_us('r.bucket_start')}, r.energy_wh, r.max_power_w, r.irradiation_wh_m2 "
                    f"FROM telemetry_rollup r WHERE r.plant_id = ANY($1::int[]) AND r.granularity = '15m' "
                    f"AND r.bucket_start >= {_pg_ts('$2::bigint')} AND r.bucket_start < {_pg_ts('$3::bigint')} "
                    f"AND {active}", [list(chunk), int(start_us), int(end_us)])
                out += [(int(p), int(b), int(e), int(w), _or_null(i)) for p, b, e, w, i in rows]
            else:
                marks = ",".join("?" * len(chunk))
                rows = await self._fetch(
                    "SELECT r.plant_id, r.bucket_start, r.energy_wh, r.max_power_w, r.irradiation_wh_m2 "
                    f"FROM telemetry_rollup r WHERE r.plant_id IN ({marks}) AND r.granularity = '15m' "
                    f"AND r.bucket_start >= ? AND r.bucket_start < ? AND {active}",
                    [*chunk, _text(start_us), _text(end_us)])
                out += [(int(r[0]), _us_of_text(r[1]), int(r[2]), int(r[3]), _or_null(r[4])) for r in rows]
        return out

    async def rollup_energy(self, granularity: str, plant_ids: Sequence[int], bucket_us: int) -> dict[int, int]:
        """``{plant: energy_wh}`` of one bucket of the given plants (those that have it)."""
        if not plant_ids:
            return {}
        if self.postgres:
            rows = await self._fetch(
                "SELECT plant_id, energy_wh FROM telemetry_rollup WHERE granularity = $1 "
                f"AND bucket_start = {_pg_ts('$2::bigint')} AND plant_id = ANY($3::int[])",
                [granularity, int(bucket_us), sorted(map(int, plant_ids))])
            return {int(p): int(e) for p, e in rows}
        found: dict[int, int] = {}
        for chunk in _chunks(sorted(map(int, plant_ids))):
            marks = ",".join("?" * len(chunk))
            rows = await self._fetch(
                "SELECT plant_id, energy_wh FROM telemetry_rollup WHERE granularity = ? AND bucket_start = ? "
                f"AND plant_id IN ({marks})", [granularity, _text(bucket_us), *chunk])
            found.update({int(r[0]): int(r[1]) for r in rows})
        return found
