"""Offline payments (bank transfer, counter) from the BI / finance system, row by row.

Each row names the bill by its number, the amount in whole fen, the channel, the finance
system's own reference and when it was paid. Rows go through :func:`settlement.billing.bills.record_payment`
— the bill rules, the (channel, reference) key that makes a row recorded twice one payment, and
the audit event — each in its own transaction, so a bad row is refused on its own and the rest go
in. A row refused says why (``code``, ``message``) and names its place.

An overpayment becomes account credit, as it does in WeChat Pay; but an amount beyond what is
owed plus the bill's whole total again (more credit than another month's bill) is far more likely
a typo or a wrong column than money received, so such a row is refused (``overpayment``) unless
the import allows it (``--allow-overpayment``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from settlement.billing import bills
from settlement import text as outside_text
from settlement.errors import DomainError, InvalidInput, NotFound
from settlement.models import Bill, Payment, PaymentChannel, Staff
from settlement.notify.outbox import NotifyApps
from settlement.clock import LOCAL, UTC, utc_now

FIELDS = ("bill", "amount_fen", "channel", "reference", "paid_at")
OFFLINE = {c.value: c for c in PaymentChannel if c != PaymentChannel.WECHAT}


@dataclass
class ImportResult:
    rows: int = 0
    recorded: int = 0
    duplicates: int = 0
    rejected: list[dict] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"rows": self.rows, "recorded": self.recorded, "duplicates": self.duplicates,
                "rejected": len(self.rejected)}


def _paid_at(text: str) -> dt.datetime:
    """ISO 8601; a time without offset is China time, a bare date is its start."""
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"paid_at {text[:40]!r} is not a date or time (YYYY-MM-DD[ HH:MM[:SS]][+08:00])",
                           code="bad_time") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=LOCAL)
    return value.astimezone(UTC)


def _amount(text) -> int:
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    text = str(text).strip()
    if not (text.isascii() and text.isdigit()):  # str.isdigit takes "²" and "٣", which int() does not
        raise InvalidInput(f"amount_fen {text[:20]!r} is not a whole number of fen", code="bad_amount")
    return int(text)


def overpayment_limit_fen(bill: Bill) -> int:
    """The most a row may pay on ``bill`` without ``allow_overpayment`` [fen]: what is owed plus
    the bill's total again."""
    return max(bills.owed_fen(bill), 0) + bill.total_fen


def _longest(model, field: str) -> int:
    """The most characters ``model.field`` holds [characters]."""
    return model._meta.fields_map[field].max_length


async def _one(row: dict, staff: Staff | None, source: str, place: str, allow_overpayment: bool = False, *,
               apps: NotifyApps) -> bool:
    """Record one row; True when it was new, False when it was already recorded."""
    refused = outside_text.refusal(row, FIELDS, place)
    if refused is not None:
        raise refused
    missing = [name for name in FIELDS if not str(row.get(name) or "").strip()]
    if missing:
        raise InvalidInput(f"missing {', '.join(missing)}", code="missing_field")
    channel = OFFLINE.get(str(row["channel"]).strip().lower())
    if channel is None:
        raise InvalidInput(f"channel {str(row['channel'])[:20]!r} is not one of {', '.join(OFFLINE)}",
                           code="bad_channel")
    amount, paid_at = _amount(row["amount_fen"]), _paid_at(str(row["paid_at"]))
    if paid_at > utc_now() + dt.timedelta(minutes=5):
        raise InvalidInput("paid_at is in the future", code="bad_time")
    number = str(row["bill"]).strip()
    # tortoise refuses to look up a value longer than the column (ValidationError): no bill has one
    bill = await Bill.get_or_none(number=number) if len(number) <= _longest(Bill, "number") else None
    if bill is None:
        raise NotFound(f"no bill {number[:40]!r}", code="unknown_bill", params={"bill": number[:40]})
    if not allow_overpayment and amount > overpayment_limit_fen(bill):
        owed = max(bills.owed_fen(bill), 0)
        raise InvalidInput(f"amount_fen {amount} is far beyond the {owed} fen owed on bill {number} "
                           f"(total {bill.total_fen}): refused; import with --allow-overpayment if it "
                           f"is right", code="overpayment",
                           params={"amount": amount, "owed": owed, "bill": number})
    reference = str(row["reference"]).strip()
    transaction_id = f"{channel.value}:{reference}"
    # a reference too long to look up is refused by record_payment (bad_reference), so none existed
    existed = len(transaction_id) <= _longest(Payment, "transaction_id") and \
        await Payment.exists(transaction_id=transaction_id)
    await bills.record_payment(bill.id, amount, channel, reference, apps=apps, staff=staff, paid_at=paid_at,
                               source_record={"source": source, "place": place,
                                              **{k: str(row.get(k)) for k in FIELDS}})
    return not existed


async def import_offline_payments(rows: list[tuple[str, dict]], *, source: str, apps: NotifyApps,
                                  staff: Staff | None = None, allow_overpayment: bool = False) -> ImportResult:
    """Record ``(place, row)`` pairs (place: e.g. ``line 3``); returns counts and refused rows.

    ``allow_overpayment`` takes amounts beyond :func:`overpayment_limit_fen` as credit; ``apps``
    are our WeChat apps, for the owners' PaymentReceived messages.
    """
    result = ImportResult()
    for place, row in rows:
        result.rows += 1
        try:
            if await _one(row, staff, source, place, allow_overpayment, apps=apps):
                result.recorded += 1
            else:
                result.duplicates += 1
        except DomainError as exc:
            result.rejected.append({"place": place, "row": {k: row.get(k) for k in FIELDS},
                                    "error": {"code": exc.code, "message": exc.message}})
    return result
