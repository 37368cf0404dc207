"""The sandbox's telemetry simulator: the demo plants keep producing, so the live view moves.

Every ``INTERVAL_S`` each demo inverter reports one sample (power [W], lifetime energy counter
[Wh], status) through the real ingest service (:func:`settlement.telemetry.ingest.ingest_samples`), as a
data logger would: samples are stored, counters turned into energy, rollups updated and the live
state published to Redis for ``/api/v1/plants/{id}/live``.

The sky is the real one: power follows the sun's elevation at the plant's site at the sample's
wall-clock time (:func:`settlement.telemetry.solar.sun_elevation_deg`), with passing clouds, and is zero
while the sun is below the horizon. Why not a faster sky of its own (it used to pass a day in 24
minutes, so a demo started at night showed a plant producing): its samples then carried the wall
clock's time under a sun of another hour, and a December day chart in Jiangsu showed generation at
20:00, which owners read as a broken meter. Stamping the samples with the simulated time instead
is no cure: it runs ahead of the clock by hours within minutes, which the ingest refuses or
corrects as a fast device clock, and "today", the live state and the outage check all go by the
real clock. So a demo started at night in China shows its plants asleep, as they are; the demo's
banner says so.

The counter continues from each device's latest stored sample (seeded telemetry included) and
advances by power × time, so the energy the ingest derives matches the power shown.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
from aiohttp import web

from settlement.infra import background
from settlement import models as m
from settlement.telemetry.solar import DEFAULT_LATITUDE, DEFAULT_LONGITUDE, sun_elevation_deg
from settlement.telemetry.ingest import ingest_samples, rebuild_rollups
from settlement.telemetry.store import datetime_to_us
from webapp.keys import redis_key, redis_ns_key
from settlement.clock import utc_now

log = logging.getLogger("pvsettle.sandbox.simulator")

INTERVAL_S = 5.0
RECEIVED_FROM = "collector:sandbox-simulator"
# the first inverters of the portfolio only: a demo started with --plants 10000 would otherwise
# write 10,000 samples every few seconds into its SQLite file (the demo users bind to the first owners)
MAX_INVERTERS = 200
#: Output at the sun's zenith under a clear sky, as a fraction of rated power (losses, heat).
PEAK_FRACTION = 0.85


def clear_sky_fraction(elevation_deg: float) -> float:
    """Fraction of rated power under a clear sky with the sun at ``elevation_deg`` [deg]: 0 with
    the sun at or below the horizon, sin(elevation)^1.15 × :data:`PEAK_FRACTION` above it (the
    irradiance shape the seed's telemetry uses too, :func:`settlement.seeding.generation_kwh`)."""
    if elevation_deg <= 0.0:
        return 0.0
    return PEAK_FRACTION * math.sin(math.radians(elevation_deg)) ** 1.15


@dataclass
class Inverter:
    serial: str
    rated_w: int
    counter_wh: float  # lifetime counter, kept with its fraction so rounding never loses energy
    latitude: float = DEFAULT_LATITUDE  # [deg] the plant's site
    longitude: float = DEFAULT_LONGITUDE
    clearness: float = 1.0  # the sky over it: 1 clear, lower under cloud


class Simulator:
    """One sample per inverter per :meth:`samples`; the rng moves the clouds."""

    def __init__(self, inverters: list[Inverter], *, rng: random.Random | None = None):
        self.inverters = inverters
        self.rng = rng or random.Random()
        self.last: dt.datetime | None = None

    def _clouds(self, inverter: Inverter) -> float:
        # a random walk between overcast (0.25) and clear (1.0): clouds come and go over minutes,
        # they do not flicker from one 5-second sample to the next
        step = self.rng.uniform(-0.05, 0.05)
        inverter.clearness = min(1.0, max(0.25, inverter.clearness + step))
        return inverter.clearness

    def samples(self, now: dt.datetime) -> list[dict]:
        """The next sample of every inverter at ``now`` (aware), counters advanced by the power of
        this sample × the time since the previous one."""
        hours = 0.0 if self.last is None else max(0.0, (now - self.last).total_seconds() / 3600.0)  # [h]
        self.last = now
        moment = np.array([datetime_to_us(now)], dtype=np.int64)
        rows = []
        for inverter in self.inverters:
            elevation = float(sun_elevation_deg(moment, inverter.latitude, inverter.longitude)[0])
            sky = clear_sky_fraction(elevation)
            power = inverter.rated_w * sky * self._clouds(inverter) if sky > 0 else 0.0
            inverter.counter_wh += power * hours
            rows.append({"device": inverter.serial, "ts": now.isoformat(), "power_w": round(power),
                         "energy_wh": int(inverter.counter_wh), "status": "ok" if power > 0 else "standby"})
        return rows


async def load_inverters() -> list[Inverter]:
    """The portfolio's first ``MAX_INVERTERS`` telemetry devices at their plants' sites, each
    counter where its latest sample left it."""
    devices = await m.TelemetryDevice.all().prefetch_related("plant").order_by("id").limit(MAX_INVERTERS)
    inverters = []
    for device in devices:
        latest = await m.TelemetrySample.filter(device_id=device.id, energy_wh__isnull=False) \
            .order_by("-ts").first()
        rated = device.rated_power_w or int(device.plant.capacity_kwp * 1000)
        plant = device.plant
        site = ((float(plant.latitude), float(plant.longitude)) if plant.latitude is not None
                and plant.longitude is not None else (DEFAULT_LATITUDE, DEFAULT_LONGITUDE))
        inverters.append(Inverter(device.serial, rated, float(latest.energy_wh if latest else 0), *site))
    return inverters


async def rollups_of_seeded_telemetry() -> dict[str, int] | None:
    """The seed writes samples without the ingest service; their rollups (the charts' day, month
    and year figures) are built once, when there are samples and no rollup at all yet."""
    if await m.TelemetryRollup.exists() or not await m.TelemetrySample.exists():
        return None
    return await rebuild_rollups(await m.Plant.all().values_list("id", flat=True))


async def simulator_ctx(app: web.Application) -> AsyncIterator[None]:
    """Needs the database and Redis; a background task, cancelled and awaited at shutdown."""
    rebuilt = await rollups_of_seeded_telemetry()
    if rebuilt:
        log.info("sandbox: rollups of the seeded telemetry built", extra=rebuilt)
    simulator = Simulator(await load_inverters())

    async def step() -> None:
        if simulator.inverters:
            now = utc_now().replace(microsecond=0)
            await ingest_samples(simulator.samples(now), received_from=RECEIVED_FROM, now=now,
                                 redis=app[redis_key], namespace=app[redis_ns_key])

    # database or Redis busy or away: logged, the next step tries again
    task = asyncio.create_task(background.repeat(step, INTERVAL_S, log=log, failure="sandbox telemetry step failed"),
                               name="pvsettle-sandbox-simulator")
    yield
    await background.stop(task)
