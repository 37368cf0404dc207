"""Owners, staff and the WeChat identities they log in with."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

from settlement.models.enums import OwnerKind, PlantRight, StaffRole

if TYPE_CHECKING:
    from settlement.models.plants import Plant


class Owner(Model):
    """业主 / 用电方: the roof owner who uses the PV power and pays for it."""

    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=32, unique=True, null=True,
                            description="the company's own owner number, the key of a portfolio import")
    name = fields.CharField(max_length=100)
    kind = fields.CharEnumField(OwnerKind, max_length=16, default=OwnerKind.COMMERCIAL)
    phone = fields.CharField(max_length=20, null=True, db_index=True)
    tax_id = fields.CharField(max_length=32, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    plants: fields.ReverseRelation[Plant]
    identities: fields.ReverseRelation[WechatIdentity]

    class Meta:
        table = "owner"


class Staff(Model):
    """运维 O&M staff — what a command may do is decided by ``role``."""

    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=32, unique=True, null=True,
                            description="工号, the staff member's number, the key of a portfolio import")
    name = fields.CharField(max_length=100)
    role = fields.CharEnumField(StaffRole, max_length=16, default=StaffRole.VIEWER)
    active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    identities: fields.ReverseRelation[WechatIdentity]

    class Meta:
        table = "staff"


class WechatIdentity(Model):
    """A WeChat user as one app sees them: openid per app, unionid across apps when bound.

    An identity is bound to at most one owner and at most one staff record.
    """

    id = fields.IntField(primary_key=True)
    app_id = fields.CharField(max_length=32)
    openid = fields.CharField(max_length=64)
    unionid = fields.CharField(max_length=64, null=True, db_index=True)
    owner: fields.ForeignKeyNullableRelation[Owner] = fields.ForeignKeyField(
        "settlement.Owner", related_name="identities", null=True, on_delete=fields.SET_NULL)
    staff: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "settlement.Staff", related_name="identities", null=True, on_delete=fields.SET_NULL)
    nickname = fields.CharField(max_length=64, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "wechat_identity"
        unique_together = (("app_id", "openid"),)


class PlantAccess(Model):
    """Rights an owner grants another WeChat user on one plant (family, finance staff)."""

    id = fields.IntField(primary_key=True)
    plant: fields.ForeignKeyRelation[Plant] = fields.ForeignKeyField(
        "settlement.Plant", related_name="grants", on_delete=fields.CASCADE)
    identity: fields.ForeignKeyRelation[WechatIdentity] = fields.ForeignKeyField(
        "settlement.WechatIdentity", related_name="grants", on_delete=fields.CASCADE)
    right = fields.CharEnumField(PlantRight, max_length=8)
    granted_at = fields.DatetimeField(auto_now_add=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "plant_access"
        unique_together = (("plant", "identity"),)
