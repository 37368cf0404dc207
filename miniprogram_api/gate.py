"""Admission of an authenticated request: rate limit, session, principal — in one Redis round trip
while Redis answers, from the database while it does not.

Per request the API must count it against the user's rate limit (a fixed one-minute window:
``INCR`` and an expiry set once), check that the session is still open (logout ends it), and know
who the user is and which plants they may see. A Lua script does the first two and fetches the
cached principal in one call; only on a cache miss is the database asked (one query,
:func:`settlement.owners.access.load_principal`) and the answer cached. A session Redis does not know
(it restarted) is looked up in the database and remembered (:mod:`settlement.owners.sessions`).

Cache correctness: the cached principal lives under ``mp-principal:<identity>:<generation>``; a
change to what the user may see (binding, unbinding, a grant redeemed or revoked — every path in
this API; anyone else changing them calls :func:`settlement.owners.principal_cache.invalidate` too)
increments ``mp-principal-gen:<identity>``, so the next request
reads a key that does not exist yet and loads afresh, in every process at once. A request that
loaded the old state just before the change writes under the old generation, which nobody reads
again. Changes made outside this API (staff moving a plant to another owner), and changes made
while Redis did not answer (the generation could not be moved), are seen within
:data:`PRINCIPAL_TTL_S`.

Without Redis (:class:`~settlement.infra.redis_client.RedisGuard` says it is down, or the script meets
an outage) the database answers: the session's ``mp_session`` row, the principal loaded afresh,
and the rate limit counted in this process (:class:`LocalWindows`) — the same limit per process,
so a user spread over N processes gets at most N times it while Redis is away. Counting in the
database instead would put a write on every request exactly when the service is already degraded.
"""

from __future__ import annotations

import json
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import redis.asyncio as redis_asyncio

from settlement.owners import sessions
from settlement.owners.access import Principal, Right, load_principal
from settlement.owners.principal_cache import generation_key, principal_key_prefix
from settlement.owners.principal_cache import invalidate as invalidate_in_redis
from settlement.infra.redis_client import WINDOW_S as RATE_WINDOW_S
from settlement.infra.redis_client import LocalWindows, Namespace, RedisGuard, RedisUnavailable, seconds_left

log = logging.getLogger("pvsettle.api")

PRINCIPAL_TTL_S = 10

# the session's record: 0 Redis does not know it, 1 open, 2 closed
_ADMIT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local s = redis.call('GET', KEYS[2])
local state = 0
if s == ARGV[3] then state = 2 elseif s then state = 1 end
local gen = redis.call('GET', KEYS[3]) or '0'
local cached = redis.call('GET', ARGV[2] .. gen)
return {n, state, gen, cached}
"""
_UNKNOWN, _OPEN, _CLOSED = 0, 1, 2


_scripts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Admission:
    count: int  # requests of this user in the current window, this one included
    retry_after: int  # [s] until the window ends
    session_alive: bool
    principal: Principal | None


_principal_key = principal_key_prefix
_generation_key = generation_key


def _dump(principal: Principal) -> str:
    return json.dumps({"o": principal.openid, "w": principal.owner_id,
                       "p": [[pid, int(right)] for pid, right in (principal.plants or {}).items()]})


def _load(identity_id: int, raw: bytes) -> Principal:
    data = json.loads(raw)
    return Principal(identity_id=identity_id, openid=data["o"], owner_id=data["w"],
                     plants={pid: Right(r) for pid, r in data["p"]})


async def admit(client: redis_asyncio.Redis, guard: RedisGuard, ns: Namespace, claims: sessions.TokenClaims,
                local: LocalWindows) -> Admission:
    """Count the request, check the session and find the principal (None: the identity is gone)."""
    now = time.time()
    identity_id = claims.identity_id
    window = int(now // RATE_WINDOW_S)
    script = _scripts.get(client)
    if script is None:
        script = _scripts[client] = client.register_script(_ADMIT)  # its SHA is computed once
    try:
        with guard.using():  # only Redis inside: a database error must not count as Redis down
            count, state, gen, cached = await script(
                keys=[ns.key("ratelimit", "identity", identity_id, window),
                      sessions.session_key_name(ns, claims.session_id), _generation_key(ns, identity_id)],
                args=[RATE_WINDOW_S + 1, _principal_key(ns, identity_id), sessions.CLOSED])
    except RedisUnavailable:  # the guard logs the outage, once
        return await _admit_from_database(claims, now, local)
    count = local.after_redis("identity", identity_id, now, int(count))
    retry_after = seconds_left(window, now)
    if state == _UNKNOWN:  # Redis forgot the session (restarted, say): the database knows
        is_open = await sessions.open_in_database(claims, now)
        await _cache(guard, lambda: sessions.remember(client, ns, claims, is_open, now), "session state")
        state = _OPEN if is_open else _CLOSED
    if state != _OPEN:
        return Admission(int(count), retry_after, False, None)
    if cached:
        return Admission(int(count), retry_after, True, _load(identity_id, cached))
    principal = await load_principal(identity_id)
    if principal is not None:
        gen_text = gen.decode() if isinstance(gen, bytes) else str(gen)
        await _cache(guard, lambda: client.set(_principal_key(ns, identity_id) + gen_text, _dump(principal),
                                               ex=PRINCIPAL_TTL_S), "principal")
    return Admission(int(count), retry_after, True, principal)


async def _admit_from_database(claims: sessions.TokenClaims, now: float, local: LocalWindows) -> Admission:
    count, retry_after = local.without_redis("identity", claims.identity_id, now)
    if not await sessions.open_in_database(claims, now):
        return Admission(count, retry_after, False, None)
    return Admission(count, retry_after, True, await load_principal(claims.identity_id))


async def _cache(guard: RedisGuard, write: Callable[[], Awaitable[object]], what: str) -> None:
    """A cache write that may meet an outage: the answer stands without it, the next request loads again."""
    try:
        with guard.using():
            await write()
    except RedisUnavailable as exc:
        log.info("%s not cached: %s", what, exc)


async def invalidate(client: redis_asyncio.Redis, guard: RedisGuard, ns: Namespace, *identity_ids: int) -> None:
    """What these users may see has changed (after the change committed).

    Without Redis the generation cannot move: the principals cached before the outage expire on
    their own within PRINCIPAL_TTL_S, and requests served without Redis read the database anyway.
    """
    try:
        with guard.using():
            await invalidate_in_redis(client, ns, *identity_ids)
    except RedisUnavailable as exc:
        log.warning("principal cache of identities %s not invalidated (%s): stale for at most %d s",
                    identity_ids, exc, PRINCIPAL_TTL_S)


__all__ = ["Admission", "LocalWindows", "admit", "invalidate"]
