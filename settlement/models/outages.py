"""Plant outages: a plant that should produce and does not, from the moment it stopped to the
moment it produced again (settlement/telemetry/outages.py opens and closes them)."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from settlement.models.plants import Plant


class OutageCause(StrEnum):
    SILENT = "silent"  # no device of the plant reported while the sun was up
    FAULT = "fault"  # the plant's devices report a fault status


class AlarmState(StrEnum):
    """Where the staff alarm of an outage stands: the notification outbox sends pending ones."""

    PENDING = "pending"
    NOTIFIED = "notified"
    # an outage of no length (a late sample showed the plant producing at its very start): there
    # was nothing to tell, and the alarm not sent yet never will be
    VOID = "void"


class PlantOutage(Model):
    """A plant that stopped producing while the sun was up, until it produced again.

    Opened and closed by the periodic outage check, never edited by hand. Staff are told through
    the notification outbox, which picks up the ``pending`` alarms of opened and of closed events.
    """

    id = fields.BigIntField(primary_key=True)
    plant: fields.ForeignKeyRelation[Plant] = fields.ForeignKeyField(
        "settlement.Plant", related_name="outages", on_delete=fields.CASCADE)
    cause = fields.CharEnumField(OutageCause, max_length=8)
    started_at = fields.DatetimeField(description="the first moment the plant should have produced and did not")
    ended_at = fields.DatetimeField(null=True, description="the time of the sample that showed it back, null while open")
    detected_at = fields.DatetimeField(description="when the check opened it")
    detail = fields.CharField(max_length=300, default="", description="what was seen, for staff")
    notified = fields.CharEnumField(AlarmState, max_length=8, default=AlarmState.PENDING,
                                    description="the staff alarm of the opening")
    notified_at = fields.DatetimeField(null=True)
    end_notified = fields.CharEnumField(AlarmState, max_length=8, null=True,
                                        description="the staff notice of the end, pending once it has ended")
    end_notified_at = fields.DatetimeField(null=True)

    class Meta:
        table = "plant_outage"
        unique_together = (("plant", "started_at"),)
        indexes = (("ended_at",),)


class TripEpisode(Model):
    """A plant whose grid connection trips again and again: a run of outages that keeps at least
    ``threshold`` of them within ``window_s`` (settlement/telemetry/outages.py defines it exactly).

    Written and extended by the periodic repeated-trip check; one staff alarm per episode, picked
    up by the notification outbox while ``notified`` is ``pending``.
    """

    id = fields.BigIntField(primary_key=True)
    plant: fields.ForeignKeyRelation[Plant] = fields.ForeignKeyField(
        "settlement.Plant", related_name="trip_episodes", on_delete=fields.CASCADE)
    started_at = fields.DatetimeField(description="the trip that brought the count within the window to the threshold")
    first_trip_at = fields.DatetimeField(description="the earliest trip counted at the start")
    last_trip_at = fields.DatetimeField(description="the latest trip of the episode so far")
    trips = fields.IntField(description="trips from first_trip_at to last_trip_at")
    ends_at = fields.DatetimeField(description="when the count falls below the threshold unless the plant trips again")
    threshold = fields.SmallIntField(description="trips within the window that made it an episode (the setting then)")
    window_s = fields.IntField(description="the window of the setting then [s]")
    detected_at = fields.DatetimeField(description="when the check found it")
    notified = fields.CharEnumField(AlarmState, max_length=8, default=AlarmState.PENDING,
                                    description="the one staff alarm of this episode")
    notified_at = fields.DatetimeField(null=True)

    class Meta:
        table = "plant_trip_episode"
        unique_together = (("plant", "started_at"),)
        indexes = (("ends_at",),)
