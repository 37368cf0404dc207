"""A plant's prepaid account (预付费): balance, statement, and a WeChat Pay top-up order.

``GET /plants/{plant_id}/prepaid`` and ``…/prepaid/statement`` for whoever may see the plant;
``POST /plants/{plant_id}/prepaid/topup`` for the owner or whoever has the pay right on it;
``POST /prepaid/topup`` with the account number, for anyone the owner lets pay by number. The
top-up itself is recorded when WeChat Pay's notification comes (/pay/notify), as for bills
(settlement.prepaid.accounts). A plant without a prepaid account answers 404 ``not_prepaid``.
"""

from __future__ import annotations

import datetime as dt

from aiohttp import web
from pydantic import BaseModel, Field

from miniprogram_api.common import api
from miniprogram_api.registry import Call
from miniprogram_api.schemas import Strict, Text, fen
from miniprogram_api.views_pay import RequestPayment
from settlement.prepaid import accounts as prepaid
from settlement.owners.access import Right
from settlement.errors import NotFound
from settlement.models import PrepaidAccount, PrepaidService
from settlement.ports.pay import PayCallFailed, PayRejected
from webapp.keys import pay_api_key
from settlement.clock import local_today


class ServiceOut(BaseModel):
    name: str
    utility: str = Field(description="electricity, water or gas")
    unit: str = Field(description="kWh or m3")


class PrepaidOut(BaseModel):
    number: str = Field(description="the account number others may quote to pay, where the owner allows it")
    name: str
    available_fen: int = Field(description="[fen] balance − charges to date")
    balance_fen: int = Field(description="[fen] top-ups less refunds")
    charges_fen: int = Field(description="[fen] daily charges and true-ups to date")
    warning_fen: int = Field(description="[fen] the low-balance warning level")
    state: str = Field(description="normal, warned, cutoff_pending or cut_off")
    supply: str = Field(description="on, off or unknown")
    cutoff_due_at: dt.datetime | None
    services: list[ServiceOut]


class StatementQuery(Strict):
    days: int = Field(31, ge=1, le=366, description="movements of the last this many days")


class ServiceTotal(ServiceOut):
    quantity: float = Field(description="[unit] used in the span")
    charged_fen: int


class EntryOut(BaseModel):
    posted_at: dt.datetime
    kind: str = Field(description="topup, charge, true_up, refund or refund_returned")
    amount_fen: int = Field(description="[fen] + money in, − money out")
    available_after_fen: int
    day: dt.date | None = Field(description="the local day a charge is for")
    service: str | None
    quantity: float | None
    note: str


class StatementOut(BaseModel):
    account: PrepaidOut
    services: list[ServiceTotal]
    entries: list[EntryOut]


class TopUpIn(Strict):
    amount_fen: fen(1, prepaid.MAX_TOPUP_FEN) = Field(description="[fen] to add to the account")


class TopUpByNumberIn(TopUpIn):
    number: Text = Field(min_length=1, max_length=20, description="the prepaid account number")


class TopUpOut(BaseModel):
    out_trade_no: str
    amount_fen: int
    expires_at: dt.datetime = Field(description="pay before this; afterwards ask again")
    request_payment: RequestPayment


async def _account(plant_id: int) -> PrepaidAccount:
    account = await PrepaidAccount.filter(plant_id=plant_id).order_by("id").first()
    if account is None:
        raise NotFound("this plant has no prepaid account", code="not_prepaid")
    return account


async def _out(account: PrepaidAccount) -> PrepaidOut:
    summary = await prepaid.balance(account.id)
    services = await PrepaidService.filter(account_id=account.id).order_by("id")
    return PrepaidOut(number=account.number, name=account.name, available_fen=summary["available_fen"],
                      balance_fen=summary["balance_fen"], charges_fen=summary["charges_fen"],
                      warning_fen=account.warning_fen, state=summary["state"], supply=summary["supply"],
                      cutoff_due_at=account.cutoff_due_at,
                      services=[ServiceOut(name=s.name, utility=s.utility.value, unit=s.unit) for s in services])


@api.get("/plants/{plant_id}/prepaid", resource="plant", needs=Right.VIEW, response=PrepaidOut, tag="prepaid")
async def prepaid_account(request: web.Request, call: Call):
    """The plant's prepaid account: available balance, thresholds state, supply, services."""
    return await _out(await _account(call.plant_id))


@api.get("/plants/{plant_id}/prepaid/statement", resource="plant", needs=Right.VIEW, query=StatementQuery,
         response=StatementOut, tag="prepaid")
async def prepaid_statement(request: web.Request, call: Call):
    """Every movement of the last days and each utility's usage and charges, on one statement."""
    account = await _account(call.plant_id)
    today = local_today()
    data = await prepaid.statement(account.id, first=today - dt.timedelta(days=call.query.days - 1),
                                   end=today + dt.timedelta(days=1))
    return StatementOut(account=await _out(account), services=[ServiceTotal(**s) for s in data["services"]],
                        entries=[EntryOut(**e) for e in data["entries"]])


@api.post("/plants/{plant_id}/prepaid/topup", resource="plant", needs=Right.PAY, body=TopUpIn, response=TopUpOut,
          tag="prepaid", errors=(502, 503),
          description="502 when WeChat Pay refuses the order, 503 when it cannot be reached or is not "
                      "configured here.")
async def prepaid_topup(request: web.Request, call: Call):
    """A WeChat Pay order topping up the plant's prepaid account, signed for wx.requestPayment."""
    account = await _account(call.plant_id)
    return await _topup(request, call, account.number)


@api.post("/prepaid/topup", body=TopUpByNumberIn, response=TopUpOut, tag="prepaid", errors=(403, 404, 502, 503),
          description="Paying for someone by their account number: allowed to the owner, whoever has the pay "
                      "right on the account's site, and anyone else only where the owner allows it (404 "
                      "otherwise, as for an unknown number).")
async def prepaid_topup_by_number(request: web.Request, call: Call):
    """A WeChat Pay order topping up the prepaid account of the given number."""
    return await _topup(request, call, call.body.number)


async def _topup(request: web.Request, call: Call, number: str):
    pay = request.config_dict.get(pay_api_key)
    if pay is None:
        return web.json_response({"error": {"code": "pay_unavailable",
                                            "message": "WeChat Pay is not configured on this server"}}, status=503)
    try:
        result = await prepaid.start_topup(pay, number, call.principal.identity_id, call.body.amount_fen)
    except PayRejected as exc:
        return web.json_response({"error": {"code": "pay_refused",
                                            "message": f"WeChat Pay refused the order: {exc.code}"}}, status=502)
    except PayCallFailed:
        return web.json_response({"error": {"code": "pay_unavailable",
                                            "message": "WeChat Pay cannot be reached now: try again in a moment"}},
                                 status=503)
    return TopUpOut(out_trade_no=result.out_trade_no, amount_fen=result.amount_fen, expires_at=result.expires_at,
                    request_payment=RequestPayment(**result.request_payment()))
