"""Paying bills with WeChat Pay: prepay orders, payment and refund notifications, refunds.

The bill rules are bills.py's (owed = total − paid − credit applied; what a payment brings beyond
what is owed becomes account credit: :func:`settlement.billing.bills.apply_payment`). This module adds
what WeChat Pay needs around them.

Orders::

    pending ──paid (notification or query)──▶ paid
       ├──expired / closed at WeChat Pay──────▶ closed
       └──prepay refused───────────────────────▶ failed

* **Prepay.** ``out_trade_no`` = issue day (yymmdd) + ``B`` bill id + ``N`` attempt: derived from
  the bill and the attempt, unique for ever, and bound to one amount. A pending order is reused
  for the same payer and amount while its prepay_id has more than :data:`REUSE_MARGIN` to live;
  anything else is a new attempt. The amount is what is owed, or a chosen part of it where the
  contract allows partial payment; never more.
* **Notifications.** Signature (serial → key), timestamp (±5 min) and decryption are the port's;
  here the resource must hold no text :mod:`settlement.text` refuses, must name our mchid and
  appid, and the amount and currency must be the order's. A payment is recorded at most once:
  the order row is locked, then the ``transaction_id`` looked up (and held unique by the
  database), so concurrent copies queue behind the first and find its payment. A verified
  payment for an order we do not know is recorded without a bill, for staff. Every
  notification is kept as a :class:`PayNotification` with what became of it; one whose
  signature does not hold only in bounded form (its headers, the size and SHA-256 of its body,
  the first 2 KiB of it), at most so many a minute from one source (:class:`Delivery`) and so
  many in all, the oldest pruned first.
* **Refunds.** Admins only, with a reason, at most what is left of the payment. The money is
  taken back when the refund is asked for: first from the owner's account credit, then from the
  payment's bill (which owes again); a refund that fails gives it back the way a payment is
  applied (owed first, the rest to credit: :func:`settlement.billing.bills.apply_to_bill`). So at
  every moment
  Σ payments − Σ refunds (pending or done) = Σ applied to bills + account credit
  (+ payments whose order is unknown, which belong to nobody yet).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from settlement import audit
from settlement import text as outside_text
from settlement.billing.bills import (
    MAX_PAYMENT_FEN,
    OPEN,
    apply_payment,
    apply_to_bill,
    credit_balance,
    owed_fen,
    state_of,
)
from settlement.errors import Conflict, Forbidden, InvalidInput, NotFound
from settlement.models import (
    Bill,
    BillState,
    Contract,
    CreditEntry,
    NotificationOutcome,
    Owner,
    Payment,
    PaymentChannel,
    PayNotification,
    PayOrder,
    PayOrderState,
    PlantAccess,
    PlantRight,
    Refund,
    RefundState,
    Staff,
    WechatIdentity,
)
from settlement.notify import outbox
from settlement.notify.outbox import NotifyApps
from settlement.pay.orders import (ORDER_TTL, TOPUP_PREFIX, Handled, Ignored, JsapiPayment, Refuse, next_attempt,
                                   prepay, refund_reason, refundable_fen, resource_errors, signed)
from settlement.prepaid import accounts as prepaid
from settlement.ports.pay import (
    REFUND_ABNORMAL,
    REFUND_CLOSED,
    REFUND_SUCCESS,
    SUCCESS,
    BadSignature,
    Notification,
    NotificationRefused,
    OrderStatus,
    PayCallFailed,
    PayRejected,
    RefundStatus,
    StaleNotification,
    UnknownSerial,
    WechatPay,
    unreadable_text,
)
from settlement.clock import LOCAL, UTC, utc_now

log = logging.getLogger("pvsettle.pay")
T = TypeVar("T")
REUSE_MARGIN = dt.timedelta(minutes=10)  # time the payer needs to finish paying an order handed out again
MAX_KEPT_BODY = 64 * 1024  # [bytes] of a notification body kept for staff


# --- paying a bill ---------------------------------------------------------------------------------


def out_trade_no_for(bill: Bill, attempt: int) -> str:
    """``yymmdd`` of the bill's issue (local) + ``B`` bill id + ``N`` attempt, e.g. ``261010B42N3``."""
    return f"{bill.issued_at.astimezone(LOCAL):%y%m%d}B{bill.id}N{attempt}"


