"""What a plant generated, for owners: summaries and history from stored data only.

Sources, in order of preference:

* **energy** — telemetry rollups (15 min, day, month buckets; ``TelemetryRollup``); where a 15-min
  or day bucket has no rollup, the devices' lifetime counters in the samples (positive
  differences, each labelled by the start of its interval; a drop of more than 10 % is a reset,
  DOMAIN.md); the lifetime total is the sum of the devices' latest lifetime counters.
* **self-use and export** of a day — :func:`settlement.billing.ebill.daily_energy` (generation minus the
  grid meter's reverse-register export between the day's two midnight readings); of a month — the
  confirmed (or auto-confirmed) form of that month's reading cycle. A billing month (period
  ``YYYY-MM``) runs from the reading day of the month before to the reading day of ``YYYY-MM``,
  so a bar's energy (calendar month) and its self-use (billing period) cover slightly different
  spans; the API says which cycle span the latter is.
* **revenue** — what the owner's contract charges for the self-used energy: the energy lines of
  the month's current bill [fen]. Without a bill it is unknown.
* **CO2 and standard coal** avoided — energy × the factors of the settings [kg].

Anything not measured is None (null in the API), never estimated, and its bar says why
(``reason``: "no telemetry", or "not yet" for a time still to come). Each bar also says where its
energy comes from (``source``):

* ``telemetry`` — as above.
* ``form`` — a calendar month (year and lifetime views, and a month's total) whose telemetry does
  not cover it (a day rollup for each of its days, up to today; a month rollup written without
  day rollups stands for its whole month) takes the generation of the confirmed form of the
  billing period of the same name instead: the generation meter's reading over the reading cycle,
  which runs from reading day to reading day (``billing_period`` names it).
* ``telemetry+form`` — a year (or lifetime total) made of months of both.

A month with some telemetry and no confirmed form keeps what the telemetry measured, with a
``reason`` saying how many of its days that covers.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from settlement.billing.ebill import daily_energy
from settlement.errors import InvalidInput
from settlement.models import (
    Bill,
    BillLine,
    BillState,
    ConfirmationForm,
    FormState,
    LineKind,
    ReadingCycle,
    TelemetryDevice,
    TelemetryGranularity,
    TelemetryRollup,
    TelemetrySample,
)
from settlement.telemetry.energy import counter_intervals
from settlement.clock import LOCAL, UTC, utc_now

QUARTER = dt.timedelta(minutes=15)
FINAL = (FormState.CONFIRMED, FormState.AUTO_CONFIRMED)
NO_TELEMETRY = "no telemetry"
NOT_YET = "not yet"
SPANS = ("day", "month", "year", "lifetime")
# a plant whose last state is older than this is shown offline
ONLINE_WITHIN = dt.timedelta(minutes=30)


@dataclass(frozen=True)
class Factors:
    co2_kg_per_kwh: Decimal
    coal_kg_per_kwh: Decimal


@dataclass
class Bar:
    """One point of a history: energies [kWh], revenue [fen], savings [kg]; None = not measured."""

    label: str
    start: dt.datetime
    energy_wh: int | None = None
    self_use_wh: int | None = None
    export_wh: int | None = None
    revenue_fen: int | None = None
    billing_period: str | None = None
    source: str | None = None  # of energy_wh: "telemetry", "form" or "telemetry+form"
    reason: str | None = None  # why energy_wh is None, or only partly measured

    def measured(self, wh: int | None, now: dt.datetime) -> Bar:
        """Set the energy measured by telemetry, or why there is none."""
        self.energy_wh = wh
        if wh is not None:
            self.source = "telemetry"
        else:
            self.reason = NOT_YET if self.start > now else NO_TELEMETRY
        return self

    def as_dict(self, factors: Factors) -> dict:
        kwh = _kwh(self.energy_wh)
        return {
            "label": self.label, "start": self.start.isoformat(), "energy_kwh": kwh,
            "source": self.source, "reason": self.reason,
            "self_use_kwh": _kwh(self.self_use_wh), "export_kwh": _kwh(self.export_wh),
            "revenue_fen": self.revenue_fen, "billing_period": self.billing_period,
            "co2_kg": None if kwh is None else _kg(kwh * factors.co2_kg_per_kwh),
            "coal_kg": None if kwh is None else _kg(kwh * factors.coal_kg_per_kwh),
        }


def _kwh(wh: int | None) -> Decimal | None:
    return None if wh is None else (Decimal(wh) / 1000).quantize(Decimal("0.001"))


def _kg(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def _sum(values) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def local_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), LOCAL)


# --- samples ------------------------------------------------------------------------------------


async def sample_energy(plant_id: int, starts_at: dt.datetime, ends_at: dt.datetime,
                        step: dt.timedelta = QUARTER) -> dict[dt.datetime, int]:
    """Energy per ``step`` bucket (local, labelled by start) from the devices' lifetime counters [Wh].

    The interval between two samples is counted in the bucket of its start, as DESIGN.md labels
    intervals. Only intervals that start in ``[starts_at, ends_at)`` count.
    """
    device_ids = await TelemetryDevice.filter(plant_id=plant_id).values_list("id", flat=True)
    if not device_ids:
        return {}
    rows = await TelemetrySample.filter(
        device_id__in=list(device_ids), ts__gte=starts_at.astimezone(UTC), ts__lte=(ends_at + step).astimezone(UTC),
        energy_wh__isnull=False).order_by("device_id", "ts").values_list("device_id", "ts", "energy_wh")
    origin = starts_at.astimezone(LOCAL)
    out: dict[dt.datetime, int] = defaultdict(int)
    for start, wh in counter_intervals(rows):
        if starts_at <= start < ends_at:
            out[origin + step * ((start.astimezone(LOCAL) - origin) // step)] += wh
    return dict(out)


async def lifetime_wh(plant_ids: list[int]) -> dict[int, int | None]:
    """Lifetime energy per plant [Wh]: the sum of its devices' latest lifetime counters, else the sum
    of its month (or, lacking them, day) rollups; None when nothing was ever measured."""
    out: dict[int, int | None] = {pid: None for pid in plant_ids}
    devices = await TelemetryDevice.filter(plant_id__in=plant_ids).values_list("id", "plant_id")
    for device_id, plant_id in devices:
        latest = await TelemetrySample.filter(device_id=device_id, energy_wh__isnull=False).order_by("-ts") \
            .first().values_list("energy_wh", flat=True)
        if latest is not None:
            out[plant_id] = (out[plant_id] or 0) + int(latest)
    missing = [pid for pid, wh in out.items() if wh is None]
    for granularity in (TelemetryGranularity.MONTH, TelemetryGranularity.DAY):
        if not missing:
            break
        for plant_id, wh in await TelemetryRollup.filter(plant_id__in=missing, granularity=granularity) \
                .values_list("plant_id", "energy_wh"):
            out[plant_id] = (out[plant_id] or 0) + int(wh)
        missing = [pid for pid, wh in out.items() if wh is None]
    return out


async def today_wh(plant_id: int, now: dt.datetime) -> int | None:
    """Energy since local midnight [Wh]: the 15-min rollups, else the day rollup, else the samples."""
    start = local_midnight(now.astimezone(LOCAL).date())
    quarter = await TelemetryRollup.filter(plant_id=plant_id, granularity=TelemetryGranularity.QUARTER_HOUR,
                                           bucket_start__gte=start.astimezone(UTC),
                                           bucket_start__lt=now.astimezone(UTC)).values_list("energy_wh", flat=True)
    if quarter:
        return int(sum(quarter))
    day = await TelemetryRollup.filter(plant_id=plant_id, granularity=TelemetryGranularity.DAY,
                                       bucket_start=start.astimezone(UTC)).values_list("energy_wh", flat=True)
    if day:
        return int(day[0])
    samples = await sample_energy(plant_id, start, now, step=dt.timedelta(days=1))
    return _sum(samples.values())


def status_of(state: dict | None, now: dt.datetime) -> str:
    """``online`` when the last live state is recent, ``offline`` when old, ``unknown`` without one."""
    if not state or "ts" not in state:
        return "unknown"
    try:
        ts = dt.datetime.fromisoformat(str(state["ts"]).replace("Z", "+00:00"))
    except ValueError:
        return "unknown"
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return "online" if now - ts <= ONLINE_WITHIN else "offline"


def live_today_wh(state: dict | None, now: dt.datetime) -> int | None:
    """Today's energy the live state tells [Wh], when it was published today (local)."""
    if not state or state.get("today_kwh") is None:
        return None
    try:
        ts = dt.datetime.fromisoformat(str(state["ts"]).replace("Z", "+00:00"))
        kwh = Decimal(str(state["today_kwh"]))
    except (KeyError, ValueError, ArithmeticError):
        return None
    if ts.tzinfo is None or not kwh.is_finite() or ts.astimezone(LOCAL).date() != now.astimezone(LOCAL).date():
        return None
    return int((kwh * 1000).to_integral_value(rounding=ROUND_HALF_UP))


