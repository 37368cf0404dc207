"""What owners do in the mini-program beyond settlement: invitations to bind, shares of a plant,
subscribe-message answers, fault reports (报修) and the photos attached to disputes and reports."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

from settlement.models.enums import PlantRight

if TYPE_CHECKING:
    from settlement.models.cycles import ConfirmationForm
    from settlement.models.parties import Owner, Staff, WechatIdentity
    from settlement.models.plants import Plant


class FaultState(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"


class SubscribeAnswer(StrEnum):
    """What wx.requestSubscribeMessage reported for one template."""

    ACCEPT = "accept"
    REJECT = "reject"
    BAN = "ban"  # the template was banned by WeChat's back office


class OwnerInvitation(Model):
    """A code staff give an owner to bind a WeChat user to the owner's account, used once, expiring.

    Or a **link code** (``linked_from`` set): made by an owner's bound WeChat user in one app (the
    mini-program or the official account) to bind the same person in the other app, where WeChat
    gives no unionid to link them by (:func:`settlement.owners.bindings.issue_link_code`).

    Only the SHA-256 of the code is stored, so the table does not leak usable codes.
    """

    id = fields.IntField(primary_key=True)
    code_sha256 = fields.CharField(max_length=64, unique=True)
    owner: fields.ForeignKeyRelation[Owner] = fields.ForeignKeyField(
        "settlement.Owner", related_name="invitations", on_delete=fields.CASCADE)
    issued_by: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "settlement.Staff", related_name=False, null=True, on_delete=fields.SET_NULL)
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    used_by: fields.ForeignKeyNullableRelation[WechatIdentity] = fields.ForeignKeyField(
        "settlement.WechatIdentity", related_name=False, null=True, on_delete=fields.SET_NULL)
    linked_from: fields.ForeignKeyNullableRelation[WechatIdentity] = fields.ForeignKeyField(
        "settlement.WechatIdentity", related_name=False, null=True, on_delete=fields.CASCADE,
        description="a link code: the owner's bound WeChat user in the other app who made it")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "owner_invitation"


class PlantShare(Model):
    """A one-time code an owner makes to give a right on one plant to whoever redeems it first.

    Redeeming creates (or renews) the redeemer's PlantAccess. Only the code's SHA-256 is stored.
    """

    id = fields.IntField(primary_key=True)
    code_sha256 = fields.CharField(max_length=64, unique=True)
    plant: fields.ForeignKeyRelation[Plant] = fields.ForeignKeyField(
        "settlement.Plant", related_name="shares", on_delete=fields.CASCADE)
    right = fields.CharEnumField(PlantRight, max_length=8)
    created_by: fields.ForeignKeyRelation[WechatIdentity] = fields.ForeignKeyField(
        "settlement.WechatIdentity", related_name=False, on_delete=fields.CASCADE)
    expires_at = fields.DatetimeField()
    redeemed_at = fields.DatetimeField(null=True)
    redeemed_by: fields.ForeignKeyNullableRelation[WechatIdentity] = fields.ForeignKeyField(
        "settlement.WechatIdentity", related_name=False, null=True, on_delete=fields.SET_NULL)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "plant_share"


class SubscribeAcceptance(Model):
    """The latest answer of one WeChat user for one subscribe-message template.

    A one-time subscribe message may be sent once per accept: ``accepts`` counts the accepts
    reported, ``used`` the messages sent on them, so notifications may reach the user while
    ``accepts > used`` and the answer is accept.
    """

    id = fields.IntField(primary_key=True)
    identity: fields.ForeignKeyRelation[WechatIdentity] = fields.ForeignKeyField(
        "settlement.WechatIdentity", related_name="subscriptions", on_delete=fields.CASCADE)
    template_id = fields.CharField(max_length=64)
    answer = fields.CharEnumField(SubscribeAnswer, max_length=8)
    accepts = fields.IntField(default=0)
    used = fields.IntField(default=0)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "subscribe_acceptance"
        unique_together = (("identity", "template_id"),)


class FaultReport(Model):
    """报修: an owner reports a problem with a plant, staff work it to resolved."""

    id = fields.IntField(primary_key=True)
    plant: fields.ForeignKeyRelation[Plant] = fields.ForeignKeyField(
        "settlement.Plant", related_name="fault_reports", on_delete=fields.CASCADE)
    reported_by: fields.ForeignKeyNullableRelation[WechatIdentity] = fields.ForeignKeyField(
        "settlement.WechatIdentity", related_name=False, null=True, on_delete=fields.SET_NULL)
    text = fields.CharField(max_length=1000)
    state = fields.CharEnumField(FaultState, max_length=16, default=FaultState.OPEN)
    staff_note = fields.CharField(max_length=500, null=True)
    handled_by: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "settlement.Staff", related_name=False, null=True, on_delete=fields.SET_NULL)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    resolved_at = fields.DatetimeField(null=True)

    class Meta:
        table = "fault_report"


class Attachment(Model):
    """A photo an owner uploaded with a dispute or a fault report, kept behind the storage port.

    ``storage_key`` names it in the store. Exactly one of ``form`` and ``fault`` is set.
    """

    id = fields.IntField(primary_key=True)
    storage_key = fields.CharField(max_length=128, unique=True)
    content_type = fields.CharField(max_length=32)
    size_bytes = fields.IntField()
    sha256 = fields.CharField(max_length=64)
    uploaded_by: fields.ForeignKeyNullableRelation[WechatIdentity] = fields.ForeignKeyField(
        "settlement.WechatIdentity", related_name=False, null=True, on_delete=fields.SET_NULL)
    form: fields.ForeignKeyNullableRelation[ConfirmationForm] = fields.ForeignKeyField(
        "settlement.ConfirmationForm", related_name="attachments", null=True, on_delete=fields.CASCADE)
    fault: fields.ForeignKeyNullableRelation[FaultReport] = fields.ForeignKeyField(
        "settlement.FaultReport", related_name="attachments", null=True, on_delete=fields.CASCADE)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "attachment"


class MiniProgramSession(Model):
    """A mini-program login: the database's record of which session tokens are open.

    Redis caches each session's state (and keeps WeChat's session_key, which never comes here);
    this row is what a token is checked against when Redis has forgotten it (restarted) or cannot
    be reached, and ``closed_at`` is what makes a logout final in either case.
    """

    id = fields.IntField(primary_key=True)
    session_id = fields.CharField(max_length=32, unique=True)
    identity: fields.ForeignKeyRelation[WechatIdentity] = fields.ForeignKeyField(
        "settlement.WechatIdentity", related_name="sessions", on_delete=fields.CASCADE)
    expires_at = fields.DatetimeField(db_index=True)
    closed_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "mp_session"
