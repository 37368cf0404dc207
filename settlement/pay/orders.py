"""What a bill's payment and a prepaid top-up share: a new order's attempt number and its prepay,
the order handed to the mini-program, what became of a notification, the refusal that records
nothing, who may ask for a refund, and the refundable rest of a payment.

Below both :mod:`settlement.pay.payments` and :mod:`settlement.prepaid.accounts`, so that neither
takes the other's private names (they did, and imported each other).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tortoise.exceptions import IntegrityError

from settlement.errors import Forbidden, InvalidInput
from settlement.models import (NotificationOutcome, Payment, PayOrder, PayOrderState, Refund, RefundState, Staff,
                               StaffRole, TopUpOrder)
from settlement.ports.pay import OrderStatus, PayCallFailed, WechatPay

ORDER_TTL = dt.timedelta(hours=2)  # WeChat Pay keeps a prepay_id valid for 2 hours
DESCRIPTION_MAX = 127  # WeChat Pay's limit on an order description [characters]
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


Order = TypeVar("Order", PayOrder, TopUpOrder)


async def next_attempt(model: type[Order], of: dict[str, int], out_trade_no: Callable[[int], str],
                       **fields: Any) -> Order | None:
    """A new order of ``model`` for the bill or account ``of`` names (``{"bill_id": …}``), numbered
    as its next attempt; None when other requests took the next number five times running (the
    unique attempt per bill or account decides who has it).
    """
    for _ in range(5):
        attempt = await model.filter(**of).count() + 1
        try:
            return await model.create(out_trade_no=out_trade_no(attempt), attempt=attempt, **of, **fields)
        except IntegrityError:
            continue
    return None


def signed(pay: WechatPay, order: PayOrder | TopUpOrder, now: dt.datetime, *, reused: bool) -> JsapiPayment:
    """The order with its prepay_id, signed for ``wx.requestPayment``."""
    time_stamp, nonce = str(int(now.timestamp())), secrets.token_hex(16)
    package = f"prepay_id={order.prepay_id}"
    return JsapiPayment(out_trade_no=order.out_trade_no, amount_fen=order.amount_fen, expires_at=order.expires_at,
                        reused=reused, time_stamp=time_stamp, nonce_str=nonce, package=package,
                        pay_sign=pay.sign_jsapi(time_stamp, nonce, package))


async def prepay(pay: WechatPay, order: PayOrder | TopUpOrder, description: str, now: dt.datetime) -> JsapiPayment:
    """Ask WeChat Pay for a new order's prepay_id, and hand the order out signed.

    Raises
    ------
    PayCallFailed
        WeChat Pay gave no prepay_id. Without one nobody can pay the order: it is finished
        (``failed``, WeChat Pay's words kept), and a retry is a new attempt.
    """
    try:
        order.prepay_id = await pay.jsapi_prepay(
            out_trade_no=order.out_trade_no, description=description[:DESCRIPTION_MAX],
            amount_fen=order.amount_fen, payer_openid=order.payer_openid, expires_at=order.expires_at)
    except PayCallFailed as exc:
        order.state, order.failure, order.settled_at = PayOrderState.FAILED, str(exc)[:200], now
        await order.save(update_fields=["state", "failure", "settled_at"])
        raise
    await order.save(update_fields=["prepay_id"])
    return signed(pay, order, now, reused=False)


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


def refund_reason(staff: Staff | None, reason: str | None, amount_fen: object, max_fen: int) -> str:
    """The reason of a refund asked for, stripped, once the asking holds.

    Raises
    ------
    Forbidden : ``staff`` is not an active admin
    InvalidInput : no reason or one over 200 characters, or an amount that is not whole fen from 1
        to ``max_fen``
    """
    if staff is None or not staff.active or staff.role != StaffRole.ADMIN:
        raise Forbidden("a refund needs the admin role", code="role_required")
    reason = (reason or "").strip()
    if not reason or len(reason) > 200:
        raise InvalidInput("a refund needs a reason of at most 200 characters", code="reason_required")
    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or not 0 < amount_fen <= max_fen:
        raise InvalidInput("the amount must be a whole number of fen, at least 1", code="bad_amount")
    return reason


async def refundable_fen(payment: Payment, *, using_db=None) -> int:
    """What is left of a payment to refund: its amount less refunds asked or done [fen]."""
    taken = await Refund.filter(payment_id=payment.id, state__in=[RefundState.PENDING, RefundState.SUCCEEDED]) \
        .using_db(using_db).values_list("amount_fen", flat=True)
    return payment.amount_fen - int(sum(taken))
