"""Bills, their lines, payments, refunds and account credit. Every amount is integer fen."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

from settlement.models.enums import BillState, LineKind, PaymentChannel, RefundState

if TYPE_CHECKING:
    from settlement.models.cycles import ConfirmationForm, ReadingCycle
    from settlement.models.parties import Owner, Staff, WechatIdentity
    from settlement.models.plants import Plant


class Bill(Model):
    """电费账单 built from one confirmed form version — issued bills are never edited.

    ``total_fen`` is the sum of the lines; what is owed is total − paid − credit applied.
    """

    id = fields.IntField(primary_key=True)
    number = fields.CharField(max_length=32, unique=True)
    cycle: fields.ForeignKeyRelation[ReadingCycle] = fields.ForeignKeyField(
        "settlement.ReadingCycle", related_name="bills", on_delete=fields.RESTRICT)
    version = fields.SmallIntField(default=1)
    form: fields.ForeignKeyRelation[ConfirmationForm] = fields.ForeignKeyField(
        "settlement.ConfirmationForm", related_name="bills", on_delete=fields.RESTRICT)
    plant: fields.ForeignKeyRelation[Plant] = fields.ForeignKeyField(
        "settlement.Plant", related_name="bills", on_delete=fields.RESTRICT)
    owner: fields.ForeignKeyRelation[Owner] = fields.ForeignKeyField(
        "settlement.Owner", related_name="bills", on_delete=fields.RESTRICT)
    state = fields.CharEnumField(BillState, max_length=16, default=BillState.OPEN)
    issued_at = fields.DatetimeField()
    due_on = fields.DateField()
    total_fen = fields.BigIntField()
    tax_fen = fields.BigIntField(description="VAT included in total_fen")
    paid_fen = fields.BigIntField(default=0)
    credit_applied_fen = fields.BigIntField(default=0)
    written_off_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    lines: fields.ReverseRelation[BillLine]
    payments: fields.ReverseRelation[Payment]

    class Meta:
        table = "bill"
        unique_together = (("cycle", "version"),)


class BillLine(Model):
    """One line of a bill, rounded once (half up) to fen.

    ``accrual_key`` is set on lines that accrue over time (late fees: the last day covered), so a
    late fee for the same span can never be charged twice.
    """

    id = fields.BigIntField(primary_key=True)
    bill: fields.ForeignKeyRelation[Bill] = fields.ForeignKeyField(
        "settlement.Bill", related_name="lines", on_delete=fields.CASCADE)
    seq = fields.SmallIntField()
    kind = fields.CharEnumField(LineKind, max_length=24)
    tou_period = fields.SmallIntField(null=True, description="tariff's own period index")
    description = fields.CharField(max_length=200)
    kwh = fields.DecimalField(max_digits=14, decimal_places=3, null=True)
    unit_price = fields.DecimalField(max_digits=12, decimal_places=6, null=True, description="[yuan/kWh]")
    amount_fen = fields.BigIntField()
    tax_fen = fields.BigIntField(default=0)
    accrual_key = fields.CharField(max_length=32, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "bill_line"
        unique_together = (("bill", "seq"), ("bill", "kind", "accrual_key"))


class Payment(Model):
    """Money received, through WeChat Pay or offline — applied at most once per transaction id.

    A payment whose order is unknown keeps ``bill`` empty and stays for staff to resolve.
    """

    id = fields.IntField(primary_key=True)
    transaction_id = fields.CharField(max_length=64, unique=True,
                                      description="WeChat Pay transaction_id, or channel:reference offline")
    out_trade_no = fields.CharField(max_length=64, null=True, db_index=True)
    channel = fields.CharEnumField(PaymentChannel, max_length=16)
    bill: fields.ForeignKeyNullableRelation[Bill] = fields.ForeignKeyField(
        "settlement.Bill", related_name="payments", null=True, on_delete=fields.RESTRICT)
    owner: fields.ForeignKeyNullableRelation[Owner] = fields.ForeignKeyField(
        "settlement.Owner", related_name="payments", null=True, on_delete=fields.RESTRICT)
    payer: fields.ForeignKeyNullableRelation[WechatIdentity] = fields.ForeignKeyField(
        "settlement.WechatIdentity", related_name=False, null=True, on_delete=fields.SET_NULL)
    recorded_by: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "settlement.Staff", related_name=False, null=True, on_delete=fields.SET_NULL)
    amount_fen = fields.BigIntField()
    paid_at = fields.DatetimeField()
    source_record = fields.JSONField(null=True, description="the decrypted notification or import row")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "payment"


class Refund(Model):
    """Money given back on a payment, full or partial, started by staff with a reason."""

    id = fields.IntField(primary_key=True)
    payment: fields.ForeignKeyRelation[Payment] = fields.ForeignKeyField(
        "settlement.Payment", related_name="refunds", on_delete=fields.RESTRICT)
    out_refund_no = fields.CharField(max_length=64, unique=True)
    refund_id = fields.CharField(max_length=64, null=True, unique=True)
    amount_fen = fields.BigIntField()
    reason = fields.CharField(max_length=200)
    state = fields.CharEnumField(RefundState, max_length=16, default=RefundState.PENDING)
    requested_by: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "settlement.Staff", related_name=False, null=True, on_delete=fields.SET_NULL)
    created_at = fields.DatetimeField(auto_now_add=True)
    settled_at = fields.DatetimeField(null=True)

    class Meta:
        table = "refund"


class CreditEntry(Model):
    """A movement of an owner's account credit: + from an overpayment, − when a bill uses it or
    it is refunded. The balance is the sum of the entries."""

    id = fields.IntField(primary_key=True)
    owner: fields.ForeignKeyRelation[Owner] = fields.ForeignKeyField(
        "settlement.Owner", related_name="credit_entries", on_delete=fields.RESTRICT)
    amount_fen = fields.BigIntField()
    reason = fields.CharField(max_length=200)
    payment: fields.ForeignKeyNullableRelation[Payment] = fields.ForeignKeyField(
        "settlement.Payment", related_name=False, null=True, on_delete=fields.RESTRICT)
    bill: fields.ForeignKeyNullableRelation[Bill] = fields.ForeignKeyField(
        "settlement.Bill", related_name=False, null=True, on_delete=fields.RESTRICT)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "credit_entry"
