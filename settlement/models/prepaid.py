"""Prepaid accounts (预付费, DOMAIN.md "Smart payment"): services, usage, ledger, top-ups, supply commands, e-invoices.

Every movement of an account's money is one :class:`PrepaidEntry` whose ``key`` is unique per
account (top-up: the WeChat Pay transaction_id, daily charge: service, day and revision, true-up:
the bill), so an event applied twice moves the money once. ``available_fen`` on the account is
the sum of its entries, kept in the same transaction as each entry under the account's row lock.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

from settlement.models.pay import PayOrderState

if TYPE_CHECKING:
    from settlement.models.billing import Bill, Payment
    from settlement.models.parties import Owner, WechatIdentity
    from settlement.models.plants import Meter, Plant


class Utility(StrEnum):
    ELECTRICITY = "electricity"
    WATER = "water"
    GAS = "gas"


class AlertState(StrEnum):
    """Where the account stands against its thresholds (each entered once per crossing)."""

    NORMAL = "normal"  # available above the warning level
    WARNED = "warned"  # at or below the warning level, above zero: low-balance notice sent
    CUTOFF_PENDING = "cutoff_pending"  # at or below zero: notice sent, cut-off after the grace period
    CUT_OFF = "cut_off"  # cut-off command issued


class SupplyState(StrEnum):
    ON = "on"
    OFF = "off"
    UNKNOWN = "unknown"  # a command was never acknowledged: staff were alarmed


class EntryKind(StrEnum):
    TOPUP = "topup"
    CHARGE = "charge"
    TRUE_UP = "true_up"
    REFUND = "refund"
    REFUND_RETURNED = "refund_returned"  # a refund WeChat Pay refused: the money comes back


class CommandKind(StrEnum):
    CUT_OFF = "cut_off"
    RESTORE = "restore"


class CommandState(StrEnum):
    PENDING = "pending"  # not acknowledged yet (attempts say whether it was ever sent)
    ACKNOWLEDGED = "acknowledged"
    FAILED = "failed"  # retries exhausted, staff alarmed
    CANCELLED = "cancelled"  # overtaken by a top-up before it was ever sent, or by a restore


class InvoiceState(StrEnum):
    REQUESTED = "requested"
    ISSUED = "issued"
    FAILED = "failed"


class PrepaidAccount(Model):
    """A prepaid account of an owner, for one site (plant) or for the owner as a whole.

    The cut-off terms (grace period, no cut-off in quiet hours or on holidays) are the prepaid
    agreement's and live here with the account.
    """

    id = fields.IntField(primary_key=True)
    number = fields.CharField(max_length=20, unique=True, description="account number owners and payers quote")
    owner: fields.ForeignKeyRelation[Owner] = fields.ForeignKeyField(
        "settlement.Owner", related_name="prepaid_accounts", on_delete=fields.RESTRICT)
    plant: fields.ForeignKeyNullableRelation[Plant] = fields.ForeignKeyField(
        "settlement.Plant", related_name="prepaid_accounts", null=True, on_delete=fields.RESTRICT)
    name = fields.CharField(max_length=100)
    warning_fen = fields.BigIntField(default=5000, description="[fen] low-balance warning level")
    grace_hours = fields.SmallIntField(default=24, description="[h] from the cut-off notice to the cut-off")
    no_cutoff_quiet_hours = fields.BooleanField(default=True, description="no cut-off 22-08 local time")
    no_cutoff_holidays = fields.BooleanField(default=True)
    holidays = fields.JSONField(default=list, description="local dates YYYY-MM-DD without cut-off")
    allow_pay_by_number = fields.BooleanField(default=False, description="anyone quoting the number may top up")
    switch_serial = fields.CharField(max_length=32, description="the device that cuts and restores supply")
    available_fen = fields.BigIntField(default=0, description="[fen] sum of the ledger entries")
    alert_state = fields.CharEnumField(AlertState, max_length=16, default=AlertState.NORMAL)
    supply = fields.CharEnumField(SupplyState, max_length=8, default=SupplyState.ON)
    cutoff_due_at = fields.DatetimeField(null=True)
    warnings = fields.IntField(default=0, description="low-balance crossings so far")
    crossings = fields.IntField(default=0, description="crossings to zero or below so far")
    restores = fields.IntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "prepaid_account"


class PrepaidService(Model):
    """One metered utility of an account (electricity, water, gas) with its own tariff and unit.

    ``follows_contract`` prices the plant's electricity exactly as its monthly bill does (the
    contract's terms on self-use per DL/T 645 rate, per reading cycle), so the month's true-up
    only corrects what the meter readings say differently. Otherwise the service's tariff
    (``tariff_code``) is applied per calendar month by billing_engine's interval billing.
    """

    id = fields.IntField(primary_key=True)
    account: fields.ForeignKeyRelation[PrepaidAccount] = fields.ForeignKeyField(
        "settlement.PrepaidAccount", related_name="services", on_delete=fields.CASCADE)
    name = fields.CharField(max_length=64)
    utility = fields.CharEnumField(Utility, max_length=16)
    unit = fields.CharField(max_length=8, description="kWh or m3")
    tariff_code = fields.CharField(max_length=64, null=True)
    follows_contract = fields.BooleanField(default=False)
    meter: fields.ForeignKeyNullableRelation[Meter] = fields.ForeignKeyField(
        "settlement.Meter", related_name=False, null=True, on_delete=fields.SET_NULL)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "prepaid_service"
        unique_together = (("account", "name"),)


class PrepaidUsage(Model):
    """Quantity used in one 15-minute interval of a service, as last received.

    ``quantity_milli`` is thousandths of the service's unit (Wh for kWh, litres for m3).
    """

    id = fields.BigIntField(primary_key=True)
    service: fields.ForeignKeyRelation[PrepaidService] = fields.ForeignKeyField(
        "settlement.PrepaidService", related_name="usage", on_delete=fields.CASCADE)
    interval_start = fields.DatetimeField(description="UTC start of the interval")
    quantity_milli = fields.BigIntField()
    revision = fields.SmallIntField(default=1)
    received_at = fields.DatetimeField()

    class Meta:
        table = "prepaid_usage"
        unique_together = (("service", "interval_start"),)


class PrepaidEntry(Model):
    """A movement of a prepaid account: + top-up or returned refund, − charge, true-up or refund."""

    id = fields.BigIntField(primary_key=True)
    account: fields.ForeignKeyRelation[PrepaidAccount] = fields.ForeignKeyField(
        "settlement.PrepaidAccount", related_name="entries", on_delete=fields.RESTRICT)
    key = fields.CharField(max_length=96, description="idempotency key unique per account")
    kind = fields.CharEnumField(EntryKind, max_length=16)
    amount_fen = fields.BigIntField()
    available_after_fen = fields.BigIntField()
    service: fields.ForeignKeyNullableRelation[PrepaidService] = fields.ForeignKeyField(
        "settlement.PrepaidService", related_name=False, null=True, on_delete=fields.RESTRICT)
    day = fields.DateField(null=True, description="local day a charge is for")
    quantity_milli = fields.BigIntField(null=True, description="usage behind a charge")
    payment: fields.ForeignKeyNullableRelation[Payment] = fields.ForeignKeyField(
        "settlement.Payment", related_name=False, null=True, on_delete=fields.RESTRICT)
    payer: fields.ForeignKeyNullableRelation[WechatIdentity] = fields.ForeignKeyField(
        "settlement.WechatIdentity", related_name=False, null=True, on_delete=fields.SET_NULL)
    bill: fields.ForeignKeyNullableRelation[Bill] = fields.ForeignKeyField(
        "settlement.Bill", related_name=False, null=True, on_delete=fields.RESTRICT)
    note = fields.CharField(max_length=200, default="")
    posted_at = fields.DatetimeField()

    class Meta:
        table = "prepaid_entry"
        unique_together = (("account", "key"),)
        indexes = (("account_id", "day"),)


class TopUpOrder(Model):
    """A WeChat Pay JSAPI order topping up a prepaid account (``out_trade_no`` starts with T)."""

    id = fields.IntField(primary_key=True)
    out_trade_no = fields.CharField(max_length=32, unique=True)
    account: fields.ForeignKeyRelation[PrepaidAccount] = fields.ForeignKeyField(
        "settlement.PrepaidAccount", related_name="topup_orders", on_delete=fields.RESTRICT)
    attempt = fields.IntField()
    amount_fen = fields.BigIntField()
    payer: fields.ForeignKeyNullableRelation[WechatIdentity] = fields.ForeignKeyField(
        "settlement.WechatIdentity", related_name=False, null=True, on_delete=fields.SET_NULL)
    payer_openid = fields.CharField(max_length=64)
    state = fields.CharEnumField(PayOrderState, max_length=16, default=PayOrderState.PENDING)
    prepay_id = fields.CharField(max_length=64, null=True)
    expires_at = fields.DatetimeField()
    transaction_id = fields.CharField(max_length=64, null=True)
    failure = fields.CharField(max_length=200, null=True)
    settled_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "topup_order"
        unique_together = (("account", "attempt"),)


class SupplyCommand(Model):
    """A cut-off or restore command to an account's switch, retried until acknowledged."""

    id = fields.IntField(primary_key=True)
    command_id = fields.CharField(max_length=48, unique=True, description="the device dedupes on it")
    account: fields.ForeignKeyRelation[PrepaidAccount] = fields.ForeignKeyField(
        "settlement.PrepaidAccount", related_name="commands", on_delete=fields.RESTRICT)
    kind = fields.CharEnumField(CommandKind, max_length=16)
    target_serial = fields.CharField(max_length=32)
    state = fields.CharEnumField(CommandState, max_length=16, default=CommandState.PENDING)
    attempts = fields.SmallIntField(default=0)
    next_attempt_at = fields.DatetimeField()
    last_error = fields.CharField(max_length=200, null=True)
    acknowledged_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "supply_command"
        indexes = (("state", "next_attempt_at"),)


class InvoiceRequest(Model):
    """An e-invoice asked for one payment or one month of an owner, with the buyer's tax details."""

    id = fields.IntField(primary_key=True)
    request_key = fields.CharField(max_length=64, unique=True, description="payment or owner and month")
    owner: fields.ForeignKeyRelation[Owner] = fields.ForeignKeyField(
        "settlement.Owner", related_name="invoice_requests", on_delete=fields.RESTRICT)
    payment: fields.ForeignKeyNullableRelation[Payment] = fields.ForeignKeyField(
        "settlement.Payment", related_name=False, null=True, on_delete=fields.RESTRICT)
    month = fields.CharField(max_length=7, null=True, description="YYYY-MM")
    buyer_name = fields.CharField(max_length=100)
    buyer_tax_id = fields.CharField(max_length=32)
    amount_fen = fields.BigIntField()
    tax_fen = fields.BigIntField()
    state = fields.CharEnumField(InvoiceState, max_length=16, default=InvoiceState.REQUESTED)
    invoice_number = fields.CharField(max_length=40, null=True)
    failure = fields.CharField(max_length=200, null=True)
    document = fields.TextField(null=True, description="the rendered invoice")
    issued_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "invoice_request"
