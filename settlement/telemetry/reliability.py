"""Reliability and performance of plants for a month or a day (DOMAIN.md "Reliability and
performance of plants"), for staff reports and for the owners' mini-program.

Figures per plant
-----------------
* ``energy_kwh`` — the energy of the span from the 15-minute rollups (lifetime counters).
* ``specific_yield_kwh_per_kwp`` — final yield Yf = E / P0 (IEC 61724), P0 the plant's kWp.
* ``availability`` — time-based (IEC 61724): of the 15-minute slots in which the plant should
  produce, the share in which it produced (energy or power in the slot). It should produce where
  its irradiance sensor saw at least :data:`AVAILABILITY_IRRADIANCE` on average, and where there
  is no sensor value, while the sun is at least 10° up in the middle of the slot
  (:mod:`settlement.telemetry.solar`). A gap in the data is a slot without production. In a span
  still going on (this month, today) only the slots that ended by ``now`` count: daylight that
  has not happened yet is neither produced nor missed.
* ``outages``, ``outage_hours`` — the plant's outage events (:mod:`settlement.telemetry.outages`) that
  overlap the span, and their hours inside it (an open one counts up to ``now``);
  ``outage_daylight_hours`` — of those, the hours the sun was up (production really lost).
* ``performance_ratio`` — PR = Yf / Yr with Yr = H_POA / 1 kW/m² (IEC 61724), over the slots that
  carry irradiance only (energy and irradiation of the same slots); None without a sensor.
* ``trip_episodes``, ``repeated_tripping`` — the episodes of repeated tripping
  (:mod:`settlement.telemetry.trips`) that overlap the span, and whether there is one.
* ``reason`` — why figures are None: ``"no telemetry"`` when the plant has neither a 15-minute
  rollup in the span nor an outage overlapping it. Nothing was measured then, so energy, yield
  and availability are None rather than 0 (no data is not a plant that produced nothing), and the
  plant is left out of the figures over owners.

Figures over owners (IEEE 1366, DL/T 836)
-----------------------------------------
The customers are the owners of the measured plants taken (NT of them, ``owners``; plants with
``reason`` "no telemetry" are counted in ``plants_without_telemetry`` only); each outage interrupts its
plant's owner, weighted by the plant's share of the owner's capacity among the plants taken
(``Ni = P0_plant / P0_owner``: an owner of one plant counts whole, an owner of two equal plants
half for an outage of one), so an owner is never interrupted more than once at a time.
``ri`` is the outage's hours inside the span and ``T`` the span's hours up to ``now`` (all of
them once it is over; ``period_hours``):
SAIFI = ΣNi / NT, SAIDI = Σ ri·Ni / NT [h], CAIDI = SAIDI / SAIFI [h] (None without outages),
ASAI = (NT·T − Σ ri·Ni) / (NT·T). With no measured plant they are all None, and the portfolio's
``reason`` says "no telemetry".

Beside them, against the targets :data:`RS1_TARGET_PERCENT` and
:data:`OUTAGES_PER_HOUSEHOLD_YEAR_TARGET` (``*_target`` and ``*_met``, None when the figure is):

* ``rs1_percent`` — DL/T 836 RS-1 (供电可靠率) = (1 − average outage hours per household / T) × 100
  = (1 − SAIDI / T) × 100 [%], 3 places; met when at least 99.976 % (≈ 2.1 h per household per
  year).
* ``outages_per_household_per_year`` — SAIFI annualised: SAIFI × 8760 h / T (a year of 365 days),
  4 places; met when at most 0.8.

Ratios are decimal strings with 4 places, hours 2, energy kWh 3, yields 3, when turned into
JSON by :func:`figures_as_dict`.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
from tortoise import connections

from settlement.errors import InvalidInput
from settlement.models import Plant, TelemetryGranularity, TelemetryRollup
from settlement.telemetry.outages import plant_outages
from settlement.telemetry.trips import plant_episodes
from settlement.telemetry.solar import DEFAULT_LATITUDE, DEFAULT_LONGITUDE, daylight_us, should_produce
from settlement.telemetry.energy import HOUR_US, NULL, QUARTER_US
from settlement.telemetry.store import TelemetryStore, datetime_to_us
from settlement.clock import LOCAL, UTC, utc_now

#: A slot whose mean plane-of-array irradiance reaches this should produce [W/m²].
AVAILABILITY_IRRADIANCE = 50
#: The same, as irradiation in a 15-minute slot [Wh/m²].
AVAILABILITY_IRRADIATION_WH_M2 = AVAILABILITY_IRRADIANCE / 4
RATIO, HOURS, KWH = Decimal("0.0001"), Decimal("0.01"), Decimal("0.001")
NO_TELEMETRY = "no telemetry"
#: DL/T 836 RS-1 a portfolio should reach [%].
RS1_TARGET_PERCENT = Decimal("99.976")
#: Outages per household per year a portfolio should stay within.
OUTAGES_PER_HOUSEHOLD_YEAR_TARGET = Decimal("0.8")
YEAR_HOURS = Decimal(8760)
PERCENT = Decimal("0.001")


@dataclass(frozen=True)
class Span:
    """A local calendar month (``YYYY-MM``) or day (``YYYY-MM-DD``), as UTC bounds."""

    label: str
    start: dt.datetime
    end: dt.datetime

    @classmethod
    def parse(cls, period: str) -> Span:
        try:
            if len(period) == 7:
                year, month = (int(x) for x in period.split("-"))
                first = dt.date(year, month, 1)
                last = dt.date(year, month, calendar.monthrange(year, month)[1]) + dt.timedelta(days=1)
            elif len(period) == 10:
                first = dt.date.fromisoformat(period)
                last = first + dt.timedelta(days=1)
            else:
                raise ValueError
            if not 2000 <= first.year <= 2100:
                raise ValueError
        except ValueError:
            raise InvalidInput(f"a period is YYYY-MM or YYYY-MM-DD, not {period!r}", code="bad_period") from None
        return cls(period, dt.datetime.combine(first, dt.time(), LOCAL).astimezone(UTC),
                   dt.datetime.combine(last, dt.time(), LOCAL).astimezone(UTC))

    @property
    def hours(self) -> Decimal:
        return Decimal((self.end - self.start) // dt.timedelta(seconds=1)) / 3600

    def elapsed_end(self, now: dt.datetime | None) -> dt.datetime:
        """Where the span stops for figures at ``now``: its end once over, ``now`` while going on."""
        return self.end if now is None else min(max(now.astimezone(UTC), self.start), self.end)

    def elapsed_hours(self, now: dt.datetime | None) -> Decimal:
        """The span's hours up to ``now`` [h]."""
        return Decimal((self.elapsed_end(now) - self.start) // dt.timedelta(seconds=1)) / 3600


@dataclass(frozen=True)
class PlantFigures:
    """One plant's figures for a span (units in the names; None where not measured)."""

    plant_id: int
    plant_code: str
    owner_id: int
    period: str
    capacity_kwp: Decimal
    energy_kwh: Decimal | None
    specific_yield_kwh_per_kwp: Decimal | None
    availability: Decimal | None
    expected_slots: int
    producing_slots: int
    outages: int
    outage_hours: Decimal
    outage_daylight_hours: Decimal
    irradiation_kwh_m2: Decimal | None
    irradiated_energy_kwh: Decimal | None
    performance_ratio: Decimal | None
    trip_episodes: int = 0
    repeated_tripping: bool = False
    reason: str | None = None


@dataclass(frozen=True)
class PortfolioFigures:
    """The figures over the plants taken and their owners."""

    period: str
    plants: int
    owners: int
    capacity_kwp: Decimal
    energy_kwh: Decimal | None
    specific_yield_kwh_per_kwp: Decimal | None
    availability: Decimal | None
    outages: int
    outage_hours: Decimal
    saifi: Decimal | None
    saidi_hours: Decimal | None
    caidi_hours: Decimal | None
    asai: Decimal | None
    performance_ratio: Decimal | None
    period_hours: Decimal = Decimal(0)
    rs1_percent: Decimal | None = None
    rs1_target_percent: Decimal = RS1_TARGET_PERCENT
    rs1_met: bool | None = None
    outages_per_household_per_year: Decimal | None = None
    outages_per_household_per_year_target: Decimal = OUTAGES_PER_HOUSEHOLD_YEAR_TARGET
    outages_per_household_per_year_met: bool | None = None
    plants_without_telemetry: int = 0
    plants_tripping_repeatedly: int = 0
    reason: str | None = None


def _q(value: Decimal | float | int, places: Decimal) -> Decimal:
    return Decimal(value).quantize(places, rounding=ROUND_HALF_UP)


def _ratio(numerator, denominator, places: Decimal = RATIO) -> Decimal | None:
    if not denominator:
        return None
    return (Decimal(numerator) / Decimal(denominator)).quantize(places, rounding=ROUND_HALF_UP)


async def _plants(plant_ids: Iterable[int] | None) -> list[dict]:
    query = Plant.all() if plant_ids is None else Plant.filter(id__in=list(plant_ids))
    return await query.order_by("code").values("id", "code", "owner_id", "capacity_kwp", "latitude", "longitude")


def _site(plant: dict) -> tuple[float, float]:
    if plant["latitude"] is None or plant["longitude"] is None:
        return DEFAULT_LATITUDE, DEFAULT_LONGITUDE
    return float(plant["latitude"]), float(plant["longitude"])


async def plant_figures(period: str, plant_ids: Iterable[int] | None = None, *,
                        now: dt.datetime | None = None) -> list[PlantFigures]:
    """The figures of each plant (all plants, or those given) for a local month or day.

    Parameters
    ----------
    period : str
        ``YYYY-MM`` (a calendar month, Asia/Shanghai) or ``YYYY-MM-DD`` (a local day).
    plant_ids : iterable of int, optional
        The plants; the mini-program passes the owner's own.
    now : datetime, optional
        Open outages count up to this time (default: the current time).

    Returns
    -------
    list of PlantFigures, ordered by plant code

    Raises
    ------
    InvalidInput
        A malformed period (code ``bad_period``).
    """
    span = Span.parse(period)
    plants = await _plants(plant_ids)
    return await _figures(span, plants, now or utc_now())


def _production(quarters: list[tuple[int, int, int, int]], start_us: int,
                expected: np.ndarray) -> tuple[np.ndarray, int, int, int, bool]:
    """What a plant's active quarters say: which slots produced, and the energy and irradiation.

    Parameters
    ----------
    quarters : list of (bucket [µs], energy [Wh], power [W], irradiation [Wh/m²] or NULL)
    start_us : int [µs]
        Start of the first slot.
    expected : ndarray of bool, shape (slots,)
        Slots the plant should produce in; where a quarter has irradiation, that decides
        instead (updated in place).

    Returns
    -------
    producing : ndarray of bool, shape (slots,)
    energy_wh : int [Wh]
    irradiated_energy_wh : int [Wh]
        Energy of the quarters with irradiation.
    irradiation_wh_m2 : int [Wh/m²]
    has_irradiance : bool
    """
    producing = np.zeros(expected.size, bool)
    energy_wh = irradiated_energy_wh = irradiation_wh_m2 = 0
    has_irradiance = False
    for bucket, energy, power, irradiation in quarters:
        i = (bucket - start_us) // QUARTER_US
        producing[i] = energy > 0 or power > 0
        energy_wh += energy
        if irradiation != NULL:
            has_irradiance = True
            expected[i] = irradiation >= AVAILABILITY_IRRADIATION_WH_M2
            irradiated_energy_wh += energy
            irradiation_wh_m2 += irradiation
    return producing, energy_wh, irradiated_energy_wh, irradiation_wh_m2, has_irradiance


def _outage_time(outages: list, span: Span, end_of_outages: dt.datetime, lat: float,
                 lon: float) -> tuple[int, int, int]:
    """Outages within the span (an open one until ``end_of_outages``): count, time [µs], daylight time [µs]."""
    hours = daylight = 0
    count = 0
    for outage in outages:
        first = max(outage.started_at, span.start)
        last = min(outage.ended_at or end_of_outages, end_of_outages)
        if last <= first:
            continue
        count += 1
        hours += datetime_to_us(last) - datetime_to_us(first)
        daylight += daylight_us(datetime_to_us(first), datetime_to_us(last), lat, lon)
    return count, hours, daylight


async def _figures(span: Span, plants: list[dict], now: dt.datetime) -> list[PlantFigures]:
    if not plants:
        return []
    start_us, end_us = datetime_to_us(span.start), datetime_to_us(span.end)
    store = TelemetryStore(connections.get("default"))
    rows = await store.active_quarters([p["id"] for p in plants], start_us, end_us)
    by_plant: dict[int, list[tuple[int, int, int, int]]] = defaultdict(list)
    for plant, bucket, energy, power, irradiation in rows:
        by_plant[plant].append((bucket, energy, power, irradiation))
    outages = defaultdict(list)
    for outage in await plant_outages([p["id"] for p in plants], span.start, span.end):
        outages[outage.plant_id].append(outage)
    episodes: dict[int, int] = defaultdict(int)
    for episode in await plant_episodes([p["id"] for p in plants], span.start, span.end):
        episodes[episode.plant_id] += 1
    reported = set(await TelemetryRollup.filter(
        plant_id__in=[p["id"] for p in plants], granularity=TelemetryGranularity.QUARTER_HOUR,
        bucket_start__gte=span.start, bucket_start__lt=span.end).distinct().values_list("plant_id", flat=True))
    slots = np.arange(start_us, end_us, QUARTER_US, dtype=np.int64)
    end_of_outages = min(now.astimezone(UTC), span.end)
    # a slot counts once it is over: its rollup is whole, and later daylight has not happened yet
    elapsed = slots + QUARTER_US <= datetime_to_us(span.elapsed_end(now))
    out = []
    for plant in plants:
        lat, lon = _site(plant)
        expected = should_produce(slots + QUARTER_US // 2, lat, lon)
        producing, energy_wh, irradiated_energy_wh, irradiation_wh_m2, has_irradiance = _production(
            by_plant.get(plant["id"], []), start_us, expected)
        expected &= elapsed
        capacity = Decimal(plant["capacity_kwp"])
        count, hours, daylight = _outage_time(outages.get(plant["id"], []), span, end_of_outages, lat, lon)
        final_yield = Decimal(energy_wh) / 1000 / capacity if capacity else None
        reference_yield = Decimal(irradiation_wh_m2) / 1000  # H_POA [kWh/m²] / 1 kW/m² = [h]
        pr = None
        if has_irradiance and capacity and reference_yield:
            pr = _ratio(Decimal(irradiated_energy_wh) / 1000 / capacity, reference_yield)
        # an outage is telemetry too: the check opened it from the plant's samples
        measured = plant["id"] in reported or plant["id"] in outages
        specific_yield = _q(final_yield, KWH) if final_yield is not None else Decimal(0)
        out.append(PlantFigures(
            plant_id=plant["id"], plant_code=plant["code"], owner_id=plant["owner_id"], period=span.label,
            capacity_kwp=capacity, energy_kwh=_q(Decimal(energy_wh) / 1000, KWH) if measured else None,
            specific_yield_kwh_per_kwp=specific_yield if measured else None,
            availability=_ratio(int((producing & expected).sum()), int(expected.sum())) if measured else None,
            expected_slots=int(expected.sum()), producing_slots=int((producing & expected).sum()),
            outages=count, outage_hours=_q(Decimal(hours) / HOUR_US, HOURS),
            outage_daylight_hours=_q(Decimal(daylight) / HOUR_US, HOURS),
            irradiation_kwh_m2=_q(reference_yield, KWH) if has_irradiance else None,
            irradiated_energy_kwh=_q(Decimal(irradiated_energy_wh) / 1000, KWH) if has_irradiance else None,
            performance_ratio=pr, trip_episodes=episodes.get(plant["id"], 0),
            repeated_tripping=episodes.get(plant["id"], 0) > 0, reason=None if measured else NO_TELEMETRY))
    return out


async def portfolio_figures(period: str, plant_ids: Iterable[int] | None = None, *,
                            now: dt.datetime | None = None) -> tuple[PortfolioFigures, list[PlantFigures]]:
    """The figures over the plants (all, or those given) and their owners, and each plant's.

    Same parameters as :func:`plant_figures`. For one owner's plants the indices are that
    owner's own (NT = 1).
    """
    span = Span.parse(period)
    now = now or utc_now()
    plants = await _plants(plant_ids)
    figures = await _figures(span, plants, now)
    return summarize(span, figures, now), figures


def summarize(span: Span, figures: Sequence[PlantFigures], now: dt.datetime | None = None) -> PortfolioFigures:
    """The portfolio figures from the plants' (pure: no I/O), the span taken up to ``now``
    (default: all of it)."""
    taken = figures
    figures = [f for f in taken if f.reason is None]
    owner_capacity: dict[int, Decimal] = defaultdict(Decimal)
    for f in figures:
        owner_capacity[f.owner_id] += f.capacity_kwp
    owners = len(owner_capacity)
    interrupted = Decimal(0)  # Σ Ni
    customer_hours = Decimal(0)  # Σ ri·Ni
    for f in figures:
        if not f.outages:
            continue
        share = f.capacity_kwp / owner_capacity[f.owner_id] if owner_capacity[f.owner_id] else Decimal(1)
        interrupted += share * f.outages
        customer_hours += share * f.outage_hours
    capacity = sum((f.capacity_kwp for f in taken), Decimal(0))
    measured_capacity = sum((f.capacity_kwp for f in figures), Decimal(0))
    energy = sum((f.energy_kwh for f in figures), Decimal(0)) if figures else None
    expected = sum(f.expected_slots for f in figures)
    irradiated = [f for f in figures if f.performance_ratio is not None]
    pr = None
    if irradiated:
        # Σ Yf·P0 / Σ Yr·P0 = Σ E / Σ H·P0: the capacity-weighted PR
        yf = sum((f.irradiated_energy_kwh for f in irradiated), Decimal(0))
        yr = sum((f.irradiation_kwh_m2 * f.capacity_kwp for f in irradiated), Decimal(0))
        pr = _ratio(yf, yr)
    saifi = _ratio(interrupted, owners)
    saidi = _ratio(customer_hours, owners, HOURS)
    hours = span.elapsed_hours(now)
    total = owners * hours
    rs1 = outages_a_year = rs1_exact = a_year_exact = None
    if owners and hours:
        # met or not is judged on the figures before rounding
        rs1_exact = (1 - customer_hours / owners / hours) * 100
        a_year_exact = interrupted / owners * YEAR_HOURS / hours
        rs1, outages_a_year = _q(rs1_exact, PERCENT), _q(a_year_exact, RATIO)
    return PortfolioFigures(
        period=span.label, plants=len(taken), owners=owners, capacity_kwp=capacity, energy_kwh=energy,
        specific_yield_kwh_per_kwp=_ratio(energy, measured_capacity, KWH) if figures else None,
        availability=_ratio(sum(f.producing_slots for f in figures), expected),
        outages=sum(f.outages for f in figures), outage_hours=sum((f.outage_hours for f in figures), Decimal(0)),
        saifi=saifi, saidi_hours=saidi,
        caidi_hours=_ratio(customer_hours, interrupted, HOURS) if interrupted else None,
        asai=_ratio(total - customer_hours, total) if total else None, performance_ratio=pr,
        period_hours=_q(hours, HOURS), rs1_percent=rs1, rs1_met=None if rs1_exact is None else rs1_exact >= RS1_TARGET_PERCENT,
        outages_per_household_per_year=outages_a_year,
        outages_per_household_per_year_met=None if a_year_exact is None
        else a_year_exact <= OUTAGES_PER_HOUSEHOLD_YEAR_TARGET,
        plants_without_telemetry=len(taken) - len(figures),
        plants_tripping_repeatedly=sum(1 for f in taken if f.repeated_tripping),
        reason=NO_TELEMETRY if taken and not figures else None)


def figures_as_dict(figures: PlantFigures | PortfolioFigures) -> dict:
    """JSON-ready: decimals as strings, None as null."""
    return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in asdict(figures).items()}


async def reliability_report(period: str, plant_ids: Iterable[int] | None = None, *,
                             now: dt.datetime | None = None) -> dict:
    """``{"period", "portfolio": {...}, "plants": [{...}, ...]}`` as JSON-ready data."""
    portfolio, plants = await portfolio_figures(period, plant_ids, now=now)
    return {"period": period, "portfolio": figures_as_dict(portfolio),
            "plants": [figures_as_dict(f) for f in plants]}
