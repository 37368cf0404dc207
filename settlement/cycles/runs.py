"""Reading cycles: meter readings → confirmation forms, for many plants at once.

The rules written down
----------------------
* **Period and span.** The cycle of period ``YYYY-MM`` of a plant runs from 00:00 local time on
  its reading day in the month before to 00:00 local time on its reading day in ``YYYY-MM``
  (the cut-off).
* **Which readings.** For every register, the reading closest to each boundary within
  ±72 hours is used (AMI reads at midnight, manual readings drift by a day or two); of two
  equally close readings the earlier one wins, and of several revisions at the same time the
  highest (a staff adjustment) wins. A register without such a reading is *missing*.
* **Energies.** Each plant is three register groups of five columns (total and TOU rates 1–4,
  DL/T 645): generation forward, grid forward (import) and grid reverse (export). billing_engine
  turns the readings into kWh per register with rollover, replacement and plausibility flags,
  and self-use = generation − export per rate, never negative.
* **A meter replaced during the cycle** (换表: the meter in place at the cut-off has ``replaces``
  and a ``replaced_at`` inside the span) is read in two parts: the old meter from the start to its
  final reading at the swap, the new one from its first reading at the swap to the cut-off, each
  with its own multiplier and dial; the group's energy is their sum, and the form has a line for
  each meter (the old one's marked ``replaced``).
* **Forms.** One form per (plant, cycle) — the unique key makes re-runs and concurrent runs
  harmless. A form is sent to the owner at once, with an answer due after the contract's
  auto-confirm days, unless a finding holds it (:data:`HOLD`: a refused drop, TOU registers
  that do not add up, implausible energy, a missing reading, export above generation): then it
  stays a draft for staff to look at. Rollovers and replaced meters are noted on the form only.
* **Suspect readings.** A reading flagged at ingest (energy no plant or site could make or draw,
  :mod:`settlement.readings.ingest`) is never a boundary reading: the one closest to the boundary among
  the others is used. When a flagged reading of the plant's meters lies in the cycle's reading
  window (its span ± 72 hours), the form stays a draft with a finding (``ConfirmationForm.findings``)
  that names the meter, the register and the figures, until staff correct the reading (a higher
  revision replaces it) or send the form as it is.
* **Batches.** Forms are written in batches, each batch (its cycles and forms) in one
  transaction, so a run killed part-way leaves whole batches that a re-run skips and completes.

The numpy work runs in an executor thread: a cycle of thousands of plants must not block the
event loop of a server that is also answering owners.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from tortoise import connections
from tortoise.transactions import in_transaction

from billing_engine.registers import RegisterFlag, flag_names, register_energy, self_consumption
from settlement import audit
from settlement.notify import outbox
from settlement.context import request_id_var
from settlement.errors import InvalidInput, NotFound
from settlement.models import (
    AuditEvent,
    Bill,
    ConfirmationForm,
    Contract,
    FormState,
    Meter,
    MeterKind,
    Plant,
    Reading,
    ReadingCycle,
)
from settlement.clock import LOCAL, UTC, utc_now

WINDOW = dt.timedelta(hours=72)
BATCH = 500

# DL/T 645-2007 energy registers: forward (0001) and reverse (0002) active, total and rates 1-4.
FORWARD = ("00010000", "00010100", "00010200", "00010300", "00010400")
REVERSE = ("00020000", "00020100", "00020200", "00020300", "00020400")
RATES = ("sharp", "peak", "flat", "valley")  # DL/T 645 rates 1-4: 尖 峰 平 谷
GROUPS = (("generation", MeterKind.GENERATION, FORWARD),
          ("grid", MeterKind.GRID, FORWARD),
          ("export", MeterKind.GRID, REVERSE))
# Findings that keep a form from the owner until staff have looked (a rollover or a replaced
# meter is explained by the readings themselves and is only noted on the form).
HOLD = (RegisterFlag.NEGATIVE_REFUSED | RegisterFlag.TOU_MISMATCH | RegisterFlag.IMPLAUSIBLE
        | RegisterFlag.MISSING | RegisterFlag.EXPORT_EXCEEDS_GENERATION)


def contract_cut_off(period: str) -> dt.date:
    """The day that picks the contract version a period's cycle is settled under: the latest
    version in force on the 28th of the period's month (every reading day is 1-28, so a version
    that starts by the cycle's cut-off counts). The form (its auto-confirm days) and the bill (its
    prices and due days) of a cycle take the same version, whenever they are made."""
    year, month = parse_period(period)
    return dt.date(year, month, 28)


def parse_period(period: str) -> tuple[int, int]:
    try:
        year, month = (int(x) for x in period.split("-"))
        if len(period) != 7 or not 1 <= month <= 12 or not 2000 <= year <= 2100:
            raise ValueError
    except ValueError:
        raise InvalidInput(f"period must be YYYY-MM, not {period!r}", code="bad_period") from None
    return year, month


def due_periods(now: dt.datetime) -> list[tuple[int, str]]:
    """(reading day, period) of the latest cut-off at or before ``now`` for each reading day 1-28."""
    today = now.astimezone(LOCAL)
    out = []
    for day in range(1, 29):
        year, month = today.year, today.month
        if today.day < day:
            year, month = (year, month - 1) if month > 1 else (year - 1, 12)
        out.append((day, f"{year:04d}-{month:02d}"))
    return out


def cycle_span(period: str, reading_day: int) -> tuple[dt.datetime, dt.datetime]:
    """Start and cut-off (UTC) of a plant's cycle for ``period``."""
    year, month = parse_period(period)
    prev_year, prev_month = (year, month - 1) if month > 1 else (year - 1, 12)
    start = dt.datetime(prev_year, prev_month, reading_day, tzinfo=LOCAL)
    end = dt.datetime(year, month, reading_day, tzinfo=LOCAL)
    return start.astimezone(UTC), end.astimezone(UTC)


