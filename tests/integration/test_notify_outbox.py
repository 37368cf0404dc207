"""Writing notifications: templates rendered into WeChat fields, limits kept or refused at
enqueue, the row written in the caller's transaction, and the staff view of delivery."""

from __future__ import annotations

import datetime as dt

import pytest
from tortoise.transactions import in_transaction

from settlement.notify import outbox
from settlement.fakes.wechat_server import field_value_ok
from settlement.models import OutboxMessage, OutboxState
from settlement.notify.outbox import NotificationContentError, check_field, render
from tests.integration.test_notify_support import BILL_PAYLOAD, person
from settlement.clock import UTC

NOON = dt.datetime(2026, 11, 20, 4, 0, tzinfo=UTC)

SAMPLES = {
    "form_sent": {"plant_name": "一号站", "period": "2026-11", "self_use_kwh": "12345.678", "answer_by": NOON,
                  "form_id": 3},
    "auto_confirm_coming": {"plant_name": "一号站", "period": "2026-11", "answer_by": NOON, "form_id": 3},
    "bill_issued": BILL_PAYLOAD,
    "payment_received": {"bill_number": "202611-P001-1", "plant_name": "一号站", "amount_fen": 5000,
                         "paid_at": NOON, "owed_fen": 0, "bill_id": 1},
    "refund_done": {"bill_number": "202611-P001-1", "amount_fen": 100, "refunded_at": NOON, "reason": "多缴退回"},
    "arrears_reminder": {**BILL_PAYLOAD, "late_fee_fen": 1234, "stage": 7},
    "arrears_escalation": {"bill_number": "202611-P001-1", "owner_name": "常州某纺织有限公司", "plant_name": "一号站",
                           "owed_fen": 456340, "days_overdue": 30},
    "low_balance": {"owner_name": "张三", "balance_fen": 999, "checked_at": NOON},
    "outage_alarm": {"plant_name": "一号站", "plant_code": "P001", "started_at": NOON, "what": "通讯中断"},
    "fault_update": {"plant_name": "一号站", "fault_id": 12, "state_zh": "处理中", "note": "已派人上门",
                     "updated_at": NOON},
    "prepaid_notice": {"account_name": "常州某纺织有限公司一号厂房", "account_number": "PA2611000001",
                       "amount_fen": 1234, "at": NOON, "what": "已欠费，将于明日12:00停电"},
}


@pytest.mark.parametrize("template", outbox.TEMPLATE_NAMES)
def test_every_template_renders_fields_wechat_accepts(template):
    fields = render(template, SAMPLES[template])
    assert fields["data"]
    for key, value in fields["data"].items():
        # the fake's independent copy of WeChat's rules agrees
        assert field_value_ok(key, value), (key, value)
    for key, value in fields["oa_data"].items():
        assert field_value_ok(key, value, typed_only=False), (key, value)


def test_values_in_wechat_shapes():
    fields = render("bill_issued", BILL_PAYLOAD)["data"]
    assert fields == {"character_string1": "202611-P001-1", "thing2": "阳光工业园一号屋顶电站",
                      "amount3": "¥1234.56", "amount4": "¥1234.56", "date5": "2026年12月07日"}
    assert render("form_sent", SAMPLES["form_sent"])["data"]["time4"] == "2026年11月20日 12:00"
    arrears = render("arrears_reminder", SAMPLES["arrears_reminder"])
    assert arrears["data"]["thing5"] == "含滞纳金¥12.34，请尽快缴费"
    assert arrears["oa_data"]["keyword2"] == "¥1234.56（含滞纳金¥12.34）"


def test_a_long_thing_is_shortened_with_an_ellipsis():
    fields = render("bill_issued", {**BILL_PAYLOAD, "plant_name": "很长的名字" * 10})["data"]
    assert fields["thing2"] == ("很长的名字" * 4)[:19] + "…" and len(fields["thing2"]) == 20
    assert check_field("thing1", "x" * 20) == "x" * 20


