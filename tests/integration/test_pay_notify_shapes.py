"""Validly signed but odd notifications: a signed timestamp no datetime can hold, a resource whose
fields are missing or of the wrong type. WeChat Pay's signature holds on each, yet each is refused
with a 4xx and ``{"code": "FAIL"}`` (never a 500, which WeChat Pay would send again for a day),
records nothing but itself, and the genuine notification still works afterwards."""

from __future__ import annotations

import json

import pytest
from pay_support import admin, fake_pay, pay_port, paying  # noqa: F401

from settlement import models as m
from settlement.pay import payments
from settlement.models import NotificationOutcome
from webapp.keys import pay_api_key



@pytest.fixture
async def refunding(paying, notify_apps):
    """The bill paid, 5000 of it being refunded, and WeChat Pay done with the refund."""
    fake, no = paying["fake"], paying["out_trade_no"]
    assert await fake.notify_payment(paying["url"], no) == (204, "")
    payment = await m.Payment.get(out_trade_no=no)
    refund = await payments.request_refund(payment.id, 5000, "多收", await admin(), pay=paying["app"][pay_api_key],
                                           apps=notify_apps)
    fake.settle_refund(refund.out_refund_no)
    return {**paying, "refund": refund}


async def _state() -> tuple:
    """Everything a notification can record."""
    bills = await m.Bill.all().order_by("id").values_list("state", "paid_fen")
    refunds = await m.Refund.all().order_by("id").values_list("state", "refund_id")
    return (tuple(map(tuple, bills)), await m.Payment.all().count(), tuple(map(tuple, refunds)),
            await m.CreditEntry.all().count(), await m.AuditEvent.all().count(),
            tuple(await m.PayOrder.all().order_by("id").values_list("state", flat=True)))


async def _refused(fake, url: str, notification, statuses=(400,)) -> str:
    status, text = await fake.post(url, notification)
    assert status in statuses, text
    answer = json.loads(text)
    assert answer["code"] == "FAIL" and "error" not in answer
    return answer["message"]


async def _only_refusals_kept(count: int) -> list[m.PayNotification]:
    kept = await m.PayNotification.filter(outcome=NotificationOutcome.REFUSED).order_by("id")
    assert len(kept) == count
    assert await m.PayNotification.filter(outcome=NotificationOutcome.ERROR).count() == 0  # no 500 on the way
    return kept


# --- the signed timestamp --------------------------------------------------------------------------

TIMESTAMPS = {
    "year 33658": ("999999999999", 401, "stale_timestamp"),
    "zero": ("0", 401, "stale_timestamp"),
    "not a number": ("tomorrow", 401, "bad_signature"),
    "negative": ("-1700000000", 401, "bad_signature"),
    "a fraction": ("1700000000.5", 401, "bad_signature"),
    "thirteen digits": ("1700000000000", 401, "bad_signature"),
    "blank": (" ", 401, "bad_signature"),
}


@pytest.mark.parametrize("case", list(TIMESTAMPS), ids=list(TIMESTAMPS))
async def test_a_signed_timestamp_no_time_can_be_made_of_is_refused(paying, case):
    fake, url, no = paying["fake"], paying["url"], paying["out_trade_no"]
    stamp, status, why = TIMESTAMPS[case]
    before = await _state()
    message = await _refused(fake, url, fake.payment_notification(no, timestamp=stamp), (status,))
    assert why in message
    assert await _state() == before
    kept = await _only_refusals_kept(1)
    if stamp.strip():
        assert kept[0].headers["Wechatpay-Timestamp"] == stamp
    assert await fake.notify_payment(url, no) == (204, "")  # the genuine one pays
    assert (await m.Bill.get(id=paying["world"]["bill"].id)).paid_fen == 23456


@pytest.mark.parametrize("stamp", ["999999999999", "tomorrow"])
async def test_a_refund_notification_with_an_odd_timestamp_is_refused(refunding, stamp):
    fake, url, refund = refunding["fake"], refunding["url"], refunding["refund"]
    before = await _state()
    await _refused(fake, url, fake.refund_notification(refund.out_refund_no, timestamp=stamp), (401,))
    assert await _state() == before
    assert (await m.Refund.get(id=refund.id)).state == m.RefundState.PENDING
    assert await fake.notify_refund(url, refund.out_refund_no) == (204, "")