async def may_pay(identity: WechatIdentity, bill: Bill) -> None:
    """The identity is the bill's owner, or has the pay right on its plant.

    Raises NotFound when the user has no right on the plant at all (a bill of someone else's
    does not exist for them) and Forbidden when they may only view it.
    """
    if identity.owner_id is not None and identity.owner_id == bill.owner_id:
        return
    rights = await PlantAccess.filter(plant_id=bill.plant_id, identity_id=identity.id, revoked_at__isnull=True) \
        .values_list("right", flat=True)
    if not rights:
        raise NotFound("no such bill", code="not_found")
    if PlantRight.PAY not in [PlantRight(r) for r in rights]:
        raise Forbidden("paying this bill needs the pay right on its plant", code="right_required")


async def start_payment(pay: WechatPay, bill_id: int, identity_id: int, amount_fen: int | None = None, *,
                        now: dt.datetime | None = None) -> JsapiPayment:
    """A JSAPI prepay order for what is owed on a bill (or a part of it), made or reused.

    Parameters
    ----------
    bill_id, identity_id : the bill, and the mini-program user paying it (its owner or someone
        with the pay right on its plant)
    amount_fen : [fen] what to pay; None = everything owed. A smaller amount needs a contract that
        allows partial payment; more than is owed is refused.
    """
    now = (now or utc_now()).astimezone(UTC)
    identity = await WechatIdentity.get_or_none(id=identity_id)
    bill = await Bill.get_or_none(id=bill_id)
    if identity is None or bill is None:
        raise NotFound("no such bill", code="not_found")
    await may_pay(identity, bill)
    if bill.state not in OPEN:
        raise Conflict(f"bill {bill.number} is {bill.state.value}: nothing to pay", code="bill_closed")
    owed = owed_fen(bill)
    if owed <= 0:
        raise Conflict(f"nothing is owed on bill {bill.number}", code="nothing_owed")
    if amount_fen is None:
        amount_fen = owed
    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or amount_fen < 1:
        raise InvalidInput("the amount must be a whole number of fen, at least 1", code="bad_amount")
    if amount_fen > owed:
        raise Conflict(f"only {owed} fen is owed on bill {bill.number}", code="amount_above_owed")
    if amount_fen < owed:
        contract = await Contract.filter(plant_id=bill.plant_id, effective_from__lte=now.astimezone(LOCAL).date()) \
            .order_by("-effective_from").first() or \
            await Contract.filter(plant_id=bill.plant_id).order_by("effective_from").first()
        if contract is None or not contract.allow_partial_payment:
            raise Conflict("this plant's contract does not allow partial payment: pay what is owed",
                           code="partial_not_allowed")

    reusable = await PayOrder.filter(bill_id=bill.id, payer_id=identity.id, amount_fen=amount_fen,
                                     state=PayOrderState.PENDING, prepay_id__isnull=False,
                                     expires_at__gt=now + REUSE_MARGIN).order_by("-attempt").first()
    if reusable is not None:
        return signed(pay, reusable, now, reused=True)

    # another request for the same bill may take the attempt number first
    order = await next_attempt(PayOrder, {"bill_id": bill.id}, lambda attempt: out_trade_no_for(bill, attempt),
                               amount_fen=amount_fen, payer_id=identity.id, payer_openid=identity.openid,
                               expires_at=now + ORDER_TTL)
    if order is None:
        raise Conflict("too many payments are being started for this bill at once: try again", code="busy")
    return await prepay(pay, order, f"电费 {bill.number}", now)


# --- recording what WeChat Pay says ----------------------------------------------------------------


async def settle_paid_order(status: OrderStatus, *, via: str, now: dt.datetime, apps: NotifyApps,
                            record: dict[str, Any] | None = None) -> Handled:
    """Record a successful WeChat Pay payment (from a notification or a query) at most once.

    ``record`` is the :class:`PayNotification` to keep with the result (in the same transaction
    when something is recorded). Raises ``Refuse`` when the payment contradicts our order.
    """
    if not status.transaction_id or not isinstance(status.amount_fen, int):
        raise Refuse(400, "a successful payment without transaction_id or amount")
    for careful in (False, True):
        try:
            async with in_transaction() as conn:
                handled = await _settle_paid(status, via, now, conn, careful=careful, apps=apps)
                if record is not None:
                    await PayNotification.create(**record, outcome=handled.outcome, status=handled.status,
                                                 reason=handled.reason, using_db=conn)
                return handled
        except IntegrityError:
            # the transaction_id is stored already: for an unknown order by a concurrent copy (no
            # order row serializes those), or for another order. The careful pass looks first.
            if careful:
                raise
    raise AssertionError("unreachable")


