"""The sandbox's telemetry simulator: the demo plants keep producing, so the live view moves.

Every ``INTERVAL_S`` each demo inverter reports one sample (power [W], lifetime energy counter
[Wh], status) through the real ingest service (:func:`settlement.telemetry.ingest_samples`), as a
data logger would: samples are stored, counters turned into energy, rollups updated and the live
state published to Redis for ``/api/v1/plants/{id}/live``.

The sky is the sandbox's own: a daylight curve played ``SPEED`` times faster than the clock,
starting in the morning, so a demo started at night in China still shows a plant producing and
a whole day passes in ``24 h / SPEED``. Samples carry the real time (the ingest refuses a clock
far ahead). At the default speed of 60 the simulated night lasts 12 minutes, less than the
30 minutes of zero output in real daylight after which :mod:`settlement.outages` opens an outage,
so the fast sky does not raise false staff alarms.

The counter continues from each device's latest stored sample (seeded telemetry included) and
advances by power × time, so the energy the ingest derives matches the power shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from server.keys import redis_key, redis_ns_key
from settlement import models as m
from settlement.telemetry import ingest_samples, rebuild_rollups

log = logging.getLogger("pvsettle.sandbox.simulator")
UTC = dt.timezone.utc

INTERVAL_S = 5.0
SPEED = 60.0
START_HOUR = 10.0  # simulated local hour when the demo starts: mid-morning, producing
SUNRISE, SUNSET = 6.0, 18.0  # [h] simulated local time
RECEIVED_FROM = "collector:sandbox-simulator"
# the first inverters of the portfolio only: a demo started with --plants 10000 would otherwise
# write 10,000 samples every few seconds into its SQLite file (the demo users bind to the first owners)
MAX_INVERTERS = 200


def daylight(hour: float) -> float:
    """Fraction of rated power under a clear sky at a local ``hour`` [h, 0–24): 0 at night, a
    sine arch from sunrise to sunset raised to 1.5 (PV output is flatter at noon and steeper at
    the edges than the sun's elevation alone), 1.0 at solar noon."""
    hour = hour % 24.0
    if not SUNRISE < hour < SUNSET:
        return 0.0
    return math.sin(math.pi * (hour - SUNRISE) / (SUNSET - SUNRISE)) ** 1.5


def simulated_hour(elapsed_s: float, *, speed: float = SPEED, start_hour: float = START_HOUR) -> float:
    """The sandbox sky's local hour [h] after ``elapsed_s`` real seconds."""
    return (start_hour + elapsed_s * speed / 3600.0) % 24.0


@dataclass
class Inverter:
    serial: str
    rated_w: int
    counter_wh: float  # lifetime counter, kept with its fraction so rounding never loses energy


class Simulator:
    """One sample per inverter per :meth:`step`; the rng makes passing clouds (±8 %)."""

    def __init__(self, inverters: list[Inverter], *, rng: random.Random | None = None,
                 clock=time.monotonic, speed: float = SPEED):
        self.inverters = inverters
        self.rng = rng or random.Random()
        self.clock = clock
        self.speed = speed
        self.started = clock()
        self.last = self.started

    def samples(self, now: dt.datetime) -> list[dict]:
        """The next sample of every inverter at ``now`` (UTC), counters advanced by power × time."""
        tick = self.clock()
        hours = (tick - self.last) / 3600.0  # [h] real time since the previous samples
        self.last = tick
        sky = daylight(simulated_hour(tick - self.started, speed=self.speed))
        rows = []
        for inverter in self.inverters:
            power = inverter.rated_w * sky * (0.8 + 0.08 * self.rng.uniform(-1.0, 1.0)) if sky > 0 else 0.0
            inverter.counter_wh += power * hours
            rows.append({"device": inverter.serial, "ts": now.isoformat(), "power_w": round(power),
                         "energy_wh": int(inverter.counter_wh), "status": "ok" if power > 0 else "standby"})
        return rows


async def load_inverters() -> list[Inverter]:
    """The portfolio's first ``MAX_INVERTERS`` telemetry devices, each counter where its latest
    sample left it."""
    devices = await m.TelemetryDevice.all().prefetch_related("plant").order_by("id").limit(MAX_INVERTERS)
    inverters = []
    for device in devices:
        latest = await m.TelemetrySample.filter(device_id=device.id, energy_wh__isnull=False) \
            .order_by("-ts").first()
        rated = device.rated_power_w or int(device.plant.capacity_kwp * 1000)
        inverters.append(Inverter(device.serial, rated, float(latest.energy_wh if latest else 0)))
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
    task = asyncio.create_task(_loop(app, simulator), name="pvsettle-sandbox-simulator")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):  # the cancellation we asked for
        await task


async def _loop(app: web.Application, simulator: Simulator) -> None:
    while True:
        try:
            if simulator.inverters:
                now = dt.datetime.now(UTC).replace(microsecond=0)
                await ingest_samples(simulator.samples(now), received_from=RECEIVED_FROM, now=now,
                                     redis=app[redis_key], namespace=app[redis_ns_key])
        except asyncio.CancelledError:
            raise
        except Exception:
            # database or Redis busy or away: logged, the next step tries again
            log.exception("sandbox telemetry step failed")
        await asyncio.sleep(INTERVAL_S)
