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