@pytest.mark.parametrize("key,value", [
    ("amount1", "¥12345678901"),  # 11 digits
    ("amount1", "12.00"),  # no currency symbol
    ("number1", "1" * 33),
    ("number1", "12a"),
    ("character_string1", "a" * 33),
    ("character_string1", "中文"),
    ("character_string1", "a b"),
    ("phrase1", "处理中了吗还没"),
    ("phrase1", "ok"),
    ("name1", "张" * 11),
    ("name1", "A" * 21),
    ("name1", "R2D2"),
    ("time1", "2026-11-20 12:00"),
    ("time1", "2026年11月20日 下午"),
    ("thing1", ""),
    ("thing1", "a\x00b"),
    ("thing1", "line\nbreak"),
    ("keyword1", "free text is only for the official account"),
    ("bogus1", "x"),
])
def test_bad_values_are_refused(key, value):
    with pytest.raises(NotificationContentError):
        check_field(key, value)


def test_hostile_payloads_are_refused_or_kept_inert():
    with pytest.raises(NotificationContentError):  # an 11-digit amount cannot be shortened
        render("payment_received", {**SAMPLES["payment_received"], "amount_fen": 10**12})
    with pytest.raises(NotificationContentError):  # a missing value
        render("bill_issued", {"bill_number": "x"})
    with pytest.raises(NotificationContentError):
        render("../../etc/passwd", {})
    with pytest.raises(NotificationContentError):  # a newline would forge another field
        render("bill_issued", {**BILL_PAYLOAD, "plant_name": "站\namount3: ¥0.01"})
    # template syntax in a value is data, not code
    fields = render("bill_issued", {**BILL_PAYLOAD, "plant_name": "{{ 7*7 }}{% raw %}"})["data"]
    assert fields["thing2"] == "{{ 7*7 }}{% raw %}"
    with pytest.raises(ValueError):  # a naive time is ambiguous
        render("form_sent", {**SAMPLES["form_sent"], "answer_by": dt.datetime(2026, 11, 20, 12)})


async def test_enqueue_is_idempotent_and_transactional(db, notify_apps):
    _, identity, _ = await person(db, 1)
    async with in_transaction() as conn:
        first = await outbox.enqueue("BillIssued", identity, "mp", "bill_issued", BILL_PAYLOAD, "bill:1:x",
                                     using_db=conn, apps=notify_apps, now=NOON)
        again = await outbox.enqueue("BillIssued", identity, "mp", "bill_issued", BILL_PAYLOAD, "bill:1:x",
                                     using_db=conn, apps=notify_apps, now=NOON)
    assert first.id == again.id and await OutboxMessage.all().count() == 1
    assert (first.channel, first.recipient, first.app_id, first.state) == (
        "subscribe", "mp-openid-1", db.mp_appid, OutboxState.PENDING)
    assert first.payload["context"]["bill_id"] == 1
    with pytest.raises(RuntimeError):
        async with in_transaction() as conn:
            await outbox.enqueue("BillIssued", identity, "mp", "bill_issued", BILL_PAYLOAD, "bill:1:y", using_db=conn,
                                 apps=notify_apps)
            raise RuntimeError("the change fails")
    assert await OutboxMessage.all().count() == 1
    with pytest.raises(NotificationContentError):
        async with in_transaction() as conn:
            await outbox.enqueue("BillIssued", "some-openid", "oa", "bill_issued", {**BILL_PAYLOAD, "total_fen": 10**13},
                                 "bill:1:z", using_db=conn, apps=notify_apps)
    assert await OutboxMessage.all().count() == 1