async def _settle_paid(status: OrderStatus, via: str, now: dt.datetime, conn, *, careful: bool,
                       apps: NotifyApps) -> Handled:
    """The payment recorded in ``conn``. The fast path is one UPDATE that claims the pending order
    (and so locks it: concurrent copies wait there and then find it paid), one SELECT that locks
    the bill, and the inserts. Anything unusual takes the slow path, which says what it is."""
    no = status.out_trade_no
    if no.startswith(TOPUP_PREFIX):
        handled = await prepaid.settle_topup(status, via, now, conn, apps=apps)
        if handled is not None:
            return handled
    if not careful and (status.currency or "CNY") == "CNY":
        claimed = await _claim(conn, status, now, notified=via == "notification")
        if claimed is not None:
            bill, payer_id, plant_name = claimed
            await _record_paid(bill, payer_id, status, via, now, conn, apps=apps, plant_name=plant_name)
            return Handled(204, NotificationOutcome.ACCEPTED)
    order = await PayOrder.filter(out_trade_no=no).using_db(conn).select_for_update().first()
    existing = await Payment.filter(transaction_id=status.transaction_id).using_db(conn).first()
    if order is None:
        if existing is not None:
            return Handled(204, NotificationOutcome.DUPLICATE, "payment for an unknown order already kept")
        payment = await Payment.create(transaction_id=status.transaction_id, out_trade_no=no,
                                       channel=PaymentChannel.WECHAT, amount_fen=status.amount_fen,
                                       paid_at=status.success_time or now, source_record=dict(status.raw),
                                       using_db=conn)
        await audit.record(f"wechatpay:{via}", "RecordUnmatchedPayment", "payment", payment.id,
                           after={"transaction_id": status.transaction_id, "out_trade_no": no,
                                  "amount_fen": status.amount_fen},
                           reason="WeChat Pay was paid for an order we do not know", using_db=conn)
        return Handled(204, NotificationOutcome.UNMATCHED, f"no order {no[:32]}: kept for staff")
    if status.amount_fen != order.amount_fen or (status.currency or "CNY") != "CNY":
        raise Refuse(400, f"amount {status.amount_fen} {status.currency} is not the order's {order.amount_fen} CNY")
    if existing is not None:
        if existing.out_trade_no != order.out_trade_no:
            raise Refuse(409, "this transaction_id is recorded for another order")
        return Handled(204, NotificationOutcome.DUPLICATE, "already recorded")
    if order.state == PayOrderState.PAID:
        raise Refuse(409, "the order is already paid by another transaction")
    bill = await Bill.filter(id=order.bill_id).using_db(conn).select_for_update().first()
    await _record_paid(bill, order.payer_id, status, via, now, conn, apps=apps)
    order.state, order.transaction_id, order.settled_at = PayOrderState.PAID, status.transaction_id, now
    fields = ["state", "transaction_id", "settled_at"]
    if via == "notification":
        order.notified_at = now
        fields.append("notified_at")
    await order.save(using_db=conn, update_fields=fields)
    return Handled(204, NotificationOutcome.ACCEPTED)


