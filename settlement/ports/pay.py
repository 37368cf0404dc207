"""The WeChat Pay port (API v3): what pvsettle asks of WeChat Pay and what it accepts from it.

Adapters: ``settlement.adapters.wechatpay_v3`` on wechatpayv3's ``AsyncWeChatPay`` (public-key
mode, and platform-certificate mode for older merchants); in tests and the sandbox the same
adapter talks to ``settlement.fakes.pay_server``, which signs and encrypts like WeChat Pay.

Amounts are integer fen (WeChat Pay's own unit: ``amount.total`` is in fen); times are aware
datetimes.

Exceptions::

    PayError                         anything this port raises
    ├── PayCallFailed                a call to WeChat Pay did not succeed (``code``, ``message``, ``status``)
    │   ├── PayRejected              WeChat Pay answered 4xx: the request is wrong for it (ORDER_NOT_EXIST, …)
    │   └── PayUnavailable           5xx, timeouts, connection errors, an answer whose signature fails: transient
    └── NotificationRefused          a notification that must not be believed (``reason``)
        ├── BadSignature             not signed by WeChat Pay's key for its serial (or no signature at all)
        ├── UnknownSerial            signed with a key we do not know
        ├── StaleNotification        its signed timestamp is more than the allowed skew away from now
        └── UndecryptableResource    the resource does not decrypt with our APIv3 key (tampered, or another key)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from settlement import text as outside_text
from settlement.clock import LOCAL

# WeChat Pay: "a notification older than a few minutes by its timestamp is a replay" (DOMAIN.md);
# 5 minutes is the window WeChat Pay's own SDKs use for signed timestamps.
MAX_SKEW = dt.timedelta(minutes=5)
SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"

# trade_state values of an order (WeChat Pay "查询订单")
SUCCESS = "SUCCESS"
NOTPAY = "NOTPAY"
CLOSED = "CLOSED"
REFUND = "REFUND"
PAYERROR = "PAYERROR"
REVOKED = "REVOKED"
USERPAYING = "USERPAYING"
# refund status values
REFUND_SUCCESS = "SUCCESS"
REFUND_PROCESSING = "PROCESSING"
REFUND_CLOSED = "CLOSED"
REFUND_ABNORMAL = "ABNORMAL"


class PayError(Exception):
    pass


class PayCallFailed(PayError):
    transient = False

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"WeChat Pay answered {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class PayRejected(PayCallFailed):
    pass


class PayUnavailable(PayCallFailed):
    transient = True


class NotificationRefused(PayError):
    code = "refused"

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class BadSignature(NotificationRefused):
    code = "bad_signature"


class UnknownSerial(NotificationRefused):
    code = "unknown_serial"


class StaleNotification(NotificationRefused):
    code = "stale_timestamp"


class UndecryptableResource(NotificationRefused):
    code = "undecryptable"


# --- the resources as WeChat Pay sends them, checked by shape ---------------------------------------
#
# A decrypted resource is signed by WeChat Pay, but it is still outside input: each field we read
# is checked here for type (strictly: "23456" is no amount, true is no number), range and length
# before anything uses it, so an odd one is refused (400) instead of failing somewhere inside
# (500, which WeChat Pay sends again for a day). Fields WeChat Pay documents are checked even
# where we do not read them (a resource that breaks WeChat Pay's own schema is not believed);
# fields it may add later pass.

MAX_AMOUNT_FEN = 10**12  # the bound settlement.billing.bills.MAX_PAYMENT_FEN puts on any payment [fen]
_CODE = r"^[A-Z][A-Z_]*$"  # trade_state, refund status, trade_type …
_OUT_NO = r"^[0-9A-Za-z_\-|*@]+$"  # WeChat Pay's charset of merchant order and refund numbers
_WORD = r"^[0-9A-Za-z_\-]+$"  # ids WeChat Pay gives out: appid, mchid, transaction_id, openid …
_DEPTH = 16  # nesting of a resource's JSON: WeChat Pay's go 3 deep


def unreadable_text(value: Any, depth: int = 0) -> str | None:
    """Why a JSON value cannot be kept as it is (a NUL, a control character, a lone surrogate in
    some string or key, by the one rule of :mod:`settlement.text`; a number beyond 64 bits, nesting
    beyond :data:`_DEPTH`), or None when it can. Query answers and notifications both pass here."""
    if depth > _DEPTH:
        return "nested too deep"
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        return "a number beyond 64 bits"  # no JSON column takes it
    if isinstance(value, str):
        found = outside_text.problem(value)
        return f"a string {found}" if found else None
    if isinstance(value, dict):
        items = list(value.keys()) + list(value.values())
    elif isinstance(value, list):
        items = value
    else:
        return None
    return next((problem for item in items if (problem := unreadable_text(item, depth + 1))), None)


class _Shape(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow", frozen=True)


def _when(value: Any) -> dt.datetime | None:
    if value is None or value == "":  # WeChat Pay leaves a time it does not know yet empty
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise ValueError("not an RFC 3339 time")
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("not an RFC 3339 time") from None
    if when.tzinfo is None:
        raise ValueError("a time without its UTC offset")
    return when


Time = Annotated[dt.datetime | None, BeforeValidator(_when)]


class PayerResource(_Shape):
    openid: str | None = Field(None, min_length=1, max_length=128, pattern=_WORD)  # {} on an unpaid order


class PaymentAmount(_Shape):
    total: int = Field(ge=1, le=MAX_AMOUNT_FEN)  # [fen]
    payer_total: int | None = Field(None, ge=0, le=MAX_AMOUNT_FEN)  # [fen] less the coupons
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")
    payer_currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")


class PaymentResource(_Shape):
    """An order: the decrypted resource of a TRANSACTION.* notification, or a query's answer
    (WeChat Pay API v3 "支付成功回调通知" / "查询订单")."""

    appid: str = Field(min_length=1, max_length=32, pattern=_WORD)
    mchid: str = Field(min_length=1, max_length=32, pattern=_WORD)
    out_trade_no: str = Field(min_length=1, max_length=32, pattern=_OUT_NO)
    trade_state: str = Field(min_length=1, max_length=32, pattern=_CODE)
    transaction_id: str | None = Field(None, min_length=1, max_length=32, pattern=_WORD)
    trade_type: str | None = Field(None, max_length=16, pattern=_CODE)
    trade_state_desc: str | None = Field(None, max_length=256)
    bank_type: str | None = Field(None, max_length=32)
    attach: str | None = Field(None, max_length=128)
    success_time: Time = None
    payer: PayerResource | None = None
    amount: PaymentAmount | None = None
    scene_info: dict[str, Any] | None = None
    promotion_detail: list[dict[str, Any]] | None = None

    @model_validator(mode="after")
    def _paid_by_someone(self) -> PaymentResource:
        if self.trade_state == SUCCESS and (self.payer is None or self.payer.openid is None):
            raise ValueError("a successful payment names its payer.openid")
        return self


class RefundAmount(_Shape):
    total: int = Field(ge=1, le=MAX_AMOUNT_FEN)  # of the order [fen]
    refund: int = Field(ge=1, le=MAX_AMOUNT_FEN)  # [fen]
    payer_total: int | None = Field(None, ge=0, le=MAX_AMOUNT_FEN)
    payer_refund: int | None = Field(None, ge=0, le=MAX_AMOUNT_FEN)
    settlement_refund: int | None = Field(None, ge=0, le=MAX_AMOUNT_FEN)
    settlement_total: int | None = Field(None, ge=0, le=MAX_AMOUNT_FEN)
    discount_refund: int | None = Field(None, ge=0, le=MAX_AMOUNT_FEN)
    refund_fee: int | None = Field(None, ge=0, le=MAX_AMOUNT_FEN)
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")
    from_: list[dict[str, Any]] | None = Field(None, alias="from")


class RefundResource(_Shape):
    """A refund: the decrypted resource of a REFUND.* notification (status in ``refund_status``),
    or a refund's or refund query's answer (in ``status``) (WeChat Pay API v3 "退款结果通知" /
    "查询单笔退款")."""

    out_refund_no: str = Field(min_length=1, max_length=64, pattern=_OUT_NO)
    status: str | None = Field(None, min_length=1, max_length=32, pattern=_CODE)
    refund_status: str | None = Field(None, min_length=1, max_length=32, pattern=_CODE)
    amount: RefundAmount
    refund_id: str | None = Field(None, min_length=1, max_length=32, pattern=_WORD)
    mchid: str | None = Field(None, min_length=1, max_length=32, pattern=_WORD)
    out_trade_no: str | None = Field(None, min_length=1, max_length=32, pattern=_OUT_NO)
    transaction_id: str | None = Field(None, min_length=1, max_length=32, pattern=_WORD)
    success_time: Time = None
    create_time: Time = None
    user_received_account: str | None = Field(None, max_length=64)
    channel: str | None = Field(None, max_length=16, pattern=_CODE)
    funds_account: str | None = Field(None, max_length=32, pattern=_CODE)
    promotion_detail: list[dict[str, Any]] | None = None

    @model_validator(mode="after")
    def _has_a_status(self) -> RefundResource:
        if self.status is None and self.refund_status is None:
            raise ValueError("status (or refund_status) is missing")
        return self


def _shaped(model: type[BaseModel], data: Any) -> Any:
    """``data`` validated as ``model``; ``ValueError`` saying the first problems otherwise."""
    if not isinstance(data, Mapping):
        raise ValueError("the resource is not a JSON object")
    problem = unreadable_text(dict(data))
    if problem:
        raise ValueError(problem)
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        # the messages name the field and what is wrong, never the value (it may be anything)
        raise ValueError("; ".join(f"{'.'.join(map(str, e['loc'])) or 'resource'}: {e['msg']}"
                                   for e in exc.errors(include_url=False, include_input=False)[:3])[:300]) from None


@dataclass(frozen=True)
class OrderStatus:
    """An order as WeChat Pay reports it (query by out_trade_no, or a payment notification)."""

    out_trade_no: str
    trade_state: str
    mchid: str
    appid: str
    transaction_id: str | None = None
    amount_fen: int | None = None  # amount.total [fen]
    currency: str | None = None
    payer_openid: str | None = None
    success_time: dt.datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_resource(cls, data: Mapping[str, Any]) -> OrderStatus:
        """From WeChat Pay's JSON order object (query answer or decrypted notification resource).

        Raises ``ValueError`` when it is not a :class:`PaymentResource`.
        """
        order: PaymentResource = _shaped(PaymentResource, data)
        return cls(out_trade_no=order.out_trade_no, trade_state=order.trade_state, mchid=order.mchid,
                   appid=order.appid, transaction_id=order.transaction_id,
                   amount_fen=order.amount.total if order.amount else None,
                   currency=order.amount.currency if order.amount else None,
                   payer_openid=order.payer.openid if order.payer else None,
                   success_time=order.success_time, raw=dict(data))


@dataclass(frozen=True)
class RefundStatus:
    """A refund as WeChat Pay reports it (refund answer, query, or refund notification)."""

    out_refund_no: str
    status: str
    refund_id: str | None = None
    refund_fen: int | None = None  # amount.refund [fen]
    total_fen: int | None = None  # amount.total of the order [fen]
    out_trade_no: str | None = None
    transaction_id: str | None = None
    mchid: str | None = None
    success_time: dt.datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_resource(cls, data: Mapping[str, Any]) -> RefundStatus:
        """From WeChat Pay's JSON refund object; ``ValueError`` when it is not a :class:`RefundResource`."""
        refund: RefundResource = _shaped(RefundResource, data)
        return cls(out_refund_no=refund.out_refund_no, status=refund.status or refund.refund_status,
                   refund_id=refund.refund_id, refund_fen=refund.amount.refund, total_fen=refund.amount.total,
                   out_trade_no=refund.out_trade_no, transaction_id=refund.transaction_id, mchid=refund.mchid,
                   success_time=refund.success_time, raw=dict(data))


