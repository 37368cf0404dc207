"""What a bill's payment and a prepaid top-up share: the order handed to the mini-program, what
became of a notification, the refusal that records nothing, and the refundable rest of a payment.

Below both :mod:`settlement.pay.payments` and :mod:`settlement.prepaid.accounts`, so that neither
takes the other's private names (they did, and imported each other).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from settlement.models import NotificationOutcome, Payment, Refund, RefundState
from settlement.ports.pay import OrderStatus, WechatPay

ORDER_TTL = dt.timedelta(hours=2)  # WeChat Pay keeps a prepay_id valid for 2 hours
TOPUP_PREFIX = "T"  # out_trade_no of a prepaid top-up (settlement.prepaid.accounts); a bill's starts with digits


@dataclass(frozen=True)
class JsapiPayment:
    """What the mini-program passes to ``wx.requestPayment``, and the order behind it."""

    out_trade_no: str
    amount_fen: int
    expires_at: dt.datetime
    reused: bool
    time_stamp: str
    nonce_str: str
    package: str
    pay_sign: str
    sign_type: str = "RSA"

    def request_payment(self) -> dict[str, str]:
        """The parameters of wx.requestPayment, named as it names them."""
        return {"timeStamp": self.time_stamp, "nonceStr": self.nonce_str, "package": self.package,
                "signType": self.sign_type, "paySign": self.pay_sign}


class Refuse(Exception):
    """A check failed: nothing is recorded but the notification itself."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Ignored(Refuse):
    """Verified, but nothing to record (a payment that did not succeed, a refund still processing)."""

    def __init__(self, reason: str):
        super().__init__(204, reason)


@dataclass
class Handled:
    """What became of one notification: the HTTP status to answer, and why."""

    status: int
    outcome: NotificationOutcome
    reason: str | None = None
    record: dict[str, Any] = field(default_factory=dict)
    kept: bool = True  # False: refused beyond its source's rate, not kept

    @property
    def accepted(self) -> bool:
        return self.status < 300


def resource_errors(status: OrderStatus, pay: WechatPay) -> str | None:
    if status.mchid != pay.mchid:
        return f"mchid {status.mchid[:32]!r} is not ours"
    if status.appid != pay.appid:
        return f"appid {status.appid[:32]!r} is not ours"
    return None


async def refundable_fen(payment: Payment, *, using_db=None) -> int:
    """What is left of a payment to refund: its amount less refunds asked or done [fen]."""
    taken = await Refund.filter(payment_id=payment.id, state__in=[RefundState.PENDING, RefundState.SUCCEEDED]) \
        .using_db(using_db).values_list("amount_fen", flat=True)
    return payment.amount_fen - int(sum(taken))