async def _claim(conn, status: OrderStatus, now: dt.datetime, *,
                 notified: bool) -> tuple[Bill, int | None, str] | None:
    """Mark the pending order of this amount paid and lock its bill; None when there is no such order.

    Returns the bill, the payer's identity id and the plant's name (for the receipt).

    Plain SQL rather than the ORM's query builder: this is the hot path of every notification
    (benchmarked at 300/s), and building these statements costs more than running them.
    Datetimes are passed as aware UTC values, stored as the ORM stores them on each backend.
    """
    postgres = conn.capabilities.dialect == "postgres"
    p = (lambda n: f"${n}") if postgres else (lambda n: "?")
    claim = (f'UPDATE "pay_order" SET "state"={p(1)},"transaction_id"={p(2)},"settled_at"={p(3)},'
             f'"notified_at"=COALESCE("notified_at",{p(4)}) WHERE "out_trade_no"={p(5)} AND "amount_fen"={p(6)} '
             f'AND "state" IN ({p(7)},{p(8)},{p(9)}) RETURNING "bill_id","payer_id"')
    values = [PayOrderState.PAID.value, status.transaction_id, now, now if notified else None, status.out_trade_no,
              status.amount_fen, PayOrderState.PENDING.value, PayOrderState.CLOSED.value, PayOrderState.FAILED.value]
    bill_and_plant = ('"b".*, "p"."name" AS "plant_name_" FROM "bill" "b" '
                      'JOIN "plant" "p" ON "p"."id"="b"."plant_id"')
    if postgres:
        # one round trip: the order claimed and its bill locked by the same statement
        rows = await conn.execute_query_dict(
            f'WITH "o" AS ({claim}) SELECT "o"."payer_id" AS "payer_id_", {bill_and_plant} '
            'JOIN "o" ON "o"."bill_id"="b"."id" FOR UPDATE OF "b"', values)
        if not rows:
            return None
        row = rows[0]
        payer_id = row.pop("payer_id_")
    else:  # SQLite has no UPDATE in a WITH clause; its transaction holds the whole database
        claimed = await conn.execute_query_dict(claim, values)
        if not claimed:
            return None
        row = (await conn.execute_query_dict(f'SELECT {bill_and_plant} WHERE "b"."id"=?', [claimed[0]["bill_id"]]))[0]
        payer_id = claimed[0]["payer_id"]
    plant_name = row.pop("plant_name_")
    return Bill._init_from_db(**row), payer_id, plant_name


async def _record_paid(bill: Bill, payer_id: int | None, status: OrderStatus, via: str, now: dt.datetime,
                       conn, *, apps: NotifyApps, plant_name: str | None = None) -> None:
    payment = await Payment.create(transaction_id=status.transaction_id, out_trade_no=status.out_trade_no,
                                   channel=PaymentChannel.WECHAT, bill_id=bill.id, owner_id=bill.owner_id,
                                   payer_id=payer_id, amount_fen=status.amount_fen,
                                   paid_at=status.success_time or now, source_record=dict(status.raw), using_db=conn)
    await apply_payment(bill, payment, f"wechatpay:{via}", conn, apps=apps, plant_name=plant_name)


# What is kept of a delivery. One whose signature held is WeChat Pay's and kept whole. Any other
# may come from anyone, as often as they like, so only what an investigation needs is kept of it,
# a bounded amount per row and a bounded number of rows (issue #20: 500 unsigned 60 KB posts once
# added 33 MB in under a second).
KEPT_HEADERS = ("Wechatpay-Serial", "Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature",
                "Wechatpay-Signature-Type", "Content-Type", "User-Agent", "X-Forwarded-For")
HEADER_KEPT = 512  # [bytes] of each kept header (a signature is 344)
UNVERIFIED_BODY_KEPT = 2048  # [bytes] of an unverified body: a genuine notification is about 1 KiB
UNVERIFIED_KEPT = 10_000  # unverified deliveries kept at most (PVSETTLE_PAY_REFUSALS_KEPT)


@dataclass(frozen=True)
class Delivery:
    """Who sent a notification, and what may be kept of it when its signature does not hold.

    ``admit`` is asked before such a delivery is kept: False means its source is over its rate of
    refusals, and it is answered 429 and not kept. A delivery whose signature holds never meets
    these limits.
    """

    source: str | None = None  # the sender's address (behind trusted proxies: the one they name)
    admit: Callable[[], Awaitable[bool]] | None = None
    keep_unverified: int = UNVERIFIED_KEPT  # the oldest beyond this many are pruned


def _storable(text: str, limit: int | None = None) -> str:
    """Text any database column takes (no NUL, which PostgreSQL refuses; no lone surrogate), cut
    to at most ``limit`` bytes of UTF-8."""
    data = text.replace("\x00", "\ufffd").encode("utf-8", errors="replace")
    return data[:limit].decode("utf-8", errors="ignore")  # a character cut in two is dropped


