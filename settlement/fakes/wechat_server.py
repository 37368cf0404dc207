"""A fake WeChat API server: a real ``aiohttp.web.Application`` on a real port that answers like
``api.weixin.qq.com`` for the calls pvsettle makes, so the real client runs against it in tests and
in the demo's sandbox.

What it plays, as WeChat does:

- ``POST /cgi-bin/stable_token`` (JSON ``grant_type=client_credential, appid, secret,
  force_refresh``): normal mode returns the current token with its remaining ``expires_in``, or a
  new one once the current one has less than ``renew_window`` left (the old one keeps working
  until it runs out); ``force_refresh`` invalidates every earlier token of the app and returns a
  new one, except within ``force_refresh_interval`` of the last forced refresh, when the current
  token is returned unchanged. 40013 unknown appid, 40125 wrong secret, 40002 bad grant_type.
- Tokens: 41001 missing, 40001 unknown or invalidated, 42001 expired, 48001 another kind of app's.
- ``GET /sns/jscode2session``: codes registered by the test, each valid ``code_lifetime`` and
  usable once (40029 unknown or expired, 40163 used); 100 calls per user per minute (45011).
- ``POST /wxa/business/getuserphonenumber``: registered phone codes, once each (40029).
- ``POST /cgi-bin/message/subscribe/send``: subscribe messages, each value checked against
  WeChat's field rules for its key's type (47003 ``argument invalid! data.thing1.value invalid``),
  43101 for users who refused the template.
- ``POST /cgi-bin/message/template/send``: official-account template messages (typed keys checked
  the same way; ``keywordN``/``first``/``remark`` are free text); 43004 for a user who does not
  follow the account; one message per (openid, ``client_msg_id``) for 10 minutes.
- ``POST /cgi-bin/message/custom/send``: customer-service text; 45015 for a user who does not follow.
- ``GET /cgi-bin/user/info`` (official account): a registered user's ``subscribe`` and ``openid``,
  and their ``unionid`` when the account is bound to an open-platform account
  (:meth:`FakeWechat.share_open_platform`); 40003 for an openid the account never saw.

unionid, as WeChat gives it: a user registered with :meth:`FakeWechat.register_user` has one
unionid across the apps of one open-platform account; code2session and user/info tell it only for
apps bound to that account. (A login code registered with an explicit ``unionid`` tells it anyway.)

Every call is recorded in :attr:`FakeWechat.calls` (without secrets), every message delivered in
:attr:`FakeWechat.sent`. Faults are injected per endpoint (names in :data:`ENDPOINTS`): the next N
calls answer an errcode, an HTTP status, or hang, and every token can be expired at once or after
the next k calls. Injected faults are answered before any validation, and a hang answers normally
afterwards — a slow WeChat may deliver a message whose sender already gave up.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import secrets
import time
import unicodedata
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

ENDPOINTS = {
    "stable_token": "/cgi-bin/stable_token",
    "jscode2session": "/sns/jscode2session",
    "getuserphonenumber": "/wxa/business/getuserphonenumber",
    "subscribe_send": "/cgi-bin/message/subscribe/send",
    "template_send": "/cgi-bin/message/template/send",
    "custom_send": "/cgi-bin/message/custom/send",
    "user_info": "/cgi-bin/user/info",
}

# Which kind of app may call each token-authenticated endpoint.
_KIND = {"getuserphonenumber": "mp", "subscribe_send": "mp", "template_send": "oa", "custom_send": "oa",
         "user_info": "oa"}

ERRMSG = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40008: "invalid message type",
    40013: "invalid appid",
    40014: "invalid access_token",
    40029: "invalid code",
    40037: "invalid template_id",
    40125: "invalid appsecret",
    40163: "code been used",
    40226: "high risk user",
    41001: "access_token missing",
    41002: "appid missing",
    41004: "appsecret missing",
    41008: "missing code",
    42001: "access_token expired",
    43004: "require subscribe",
    43101: "user refuse to accept the msg",
    44002: "empty post data",
    44004: "empty content",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit  mustslower  retry next minute",
    45015: "response out of time limit or subscription is canceled",
    47001: "data format error",
    47003: "argument invalid!",
    48001: "api unauthorized",
}

CODE2SESSION_PER_USER_PER_MINUTE = 100
CLIENT_MSG_ID_WINDOW = 600.0  # [s] WeChat sends one template message per (openid, client_msg_id) for 10 min


@dataclass
class RegisteredApp:
    appid: str
    secret: str = field(repr=False)
    kind: str  # "mp" (mini-program) or "oa" (official account)


@dataclass
class IssuedToken:
    token: str = field(repr=False)
    appid: str
    issued_at: float
    expires_at: float
    revoked: bool = False


@dataclass
class Call:
    """One request the fake received. ``body`` is the JSON body or the query, secret removed."""

    endpoint: str
    appid: str | None
    body: dict[str, Any]
    access_token: str | None = field(default=None, repr=False)
    errcode: int | None = None  # None: answered with an HTTP error, or still hanging
    at: float = 0.0


@dataclass
class SentMessage:
    """A message the fake accepted (so WeChat would deliver it).

    ``kind`` is ``subscribe``, ``template`` or ``custom``; ``data`` maps keys to plain values;
    ``page`` is the mini-program page (subscribe ``page`` or template ``miniprogram.pagepath``).
    """

    kind: str
    appid: str
    touser: str
    msgid: int
    template_id: str | None = None
    data: dict[str, str] = field(default_factory=dict)
    page: str | None = None
    url: str | None = None
    miniprogram_appid: str | None = None
    text: str | None = None
    client_msg_id: str | None = None
    at: float = 0.0


@dataclass
class _Fault:
    times: int
    errcode: int | None = None
    errmsg: str | None = None
    status: int | None = None
    hang: float | None = None


@dataclass
class _Code:
    appid: str
    issued_at: float
    used: bool = False
    openid: str = ""
    unionid: str | None = None
    session_key: str = field(default="", repr=False)
    phone: str = ""
    country_code: str = ""


class _Refusal(Exception):
    def __init__(self, errcode: int, detail: str = ""):
        self.errcode = errcode
        self.detail = detail


class FakeWechat:
    """WeChat's API for the apps and users a test registers.

    Parameters
    ----------
    token_lifetime : float, default 7200 [s]
        ``expires_in`` of a new access token.
    renew_window : float, default 300 [s]
        Normal-mode stable_token hands out a new token once the current one has less than this left.
    force_refresh_interval : float, default 30 [s]
        A forced refresh sooner than this after the previous one returns the current token.
    code_lifetime : float, default 300 [s]
        How long a login or phone code stays usable.
    clock : callable, default time.time
        Seconds since the epoch; tests pass a settable one.
    """

    def __init__(self, *, token_lifetime: float = 7200.0, renew_window: float = 300.0,
                 force_refresh_interval: float = 30.0, code_lifetime: float = 300.0,
                 clock: Callable[[], float] = time.time):
        self.token_lifetime = token_lifetime
        self.renew_window = renew_window
        self.force_refresh_interval = force_refresh_interval
        self.code_lifetime = code_lifetime
        self.clock = clock
        self.apps: dict[str, RegisteredApp] = {}
        self.tokens: dict[str, IssuedToken] = {}
        self.calls: list[Call] = []
        self.sent: list[SentMessage] = []
        self._current: dict[str, IssuedToken] = {}
        self._last_forced: dict[str, float] = {}
        self._login_codes: dict[str, _Code] = {}
        self._phone_codes: dict[str, _Code] = {}
        self._logins: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._refusals: set[tuple[str, str | None]] = set()
        self._unfollowed: set[str] = set()
        self._users: dict[tuple[str, str], str | None] = {}  # (appid, openid) → unionid
        self._open_platform: set[str] = set()  # appids bound to the one open-platform account
        self._templates: dict[str, dict[str, frozenset[str] | None]] = defaultdict(dict)
        self._client_msg_ids: dict[tuple[str, str, str], tuple[float, int]] = {}
        self._faults: dict[str, deque[_Fault]] = defaultdict(deque)
        self._expire_after: dict[str, int] = {}
        self._msgid = 2_000_000_000
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # ------------------------------------------------------------------ set-up by tests

    def register_app(self, appid: str, secret: str, kind: str = "mp") -> None:
        """Make ``appid`` (a mini-program ``"mp"`` or official account ``"oa"``) known."""
        if kind not in ("mp", "oa"):
            raise ValueError(f"unknown app kind {kind!r} (expected 'mp' or 'oa')")
        self.apps[appid] = RegisteredApp(appid, secret, kind)

    def register_login_code(self, appid: str, openid: str, *, unionid: str | None = None,
                            code: str | None = None, session_key: str | None = None) -> str:
        """A ``wx.login`` code of ``appid`` for ``openid``; returns the code (generated if not given)."""
        code = code or "0" + secrets.token_hex(15)
        self._login_codes[code] = _Code(appid=appid, issued_at=self.clock(), openid=openid, unionid=unionid,
                                        session_key=session_key or secrets.token_urlsafe(16))
        return code

    def register_user(self, appid: str, openid: str, *, unionid: str | None = None) -> None:
        """``openid`` is a user of ``appid`` (an official account's follower, a mini-program's
        user) whose unionid on the open platform is ``unionid``."""
        self._users[(appid, openid)] = unionid

    def share_open_platform(self, *appids: str) -> None:
        """The apps are bound to one open-platform account: code2session and user/info tell
        their users' unionid."""
        self._open_platform.update(appids)

    def _unionid(self, appid: str, openid: str) -> str | None:
        return self._users.get((appid, openid)) if appid in self._open_platform else None

    def register_phone_code(self, appid: str, phone: str, *, country_code: str = "86",
                            code: str | None = None) -> str:
        """A ``getPhoneNumber`` code of ``appid`` for ``phone`` (no country code); returns the code."""
        code = code or secrets.token_hex(32)
        self._phone_codes[code] = _Code(appid=appid, issued_at=self.clock(), phone=phone,
                                        country_code=country_code)
        return code

    def register_template(self, appid: str, template_id: str, keys: set[str] | None = None) -> None:
        """Once an app has registered templates, others are refused (40037); with ``keys``, a
        message must fill exactly those keys (a missing one is 47003 ``… is empty``)."""
        self._templates[appid][template_id] = frozenset(keys) if keys is not None else None

    def refuse_subscribe(self, openid: str, template_id: str | None = None) -> None:
        """``openid`` refused ``template_id`` (every template when None): sends answer 43101."""
        self._refusals.add((openid, template_id))

    def unfollow(self, openid: str) -> None:
        """``openid`` does not follow the official account: template 43004, customer service 45015."""
        self._unfollowed.add(openid)

    def follow(self, openid: str) -> None:
        self._unfollowed.discard(openid)

    # ------------------------------------------------------------------ fault injection

    def fail_next(self, endpoint: str, errcode: int, *, times: int = 1, errmsg: str | None = None) -> None:
        """The next ``times`` calls of ``endpoint`` answer ``errcode`` (HTTP 200, WeChat's JSON)."""
        self._add_fault(endpoint, _Fault(times=times, errcode=errcode, errmsg=errmsg))

    def fail_next_http(self, endpoint: str, status: int = 503, *, times: int = 1) -> None:
        """The next ``times`` calls of ``endpoint`` answer HTTP ``status`` with an HTML body."""
        self._add_fault(endpoint, _Fault(times=times, status=status))

    def hang_next(self, endpoint: str, seconds: float, *, times: int = 1) -> None:
        """The next ``times`` calls of ``endpoint`` wait ``seconds`` before they are handled."""
        self._add_fault(endpoint, _Fault(times=times, hang=seconds))

    def clear_faults(self) -> None:
        self._faults.clear()
        self._expire_after.clear()

    def expire_tokens(self) -> None:
        """Every access token issued so far runs out now (calls with it answer 42001)."""
        now = self.clock()
        for token in self.tokens.values():
            token.expires_at = min(token.expires_at, now)

    def expire_tokens_after(self, endpoint: str, calls: int) -> None:
        """Expire every token right after the next ``calls`` successful calls of ``endpoint``."""
        self._check_endpoint(endpoint)
        if calls < 1:
            raise ValueError("calls must be at least 1")
        self._expire_after[endpoint] = calls

    def calls_to(self, endpoint: str) -> list[Call]:
        """The recorded calls of one endpoint, oldest first."""
        self._check_endpoint(endpoint)
        return [call for call in self.calls if call.endpoint == endpoint]

    def _check_endpoint(self, endpoint: str) -> None:
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r} (expected one of {sorted(ENDPOINTS)})")

    def _add_fault(self, endpoint: str, fault: _Fault) -> None:
        self._check_endpoint(endpoint)
        if fault.times < 1:
            raise ValueError("times must be at least 1")
        self._faults[endpoint].append(fault)

    # ------------------------------------------------------------------ serving

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(ENDPOINTS["stable_token"], self._endpoint("stable_token", self._stable_token))
        app.router.add_get(ENDPOINTS["jscode2session"], self._endpoint("jscode2session", self._jscode2session))
        app.router.add_post(ENDPOINTS["getuserphonenumber"],
                            self._endpoint("getuserphonenumber", self._phone_number))
        app.router.add_post(ENDPOINTS["subscribe_send"], self._endpoint("subscribe_send", self._subscribe_send))
        app.router.add_post(ENDPOINTS["template_send"], self._endpoint("template_send", self._template_send))
        app.router.add_post(ENDPOINTS["custom_send"], self._endpoint("custom_send", self._custom_send))
        app.router.add_get(ENDPOINTS["user_info"], self._endpoint("user_info", self._user_info))
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0 = any free port); returns and keeps :attr:`base_url`."""
        self._closing.clear()
        # No access log: the query strings of WeChat's API carry secrets and tokens.
        self._runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        self.base_url = f"http://{bound_host}:{bound_port}"
        return self.base_url

    async def close(self) -> None:
        """Stop serving; requests still hanging are let go without an answer."""
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _endpoint(self, name: str, handle: Callable[[Call, Mapping[str, str], dict[str, Any]], Any]):
        async def handler(request: web.Request) -> web.StreamResponse:
            call = Call(endpoint=name, appid=None, body={}, at=self.clock())
            self.calls.append(call)
            fault = self._take_fault(name)
            if fault is not None and fault.hang is not None:
                try:
                    await asyncio.wait_for(self._closing.wait(), fault.hang)
                    return web.Response(status=503, text="shutting down")
                except TimeoutError:
                    fault = None
            query = request.query
            body: dict[str, Any] = dict(query)
            token = body.pop("access_token", None)
            bad_body: int | None = None
            if request.method == "POST":
                # WeChat's POST APIs take a JSON object and nothing else.
                raw = await request.read()
                try:
                    parsed = json.loads(raw.decode("utf-8")) if raw else None
                except (ValueError, UnicodeDecodeError):
                    parsed = None
                body = parsed if isinstance(parsed, dict) else {}
                if not isinstance(parsed, dict):
                    bad_body = 44002 if not raw else 47001
            call.body = {k: v for k, v in body.items() if k != "secret"}
            call.access_token = token
            call.appid = body.get("appid") if isinstance(body.get("appid"), str) else None
            if fault is not None and fault.status is not None:
                return web.Response(status=fault.status, text=f"<html><body>{fault.status}</body></html>",
                                    content_type="text/html")
            try:
                if fault is not None:
                    raise _Refusal(fault.errcode, fault.errmsg or "")
                if name in _KIND:
                    call.appid = self._check_token(token, _KIND[name])
                if bad_body is not None:
                    raise _Refusal(bad_body)
                answer = handle(call, query, body)
            except _Refusal as refusal:
                call.errcode = refusal.errcode
                return self._error(refusal.errcode, refusal.detail)
            call.errcode = answer.get("errcode", 0)
            self._count_towards_expiry(name)
            return web.json_response(answer, dumps=_dumps)

        return handler

    def _take_fault(self, endpoint: str) -> _Fault | None:
        queue = self._faults.get(endpoint)
        if not queue:
            return None
        fault = queue[0]
        fault.times -= 1
        if fault.times <= 0:
            queue.popleft()
        return fault

    def _count_towards_expiry(self, endpoint: str) -> None:
        left = self._expire_after.get(endpoint)
        if left is None:
            return
        if left <= 1:
            del self._expire_after[endpoint]
            self.expire_tokens()
        else:
            self._expire_after[endpoint] = left - 1

    def _error(self, errcode: int, detail: str = "") -> web.Response:
        message = detail or ERRMSG.get(errcode, "error")
        if errcode == 47003 and detail:
            message = f"argument invalid! {detail}"
        rid = f"{secrets.token_hex(4)}-{secrets.token_hex(4)}-{secrets.token_hex(4)}"
        return web.json_response({"errcode": errcode, "errmsg": f"{message} rid: {rid}"}, dumps=_dumps)

    def _next_msgid(self) -> int:
        self._msgid += 1
        return self._msgid

    # ------------------------------------------------------------------ tokens

    def _check_app(self, appid: object, secret: object) -> RegisteredApp:
        if not appid:
            raise _Refusal(41002)
        app = self.apps.get(appid) if isinstance(appid, str) else None
        if app is None:
            raise _Refusal(40013)
        if not secret:
            raise _Refusal(41004)
        if not isinstance(secret, str) or not secrets.compare_digest(secret.encode(), app.secret.encode()):
            raise _Refusal(40125)
        return app

    def _issue(self, appid: str) -> IssuedToken:
        now = self.clock()
        token = IssuedToken(token=f"{int(now) % 100}_{secrets.token_urlsafe(96)}", appid=appid, issued_at=now,
                            expires_at=now + self.token_lifetime)
        self.tokens[token.token] = token
        self._current[appid] = token
        return token

    def _check_token(self, token: str | None, kind: str) -> str:
        if not token:
            raise _Refusal(41001)
        issued = self.tokens.get(token)
        if issued is None or issued.revoked:
            raise _Refusal(40001)
        if issued.expires_at <= self.clock():
            raise _Refusal(42001)
        if self.apps[issued.appid].kind != kind:
            raise _Refusal(48001)
        return issued.appid

    def _stable_token(self, call: Call, query: Mapping[str, str], body: dict[str, Any]) -> dict[str, Any]:
        app = self._check_app(body.get("appid"), body.get("secret"))
        if body.get("grant_type") != "client_credential":
            raise _Refusal(40002)
        force = body.get("force_refresh", False)
        if not isinstance(force, bool):
            raise _Refusal(47001)
        now = self.clock()
        current = self._current.get(app.appid)
        usable = current is not None and not current.revoked and current.expires_at > now
        if force:
            recently = now - self._last_forced.get(app.appid, float("-inf")) < self.force_refresh_interval
            if not (usable and recently):
                for token in self.tokens.values():
                    if token.appid == app.appid:
                        token.revoked = True
                current = self._issue(app.appid)
                self._last_forced[app.appid] = now
        elif not usable or current.expires_at - now < self.renew_window:
            # The old token is not revoked: it works until it runs out, so callers overlap.
            current = self._issue(app.appid)
        return {"access_token": current.token, "expires_in": max(1, int(current.expires_at - now))}

    # ------------------------------------------------------------------ mini-program

    def _jscode2session(self, call: Call, query: Mapping[str, str], body: dict[str, Any]) -> dict[str, Any]:
        app = self._check_app(query.get("appid"), query.get("secret"))
        if query.get("grant_type") != "authorization_code":
            raise _Refusal(40002)
        code_text = query.get("js_code")
        if not code_text:
            raise _Refusal(41008)
        code = self._login_codes.get(code_text)
        now = self.clock()
        if code is None or code.appid != app.appid or now - code.issued_at > self.code_lifetime:
            raise _Refusal(40029)
        if code.used:
            raise _Refusal(40163)
        recent = self._logins[(app.appid, code.openid)]
        while recent and now - recent[0] >= 60:
            recent.popleft()
        if len(recent) >= CODE2SESSION_PER_USER_PER_MINUTE:
            raise _Refusal(45011)
        recent.append(now)
        code.used = True
        answer = {"openid": code.openid, "session_key": code.session_key}
        unionid = code.unionid or self._unionid(app.appid, code.openid)
        if unionid:
            answer["unionid"] = unionid
        return answer

    def _phone_number(self, call: Call, query: Mapping[str, str], body: dict[str, Any]) -> dict[str, Any]:
        code_text = body.get("code")
        if not code_text:
            raise _Refusal(41008)
        code = self._phone_codes.get(code_text) if isinstance(code_text, str) else None
        now = self.clock()
        if code is None or code.used or code.appid != call.appid or now - code.issued_at > self.code_lifetime:
            raise _Refusal(40029)
        code.used = True
        full = code.phone if code.country_code == "86" else f"+{code.country_code} {code.phone}"
        return {"errcode": 0, "errmsg": "ok", "phone_info": {
            "phoneNumber": full, "purePhoneNumber": code.phone, "countryCode": code.country_code,
            "watermark": {"timestamp": int(now), "appid": call.appid},
        }}

    def _subscribe_send(self, call: Call, query: Mapping[str, str], body: dict[str, Any]) -> dict[str, Any]:
        touser, template_id = self._addressing(call.appid, body)
        page = body.get("page")
        if page is not None and not isinstance(page, str):
            raise _Refusal(47001)
        data = self._data(call.appid, template_id, body.get("data"), typed_only=True)
        if (touser, template_id) in self._refusals or (touser, None) in self._refusals:
            raise _Refusal(43101)
        msgid = self._next_msgid()
        self.sent.append(SentMessage(kind="subscribe", appid=call.appid, touser=touser, msgid=msgid,
                                     template_id=template_id, data=data, page=page or None, at=self.clock()))
        return {"errcode": 0, "errmsg": "ok", "msgid": msgid}

    # ------------------------------------------------------------------ official account

    def _template_send(self, call: Call, query: Mapping[str, str], body: dict[str, Any]) -> dict[str, Any]:
        touser, template_id = self._addressing(call.appid, body)
        url = body.get("url")
        miniprogram = body.get("miniprogram")
        client_msg_id = body.get("client_msg_id")
        if (url is not None and not isinstance(url, str)) or (
                client_msg_id is not None and not isinstance(client_msg_id, str)):
            raise _Refusal(47001)
        mp_appid = page = None
        if miniprogram is not None:
            if not isinstance(miniprogram, dict) or not isinstance(miniprogram.get("appid"), str):
                raise _Refusal(47001)
            mp_appid, page = miniprogram["appid"], miniprogram.get("pagepath")
            if mp_appid not in self.apps or self.apps[mp_appid].kind != "mp":
                raise _Refusal(40013)
        data = self._data(call.appid, template_id, body.get("data"), typed_only=False)
        if touser in self._unfollowed:
            raise _Refusal(43004)
        now = self.clock()
        if client_msg_id:
            key = (call.appid, touser, client_msg_id)
            seen = self._client_msg_ids.get(key)
            if seen is not None and now - seen[0] < CLIENT_MSG_ID_WINDOW:
                return {"errcode": 0, "errmsg": "ok", "msgid": seen[1]}
        msgid = self._next_msgid()
        if client_msg_id:
            self._client_msg_ids[(call.appid, touser, client_msg_id)] = (now, msgid)
        self.sent.append(SentMessage(kind="template", appid=call.appid, touser=touser, msgid=msgid,
                                     template_id=template_id, data=data, url=url, page=page,
                                     miniprogram_appid=mp_appid, client_msg_id=client_msg_id, at=now))
        return {"errcode": 0, "errmsg": "ok", "msgid": msgid}

    def _custom_send(self, call: Call, query: Mapping[str, str], body: dict[str, Any]) -> dict[str, Any]:
        touser = body.get("touser")
        if not isinstance(touser, str) or not touser:
            raise _Refusal(40003)
        if body.get("msgtype") != "text":
            raise _Refusal(40008)
        text = body.get("text")
        content = text.get("content") if isinstance(text, dict) else None
        if not isinstance(content, str) or not content:
            raise _Refusal(44004)
        if touser in self._unfollowed:
            raise _Refusal(45015)
        msgid = self._next_msgid()
        self.sent.append(SentMessage(kind="custom", appid=call.appid, touser=touser, msgid=msgid, text=content,
                                     at=self.clock()))
        return {"errcode": 0, "errmsg": "ok"}

    def _user_info(self, call: Call, query: Mapping[str, str], body: dict[str, Any]) -> dict[str, Any]:
        openid = query.get("openid")
        if not openid or (call.appid, openid) not in self._users:
            raise _Refusal(40003)
        if openid in self._unfollowed:  # WeChat tells only this of someone who left
            return {"subscribe": 0, "openid": openid}
        answer: dict[str, Any] = {"subscribe": 1, "openid": openid, "language": "zh_CN",
                                  "subscribe_time": int(self.clock()), "remark": "", "groupid": 0,
                                  "tagid_list": [], "subscribe_scene": "ADD_SCENE_QR_CODE"}
        unionid = self._unionid(call.appid, openid)
        if unionid:
            answer["unionid"] = unionid
        return answer

    # ------------------------------------------------------------------ message checks

    def _addressing(self, appid: str, body: dict[str, Any]) -> tuple[str, str]:
        touser, template_id = body.get("touser"), body.get("template_id")
        if not isinstance(touser, str) or not touser:
            raise _Refusal(40003)
        if not isinstance(template_id, str) or not template_id:
            raise _Refusal(40037)
        templates = self._templates.get(appid)
        if templates and template_id not in templates:
            raise _Refusal(40037)
        return touser, template_id

    def _data(self, appid: str, template_id: str, data: object, *, typed_only: bool) -> dict[str, str]:
        if not isinstance(data, dict) or not data:
            raise _Refusal(47003, "data is empty")
        values: dict[str, str] = {}
        for key, item in data.items():
            value = item.get("value") if isinstance(item, dict) else None
            if value is None or value == "":
                raise _Refusal(47003, f"data.{key}.value is empty")
            if not isinstance(value, str) or not field_value_ok(key, value, typed_only=typed_only):
                raise _Refusal(47003, f"data.{key}.value invalid")
            values[key] = value
        keys = self._templates.get(appid, {}).get(template_id)
        missing = sorted(keys - values.keys()) if keys is not None else []
        if missing:
            raise _Refusal(47003, f"data.{missing[0]}.value is empty")
        return values


# ---------------------------------------------------------------------- WeChat's field rules

_KEY = re.compile(r"(?P<type>[a-z_]*[a-z])(?P<n>\d*)")
_CURRENCY = "¥￥$€£"
_AMOUNT = re.compile(rf"[{_CURRENCY}]?(?P<int>\d+)(?:\.(?P<frac>\d+))?元?")
_NUMBER = re.compile(r"(?P<int>\d+)(?:\.(?P<frac>\d+))?")
_DATE_CN = re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日")
_DATE_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_TIME = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")


def _is_han(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf"


def _is_symbol(ch: str) -> bool:
    return unicodedata.category(ch)[0] in ("P", "S")


def _date_ok(text: str) -> bool:
    match = _DATE_CN.fullmatch(text) or _DATE_ISO.fullmatch(text)
    if not match:
        return False
    try:
        dt.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return False
    return True


def _time_ok(text: str) -> bool:
    match = _TIME.fullmatch(text)
    return bool(match) and int(match[1]) < 24 and int(match[2]) < 60 and int(match[3] or 0) < 60


def _moment_ok(text: str, *, date_required: bool) -> bool:
    """``2019年10月1日``, ``2019-10-01``, ``15:01``, or a date and a time separated by a space;
    two of them joined by ``~`` make a period."""
    parts = text.split("~")
    if len(parts) > 2:
        return False
    for part in parts:
        words = part.strip().split(" ")
        if len(words) == 2:
            ok = _date_ok(words[0]) and _time_ok(words[1])
        elif len(words) == 1:
            ok = _date_ok(words[0]) if date_required else (_time_ok(words[0]) or _date_ok(words[0]))
        else:
            ok = False
        if not ok:
            return False
    return True


def _digits(match: re.Match[str]) -> int:
    return len(match["int"]) + len(match["frac"] or "")


def field_value_ok(key: str, value: str, *, typed_only: bool = True) -> bool:
    """Whether WeChat accepts ``value`` for the data key ``key`` (its type is the key's name
    without the number: ``thing1`` → ``thing``), as subscribe messages check them.

    ``typed_only`` refuses keys of no known type (subscribe messages); template messages also
    have free-text keys (``keyword1``, ``first``, ``remark``).
    """
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        return False
    match = _KEY.fullmatch(key)
    kind = match["type"] if match else ""
    if kind == "thing":
        return 1 <= len(value) <= 20
    if kind == "number":
        number = _NUMBER.fullmatch(value)
        return bool(number) and _digits(number) <= 32
    if kind == "letter":
        return 1 <= len(value) <= 32 and value.isascii() and value.isalpha()
    if kind == "symbol":
        return 1 <= len(value) <= 5 and all(_is_symbol(ch) for ch in value)
    if kind == "character_string":
        return 1 <= len(value) <= 32 and value.isascii() and all(ch.isalnum() or _is_symbol(ch) for ch in value)
    if kind == "time":
        return _moment_ok(value, date_required=False)
    if kind == "date":
        return _moment_ok(value, date_required=True)
    if kind == "amount":
        amount = _AMOUNT.fullmatch(value)
        return bool(amount) and _digits(amount) <= 10
    if kind == "phone_number":
        return (1 <= len(value) <= 17 and any(ch.isdigit() for ch in value)
                and all(ch.isdigit() or ch in "+-() " for ch in value))
    if kind == "car_number":
        inner = value[1:-1]
        return (2 <= len(value) <= 8 and all(ch.isascii() and ch.isalnum() for ch in inner)
                and all(_is_han(ch) or (ch.isascii() and ch.isalnum()) for ch in (value[0], value[-1])))
    if kind == "name":
        if any(ch.isdigit() for ch in value):
            return False
        if any(_is_han(ch) for ch in value):
            # Mixed Chinese and Latin counts as a Chinese name: 10 characters at most.
            return len(value) <= 10 and all(_is_han(ch) or ch.isalpha() or ch in "·" for ch in value)
        return (len(value) <= 20 and any(ch.isalpha() for ch in value)
                and all((ch.isascii() and ch.isalpha()) or ch == " " or _is_symbol(ch) for ch in value))
    if kind == "phrase":
        return 1 <= len(value) <= 5 and all(_is_han(ch) for ch in value)
    return not typed_only


def _dumps(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False)