# --- history ------------------------------------------------------------------------------------


#: The days ``at`` may name: a plant has nothing before, and the API's document says the same range.
FIRST_DAY, LAST_DAY = dt.date(2000, 1, 1), dt.date(2099, 12, 31)
_AT = re.compile(r"^([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?$")


def parse_at(span: str, at: str | None, now: dt.datetime) -> dt.date:
    """The first local day of the span that contains ``at``'s first day (``at`` a day, month or
    year: YYYY-MM-DD, YYYY-MM or YYYY; default today): ``span=month&at=2026-05-17`` is May 2026,
    ``span=day&at=2026-05`` is 1 May 2026. A span in the future has nothing measured (nulls)."""
    today = now.astimezone(LOCAL).date()
    if span not in SPANS:
        raise InvalidInput(f"span is one of {', '.join(SPANS)}", code="bad_span")
    if span == "lifetime":
        return today
    if not at:
        day = today
    else:
        found = _AT.match(at)
        try:
            if found is None:
                raise ValueError(at)
            year, month, mday = (int(part) if part else 1 for part in found.groups())
            day = dt.date(year, month, mday)
        except ValueError:
            raise InvalidInput("at is a day, month or year: YYYY-MM-DD, YYYY-MM or YYYY", code="bad_at") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise InvalidInput(f"at is between {FIRST_DAY.year} and {LAST_DAY.year}", code="bad_at")
    return day.replace(day=1) if span == "month" else day.replace(month=1, day=1) if span == "year" else day