def notification_fields(headers: Mapping[str, str], body: bytes, *, source: str | None = None,
                        size: int | None = None) -> dict[str, Any]:
    """What is kept of a delivery before its signature is checked: the kept headers, the size and
    SHA-256 of the body and its first :data:`UNVERIFIED_BODY_KEPT` bytes. ``size`` is the
    declared size of a body that was not read (too large)."""
    wanted = {name.lower(): name for name in KEPT_HEADERS}
    kept = {wanted[str(k).lower()]: _storable(str(v)[:HEADER_KEPT], HEADER_KEPT)
            for k, v in headers.items() if str(k).lower() in wanted}
    return {"headers": kept, "source": source,
            "body": _storable(body[:UNVERIFIED_BODY_KEPT].decode("utf-8", errors="replace"), UNVERIFIED_BODY_KEPT),
            "body_bytes": len(body) if size is None else size,
            "body_sha256": hashlib.sha256(body).hexdigest() if size is None else None}


async def keep_notification(record: dict[str, Any], handled: Handled) -> None:
    """Keep a notification that recorded nothing (refused, or our own failure)."""
    await PayNotification.create(**record, outcome=handled.outcome, status=handled.status,
                                 reason=(handled.reason or "")[:500] or None)


async def keep_unverified(record: dict[str, Any], handled: Handled, delivery: Delivery) -> Handled:
    """Keep a delivery whose signature did not hold (or was not checked), within the limits.

    Over its source's rate it is not kept and answered 429; kept, the oldest unverified rows
    beyond ``delivery.keep_unverified`` are deleted.
    """
    if delivery.admit is not None and not await delivery.admit():
        return Handled(429, handled.outcome, f"too many refused notifications from this source, not kept "
                                             f"({handled.reason})"[:500], record, kept=False)
    await keep_notification(record, handled)
    await prune_unverified(delivery.keep_unverified)
    return handled


async def prune_unverified(keep: int) -> int:
    """Delete the unverified deliveries beyond the newest ``keep``; returns how many."""
    cutoff = await PayNotification.filter(signed_at__isnull=True).order_by("-id").offset(keep) \
        .limit(1).values_list("id", flat=True)
    if not cutoff:
        return 0
    return await PayNotification.filter(signed_at__isnull=True, id__lte=cutoff[0]).delete()


async def handle_notification(pay: WechatPay, headers: Mapping[str, str], body: bytes, *, apps: NotifyApps,
                              now: dt.datetime | None = None, delivery: Delivery = Delivery()) -> Handled:
    """Verify, check and record one notification from WeChat Pay; it is kept (within
    :func:`keep_unverified`'s limits when its signature does not hold).

    Returns what to answer: 204 when it is recorded (or was already, or is kept for staff),
    4xx when it is refused (nothing recorded), 5xx when we failed (WeChat Pay sends it again).
    ``apps`` are our WeChat apps, for the receipts and notices the payment or refund writes.
    """
    now = (now or utc_now()).astimezone(UTC)
    record = notification_fields(headers, body, source=delivery.source)
    try:
        notification = await pay.verify_notification(headers, body, now=now)
    except NotificationRefused as exc:
        status = 401 if isinstance(exc, (BadSignature, UnknownSerial, StaleNotification)) else 400
        record["serial"] = _storable(str(headers.get("Wechatpay-Serial", ""))[:80]) or None
        return await keep_unverified(record, Handled(status, NotificationOutcome.REFUSED,
                                                     f"{exc.code}: {exc.reason}", record), delivery)
    # WeChat Pay's: kept whole (the signature covers the body, at most 64 KiB)
    record["body"] = _storable(body[:MAX_KEPT_BODY].decode("utf-8", errors="replace"))
    record.update(notification_id=notification.id[:64] or None, event_type=notification.event_type[:40] or None,
                  serial=notification.serial[:80], signed_at=notification.timestamp)
    # signed, but outside text all the same (settlement.text): refused naming the field, the
    # resource not kept (PostgreSQL takes no NUL, and no other control character is meant)
    bad_text = outside_text.document_refusal(dict(notification.resource), "resource")
    problem = bad_text.message if bad_text is not None else \
        unreadable_text([notification.id, notification.event_type, dict(notification.resource)])
    if problem:
        handled = Handled(400, NotificationOutcome.REFUSED, f"malformed notification: {problem}", record)
        await keep_notification(record, handled)
        return handled
    record["resource"] = dict(notification.resource)
    resource = notification.resource
    for name in ("out_trade_no", "transaction_id", "out_refund_no"):
        value = resource.get(name)
        record[name] = value[:64] if isinstance(value, str) else None
    try:
        if notification.event_type.startswith("TRANSACTION."):
            return await _on_payment(pay, notification, record, now, apps=apps)
        if notification.event_type.startswith("REFUND."):
            return await _on_refund(pay, notification, record, now, apps=apps)
        handled = Handled(204, NotificationOutcome.IGNORED, f"event {notification.event_type[:40]!r} is not ours")
    except Ignored as exc:
        handled = Handled(204, NotificationOutcome.IGNORED, exc.reason)
    except Refuse as exc:
        handled = Handled(exc.status, NotificationOutcome.REFUSED, exc.reason)
    handled.record = record
    await keep_notification(record, handled)
    return handled