@dataclass(frozen=True)
class PeriodCover:
    """What a period means for the plants read on one day: the electricity from ``starts`` to
    ``ends`` (local dates, the cut-off at 00:00 of ``ends``)."""

    reading_day: int
    starts: dt.date
    ends: dt.date
    plants: int

    def as_dict(self) -> dict:
        return {"reading_day": self.reading_day, "from": self.starts.isoformat(), "to": self.ends.isoformat(),
                "plants": self.plants}


async def period_covers(period: str, plant_code: str | None = None) -> list[PeriodCover]:
    """The dates ``period`` covers for each reading day of the plants in scope, by reading day.

    Period ``2026-11`` of plants read on the 1st is October's electricity (10-01 to 11-01): what
    an operator running a cycle should see before forms go out.
    """
    parse_period(period)
    query = Plant.all()
    if plant_code is not None:
        query = query.filter(code=plant_code)
    days: dict[int, int] = {}
    for day in await query.values_list("reading_day", flat=True):
        days[day] = days.get(day, 0) + 1
    covers = []
    for day, count in sorted(days.items()):
        start, end = cycle_span(period, day)
        covers.append(PeriodCover(day, start.astimezone(LOCAL).date(), end.astimezone(LOCAL).date(), count))
    return covers


def ended_over_a_month_ago(cover: PeriodCover, today: dt.date) -> bool:
    """Whether the cover's cut-off lies more than a calendar month before ``today``."""
    year, month = (cover.ends.year, cover.ends.month + 1) if cover.ends.month < 12 else (cover.ends.year + 1, 1)
    return dt.date(year, month, min(cover.ends.day, 28)) < today


@dataclass
class CycleRunResult:
    period: str
    plants: int
    forms_created: int
    forms_existing: int
    forms_flagged: int
    seconds: float
    plants_waiting: int = 0

    def as_dict(self) -> dict:
        """The contract of ``pvsettle cycle run`` (DESIGN.md), plus flagged and waiting counts."""
        return {"period": self.period, "plants": self.plants, "forms_created": self.forms_created,
                "forms_existing": self.forms_existing, "forms_flagged": self.forms_flagged,
                "plants_waiting": self.plants_waiting, "seconds": round(self.seconds, 3)}


@dataclass
class _Plan:
    """The plants of one run and their meters, in the order of the engine's arrays."""

    plants: list[Plant]
    contracts: list[Contract]
    spans: list[tuple[dt.datetime, dt.datetime]]
    meters: list[list[Meter | None]]  # per plant: generation meter, grid meter
    #: per plant: the meters its generation and grid meter replaced during the cycle (or None)
    replaced: list[list[Meter | None]] = None

    def __post_init__(self):
        if self.replaced is None:
            self.replaced = [[None, None] for _ in self.plants]

    def parts(self) -> list[tuple[int, int, Meter]]:
        """(plant index, group index, old meter) of every register group read on a meter that was
        replaced during the cycle: its energy up to the swap is a row of its own, after the
        plants × groups rows (the extra rows of :class:`_Arrays`)."""
        return [(i, g, old[0 if kind == MeterKind.GENERATION else 1])
                for i, old in enumerate(self.replaced) for g, (_, kind, _) in enumerate(GROUPS)
                if old[0 if kind == MeterKind.GENERATION else 1] is not None]


