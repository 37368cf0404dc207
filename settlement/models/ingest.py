"""Who may push data in, and what they pushed that could not be taken."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from settlement.models.parties import Staff


class Collector(Model):
    """An AMI head-end or data logger gateway allowed to push readings and telemetry.

    Only the SHA-256 of its key is stored, the key itself is shown once when it is made.
    """

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=100, unique=True)
    key_sha256 = fields.CharField(max_length=64, unique=True)
    active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "collector"


class FieldDeviceStatus(Model):
    """The latest state a collector reported of one field device it polls (a meter or an inverter).

    One row per (collector, device): a gateway tells the server when a device stops answering,
    answers garbage, or comes back, so that "meter offline" shows where staff look. ``since`` is
    when the device entered its present state (the first report of it), ``observed_at`` the
    latest report's own time (the gateway's clock, UTC), so a report replayed from a gateway's
    queue after an outage never overwrites a newer one.
    """

    id = fields.IntField(primary_key=True)
    collector: fields.ForeignKeyRelation[Collector] = fields.ForeignKeyField(
        "settlement.Collector", related_name=False, on_delete=fields.CASCADE)
    device = fields.CharField(max_length=64, description="the meter's or the inverter's serial")
    kind = fields.CharField(max_length=16, description="meter or inverter")
    state = fields.CharField(max_length=16, description="online, offline or fault")
    code = fields.CharField(max_length=32, default="", description="why, a stable code of the gateway")
    message = fields.CharField(max_length=300, default="")
    observed_at = fields.DatetimeField(description="the latest report, gateway time")
    since = fields.DatetimeField(description="the first report of the present state")
    received_at = fields.DatetimeField()

    class Meta:
        table = "field_device_status"
        unique_together = (("collector", "device"),)


class ReadingConflict(Model):
    """A reading that was refused because it contradicts what is stored, kept for staff.

    Refused for: another value at the same meter, register and time, or a value below the
    reading before it (or above the one after it) that no rollover explains.
    """

    id = fields.IntField(primary_key=True)
    meter_serial = fields.CharField(max_length=32, db_index=True)
    register = fields.CharField(max_length=16)
    read_at = fields.DatetimeField()
    value = fields.CharField(max_length=32, description="as received")
    stored_value = fields.CharField(max_length=32, null=True, description="what it contradicts")
    code = fields.CharField(max_length=32)
    message = fields.CharField(max_length=300)
    source = fields.CharField(max_length=16)
    received_from = fields.CharField(max_length=100, description="collector:<name>, staff:<id> or import:<file>")
    received_at = fields.DatetimeField(auto_now_add=True)
    resolved_at = fields.DatetimeField(null=True)
    resolved_by: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "settlement.Staff", related_name=False, null=True, on_delete=fields.SET_NULL)
    resolution = fields.CharField(max_length=300, null=True)

    class Meta:
        table = "reading_conflict"
