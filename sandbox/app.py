"""The sandbox sub-app at ``/sandbox`` and :func:`install`, the one call ``pvsettle demo`` makes.

Routes (JSON unless said; refusals in the server's JSON error shape):

- ``GET /sandbox/`` — the page (HTML), its files under ``/sandbox/static/``;
- ``GET /sandbox/api/users`` — the demo users, whom each owner user is bound to (staff users:
  their staff id), the
  notification templates (name → id) the page subscribes to, and which fakes are on;
- ``POST /sandbox/api/login {user}`` — a ``wx.login`` code for the user, registered with the
  fake WeChat (the page then calls ``POST /api/v1/session`` with it);
- ``GET /sandbox/api/owners`` / ``POST /sandbox/api/invitation {owner_id}`` — the staff desk:
  the portfolio's owners, and an invitation code issued by the sandbox's operator;
- ``POST /sandbox/api/pay {user, out_trade_no, request_payment}`` — ``wx.requestPayment``: the
  paySign is checked with the merchant's key, the fake WeChat Pay marks the order paid and POSTs
  its signed, encrypted notification to ``/pay/notify``; answers what the notification got;
- ``GET /sandbox/api/phone?user=`` — what the user's phone shows: messages the fake WeChat
  delivered to either of their openids, and their bot console exchange;
- ``POST /sandbox/api/bot {user, text}`` — a message to the official account as the user.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from sandbox import people
from sandbox.console import Console
from sandbox.fakes import refund_settler_ctx, sandbox_fakes_ctx, sandbox_pay_key, sandbox_wechat_key
from sandbox.people import staff_ctx
from sandbox.simulator import simulator_ctx
from sandbox.switches import switches_ctx
from sandbox.tax import tax_ctx
from settlement.errors import Conflict, InvalidInput, NotFound
from settlement.i18n import Ref
from webapp.keys import http_client_key, settings_key
from webapp.json_errors import json_error
from webapp.settings import Settings

STATIC = Path(__file__).resolve().parent / "static"
console_key = web.AppKey("sandbox_console_key", Console)
routes = web.RouteTableDef()


def install(app: web.Application) -> web.Application:
    """Add the sandbox to a root app made by :func:`server.app.create_app` (before it starts).

    The fakes start before every other resource (they change the settings those read) and stop
    after them; the prepaid switches' simulator and the tax system come next, before the scheduler that is
    handed them;
    the demo users, the telemetry simulator and WeChat Pay's refund settling start after everything
    else.
    """
    app.cleanup_ctx.insert(0, sandbox_fakes_ctx)
    app.cleanup_ctx.insert(1, switches_ctx)
    app.cleanup_ctx.insert(2, tax_ctx)
    app.cleanup_ctx.append(staff_ctx)
    app.cleanup_ctx.append(simulator_ctx)
    app.cleanup_ctx.append(refund_settler_ctx)
    app.add_subapp("/sandbox", create_app())
    return app


def create_app() -> web.Application:
    sub = web.Application()
    sub[console_key] = Console()
    sub.add_routes(routes)
    sub.router.add_static("/static/", STATIC, name="static", append_version=True)
    return sub


def _settings(request: web.Request) -> Settings:
    return request.config_dict[settings_key]


def _unavailable(what: str) -> web.Response:
    return json_error(503, "sandbox_off", f"the sandbox {what} is off in this process (its base URL is set "
                                          "in the environment, or the pay settings are missing)")


async def _json(request: web.Request) -> dict:
    try:
        body = await request.json()
    except ValueError:
        raise InvalidInput("the body must be a JSON object", code="bad_json") from None
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object", code="bad_json")
    return body


def _text(body: dict, name: str, limit: int = 200) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise InvalidInput(f"{name} must be a non-empty string of at most {limit} characters", code="bad_field")
    return value.strip()


@routes.get("/")
async def page(request: web.Request) -> web.StreamResponse:
    html = (STATIC / "index.html").read_text("utf-8")
    # the static files' URLs carry a hash of their content, so a new version is never served stale
    router = request.app.router["static"]
    for name in ("sandbox.css", "sandbox.js", "vendor/chart.umd.min.js"):
        html = html.replace(f'"static/{name}"', f'"{router.url_for(filename=name)}"')
    return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-cache"})


@routes.get("/api/users")
async def users(request: web.Request) -> web.Response:
    settings = _settings(request)
    listed = []
    for person in people.USERS:
        entry = person.as_dict()
        entry["owner"] = None if person.role else await people.bound_owner(person, settings.mp_appid)
        if person.role:  # what `pvsettle payments import --staff ID` takes
            entry["staff_id"] = await people.staff_id(person, settings.oa_appid)
        listed.append(entry)
    return web.json_response({
        "users": listed, "templates": json.loads(settings.notify_templates),
        "wechat": sandbox_wechat_key in request.config_dict, "pay": sandbox_pay_key in request.config_dict,
    })


@routes.post("/api/login")
async def login(request: web.Request) -> web.Response:
    wechat = request.config_dict.get(sandbox_wechat_key)
    if wechat is None:
        return _unavailable("WeChat")
    person = people.user(_text(await _json(request), "user"))
    code = wechat.register_login_code(_settings(request).mp_appid, person.mp_openid, unionid=person.unionid)
    return web.json_response({"code": code})


@routes.get("/api/owners")
async def owners(request: web.Request) -> web.Response:
    return web.json_response({"owners": await people.owners_overview()})


@routes.post("/api/invitation")
async def invitation(request: web.Request) -> web.Response:
    owner_id = (await _json(request)).get("owner_id")
    if not isinstance(owner_id, int) or isinstance(owner_id, bool):
        raise InvalidInput("owner_id must be a whole number", code="bad_field")
    code = await people.invite(owner_id, _settings(request).oa_appid)
    return web.json_response({"owner_id": owner_id, "invitation_code": code})


def _check_pay_sign(fake, request_payment: dict) -> None:
    """What wx.requestPayment checks: the paySign is the merchant's RSA-SHA256 signature over
    ``appId\\ntimeStamp\\nnonceStr\\npackage\\n``."""
    try:
        parts = [fake.appid, request_payment["timeStamp"], request_payment["nonceStr"], request_payment["package"]]
        signature = base64.b64decode(request_payment["paySign"], validate=True)
        if not all(isinstance(p, str) for p in parts):
            raise TypeError
        fake.merchant_key.verify(signature, ("\n".join(parts) + "\n").encode(), padding.PKCS1v15(), hashes.SHA256())
    except (KeyError, TypeError, ValueError, InvalidSignature):
        raise InvalidInput("request_payment is not signed by the merchant (paySign)", code="bad_pay_sign") from None


@routes.post("/api/pay")
async def pay(request: web.Request) -> web.Response:
    fake = request.config_dict.get(sandbox_pay_key)
    if fake is None:
        return _unavailable("WeChat Pay")
    body = await _json(request)
    person = people.user(_text(body, "user"))
    no = _text(body, "out_trade_no", 32)
    request_payment = body.get("request_payment")
    order = fake.orders.get(no)
    if order is None:
        raise NotFound(f"WeChat Pay has no order {no}", code="unknown_order")
    if not isinstance(request_payment, dict) or request_payment.get("package") != f"prepay_id={order.prepay_id}":
        raise InvalidInput("request_payment is not this order's (package)", code="bad_package")
    _check_pay_sign(fake, request_payment)
    if order.payer_openid != person.mp_openid:
        raise InvalidInput("this order is another WeChat user's", code="other_payer")
    if order.trade_state != "NOTPAY":
        raise Conflict(f"the order is {order.trade_state}", code="bad_state",
                       params={"state": Ref(f"trade_state.{order.trade_state}")})
    fake.pay_order(no)
    # WeChat Pay tells the merchant at the notify URL of the order; a failed delivery is left to
    # the reconciliation's query, as with the real one after its retries
    status, answer = await fake.notify_payment(order.notify_url, no)
    return web.json_response({"trade_state": "SUCCESS", "transaction_id": order.transaction_id,
                              "notify_status": status, "notify_answer": answer[:200]})


@routes.get("/api/phone")
async def phone(request: web.Request) -> web.Response:
    person = people.user(request.query.get("user", ""))
    wechat = request.config_dict.get(sandbox_wechat_key)
    names = {template_id: name for name, template_id in json.loads(_settings(request).notify_templates).items()}
    mine = {person.mp_openid, person.oa_openid}
    items = []
    for sent in (wechat.sent if wechat is not None else []):
        if sent.touser in mine:
            items.append({"at": sent.at, "kind": sent.kind, "template": names.get(sent.template_id or ""),
                          "template_id": sent.template_id, "data": sent.data, "page": sent.page,
                          "text": sent.text})
    for exchange in request.app[console_key].history.get(person.oa_openid, ()):
        items.append({"at": exchange.at, "kind": "bot", "text": exchange.text, "reply": exchange.reply,
                      "status": exchange.status})
    items.sort(key=lambda item: item["at"])
    return web.json_response({"user": person.key, "messages": items})


@routes.post("/api/bot")
async def bot(request: web.Request) -> web.Response:
    body = await _json(request)
    person = people.user(_text(body, "user"))
    text = body.get("text")
    if not isinstance(text, str):
        raise InvalidInput("text must be a string", code="bad_field")
    # this very process, at the address the browser reached it on
    host, port = request.transport.get_extra_info("sockname")[:2]
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    origin = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    exchange = await request.app[console_key].say(request.config_dict[http_client_key], origin,
                                                  _settings(request).oa_token, person.oa_openid, text)
    return web.json_response({"text": exchange.text, "reply": exchange.reply, "status": exchange.status})