async def _rollups(plant_id: int, granularity: TelemetryGranularity, starts_at: dt.datetime,
                   ends_at: dt.datetime) -> dict[dt.datetime, int]:
    rows = await TelemetryRollup.filter(plant_id=plant_id, granularity=granularity,
                                        bucket_start__gte=starts_at.astimezone(UTC),
                                        bucket_start__lt=ends_at.astimezone(UTC)) \
        .values_list("bucket_start", "energy_wh")
    return {start.astimezone(LOCAL): int(wh) for start, wh in rows}


@dataclass(frozen=True)
class MonthTelemetry:
    """What telemetry says of one calendar month: energy [Wh] and how many of its days it covers."""

    energy_wh: int
    days: int
    whole: bool = False  # a month rollup without day rollups: a figure for the whole month


async def _monthly_energy(plant_id: int, first: dt.date, months: int) -> dict[tuple[int, int], MonthTelemetry]:
    """Energy per calendar month from month rollups, else the month's day rollups, with the days
    the day rollups cover."""
    start = local_midnight(first)
    end_year, end_month = divmod(first.month - 1 + months, 12)
    end = local_midnight(dt.date(first.year + end_year, end_month + 1, 1))
    by_month = {(when.year, when.month): wh
                for when, wh in (await _rollups(plant_id, TelemetryGranularity.MONTH, start, end)).items()}
    days: dict[tuple[int, int], list[int]] = defaultdict(list)
    for when, wh in (await _rollups(plant_id, TelemetryGranularity.DAY, start, end)).items():
        days[(when.year, when.month)].append(wh)
    out = {key: MonthTelemetry(by_month.get(key, sum(whs)), len(whs)) for key, whs in days.items()}
    for key, wh in by_month.items():
        out.setdefault(key, MonthTelemetry(wh, 0, whole=True))
    return out


def _days_due(year: int, month: int, now: dt.datetime) -> int:
    """The days of a month up to today (local), today included: what telemetry should cover."""
    today = now.astimezone(LOCAL).date()
    first = dt.date(year, month, 1)
    last = dt.date(year, month, calendar.monthrange(year, month)[1])
    return max(0, (min(last, today) - first).days + 1)


