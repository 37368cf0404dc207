"""Offline payments from the finance system by CSV or JSON: through bills.record_payment and its
audit, each row on its own, a row recorded twice one payment, malformed files refused whole."""

from __future__ import annotations

import json

import pytest
from pay_support import open_bill

from server.cli.payments import MalformedFile, read_rows
from settlement import models as m
from settlement.billing.bills import credit_balance
from settlement.pay.offline_import import import_offline_payments


async def test_a_csv_of_transfers_and_counter_payments(db, tmp_path, notify_apps):
    first, second = await open_bill(10000), await open_bill(5000)
    path = tmp_path / "finance.csv"
    path.write_text("\ufeffbill,amount_fen,channel,reference,paid_at\r\n"
                    f"{first['bill'].number},6000,bank_transfer,ICBC-001,2026-10-20 15:30\r\n"
                    f"{first['bill'].number},6000,bank_transfer,ICBC-002,2026-10-21T09:00:00+08:00\r\n"
                    f"{second['bill'].number},5000,counter,CNT-7,2026-10-22\r\n"
                    f"{second['bill'].number},5000,counter,CNT-7,2026-10-22\r\n"  # exported twice
                    f"{second['bill'].number},100,counter,CNT-8,2026-10-23\r\n"  # the bill is paid by now
                    "202610-NOPE-1,100,bank_transfer,X-1,2026-10-23\r\n"
                    f"{first['bill'].number},12.50,bank_transfer,X-2,2026-10-23\r\n"
                    f"{first['bill'].number},100,wechat,X-3,2026-10-23\r\n"
                    f"{first['bill'].number},100,bank_transfer,X-4,2099-01-01\r\n"
                    f"{first['bill'].number},100,bank_transfer,,2026-10-23\r\n"
                    f"{first['bill'].number},100,bank_transfer,\"X-5'; DROP TABLE payment;--\",yesterday\r\n",
                    encoding="utf-8")
    rows = read_rows(path)
    result = await import_offline_payments(rows, source="import:finance.csv", apps=notify_apps)
    assert result.counts() == {"rows": 11, "recorded": 3, "duplicates": 1, "rejected": 7}
    codes = [(r["place"], r["error"]["code"]) for r in result.rejected]
    assert codes == [("line 6", "bill_closed"), ("line 7", "unknown_bill"), ("line 8", "bad_amount"),
                     ("line 9", "bad_channel"), ("line 10", "bad_time"), ("line 11", "missing_field"),
                     ("line 12", "bad_time")]
    bill = await m.Bill.get(id=first["bill"].id)
    assert (bill.state, bill.paid_fen) == (m.BillState.PAID, 10000)
    assert await credit_balance(first["owner"].id) == 2000  # 12000 paid for 10000: the rest is credit
    payment = await m.Payment.get(transaction_id="bank_transfer:ICBC-001")
    assert payment.channel == m.PaymentChannel.BANK_TRANSFER and payment.source_record["place"] == "line 2"
    assert payment.paid_at.isoformat() == "2026-10-20T07:30:00+00:00"  # 15:30 China time
    assert await m.Payment.filter(transaction_id="counter:CNT-7").count() == 1
    assert await m.AuditEvent.filter(action="RecordPayment").count() == 3
    assert await m.Payment.all().count() == 3


async def test_json_as_well(db, tmp_path, notify_apps):
    world = await open_bill(3000)
    path = tmp_path / "finance.json"
    path.write_text(json.dumps({"payments": [{"bill": world["bill"].number, "amount_fen": 3000,
                                              "channel": "bank_transfer", "reference": "B-1",
                                              "paid_at": "2026-10-20"}]}))
    result = await import_offline_payments(read_rows(path), source="import:finance.json", apps=notify_apps)
    assert result.counts() == {"rows": 1, "recorded": 1, "duplicates": 0, "rejected": 0}
    assert (await m.Bill.get(id=world["bill"].id)).state == m.BillState.PAID