async def test_digits_that_are_not_ascii_are_no_timestamp(pay_port, fake_pay, notify_apps):
    """``"¹⁷…".isdigit()`` is true and ``int()`` of it fails: refused before anything is made of it."""
    headers, body = fake_pay.build_notification("TRANSACTION.SUCCESS", {"out_trade_no": "X"}, timestamp="¹⁷⁰⁰⁰⁰⁰⁰⁰⁰")
    handled = await payments.handle_notification(pay_port, headers, body, apps=notify_apps)
    assert (handled.status, handled.outcome) == (401, NotificationOutcome.REFUSED)
    assert "bad_signature" in handled.reason


# --- the payment resource ---------------------------------------------------------------------------

AMOUNTS = {
    "a list": [1], "a number": 23456, "text": "23456", "null": None, "empty": {},
    "total as text": {"total": "23456", "currency": "CNY"}, "total as a list": {"total": [23456]},
    "total fractional": {"total": 23456.0, "currency": "CNY"}, "total true": {"total": True, "currency": "CNY"},
    "total null": {"total": None, "currency": "CNY"}, "total negative": {"total": -23456, "currency": "CNY"},
    "total zero": {"total": 0, "currency": "CNY"}, "total beyond any bigint": {"total": 10**30, "currency": "CNY"},
    "currency a number": {"total": 23456, "currency": 156}, "currency a dict": {"total": 23456, "currency": {}},
    "currency lower case": {"total": 23456, "currency": "cny"},
    "payer_total as text": {"total": 23456, "currency": "CNY", "payer_total": "23456"},
}


@pytest.mark.parametrize("case", list(AMOUNTS), ids=list(AMOUNTS))
async def test_an_amount_of_the_wrong_shape_is_refused(paying, case):
    fake, url, no = paying["fake"], paying["url"], paying["out_trade_no"]
    before = await _state()
    message = await _refused(fake, url, fake.payment_notification(no, resource_changes={"amount": AMOUNTS[case]}))
    assert "amount" in message or "64 bits" in message
    assert await _state() == before
    await _only_refusals_kept(1)
    assert await fake.notify_payment(url, no) == (204, "")


REQUIRED = ["appid", "mchid", "out_trade_no", "trade_state", "transaction_id", "amount"]


@pytest.mark.parametrize("name", REQUIRED)
async def test_a_payment_without_a_field_it_needs_is_refused(paying, name):
    fake, url, no = paying["fake"], paying["url"], paying["out_trade_no"]
    resource = fake.orders[no].resource()
    del resource[name]
    before = await _state()
    message = await _refused(fake, url, fake.build_notification("TRANSACTION.SUCCESS", resource))
    assert name in message
    assert await _state() == before
    await _only_refusals_kept(1)


# wrong values for each field of the resources WeChat Pay sends (settlement.fakes.pay_server)
WRONG_VALUES = [12345, True, 1.5, None, ["x"], {"x": 1}, "", "x" * 300, "a\u0000b"]
EMPTY_IS_FINE = {"trade_state_desc", "attach", "bank_type", "user_received_account", "success_time"}
NESTED = {"payer": [{"openid": 5}, {"openid": ""}, {"openid": "o\u0000"}, {"openid": ["o"]}],
          "amount@payment": [{"total": 23456, "currency": 156}, {"total": "23456", "currency": "CNY"},
                             {"currency": "CNY"}],
          "amount@refund": [{"total": 23456, "refund": "5000"}, {"total": "23456", "refund": 5000}, {"total": 23456}],
          "success_time": ["2026-10-12 10:00:00", "yesterday", 1760234400]}
OPTIONAL = {"trade_type", "trade_state_desc", "attach", "payer", "bank_type", "success_time", "refund_id",
            "user_received_account", "out_trade_no@refund", "transaction_id@refund", "mchid@refund"}


def wrong_values(name: str, kind: str) -> list:
    """The values that are wrong for a field (None only where the field is required)."""
    values = [v for v in WRONG_VALUES if not (v == "" and name in EMPTY_IS_FINE)
              and not (v is None and (name in OPTIONAL or f"{name}@{kind}" in OPTIONAL))]
    return values + NESTED.get(name, NESTED.get(f"{name}@{kind}", []))


PAYMENT_FIELDS = ["appid", "mchid", "out_trade_no", "trade_type", "trade_state", "trade_state_desc", "attach",
                  "payer", "amount", "transaction_id", "bank_type", "success_time"]


