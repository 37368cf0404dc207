"""Meter register readings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

from settlement.models.enums import ReadingSource

if TYPE_CHECKING:
    from settlement.models.parties import Staff
    from settlement.models.plants import Meter


class Reading(Model):
    """One register's value at one time.

    A correction never overwrites: it is a new row with a higher ``revision`` (source
    ``adjusted``) and a reason, so the key (meter, register, read_at, revision) also refuses a
    second, different value for the same meter and time.
    """

    id = fields.BigIntField(primary_key=True)
    meter: fields.ForeignKeyRelation[Meter] = fields.ForeignKeyField(
        "settlement.Meter", related_name="readings", on_delete=fields.CASCADE)
    register = fields.CharField(max_length=16, description="DL/T 645 id, e.g. 00010000")
    read_at = fields.DatetimeField()
    value = fields.DecimalField(max_digits=14, decimal_places=4, description="[kWh] before multiplier")
    source = fields.CharEnumField(ReadingSource, max_length=16)
    revision = fields.SmallIntField(default=0)
    reason = fields.CharField(max_length=500, null=True)
    entered_by: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "settlement.Staff", related_name=False, null=True, on_delete=fields.SET_NULL)
    received_at = fields.DatetimeField(auto_now_add=True)
    # kept, but not trusted: a suspect reading holds the forms whose span it falls in, and later
    # readings are judged against the last unflagged one (settlement.readings.ingest, "Plausibility")
    flag = fields.CharField(max_length=32, null=True, description="why the reading is suspect: implausible_energy")
    flag_detail = fields.JSONField(null=True, description="the figures behind the flag")

    class Meta:
        table = "reading"
        unique_together = (("meter", "register", "read_at", "revision"),)
