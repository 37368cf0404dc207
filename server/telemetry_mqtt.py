"""Telemetry from data loggers over MQTT: a background task that subscribes and feeds the service.

Off unless ``PVSETTLE_MQTT_URL`` is set: ``mqtt://[USER:PASSWORD@]HOST[:PORT][/TOPIC/PREFIX]``
(``mqtts://`` for TLS; the path is the topic prefix, default ``pvsettle/telemetry``).

Topics and payloads
-------------------
A logger publishes to ``<prefix>/<collector name>/<device serial>`` a JSON object::

    {"key": "<the collector's key>", "samples": [{"ts", "power_w", "energy_wh", "status", "irradiance_w_m2"}, …]}

or one sample with the key beside its fields: ``{"key": …, "ts": …, "power_w": …, "energy_wh": …}``.
The device is the topic's last level (a sample naming another device is refused). Samples are
judged exactly as on ``POST /ingest/v1/telemetry`` (:mod:`settlement.telemetry.ingest`).

Authentication is the collector's own key in every payload, checked like the HTTP bearer key,
and the collector it belongs to must be the one the topic names: pvsettle does not have to trust
the broker's configuration. The broker should still require a login and, by ACL, let each
logger only publish below its own ``<prefix>/<collector>/`` and only pvsettle subscribe there, so
that no logger can read another's key. Messages that fail (bad topic, bad JSON, wrong key) are
logged and dropped, as MQTT has no answer to give. Text holding what :mod:`settlement.text`
refuses (NUL, control characters) fails the whole message when it is in the topic or in a
sample's device (as another device would), naming where; in any other field, only its sample.

Delivery
--------
pvsettle subscribes with QoS 1 to ``$share/pvsettle/<prefix>/+/+``: with several server processes
each message goes to one of them (an MQTT 5 shared subscription; Mosquitto ≥ 1.6). Messages
arriving within :data:`LINGER_S` of each other are ingested together, per collector, at most
10,000 samples a call. When the database is away a batch is kept and tried again (at most
:data:`MAX_ATTEMPTS` times, and at most :data:`MAX_PENDING` samples are held). A lost broker
connection is retried for ever with exponential back-off (1 s doubling to 60 s, with jitter).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import socket
import ssl
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomqtt
import redis.asyncio as redis_asyncio
from aiohttp import web

from settlement import text as outside_text
from settlement.infra import background
from settlement.readings.ingest import collector_for_key
from settlement.infra.redis_client import Namespace
from settlement.telemetry.ingest import MAX_BATCH_SAMPLES, ingest_samples
from webapp.keys import redis_key, redis_ns_key, settings_key

log = logging.getLogger("pvsettle.telemetry.mqtt")

DEFAULT_PREFIX = "pvsettle/telemetry"
SHARE_GROUP = "pvsettle"
#: Messages arriving this close together are ingested in one call [s].
LINGER_S = 0.2
#: A payload larger than this is not a logger's message [bytes].
MAX_PAYLOAD = 4 * 1024 * 1024
#: A collector key is looked up again after this long (so a deactivated key stops working) [s].
KEY_CACHE_S = 60.0
#: Tries of one batch while the database is away.
MAX_ATTEMPTS = 5
#: Samples held while they cannot be stored; more are dropped with an error in the log.
MAX_PENDING = 10 * MAX_BATCH_SAMPLES
BACKOFF_FIRST_S, BACKOFF_MAX_S = 1.0, 60.0


@dataclass(frozen=True)
class BrokerAddress:
    hostname: str
    port: int
    username: str | None
    password: str | None
    tls: bool
    prefix: str

    @classmethod
    def from_url(cls, url: str) -> BrokerAddress:
        """Parse ``mqtt://user:password@host:port/topic/prefix``; raises ValueError when malformed."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"an MQTT URL is mqtt://HOST[:PORT][/PREFIX] or mqtts://…, not {url!r}")
        prefix = parts.path.strip("/") or DEFAULT_PREFIX
        if any(c in prefix for c in "+#") or "//" in prefix:
            raise ValueError(f"the topic prefix {prefix!r} may not hold wildcards or empty levels")
        return cls(hostname=parts.hostname, port=parts.port or (8883 if parts.scheme == "mqtts" else 1883),
                   username=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password else None,
                   tls=parts.scheme == "mqtts", prefix=prefix)


