"""Mini-program sessions: a wx.login code becomes a signed, expiring session token.

The token is ``v1.<identity id>.<session id>.<expiry>.<signature>`` with
``signature = base64url(HMAC-SHA256(secret key, "mp-session:v1:<identity id>:<session id>:<expiry>"))``.
The ``mp-session`` prefix keeps these signatures apart from the other schemes' of
:mod:`settlement.signing` (same key). The token carries no secret.

A token is accepted while its signature holds, its expiry is ahead and its session is open.
Whether a session is open has two records:

* the database's ``mp_session`` row (:class:`~settlement.models.MiniProgramSession`), written at
  login and closed at logout — the durable record, asked when Redis has forgotten a session
  or does not answer;
* Redis's ``<prefix>mp-session:<session id>``, expiring with the token: a JSON object while the
  session is open (with WeChat's ``session_key``, which never leaves Redis or the server), the
  word ``closed`` once it is closed. Requests read only this while it is there; a session Redis
  has forgotten (restarted, evicted) is looked up in the database and remembered again with
  ``SET NX``, so a logout's ``closed`` written meanwhile is never overwritten.

A logout writes the database first and Redis second and is done only when both are written, so a
logged-out token is refused whichever record a process reads: by Redis while it answers, by the
database while it does not. While Redis does not answer, logins still work (the session_key is
then not kept, with a warning: nothing here uses it after login) and a logout answers
:class:`~settlement.infra.redis_client.RedisUnavailable` after closing the database's record, to be
repeated once Redis answers (until then a process that reads Redis may still accept the
token: the client was told the logout did not happen).

Exceptions::

    settlement.errors.DomainError
    └── InvalidToken          forged, malformed, expired or closed session token (answered 401)
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
from dataclasses import dataclass

import redis.asyncio as redis_asyncio
from tortoise.exceptions import IntegrityError

from settlement.owners import bindings
from settlement.owners import principal_cache
from settlement.errors import DomainError
from settlement.signing import SESSION_TOKEN, whole_number
from settlement.models import MiniProgramSession as SessionRecord
from settlement.models import WechatIdentity
from settlement.ports.wechat import MiniProgramSession, WechatApi
from settlement.infra.redis_client import Namespace, RedisGuard, RedisUnavailable
from settlement.clock import UTC, utc_now

log = logging.getLogger("pvsettle.sessions")

VERSION = "v1"  # the token's first part; settlement.signing.SESSION_TOKEN signs under it too
MAX_TOKEN_LENGTH = 200
CLOSED = b"closed"  # the Redis value of a session that was logged out


class InvalidToken(DomainError):
    code = "invalid_token"


@dataclass(frozen=True)
class TokenClaims:
    identity_id: int
    session_id: str
    expires_at: int  # [unix s]


def sign_token(claims: TokenClaims, secret_key: str) -> str:
    if len(secret_key) < 32:
        raise ValueError("session tokens need a secret key of 32+ characters")
    sig = SESSION_TOKEN.sign(secret_key, claims.identity_id, claims.session_id, claims.expires_at)
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
    identity_id, expires_at = whole_number(ident), whole_number(exp)
    if identity_id is None or expires_at is None or not session_id.replace("-", "").replace("_", "").isalnum():
        raise refused
    if not SESSION_TOKEN.matches(sig, secret_key, identity_id, session_id, expires_at):
        raise refused
    if SESSION_TOKEN.expired(expires_at, now):
        raise InvalidToken("the session has expired: log in again", code="token_expired")
    return TokenClaims(identity_id, session_id, expires_at)


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


async def open_session(api: WechatApi, client: redis_asyncio.Redis, guard: RedisGuard, ns: Namespace, code: str,
                       *, app_id: str, secret_key: str, ttl_s: int, now: dt.datetime | None = None) -> OpenedSession:
    """Log a mini-program user in with their wx.login code.

    Raises the WeChat port's errors (InvalidCode, RateLimited, RiskyUser, WechatUnavailable)
    unchanged, for the API to answer each in its own way. Works without Redis (see the module).
    """
    wx = await api.code2session(code)
    identity = await identity_for(app_id, wx)
    if identity.unionid:
        # the same person bound in the official account is bound here too (and the other way round)
        linked = await bindings.link_by_unionid(identity.id)
        if linked:
            await principal_cache.invalidate(client, ns, *linked)
            await identity.refresh_from_db(fields=["owner_id"])
    now = now or utc_now()
    session_id = secrets.token_urlsafe(18)
    expires = int(now.timestamp()) + ttl_s
    expires_at = dt.datetime.fromtimestamp(expires, UTC)
    await SessionRecord.create(session_id=session_id, identity_id=identity.id, expires_at=expires_at)
    try:
        with guard.using():
            await client.set(session_key_name(ns, session_id),
                             json.dumps({"identity_id": identity.id, "session_key": wx.session_key}), ex=ttl_s)
    except RedisUnavailable as exc:
        log.warning("login of identity %s without Redis (%s): WeChat's session_key is not kept", identity.id, exc)
    token = sign_token(TokenClaims(identity.id, session_id, expires), secret_key)
    return OpenedSession(token=token, expires_at=expires_at, identity=identity)


async def open_in_database(claims: TokenClaims, now: float) -> bool:
    """Whether the database holds this session open (logged in, not logged out, not expired)."""
    return await SessionRecord.filter(
        session_id=claims.session_id, identity_id=claims.identity_id, closed_at__isnull=True,
        expires_at__gt=dt.datetime.fromtimestamp(now, UTC)).exists()


async def remember(client: redis_asyncio.Redis, ns: Namespace, claims: TokenClaims, is_open: bool, now: float) -> None:
    """Put the database's answer about a session Redis had forgotten back into Redis.

    ``NX``: a ``closed`` written by a logout since the database was read stays.
    """
    value = json.dumps({"identity_id": claims.identity_id}).encode() if is_open else CLOSED
    await client.set(session_key_name(ns, claims.session_id), value, nx=True,
                     ex=max(1, int(claims.expires_at - now)))


async def purge_expired(now: dt.datetime) -> int:
    """Delete the records of sessions past their expiry (their tokens say so themselves); how many."""
    return await SessionRecord.filter(expires_at__lte=now).delete()


async def close_session(client: redis_asyncio.Redis, guard: RedisGuard, ns: Namespace, claims: TokenClaims,
                        *, now: float) -> None:
    """Log out: the session is closed in the database, then in Redis (until the token's expiry).

    Raises RedisUnavailable when Redis could not be written; the database's record is closed by
    then, so processes serving without Redis refuse the token already, and calling this again
    once Redis answers finishes the logout.
    """
    await SessionRecord.filter(session_id=claims.session_id, identity_id=claims.identity_id,
                               closed_at__isnull=True).update(closed_at=dt.datetime.fromtimestamp(now, UTC))
    with guard.using():
        await client.set(session_key_name(ns, claims.session_id), CLOSED, ex=max(1, int(claims.expires_at - now)))