async def run_cycle(period: str, plant_code: str | None = None, *, apps: outbox.NotifyApps,
                    reading_day: int | None = None, now: dt.datetime | None = None, batch_size: int = BATCH,
                    wait_for_readings: bool = False) -> CycleRunResult:
    """Create the confirmation forms of ``period`` for every plant that has none yet.

    ``plant_code`` limits the run to one plant, ``reading_day`` to the plants read on that day
    (what the scheduler runs on a reading day). With ``wait_for_readings`` a plant with a
    missing reading gets no form yet (the head-end may still deliver it); without, it gets a
    draft flagged MISSING for staff. ``apps`` are our WeChat apps, for the owners' FormSent and
    AutoConfirmComing messages.
    """
    started = time.perf_counter()
    now = (now or utc_now()).astimezone(UTC)  # SQLite compares stored UTC text
    parse_period(period)
    if batch_size < 1:
        raise InvalidInput("batch size must be at least 1", code="bad_batch_size")
    query = Plant.all().order_by("id")
    if plant_code is not None:
        query = query.filter(code=plant_code)
    if reading_day is not None:
        query = query.filter(reading_day=reading_day)
    plants = await query
    if plant_code is not None and not plants:
        raise NotFound(f"no plant {plant_code!r}", code="unknown_plant", params={"plant": plant_code})
    existing_ids = set(await ConfirmationForm.filter(cycle__period=period, cycle__plant_id__in=[p.id for p in plants])
                       .values_list("cycle__plant_id", flat=True)) if plants else set()
    due = [p for p in plants if p.id not in existing_ids]
    created = flagged = waiting = raced = 0
    for first in range(0, len(due), batch_size):
        plan = await _plan([*due[first:first + batch_size]], period)
        if not plan.plants:
            continue
        arrays = await _load_readings(plan)
        loop = asyncio.get_running_loop()
        computed = await loop.run_in_executor(None, _compute, plan, arrays)
        if wait_for_readings:
            complete = (computed.flags & np.uint16(RegisterFlag.MISSING)) == 0
            waiting += int((~complete).sum())
            plan, computed, arrays = _only(plan, computed, arrays, complete)
        made, made_flagged, made_elsewhere = await _write_forms(plan, period, arrays, computed, now, apps=apps)
        created += made
        flagged += made_flagged
        raced += made_elsewhere
    return CycleRunResult(period=period, plants=len(plants), forms_created=created,
                          forms_existing=len(existing_ids) + raced,
                          forms_flagged=flagged, plants_waiting=waiting, seconds=time.perf_counter() - started)


async def _plan(plants: list[Plant], period: str) -> _Plan:
    ids = [p.id for p in plants]
    spans = [cycle_span(period, p.reading_day) for p in plants]
    contracts: dict[int, Contract] = {}
    cut_off = contract_cut_off(period)
    for contract in await Contract.filter(plant_id__in=ids, effective_from__lte=cut_off).order_by("effective_from"):
        contracts[contract.plant_id] = contract  # the latest version in force wins
    by_plant: dict[int, dict[MeterKind, Meter]] = {}
    by_id: dict[int, Meter] = {}
    # the meter in place at the cut-off, and the one it replaced when the swap (换表) was inside the
    # cycle: energy = the old meter's part up to the swap + the new meter's from it. One swap per
    # meter and cycle; after a second one the middle meter has no reading at the cycle's start and
    # the form is held for staff (MISSING).
    for meter in await Meter.filter(plant_id__in=ids).order_by("installed_on", "id"):
        by_plant.setdefault(meter.plant_id, {})[meter.kind] = meter
        by_id[meter.id] = meter
    keep = [i for i, p in enumerate(plants) if p.id in contracts]
    meters = [[by_plant.get(plants[i].id, {}).get(MeterKind.GENERATION),
               by_plant.get(plants[i].id, {}).get(MeterKind.GRID)] for i in keep]

    def replaced_in_cycle(meter: Meter | None, span: tuple[dt.datetime, dt.datetime]) -> Meter | None:
        if meter is None or meter.replaces_id is None or meter.replaced_at is None:
            return None
        start, end = span
        return by_id.get(meter.replaces_id) if start < meter.replaced_at < end else None

    return _Plan(plants=[plants[i] for i in keep], contracts=[contracts[plants[i].id] for i in keep],
                 spans=[spans[i] for i in keep], meters=meters,
                 replaced=[[replaced_in_cycle(m, spans[i]) for m in pair] for i, pair in zip(keep, meters)])


