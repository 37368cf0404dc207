"""The receipt a payer gets when a payment is received (event ``PaymentReceived``).

:func:`receipt_messages` returns the content of the receipt notification, one message per
recipient, in the shape of an outbox row (dedupe key, event, channel, recipient, app, template,
payload). Nothing sends them yet: the outbox dispatcher belongs to the notification work, which
will call this when a payment is recorded. The e-bill page lists the same payment under its
receipts (:func:`settlement.ebill.render_bill`).

Subscribe-message values follow WeChat's field rules (DOMAIN.md): ``amount`` = currency symbol
and at most 10 digits, ``thing`` ≤ 20 characters, ``character_string`` ≤ 32, ``time`` as
年月日 with 24 h time.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from settlement.bills import owed_fen
from settlement.errors import NotFound
from settlement.models import Bill, Payment, PaymentChannel, Plant, WechatIdentity

LOCAL = ZoneInfo("Asia/Shanghai")
TEMPLATE = "payment_receipt"
CHANNEL_ZH = {PaymentChannel.WECHAT: "微信支付", PaymentChannel.BANK_TRANSFER: "银行转账",
              PaymentChannel.COUNTER: "柜台缴费", PaymentChannel.OTHER: "其他"}


def _amount(fen: int) -> str:
    return f"¥{fen // 100}.{fen % 100:02d}"


async def receipt_messages(payment_id: int, mp_appid: str) -> list[dict]:
    """The receipt of one payment for the payer and the owner's mini-program identities.

    Returns an empty list for a payment whose order is unknown (no bill, nobody to tell yet).
    """
    payment = await Payment.get_or_none(id=payment_id)
    if payment is None:
        raise NotFound(f"no payment {payment_id}", code="unknown_payment")
    if payment.bill_id is None:
        return []
    bill = await Bill.get(id=payment.bill_id)
    plant = await Plant.get(id=bill.plant_id)
    recipients = dict(await WechatIdentity.filter(owner_id=bill.owner_id, app_id=mp_appid)
                      .values_list("id", "openid"))
    if payment.payer_id is not None:
        payer = await WechatIdentity.get_or_none(id=payment.payer_id)
        if payer is not None and payer.app_id == mp_appid:
            recipients[payer.id] = payer.openid
    payload = {
        "amount1": _amount(payment.amount_fen),
        "character_string2": bill.number[:32],
        "thing3": plant.name[:20],
        "time4": payment.paid_at.astimezone(LOCAL).strftime("%Y年%m月%d日 %H:%M"),
        "phrase5": CHANNEL_ZH.get(payment.channel, "其他")[:5],
        "amount6": _amount(max(owed_fen(bill), 0)),
    }
    return [{"dedupe_key": f"PaymentReceived:{payment.id}:{openid}", "event": "PaymentReceived",
             "channel": "subscribe", "recipient": openid, "app_id": mp_appid, "template": TEMPLATE,
             "payload": payload} for _, openid in sorted(recipients.items())]