async def test_notify_owner_and_delivery_state(db, notify_apps):
    owner, mp_identity, _ = await person(db, 1)
    other, _, oa_only = await person(db, 2, mp=False)
    await person(db, 3, mp=False, oa=False)
    async with in_transaction() as conn:
        written = await outbox.notify_owner("BillIssued", owner.id, "bill_issued", BILL_PAYLOAD, "bill:1:BillIssued",
                                            using_db=conn, apps=notify_apps, now=NOON)
        to_oa = await outbox.notify_owner("BillIssued", other.id, "bill_issued", {**BILL_PAYLOAD, "bill_id": 2},
                                          "bill:2:BillIssued", using_db=conn, apps=notify_apps, now=NOON)
    # the mini-program identity only (the dispatcher falls back to the official account)
    assert [(r.recipient, r.channel) for r in written] == [(mp_identity.openid, "subscribe")]
    assert [(r.recipient, r.channel) for r in to_oa] == [(oa_only.openid, "template")]
    await OutboxMessage.filter(id=to_oa[0].id).update(state=OutboxState.FAILED, last_error="InvalidMessage 43004: x")
    state = await outbox.delivery_state(bill_id=2)
    assert [(s["state"], s["reason"]) for s in state] == [("failed", "InvalidMessage 43004: x")]
    assert [s["id"] for s in await outbox.delivery_state(owner_id=owner.id)] == [written[0].id]
    assert await outbox.delivery_state(bill_id=3) == []
    with pytest.raises(outbox.InvalidInput):
        await outbox.delivery_state()


async def test_one_statement_notification_writes_what_notify_owners_writes(db, notify_apps):
    """The payments' single INSERT … SELECT and the batch path agree row for row: recipients (the
    mini-program identities, else the official-account ones, else none), channel, fields, state,
    send time; refused content is written failed with the reason; a repeat writes nothing."""
    people = [await person(db, n, mp=mp, oa=oa) for n, mp, oa in ((1, True, True), (2, False, True), (3, False, False))]
    owners = [owner for owner, _, _ in people]
    payload = SAMPLES["payment_received"]
    bad = {**payload, "amount_fen": 10**12}  # more than 10 digits: WeChat refuses the field
    async with in_transaction() as conn:
        fast = [await outbox.notify_owner_in_one_statement("PaymentReceived", o.id, "payment_received", p,
                                                           f"fast:{o.id}", using_db=conn, apps=notify_apps, now=NOON)
                for o in owners for p in (payload,)]
        fast.append(await outbox.notify_owner_in_one_statement("PaymentReceived", owners[0].id, "payment_received",
                                                               bad, "fast:bad", using_db=conn, apps=notify_apps,
                                                               now=NOON))
        await outbox.notify_owners("PaymentReceived", "payment_received",
                                   [(o.id, payload, f"slow:{o.id}") for o in owners] + [(owners[0].id, bad, "slow:bad")],
                                   using_db=conn, apps=notify_apps, now=NOON)
        again = await outbox.notify_owner_in_one_statement("PaymentReceived", owners[0].id, "payment_received",
                                                           payload, f"fast:{owners[0].id}", using_db=conn,
                                                           apps=notify_apps, now=NOON)
    assert fast == [1, 1, 0, 1] and again == 0

    def shape(row: OutboxMessage) -> tuple:
        return (row.event, row.channel, row.recipient, row.app_id, row.template, row.payload, row.state,
                row.attempts, row.not_before, row.last_error)

    rows = {r.dedupe_key: r for r in await OutboxMessage.all()}
    pairs = [(k, "slow" + k.removeprefix("fast")) for k in rows if k.startswith("fast:")]
    assert len(pairs) == 3
    for fast_key, slow_key in pairs:
        assert shape(rows[fast_key]) == shape(rows[slow_key])
    failed = rows[next(k for k in rows if k.startswith("fast:bad:"))]
    assert failed.state == OutboxState.FAILED and failed.last_error.startswith("content refused:")
    assert rows[f"fast:{owners[0].id}:{people[0][1].id}"].channel == "subscribe"
    assert rows[f"fast:{owners[1].id}:{people[1][2].id}"].channel == "template"
