"""The outbox dispatcher: sends the notifications :mod:`settlement.notify.outbox` wrote, each once.

Any number of processes may run one. Work is claimed before it is sent:

1. **Claim** a batch: pick up to ``batch_size`` ids of rows that are pending, due
   (``not_before`` ≤ now) and unclaimed or whose claim ran out, then ``UPDATE`` them to carry this
   batch's claim token (``claimed_by``) and lease end (``claimed_until``) — the UPDATE repeats
   the conditions, so of two dispatchers racing for a row only one changes it, and the rows
   read back by the token are exactly this batch's. On PostgreSQL the pick is ``SELECT … FOR
   UPDATE SKIP LOCKED`` inside the claim's transaction, so racing dispatchers take different
   rows instead of colliding; on SQLite the single writer serializes the UPDATEs.
2. **Rate and quiet hours**: per template at most ``rate_per_s`` messages per second across all
   processes (a fixed one-second window counted in Redis under the Namespace); rows over the
   limit are released to the next second without counting an attempt. Reminders
   (:data:`settlement.notify.outbox.REMINDERS`) found in the quiet hours wait until 08:00 local.
3. **Send** through the WeChat port, ``concurrency`` at a time, and stop taking new rows of the
   batch when its lease is nearly over (the rest are released).
4. **Mark** each row right after WeChat answered: sent (``sent_at``), failed with the reason, or
   back to pending with ``not_before`` pushed by exponential backoff. Marks are written by a
   group-commit writer: every answer that arrived while the previous write ran goes out in
   the next short transaction, conditioned on the claim token still being ours.

Channels: a subscribe message when the mini-program user has an unspent accept of the template
(:mod:`settlement.notify.subscriptions`, spent in the mark's transaction), otherwise — or when WeChat
answers 43101 "user refused" — an official-account template message to the same person's
official-account identity (same owner, staff record or unionid) with ``client_msg_id`` =
``outbox-<id>``; with no such identity the row fails with the reason ``no channel``.

Errors: :class:`WechatUnavailable` (5xx, timeouts, -1), :class:`TokenExpired` (after the
adapter's own refresh and retry), :class:`QuotaExceeded` (45009) and :class:`RateLimited` are
retried with backoff ``backoff · 2^(attempts-1)`` (capped at ``max_backoff``) up to
``max_attempts`` tries; every other WeChat error fails the row with its code and message.

Delivery guarantee — what is left of "exactly once", honestly:

- No message is lost: a row stays pending until WeChat accepted it or a permanent error is
  recorded; a dispatcher that dies leaves its claim to run out (``lease`` seconds) and another
  takes the rows again.
- No message goes twice while dispatchers live: a row is claimed by one batch at a time, and a
  batch stops sending before its lease runs out.
- The remaining window: a process killed after WeChat accepted a message and before the mark
  was committed (the time of one HTTP answer's arrival plus one short UPDATE, typically a few
  milliseconds) leaves the row pending, and it is sent again after the lease. A sending slot
  waits for its mark to be committed before it takes the next row, so at most ``concurrency``
  messages are in that window at any moment. Official-account
  template messages carry ``client_msg_id`` so WeChat itself drops the repeat within 10 minutes
  (longer than the lease); subscribe messages have no idempotency key, so a repeat there is
  possible in that window only.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import redis.asyncio as redis_asyncio
from redis.exceptions import RedisError
from tortoise.expressions import F, Q
from tortoise import connections
from tortoise.transactions import in_transaction

from settlement.billing import dunning
from settlement.notify import outbox
from settlement.models import OutboxMessage, OutboxState, SubscribeAcceptance, SubscribeAnswer, WechatIdentity
from settlement.ports.wechat import UserRefused, WechatApi, WechatError
from settlement.infra.redis_client import Namespace
from settlement.clock import UTC, utc_now

log = logging.getLogger("pvsettle.dispatcher")


class _Row(NamedTuple):
    """The columns of a claimed outbox row the dispatcher reads."""

    id: int
    template: str
    channel: str
    recipient: str
    app_id: str
    payload: Any
    attempts: int


_ROW_COLUMNS = ", ".join(f'"{name}"' for name in _Row._fields)


class _Identity(NamedTuple):
    id: int
    openid: str
    owner_id: int | None
    staff_id: int | None
    unionid: str | None


class _Accept(NamedTuple):
    id: int
    identity_id: int
    template_id: str
    accepts: int
    used: int


def _is_postgres() -> bool:
    return connections.get("default").capabilities.dialect == "postgres"


@dataclass
class _Outcome:
    row: _Row
    state: OutboxState
    error: str | None = None
    channel: str | None = None
    retry_at: dt.datetime | None = None
    spend: int | None = None  # SubscribeAcceptance id whose accept this message used
    deferred: bool = False  # over the rate: not sent, not an attempt
    written: asyncio.Future | None = None  # done when the mark is committed


@dataclass
class DispatchStats:
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    retried: int = 0
    deferred: int = 0
    lost_claims: int = 0
    by_template: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class Dispatcher:
    """Sends due outbox rows through ``api``.

    Parameters
    ----------
    api : WechatApi
        The WeChat port (``app[wechat_api_key]``).
    redis, ns : redis.asyncio.Redis, Namespace
        Where the per-template rate is counted.
    template_ids : mapping
        Notification template name → WeChat template id (``PVSETTLE_NOTIFY_TEMPLATES``).
    mp_appid, oa_appid : str
        Our mini-program and official account.
    rate_per_s : int, default 20
        Messages per second per template, all processes together.
    batch_size : int, default 200
        Rows claimed at once.
    concurrency : int, default 20
        WeChat calls in flight at once.
    lease : float, default 120 [s]
        How long a claim holds; a batch stops sending ``lease_margin`` before it ends.
    backoff, max_backoff : float, default 5, 3600 [s]
        First retry delay (doubling per attempt) and its cap.
    max_attempts : int, default 12
        Tries of a transient failure before the row fails.
    name : str, optional
        This dispatcher in ``claimed_by`` (default host:pid).
    clock : callable, optional
        The current time for the quiet hours (tests pass a fixed one).
    sign_link : callable, optional
        Turns a message's e-bill path (a template's ``url:`` line, e.g. ``/e/bill/7.pdf``) into
        the absolute signed link the official-account message carries, at send time (so the
        link's 30 days start when it is sent); without it such messages go out with no link.
    """

    def __init__(self, api: WechatApi, redis: redis_asyncio.Redis, ns: Namespace, *,
                 template_ids: Mapping[str, str], mp_appid: str, oa_appid: str, rate_per_s: int = 20,
                 batch_size: int = 200, concurrency: int = 20, lease: float = 120.0, lease_margin: float = 15.0,
                 backoff: float = 5.0, max_backoff: float = 3600.0, max_attempts: int = 12,
                 name: str | None = None, clock: Callable[[], dt.datetime] | None = None,
                 sign_link: Callable[[str], str] | None = None):
        self.api = api
        self.sign_link = sign_link
        self.redis = redis
        self.ns = ns
        self.template_ids = dict(template_ids)
        self.mp_appid = mp_appid
        self.oa_appid = oa_appid
        self.rate_per_s = rate_per_s
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.lease = lease
        self.lease_margin = min(lease_margin, lease / 4)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_attempts = max_attempts
        self.name = (name or f"{socket.gethostname()}:{os.getpid()}")[:40]
        self.stats = DispatchStats()
        self._allowance: dict[str, tuple[int, int]] = {}  # template → (second, tokens left; -1 = none)
        self._slot_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        # local time of day for the quiet hours (tests set it); claims and leases use the real clock
        self.clock = clock or (lambda: utc_now())

    # ------------------------------------------------------------------ the loop

    async def run_once(self, now: dt.datetime | None = None) -> int:
        """Claim one batch and deal with every row of it; returns the rows claimed."""
        now = now or utc_now()
        token, until, rows = await self.claim(now)
        if not rows:
            return 0
        await self._process(token, until, rows)
        return len(rows)

    async def drain(self, *, idle_wait: float = 0.0, stop: asyncio.Event | None = None) -> None:
        """Run batches until none is due (or, with ``idle_wait``, forever, polling when idle)."""
        while stop is None or not stop.is_set():
            claimed = await self.run_once()
            if claimed:
                continue
            if not idle_wait:
                return
            if stop is None:
                await asyncio.sleep(idle_wait)
            else:
                try:
                    await asyncio.wait_for(stop.wait(), idle_wait)
                except TimeoutError:
                    pass

    # ------------------------------------------------------------------ claiming

    async def claim(self, now: dt.datetime) -> tuple[str, dt.datetime, list[_Row]]:
        """Claim up to ``batch_size`` due rows; returns the claim token, its end and the rows."""
        token = f"{self.name}:{uuid.uuid4().hex[:16]}"
        now = now.astimezone(UTC)
        until = now + dt.timedelta(seconds=self.lease)
        if _is_postgres():
            rows = await self._claim_on_postgres(token, now, until)
            self.stats.claimed += len(rows)
            return token, until, rows
        claimable = Q(state=OutboxState.PENDING, not_before__lte=now) & (
            Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        # SQLite: the transaction holds the database's write lock, so no other claim interleaves
        async with in_transaction() as conn:
            pick = OutboxMessage.filter(claimable).order_by("not_before", "id").limit(self.batch_size).using_db(conn)
            ids = await pick.values_list("id", flat=True)
            if not ids:
                return token, until, []
            # the conditions again: a row another dispatcher claimed meanwhile is not changed
            await OutboxMessage.filter(claimable, id__in=list(ids)).using_db(conn).update(
                claimed_by=token, claimed_until=until)
        rows = [_Row._make(values) for values in await OutboxMessage.filter(claimed_by=token).order_by("id")
                .values_list(*_Row._fields)]
        self.stats.claimed += len(rows)
        return token, until, rows

    async def _claim_on_postgres(self, token: str, now: dt.datetime, until: dt.datetime) -> list[_Row]:
        """One statement: lock due rows no one holds (SKIP LOCKED), mark them ours, return them.

        Written out because tortoise drops ``select_for_update`` from a ``values_list`` query: the
        pick then locked nothing, two dispatchers picked the same rows and their updates
        deadlocked with each other's marks (seen in bench notify). Here a claim never waits on a
        row another transaction holds, so it can take part in no deadlock.
        """
        conn = connections.get("default")
        records = await conn.execute_query_dict(
            f'UPDATE "outbox_message" SET "claimed_by"=$1, "claimed_until"=$2 WHERE "id" IN ('
            'SELECT "id" FROM "outbox_message" WHERE "state"=$3 AND "not_before"<=$4 '
            'AND ("claimed_until" IS NULL OR "claimed_until"<$4) ORDER BY "not_before", "id" LIMIT $5 '
            f'FOR UPDATE SKIP LOCKED) RETURNING {_ROW_COLUMNS}',
            [token, until, OutboxState.PENDING.value, now, self.batch_size])
        rows = [_Row(**{**r, "payload": json.loads(r["payload"]) if isinstance(r["payload"], str) else r["payload"]})
                for r in records]
        return sorted(rows, key=lambda row: row.id)

    # ------------------------------------------------------------------ one batch

    async def _process(self, token: str, until: dt.datetime, rows: list[_Row]) -> None:
        now = self.clock()
        later: list[tuple[_Row, dt.datetime]] = []
        ready = []
        quiet = outbox.quiet_until(now)
        for row in rows:
            if quiet is not None and row.template in outbox.REMINDERS:
                later.append((row, quiet))
            else:
                ready.append(row)
        if later:
            await self._release(token, later)
            self.stats.deferred += len(later)
        marks: asyncio.Queue[_Outcome | None] = asyncio.Queue()
        writer = asyncio.create_task(self._mark_writer(token, marks))
        stop_at = until - dt.timedelta(seconds=self.lease_margin)
        try:
            # a reminder of a bill paid (a notice of a form answered) since it was written: not sent
            stale = await dunning.stale_reasons(ready) if ready else {}
            for row in ready:
                if row.id in stale:
                    await marks.put(_Outcome(row, OutboxState.FAILED, stale[row.id]))
            ready = [row for row in ready if row.id not in stale]
            if ready:
                recipients = await self._recipients(ready)
                gate = asyncio.Semaphore(self.concurrency)

                async def one(row: _Row) -> None:
                    async with gate:
                        if utc_now() >= stop_at:
                            return  # the lease is nearly over: leave the row to be claimed again
                        wait = await self._take_slot(row.template)
                        if wait is not None:
                            await marks.put(_Outcome(row, OutboxState.PENDING, retry_at=wait, deferred=True))
                            return
                        outcome = await self._send(row, recipients)
                        outcome.written = asyncio.get_running_loop().create_future()
                        await marks.put(outcome)
                        # the slot is taken again only once WeChat's answer is recorded: so at
                        # most ``concurrency`` accepted messages are ever unmarked at one time
                        await outcome.written

                await asyncio.gather(*(one(row) for row in ready))
        finally:
            await marks.put(None)
            await writer

    async def _take_slot(self, template: str) -> dt.datetime | None:
        """One send of ``template`` in this second's allowance (None), or when to try again.

        A fixed one-second window counted in Redis by every dispatcher. A dispatcher takes the
        window's tokens in chunks (``rate_per_s / 20``, at least 1) and hands them out itself, so
        Redis sees one call per chunk; tokens left when the second ends are dropped, which can
        only lower the rate. A grant whose second ended while Redis answered is void, so a send
        starts in the second that counted it.
        """
        async with self._slot_locks[template]:
            for _ in range(2):  # a grant voided by the turn of the second is asked again, once
                wait = await self._slot(template)
                if wait is None or wait != "void":
                    return wait
            return dt.datetime.fromtimestamp(int(time.time()) + 1, UTC)

    async def _slot(self, template: str):
        second = int(time.time())
        later = dt.datetime.fromtimestamp(second + 1, UTC)
        window, left = self._allowance.get(template, (-1, 0))
        if window == second and left > 0:
            self._allowance[template] = (second, left - 1)
            self.stats.by_template[template] += 1
            return None
        if window == second and left < 0:
            return later  # the window is used up by all dispatchers together
        chunk = max(1, self.rate_per_s // 20)
        key = self.ns.key("notify", "rate", template, second)
        try:
            count = int(await self.redis.incrby(key, chunk))
            if count == chunk:
                await self.redis.expire(key, 5)
        except RedisError as exc:
            # without the counter the rate cannot be kept: wait rather than flood WeChat
            log.warning("notification rate counter unavailable", extra={"error": type(exc).__name__})
            return later
        if int(time.time()) != second:
            return "void"
        granted = max(0, min(chunk, self.rate_per_s - (count - chunk)))
        if granted == 0:
            self._allowance[template] = (second, -1)
            return later
        self._allowance[template] = (second, granted - 1)
        self.stats.by_template[template] += 1
        return None

    async def _release(self, token: str, rows: list[tuple[_Row, dt.datetime]]) -> None:
        by_time: dict[dt.datetime, list[int]] = defaultdict(list)
        for row, when in rows:
            by_time[when].append(row.id)
        for when, ids in by_time.items():
            await OutboxMessage.filter(id__in=ids, claimed_by=token).update(
                not_before=when, claimed_by=None, claimed_until=None)

    async def _recipients(self, rows: list[_Row]) -> dict[str, Any]:
        """What the batch needs to choose channels, in three queries: identities, accepts, OA twins."""
        mp_openids = {r.recipient for r in rows if r.app_id == self.mp_appid}
        # plain tuples, not model objects: building objects was most of a batch's CPU time
        identities = {i.openid: i for i in map(_Identity._make, await WechatIdentity.filter(
            app_id=self.mp_appid, openid__in=list(mp_openids)).values_list(*_Identity._fields))}
        wanted = {self.template_ids.get(r.template) for r in rows} - {None}
        accepts = {(a.identity_id, a.template_id): a for a in map(_Accept._make, await SubscribeAcceptance.filter(
            identity_id__in=[i.id for i in identities.values()], template_id__in=list(wanted),
            answer=SubscribeAnswer.ACCEPT).values_list(*_Accept._fields))}
        owners = {i.owner_id for i in identities.values() if i.owner_id}
        staff = {i.staff_id for i in identities.values() if i.staff_id}
        unions = {i.unionid for i in identities.values() if i.unionid}
        twins: dict[tuple[str, Any], str] = {}
        if owners or staff or unions:
            for oa in map(_Identity._make, await WechatIdentity.filter(
                    Q(owner_id__in=list(owners)) | Q(staff_id__in=list(staff)) | Q(unionid__in=list(unions)),
                    app_id=self.oa_appid).order_by("id").values_list(*_Identity._fields)):
                for kind, value in (("owner", oa.owner_id), ("staff", oa.staff_id), ("union", oa.unionid)):
                    if value:
                        twins.setdefault((kind, value), oa.openid)
        spent: dict[int, int] = defaultdict(int)
        return {"identities": identities, "accepts": accepts, "twins": twins, "spent": spent}

    def _oa_twin(self, row: _Row, recipients: dict[str, Any]) -> str | None:
        if row.app_id == self.oa_appid:
            return row.recipient
        identity = recipients["identities"].get(row.recipient)
        if identity is None:
            return None
        for kind, value in (("union", identity.unionid), ("owner", identity.owner_id), ("staff", identity.staff_id)):
            if value and (kind, value) in recipients["twins"]:
                return recipients["twins"][(kind, value)]
        return None

    async def _send(self, row: _Row, recipients: dict[str, Any]) -> _Outcome:
        template_id = self.template_ids.get(row.template)
        if template_id is None:
            return _Outcome(row, OutboxState.FAILED, f"no WeChat template id for {row.template!r}")
        payload = row.payload or {}
        data, oa_data, page = payload.get("data") or {}, payload.get("oa_data") or {}, payload.get("page")
        try:
            if row.app_id == self.mp_appid and row.channel == "subscribe":
                identity = recipients["identities"].get(row.recipient)
                accept = recipients["accepts"].get((identity.id, template_id)) if identity else None
                if accept is not None and accept.accepts - accept.used - recipients["spent"][accept.id] > 0:
                    recipients["spent"][accept.id] += 1
                    try:
                        await self.api.send_subscribe_message(row.recipient, template_id, data, page=page)
                        return _Outcome(row, OutboxState.SENT, channel="subscribe", spend=accept.id)
                    except UserRefused:
                        log.info("subscribe message refused, trying the official account",
                                 extra={"outbox_id": row.id, "template": row.template})
                    except WechatError:
                        recipients["spent"][accept.id] -= 1
                        raise
            oa_openid = self._oa_twin(row, recipients)
            if oa_openid is None:
                return _Outcome(row, OutboxState.FAILED, "no channel")
            url = payload.get("url")
            await self.api.send_template_message(oa_openid, template_id, oa_data or data,
                                                 url=self.sign_link(url) if url and self.sign_link else None,
                                                 miniprogram_page=page, client_msg_id=f"outbox-{row.id}")
            return _Outcome(row, OutboxState.SENT, channel="template")
        except WechatError as exc:
            reason = f"{type(exc).__name__} {exc.errcode}: {exc.errmsg}"[:500]
            if not exc.transient:
                return _Outcome(row, OutboxState.FAILED, reason)
            attempts = row.attempts + 1
            if attempts >= self.max_attempts:
                return _Outcome(row, OutboxState.FAILED, f"gave up after {attempts} tries: {reason}"[:500])
            delay = min(self.max_backoff, self.backoff * 2 ** (attempts - 1))
            return _Outcome(row, OutboxState.PENDING, reason, retry_at=utc_now() + dt.timedelta(seconds=delay))

    # ------------------------------------------------------------------ marking

    async def _mark_writer(self, token: str, marks: asyncio.Queue[_Outcome | None]) -> None:
        """Write outcomes as they come: whatever arrived during one write goes in the next."""
        done = False
        while not done:
            first = await marks.get()
            batch = [] if first is None else [first]
            done = first is None
            while not marks.empty():
                item = marks.get_nowait()
                if item is None:
                    done = True
                else:
                    batch.append(item)
            if batch:
                try:
                    await self._mark(token, batch)
                except BaseException as exc:
                    for outcome in batch:
                        if outcome.written is not None and not outcome.written.done():
                            outcome.written.set_exception(RuntimeError("the outcome was not recorded"))
                    raise exc
                for outcome in batch:
                    if outcome.written is not None and not outcome.written.done():
                        outcome.written.set_result(None)

    async def _mark(self, token: str, outcomes: list[_Outcome]) -> None:
        now = utc_now()
        sent: dict[str, list[int]] = defaultdict(list)
        spends: dict[int, int] = defaultdict(int)
        async with in_transaction() as conn:
            for outcome in outcomes:
                if outcome.state == OutboxState.SENT:
                    sent[outcome.channel or outcome.row.channel].append(outcome.row.id)
                    if outcome.spend is not None:
                        spends[outcome.spend] += 1
            for channel, ids in sent.items():
                changed = await OutboxMessage.filter(id__in=ids, claimed_by=token).using_db(conn).update(
                    state=OutboxState.SENT, sent_at=now, channel=channel, attempts=F("attempts") + 1,
                    last_error=None, claimed_by=None, claimed_until=None)
                if changed != len(ids):
                    # our lease ran out and another dispatcher took rows we sent: they may go twice
                    self.stats.lost_claims += len(ids) - changed
                    log.error("outbox claim lost before marking sent", extra={"rows": len(ids) - changed})
                self.stats.sent += changed
            # in id order: dispatchers marking at once take these row locks in one order (any other
            # order deadlocks two of them on PostgreSQL, seen in bench notify)
            for acceptance_id, count in sorted(spends.items()):
                await SubscribeAcceptance.filter(id=acceptance_id).using_db(conn).update(used=F("used") + count)
            for outcome in outcomes:
                if outcome.state == OutboxState.SENT:
                    continue
                row = outcome.row
                if outcome.state == OutboxState.FAILED:
                    self.stats.failed += 1
                    await OutboxMessage.filter(id=row.id, claimed_by=token).using_db(conn).update(
                        state=OutboxState.FAILED, attempts=F("attempts") + 1, last_error=outcome.error,
                        claimed_by=None, claimed_until=None)
                    log.warning("notification failed", extra={"outbox_id": row.id, "template": row.template,
                                                               "reason": outcome.error})
                elif outcome.deferred:
                    self.stats.deferred += 1
                    await OutboxMessage.filter(id=row.id, claimed_by=token).using_db(conn).update(
                        not_before=outcome.retry_at, claimed_by=None, claimed_until=None)
                else:
                    self.stats.retried += 1
                    await OutboxMessage.filter(id=row.id, claimed_by=token).using_db(conn).update(
                        attempts=F("attempts") + 1, last_error=outcome.error, not_before=outcome.retry_at,
                        claimed_by=None, claimed_until=None)


async def cancel(ids: list[int], reason: str, *, using_db=None) -> int:
    """Record pending rows failed with ``reason`` (e.g. reminders of a bill that got paid)."""
    if not ids:
        return 0
    return await OutboxMessage.filter(id__in=ids, state=OutboxState.PENDING).using_db(using_db).update(
        state=OutboxState.FAILED, last_error=reason[:500], claimed_by=None, claimed_until=None)
