"""Login, who am I, binding to an owner account, account credit."""

from __future__ import annotations

import time

from aiohttp import web

from miniprogram_api import gate
from miniprogram_api.common import api, settings, token_claims_key
from miniprogram_api.registry import Call
from miniprogram_api.schemas import (
    AccountOut,
    BindingIn,
    BindingOut,
    LinkCodeOut,
    MeOut,
    OwnerOut,
    SessionIn,
    SessionOut,
)
from settlement.billing import bills
from settlement.owners import bindings
from settlement.owners import sessions
from settlement.errors import NotFound
from settlement.models import Owner
from settlement.ports.wechat import InvalidCode, RateLimited, RiskyUser, WechatApi, WechatError
from webapp.keys import redis_guard_key, redis_key, redis_ns_key, wechat_api_key


def _wechat_answer(exc: WechatError) -> web.Response:
    if isinstance(exc, InvalidCode):
        status, code, message = 400, "invalid_code", "the WeChat code is invalid or already used: call wx.login again"
    elif isinstance(exc, RateLimited):
        status, code, message = 429, "rate_limited", "WeChat says this user logs in too often: wait a minute"
    elif isinstance(exc, RiskyUser):
        status, code, message = 403, "risky_user", "WeChat's risk control blocked this user"
    else:  # unavailable, token trouble, quota: nothing the user can fix
        status, code, message = 503, "wechat_unavailable", "WeChat did not answer: try again shortly"
    headers = {"Retry-After": "60"} if status in (429, 503) else None
    return web.json_response({"error": {"code": code, "message": message}}, status=status, headers=headers)


def _wechat(request: web.Request) -> WechatApi | None:
    return request.config_dict.get(wechat_api_key)


async def _me(identity_id: int, owner_id: int | None) -> MeOut:
    owner = await Owner.get_or_none(id=owner_id) if owner_id is not None else None
    return MeOut(identity_id=identity_id, bound=owner is not None,
                 owner=OwnerOut(id=owner.id, name=owner.name) if owner else None)


@api.post("/session", auth="public", body=SessionIn, response=SessionOut, status=201, tag="session",
          errors=(403, 503))
async def open_session(request: web.Request, call: Call):
    """Log in with a wx.login code: a session token for the other routes.

    WeChat's answers: a bad or used code → 400 ``invalid_code``; too many logins → 429
    ``rate_limited``; risk control → 403 ``risky_user``; WeChat down → 503 ``wechat_unavailable``.
    The session key WeChat gives stays on the server.
    """
    s = settings(request)
    api_client = _wechat(request)
    if api_client is None:
        return _wechat_answer(WechatError(-1, "no WeChat client configured"))
    try:
        opened = await sessions.open_session(api_client, request.config_dict[redis_key],
                                             request.config_dict[redis_guard_key], request.config_dict[redis_ns_key],
                                             call.body.code, app_id=s.mp_appid, secret_key=s.secret_key,
                                             ttl_s=s.session_ttl)
    except WechatError as exc:
        return _wechat_answer(exc)
    return SessionOut(token=opened.token, expires_at=opened.expires_at,
                      me=await _me(opened.identity.id, opened.identity.owner_id))


@api.delete("/session", tag="session", ends_session=True, errors=(503,))
async def close_session(request: web.Request, call: Call):
    """Log out: the token stops working at once, in every process.

    While Redis does not answer this is 503 with Retry-After: the session is closed in the
    database already, and the same DELETE repeated once Redis answers finishes the logout (a
    token whose session already ended may repeat it).
    """
    await sessions.close_session(request.config_dict[redis_key], request.config_dict[redis_guard_key],
                                 request.config_dict[redis_ns_key], request[token_claims_key], now=time.time())


@api.get("/me", response=MeOut, tag="session")
async def me(request: web.Request, call: Call):
    """Who the session belongs to and the owner account it is bound to."""
    return await _me(call.principal.identity_id, call.principal.owner_id)


@api.post("/binding", body=BindingIn, response=BindingOut, tag="binding", errors=(403, 404, 409, 503))
async def bind(request: web.Request, call: Call):
    """Bind this WeChat user to an owner account, by invitation code or by phone number on file."""
    body: BindingIn = call.body
    if body.invitation_code is not None:
        owner, how = await bindings.bind_with_code(call.principal.identity_id, body.invitation_code)
    else:
        api_client = _wechat(request)
        if api_client is None:
            return _wechat_answer(WechatError(-1, "no WeChat client configured"))
        try:
            phone = await api_client.phone_number(body.phone_code)
        except WechatError as exc:
            return _wechat_answer(exc)
        owner = await bindings.bind_with_phone(call.principal.identity_id, phone)
        how = "phone"
    # the same person in the official account (by unionid) was bound too: no cached view stays
    await gate.invalidate(request.config_dict[redis_key], request.config_dict[redis_guard_key],
                          request.config_dict[redis_ns_key], *await bindings.person_identity_ids(call.principal.identity_id))
    return BindingOut(owner=OwnerOut(id=owner.id, name=owner.name), by=how)


@api.delete("/binding", tag="binding", errors=(404,))
async def unbind(request: web.Request, call: Call):
    """Leave the owner account — here and in the official account where WeChat says (unionid) it
    is the same person; rights others granted to this user stay."""
    person = await bindings.person_identity_ids(call.principal.identity_id)
    await bindings.unbind(call.principal.identity_id)
    await gate.invalidate(request.config_dict[redis_key], request.config_dict[redis_guard_key],
                          request.config_dict[redis_ns_key], *person)


@api.post("/binding/link-code", response=LinkCodeOut, status=201, tag="binding", errors=(404,))
async def link_code(request: web.Request, call: Call):
    """A one-time code (10 minutes) that binds this person in the official account too, for when
    WeChat gives no unionid to link the two: send ``绑定 <code>`` to the official account. A user
    bound to no owner gets 404 ``not_bound``."""
    code, expires_at = await bindings.issue_link_code(call.principal.identity_id)
    return LinkCodeOut(code=code, expires_at=expires_at, send=f"绑定 {code}")


@api.get("/account", response=AccountOut, tag="bills", errors=(404,))
async def account(request: web.Request, call: Call):
    """The owner account's credit (from overpayments, used by the next bill)."""
    owner_id = call.principal.owner_id
    if owner_id is None:
        raise NotFound("this WeChat user is not bound to an owner account", code="not_bound")
    owner = await Owner.get(id=owner_id)
    return AccountOut(owner=OwnerOut(id=owner.id, name=owner.name), credit_fen=await bills.credit_balance(owner_id))

