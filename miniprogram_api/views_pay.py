"""Paying a bill with WeChat Pay: ``POST /bills/{bill_id}/pay``.

Answers what ``wx.requestPayment`` needs (timeStamp, nonceStr, package, signType, paySign) for a
JSAPI prepay order of what is owed, or of a chosen part where the plant's contract allows partial
payment. The owner or anyone with the pay right on the plant may pay. The order is reused while
it is valid for the same payer and amount (settlement.pay.payments.start_payment); the payment itself
is recorded when WeChat Pay's notification comes (/pay/notify), not here.
"""

from __future__ import annotations

import datetime as dt

from aiohttp import web
from pydantic import BaseModel, Field

from miniprogram_api.common import api
from miniprogram_api.registry import Call
from miniprogram_api.schemas import Strict, fen
from settlement.pay import payments
from settlement.owners.access import Right
from settlement.ports.pay import PayCallFailed, PayRejected
from webapp.keys import pay_api_key


class PayIn(Strict):
    amount_fen: fen(1, 10**12) | None = Field(None,
                                   description="[fen] what to pay; leave out for everything owed. Less than that "
                                               "only where the contract allows partial payment")


class RequestPayment(BaseModel):
    """The object to pass to wx.requestPayment as it is."""

    timeStamp: str
    nonceStr: str
    package: str = Field(description="prepay_id=…")
    signType: str = Field(description="RSA")
    paySign: str


class PayOut(BaseModel):
    out_trade_no: str
    amount_fen: int
    expires_at: dt.datetime = Field(description="pay before this; afterwards ask again")
    reused: bool = Field(description="the order handed out earlier to this payer for this amount")
    request_payment: RequestPayment


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


@api.post("/bills/{bill_id}/pay", resource="bill", needs=Right.PAY, body=PayIn, response=PayOut, tag="bills",
          errors=(409, 502, 503),
          description="Body ``{}`` pays everything owed; ``{\"amount_fen\": N}`` a part of it. 502 when WeChat "
                      "Pay refuses the order, 503 when it cannot be reached or is not configured here.")
async def pay_bill(request: web.Request, call: Call):
    """A WeChat Pay order for what is owed on a bill, signed for wx.requestPayment."""
    pay = request.config_dict.get(pay_api_key)
    if pay is None:
        return _error(503, "pay_unavailable", "WeChat Pay is not configured on this server")
    try:
        result = await payments.start_payment(pay, call.ids["bill_id"], call.principal.identity_id,
                                              call.body.amount_fen)
    except PayRejected as exc:
        return _error(502, "pay_refused", f"WeChat Pay refused the order: {exc.code}")
    except PayCallFailed:
        return _error(503, "pay_unavailable", "WeChat Pay cannot be reached now: try again in a moment")
    return PayOut(out_trade_no=result.out_trade_no, amount_fen=result.amount_fen, expires_at=result.expires_at,
                  reused=result.reused, request_payment=RequestPayment(**result.request_payment()))
