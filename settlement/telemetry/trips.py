"""Repeated tripping: a plant whose grid connection trips again and again within a few days.

What a trip is
--------------
The outage events of :mod:`settlement.telemetry.outages` are all this code knows of a plant losing its
grid connection: it records no separate "grid trip" (a protection relay's event) apart from a
plant that produces nothing, so **a trip is an outage event** (either cause, ``silent`` or
``fault``), at the time the outage started. A plant that stops once for a week is one trip; one
that drops out and comes back five times in an afternoon is five.

Episodes
--------
With a threshold ``N`` and a window ``W`` (:class:`TripRule`, settings
``PVSETTLE_REPEATED_TRIPS`` and ``PVSETTLE_REPEATED_TRIPS_DAYS``, default 3 in 7 days), the count
at a time ``t`` is the number of trips in ``(t − W, t]``. An **episode** is a maximal stretch of
time in which that count is at least ``N``:

* it *starts* at the trip that brings the count to ``N`` (``started_at``; ``first_trip_at`` is the
  oldest of the ``N`` trips then counted);
* every further trip that comes while the count is still at least ``N`` belongs to it, and moves
  its end;
* it *ends* at ``t[m−N+1] + W``, ``m`` its latest trip: the moment the oldest of the last ``N``
  trips leaves the window and the count drops below ``N`` (``ends_at``, in the future while it goes
  on);
* a trip after that end starts counting afresh: it belongs to a new episode only once the count
  reaches ``N`` again, with the trips then in the window (which may include trips of the old
  episode).

So 2 trips are never an episode, 3 within 7 days are one, 3 spread over more than 7 days are none,
and a plant that keeps tripping every day for a month is one episode, not ten.

:func:`check_repeated_trips` (the scheduler's tick, after the outage check) records the episodes
(:class:`~settlement.models.TripEpisode`, unique per plant and start, so a second process or a
second run adds nothing) and :func:`send_trip_alarms` writes one ``outage_alarm`` message per
active staff member for each new episode through :func:`settlement.notify.outbox.notify_staff`, marked in
the same transaction — the path the outage alarms take.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from settlement import audit
from settlement.notify import outbox
from settlement.models import AlarmState, Plant, PlantOutage, TripEpisode
from settlement.telemetry.outages import alarm_plant_fields
from settlement.clock import UTC, utc_now

log = logging.getLogger("pvsettle.trips")

#: How far back the check looks for trips that start an episode (episodes still going on are
#: followed from their first trip, however old).
LOOK_BACK = dt.timedelta(days=31)


@dataclass(frozen=True)
class TripRule:
    """``threshold`` trips within ``window`` make an episode."""

    threshold: int = 3
    window: dt.timedelta = dt.timedelta(days=7)

    def __post_init__(self):
        if self.threshold < 2:
            raise ValueError(f"a repeated-trip threshold is at least 2 trips, not {self.threshold}")
        if self.window <= dt.timedelta(0):
            raise ValueError("a repeated-trip window is longer than nothing")

    @classmethod
    def from_settings(cls, settings) -> TripRule:
        return cls(settings.repeated_trips, dt.timedelta(days=settings.repeated_trips_days))

    @property
    def text(self) -> str:
        """The alarm's ``thing`` (≤ 20 characters): "频繁跳闸: 7天内停运3次"."""
        days = self.window / dt.timedelta(days=1)
        span = f"{days:g}天" if days >= 1 else f"{self.window / dt.timedelta(hours=1):g}小时"
        return f"频繁跳闸: {span}内停运{self.threshold}次"


@dataclass(frozen=True)
class Episode:
    """One episode in a sequence of trips (indices into it, and its times)."""

    first: int  # the oldest of the N trips counted when it started
    start: int  # the trip that brought the count to N
    last: int  # its latest trip
    ends_at: dt.datetime

    def trips(self) -> int:
        return self.last - self.first + 1


def trip_episodes(trips: Sequence[dt.datetime], rule: TripRule) -> list[Episode]:
    """The episodes of one plant's trips (module docstring), oldest first. Pure.

    Parameters
    ----------
    trips : sequence of aware datetime, ascending
        When each trip happened (its outage's start).
    rule : TripRule

    Returns
    -------
    list of Episode
    """
    n, window = rule.threshold, rule.window
    episodes: list[Episode] = []
    current: Episode | None = None
    for k in range(n - 1, len(trips)):
        if current is not None and trips[k] < current.ends_at:
            current = Episode(current.first, current.start, k, trips[k - n + 1] + window)
            episodes[-1] = current
        elif trips[k] - trips[k - n + 1] < window:  # the count in (t − W, t] reaches N
            current = Episode(k - n + 1, k, k, trips[k - n + 1] + window)
            episodes.append(current)
    return episodes


