"""A synthetic but physically consistent portfolio (``pvsettle seed``, the demo, benchmarks).

What it makes, from one random seed:

- owners with 1–3 plants each; plants from 30 kWp to 5 MWp (log-uniform) in Jiangsu or Zhejiang,
  under that province's TOU tariff, on a grid-discount contract;
- per plant a generation meter and a grid meter with multipliers that fit the plant's size
  (direct-connected, CT-connected, or CT × PT at 10 kV), 6 whole register digits, and starting
  readings anywhere on the dial, so some registers roll over during the months seeded;
- a 15-minute PV generation model (sun elevation from the plant's latitude and longitude, a daily
  cloudiness draw) and a site load model (base load plus working hours), from which
  self-use = min(generation, load) ≤ generation, export = generation − self-use,
  grid import = load − self-use, each summed per TOU period of the plant's tariff;
- monthly register readings at 00:00 local on each plant's reading day, for the M cycles up to its
  latest reading day on or before today (so M + 1 readings per register, and last month's
  cycle always has data): generation forward total and rates 1–4, grid forward (import) and
  reverse (export) total and rates 1–4 (DL/T 645 ids);
- 15-minute inverter telemetry (power, lifetime energy counter) for the last days up to now, with
  the interval energies and rollups the telemetry ingest would have stored.

The register rates follow the DL/T 645 order 尖 sharp, 峰 peak, 平 flat, 谷 valley; a tariff's deep
valley is metered in the valley register.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources

import numpy as np
import redis.asyncio as redis_asyncio
from tortoise.transactions import in_transaction

from billing_engine.tariff import Tariff, parse_tariff
from billing_engine.tou import classify
from settlement import models as m
from settlement.fakes.tax_system import with_check  # GB 32100's check character
from settlement.prepaid import accounts as prepaid
from settlement.infra.redis_client import Namespace
from settlement.telemetry.ingest import publish_live_states, rebuild_rollups
from settlement.clock import LOCAL, UTC, local_today, utc_now

SLOT = dt.timedelta(minutes=15)

# DL/T 645-2007 energy register ids: forward (0001) and reverse (0002) active, total and rates 1-4.
FORWARD = ["00010000", "00010100", "00010200", "00010300", "00010400"]
REVERSE = ["00020000", "00020100", "00020200", "00020300", "00020400"]
RATE_OF_PERIOD = {"sharp": 1, "peak": 2, "flat": 3, "valley": 4, "deep_valley": 4}
REGISTER_DIGITS = 6

PROVINCES = {
    # tariff code, a few cities with (latitude, longitude) [deg]
    "jiangsu": ("jiangsu-2025", [("南京", 32.06, 118.80), ("苏州", 31.30, 120.62), ("无锡", 31.49, 120.31),
                                 ("常州", 31.81, 119.97), ("南通", 31.98, 120.89)]),
    "zhejiang": ("zhejiang-2024", [("杭州", 30.27, 120.16), ("宁波", 29.87, 121.54), ("嘉兴", 30.75, 120.76),
                                   ("绍兴", 30.00, 120.58), ("湖州", 30.89, 120.09)]),
}
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"
BUSINESSES = ["纺织", "机械", "电子", "食品", "物流", "化纤", "五金", "印染", "家具", "塑料"]


@dataclass(frozen=True)
class SeedSpec:
    plants: int
    months: int = 3
    seed: int = 1
    telemetry_days: int = 2
    today: dt.date | None = None  # "today" in Asia/Shanghai; tests pin it

    def __post_init__(self):
        if self.plants < 1:
            raise ValueError("--plants must be at least 1")
        if not 1 <= self.months <= 36:
            raise ValueError("--months must be between 1 and 36")
        if not 0 <= self.telemetry_days <= 31:
            raise ValueError("--telemetry-days must be between 0 and 31")


class Progress:
    """Plain progress lines (output that is not a terminal); the CLI swaps in a bar on a terminal."""

    def __init__(self, label: str, total: int):
        self.label, self.total, self.done, self._shown = label, total, 0, -1

    def advance(self, n: int = 1) -> None:
        self.done += n
        tenth = self.done * 10 // max(self.total, 1)
        if tenth != self._shown:
            self._shown = tenth
            print(f"{self.label}: {self.done}/{self.total}", file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


class NoProgress(Progress):
    """Says nothing: for tests and benchmarks."""

    def advance(self, n: int = 1) -> None:
        self.done += n


# --- physical models (pure numpy) ---------------------------------------------------------------


def sun_elevation_sin(local_times: np.ndarray, latitude: np.ndarray, longitude: np.ndarray) -> np.ndarray:
    """Sine of the sun's elevation at the middle of each 15-minute slot.

    Parameters
    ----------
    local_times : ndarray of datetime64[m], shape (slots,)
        Slot starts in Asia/Shanghai local time (UTC+8, no DST).
    latitude, longitude : ndarray, shape (plants,) [deg]

    Returns
    -------
    ndarray, shape (plants, slots) [-]
        Cooper's declination and the hour angle from local solar time; accurate to a degree or
        two, which is all a synthetic portfolio needs.
    """
    mid = local_times + np.timedelta64(7, "m") + np.timedelta64(30, "s")
    day_of_year = (mid.astype("datetime64[D]") - mid.astype("datetime64[Y]")).astype(int) + 1
    minutes = (mid - mid.astype("datetime64[D]")).astype("timedelta64[s]").astype(float) / 60.0
    declination = np.radians(23.45) * np.sin(2 * np.pi * (284 + day_of_year) / 365.0)
    # local solar time: the clock is UTC+8 (120° E); 4 minutes per degree of longitude
    solar_minutes = minutes[None, :] + 4.0 * (longitude[:, None] - 120.0)
    hour_angle = np.radians((solar_minutes / 60.0 - 12.0) * 15.0)
    lat = np.radians(latitude)[:, None]
    return np.sin(lat) * np.sin(declination) + np.cos(lat) * np.cos(declination) * np.cos(hour_angle)


def generation_kwh(capacity_kwp: np.ndarray, elevation_sin: np.ndarray, clearness: np.ndarray) -> np.ndarray:
    """PV energy per 15-minute slot.

    Parameters
    ----------
    capacity_kwp : ndarray, shape (plants,) [kWp]
    elevation_sin : ndarray, shape (plants, slots) [-]
    clearness : ndarray, shape (plants, slots) [-]
        The day's clearness (0.15 overcast … 1 clear), repeated over the day's slots.

    Returns
    -------
    ndarray, shape (plants, slots) [kWh]
        About 1,100–1,250 kWh/kWp a year in the Yangtze delta, in line with its published yields.
    """
    performance_ratio = 0.82
    irradiance_ratio = np.clip(elevation_sin, 0.0, None) ** 1.15 * clearness  # ≈ kW/m² over 1 kW/m²
    return capacity_kwp[:, None] * performance_ratio * irradiance_ratio * 0.25


def load_kwh(base_kw: np.ndarray, local_times: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Site consumption per 15-minute slot: a base load plus working hours on working days.

    Parameters
    ----------
    base_kw : ndarray, shape (plants,) [kW]
        The site's average working-hours demand.
    local_times : ndarray of datetime64[m], shape (slots,)
    noise : ndarray, shape (plants, slots) [-], around 1

    Returns
    -------
    ndarray, shape (plants, slots) [kWh]
    """
    hours = (local_times - local_times.astype("datetime64[D]")).astype("timedelta64[m]").astype(int) / 60.0
    weekday = ((local_times.astype("datetime64[D]").astype(int) + 3) % 7) < 5  # 1970-01-01 was a Thursday
    working = ((hours >= 8) & (hours < 18) & weekday).astype(float)
    shape = 0.35 + 0.65 * working
    return base_kw[:, None] * shape[None, :] * noise * 0.25


