"""The audit trail: who changed what, when, from what to what, and why."""

from tortoise import fields
from tortoise.models import Model


class AuditEvent(Model):
    """Written in the same transaction as every change to readings, forms, bills and payments."""

    id = fields.BigIntField(primary_key=True)
    at = fields.DatetimeField(auto_now_add=True, db_index=True)
    actor = fields.CharField(max_length=64, description="staff:<id>, owner:<id>, wechat:<openid> or system")
    action = fields.CharField(max_length=64, description="the command, e.g. AdjustReading")
    entity = fields.CharField(max_length=32)
    entity_id = fields.CharField(max_length=64)
    before = fields.JSONField(null=True)
    after = fields.JSONField(null=True)
    reason = fields.CharField(max_length=500, null=True)
    request_id = fields.CharField(max_length=64, null=True)

    class Meta:
        table = "audit_event"
        indexes = (("entity", "entity_id"),)
