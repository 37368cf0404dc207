"""The WeChat API port over aiohttp: access tokens shared through Redis, the mini-program and
official-account calls pvsettle makes, and WeChat's answers turned into the port's exceptions.

Access tokens come from ``POST /cgi-bin/stable_token``, one per app (mini-program ``"mp"``,
official account ``"oa"``), and are kept in Redis under ``ns.key("wechat", "token", appid)`` so
every process uses the same one. A refetch can invalidate the token other processes hold, so a
fetch happens only under a Redis lock (``ns.key("wechat", "token-lock", appid)``) and, inside one
process, behind an asyncio lock, so that a crowd of calls makes one request:

- cold (no token, or it has run out): wait for the lock, read again, fetch if still needed;
- due for renewal (less than ``renew_before`` left): whoever gets the lock at once renews in
  normal mode (WeChat hands out a new token in the last minutes while the old one keeps working);
  everyone else goes on with the current token;
- refused (40001, 42001, 40014): take the lock; if the token in Redis is still the refused one,
  fetch with ``force_refresh`` (which invalidates it for everybody), otherwise use the one another
  caller already fetched; then retry the call once.

A failing token fetch is retried with exponential backoff when the failure is transient.

Secrets, session keys and access tokens travel only in requests and in Redis: they are never
logged, never put in an exception message, and client exceptions (whose text can carry the
request URL with its query) are not chained to the errors raised here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import redis.asyncio as redis_asyncio
from redis.exceptions import LockError, RedisError

from settlement.ports.wechat import (
    MiniProgramSession,
    OfficialAccountUser,
    RateLimited,
    TokenExpired,
    WechatError,
    WechatUnavailable,
    error_for,
)
from settlement.infra.redis_client import Namespace

log = logging.getLogger("pvsettle.wechat")

# Paths of WeChat's API, relative to the base URL (PVSETTLE_WECHAT_API_BASE).
STABLE_TOKEN = "/cgi-bin/stable_token"
JSCODE2SESSION = "/sns/jscode2session"
GET_PHONE_NUMBER = "/wxa/business/getuserphonenumber"
SUBSCRIBE_SEND = "/cgi-bin/message/subscribe/send"
TEMPLATE_SEND = "/cgi-bin/message/template/send"
CUSTOM_SEND = "/cgi-bin/message/custom/send"
USER_INFO = "/cgi-bin/user/info"

APPS = ("mp", "oa")


@dataclass(frozen=True)
class AppCredentials:
    """One WeChat app's AppID and AppSecret (the secret is never printed)."""

    appid: str
    secret: str = field(repr=False)


@dataclass(frozen=True)
class _CachedToken:
    token: str
    expires_at: float  # [s] since the epoch, by the adapter's clock


