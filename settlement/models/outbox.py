"""The notification outbox: written with the change that causes it, sent by a dispatcher."""

from tortoise import fields
from tortoise.models import Model

from settlement.models.enums import OutboxState


class OutboxMessage(Model):
    """One message to one recipient — its dedupe key makes the event-to-message step idempotent."""

    id = fields.BigIntField(primary_key=True)
    dedupe_key = fields.CharField(max_length=128, unique=True)
    event = fields.CharField(max_length=32, description="past-tense domain event, e.g. BillIssued")
    channel = fields.CharField(max_length=16, description="subscribe, template or customer_service")
    recipient = fields.CharField(max_length=64, description="openid")
    app_id = fields.CharField(max_length=32)
    template = fields.CharField(max_length=64)
    payload = fields.JSONField()
    state = fields.CharEnumField(OutboxState, max_length=16, default=OutboxState.PENDING)
    attempts = fields.SmallIntField(default=0)
    not_before = fields.DatetimeField(db_index=True)
    claimed_by = fields.CharField(max_length=64, null=True)
    claimed_until = fields.DatetimeField(null=True)
    last_error = fields.CharField(max_length=500, null=True)
    sent_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "outbox_message"
        indexes = (("state", "not_before"),)
