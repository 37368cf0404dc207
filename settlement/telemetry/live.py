"""Live plant state in Redis: the latest state per plant, and a pub/sub channel per plant.

The contract between whoever learns something new about a plant (telemetry ingest, in any
process) and whoever streams it to owners (the mini-program's live endpoint, in any process):

* ``<prefix>live:<plant id>`` — a string key holding the latest state as JSON;
* ``<prefix>live:<plant id>`` — also the pub/sub channel name; each message is the same JSON.

The JSON object: ``{"plant_id": int, "ts": ISO 8601 UTC, "power_w": int, "today_kwh": str}``
(``today_kwh`` a decimal string, energy since 00:00 local time), plus optional keys.
"""

from __future__ import annotations

import json

import redis.asyncio as redis_asyncio

from settlement.infra.redis_client import Namespace

# The latest state outlives a quiet night, not a plant that stopped reporting for days.
STATE_TTL_S = 3 * 24 * 3600


def channel(ns: Namespace, plant_id: int) -> str:
    return ns.key("live", plant_id)


async def publish_state(client: redis_asyncio.Redis, ns: Namespace, plant_id: int, state: dict) -> None:
    """Store the plant's latest state and tell every subscriber, in one round trip."""
    body = json.dumps({"plant_id": plant_id, **state}, ensure_ascii=False)
    async with client.pipeline(transaction=False) as pipe:
        pipe.set(channel(ns, plant_id), body, ex=STATE_TTL_S)
        pipe.publish(channel(ns, plant_id), body)
        await pipe.execute()


# SET and PUBLISH each (key, body) inside Redis: one command for thousands of plants, where a
# pipeline of two commands per plant costs the client five times as much.
_PUBLISH_MANY = ("for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[i], 'EX', ARGV[#KEYS + 1]) "
                 "redis.call('PUBLISH', KEYS[i], ARGV[i]) end return #KEYS")


async def publish_states(client: redis_asyncio.Redis, ns: Namespace, states: dict[int, dict]) -> None:
    """:func:`publish_state` for many plants in one round trip (a telemetry batch touches thousands)."""
    if not states:
        return
    keys = [channel(ns, plant_id) for plant_id in states]
    bodies = [json.dumps({"plant_id": plant_id, **state}, ensure_ascii=False) for plant_id, state in states.items()]
    await client.eval(_PUBLISH_MANY, len(keys), *keys, *bodies, STATE_TTL_S)


async def latest_state(client: redis_asyncio.Redis, ns: Namespace, plant_id: int) -> dict | None:
    raw = await client.get(channel(ns, plant_id))
    return json.loads(raw) if raw else None