async def test_an_amount_far_beyond_what_is_owed_is_refused_by_row_unless_allowed(db, tmp_path, notify_apps):
    world = await open_bill(4_574_037)  # 45,740.37 元
    number = world["bill"].number
    path = tmp_path / "finance.csv"
    path.write_text("bill,amount_fen,channel,reference,paid_at\n"
                    f"{number},999999999,bank_transfer,TYPO-1,2026-10-20\n"
                    f"{number},9148075,bank_transfer,OK-1,2026-10-20\n",  # owed + total + 1 fen
                    encoding="utf-8")
    result = await import_offline_payments(read_rows(path), source="import:finance.csv", apps=notify_apps)
    assert result.counts() == {"rows": 2, "recorded": 0, "duplicates": 0, "rejected": 2}
    assert {r["error"]["code"] for r in result.rejected} == {"overpayment"}
    assert "4574037 fen owed" in result.rejected[0]["error"]["message"]
    assert "--allow-overpayment" in result.rejected[0]["error"]["message"]
    assert await m.Payment.all().count() == 0 and await credit_balance(world["owner"].id) == 0

    # at the limit: what is owed plus the bill's total again becomes credit without a flag
    path.write_text("bill,amount_fen,channel,reference,paid_at\n"
                    f"{number},9148074,bank_transfer,OK-2,2026-10-20\n", encoding="utf-8")
    result = await import_offline_payments(read_rows(path), source="import:finance.csv", apps=notify_apps)
    assert result.counts()["recorded"] == 1 and await credit_balance(world["owner"].id) == 4_574_037

    other = await open_bill(10_000)
    path.write_text("bill,amount_fen,channel,reference,paid_at\n"
                    f"{other['bill'].number},999999999,bank_transfer,BIG-1,2026-10-20\n", encoding="utf-8")
    result = await import_offline_payments(read_rows(path), source="import:finance.csv", allow_overpayment=True,
                                           apps=notify_apps)
    assert result.counts()["recorded"] == 1
    assert await credit_balance(other["owner"].id) == 999_999_999 - 10_000


async def test_rows_that_once_stopped_the_whole_import_are_refused_by_row(db, tmp_path, notify_apps):
    # found by test_outside_text_property: each raised out of the import (a crash of the command),
    # where a refused row was due and the rest of the file should go in
    world = await open_bill(10_000)
    number = world["bill"].number
    path = tmp_path / "finance.csv"
    path.write_text("bill,amount_fen,channel,reference,paid_at\n"
                    f"{'0' * 33},100,bank_transfer,LONG-BILL,2026-10-20\n"  # longer than any bill number
                    f"{number},²,bank_transfer,SUPERSCRIPT,2026-10-20\n"  # a digit to str.isdigit, not to int()
                    f"{number},100,bank_transfer,{'R' * 51},2026-10-20\n"  # a reference longer than taken
                    f"{number},100,bank_transfer,FINE-1,2026-10-20\n", encoding="utf-8")
    result = await import_offline_payments(read_rows(path), source="import:finance.csv", apps=notify_apps)
    assert result.counts() == {"rows": 4, "recorded": 1, "duplicates": 0, "rejected": 3}
    assert [(r["place"], r["error"]["code"]) for r in result.rejected] == [
        ("line 2", "unknown_bill"), ("line 3", "bad_amount"), ("line 4", "bad_reference")]
    assert await m.Payment.all().count() == 1


@pytest.mark.parametrize("name, content, where", [
    ("a.csv", b"", "line 1"),
    ("a.csv", b"bill,amount,channel\n", "line 1"),
    ("a.csv", b"bill,amount_fen,channel,reference,paid_at\nB,1,counter,R\n", "line 2"),
    ("a.csv", b"bill,amount_fen,channel,reference,paid_at\nB,1,counter,R,2026-10-01\n\xff,1,c,r,d\n", "line 3"),
    ("a.csv", b'bill,amount_fen,channel,reference,paid_at\nB,1,counter,"R,2026\n', "line"),
    ("a.json", b"{not json", "not JSON"),
    ("a.json", b'{"rows": []}', "expected a list"),
    ("a.json", b'[{"bill": "B", "evil": 1}]', "payment 0"),
    ("a.json", b"[1]", "payment 0"),
])
def test_malformed_files_are_refused_naming_the_place(tmp_path, name, content, where):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(MalformedFile, match=where):
        read_rows(path)


def test_a_missing_file(tmp_path):
    with pytest.raises(MalformedFile, match="cannot read"):
        read_rows(tmp_path / "absent.csv")