@dataclass
class _Arrays:
    previous: np.ndarray  # (plants × 3, 5) [dial units], NaN = missing
    current: np.ndarray
    previous_at: np.ndarray  # (plants × 3, 5) datetime64[s], NaT = missing
    current_at: np.ndarray
    multiplier: np.ndarray  # (plants × 3,)
    rollover_at: np.ndarray
    capacity_kw: np.ndarray
    suspects: list[list[dict]]  # per row (plants × 3): findings of flagged readings in the window


def _place_meters(plan: _Plan, arrays: _Arrays) -> tuple[dict[tuple[int, str], tuple[int, int]],
                                                         dict[int, tuple[dt.datetime, dt.datetime]]]:
    """Give each plan meter its rows: multiplier, register capacity and plausibility limit into ``arrays``.

    Returns the (row, column) of each (meter id, register) and the cycle span of each meter.
    """
    row_of: dict[tuple[int, str], tuple[int, int]] = {}  # (meter id, register) → (row, column)
    boundaries: dict[int, tuple[dt.datetime, dt.datetime]] = {}

    def place(row: int, meter: Meter, plant: Plant, g: int, registers: tuple[str, ...],
              span: tuple[dt.datetime, dt.datetime]) -> None:
        arrays.multiplier[row] = meter.multiplier
        arrays.rollover_at[row] = 10.0 ** meter.register_digits
        if g != 1:  # generation and export cannot exceed what the plant can produce
            arrays.capacity_kw[row] = float(plant.capacity_kwp)
        for c, register in enumerate(registers):
            row_of[(meter.id, register)] = (row, c)
        boundaries[meter.id] = span

    for i, (plant, meters, replaced, (start, end)) in enumerate(zip(plan.plants, plan.meters, plan.replaced,
                                                                    plan.spans)):
        for g, (_, kind, registers) in enumerate(GROUPS):
            meter = meters[0] if kind == MeterKind.GENERATION else meters[1]
            if meter is not None:
                old = replaced[0 if kind == MeterKind.GENERATION else 1]
                # a meter that replaced another during the cycle is read from the swap on
                place(i * len(GROUPS) + g, meter, plant, g, registers, (meter.replaced_at, end) if old else (start, end))
    first_part = len(plan.plants) * len(GROUPS)
    for p, (i, g, old) in enumerate(plan.parts()):
        new_meter = plan.meters[i][0 if GROUPS[g][1] == MeterKind.GENERATION else 1]
        place(first_part + p, old, plan.plants[i], g, GROUPS[g][2], (plan.spans[i][0], new_meter.replaced_at))
    return row_of, boundaries


async def _window_readings(row_of: dict[tuple[int, str], tuple[int, int]],
                           boundaries: dict[int, tuple[dt.datetime, dt.datetime]]) -> tuple[list, ...]:
    """The stored readings within WINDOW of the meters' cycle bounds, of the registers placed.

    Returns lists, one item per reading: keys (row × 5 + column), times [s since the epoch, UTC],
    revisions, values [meter units], the (start, end) bounds of the meter's cycle [s], and the
    flagged ones as (index into these lists, meter id, register).
    """
    meter_ids = list(boundaries)
    lo = min(s for s, _ in boundaries.values()) - WINDOW
    hi = max(e for _, e in boundaries.values()) + WINDOW
    edge_of = {meter_id: (int(start.timestamp()), int(end.timestamp()))
               for meter_id, (start, end) in boundaries.items()}
    keys, times, revisions, values, edges = [], [], [], [], []
    flagged: list[tuple[int, int, str]] = []  # (index into the rows below, meter id, register)
    for first in range(0, len(meter_ids), 2000):  # SQLite allows a bounded number of parameters
        chunk = meter_ids[first:first + 2000]
        for meter_id, register, epoch, revision, value, flag in await _reading_rows(chunk, lo, hi):
            place = row_of.get((meter_id, register))
            if place is None:
                continue
            if flag:
                flagged.append((len(keys), meter_id, register))
            keys.append(place[0] * 5 + place[1])
            times.append(epoch)
            revisions.append(revision)
            values.append(value)
            edges.append(edge_of[meter_id])
    return keys, times, revisions, values, edges, flagged


