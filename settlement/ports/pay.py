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
from typing import Any, Protocol

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

        Raises ``ValueError`` when a required field is missing or of the wrong type.
        """
        amount = data.get("amount") or {}
        total = amount.get("total")
        if total is not None and (not isinstance(total, int) or isinstance(total, bool)):
            raise ValueError("amount.total is not a whole number of fen")
        for name in ("out_trade_no", "trade_state"):
            if not isinstance(data.get(name), str) or not data.get(name):
                raise ValueError(f"{name} is missing")
        return cls(out_trade_no=data["out_trade_no"], trade_state=data["trade_state"],
                   mchid=str(data.get("mchid") or ""), appid=str(data.get("appid") or ""),
                   transaction_id=data.get("transaction_id") or None, amount_fen=total,
                   currency=amount.get("currency"), payer_openid=(data.get("payer") or {}).get("openid"),
                   success_time=parse_time(data.get("success_time")), raw=dict(data))


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
        amount = data.get("amount") or {}
        refund, total = amount.get("refund"), amount.get("total")
        for value in (refund, total):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise ValueError("refund amounts are not whole numbers of fen")
        status = data.get("status") or data.get("refund_status")
        if not isinstance(data.get("out_refund_no"), str) or not isinstance(status, str):
            raise ValueError("out_refund_no or status is missing")
        return cls(out_refund_no=data["out_refund_no"], status=status, refund_id=data.get("refund_id"),
                   refund_fen=refund, total_fen=total, out_trade_no=data.get("out_trade_no"),
                   transaction_id=data.get("transaction_id"), mchid=data.get("mchid"),
                   success_time=parse_time(data.get("success_time")), raw=dict(data))


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


def parse_time(text: Any) -> dt.datetime | None:
    """WeChat Pay's RFC 3339 times (``2018-06-08T10:34:56+08:00``) as aware datetimes."""
    if not text:
        return None
    if not isinstance(text, str):
        raise ValueError(f"not a time: {text!r}")
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"time without offset: {text!r}")
    return value


def format_time(value: dt.datetime) -> str:
    """An aware datetime in WeChat Pay's form, in China time (``2018-06-08T10:34:56+08:00``)."""
    from zoneinfo import ZoneInfo

    return value.astimezone(ZoneInfo("Asia/Shanghai")).replace(microsecond=0).isoformat()