class Refused(Exception):
    """A message that is dropped, and why (for the log)."""


@dataclass
class _Pending:
    rows: list[dict] = field(default_factory=list)
    attempts: int = 0


class TelemetrySubscriber:
    """Subscribes to the loggers' topics and ingests what they publish.

    Parameters
    ----------
    broker : BrokerAddress
    redis, namespace : optional
        Where the plants' live state is published after each batch.
    """

    def __init__(self, broker: BrokerAddress, redis: redis_asyncio.Redis | None = None,
                 namespace: Namespace | None = None, *, linger_s: float = LINGER_S):
        self.broker = broker
        self.redis = redis
        self.namespace = namespace
        self.linger_s = linger_s
        self.connected = asyncio.Event()
        self.stats = {"messages": 0, "refused": 0, "samples": 0, "created": 0, "rejected": 0, "connections": 0}
        self._pending: dict[str, _Pending] = {}
        self._wakeup = asyncio.Event()
        self._keys: dict[str, tuple[float, str | None]] = {}

    @property
    def topic_filter(self) -> str:
        return f"$share/{SHARE_GROUP}/{self.broker.prefix}/+/+"

    async def run(self) -> None:
        """Stay subscribed for ever (until cancelled), flushing batches beside it."""
        flusher = asyncio.create_task(self._flush_loop(), name="pvsettle-mqtt-flush")
        try:
            await self._subscribe_forever()
        finally:
            await background.stop(flusher)
            await self.flush()

    async def _subscribe_forever(self) -> None:
        backoff = BACKOFF_FIRST_S
        identifier = f"pvsettle-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        while True:
            try:
                async with aiomqtt.Client(
                        self.broker.hostname, self.broker.port, username=self.broker.username,
                        password=self.broker.password, identifier=identifier, protocol=aiomqtt.ProtocolVersion.V5,
                        tls_context=ssl.create_default_context() if self.broker.tls else None,
                        keepalive=30, timeout=10) as client:
                    await client.subscribe(self.topic_filter, qos=1)
                    self.stats["connections"] += 1
                    self.connected.set()
                    log.info("subscribed", extra={"broker": f"{self.broker.hostname}:{self.broker.port}",
                                                  "topics": self.topic_filter})
                    backoff = BACKOFF_FIRST_S
                    async for message in client.messages:
                        await self.handle(str(message.topic), message.payload)
                        background.raise_if_cancelling()  # lost in the handling's Redis or database calls
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                wait = backoff * random.uniform(0.5, 1.0)
                log.warning("MQTT broker unavailable, trying again", extra={
                    "broker": f"{self.broker.hostname}:{self.broker.port}", "error": str(exc)[:200],
                    "retry_in_s": round(wait, 1)})
                await background.pause(wait)
                backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def handle(self, topic: str, payload: Any) -> None:
        """Take one message: check it and queue its samples (ingested within ``linger_s``)."""
        self.stats["messages"] += 1
        try:
            collector, rows = await self._judge(topic, payload)
        except Refused as exc:
            self.stats["refused"] += 1
            log.warning("MQTT message refused", extra={"topic": outside_text.shown(topic[:200]), "reason": str(exc)})
            return
        pending = self._pending.setdefault(f"collector:{collector}", _Pending())
        held = sum(len(p.rows) for p in self._pending.values())
        if held + len(rows) > MAX_PENDING:
            log.error("MQTT samples dropped: too many are waiting for the database",
                      extra={"topic": topic[:200], "dropped": len(rows), "held": held})
            return
        pending.rows += rows
        if len(pending.rows) >= MAX_BATCH_SAMPLES:
            await self.flush()
        else:
            self._wakeup.set()

    async def _judge(self, topic: str, payload: Any) -> tuple[str, list[dict]]:
        prefix = self.broker.prefix + "/"
        refused = outside_text.message("the topic", topic)  # it names the collector and the device
        if refused is not None:
            raise Refused(refused)
        if not topic.startswith(prefix):
            raise Refused(f"not below {self.broker.prefix}")
        levels = topic[len(prefix):].split("/")
        if len(levels) != 2 or not all(levels):
            raise Refused(f"the topic is {self.broker.prefix}/<collector>/<device>")
        collector, device = levels
        if not isinstance(payload, (bytes, bytearray)) or len(payload) > MAX_PAYLOAD:
            raise Refused(f"the payload is not JSON of at most {MAX_PAYLOAD} bytes")
        try:
            document = json.loads(payload, parse_constant=_refuse_constant)
        except (ValueError, RecursionError):
            raise Refused("the payload is not valid JSON") from None
        if not isinstance(document, dict):
            raise Refused("the payload is not a JSON object")
        key = document.get("key")
        if not isinstance(key, str) or not key or await self._collector_of(key) != collector:
            raise Refused(f"no valid key of collector {collector[:100]!r}")
        if "samples" in document:
            rows = document["samples"]
            if not isinstance(rows, list) or len(rows) > MAX_BATCH_SAMPLES:
                raise Refused(f'"samples" is a list of at most {MAX_BATCH_SAMPLES} samples')
        else:
            rows = [{k: v for k, v in document.items() if k != "key"}]
        out = []
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise Refused("every sample is a JSON object")
            named = row.get("device", device)
            refused = outside_text.message(f"row {i}: field 'device'", named) if isinstance(named, str) else None
            if refused is not None:  # the rows' other fields are judged row by row, as over HTTP
                raise Refused(refused)
            if named != device:
                raise Refused(f"a sample names device {str(row.get('device'))[:64]!r}, the topic {device[:64]!r}")
            out.append({**row, "device": device})
        return collector, out

    async def _collector_of(self, key: str) -> str | None:
        """The name of the active collector whose key this is (looked up at most every minute)."""
        now = time.monotonic()
        cached = self._keys.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = await collector_for_key(key)
        name = found.name if found is not None else None
        if len(self._keys) > 10_000:
            self._keys.clear()  # a flood of forged keys must not grow the cache without bound
        self._keys[key] = (now + KEY_CACHE_S, name)
        return name

    async def _flush_loop(self) -> None:
        while True:
            await background.wait(self._wakeup)  # a cancellation lost in the last flush stops it here
            await background.pause(self.linger_s)
            self._wakeup.clear()
            await self.flush()

    async def flush(self) -> None:
        """Ingest everything queued; what the database refuses to take now is kept for a retry."""
        pending, self._pending = self._pending, {}
        for who, batch in pending.items():
            while batch.rows:
                chunk = batch.rows[:MAX_BATCH_SAMPLES]
                try:
                    result = await ingest_samples(chunk, received_from=who, redis=self.redis,
                                                  namespace=self.namespace)
                except Exception:
                    batch.attempts += 1
                    if batch.attempts >= MAX_ATTEMPTS:
                        log.exception("MQTT samples dropped after %d failed tries", batch.attempts,
                                      extra={"collector": who, "samples": len(batch.rows)})
                    else:
                        log.exception("MQTT samples not stored, kept for another try", extra={"collector": who})
                        kept = self._pending.setdefault(who, _Pending(attempts=batch.attempts))
                        kept.rows = batch.rows + kept.rows
                        self._wakeup.set()
                    break
                batch.rows = batch.rows[MAX_BATCH_SAMPLES:]
                counts = result.counts()
                self.stats["samples"] += len(chunk)
                self.stats["created"] += counts["created"] + counts["updated"]
                self.stats["rejected"] += counts["rejected"]
                if counts["rejected"]:
                    first = next(iter(sorted(result.errors.items())))[1]
                    log.warning("MQTT samples refused", extra={"collector": who, "rejected": counts["rejected"],
                                                               "first": first.message})


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


telemetry_subscriber_key = web.AppKey("telemetry_subscriber_key", TelemetrySubscriber)


async def telemetry_mqtt_ctx(app: web.Application) -> AsyncIterator[None]:
    """The MQTT subscriber of this process (cleanup_ctx); nothing when PVSETTLE_MQTT_URL is empty."""
    settings = app[settings_key]
    if not settings.mqtt_url:
        yield
        return
    subscriber = TelemetrySubscriber(BrokerAddress.from_url(settings.mqtt_url), app[redis_key], app[redis_ns_key])
    app[telemetry_subscriber_key] = subscriber
    task = asyncio.create_task(subscriber.run(), name="pvsettle-mqtt")
    yield
    await background.stop(task)
