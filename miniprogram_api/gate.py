"""Admission of an authenticated request, in one Redis round trip: rate limit, session, principal.

Per request the API must count it against the user's rate limit (a fixed one-minute window:
``INCR`` and an expiry set once), check that the session still exists (logout ends it), and know
who the user is and which plants they may see. A Lua script does the first two and fetches the
cached principal in one call; only on a cache miss is the database asked (one query,
:func:`settlement.access.load_principal`) and the answer cached.

Cache correctness: the cached principal lives under ``mp-principal:<identity>:<generation>``; a
change to what the user may see (binding, unbinding, a grant redeemed or revoked — every path in
this API; anyone else changing them calls :func:`settlement.principal_cache.invalidate` too)
increments ``mp-principal-gen:<identity>``, so the next request
reads a key that does not exist yet and loads afresh, in every process at once. A request that
loaded the old state just before the change writes under the old generation, which nobody reads
again. Changes made outside this API (staff moving a plant to another owner) are seen within
:data:`PRINCIPAL_TTL_S`.
"""

from __future__ import annotations

import json
import time
import weakref
from dataclasses import dataclass

import redis.asyncio as redis_asyncio

from settlement.access import Principal, Right, load_principal
from settlement.principal_cache import generation_key, invalidate, principal_key_prefix
from settlement.redis_client import Namespace

RATE_WINDOW_S = 60
PRINCIPAL_TTL_S = 10

_ADMIT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local alive = redis.call('EXISTS', KEYS[2])
local gen = redis.call('GET', KEYS[3]) or '0'
local cached = redis.call('GET', ARGV[2] .. gen)
return {n, alive, gen, cached}
"""


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


async def admit(client: redis_asyncio.Redis, ns: Namespace, identity_id: int, session_key: str) -> Admission:
    """Count the request, check the session and find the principal (None: the identity is gone)."""
    now = time.time()
    window = int(now // RATE_WINDOW_S)
    script = _scripts.get(client)
    if script is None:
        script = _scripts[client] = client.register_script(_ADMIT)  # its SHA is computed once
    count, alive, gen, cached = await script(
        keys=[ns.key("ratelimit", "identity", identity_id, window), session_key, _generation_key(ns, identity_id)],
        args=[RATE_WINDOW_S + 1, _principal_key(ns, identity_id)])
    retry_after = max(1, int((window + 1) * RATE_WINDOW_S - now + 0.999))
    if not alive:
        return Admission(int(count), retry_after, False, None)
    if cached:
        return Admission(int(count), retry_after, True, _load(identity_id, cached))
    principal = await load_principal(identity_id)
    if principal is not None:
        gen_text = gen.decode() if isinstance(gen, bytes) else str(gen)
        await client.set(_principal_key(ns, identity_id) + gen_text, _dump(principal), ex=PRINCIPAL_TTL_S)
    return Admission(int(count), retry_after, True, principal)


__all__ = ["Admission", "admit", "invalidate"]
