"""Who sent a delivery to /pay/notify, and how many of their refused deliveries are kept.

Only deliveries whose signature does not hold (or cannot be checked) meet these limits: anyone on
the internet can post them, as fast as they like. A notification whose signature holds is WeChat
Pay's and is never limited, so a flood cannot crowd out a payment.

**Source.** The client as :func:`webapp.client_address.source_of` names it: the peer, or behind
``PVSETTLE_TRUSTED_PROXIES`` the client they name in ``X-Forwarded-For``; an IPv6 source by its /64.

**Rate.** At most ``PVSETTLE_PAY_REFUSAL_RATE`` refused deliveries of one source are kept per
one-minute window (Redis ``INCR`` on a key per source and window, shared by every process, as the
mini-program API counts its requests); beyond that they are answered 429 and not kept. When Redis
does not answer within :data:`REDIS_WAIT`, each process counts on its own instead: refusals are
still limited (per process), and nothing else depends on Redis here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import redis.asyncio as redis_asyncio
from redis.exceptions import RedisError

from settlement.infra.redis_client import WINDOW_S, LocalWindows, Namespace, seconds_left

log = logging.getLogger("pvsettle.pay")
REDIS_WAIT = 1.0  # [s] for Redis to count a refusal before this process counts it alone
class RefusalLimiter:
    """Counts refused deliveries per source and window; one per process (the /pay sub-app's).

    ``clock`` gives the time [s since the epoch]; tests set it to stay inside one window.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._local = LocalWindows()  # this window's counts, for while Redis does not answer
        self._alone_in = -1  # the window in which this process last counted alone (warned once a window)

    def retry_after(self) -> int:
        """Seconds until the current window ends [s], at least 1."""
        now = self.clock()
        return seconds_left(int(now // WINDOW_S), now)

    async def admit(self, client: redis_asyncio.Redis | None, ns: Namespace, source: str, per_window: int) -> bool:
        """Count one refused delivery of ``source``; False when it is beyond ``per_window``."""
        now = self.clock()
        window = int(now // WINDOW_S)
        try:
            if client is None:
                raise RedisError("no Redis client")
            key = ns.key("pay-refusals", source, window)
            async with asyncio.timeout(REDIS_WAIT):
                async with client.pipeline(transaction=False) as pipe:
                    pipe.incr(key)
                    pipe.expire(key, WINDOW_S + 1)
                    counted = int((await pipe.execute())[0])
            count = self._local.after_redis("pay-refusal", source, now, counted)
        except (RedisError, OSError, TimeoutError) as exc:
            count, _ = self._local.without_redis("pay-refusal", source, now)
            if self._alone_in != window:
                self._alone_in = window
                log.warning("Redis did not count a refused notification (%s): this process counts alone",
                            type(exc).__name__)
        if count == per_window + 1:
            log.warning("more than %d refused notifications from %s this minute: the rest are not kept",
                        per_window, source)
        return count <= per_window
