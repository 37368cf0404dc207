"""Reconciliation with WeChat Pay: orders whose notification never came, and the daily trade bill.

* :func:`reconcile_orders` (each scheduler tick): a pending order older than
  :data:`QUERY_AFTER` with no word from WeChat Pay is queried (then again every
  :data:`QUERY_AFTER`): paid → the payment is recorded exactly as a notification would record it
  (a notification arriving later finds it and changes nothing); closed → closed here; still unpaid
  past its expiry → closed at WeChat Pay, then here. Pending refunds are queried the same way, and
  one WeChat Pay never received is asked for again (the same out_refund_no is one refund there).
* :func:`reconcile_topups` (each tick): prepaid top-up orders likewise.
* :func:`reconcile_trade_bill` (once a day, after 10:00 local when WeChat Pay has made the
  previous day's bill): the day's trade bill is compared with the WeChat payments and refunds
  recorded here for that local day, and a :class:`TradeBillReport` lists every difference:
  ``missing_here`` (in the bill, not here), ``missing_there`` (here, not in the bill),
  ``amount_differs``. Staff read the reports; sending them waits for the outbox.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal, InvalidOperation

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from settlement import audit
from settlement.models import (
    Payment,
    PaymentChannel,
    PayOrder,
    PayOrderState,
    Refund,
    RefundState,
    TopUpOrder,
    TradeBillReport,
)
from settlement.notify.outbox import NotifyApps
from settlement.pay.orders import Refuse, resource_errors
from settlement.pay.payments import send_refund, settle_paid_order, settle_refund
from settlement.ports.pay import (
    CLOSED,
    PAYERROR,
    REVOKED,
    SUCCESS,
    PayCallFailed,
    PayRejected,
    WechatPay,
)
from settlement.clock import LOCAL, UTC, utc_now

log = logging.getLogger("pvsettle.pay")
QUERY_AFTER = dt.timedelta(minutes=10)  # WeChat Pay's first retries come within a minute: 10 is well past them
BATCH = 100  # orders queried per tick, so one tick stays short
BILL_READY = dt.time(10, 0)  # WeChat Pay makes the previous day's trade bill available after 10:00


async def reconcile_orders(pay: WechatPay, *, apps: NotifyApps, now: dt.datetime | None = None,
                           query_after: dt.timedelta = QUERY_AFTER, batch: int = BATCH) -> dict[str, int]:
    """Query pending orders and refunds that have waited ``query_after``; returns counts.
    ``apps`` are our WeChat apps, for the receipts of what turns out paid."""
    now = (now or utc_now()).astimezone(UTC)
    due = now - query_after
    done = {"orders_queried": 0, "orders_paid": 0, "orders_closed": 0, "refunds_settled": 0, "query_failures": 0}
    orders = await PayOrder.filter(state=PayOrderState.PENDING, created_at__lte=due) \
        .filter(Q(last_queried_at__isnull=True) | Q(last_queried_at__lte=due)).order_by("id").limit(batch)
    for order in orders:
        done["orders_queried"] += 1
        try:
            outcome = await _reconcile_order(pay, order, now, apps=apps)
        except PayCallFailed as exc:
            done["query_failures"] += 1
            log.warning("could not query order %s: %s", order.out_trade_no, exc)
            continue
        if outcome in done:
            done[outcome] += 1
    refunds = await Refund.filter(state=RefundState.PENDING, created_at__lte=due,
                                  payment__channel=PaymentChannel.WECHAT).order_by("id").limit(batch)
    for refund in refunds:
        try:
            if await _reconcile_refund(pay, refund, now, apps=apps):
                done["refunds_settled"] += 1
        except PayCallFailed as exc:
            done["query_failures"] += 1
            log.warning("could not query refund %s: %s", refund.out_refund_no, exc)
    return done


async def reconcile_topups(pay: WechatPay, *, apps: NotifyApps, now: dt.datetime | None = None,
                           batch: int = 100) -> dict[str, int]:
    """Ask WeChat Pay about pending top-ups whose prepay has expired (their notification never
    came) the way :func:`reconcile_orders` asks about bills' orders: a paid one is recorded as the notification would have (same path, at most once), an
    unpaid one is closed there and here. Returns counts."""
    now = (now or utc_now()).astimezone(UTC)
    done = {"topups_queried": 0, "topups_paid": 0, "topups_closed": 0}
    for order in await TopUpOrder.filter(state=PayOrderState.PENDING, expires_at__lte=now).order_by("id") \
            .limit(batch):
        done["topups_queried"] += 1
        try:
            status = await pay.query_order(order.out_trade_no)
            if status.trade_state == "SUCCESS":
                if status.mchid != pay.mchid or status.appid != pay.appid:
                    log.error("top-up %s: WeChat Pay's answer is not ours", order.out_trade_no)
                    continue
                await settle_paid_order(status, via="query", now=now, apps=apps)
                done["topups_paid"] += 1
                continue
            if status.trade_state not in ("CLOSED", "REVOKED", "PAYERROR"):
                await pay.close_order(order.out_trade_no)
        except PayRejected as exc:
            if exc.code in ("ORDERPAID", "ORDER_PAID"):
                continue  # paid in the meantime: the next run records it
            if exc.code != "ORDER_NOT_EXIST":
                log.warning("top-up %s not reconciled: %s", order.out_trade_no, exc)
                continue
        except (PayCallFailed, Refuse) as exc:
            log.warning("top-up %s not reconciled: %s", order.out_trade_no, exc)
            continue
        closed = await TopUpOrder.filter(id=order.id, state=PayOrderState.PENDING).update(
            state=PayOrderState.CLOSED, settled_at=now)
        done["topups_closed"] += closed
    return done


async def _close(order: PayOrder, now: dt.datetime, why: str) -> str:
    async with in_transaction() as conn:
        locked = await PayOrder.filter(id=order.id).using_db(conn).select_for_update().first()
        if locked.state != PayOrderState.PENDING:
            return "orders_paid" if locked.state == PayOrderState.PAID else "orders_closed"
        locked.state, locked.settled_at, locked.last_queried_at = PayOrderState.CLOSED, now, now
        await locked.save(using_db=conn, update_fields=["state", "settled_at", "last_queried_at"])
        await audit.record("wechatpay:query", "ClosePayOrder", "bill", locked.bill_id,
                           after={"out_trade_no": locked.out_trade_no, "state": locked.state}, reason=why,
                           using_db=conn)
    return "orders_closed"


async def _reconcile_order(pay: WechatPay, order: PayOrder, now: dt.datetime, *, apps: NotifyApps) -> str:
    try:
        status = await pay.query_order(order.out_trade_no)
    except PayRejected as exc:
        if exc.code != "ORDER_NOT_EXIST":
            raise
        if order.prepay_id is None or now >= order.expires_at:
            return await _close(order, now, "WeChat Pay has no such order")
        await PayOrder.filter(id=order.id).update(last_queried_at=now)
        return "pending"
    if status.trade_state == SUCCESS:
        problem = resource_errors(status, pay)
        if problem:
            log.error("order %s: WeChat Pay's answer is not ours: %s", order.out_trade_no, problem)
            await PayOrder.filter(id=order.id).update(last_queried_at=now)
            return "query_failures"
        try:
            await settle_paid_order(status, via="query", now=now, apps=apps)
        except Refuse as exc:
            # e.g. another amount than ours: recorded nowhere, the order waits for staff
            log.error("order %s: %s", order.out_trade_no, exc.reason)
            await PayOrder.filter(id=order.id).update(last_queried_at=now)
            return "query_failures"
        return "orders_paid"
    if status.trade_state in (CLOSED, REVOKED, PAYERROR):
        return await _close(order, now, f"trade_state {status.trade_state} at WeChat Pay")
    if now >= order.expires_at:
        try:
            await pay.close_order(order.out_trade_no)
        except PayRejected as exc:
            if exc.code in ("ORDERPAID", "ORDER_PAID"):
                return "pending"  # paid in the meantime: the next query records it
            raise
        return await _close(order, now, "expired unpaid")
    await PayOrder.filter(id=order.id).update(last_queried_at=now)
    return "pending"


async def _reconcile_refund(pay: WechatPay, refund: Refund, now: dt.datetime, *, apps: NotifyApps) -> bool:
    payment = await Payment.get(id=refund.payment_id)
    try:
        status = await pay.query_refund(refund.out_refund_no)
    except PayRejected as exc:
        if exc.code not in ("RESOURCE_NOT_EXISTS", "NOT_FOUND"):
            raise
        await send_refund(pay, refund, payment, now, apps=apps)  # it never reached WeChat Pay: ask again
        return (await Refund.get(id=refund.id)).state != RefundState.PENDING
    try:
        async with in_transaction() as conn:
            handled = await settle_refund(status, via="query", now=now, conn=conn, apps=apps)
    except Refuse as exc:
        log.error("refund %s: %s", refund.out_refund_no, exc.reason)
        return False
    return handled.outcome.value == "accepted"


# --- the trade bill --------------------------------------------------------------------------------


def _fen(text: str) -> int:
    """A trade bill's yuan amount (``12.34``) as fen, exactly."""
    try:
        value = Decimal(text) * 100
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {text!r}") from exc
    if value != value.to_integral_value():
        raise ValueError(f"not a whole number of fen: {text!r}")
    return int(value)


