"""Mini-program sessions: a wx.login code becomes a signed, expiring session token.

The token is ``v1.<identity id>.<session id>.<expiry>.<signature>`` with
``signature = base64url(HMAC-SHA256(secret key, "mp-session:v1:<identity id>:<session id>:<expiry>"))``.
The ``mp-session`` prefix keeps these signatures apart from the e-bill links' (same key). The
token carries no secret: WeChat's ``session_key`` stays in Redis under the session id
(``<prefix>mp-session:<session id>``, expiring with the token) and never leaves the server.
A token is accepted while its signature holds, its expiry is ahead and its Redis entry exists,
so deleting the entry ends the session before its expiry (logout).

Exceptions::

    settlement.errors.DomainError
    └── InvalidToken          forged, malformed, expired or closed session token (answered 401)
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

import redis.asyncio as redis_asyncio
from tortoise.exceptions import IntegrityError

from settlement import bindings, principal_cache
from settlement.errors import DomainError
from settlement.models import WechatIdentity
from settlement.ports.wechat import MiniProgramSession, WechatApi
from settlement.redis_client import Namespace

UTC = dt.timezone.utc
VERSION = "v1"
MAX_TOKEN_LENGTH = 200


class InvalidToken(DomainError):
    code = "invalid_token"


@dataclass(frozen=True)
class TokenClaims:
    identity_id: int
    session_id: str
    expires_at: int  # [unix s]


def _signature(identity_id: int, session_id: str, expires_at: int, secret_key: str) -> str:
    message = f"mp-session:{VERSION}:{identity_id}:{session_id}:{expires_at}".encode()
    digest = hmac.new(secret_key.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign_token(claims: TokenClaims, secret_key: str) -> str:
    if len(secret_key) < 32:
        raise ValueError("session tokens need a secret key of 32+ characters")
    sig = _signature(claims.identity_id, claims.session_id, claims.expires_at, secret_key)
    return f"{VERSION}.{claims.identity_id}.{claims.session_id}.{claims.expires_at}.{sig}"


def verify_token(token: str, secret_key: str, *, now: float) -> TokenClaims:
    """The claims of a token whose signature matches and whose expiry is ahead of ``now`` [unix s].

    The signature is compared in constant time before the expiry is looked at, so a forger learns
    nothing from the answer.
    """
    refused = InvalidToken("the session token is not valid: log in again")
    if not secret_key or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        raise refused
    parts = token.split(".")
    if len(parts) != 5 or parts[0] != VERSION:
        raise refused
    _, ident, session_id, exp, sig = parts
    if not (ident.isdigit() and exp.isdigit() and len(ident) <= 12 and len(exp) <= 12
            and session_id.replace("-", "").replace("_", "").isalnum()):
        raise refused
    expected = _signature(int(ident), session_id, int(exp), secret_key)
    if not hmac.compare_digest(expected, sig):
        raise refused
    if int(exp) <= now:
        raise InvalidToken("the session has expired: log in again", code="token_expired")
    return TokenClaims(int(ident), session_id, int(exp))


def session_key_name(ns: Namespace, session_id: str) -> str:
    return ns.key("mp-session", session_id)


async def identity_for(app_id: str, session: MiniProgramSession) -> WechatIdentity:
    """The WechatIdentity of this mini-program user, made on their first login (unionid kept fresh)."""
    identity = await WechatIdentity.get_or_none(app_id=app_id, openid=session.openid)
    if identity is None:
        try:
            identity = await WechatIdentity.create(app_id=app_id, openid=session.openid, unionid=session.unionid)
        except IntegrityError:  # the same user logging in twice at once: the other request made it
            identity = await WechatIdentity.get(app_id=app_id, openid=session.openid)
    if session.unionid and identity.unionid != session.unionid:
        identity.unionid = session.unionid
        await identity.save(update_fields=["unionid"])
    return identity


@dataclass(frozen=True)
class OpenedSession:
    token: str
    expires_at: dt.datetime
    identity: WechatIdentity


async def open_session(api: WechatApi, client: redis_asyncio.Redis, ns: Namespace, code: str, *, app_id: str,
                       secret_key: str, ttl_s: int, now: dt.datetime | None = None) -> OpenedSession:
    """Log a mini-program user in with their wx.login code.

    Raises the WeChat port's errors (InvalidCode, RateLimited, RiskyUser, WechatUnavailable)
    unchanged, for the API to answer each in its own way.
    """
    wx = await api.code2session(code)
    identity = await identity_for(app_id, wx)
    if identity.unionid:
        # the same person bound in the official account is bound here too (and the other way round)
        linked = await bindings.link_by_unionid(identity.id)
        if linked:
            await principal_cache.invalidate(client, ns, *linked)
            await identity.refresh_from_db(fields=["owner_id"])
    now = now or dt.datetime.now(UTC)
    session_id = secrets.token_urlsafe(18)
    expires = int(now.timestamp()) + ttl_s
    await client.set(session_key_name(ns, session_id),
                     json.dumps({"identity_id": identity.id, "session_key": wx.session_key}), ex=ttl_s)
    token = sign_token(TokenClaims(identity.id, session_id, expires), secret_key)
    return OpenedSession(token=token, expires_at=dt.datetime.fromtimestamp(expires, UTC), identity=identity)


async def close_session(client: redis_asyncio.Redis, ns: Namespace, session_id: str) -> None:
    await client.delete(session_key_name(ns, session_id))
