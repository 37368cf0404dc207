"""Dunning plans: when each contract's unpaid bills are reminded and escalated to staff."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from settlement.models.plants import Contract


class DunningPlan(Model):
    """The reminder days of one contract, counted from the bill's due date.

    ``offsets`` lists the days on which an unpaid bill is reminded (negative: before the due
    date, 0: on it); on day ``escalate_after`` staff are told as well. A contract without a plan
    uses the default (3 days before, the due day, +7, +15, +30, escalation at +30).
    """

    id = fields.IntField(primary_key=True)
    contract: fields.OneToOneRelation[Contract] = fields.OneToOneField(
        "settlement.Contract", related_name="dunning_plan", on_delete=fields.CASCADE)
    offsets = fields.JSONField(description="days from the due date, e.g. [-3, 0, 7, 15, 30]")
    escalate_after = fields.SmallIntField(default=30, description="days after the due date staff are told")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "dunning_plan"