def parse_trade_bill(text: str) -> list[dict[str, object]]:
    """The trade rows of a WeChat Pay trade bill (type ALL), without its summary.

    Every value in the bill is prefixed with a backtick (so spreadsheets keep long numbers);
    amounts are yuan with two decimals. Returns per row: ``time`` (aware), ``transaction_id``,
    ``out_trade_no``, ``state`` (SUCCESS, REFUND, …), ``total_fen``, ``refund_id``,
    ``out_refund_no``, ``refund_fen``. Raises ``ValueError`` naming the line of a malformed row.
    """
    lines = [line for line in text.replace("\r\n", "\n").split("\n") if line.strip()]
    if not lines:
        return []
    header = [h.strip().lstrip("\ufeff") for h in lines[0].split(",")]
    need = {"交易时间": "time", "微信订单号": "transaction_id", "商户订单号": "out_trade_no", "交易状态": "state",
            "应结订单金额": "total", "微信退款单号": "refund_id", "商户退款单号": "out_refund_no", "退款金额": "refund"}
    missing = [name for name in need if name not in header]
    if missing:
        raise ValueError(f"line 1: the trade bill has no column {', '.join(missing)}")
    at = {key: header.index(name) for name, key in need.items()}
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if line.startswith("总交易单数"):
            break
        values = [v.strip().removeprefix("`") for v in line.split(",")]
        if len(values) < len(header):
            raise ValueError(f"line {number}: {len(values)} values, the header has {len(header)}")
        try:
            when = dt.datetime.strptime(values[at["time"]], "%Y-%m-%d %H:%M:%S").replace(tzinfo=LOCAL)
            rows.append({"time": when, "transaction_id": values[at["transaction_id"]],
                         "out_trade_no": values[at["out_trade_no"]], "state": values[at["state"]],
                         "total_fen": _fen(values[at["total"]]),
                         "refund_id": values[at["refund_id"]] if values[at["refund_id"]] not in ("", "0") else None,
                         "out_refund_no": values[at["out_refund_no"]]
                         if values[at["out_refund_no"]] not in ("", "0") else None,
                         "refund_fen": _fen(values[at["refund"]] or "0")})
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc}") from exc
    return rows


