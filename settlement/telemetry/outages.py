"""Outages: a plant that stops producing while it should produce, until it produces again.

:func:`check_outages` runs periodically (one call in the scheduler's tick). The rules:

* **Producing** — a sample that is not a fault and shows power or interval energy.
* **Should produce** — the sun at least 10° up at the plant (:mod:`settlement.telemetry.solar`; plants
  without coordinates are judged at Shanghai's).
* **Opens** — when, since the plant's last producing sample (or its first sample, if it never
  produced; or the end of its previous outage, if later), the sun has been up for at least
  :data:`SILENCE` in one stretch. The outage starts where that stretch starts, or where production
  stopped if that is later (:func:`_stopped_us`): the last producing sample shows the plant
  producing at its time, so the outage starts at the first sample after it (one that shows
  nothing produced), or, when none came, one sample interval after it, when the next sample was
  due; so a plant that stops at dusk and starts with the morning sun opens nothing, and one whose
  last producing sample was at 12:00, reporting every 15 minutes, has an outage from 12:15. Its cause is ``fault``
  when a device's latest sample reports a fault, else ``silent`` (nothing, or nothing producing,
  arrived).
* **Closes** — at the time of the first producing sample from its start on, whenever that arrives
  (a late batch closes it at the right time too). One producing at the very start (the sample
  that was late) leaves an outage of no length: the figures do not count it, it is no trip, and
  its alarm, if not sent yet, is void (:attr:`AlarmState.VOID`); staff who were told of it are
  told it ended.
* Plants whose devices never sent a sample are not judged (their telemetry is not connected yet).

Staff alarms go through the notification outbox: each outage records a ``notified`` state
(``pending`` when it opens) and, once ended, an ``end_notified`` one. :func:`send_outage_alarms`
(the scheduler's tick, right after :func:`check_outages`) writes one ``outage_alarm`` message per
active staff member for each pending alarm with :func:`settlement.notify.outbox.notify_staff` and marks
the alarm in the same transaction; the outbox dispatcher delivers them. Nothing here talks to
WeChat.

Every outage is also a *trip* of the plant's grid connection for :mod:`settlement.telemetry.trips`, which
flags plants that trip again and again (one staff alarm per episode, not per trip).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from tortoise import connections
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from settlement import audit
from settlement.notify import outbox
from settlement.models import AlarmState, OutageCause, Plant, PlantOutage, TelemetryDevice, TelemetrySample
from settlement.telemetry.solar import DEFAULT_LATITUDE, DEFAULT_LONGITUDE, first_daylight_stretch
from settlement.telemetry.energy import DAY_US
from settlement.telemetry.store import TelemetryStore, datetime_to_us, us_to_datetime
from settlement.clock import UTC, utc_now

log = logging.getLogger("pvsettle.outages")

#: Daylight without production before a plant has an outage.
SILENCE = dt.timedelta(minutes=30)
#: A plant's sample interval when it has sent only one sample [µs] (the rollups' 15 minutes).
DEFAULT_SAMPLE_INTERVAL_US = 15 * 60 * 1_000_000
#: How far back an outage's start is looked for [µs].
LOOK_BACK_US = 31 * DAY_US
#: Samples looked at per open outage and check when looking for production again.
CLOSE_SCAN = 5_000
CAUSE_TEXT = {OutageCause.SILENT: "无数据上报", OutageCause.FAULT: "设备故障"}
ENDED_TEXT = "已恢复发电"
_WECHAT_CODE = re.compile(r"[!-~]{1,32}")


@dataclass(frozen=True)
class OutageAlarm:
    """One staff alarm the outbox should send: an outage opened, or one ended.

    ``what`` is a short Chinese text for a subscribe-message ``thing`` field (≤ 20 characters);
    ``dedupe_key`` the outbox's natural key for it.
    """

    outage_id: int
    kind: str  # "opened" or "ended"
    plant_id: int
    plant_code: str
    plant_name: str
    cause: str
    started_at: dt.datetime
    ended_at: dt.datetime | None
    what: str
    detail: str

    @property
    def dedupe_key(self) -> str:
        return f"outage:{self.outage_id}:{self.kind}"


def _site(plant: dict) -> tuple[float, float]:
    lat, lon = plant["latitude"], plant["longitude"]
    return (float(lat), float(lon)) if lat is not None and lon is not None else (DEFAULT_LATITUDE, DEFAULT_LONGITUDE)


def _local(us: int) -> str:
    return us_to_datetime(us).astimezone(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m-%d %H:%M")


async def check_outages(now: dt.datetime | None = None) -> dict[str, int]:
    """Open the outages that began and close those that ended, as of ``now``.

    Idempotent: run again at the same ``now`` it changes nothing; (plant, start) is unique, so two
    processes that race open one outage.

    Returns
    -------
    dict
        ``{"outages_opened": n, "outages_closed": n}``.
    """
    now = now or utc_now()
    now_us = datetime_to_us(now)
    plant_ids = sorted(set(await TelemetryDevice.all().values_list("plant_id", flat=True)))
    if not plant_ids:
        return {"outages_opened": 0, "outages_closed": 0}
    plants = {p["id"]: p for p in await Plant.filter(id__in=plant_ids).values("id", "code", "latitude", "longitude")}
    store = TelemetryStore(connections.get("default"))
    latest = await store.latest_per_device(plant_ids)
    producing: dict[int, int] = {}
    for plant, _device, ts in await store.latest_producing_per_device(plant_ids):
        producing[plant] = max(ts, producing.get(plant, ts))
    latest_of: dict[int, list[tuple[int, int, str]]] = defaultdict(list)
    for plant, device, ts, _power, status in latest:
        latest_of[plant].append((device, ts, status))
    open_by_plant = {o.plant_id: o for o in await PlantOutage.filter(ended_at__isnull=True)}

    closed = 0
    for outage in open_by_plant.values():
        closed += await _close_if_producing(store, outage, now)

    candidates = [p for p in latest_of if p not in open_by_plant
                  and producing.get(p, -1) < now_us - SILENCE // dt.timedelta(microseconds=1)]
    ended = await _last_ends(candidates)
    opened = 0
    serials = dict(await TelemetryDevice.filter(plant_id__in=candidates).values_list("id", "serial")) if candidates else {}
    for plant in candidates:
        after = producing.get(plant)
        if after is None:
            after = await _first_sample_us(plant)
        after = max(after, ended.get(plant, after), now_us - LOOK_BACK_US)
        lat, lon = _site(plants[plant])
        start = first_daylight_stretch(after, now_us, lat, lon, SILENCE // dt.timedelta(microseconds=1))
        if start is None:
            continue
        if plant in producing:
            stopped = await _stopped_us(store, plant, producing[plant], ended.get(plant))
            start = min(max(start, stopped), now_us)
        faulty = [serials.get(d, str(d)) for d, ts, status in latest_of[plant]
                  if status == "fault" and ts > producing.get(plant, -1)]
        cause = OutageCause.FAULT if faulty else OutageCause.SILENT
        if faulty:
            detail = "设备故障: " + ", ".join(sorted(faulty))
        elif plant in producing:
            detail = f"最后发电 {_local(producing[plant])}"
        else:
            detail = "从未发电"
        opened += await _open(plant, cause, start, now, detail[:300])
    return {"outages_opened": opened, "outages_closed": closed}


async def _last_ends(plant_ids: list[int]) -> dict[int, int]:
    ends: dict[int, int] = {}
    if not plant_ids:
        return ends
    for plant, ended in await PlantOutage.filter(plant_id__in=plant_ids, ended_at__isnull=False).values_list(
            "plant_id", "ended_at"):
        ends[plant] = max(datetime_to_us(ended), ends.get(plant, 0))
    return ends


async def _stopped_us(store: TelemetryStore, plant_id: int, producing_us: int, since_us: int | None) -> int:
    """Where a plant's production stopped, after its last producing sample at ``producing_us`` [µs].

    That sample saw the plant producing at its own time, so the stop is seen first at the next
    sample (which did not show production). With no sample since, it is where the next one was
    due: one sample interval later, the interval being the time from the plant's sample before
    the producing one to it (:data:`DEFAULT_SAMPLE_INTERVAL_US` if there is none since the plant's
    previous outage ended at ``since_us``: a gap across an outage is no sample interval).
    """
    following = await store.plant_samples_after(plant_id, producing_us, 1)
    if following:
        return following[0][0]
    query = TelemetrySample.filter(device__plant_id=plant_id, ts__lt=us_to_datetime(producing_us))
    if since_us is not None:
        query = query.filter(ts__gte=us_to_datetime(since_us))
    before = await query.order_by("-ts").limit(1).values_list("ts", flat=True)
    interval = producing_us - datetime_to_us(before[0]) if before else DEFAULT_SAMPLE_INTERVAL_US
    return producing_us + interval


async def _first_sample_us(plant_id: int) -> int:
    first = await TelemetrySample.filter(device__plant_id=plant_id).order_by("ts").limit(1).values_list("ts", flat=True)
    return datetime_to_us(first[0])


async def _open(plant_id: int, cause: OutageCause, start_us: int, now: dt.datetime, detail: str) -> int:
    try:
        async with in_transaction() as conn:
            outage = await PlantOutage.create(plant_id=plant_id, cause=cause, started_at=us_to_datetime(start_us),
                                              detected_at=now, detail=detail, notified=AlarmState.PENDING,
                                              using_db=conn)
            await audit.record(audit.SYSTEM, "OpenOutage", "plant_outage", outage.id,
                               after={"plant_id": plant_id, "cause": cause, "started_at": outage.started_at,
                                      "detail": detail}, using_db=conn)
    except IntegrityError:
        # another process opened the same outage a moment ago: it is there, which is what counts
        log.info("outage already opened by another process", extra={"plant_id": plant_id})
        return 0
    log.warning("plant outage opened", extra={"plant_id": plant_id, "cause": str(cause), "started_at": _local(start_us)})
    return 1


async def _close_if_producing(store: TelemetryStore, outage: PlantOutage, now: dt.datetime) -> int:
    for ts, power, interval, status, _serial in await store.plant_samples_after(
            outage.plant_id, datetime_to_us(outage.started_at) - 1, CLOSE_SCAN):
        if status != "fault" and (power > 0 or interval > 0):
            ended = us_to_datetime(ts)
            async with in_transaction() as conn:
                open_ = PlantOutage.filter(id=outage.id, ended_at__isnull=True).using_db(conn)
                void = 0
                if ended <= outage.started_at:  # no length: the plant was producing after all
                    void = await open_.filter(notified=AlarmState.PENDING).update(
                        ended_at=ended, notified=AlarmState.VOID, end_notified=AlarmState.VOID)
                changed = void or await open_.update(ended_at=ended, end_notified=AlarmState.PENDING)
                if changed:
                    await audit.record(audit.SYSTEM, "CloseOutage", "plant_outage", outage.id,
                                       before={"ended_at": None},
                                       after={"ended_at": ended, **({"alarm": "void"} if void else {})},
                                       using_db=conn)
            return changed
    return 0


# --- for the notification outbox ----------------------------------------------------------------


async def outage_alarms_due(limit: int = 100) -> list[OutageAlarm]:
    """The staff alarms not yet sent, oldest first: outages opened, then outages ended.

    :func:`send_outage_alarms` writes their messages to the outbox (keyed by ``alarm.dedupe_key``)
    and calls :func:`mark_outage_alarms_notified` in the same transaction.
    """
    opened = await PlantOutage.filter(notified=AlarmState.PENDING).order_by("detected_at", "id").limit(limit) \
        .prefetch_related("plant")
    ended = await PlantOutage.filter(end_notified=AlarmState.PENDING).order_by("ended_at", "id").limit(limit) \
        .prefetch_related("plant")
    alarms = [_alarm(o, "opened") for o in opened] + [_alarm(o, "ended") for o in ended]
    return alarms[:limit]


def _alarm(outage: PlantOutage, kind: str) -> OutageAlarm:
    plant: Plant = outage.plant
    return OutageAlarm(outage_id=outage.id, kind=kind, plant_id=plant.id, plant_code=plant.code,
                       plant_name=plant.name, cause=str(outage.cause), started_at=outage.started_at,
                       ended_at=outage.ended_at, what=ENDED_TEXT if kind == "ended" else CAUSE_TEXT[outage.cause],
                       detail=outage.detail)


async def mark_outage_alarms_notified(alarms: Iterable[OutageAlarm], at: dt.datetime | None = None,
                                      using_db=None) -> int:
    """Record that these alarms went to staff (pass the outbox's transaction as ``using_db``).

    Returns how many were still pending (an alarm marked twice counts once).
    """
    at = at or utc_now()
    marked = 0
    for alarm in alarms:
        query = PlantOutage.filter(id=alarm.outage_id)
        if using_db is not None:
            query = query.using_db(using_db)
        if alarm.kind == "opened":
            marked += await query.filter(notified=AlarmState.PENDING).update(notified=AlarmState.NOTIFIED,
                                                                             notified_at=at)
        elif alarm.kind == "ended":
            marked += await query.filter(end_notified=AlarmState.PENDING).update(end_notified=AlarmState.NOTIFIED,
                                                                                 end_notified_at=at)
        else:
            raise ValueError(f"unknown outage alarm kind {alarm.kind!r}")
    return marked


def alarm_plant_fields(plant_id: int, code: str, name: str) -> tuple[str, str]:
    """The plant's name and code as the ``outage_alarm`` template's fields can carry them.

    WeChat's ``character_string`` is ASCII without spaces: a code that is not stands as the id;
    control characters in the name become spaces, and an empty name is the code.
    """
    code = code if _WECHAT_CODE.fullmatch(code) else f"PLANT-{plant_id}"
    name = "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in name).strip()
    return name or code, code


async def send_outage_alarms(now: dt.datetime | None = None, limit: int = 100, *, apps: outbox.NotifyApps) -> int:
    """Put the pending staff alarms into the notification outbox and mark them sent, together.

    One transaction per alarm: its outbox rows (one per active staff member, keyed by the alarm's
    ``dedupe_key``) and its mark commit or roll back as one, so an alarm is neither lost nor
    written twice; a second process that read the same alarms adds nothing (the outbox's key is
    unique, the mark counts once). ``what`` names the cause when an outage opens and "已恢复发电"
    when it ends; the template's one time is the start of an outage that opened and the end of one
    that ended.

    Returns
    -------
    int
        How many alarms were marked.
    """
    now = now or utc_now()
    marked = 0
    for alarm in await outage_alarms_due(limit):
        at = alarm.started_at if alarm.kind == "opened" else alarm.ended_at
        name, code = alarm_plant_fields(alarm.plant_id, alarm.plant_code, alarm.plant_name)
        try:
            async with in_transaction() as conn:
                await outbox.notify_staff("OutageOpened" if alarm.kind == "opened" else "OutageEnded",
                                          "outage_alarm", {"plant_name": name, "plant_code": code,
                                                           "started_at": at, "what": alarm.what},
                                          alarm.dedupe_key, using_db=conn, apps=apps, now=now)
                marked += await mark_outage_alarms_notified([alarm], at=now, using_db=conn)
        except outbox.NotificationContentError:
            # stays pending, and is said every tick until someone fixes the plant's record
            log.exception("outage alarm cannot be written", extra={"plant_id": alarm.plant_id,
                                                                   "outage_id": alarm.outage_id})
    return marked


async def plant_outages(plant_ids: Iterable[int], start: dt.datetime, end: dt.datetime) -> list[PlantOutage]:
    """The outages of these plants that overlap ``[start, end)`` (open ones included)."""
    start_utc, end_utc = start.astimezone(UTC), end.astimezone(UTC)
    return await PlantOutage.filter(Q(ended_at__isnull=True) | Q(ended_at__gt=start_utc),
                                    plant_id__in=list(plant_ids), started_at__lt=end_utc).order_by("plant_id",
                                                                                                    "started_at")