def _resource(shape: Callable[[Mapping[str, Any]], T], notification: Notification, what: str) -> T:
    """The notification's resource read by ``shape`` (``from_resource``); one not of that shape is refused."""
    try:
        return shape(notification.resource)
    except ValueError as exc:
        raise Refuse(400, f"malformed {what} resource: {exc}") from exc


async def _on_payment(pay: WechatPay, notification: Notification, record: dict, now: dt.datetime, *,
                      apps: NotifyApps) -> Handled:
    status = _resource(OrderStatus.from_resource, notification, "payment")
    problem = resource_errors(status, pay)
    if problem:
        raise Refuse(400, problem)
    if status.trade_state != SUCCESS:
        raise Ignored(f"trade_state {status.trade_state[:20]}")
    handled = await settle_paid_order(status, via="notification", now=now, apps=apps, record=record)
    handled.record = record
    return handled


async def _on_refund(pay: WechatPay, notification: Notification, record: dict, now: dt.datetime, *,
                     apps: NotifyApps) -> Handled:
    status = _resource(RefundStatus.from_resource, notification, "refund")
    if status.mchid != pay.mchid:
        raise Refuse(400, f"mchid {str(status.mchid)[:32]!r} is not ours")
    async with in_transaction() as conn:
        handled = await settle_refund(status, via="notification", now=now, conn=conn, apps=apps)
        await PayNotification.create(**record, outcome=handled.outcome, status=handled.status,
                                     reason=handled.reason, using_db=conn)
    handled.record = record
    return handled


# --- refunds ---------------------------------------------------------------------------------------


async def _give_back(refund: Refund, payment: Payment, conn, why: str, *, apps: NotifyApps) -> None:
    """A refund that did not happen: its money returns the way a payment is applied."""
    if payment.owner_id is None:
        return  # a payment of an unknown order belongs to nobody yet: nothing was taken
    if payment.bill_id is None and (payment.out_trade_no or "").startswith(TOPUP_PREFIX):
        await prepaid.return_refund(refund, payment, conn, why, apps=apps)
        return
    bill = await Bill.filter(id=payment.bill_id).using_db(conn).select_for_update().first() \
        if payment.bill_id else None
    await apply_to_bill(bill, refund.amount_fen, owner_id=payment.owner_id, payment_id=payment.id,
                        credit_reason=f"refund {refund.out_refund_no} {why}", conn=conn)


async def settle_refund(status: RefundStatus, *, via: str, now: dt.datetime, conn, apps: NotifyApps) -> Handled:
    """Apply WeChat Pay's word on a refund (notification or query), at most once."""
    refund = await Refund.filter(out_refund_no=status.out_refund_no).using_db(conn).select_for_update().first()
    if refund is None:
        return Handled(204, NotificationOutcome.UNMATCHED, f"no refund {status.out_refund_no[:32]}: kept for staff")
    if status.refund_fen is not None and status.refund_fen != refund.amount_fen:
        raise Refuse(400, f"refund amount {status.refund_fen} is not ours ({refund.amount_fen})")
    payment = await Payment.get(id=refund.payment_id).using_db(conn)
    if status.transaction_id and status.transaction_id != payment.transaction_id:
        raise Refuse(400, "the refund names another transaction")
    if status.status == REFUND_SUCCESS:
        if refund.state == RefundState.SUCCEEDED:
            return Handled(204, NotificationOutcome.DUPLICATE, "already recorded")
        if refund.state == RefundState.FAILED:
            raise Refuse(409, "this refund is recorded as failed: staff must look at it")
        refund.state, refund.settled_at = RefundState.SUCCEEDED, status.success_time or now
    elif status.status in (REFUND_CLOSED, REFUND_ABNORMAL):
        if refund.state == RefundState.FAILED:
            return Handled(204, NotificationOutcome.DUPLICATE, "already recorded")
        if refund.state == RefundState.SUCCEEDED:
            raise Refuse(409, "this refund is recorded as done: staff must look at it")
        refund.state, refund.settled_at = RefundState.FAILED, now
        await _give_back(refund, payment, conn, f"{status.status.lower()} at WeChat Pay", apps=apps)
    else:
        return Handled(204, NotificationOutcome.IGNORED, f"refund status {status.status[:20]}")
    fields = ["state", "settled_at"]
    if status.refund_id and not refund.refund_id:
        refund.refund_id = status.refund_id
        fields.append("refund_id")
    await refund.save(using_db=conn, update_fields=fields)
    await audit.record(f"wechatpay:{via}", "SettleRefund", "payment", payment.id,
                       after={"out_refund_no": refund.out_refund_no, "refund_id": refund.refund_id,
                              "state": refund.state, "amount_fen": refund.amount_fen}, using_db=conn)
    if refund.state == RefundState.SUCCEEDED:
        await outbox.refund_done(refund, payment, using_db=conn, apps=apps)
    return Handled(204, NotificationOutcome.ACCEPTED)


