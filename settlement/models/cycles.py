"""Reading cycles and the confirmation forms (电量确认单) they produce."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

from settlement.models.enums import FormState

if TYPE_CHECKING:
    from settlement.models.billing import Bill
    from settlement.models.parties import WechatIdentity
    from settlement.models.plants import Plant


class ReadingCycle(Model):
    """抄表周期: one plant's span between two reading days — one per (plant, period)."""

    id = fields.IntField(primary_key=True)
    plant: fields.ForeignKeyRelation[Plant] = fields.ForeignKeyField(
        "settlement.Plant", related_name="cycles", on_delete=fields.CASCADE)
    period = fields.CharField(max_length=7, description="YYYY-MM")
    starts_at = fields.DatetimeField()
    ends_at = fields.DatetimeField(description="cut-off")
    created_at = fields.DatetimeField(auto_now_add=True)

    forms: fields.ReverseRelation[ConfirmationForm]
    bills: fields.ReverseRelation[Bill]

    class Meta:
        table = "reading_cycle"
        unique_together = (("plant", "period"),)


class ConfirmationForm(Model):
    """电量确认单, one version of it. A confirmed version is never changed — a correction is a new
    version, and the old one moves to ``adjusted``.

    ``lines`` holds per meter × register: previous and current reading, multiplier and kWh.
    Energies are in kWh with 3 decimals; ``periods`` holds them per TOU period.
    """

    id = fields.IntField(primary_key=True)
    cycle: fields.ForeignKeyRelation[ReadingCycle] = fields.ForeignKeyField(
        "settlement.ReadingCycle", related_name="forms", on_delete=fields.CASCADE)
    version = fields.SmallIntField(default=1)
    state = fields.CharEnumField(FormState, max_length=16, default=FormState.DRAFT)
    lines = fields.JSONField()
    periods = fields.JSONField(description="per TOU period: generation, self_use, export, grid kWh")
    generation_kwh = fields.DecimalField(max_digits=14, decimal_places=3)
    self_use_kwh = fields.DecimalField(max_digits=14, decimal_places=3)
    export_kwh = fields.DecimalField(max_digits=14, decimal_places=3)
    grid_kwh = fields.DecimalField(max_digits=14, decimal_places=3)
    flags = fields.JSONField(default=list, description="engine flags for staff to look at")
    findings = fields.JSONField(default=list, description="what holds the form, naming the register and its figures")
    reader = fields.CharField(max_length=100, default="AMI")
    sent_at = fields.DatetimeField(null=True)
    answer_due_at = fields.DatetimeField(null=True, description="auto-confirm after this")
    answered_at = fields.DatetimeField(null=True)
    answered_by: fields.ForeignKeyNullableRelation[WechatIdentity] = fields.ForeignKeyField(
        "settlement.WechatIdentity", related_name=False, null=True, on_delete=fields.SET_NULL)
    dispute_reason = fields.CharField(max_length=500, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "confirmation_form"
        unique_together = (("cycle", "version"),)