def _month_bar(bar: Bar, telemetry: MonthTelemetry | None, billed: dict, now: dt.datetime) -> Bar:
    """A calendar month's energy: telemetry that covers it, else the confirmed form's generation,
    else what telemetry there is, else None with the reason (module docstring)."""
    due = _days_due(bar.start.year, bar.start.month, now)
    if telemetry is not None and (telemetry.whole or telemetry.days >= due):
        return bar.measured(telemetry.energy_wh, now)
    if billed.get("generation_wh") is not None:
        bar.energy_wh, bar.source, bar.billing_period = billed["generation_wh"], "form", bar.label
        return bar
    bar.measured(telemetry.energy_wh if telemetry is not None else None, now)
    if telemetry is not None:
        bar.reason = f"telemetry on {telemetry.days} of {due} days"
    return bar


def _combined(bars: list[Bar], now: dt.datetime, start: dt.datetime) -> tuple[int | None, str | None, str | None]:
    """(energy, source, reason) of a sum of bars."""
    energy = _sum(b.energy_wh for b in bars)
    if energy is None:
        return None, None, NOT_YET if start > now else NO_TELEMETRY
    sources = {part for b in bars if b.source for part in b.source.split("+")}
    return energy, "+".join(s for s in ("telemetry", "form") if s in sources), None


async def billed_months(plant_id: int) -> dict[str, dict]:
    """Per billing period: generation, self-use and export [Wh] of its final form, revenue [fen]
    of its bill."""
    out: dict[str, dict] = {}
    cycles = {cid: period for cid, period in await ReadingCycle.filter(plant_id=plant_id).values_list("id", "period")}
    if not cycles:
        return out
    for cycle_id, version, self_use, export, generation in await ConfirmationForm.filter(
            cycle_id__in=list(cycles), state__in=FINAL).order_by("version") \
            .values_list("cycle_id", "version", "self_use_kwh", "export_kwh", "generation_kwh"):
        out[cycles[cycle_id]] = {"self_use_wh": int(Decimal(self_use) * 1000),
                                 "export_wh": int(Decimal(export) * 1000), "revenue_fen": None,
                                 "generation_wh": int(Decimal(generation) * 1000)}
    bills = {bid: cid for bid, cid in await Bill.filter(cycle_id__in=list(cycles)).exclude(
        state=BillState.SUPERSEDED).values_list("id", "cycle_id")}
    if bills:
        revenue: dict[int, int] = defaultdict(int)
        for bill_id, amount in await BillLine.filter(bill_id__in=list(bills), kind=LineKind.ENERGY) \
                .values_list("bill_id", "amount_fen"):
            revenue[bills[bill_id]] += int(amount)
        for cycle_id, fen in revenue.items():
            out.setdefault(cycles[cycle_id], {"self_use_wh": None, "export_wh": None})["revenue_fen"] = fen
    return out


async def history(plant_id: int, span: str, first: dt.date,
                  now: dt.datetime | None = None) -> tuple[list[Bar], Bar]:
    """The bars of one span and their total (``now`` tells what is still to come)."""
    now = now or utc_now()
    if span == "day":
        return await _day(plant_id, first, now)
    if span == "month":
        return await _month(plant_id, first, now)
    if span == "year":
        return await _year(plant_id, first.year, now)
    return await _lifetime(plant_id, now)


async def _day(plant_id: int, day: dt.date, now: dt.datetime) -> tuple[list[Bar], Bar]:
    start = local_midnight(day)
    end = local_midnight(day + dt.timedelta(days=1))
    rollups = await _rollups(plant_id, TelemetryGranularity.QUARTER_HOUR, start, end)
    samples = await sample_energy(plant_id, start, end) if len(rollups) < 96 else {}
    bars = []
    when = start
    while when < end:  # 92 or 100 quarters never happen here (no DST in China), but walk the clock
        wh = rollups.get(when, samples.get(when))
        bars.append(Bar(label=when.strftime("%H:%M"), start=when).measured(wh, now))
        when = (when.astimezone(UTC) + QUARTER).astimezone(LOCAL)
    daily = await daily_energy(plant_id, start, end)
    total = Bar(label=day.isoformat(), start=start).measured(
        daily.generation_wh[0] if daily.days and daily.generation_wh[0] is not None
        else _sum(b.energy_wh for b in bars), now)
    if daily.days and daily.self_use_wh[0] is not None and daily.generation_wh[0] == total.energy_wh:
        total.self_use_wh = daily.self_use_wh[0]
        if total.self_use_wh > 0:  # self-use = generation − export, exact unless clipped at zero
            total.export_wh = total.energy_wh - total.self_use_wh
    return bars, total