async def request_refund(payment_id: int, amount_fen: int, reason: str, staff: Staff | None, *, apps: NotifyApps,
                         pay: WechatPay | None = None, now: dt.datetime | None = None) -> Refund:
    """An admin refunds (part of) a payment, with a reason.

    The money is taken back at once, from the owner's account credit first, then from the
    payment's bill, which owes it again. A WeChat Pay payment is refunded through WeChat Pay
    (``pay``): pending until WeChat Pay says it is done (notification or query); if WeChat Pay
    refuses it the money goes back where it came from. A payment made outside WeChat Pay (bank
    transfer, counter) is refunded outside it too: the refund records that finance paid it back
    and is done at once.

    Raises
    ------
    Forbidden : not an active admin
    InvalidInput : no reason, or an amount that is not whole positive fen
    NotFound : no such payment
    Conflict : more than is left of the payment, or than can be taken back (credit already used
        by later bills), or WeChat Pay is not configured for a WeChat payment
    """
    reason = refund_reason(staff, reason, amount_fen, MAX_PAYMENT_FEN)
    now = (now or utc_now()).astimezone(UTC)
    async with in_transaction() as conn:
        payment = await Payment.filter(id=payment_id).using_db(conn).select_for_update().first()
        if payment is None:
            raise NotFound(f"no payment {payment_id}", code="unknown_payment")
        if payment.owner_id is not None and payment.bill_id is None \
                and (payment.out_trade_no or "").startswith(TOPUP_PREFIX):
            raise Conflict("a prepaid top-up is refunded from its account (refund_topup)",
                           code="prepaid_topup")
        wechat = payment.channel == PaymentChannel.WECHAT
        if wechat and pay is None:
            raise Conflict("WeChat Pay is not configured: a WeChat payment cannot be refunded now",
                           code="pay_unavailable")
        left = await refundable_fen(payment, using_db=conn)
        if amount_fen > left:
            raise Conflict(f"only {left} fen of this payment is left to refund", code="refund_too_large")
        from_credit = from_bill = 0
        bill = None
        if payment.owner_id is not None:
            # the owner row serializes everything that moves this owner's credit
            await Owner.filter(id=payment.owner_id).using_db(conn).select_for_update().first()
            from_credit = min(amount_fen, max(await credit_balance(payment.owner_id, using_db=conn), 0))
            from_bill = amount_fen - from_credit
            if from_bill:
                bill = await Bill.filter(id=payment.bill_id).using_db(conn).select_for_update().first() \
                    if payment.bill_id else None
                if bill is None or bill.paid_fen < from_bill:
                    can = from_credit + (bill.paid_fen if bill else 0)
                    raise Conflict(f"at most {can} fen can be taken back now: the rest of this payment went to "
                                   f"later bills as account credit", code="refund_too_large")
        attempt = await Refund.filter(payment_id=payment.id).using_db(conn).count() + 1
        refund = await Refund.create(payment_id=payment.id, out_refund_no=f"R{payment.id}N{attempt}",
                                     amount_fen=amount_fen, reason=reason, requested_by_id=staff.id,
                                     state=RefundState.PENDING if wechat else RefundState.SUCCEEDED,
                                     settled_at=None if wechat else now, using_db=conn)
        if from_credit:
            await CreditEntry.create(owner_id=payment.owner_id, amount_fen=-from_credit,
                                     reason=f"refund {refund.out_refund_no}", payment_id=payment.id, using_db=conn)
        if bill is not None:
            before = {"state": bill.state, "paid_fen": bill.paid_fen}
            bill.paid_fen -= from_bill
            if bill.state in (*OPEN, BillState.PAID):
                bill.state = state_of(bill)
            await bill.save(using_db=conn, update_fields=["paid_fen", "state"])
            await audit.record(audit.actor_of(staff), "RefundFromBill", "bill", bill.id, before=before,
                               after={"state": bill.state, "paid_fen": bill.paid_fen,
                                      "refund": refund.out_refund_no}, reason=reason, using_db=conn)
        await audit.record(audit.actor_of(staff), "RequestRefund", "payment", payment.id,
                           after={"out_refund_no": refund.out_refund_no, "amount_fen": amount_fen,
                                  "from_credit_fen": from_credit, "from_bill_fen": from_bill,
                                  "state": refund.state}, reason=reason, using_db=conn)
        if not wechat:  # paid back outside WeChat Pay: done now
            await outbox.refund_done(refund, payment, using_db=conn, apps=apps)
    if wechat:
        await send_refund(pay, refund, payment, now, apps=apps)
    return refund


