"""WeChat Pay: prepay orders, the notifications received, and the daily trade-bill reconciliation."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from settlement.models.billing import Bill
    from settlement.models.parties import WechatIdentity


class PayOrderState(StrEnum):
    PENDING = "pending"  # prepay made (or being made), not paid yet
    PAID = "paid"
    CLOSED = "closed"  # closed or expired unpaid at WeChat Pay
    FAILED = "failed"  # WeChat Pay refused the prepay


class NotificationOutcome(StrEnum):
    ACCEPTED = "accepted"  # a payment or refund was recorded from it
    DUPLICATE = "duplicate"  # what it says was already recorded, nothing changed
    UNMATCHED = "unmatched"  # verified, for an order or refund we do not know: kept for staff
    IGNORED = "ignored"  # verified, but there is nothing to record (not a success)
    REFUSED = "refused"  # failed a check: nothing recorded
    ERROR = "error"  # we failed (database away): WeChat Pay sends it again


class PayOrder(Model):
    """A WeChat Pay JSAPI order for one bill, or part of it.

    ``out_trade_no`` is derived from the bill and the attempt number and belongs to one amount for
    ever: another amount is another attempt. A prepay_id lives two hours at WeChat Pay, so the
    order is reused only until ``expires_at``, and only by the same payer.
    """

    id = fields.IntField(primary_key=True)
    out_trade_no = fields.CharField(max_length=32, unique=True)
    bill: fields.ForeignKeyRelation[Bill] = fields.ForeignKeyField(
        "settlement.Bill", related_name="pay_orders", on_delete=fields.RESTRICT)
    attempt = fields.SmallIntField()
    amount_fen = fields.BigIntField()
    payer: fields.ForeignKeyNullableRelation[WechatIdentity] = fields.ForeignKeyField(
        "settlement.WechatIdentity", related_name=False, null=True, on_delete=fields.SET_NULL)
    payer_openid = fields.CharField(max_length=64)
    state = fields.CharEnumField(PayOrderState, max_length=16, default=PayOrderState.PENDING)
    prepay_id = fields.CharField(max_length=64, null=True)
    expires_at = fields.DatetimeField()
    transaction_id = fields.CharField(max_length=64, null=True)
    failure = fields.CharField(max_length=200, null=True, description="why WeChat Pay refused the prepay")
    notified_at = fields.DatetimeField(null=True, description="first accepted payment notification")
    last_queried_at = fields.DatetimeField(null=True)
    settled_at = fields.DatetimeField(null=True, description="paid or closed")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "pay_order"
        unique_together = (("bill", "attempt"),)
        indexes = (("state", "created_at"),)


class PayNotification(Model):
    """A notification received at /pay/notify, kept whatever became of it, for staff.

    One whose signature held (``signed_at`` set) is WeChat Pay's: kept whole, ``body`` the raw
    body (at most 64 KiB) and ``resource`` the decrypted resource. One whose signature did not
    hold, or could not be checked (``signed_at`` null), may be anyone's: kept as evidence only,
    its ``headers``, the size and SHA-256 of its body and the first 2 KiB of it, at most
    ``PVSETTLE_PAY_REFUSALS_KEPT`` of them (the oldest go first) and at most
    ``PVSETTLE_PAY_REFUSAL_RATE`` a minute from one source (settlement.pay.payments).
    """

    id = fields.BigIntField(primary_key=True)
    received_at = fields.DatetimeField(auto_now_add=True, db_index=True)
    outcome = fields.CharEnumField(NotificationOutcome, max_length=16)
    reason = fields.CharField(max_length=500, null=True)
    status = fields.SmallIntField(description="HTTP status answered")
    notification_id = fields.CharField(max_length=64, null=True)
    event_type = fields.CharField(max_length=40, null=True)
    serial = fields.CharField(max_length=80, null=True)
    signed_at = fields.DatetimeField(null=True)  # the signed Wechatpay-Timestamp, once the signature held
    out_trade_no = fields.CharField(max_length=64, null=True, db_index=True)
    transaction_id = fields.CharField(max_length=64, null=True)
    out_refund_no = fields.CharField(max_length=64, null=True)
    source = fields.CharField(max_length=64, null=True, description="the sender's address (IPv6: its /64)")
    headers = fields.JSONField(description="the Wechatpay-* headers")  # and a few that say who sent it
    body = fields.TextField()  # only its first 2 KiB when the signature did not hold
    body_bytes = fields.IntField(null=True, description="size of the body received [bytes]")
    body_sha256 = fields.CharField(max_length=64, null=True, description="SHA-256 of the body received, hex")
    resource = fields.JSONField(null=True)

    class Meta:
        table = "pay_notification"
        indexes = (("signed_at", "id"),)  # the unverified ones, oldest first, to prune


class TradeBillReport(Model):
    """One day's WeChat Pay trade bill compared with the payments and refunds recorded here.

    ``mismatches`` lists each difference as ``{"kind", "transaction_id", "out_trade_no",
    "refund_id", "there_fen", "here_fen"}`` where kind is missing_here, missing_there or
    amount_differs.
    """

    id = fields.IntField(primary_key=True)
    bill_date = fields.DateField(unique=True, description="local business day")
    checked_at = fields.DatetimeField()
    trades_there = fields.IntField()
    trades_here = fields.IntField()
    paid_there_fen = fields.BigIntField()
    paid_here_fen = fields.BigIntField()
    refunded_there_fen = fields.BigIntField()
    refunded_here_fen = fields.BigIntField()
    mismatch_count = fields.IntField()
    mismatches = fields.JSONField()

    class Meta:
        table = "trade_bill_report"