@dataclass(frozen=True)
class Notification:
    """A verified, decrypted notification: ``event_type`` is e.g. TRANSACTION.SUCCESS or REFUND.SUCCESS."""

    id: str
    event_type: str
    resource_type: str
    resource: Mapping[str, Any]
    timestamp: dt.datetime  # the signed Wechatpay-Timestamp
    serial: str
    create_time: str | None = None
    summary: str | None = None


class WechatPay(Protocol):
    """One merchant (``mchid``) paying into one mini-program (``appid``)."""

    mchid: str
    appid: str

    async def jsapi_prepay(self, *, out_trade_no: str, description: str, amount_fen: int, payer_openid: str,
                           expires_at: dt.datetime) -> str:
        """A JSAPI / mini-program prepay order; returns its prepay_id (valid 2 hours)."""

    async def query_order(self, out_trade_no: str) -> OrderStatus:
        """The order as WeChat Pay knows it; PayRejected(ORDER_NOT_EXIST) when it does not."""

    async def close_order(self, out_trade_no: str) -> None:
        """Close an unpaid order so it can no longer be paid."""

    async def refund(self, *, out_refund_no: str, transaction_id: str, refund_fen: int, total_fen: int,
                     reason: str) -> RefundStatus:
        """Ask for a refund of ``refund_fen`` of a payment of ``total_fen``."""

    async def query_refund(self, out_refund_no: str) -> RefundStatus:
        """The refund as WeChat Pay knows it."""

    async def trade_bill(self, day: dt.date) -> str:
        """The merchant's trade bill (交易账单, type ALL) of one day as text, its hash checked."""

    def sign_jsapi(self, timestamp: str, nonce: str, package: str) -> str:
        """paySign for wx.requestPayment: RSA-SHA256 of ``appId\\ntimeStamp\\nnonceStr\\npackage\\n``."""

    async def verify_notification(self, headers: Mapping[str, str], body: bytes, *,
                                  now: dt.datetime | None = None) -> Notification:
        """Check the signature (serial → key), the timestamp (±MAX_SKEW) and decrypt the resource."""


def format_time(value: dt.datetime) -> str:
    """An aware datetime in WeChat Pay's form, in China time (``2018-06-08T10:34:56+08:00``)."""
    return value.astimezone(LOCAL).replace(microsecond=0).isoformat()