async def refund_topup(payment_id: int, amount_fen: int, reason: str, staff: Staff | None, *, pay: WechatPay,
                       apps: NotifyApps, now: dt.datetime | None = None) -> Refund:
    """An admin refunds (part of) a prepaid top-up from what is available on its account.

    The account gives the money up first (:func:`settlement.prepaid.accounts.reserve_topup_refund`
    checks the role, the reason and what is left); WeChat Pay is then asked as for a bill's
    refund, and its refusal returns the money to the account.
    """
    now = now or utc_now()
    refund, payment = await prepaid.reserve_topup_refund(payment_id, amount_fen, reason, staff, apps=apps, now=now)
    await send_refund(pay, refund, payment, now, apps=apps)
    return refund


async def send_refund(pay: WechatPay, refund: Refund, payment: Payment, now: dt.datetime, *,
                      apps: NotifyApps) -> None:
    """Ask WeChat Pay for a pending refund (again: the same out_refund_no is one refund there)."""
    try:
        status = await pay.refund(out_refund_no=refund.out_refund_no, transaction_id=payment.transaction_id,
                                  refund_fen=refund.amount_fen, total_fen=payment.amount_fen, reason=refund.reason)
    except PayRejected as exc:
        async with in_transaction() as conn:
            locked = await Refund.filter(id=refund.id).using_db(conn).select_for_update().first()
            if locked.state != RefundState.PENDING:
                return
            locked.state, locked.settled_at = RefundState.FAILED, now
            await locked.save(using_db=conn, update_fields=["state", "settled_at"])
            await _give_back(locked, payment, conn, "refused by WeChat Pay", apps=apps)
            await audit.record("wechatpay:refund", "SettleRefund", "payment", payment.id,
                               after={"out_refund_no": locked.out_refund_no, "state": locked.state},
                               reason=f"{exc.code}: {exc.message}"[:200], using_db=conn)
        raise Conflict(f"WeChat Pay refused refund {refund.out_refund_no} ({exc.code}: {exc.message}); "
                       f"the money stays with the owner", code="refund_refused") from exc
    except PayCallFailed:
        # WeChat Pay may or may not have it: the refund stays pending and reconciliation asks again
        log.warning("refund %s not confirmed by WeChat Pay yet", refund.out_refund_no, exc_info=True)
        return
    try:
        async with in_transaction() as conn:
            await settle_refund(status, via="refund", now=now, conn=conn, apps=apps)
    except Refuse as exc:
        # WeChat Pay's answer contradicts our refund: it stays pending, for staff and reconciliation
        log.error("refund %s: WeChat Pay answered %s", refund.out_refund_no, exc.reason)
    if status.refund_id:
        await Refund.filter(id=refund.id, refund_id__isnull=True).update(refund_id=status.refund_id)
    fresh = await Refund.get(id=refund.id)
    refund.state, refund.refund_id, refund.settled_at = fresh.state, fresh.refund_id, fresh.settled_at