def _pick_boundary_readings(arrays: _Arrays, key: np.ndarray, at: np.ndarray, revision: np.ndarray,
                            value: np.ndarray, edge: np.ndarray, trusted: np.ndarray, window: int) -> None:
    """Put the reading chosen at each register's previous and current bound into ``arrays``."""
    for b, (values_out, times_out) in enumerate(((arrays.previous, arrays.previous_at),
                                                 (arrays.current, arrays.current_at))):
        distance = np.abs(at - edge[:, b])
        near = np.flatnonzero((distance <= window) & trusted)
        if near.size == 0:
            continue
        # closest first, then the earlier, then the highest revision; the first per register wins
        order = near[np.lexsort((-revision[near], at[near], distance[near], key[near]))]
        _, first_of = np.unique(key[order], return_index=True)
        chosen = order[first_of]
        values_out.reshape(-1)[key[chosen]] = value[chosen]
        times_out.reshape(-1)[key[chosen]] = at[chosen].astype("datetime64[s]")


async def _load_readings(plan: _Plan) -> _Arrays:
    n = len(plan.plants) * len(GROUPS) + len(plan.parts())
    shape = (n, 5)
    arrays = _Arrays(previous=np.full(shape, np.nan), current=np.full(shape, np.nan),
                     previous_at=np.full(shape, np.datetime64("NaT"), dtype="datetime64[s]"),
                     current_at=np.full(shape, np.datetime64("NaT"), dtype="datetime64[s]"),
                     multiplier=np.ones(n), rollover_at=np.full(n, 1e6),
                     # import is bounded by the site's load, which we do not know: no plausibility limit
                     capacity_kw=np.full(n, 1e12), suspects=[[] for _ in range(n)])
    row_of, boundaries = _place_meters(plan, arrays)
    if not boundaries:
        return arrays
    keys, times, revisions, values, edges, flagged = await _window_readings(row_of, boundaries)
    if not keys:
        return arrays
    key = np.array(keys, dtype=np.int64)
    at = np.array(times, dtype=np.int64)  # [s since the epoch, UTC]
    revision = np.array(revisions, dtype=np.int64)
    value = np.array(values, dtype=np.float64)
    edge = np.array(edges, dtype=np.int64)
    window = int(WINDOW.total_seconds())
    trusted = await _drop_suspects(arrays, flagged, key, at, revision, edge, window, plan)
    _pick_boundary_readings(arrays, key, at, revision, value, edge, trusted, window)
    return arrays


async def _drop_suspects(arrays: _Arrays, flagged: list[tuple[int, int, str]], key: np.ndarray, at: np.ndarray,
                         revision: np.ndarray, edge: np.ndarray, window: int, plan: _Plan) -> np.ndarray:
    """Which reading rows may be boundary readings (not a flagged effective value), and the
    findings of the flagged ones in their own cycle's window, into ``arrays.suspects``.

    Flagged readings are few, so each is looked at on its own (one query for their figures).
    """
    trusted = np.ones(key.size, dtype=bool)
    suspect = []
    for i, meter_id, register in flagged:
        same_time = (key == key[i]) & (at == at[i])
        if (revision[same_time] > revision[i]).any():
            continue  # a staff correction at that time replaces it
        trusted &= ~same_time
        if edge[i, 0] - window <= at[i] <= edge[i, 1] + window:
            suspect.append((i, meter_id, register))
    if not suspect:
        return trusted
    serial_of = {m.id: m.serial for meters in (*plan.meters, *plan.replaced) for m in meters if m is not None}
    stamps = [int(at[i]) for i, _, _ in suspect]
    details = {}
    for row in await Reading.filter(meter_id__in=list({m for _, m, _ in suspect}), flag__isnull=False,
                                    read_at__gte=dt.datetime.fromtimestamp(min(stamps), UTC),
                                    read_at__lte=dt.datetime.fromtimestamp(max(stamps), UTC)):
        details[(row.meter_id, row.register, int(row.read_at.timestamp()), row.revision)] = row
    for i, meter_id, register in suspect:
        reading = details.get((meter_id, register, int(at[i]), int(revision[i])))
        if reading is None:
            continue  # changed since we read it: the next run sees it
        detail = reading.flag_detail or {}
        arrays.suspects[int(key[i]) // 5].append({
            "code": "implausible_reading", "flag": reading.flag, "meter": serial_of.get(meter_id),
            "register": register, "read_at": reading.read_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "value": str(reading.value),
            **{k: detail[k] for k in ("previous", "previous_at", "multiplier", "hours", "kwh", "limit_kwh", "basis",
                                      "margin", "message") if k in detail}})
    return trusted