async def check_repeated_trips(now: dt.datetime | None = None, rule: TripRule = TripRule()) -> dict[str, int]:
    """Record the episodes of repeated tripping as of ``now``: new ones (their alarm pending) and
    the growth of those going on. Idempotent.

    Returns
    -------
    dict
        ``{"trip_episodes_opened": n, "trip_episodes_extended": n}``.
    """
    now = (now or utc_now()).astimezone(UTC)
    since = now - LOOK_BACK - rule.window
    # an outage of no length (closed at its start: a late sample) was no trip
    recent = [plant_id for plant_id, started_at, ended_at in await PlantOutage.filter(
        started_at__gte=since, started_at__lte=now).values_list("plant_id", "started_at", "ended_at")
        if ended_at is None or ended_at > started_at]
    plant_ids = sorted(set(recent))
    opened = extended = 0
    if not plant_ids:
        return {"trip_episodes_opened": 0, "trip_episodes_extended": 0}
    # episodes that may still grow are replayed from the first trip of the oldest, so each is
    # found again with the same start (never twice); trips before that cannot change them
    going_on: dict[int, TripEpisode] = {}
    for e in await TripEpisode.filter(plant_id__in=plant_ids, ends_at__gt=since).order_by("started_at"):
        going_on.setdefault(e.plant_id, e)
    trips_of: dict[int, list[dt.datetime]] = defaultdict(list)
    earliest = min([since] + [e.first_trip_at for e in going_on.values()])
    for plant_id, started_at, ended_at in await PlantOutage.filter(
            plant_id__in=plant_ids, started_at__gte=earliest, started_at__lte=now).order_by("started_at") \
            .values_list("plant_id", "started_at", "ended_at"):
        if ended_at is not None and ended_at <= started_at:
            continue
        episode = going_on.get(plant_id)
        if started_at >= (episode.first_trip_at if episode else since):
            trips_of[plant_id].append(started_at)
    for plant_id, trips in trips_of.items():
        for episode in trip_episodes(trips, rule):
            o, x = await _record(plant_id, trips, episode, rule, now)
            opened, extended = opened + o, extended + x
    return {"trip_episodes_opened": opened, "trip_episodes_extended": extended}


async def _record(plant_id: int, trips: list[dt.datetime], episode: Episode, rule: TripRule,
                  now: dt.datetime) -> tuple[int, int]:
    started_at = trips[episode.start]
    values = {"first_trip_at": trips[episode.first], "last_trip_at": trips[episode.last],
              "trips": episode.trips(), "ends_at": episode.ends_at}
    existing = await TripEpisode.filter(plant_id=plant_id, started_at=started_at).first()
    if existing is not None:
        if existing.last_trip_at == values["last_trip_at"] and existing.trips == values["trips"]:
            return 0, 0
        await TripEpisode.filter(id=existing.id).update(**values)
        return 0, 1
    try:
        async with in_transaction() as conn:
            row = await TripEpisode.create(plant_id=plant_id, started_at=started_at, threshold=rule.threshold,
                                           window_s=int(rule.window.total_seconds()), detected_at=now,
                                           notified=AlarmState.PENDING, using_db=conn, **values)
            await audit.record(audit.SYSTEM, "FlagRepeatedTrips", "plant_trip_episode", row.id,
                               after={"plant_id": plant_id, "started_at": started_at, **values,
                                      "threshold": rule.threshold, "window_s": row.window_s}, using_db=conn)
    except IntegrityError:
        # another process recorded it a moment ago: it is there, which is what counts
        return 0, 0
    log.warning("plant trips repeatedly", extra={"plant_id": plant_id, "trips": episode.trips(),
                                                 "started_at": started_at.isoformat()})
    return 1, 0


async def send_trip_alarms(now: dt.datetime | None = None, limit: int = 100, *, apps: outbox.NotifyApps) -> int:
    """Put the pending episode alarms into the outbox and mark them sent, one transaction each.

    One ``RepeatedTrips`` message per active staff member, keyed ``trips:<episode id>``: written
    once per episode whatever the trips that follow. Its ``what`` is the rule ("频繁跳闸:
    7天内停运3次"), its time the trip that started the episode.

    Returns
    -------
    int
        How many episode alarms were marked.
    """
    now = now or utc_now()
    marked = 0
    for episode in await TripEpisode.filter(notified=AlarmState.PENDING).order_by("detected_at", "id") \
            .limit(limit).prefetch_related("plant"):
        plant: Plant = episode.plant
        name, code = alarm_plant_fields(plant.id, plant.code, plant.name)
        what = TripRule(episode.threshold, dt.timedelta(seconds=episode.window_s)).text
        try:
            async with in_transaction() as conn:
                await outbox.notify_staff("RepeatedTrips", "outage_alarm",
                                          {"plant_name": name, "plant_code": code,
                                           "started_at": episode.started_at, "what": what},
                                          f"trips:{episode.id}", using_db=conn, apps=apps, now=now)
                marked += await TripEpisode.filter(id=episode.id, notified=AlarmState.PENDING).using_db(conn) \
                    .update(notified=AlarmState.NOTIFIED, notified_at=now)
        except outbox.NotificationContentError:
            # stays pending, and is said every tick until someone fixes the plant's record
            log.exception("repeated-trip alarm cannot be written", extra={"plant_id": plant.id,
                                                                          "episode_id": episode.id})
    return marked


async def plant_episodes(plant_ids: Iterable[int], start: dt.datetime, end: dt.datetime) -> list[TripEpisode]:
    """The episodes of these plants that overlap ``[start, end)``, by plant and start."""
    return await TripEpisode.filter(plant_id__in=list(plant_ids), started_at__lt=end.astimezone(UTC),
                                    ends_at__gt=start.astimezone(UTC)).order_by("plant_id", "started_at")


def episode_as_dict(episode: TripEpisode, plant_code: str, now: dt.datetime, tz: dt.tzinfo) -> dict:
    """JSON-ready, local times, for staff (``pvsettle outages``)."""
    return {"id": episode.id, "plant": plant_code, "trips": episode.trips,
            "threshold": episode.threshold, "window_days": round(episode.window_s / 86400, 3),
            "first_trip_at": episode.first_trip_at.astimezone(tz).isoformat(),
            "started_at": episode.started_at.astimezone(tz).isoformat(),
            "last_trip_at": episode.last_trip_at.astimezone(tz).isoformat(),
            "ends_at": episode.ends_at.astimezone(tz).isoformat(), "going_on": episode.ends_at > now,
            "notified": str(episode.notified)}