async def _month(plant_id: int, first: dt.date, now: dt.datetime) -> tuple[list[Bar], Bar]:
    days_in = calendar.monthrange(first.year, first.month)[1]
    start = local_midnight(first)
    end = local_midnight(first + dt.timedelta(days=days_in))
    daily = await daily_energy(plant_id, start, end)
    bars = []
    for day, gen, self_use in zip(daily.days, daily.generation_wh, daily.self_use_wh):
        bar = Bar(label=day.isoformat(), start=local_midnight(day), self_use_wh=self_use).measured(gen, now)
        if gen is not None and self_use:
            bar.export_wh = gen - self_use
        bars.append(bar)
    period = f"{first.year:04d}-{first.month:02d}"
    billed = (await billed_months(plant_id)).get(period, {})
    total = Bar(label=period, start=start, self_use_wh=billed.get("self_use_wh"), export_wh=billed.get("export_wh"),
                revenue_fen=billed.get("revenue_fen"), billing_period=period if billed else None)
    measured = [b.energy_wh for b in bars if b.energy_wh is not None]
    telemetry = MonthTelemetry(sum(measured), len(measured)) if measured else None
    return bars, _month_bar(total, telemetry, billed, now)


async def _year(plant_id: int, year: int, now: dt.datetime) -> tuple[list[Bar], Bar]:
    energy = await _monthly_energy(plant_id, dt.date(year, 1, 1), 12)
    billed = await billed_months(plant_id)
    bars = []
    for month in range(1, 13):
        period = f"{year:04d}-{month:02d}"
        b = billed.get(period, {})
        bars.append(_month_bar(Bar(label=period, start=local_midnight(dt.date(year, month, 1)),
                                   self_use_wh=b.get("self_use_wh"), export_wh=b.get("export_wh"),
                                   revenue_fen=b.get("revenue_fen"), billing_period=period if b else None),
                               energy.get((year, month)), b, now))
    return bars, _total(f"{year:04d}", local_midnight(dt.date(year, 1, 1)), bars, now)


async def _lifetime(plant_id: int, now: dt.datetime) -> tuple[list[Bar], Bar]:
    rollups = await TelemetryRollup.filter(plant_id=plant_id).order_by("bucket_start") \
        .first().values_list("bucket_start", flat=True)
    billed = await billed_months(plant_id)
    years = {int(p[:4]) for p in billed}
    if rollups is not None:
        years.add(rollups.astimezone(LOCAL).year)
    bars = []
    if years:
        first, last = min(years), max(max(years), now.astimezone(LOCAL).year)
        energy = await _monthly_energy(plant_id, dt.date(first, 1, 1), 12 * (last - first + 1))
        for year in range(first, last + 1):
            months = [p for p in billed if p.startswith(f"{year:04d}-")]
            month_bars = [_month_bar(Bar(label=f"{year:04d}-{month:02d}",
                                         start=local_midnight(dt.date(year, month, 1))),
                                     energy.get((year, month)), billed.get(f"{year:04d}-{month:02d}", {}), now)
                          for month in range(1, 13)]
            bar = Bar(label=f"{year:04d}", start=local_midnight(dt.date(year, 1, 1)),
                      self_use_wh=_sum(billed[p].get("self_use_wh") for p in months),
                      export_wh=_sum(billed[p].get("export_wh") for p in months),
                      revenue_fen=_sum(billed[p].get("revenue_fen") for p in months))
            bar.energy_wh, bar.source, bar.reason = _combined(month_bars, now, bar.start)
            bars.append(bar)
    total = _total("lifetime", bars[0].start if bars else local_midnight(now.astimezone(LOCAL).date()), bars, now)
    counters = (await lifetime_wh([plant_id]))[plant_id]
    if counters is not None:  # the devices' lifetime counters, when there are some, say it best
        total.energy_wh, total.source, total.reason = counters, "telemetry", None
    return bars, total


def _total(label: str, start: dt.datetime, bars: list[Bar], now: dt.datetime) -> Bar:
    total = Bar(label=label, start=start, self_use_wh=_sum(b.self_use_wh for b in bars),
                export_wh=_sum(b.export_wh for b in bars), revenue_fen=_sum(b.revenue_fen for b in bars))
    total.energy_wh, total.source, total.reason = _combined(bars, now, start)
    return total
