"""Telemetry from inverters and data loggers, and its rollups."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

from settlement.models.enums import TelemetryGranularity

if TYPE_CHECKING:
    from settlement.models.plants import Plant


class TelemetryDevice(Model):
    id = fields.IntField(primary_key=True)
    plant: fields.ForeignKeyRelation[Plant] = fields.ForeignKeyField(
        "settlement.Plant", related_name="devices", on_delete=fields.CASCADE)
    serial = fields.CharField(max_length=64, unique=True)
    kind = fields.CharField(max_length=16, default="inverter")
    rated_power_w = fields.IntField(null=True, description="[W]")

    class Meta:
        table = "telemetry_device"


class TelemetrySample(Model):
    """One sample as the device sent it — applied once per (device, ts).

    Its device is not a database constraint: a check per row cost the telemetry ingest half the
    database time of writing a sample (migrations/0010), and the ingest writes only samples of
    devices it has just looked up. Devices are never deleted while they have samples.
    """

    id = fields.BigIntField(primary_key=True)
    device: fields.ForeignKeyRelation[TelemetryDevice] = fields.ForeignKeyField(
        "settlement.TelemetryDevice", related_name="samples", on_delete=fields.CASCADE, db_constraint=False)
    ts = fields.DatetimeField(description="device time, UTC")
    received_at = fields.DatetimeField()
    power_w = fields.IntField(null=True, description="[W]")
    energy_wh = fields.BigIntField(null=True, description="lifetime counter [Wh]")
    status = fields.CharField(max_length=16, default="ok")
    # Derived by the telemetry service (settlement/telemetry/ingest.py), kept so that a rollup bucket is
    # recomputed from its own samples alone.
    interval_wh = fields.BigIntField(null=True, description="energy since the previous counter sample of the device [Wh]")
    flags = fields.SmallIntField(default=0, description="bit set of settlement.telemetry.energy.SampleFlag")
    device_ts = fields.DatetimeField(null=True, description="the device's own time when it was corrected for clock skew")
    irradiance_w_m2 = fields.IntField(null=True, description="plane-of-array irradiance [W/m2]")

    class Meta:
        table = "telemetry_sample"
        unique_together = (("device", "ts"),)


class TelemetryRollup(Model):
    """Energy per plant per 15-minute, day or month bucket (bucket start, local time for days)."""

    id = fields.BigIntField(primary_key=True)
    plant: fields.ForeignKeyRelation[Plant] = fields.ForeignKeyField(
        "settlement.Plant", related_name="rollups", on_delete=fields.CASCADE)
    granularity = fields.CharEnumField(TelemetryGranularity, max_length=8)
    bucket_start = fields.DatetimeField()
    energy_wh = fields.BigIntField(default=0, description="[Wh]")
    max_power_w = fields.IntField(default=0, description="[W]")
    samples = fields.IntField(default=0)
    irradiation_wh_m2 = fields.BigIntField(null=True, description="plane-of-array irradiation [Wh/m2], null without a sensor")

    class Meta:
        table = "telemetry_rollup"
        unique_together = (("plant", "granularity", "bucket_start"),)