class AiohttpWechatApi:
    """The WeChat API port on the app's one ``aiohttp.ClientSession``.

    Parameters
    ----------
    session : aiohttp.ClientSession
        The shared outbound session (not closed here).
    redis : redis.asyncio.Redis
        Where tokens are shared between processes (the real server or the emulation).
    ns : Namespace
        This deployment's Redis key namespace.
    base_url : str
        WeChat's API host, e.g. ``https://api.weixin.qq.com`` or a fake's URL.
    mp_appid, mp_secret : str
        The mini-program's AppID and AppSecret.
    oa_appid, oa_secret : str
        The official account's AppID and AppSecret.
    call_timeout : float, default 5 [s]
        Longest wait for one HTTP call, connecting included.
    renew_before : float, default 300 [s]
        Renew a token when less than this is left (WeChat overlaps old and new tokens for 5 min).
    refresh_attempts : int, default 3
        Tries of a token fetch that fails transiently (5xx, timeout, -1, 45011).
    backoff : float, default 0.2 [s]
        First wait between fetch tries; it doubles each time (with jitter).
    lock_timeout : float, optional [s]
        How long the token lock is held at most; by default long enough for every fetch try.
    token_memo : float, default 5 [s]
        How long a process trusts the token it last read from Redis before reading it again
        (0 = read every time). A token another process replaced meanwhile is refused by WeChat
        and then picked up from Redis without a new fetch.
    miniprogram_state : str, optional
        ``developer``, ``trial`` or ``formal`` (WeChat's default) for subscribe-message links.
    clock : callable, default time.time
        Seconds since the epoch; tests pass a settable one.
    """

    def __init__(self, session: aiohttp.ClientSession, redis: redis_asyncio.Redis, ns: Namespace, *,
                 base_url: str, mp_appid: str, mp_secret: str, oa_appid: str, oa_secret: str,
                 call_timeout: float = 5.0, renew_before: float = 300.0, refresh_attempts: int = 3,
                 backoff: float = 0.2, lock_timeout: float | None = None, token_memo: float = 5.0,
                 miniprogram_state: str | None = None, clock: Callable[[], float] = time.time):
        if refresh_attempts < 1:
            raise ValueError("refresh_attempts must be at least 1")
        self.session = session
        self.redis = redis
        self.ns = ns
        self.base_url = base_url.rstrip("/")
        self.apps = {"mp": AppCredentials(mp_appid, mp_secret), "oa": AppCredentials(oa_appid, oa_secret)}
        self.call_timeout = call_timeout
        self.renew_before = renew_before
        self.refresh_attempts = refresh_attempts
        self.backoff = backoff
        # Every fetch try may use its whole timeout and every backoff wait: the lock must outlive
        # them all, or a second process would fetch (and invalidate) while the first still works.
        worst = refresh_attempts * call_timeout + backoff * (2 ** refresh_attempts)
        self.lock_timeout = lock_timeout if lock_timeout is not None else worst + 5.0
        self.token_memo = token_memo
        self.miniprogram_state = miniprogram_state
        self.clock = clock
        self._memo: dict[str, tuple[_CachedToken, float]] = {}  # appid → (token, when read)
        self._timeout = aiohttp.ClientTimeout(total=call_timeout, connect=min(3.0, call_timeout))
        self._local_locks: dict[str, asyncio.Lock] = {}

    @classmethod
    def from_settings(cls, settings: Any, session: aiohttp.ClientSession, redis: redis_asyncio.Redis,
                      ns: Namespace, **options: Any) -> AiohttpWechatApi:
        """Build from anything with the Settings attributes (``wechat_api_base``, ``mp_appid``,
        ``mp_secret``, ``oa_appid``, ``oa_secret``); ``options`` go to the constructor and win
        over the settings."""
        given = {"base_url": settings.wechat_api_base, "mp_appid": settings.mp_appid,
                 "mp_secret": settings.mp_secret, "oa_appid": settings.oa_appid, "oa_secret": settings.oa_secret}
        return cls(session, redis, ns, **{**given, **options})

    # ------------------------------------------------------------------ the port

    async def access_token(self, app: str = "mp") -> str:
        """A valid access token of ``app`` (``"mp"`` or ``"oa"``), fetched only when needed."""
        creds = self._credentials(app)
        now = self.clock()
        memo = self._memo.get(creds.appid)
        if memo is not None and now - memo[1] < self.token_memo and memo[0].expires_at - now > self.renew_before:
            return memo[0].token
        cached = await self._read_token(creds.appid)
        if cached is not None and cached.expires_at - now > self.renew_before:
            return cached.token
        if cached is not None and cached.expires_at > now:
            return await self._renew_early(creds, cached)
        return await self._renew(creds, stale=cached.token if cached else None, force=False)

    async def code2session(self, code: str) -> MiniProgramSession:
        """The mini-program session behind a ``wx.login`` code.

        Raises
        ------
        InvalidCode
            40029 (unknown or expired code), 40163 (code already used).
        RateLimited, RiskyUser, WechatUnavailable
            45011, 40226, and transient failures.
        """
        creds = self.apps["mp"]
        data = await self._http("GET", JSCODE2SESSION, endpoint="jscode2session", params={
            "appid": creds.appid, "secret": creds.secret, "js_code": code,
            "grant_type": "authorization_code",
        })
        openid, session_key = data.get("openid"), data.get("session_key")
        if not isinstance(openid, str) or not openid or not isinstance(session_key, str) or not session_key:
            raise WechatUnavailable(-1, "jscode2session answered without openid or session_key")
        unionid = data.get("unionid")
        return MiniProgramSession(openid=openid, session_key=session_key,
                                  unionid=unionid if isinstance(unionid, str) and unionid else None)

    async def phone_number(self, code: str) -> str:
        """The phone number (without country code) behind a ``getPhoneNumber`` code."""
        data = await self.request("mp", "POST", GET_PHONE_NUMBER, json_body={"code": code},
                                  endpoint="getuserphonenumber")
        info = data.get("phone_info")
        number = info.get("purePhoneNumber") if isinstance(info, dict) else None
        if not isinstance(number, str) or not number:
            raise WechatUnavailable(-1, "getuserphonenumber answered without phone_info.purePhoneNumber")
        return number

    async def send_subscribe_message(self, openid: str, template_id: str, data: Mapping[str, str],
                                     page: str | None = None) -> None:
        """Send a mini-program subscribe message; ``data`` maps keys (``thing1``…) to values."""
        body: dict[str, Any] = {"touser": openid, "template_id": template_id, "data": _values(data)}
        if page:
            body["page"] = page
        if self.miniprogram_state:
            body["miniprogram_state"] = self.miniprogram_state
        await self.request("mp", "POST", SUBSCRIBE_SEND, json_body=body, endpoint="subscribe_send")

    async def send_template_message(self, openid: str, template_id: str, data: Mapping[str, str],
                                    url: str | None = None, miniprogram_page: str | None = None,
                                    *, client_msg_id: str | None = None) -> None:
        """Send an official-account template message.

        ``miniprogram_page`` opens that page of our mini-program; ``client_msg_id`` makes WeChat
        send one message per (openid, client_msg_id) for 10 minutes, so a retry after a timeout
        cannot deliver twice.
        """
        body: dict[str, Any] = {"touser": openid, "template_id": template_id, "data": _values(data)}
        if url:
            body["url"] = url
        if miniprogram_page:
            body["miniprogram"] = {"appid": self.apps["mp"].appid, "pagepath": miniprogram_page}
        if client_msg_id:
            body["client_msg_id"] = client_msg_id
        await self.request("oa", "POST", TEMPLATE_SEND, json_body=body, endpoint="template_send")

    async def send_customer_service_text(self, openid: str, text: str) -> None:
        """Send a customer-service text message from the official account (48 h after the
        user last wrote to it)."""
        body = {"touser": openid, "msgtype": "text", "text": {"content": text}}
        await self.request("oa", "POST", CUSTOM_SEND, json_body=body, endpoint="custom_send")

    async def user_info(self, openid: str) -> OfficialAccountUser:
        """The official account's user/info: whether ``openid`` follows, and their unionid when
        the account is bound to an open-platform account (the key that links them to the same
        person in the mini-program)."""
        data = await self.request("oa", "GET", USER_INFO, params={"openid": openid, "lang": "zh_CN"},
                                  endpoint="user_info")
        unionid = data.get("unionid")
        return OfficialAccountUser(openid=openid, subscribed=data.get("subscribe") == 1,
                                   unionid=unionid if isinstance(unionid, str) and unionid else None)

    # ------------------------------------------------------------------ authenticated calls

    async def request(self, app: str, method: str, path: str, *, params: Mapping[str, str] | None = None,
                      json_body: object = None, endpoint: str | None = None) -> dict[str, Any]:
        """Call any WeChat API that takes ``access_token`` in the query, as ``app``.

        A refused token (40001, 42001, 40014) is force-refreshed once and the call retried once;
        other errcodes raise the port's exception. Returns the decoded JSON answer.
        """
        endpoint = endpoint or path
        token = await self.access_token(app)
        try:
            return await self._http(method, path, endpoint=endpoint,
                                    params={**(params or {}), "access_token": token}, json_body=json_body)
        except TokenExpired as exc:
            log.info("wechat access token refused, refreshing",
                     extra={"wechat_app": app, "endpoint": endpoint, "errcode": exc.errcode})
        token = await self._renew(self._credentials(app), stale=token, force=True)
        return await self._http(method, path, endpoint=endpoint,
                                params={**(params or {}), "access_token": token}, json_body=json_body)

    # ------------------------------------------------------------------ tokens

    def _credentials(self, app: str) -> AppCredentials:
        try:
            return self.apps[app]
        except KeyError:
            raise ValueError(f"unknown WeChat app {app!r} (expected one of {APPS})") from None

    def _token_key(self, appid: str) -> str:
        return self.ns.key("wechat", "token", appid)

    def _lock(self, appid: str, **options: Any):
        return self.redis.lock(self.ns.key("wechat", "token-lock", appid), timeout=self.lock_timeout,
                               sleep=0.05, **options)

    async def _read_token(self, appid: str) -> _CachedToken | None:
        try:
            raw = await self.redis.get(self._token_key(appid))
        except RedisError as exc:
            raise WechatUnavailable(-1, f"token store unavailable ({type(exc).__name__})") from None
        try:
            stored = json.loads(raw) if raw is not None else None
            cached = _CachedToken(str(stored["access_token"]), float(stored["expires_at"])) if stored else None
        except (ValueError, KeyError, TypeError):
            # A damaged entry is as good as none: the next fetch overwrites it.
            log.warning("unreadable wechat token entry in redis", extra={"appid": appid})
            cached = None
        if cached is None:
            self._memo.pop(appid, None)
        else:
            self._memo[appid] = (cached, self.clock())
        return cached

    async def _store_token(self, appid: str, token: str, expires_in: float) -> None:
        expires_at = self.clock() + expires_in
        entry = json.dumps({"access_token": token, "expires_at": expires_at})
        try:
            await self.redis.set(self._token_key(appid), entry, px=max(1, int(expires_in * 1000)))
        except RedisError as exc:
            raise WechatUnavailable(-1, f"token store unavailable ({type(exc).__name__})") from None
        self._memo[appid] = (_CachedToken(token, expires_at), self.clock())

    async def _renew_early(self, creds: AppCredentials, current: _CachedToken) -> str:
        """Renew a token that still works, if no one else is at it; otherwise keep using it."""
        lock = self._lock(creds.appid)
        try:
            acquired = await lock.acquire(blocking=False)
        except RedisError as exc:
            log.warning("wechat token lock unavailable, current token kept",
                        extra={"appid": creds.appid, "error": type(exc).__name__})
            return current.token
        if not acquired:
            return current.token
        try:
            again = await self._read_token(creds.appid)
            if again is not None and again.expires_at - self.clock() > self.renew_before:
                return again.token
            try:
                return await self._fetch(creds, force=False)
            except WechatError as exc:
                # The current token works for a few more minutes; a later call tries again.
                log.warning("early wechat token renewal failed, current token kept",
                            extra={"appid": creds.appid, "errcode": exc.errcode})
                return current.token
        finally:
            await self._release(lock, creds.appid)

    async def _renew(self, creds: AppCredentials, *, stale: str | None, force: bool) -> str:
        """Wait for the token lock and fetch a token unless someone replaced ``stale`` meanwhile."""
        local = self._local_locks.setdefault(creds.appid, asyncio.Lock())
        async with local:
            lock = self._lock(creds.appid, blocking_timeout=self.lock_timeout + self.call_timeout)
            try:
                acquired = await lock.acquire()
            except RedisError as exc:
                raise WechatUnavailable(-1, f"token lock unavailable ({type(exc).__name__})") from None
            if not acquired:
                raise WechatUnavailable(-1, "timed out waiting for the access token lock")
            try:
                current = await self._read_token(creds.appid)
                if current is not None and current.token != stale and current.expires_at > self.clock():
                    return current.token
                return await self._fetch(creds, force=force)
            finally:
                await self._release(lock, creds.appid)

    async def _release(self, lock, appid: str) -> None:
        try:
            await lock.release()
        except LockError:
            # It expired while we worked: another process may hold it now, which is harmless
            # because the token we stored is the newest one WeChat gave out.
            log.warning("wechat token lock expired before release", extra={"appid": appid})
        except RedisError as exc:
            log.warning("wechat token lock not released", extra={"appid": appid, "error": type(exc).__name__})

    async def _fetch(self, creds: AppCredentials, *, force: bool) -> str:
        """Fetch a token from stable_token (retrying transient failures) and store it."""
        body = {"grant_type": "client_credential", "appid": creds.appid, "secret": creds.secret,
                "force_refresh": force}
        for attempt in range(1, self.refresh_attempts + 1):
            try:
                data = await self._http("POST", STABLE_TOKEN, endpoint="stable_token", json_body=body)
                token, expires_in = data.get("access_token"), data.get("expires_in")
                if not isinstance(token, str) or not token or not isinstance(expires_in, int | float):
                    raise WechatUnavailable(-1, "stable_token answered without access_token or expires_in")
                break
            except (WechatUnavailable, RateLimited) as exc:
                if attempt == self.refresh_attempts:
                    raise
                delay = self.backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.0)
                log.warning("wechat token fetch failed, retrying",
                            extra={"appid": creds.appid, "errcode": exc.errcode, "attempt": attempt,
                                   "retry_in_s": round(delay, 3)})
                await asyncio.sleep(delay)
        await self._store_token(creds.appid, token, float(expires_in))
        log.info("wechat access token fetched",
                 extra={"appid": creds.appid, "force_refresh": force, "expires_in": expires_in})
        return token

    # ------------------------------------------------------------------ HTTP

    async def _http(self, method: str, path: str, *, endpoint: str, params: Mapping[str, str] | None = None,
                    json_body: object = None) -> dict[str, Any]:
        """One HTTP call; the JSON answer, or the port's exception for what went wrong."""
        headers = {}
        payload = None
        if json_body is not None:
            # As WeChat's own samples and wechatpy do: UTF-8 characters, not \\u escapes.
            payload = json.dumps(json_body, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json; charset=utf-8"
        started = time.perf_counter()
        try:
            async with self.session.request(method, self.base_url + path, params=params, data=payload,
                                            headers=headers, timeout=self._timeout) as response:
                status = response.status
                raw = await response.read()
        except TimeoutError:
            raise WechatUnavailable(-1, f"{endpoint}: no answer within {self.call_timeout:g} s") from None
        except aiohttp.ClientError as exc:
            # Not chained: some client errors print the URL, whose query holds secrets or tokens.
            raise WechatUnavailable(-1, f"{endpoint}: {type(exc).__name__}") from None
        elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
        if status >= 500 or status == 429:
            log.warning("wechat call failed", extra={"endpoint": endpoint, "status": status, "ms": elapsed_ms})
            raise WechatUnavailable(-1, f"{endpoint}: HTTP {status}")
        if status != 200:
            raise WechatError(-1, f"{endpoint}: HTTP {status}")
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise WechatUnavailable(-1, f"{endpoint}: answer is not JSON") from None
        if not isinstance(data, dict):
            raise WechatUnavailable(-1, f"{endpoint}: answer is not a JSON object")
        errcode = data.get("errcode", 0)
        if not isinstance(errcode, int):
            raise WechatUnavailable(-1, f"{endpoint}: errcode is not a number")
        log.debug("wechat call", extra={"endpoint": endpoint, "errcode": errcode, "ms": elapsed_ms})
        if errcode != 0:
            raise error_for(errcode, str(data.get("errmsg", "")))
        return data


def _values(data: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """``{"thing1": "text"}`` → WeChat's ``{"thing1": {"value": "text"}}``."""
    return {key: {"value": value} for key, value in data.items()}