async def _reading_rows(meter_ids: list[int], lo: dt.datetime, hi: dt.datetime) -> list[tuple]:
    """(meter id, register, read_at [s since the epoch], revision, value [float], flag) of these
    meters' readings in [lo, hi].

    Plain SQL rather than the ORM, with the database doing the conversions: a cycle reads tens of
    thousands of rows, and converting them one Python object at a time (ISO text, Decimal,
    aware datetimes) costs more than the whole engine run.
    """
    conn = connections.get("default")
    if conn.capabilities.dialect == "sqlite":
        marks = ", ".join("?" for _ in meter_ids)
        sql = ("SELECT meter_id, register, CAST(strftime('%s', read_at) AS INTEGER), revision, "
               "CAST(value AS REAL), flag FROM reading WHERE read_at >= ? AND read_at <= ? "
               f"AND meter_id IN ({marks})")
        # stored as UTC text: compare with text of the same form
        params = [p.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S+00:00") for p in (lo, hi)]
    else:
        marks = ", ".join(f"${i + 3}" for i in range(len(meter_ids)))
        sql = ("SELECT meter_id, register, CAST(EXTRACT(EPOCH FROM read_at) AS BIGINT), revision, "
               "CAST(value AS DOUBLE PRECISION), flag FROM reading WHERE read_at >= $1 AND read_at <= $2 "
               f"AND meter_id IN ({marks})")
        params = [lo.astimezone(UTC), hi.astimezone(UTC)]
    _, rows = await conn.execute_query(sql, [*params, *meter_ids])
    return [tuple(r) for r in rows]


@dataclass
class _Computed:
    kwh: np.ndarray  # (plants, 3 groups, 5 registers) [kWh]
    self_use: np.ndarray  # (plants, 4 rates) [kWh]
    flags: np.ndarray  # (plants,) uint16
    part_kwh: np.ndarray = None  # (parts, 5 registers) [kWh]: replaced meters up to the swap (_Plan.parts)


def _compute(plan: _Plan, arrays: _Arrays) -> _Computed:
    """The engine's part, in an executor thread: no I/O, no awaits."""
    plants = len(plan.plants)
    hours = 24.0 * 31
    energy = register_energy(arrays.previous, arrays.current, arrays.multiplier,
                             rollover_at=arrays.rollover_at, capacity_kw=arrays.capacity_kw, hours=hours)
    main = plants * len(GROUPS)
    kwh = energy.kwh[:main].reshape(plants, len(GROUPS), 5).copy()
    row_flags = energy.flags[:main].reshape(plants, len(GROUPS)).copy()
    # a replaced meter's part up to the swap adds to the group it was read for: old part + new
    # part, what billing_engine's MeterReplacement computes, with each meter's own line on the form
    for p, (i, g, _) in enumerate(plan.parts()):
        kwh[i, g] += energy.kwh[main + p]
        row_flags[i, g] |= energy.flags[main + p] | np.uint16(RegisterFlag.REPLACED)
    flags = np.bitwise_or.reduce(row_flags, axis=1)
    part_kwh = energy.kwh[main:]
    self_use, sc_flags = self_consumption(kwh[:, 0, 1:], kwh[:, 2, 1:],
                                          tolerance_kwh=0.0)
    return _Computed(kwh=kwh, self_use=self_use, flags=(flags | sc_flags).astype(np.uint16), part_kwh=part_kwh)


def _only(plan: _Plan, computed: _Computed, arrays: _Arrays, keep: np.ndarray):
    """The plan, results and arrays restricted to the plants where ``keep`` is true."""
    idx = np.flatnonzero(keep)
    rows = (idx[:, None] * len(GROUPS) + np.arange(len(GROUPS))).ravel()
    first_part = len(plan.plants) * len(GROUPS)
    kept = set(int(i) for i in idx)
    rows = np.concatenate([rows, [first_part + p for p, (i, _, _) in enumerate(plan.parts()) if i in kept]]
                          ).astype(np.int64)
    pick = [int(i) for i in idx]
    plan = _Plan(plants=[plan.plants[i] for i in pick], contracts=[plan.contracts[i] for i in pick],
                 spans=[plan.spans[i] for i in pick], meters=[plan.meters[i] for i in pick],
                 replaced=[plan.replaced[i] for i in pick])
    part_rows = rows[len(idx) * len(GROUPS):] - first_part
    computed = _Computed(kwh=computed.kwh[idx], self_use=computed.self_use[idx], flags=computed.flags[idx],
                         part_kwh=computed.part_kwh[part_rows])
    arrays = _Arrays(previous=arrays.previous[rows], current=arrays.current[rows],
                     previous_at=arrays.previous_at[rows], current_at=arrays.current_at[rows],
                     multiplier=arrays.multiplier[rows], rollover_at=arrays.rollover_at[rows],
                     capacity_kw=arrays.capacity_kw[rows], suspects=[arrays.suspects[r] for r in rows])
    return plan, computed, arrays


def _text(values: np.ndarray, fmt: str) -> np.ndarray:
    """Numbers as fixed-decimal text, NaN as None (object array), formatted in one pass."""
    out = np.char.mod(fmt, np.nan_to_num(values)).astype(object)
    out[np.isnan(values)] = None
    return out


def _time_text(values: np.ndarray) -> np.ndarray:
    out = (np.char.add(np.datetime_as_string(values, unit="s"), "Z")).astype(object)
    out[np.isnat(values)] = None
    return out


def _wh_text(wh: int) -> str:
    return f"{'-' if wh < 0 else ''}{abs(wh) // 1000}.{abs(wh) % 1000:03d}"


def form_contents(plan: _Plan, arrays: _Arrays, computed: _Computed) -> list[dict]:
    """What each plant's 电量确认单 holds: lines (meter × register: previous and current reading,
    multiplier, kWh), energies per rate, totals, flags. Formatted for the whole batch at once."""
    previous, current = _text(arrays.previous, "%.4f"), _text(arrays.current, "%.4f")
    previous_at, current_at = _time_text(arrays.previous_at), _time_text(arrays.current_at)
    # energies to the Wh, as integers: the form's figures and its totals add up exactly
    kwh_wh = np.rint(computed.kwh * 1000).astype(np.int64)
    self_wh = np.rint(computed.self_use * 1000).astype(np.int64)
    # the part of a replaced meter (up to the swap) is a line of its own, before the new meter's,
    # as the paper form has it (换表): each line's kWh is its meter's, the group's energy their sum
    first_part = len(plan.plants) * len(GROUPS)
    parts = {(i, g): (first_part + p, old) for p, (i, g, old) in enumerate(plan.parts())}
    part_wh = np.rint(computed.part_kwh * 1000).astype(np.int64)
    out = []
    for i in range(len(plan.plants)):
        lines = []
        for g, (group, kind, registers) in enumerate(GROUPS):
            meter = plan.meters[i][0] if kind == MeterKind.GENERATION else plan.meters[i][1]
            row = i * len(GROUPS) + g
            part = parts.get((i, g))
            if part is not None:
                part_row, old = part
                for c, register in enumerate(registers):
                    lines.append({
                        "group": group, "meter": old.serial, "register": register,
                        "previous": previous[part_row, c], "previous_at": previous_at[part_row, c],
                        "current": current[part_row, c], "current_at": current_at[part_row, c],
                        "multiplier": int(arrays.multiplier[part_row]),
                        "kwh": _wh_text(int(part_wh[part_row - first_part, c])), "replaced": True,
                    })
            multiplier = int(arrays.multiplier[row])
            for c, register in enumerate(registers):
                own = int(kwh_wh[i, g, c]) - (int(part_wh[part[0] - first_part, c]) if part else 0)
                lines.append({
                    "group": group, "meter": meter.serial if meter else None, "register": register,
                    "previous": previous[row, c], "previous_at": previous_at[row, c],
                    "current": current[row, c], "current_at": current_at[row, c],
                    "multiplier": multiplier, "kwh": _wh_text(own),
                })
        per_rate = {"generation": kwh_wh[i, 0, 1:], "self_use": self_wh[i], "export": kwh_wh[i, 2, 1:],
                    "grid": kwh_wh[i, 1, 1:]}
        periods = {rate: {k: _wh_text(int(v[r])) for k, v in per_rate.items()} for r, rate in enumerate(RATES)}
        total = {k: Decimal(int(v.sum())).scaleb(-3) for k, v in per_rate.items()}
        flags = int(computed.flags[i])
        findings = [f for g in range(len(GROUPS)) for f in arrays.suspects[i * len(GROUPS) + g]]
        findings += [f for g in range(len(GROUPS)) if (i, g) in parts for f in arrays.suspects[parts[(i, g)][0]]]
        out.append({"lines": lines, "periods": periods, "total": total, "flags": flag_names(flags),
                    "findings": findings, "hold": bool(flags & HOLD) or bool(findings)})
    return out


async def _write_forms(plan: _Plan, period: str, arrays: _Arrays, computed: _Computed,
                       now: dt.datetime, *, apps: outbox.NotifyApps) -> tuple[int, int, int]:
    """One transaction for the batch: its cycles, its forms and their audit events.

    Returns forms created, of them flagged, and forms another run had made meanwhile.
    """
    created = flagged = raced = 0
    plant_ids = [p.id for p in plan.plants]
    async with in_transaction() as conn:
        await ReadingCycle.bulk_create(
            [ReadingCycle(plant_id=p.id, period=period, starts_at=start, ends_at=end)
             for p, (start, end) in zip(plan.plants, plan.spans)],
            ignore_conflicts=True, using_db=conn)
        cycle_of = dict(await ReadingCycle.filter(period=period, plant_id__in=plant_ids)
                        .using_db(conn).values_list("plant_id", "id"))
        has_form = set(await ConfirmationForm.filter(cycle_id__in=list(cycle_of.values()))
                       .using_db(conn).values_list("cycle_id", flat=True))
        forms, events = [], []
        contents = form_contents(plan, arrays, computed)
        for i, (plant, contract) in enumerate(zip(plan.plants, plan.contracts)):
            if cycle_of[plant.id] in has_form:
                raced += 1  # another run got here first
                continue
            content = contents[i]
            send = not content["hold"]
            total = content["total"]
            forms.append(ConfirmationForm(
                cycle_id=cycle_of[plant.id], version=1, state=FormState.SENT if send else FormState.DRAFT,
                lines=content["lines"], periods=content["periods"], generation_kwh=total["generation"],
                self_use_kwh=total["self_use"], export_kwh=total["export"], grid_kwh=total["grid"],
                flags=content["flags"], findings=content["findings"], reader="AMI", sent_at=now if send else None,
                answer_due_at=now + dt.timedelta(days=contract.auto_confirm_days) if send else None))
            events.append(AuditEvent(
                actor=audit.SYSTEM, action="CreateForm", entity="form", entity_id=f"{plant.code}/{period}/v1",
                after=audit.plain({"state": forms[-1].state, "total": total, "flags": content["flags"],
                                   **({"findings": content["findings"]} if content["findings"] else {})}),
                request_id=request_id_var.get()))
            created += 1
            flagged += not send
        # the unique key (cycle, version) is the last word when two runs race
        await ConfirmationForm.bulk_create(forms, ignore_conflicts=True, using_db=conn)
        await AuditEvent.bulk_create(events, using_db=conn)
        await outbox.forms_sent(await ConfirmationForm.filter(  # FormSent, AutoConfirmComing (repeats are no-ops)
            cycle_id__in=[f.cycle_id for f in forms], version=1).using_db(conn).values_list("id", flat=True),
            using_db=conn, apps=apps, now=now)
    return created, flagged, raced


async def cycle_status(period: str) -> dict:
    """``{"period", "forms": {state: count}, "bills": {state: count}}`` of the latest versions."""
    parse_period(period)
    forms: Counter[str] = Counter()
    latest: dict[int, tuple[int, str]] = {}
    for cycle_id, version, state in await ConfirmationForm.filter(cycle__period=period).values_list(
            "cycle_id", "version", "state"):
        if cycle_id not in latest or version > latest[cycle_id][0]:
            latest[cycle_id] = (version, state)
    forms.update(str(state) for _, state in latest.values())
    bills: Counter[str] = Counter(str(state) for state in await Bill.filter(cycle__period=period)
                                  .values_list("state", flat=True))
    return {"period": period, "forms": dict(sorted(forms.items())), "bills": dict(sorted(bills.items()))}
