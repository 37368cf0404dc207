"""Domain events write their notifications in the same transaction: a cycle's forms, bills
issued, payments recorded — walked the real way (tests/integration/billed_plant.py)."""

from __future__ import annotations

import datetime as dt

from settlement.notify import outbox
from settlement.models import OutboxMessage, OutboxState, WechatIdentity
from tests.integration.billed_plant import walked_plant
from tests.integration.test_notify_support import bound_owners  # noqa: F401 (a fixture)
from settlement.clock import UTC



async def test_cycle_bill_and_payment_write_their_messages(db, bound_owners, notify_apps):  # noqa: F811
    walked = await walked_plant(apps=notify_apps)
    identity = await WechatIdentity.get(owner=walked["owner"])
    rows = {r.event: r for r in await OutboxMessage.all().order_by("id")}
    assert set(rows) == {"FormSent", "AutoConfirmComing", "BillIssued", "PaymentReceived"}
    form, bill = walked["form"], walked["bill"]
    assert rows["FormSent"].dedupe_key == f"form:{form.id}:FormSent:{identity.id}"
    assert rows["FormSent"].recipient == identity.openid and rows["FormSent"].state == OutboxState.PENDING
    assert rows["FormSent"].payload["data"]["number3"] == "12000.000"
    assert rows["FormSent"].payload["data"]["time4"] == "2026年10月08日 08:00"
    # a day before the answer date (10-08 08:00 local), not in the quiet hours
    assert rows["AutoConfirmComing"].not_before == dt.datetime(2026, 10, 7, 0, 0, tzinfo=UTC)
    assert rows["BillIssued"].dedupe_key == f"bill:{bill.id}:BillIssued:{identity.id}"
    assert rows["BillIssued"].payload["data"]["amount3"] == "¥7568.40"
    assert rows["BillIssued"].payload["data"]["amount4"] == "¥7563.40"  # 5.00 元 of credit applied
    assert rows["PaymentReceived"].payload["data"]["amount1"] == "¥3000.00"
    assert [s["event"] for s in await outbox.delivery_state(bill_id=bill.id)] == ["PaymentReceived", "BillIssued"]


async def test_no_identity_no_message(db, notify_apps):
    await walked_plant(apps=notify_apps)
    assert await OutboxMessage.all().count() == 0