# --- the portfolio ------------------------------------------------------------------------------


def _month_start(day: dt.date, back: int) -> dt.date:
    index = day.year * 12 + day.month - 1 - back
    return dt.date(index // 12, index % 12 + 1, 1)


def latest_cutoff(reading_day: int, today: dt.date) -> dt.date:
    """The last reading day on or before ``today``."""
    if today.day >= reading_day:
        return dt.date(today.year, today.month, reading_day)
    first = _month_start(today, 1)
    return dt.date(first.year, first.month, reading_day)


def reading_times(reading_day: int, today: dt.date, months: int) -> list[dt.datetime]:
    """The M + 1 cut-offs (00:00 local on the reading day) of the M cycles up to the latest one.

    The cycle of period YYYY-MM runs from the reading day of the month before to the reading day
    of YYYY-MM; the latest cut-off is the last reading day on or before today, so ``cycle run``
    for last month always has data, as an up-to-date AMI head-end would have it.
    """
    last = latest_cutoff(reading_day, today)
    times = []
    for back in range(months, -1, -1):
        first = _month_start(last, back)
        times.append(dt.datetime(first.year, first.month, reading_day, tzinfo=LOCAL))
    return times


def _multiplier(rng: np.random.Generator, capacity_kwp: float) -> int:
    if capacity_kwp <= 60:
        return 1  # direct-connected
    if capacity_kwp <= 400:
        return int(rng.choice([20, 40, 60, 80]))  # CT 100/5 … 400/5 at 400 V
    if capacity_kwp <= 1000:
        return int(rng.choice([100, 160, 200, 300]))
    return int(rng.choice([1000, 2000, 3000]))  # CT × PT (10 kV / 100 V)


async def seed_portfolio(spec: SeedSpec, progress: Callable[[str, int], Progress] = Progress, *,
                         redis: redis_asyncio.Redis | None = None, namespace: Namespace | None = None) -> dict:
    """Write the portfolio; returns counts. Deterministic for a given spec (and today).

    With ``redis`` and ``namespace`` the live state of each plant with telemetry is published
    there too (settlement/telemetry/live.py), as the ingest would have left it.
    """
    rng = np.random.default_rng(spec.seed)
    today = spec.today or local_today()
    tariffs = {}
    for code, _ in PROVINCES.values():
        # the engine owns the tariff format; the database keeps the document it parses
        document = json.loads(resources.files("billing_engine").joinpath("tariffs", f"{code}.json").read_text("utf-8"))
        tariff = parse_tariff(document)
        first = tariff.versions[0].effective_from
        if _month_start(today, spec.months + 2) < first:
            raise ValueError(f"--months {spec.months} reaches before {code}'s first version ({first})")
        await m.Tariff.get_or_create(code=code, effective_from=first,
                                     defaults={"name": tariff.name, "document": document})
        tariffs[code] = tariff
    existing = await m.Plant.all().count()
    counts = {"owners": 0, "plants": 0, "meters": 0, "readings": 0, "telemetry_samples": 0}
    bar = progress("seeding plants", spec.plants)
    chunk = 200
    made = 0
    while made < spec.plants:
        n = min(chunk, spec.plants - made)
        chunk_counts = await _seed_chunk(rng, spec, today, tariffs, first_number=existing + made + 1, n=n,
                                         redis=redis, namespace=namespace)
        for key, value in chunk_counts.items():
            counts[key] += value
        made += n
        bar.advance(n)
    bar.close()
    return counts


async def _create_plants(plans: list[dict], spec: SeedSpec, today: dt.date, counts: dict) -> None:
    """Create each planned plant with its owner, contract, two meters and inverter; into each plan."""
    owner = None
    for plan in plans:
        if plan["new_owner"]:
            owner = await m.Owner.create(name=plan["owner_name"], kind=plan["owner_kind"],
                                         phone=plan["phone"], tax_id=plan["tax_id"])
            counts["owners"] += 1
        plant = await m.Plant.create(
            code=plan["code"], name=plan["name"], owner=owner, capacity_kwp=Decimal(str(plan["capacity"])),
            address=plan["address"], latitude=Decimal(f"{plan['lat']:.6f}"),
            longitude=Decimal(f"{plan['lon']:.6f}"), reading_day=plan["reading_day"],
            commissioned_on=_month_start(today, spec.months + 12))
        await m.Contract.create(
            plant=plant, effective_from=plant.commissioned_on, tariff_code=plan["tariff"],
            pricing_model=m.PricingModel.GRID_DISCOUNT, discount=Decimal(plan["discount"]),
            late_fee_rate=Decimal("0.00100") if plan["owner_kind"] == m.OwnerKind.RESIDENTIAL else Decimal("0.00200"),
            late_fee_rate_cross_year=Decimal("0.00100") if plan["owner_kind"] == m.OwnerKind.RESIDENTIAL else Decimal("0.00300"))
        generation_meter = await m.Meter.create(
            plant=plant, serial=f"{plan['code']}-G", kind=m.MeterKind.GENERATION,
            multiplier=plan["multiplier"], register_digits=REGISTER_DIGITS, registers=FORWARD,
            installed_on=plant.commissioned_on)
        grid_meter = await m.Meter.create(
            plant=plant, serial=f"{plan['code']}-N", kind=m.MeterKind.GRID,
            multiplier=plan["multiplier"], register_digits=REGISTER_DIGITS, registers=FORWARD + REVERSE,
            installed_on=plant.commissioned_on)
        device = await m.TelemetryDevice.create(plant=plant, serial=f"{plan['code']}-INV",
                                                rated_power_w=int(plan["capacity"] * 1000))
        counts["plants"] += 1
        counts["meters"] += 2
        plan.update(plant=plant, generation_meter=generation_meter, grid_meter=grid_meter, device=device)


def _plant_readings(rng, plan: dict, tariff: Tariff, today: dt.date, months: int) -> list[m.Reading]:
    """A created plant's meter readings at each reading day of the last ``months``, from a drawn load."""
    times = reading_times(plan["reading_day"], today, months)
    start, end = times[0], times[-1]
    local = np.arange(np.datetime64(start.replace(tzinfo=None), "m"),
                      np.datetime64(end.replace(tzinfo=None), "m"), np.timedelta64(15, "m"))
    energies = _energies(rng, plan, local)
    periods = classify(tariff, local).period
    rates = np.array([RATE_OF_PERIOD[name] for name in tariff.periods])[periods]
    # cumulative register values at each cut-off: index of the cut-offs in the slot axis
    cut = np.searchsorted(local, np.array([np.datetime64(t.replace(tzinfo=None), "m") for t in times]))
    readings: list[m.Reading] = []
    for meter, register_ids, series in (
        (plan["generation_meter"], FORWARD, energies["generation"]),
        (plan["grid_meter"], FORWARD, energies["grid_import"]),
        (plan["grid_meter"], REVERSE, energies["export"]),
    ):
        readings += _register_readings(rng, meter, register_ids, series, rates, cut, times, plan["multiplier"])
    return readings


async def _seed_chunk(rng, spec: SeedSpec, today: dt.date, tariffs: dict[str, Tariff], first_number: int,
                      n: int, redis: redis_asyncio.Redis | None = None, namespace: Namespace | None = None) -> dict:
    plans = _plan_plants(rng, n, first_number)
    counts = {"owners": 0, "plants": 0, "meters": 0, "readings": 0, "telemetry_samples": 0}
    readings: list[m.Reading] = []
    samples: list[m.TelemetrySample] = []
    async with in_transaction():
        await _create_plants(plans, spec, today, counts)
        for plan in plans:
            readings += _plant_readings(rng, plan, tariffs[plan["tariff"]], today, spec.months)
            if spec.telemetry_days:
                samples += _telemetry(rng, plan, spec.telemetry_days)
        await m.Reading.bulk_create(readings, batch_size=2000)
        await m.TelemetrySample.bulk_create(samples, batch_size=2000)
    if samples:
        # the rollups (15 minutes, days, months) the history and figures read, as the ingest keeps them
        plant_ids = [plan["plant"].id for plan in plans]
        await rebuild_rollups(plant_ids, plants_per_transaction=len(plans))
        if redis is not None and namespace is not None:
            await publish_live_states(redis, namespace, plant_ids)
    counts["readings"] = len(readings)
    counts["telemetry_samples"] = len(samples)
    return counts


def _plan_plants(rng: np.random.Generator, n: int, first_number: int) -> list[dict]:
    plans = []
    left_for_owner = 0
    for i in range(n):
        new_owner = left_for_owner == 0
        if new_owner:
            left_for_owner = int(rng.choice([1, 2, 3], p=[0.6, 0.28, 0.12]))
            province = str(rng.choice(list(PROVINCES)))
            tariff, cities = PROVINCES[province]
            city, lat, lon = cities[int(rng.integers(len(cities)))]
            kind = m.OwnerKind.RESIDENTIAL if rng.random() < 0.1 else m.OwnerKind.COMMERCIAL if rng.random() < 0.5 \
                else m.OwnerKind.INDUSTRIAL
            surname = SURNAMES[int(rng.integers(len(SURNAMES)))]
            owner_name = (f"{surname}先生" if kind == m.OwnerKind.RESIDENTIAL
                          else f"{city}{surname}氏{BUSINESSES[int(rng.integers(len(BUSINESSES)))]}有限公司")
            phone = "1" + "".join(str(d) for d in rng.integers(0, 10, 10))
            reading_day = int(rng.choice([1, 1, 1, 10, 20, 25, 28]))
        left_for_owner -= 1
        number = first_number + i
        capacity = float(np.round(np.exp(rng.uniform(np.log(30), np.log(5000))), 1))
        if kind == m.OwnerKind.RESIDENTIAL:
            capacity = float(np.round(rng.uniform(30, 60), 1))
        plans.append({
            "new_owner": new_owner, "owner_name": owner_name, "owner_kind": kind, "phone": phone,
            # a company's unified social credit code, so its paid bills get e-invoices; made from the
            # plant number, not the random stream, so every other seeded figure stays as it was
            "tax_id": None if kind == m.OwnerKind.RESIDENTIAL else with_check(f"91320400MA{number:07d}"),
            "code": f"PV{number:05d}", "name": f"{owner_name}屋顶光伏{number}号",
            "address": f"{city}市工业园区{int(rng.integers(1, 300))}号", "tariff": tariff,
            "lat": lat + rng.normal(0, 0.05), "lon": lon + rng.normal(0, 0.05), "capacity": capacity,
            "reading_day": reading_day, "multiplier": _multiplier(rng, capacity),
            "discount": str(rng.choice(["0.8000", "0.8500", "0.8800", "0.9000", "0.9200"])),
            # the site's working-hours demand: from a third of the plant's peak to one and a half times it
            "base_kw": capacity * rng.uniform(0.3, 1.5),
        })
    return plans


def _daily_clearness(rng: np.random.Generator, days: int) -> np.ndarray:
    return np.clip(rng.beta(2.6, 1.3, size=days), 0.15, 1.0)


def _energies(rng: np.random.Generator, plan: dict, local: np.ndarray) -> dict[str, np.ndarray]:
    """kWh per slot for one plant: generation, self-use, export, grid import (all ≥ 0)."""
    days = local.astype("datetime64[D]")
    day_index = (days - days[0]).astype(int)
    clearness = _daily_clearness(rng, int(day_index[-1]) + 1)[day_index]
    elevation = sun_elevation_sin(local, np.array([plan["lat"]]), np.array([plan["lon"]]))
    generation = generation_kwh(np.array([plan["capacity"]]), elevation, clearness[None, :])[0]
    noise = rng.lognormal(0.0, 0.12, size=local.shape[0])
    load = load_kwh(np.array([plan["base_kw"]]), local, noise[None, :])[0]
    self_use = np.minimum(generation, load)
    return {"generation": generation, "self_use": self_use, "export": generation - self_use,
            "grid_import": load - self_use}


def _register_readings(rng, meter: m.Meter, register_ids: list[str], kwh: np.ndarray, rates: np.ndarray,
                       cut: np.ndarray, times: list[dt.datetime], multiplier: int) -> list[m.Reading]:
    """Readings of one meter's total and rate registers at each cut-off.

    Each rate register accumulates its slots' energy; the total register is their sum, as a
    meter that measures once and books by rate shows it. Values are in meter units (kWh ÷
    multiplier), 2 decimals as the display shows them, wrapped at 10**digits.
    """
    dial = 10 ** REGISTER_DIGITS
    per_rate = np.zeros((4, kwh.shape[0]))
    per_rate[rates - 1, np.arange(kwh.shape[0])] = kwh
    cumulative = np.concatenate([np.zeros((4, 1)), np.cumsum(per_rate, axis=1)], axis=1)[:, cut]
    # rate registers start anywhere on the dial; the total started as their sum, as on a meter
    # that left the factory at zero
    rate_units = rng.uniform(0, dial, size=4)[:, None] + cumulative / multiplier
    shown = np.floor(np.vstack([rate_units.sum(axis=0), rate_units]) * 100) / 100 % dial
    readings = []
    for register, values in zip(register_ids, shown):
        for when, value in zip(times, values):
            readings.append(m.Reading(meter=meter, register=register, read_at=when.astimezone(UTC),
                                      value=Decimal(f"{value:.2f}"), source=m.ReadingSource.AMI))
    return readings


def _telemetry(rng, plan: dict, days: int) -> list[m.TelemetrySample]:
    """15-minute samples for the last ``days`` days up to now: power and lifetime energy."""
    now = utc_now().replace(second=0, microsecond=0)
    now -= dt.timedelta(minutes=now.minute % 15)
    start_utc = now - dt.timedelta(days=days)
    local = np.arange(np.datetime64((start_utc + dt.timedelta(hours=8)).replace(tzinfo=None), "m"),
                      np.datetime64((now + dt.timedelta(hours=8)).replace(tzinfo=None), "m"),
                      np.timedelta64(15, "m"))
    day_index = (local.astype("datetime64[D]") - local.astype("datetime64[D]")[0]).astype(int)
    clearness = _daily_clearness(rng, int(day_index[-1]) + 1)[day_index]
    energy = generation_kwh(np.array([plan["capacity"]]),
                            sun_elevation_sin(local, np.array([plan["lat"]]), np.array([plan["lon"]])),
                            clearness[None, :])[0]
    lifetime_wh = int(plan["capacity"] * 1150 * 1000 * rng.uniform(0.5, 3))  # years already produced
    counter = lifetime_wh + np.cumsum(np.round(energy * 1000)).astype(np.int64)
    power_w = np.round(energy * 4000).astype(np.int64)  # mean power over the slot
    received = utc_now()
    # the counter only rises, so each interval is the difference (the first sample has no reference)
    # as the ingest would store it: the rebuild that follows then writes rollups and changes no sample
    interval = np.concatenate([[None], np.diff(counter).tolist()]).tolist()
    return [
        m.TelemetrySample(device=plan["device"], ts=start_utc + SLOT * (i + 1), received_at=received,
                          power_w=int(p), energy_wh=int(c), interval_wh=iv, status="ok")
        for i, (p, c, iv) in enumerate(zip(power_w, counter, interval))
    ]


# --- what the demo shows beyond plain plants -----------------------------------------------------

#: Terms of the demo's nearby-consumption (就近消纳) project: figures of the size a 10 kV project
#: has, for the demo only — real ones are published per province and entered per project.
DEMO_NEARBY_TERMS = {"voltage_level": "10kV", "td_price": Decimal("0.150000"), "average_load_rate": Decimal("0.450000"),
                     "connection_kva": Decimal("800.000"), "current_capacity_charge": Decimal("19200.00"),
                     "system_operation_fee": Decimal("0.020000"), "wire_loss_price": Decimal("0.015000")}


async def seed_demo_extras() -> dict:
    """Make the demo portfolio show what plain plants do not: the first plant becomes a
    nearby-consumption project (its terms from its commissioning day), and the first plant of
    another owner gets a prepaid account whose electricity follows the plant's contract, metered
    by its grid meter. Idempotent: what exists is kept. Returns the ids made or found."""
    plants = await m.Plant.all().order_by("id").prefetch_related("owner")
    if not plants:
        return {}
    nearby = plants[0]
    await m.NearbyConsumptionTerms.get_or_create(plant=nearby, effective_from=nearby.commissioned_on,
                                                 defaults=DEMO_NEARBY_TERMS)
    site = next((p for p in plants if p.owner_id != nearby.owner_id), plants[-1])
    account = await m.PrepaidAccount.filter(plant_id=site.id).first()
    if account is None:
        account = await prepaid.open_account(site.owner_id, f"{site.name} 预付费", f"{site.code}-SW", plant_id=site.id,
                                             allow_pay_by_number=True)
        meter = await m.Meter.get_or_none(serial=f"{site.code}-N")
        await prepaid.add_service(account.id, "用电", m.Utility.ELECTRICITY, "kWh", follows_contract=True,
                                  meter_id=meter.id if meter else None)
    return {"nearby_plant": nearby.code, "prepaid_account": account.number, "prepaid_account_id": account.id,
            "prepaid_plant": site.code}