@pytest.mark.parametrize("name", PAYMENT_FIELDS)
async def test_each_payment_field_of_the_wrong_type_is_refused(paying, name):
    fake, url, no = paying["fake"], paying["url"], paying["out_trade_no"]
    assert name in fake.orders[no].resource()
    before = await _state()
    wrong = wrong_values(name, "payment")
    for value in wrong:
        await _refused(fake, url, fake.payment_notification(no, resource_changes={name: value}))
    assert await _state() == before
    kept = await _only_refusals_kept(len(wrong))
    # a null amount or transaction_id has the right shape for an unpaid order: refused as no success
    assert all(k.reason.startswith(("malformed", "a successful payment without")) for k in kept), \
        [k.reason for k in kept]
    assert await fake.notify_payment(url, no) == (204, "")
    assert (await m.Bill.get(id=paying["world"]["bill"].id)).state == m.BillState.PAID


@pytest.mark.parametrize("name, value, where", [
    ("attach", "月结\x85", "resource.attach"), ("trade_state_desc", "支付\x7f成功", "resource.trade_state_desc"),
    ("payer", {"openid": "o-\x9f"}, "resource.payer.openid"), ("attach", "\ud800", "resource.attach"),
    ("bank_type", "\x00", "resource.bank_type")], ids=["C1", "DEL", "nested", "lone-surrogate", "NUL"])
async def test_a_resource_holding_text_the_outside_rule_refuses_is_refused_naming_it(paying, name, value, where):
    # inside the encrypted resource, where the check of the raw body cannot see it; a C1 control
    # or DEL in a field nothing reads closely (attach) was once recorded with the payment
    fake, url, no = paying["fake"], paying["url"], paying["out_trade_no"]
    before = await _state()
    notification = fake.payment_notification(no, resource_changes={name: value}, ensure_ascii=True)
    message = await _refused(fake, url, notification)
    assert message.startswith(f"malformed notification: {where} holds ") and "text may not hold" in message
    assert await _state() == before
    kept = await _only_refusals_kept(1)
    assert kept[0].resource is None
    assert await fake.notify_payment(url, no) == (204, "")


async def test_a_signed_envelope_of_the_wrong_shape_is_refused(paying):
    fake, url, no = paying["fake"], paying["url"], paying["out_trade_no"]
    resource = fake.orders[no].resource()
    before = await _state()
    for event_type in ({"type": "TRANSACTION.SUCCESS"}, ["TRANSACTION.SUCCESS"], 7, "TRANSACTION." + "X" * 300):
        assert "undecryptable" in await _refused(fake, url, fake.build_notification(event_type, resource))
    nested = {**resource, "extra": json.loads("[" * 40 + "]" * 40)}
    assert "nested" in await _refused(fake, url, fake.build_notification("TRANSACTION.SUCCESS", nested))
    assert await _state() == before
    await _only_refusals_kept(5)


# --- the refund resource ----------------------------------------------------------------------------

REFUND_FIELDS = ["mchid", "out_trade_no", "transaction_id", "out_refund_no", "refund_id", "refund_status",
                 "user_received_account", "amount", "success_time"]


@pytest.mark.parametrize("name", REFUND_FIELDS)
async def test_each_refund_field_of_the_wrong_type_is_refused(refunding, name):
    fake, url, no = refunding["fake"], refunding["url"], refunding["refund"].out_refund_no
    before, kept_before = await _state(), await m.PayNotification.all().count()
    wrong = wrong_values(name, "refund")
    for value in wrong:
        await _refused(fake, url, fake.refund_notification(no, resource_changes={name: value}))
    assert await _state() == before
    assert await m.PayNotification.filter(outcome=NotificationOutcome.REFUSED).count() == len(wrong)
    assert await m.PayNotification.all().count() == kept_before + len(wrong)
    assert await m.PayNotification.filter(outcome=NotificationOutcome.ERROR).count() == 0
    assert await fake.notify_refund(url, no) == (204, "")
    assert (await m.Refund.get(id=refunding["refund"].id)).state == m.RefundState.SUCCEEDED


@pytest.mark.parametrize("name", ["out_refund_no", "refund_status", "amount"])
async def test_a_refund_without_a_field_it_needs_is_refused(refunding, name):
    fake, url, no = refunding["fake"], refunding["url"], refunding["refund"].out_refund_no
    resource = {"mchid": fake.mchid, "out_refund_no": no, "refund_status": "SUCCESS",
                "amount": {"total": 23456, "refund": 5000}}
    del resource[name]
    before = await _state()
    assert "malformed" in await _refused(fake, url, fake.build_notification("REFUND.SUCCESS", resource,
                                                                            original_type="refund"))
    assert await _state() == before
    assert await fake.notify_refund(url, no) == (204, "")