def _compare(there: dict[str, tuple[str | None, int]], here: dict[str, tuple[str | None, int]],
             id_name: str, no_name: str) -> list[dict[str, object]]:
    out = []
    for key in sorted(set(there) | set(here)):
        if key not in here:
            kind = "missing_here"
        elif key not in there:
            kind = "missing_there"
        elif there[key][1] != here[key][1]:
            kind = "amount_differs"
        else:
            continue
        number = (there.get(key) or here.get(key))[0]
        out.append({"kind": kind, id_name: key, no_name: number,
                    "there_fen": there[key][1] if key in there else None,
                    "here_fen": here[key][1] if key in here else None})
    return out


async def reconcile_trade_bill(pay: WechatPay, day: dt.date, *, now: dt.datetime | None = None) -> TradeBillReport:
    """Compare WeChat Pay's trade bill of ``day`` (local) with what is recorded here; one report per day."""
    now = (now or utc_now()).astimezone(UTC)
    existing = await TradeBillReport.get_or_none(bill_date=day)
    if existing is not None:
        return existing
    try:
        rows = parse_trade_bill(await pay.trade_bill(day))
    except PayRejected as exc:
        if exc.code != "NO_STATEMENT_EXIST":
            raise
        rows = []  # WeChat Pay makes no bill for a day without trades
    paid_there = {r["transaction_id"]: (r["out_trade_no"], r["total_fen"]) for r in rows if r["state"] == "SUCCESS"}
    refunded_there = {r["refund_id"]: (r["out_refund_no"], r["refund_fen"]) for r in rows
                      if r["state"] == "REFUND" and r["refund_id"]}
    start = dt.datetime.combine(day, dt.time(), LOCAL).astimezone(UTC)
    end = start + dt.timedelta(days=1)
    paid_here = {tid: (no, fen) for tid, no, fen in await Payment.filter(
        channel=PaymentChannel.WECHAT, paid_at__gte=start, paid_at__lt=end)
        .values_list("transaction_id", "out_trade_no", "amount_fen")}
    refunded_here = {}
    for refund_id, no, fen in await Refund.filter(
            state=RefundState.SUCCEEDED, settled_at__gte=start, settled_at__lt=end,
            payment__channel=PaymentChannel.WECHAT).values_list("refund_id", "out_refund_no", "amount_fen"):
        refunded_here[refund_id or f"?{no}"] = (no, fen)
    mismatches = _compare(paid_there, paid_here, "transaction_id", "out_trade_no") + \
        _compare(refunded_there, refunded_here, "refund_id", "out_refund_no")
    try:
        async with in_transaction() as conn:
            report = await TradeBillReport.create(
                bill_date=day, checked_at=now, trades_there=len(paid_there), trades_here=len(paid_here),
                paid_there_fen=sum(f for _, f in paid_there.values()), paid_here_fen=sum(f for _, f in paid_here.values()),
                refunded_there_fen=sum(f for _, f in refunded_there.values()),
                refunded_here_fen=sum(f for _, f in refunded_here.values()),
                mismatch_count=len(mismatches), mismatches=mismatches, using_db=conn)
            await audit.record(audit.SYSTEM, "ReconcileTradeBill", "trade_bill", day.isoformat(),
                               after={"mismatches": len(mismatches), "trades_there": len(paid_there),
                                      "trades_here": len(paid_here)}, using_db=conn)
    except IntegrityError:
        return await TradeBillReport.get(bill_date=day)  # another process made this day's report first
    if mismatches:
        log.warning("trade bill %s: %d mismatches", day, len(mismatches))
    return report


async def trade_bill_due(pay: WechatPay, *, now: dt.datetime | None = None) -> TradeBillReport | None:
    """The previous local day's trade bill, once it is ready and not yet reconciled."""
    now = (now or utc_now()).astimezone(UTC)
    local = now.astimezone(LOCAL)
    if local.time() < BILL_READY:
        return None
    day = local.date() - dt.timedelta(days=1)
    if await TradeBillReport.exists(bill_date=day):
        return None
    return await reconcile_trade_bill(pay, day, now=now)
