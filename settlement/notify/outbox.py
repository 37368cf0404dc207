"""The notification outbox: a message row written in the same transaction as the change that
causes it, sent later by the dispatcher (:mod:`settlement.notify.dispatcher`).

Writing (:func:`enqueue`, :func:`notify_owner`, :func:`notify_staff`)
    The content comes from a jinja2 template under ``templates/notify/<name>.txt`` rendered with
    the event's payload into WeChat subscribe-message fields, one ``key: value`` per line. A key's
    type is its name without the number (``thing3`` → ``thing``) and each value is checked
    against WeChat's field rules (DOMAIN.md "WeChat facts") when the row is written: a ``thing``
    that is too long is shortened with an ellipsis; any other bad value is refused with
    :class:`NotificationContentError`, so the caller's transaction fails instead of WeChat
    refusing the message later (47003). Lines ``oa.<key>: value`` fill the official-account
    template message used as the fallback channel (free-text keys ``first``/``keywordN``/
    ``remark`` or typed keys, checked the same way); without them the subscribe fields are used.
    A line ``page: …`` names the mini-program page the message opens; a line ``url: /e/…``
    names an e-bill (page or ``.pdf``) that the official-account template message links to —
    the dispatcher signs it when it sends (:func:`settlement.billing.ebill_links.sign_path`), so no secret and
    no expiry is stored in the row.

Channels
    Rows addressed to a mini-program identity go out as subscribe messages when the user
    accepted that template (:mod:`settlement.notify.subscriptions`), else as official-account template
    messages to the same person's official-account identity (same owner, staff record or
    unionid), else they are recorded failed with the reason ``no channel``. The dispatcher
    decides at send time, because acceptances arrive after the row is written.

Quiet hours
    Reminders (:data:`REMINDERS`) are not sent 22:00–08:00 Asia/Shanghai: their ``not_before``
    is moved to the next 08:00 here and again by the dispatcher.

Our apps
    Every function that writes rows is told by its caller which WeChat apps are ours
    (:class:`NotifyApps` as ``apps=``, no default): the server builds one from the settings once,
    keeps it on the app and hands it down; the CLI and the benches build theirs from their
    settings the same way.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2

from settlement import templating
from settlement.billing.ebill_links import is_ebill_path
from settlement.errors import InvalidInput
from settlement.models import OutboxMessage, OutboxState, WechatIdentity
from settlement.clock import LOCAL, UTC, utc_now


#: every notification template (file ``templates/notify/<name>.txt``) and its event
TEMPLATE_NAMES = ("form_sent", "auto_confirm_coming", "bill_issued", "payment_received", "refund_done",
                  "arrears_reminder", "arrears_escalation", "low_balance", "outage_alarm", "fault_update",
                  "prepaid_notice")
#: reminders wait out the quiet hours
REMINDERS = frozenset({"arrears_reminder", "auto_confirm_coming", "low_balance"})
QUIET_START, QUIET_END = dt.time(22, 0), dt.time(8, 0)  # local time
ELLIPSIS = "…"
THING_MAX = 20


class NotificationContentError(InvalidInput):
    """A rendered field breaks WeChat's rules for its type and cannot be shortened."""

    code = "bad_notification"


@dataclass(frozen=True)
class NotifyApps:
    """Our mini-program and official account: an identity of ``oa_appid`` is told by template
    message, any other by subscribe message (falling back to the official account)."""

    mp_appid: str
    oa_appid: str

    @classmethod
    def from_settings(cls, settings) -> NotifyApps:
        """From the settings' ``mp_appid`` and ``oa_appid`` (``PVSETTLE_MP_APPID``, ``PVSETTLE_OA_APPID``)."""
        return cls(settings.mp_appid, settings.oa_appid)


# ---------------------------------------------------------------------- content


def _local_time(value: dt.datetime | str) -> str:
    """``2026年11月22日 16:05`` in Asia/Shanghai (WeChat ``time``/``date``: 年月日, 24 h)."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        raise ValueError("a notification time must carry its time zone")
    return value.astimezone(LOCAL).strftime("%Y年%m月%d日 %H:%M")


def _local_date(value: dt.date | str) -> str:
    if isinstance(value, str):
        value = dt.date.fromisoformat(value[:10])
    return f"{value.year}年{value.month:02d}月{value.day:02d}日"


_ENV = templating.environment(filters={"local_time": _local_time, "local_date": _local_date})

_KEY = re.compile(r"(?P<type>[a-z_]*[a-z])(?P<n>\d*)")
_NUMBER = re.compile(r"-?(?P<int>\d+)(?:\.(?P<frac>\d+))?")
_AMOUNT = re.compile(r"-?[¥￥$€£](?P<int>\d+)(?:\.(?P<frac>\d+))?元?")
_MOMENT = re.compile(r"\d{4}年\d{2}月\d{2}日( \d{2}:\d{2})?")
FREE_TEXT = re.compile(r"first|remark|keyword\d+")


def _han(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf"


def _digits(match: re.Match[str]) -> int:
    return len(match["int"]) + len(match["frac"] or "")


def check_field(key: str, value: str, *, template: str = "", free_text: bool = False) -> str:
    """The value WeChat will accept for data key ``key``: ``thing`` shortened with an ellipsis,
    everything else unchanged or refused.

    Raises
    ------
    NotificationContentError
        The value is empty, has control characters, or breaks its type's rule (``number`` ≤ 32
        digits, ``character_string`` ≤ 32 ASCII, ``phrase`` ≤ 5 Chinese characters, ``name``
        ≤ 10 Chinese / 20 Latin, ``amount`` = currency symbol + ≤ 10 digits, ``time``/``date``
        as 年月日 with 24 h time), or the key has no known type.
    """
    def refuse(rule: str) -> NotificationContentError:
        return NotificationContentError(f"notification {template}: {key}={value[:40]!r} {rule}",
                                        code="bad_notification")

    value = value.strip()
    if not value:
        raise refuse("is empty")
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise refuse("has control characters")
    if free_text and FREE_TEXT.fullmatch(key):
        return value
    match = _KEY.fullmatch(key)
    kind = match["type"] if match else ""
    if kind == "thing":
        return value if len(value) <= THING_MAX else value[:THING_MAX - 1] + ELLIPSIS
    if kind == "number":
        number = _NUMBER.fullmatch(value)
        if not number or _digits(number) > 32:
            raise refuse("is not a number of at most 32 digits")
    elif kind == "character_string":
        if len(value) > 32 or not value.isascii() or not all(ch.isalnum() or not ch.isspace() for ch in value):
            raise refuse("is not at most 32 ASCII letters, digits and symbols")
    elif kind == "phrase":
        if len(value) > 5 or not all(_han(ch) for ch in value):
            raise refuse("is not at most 5 Chinese characters")
    elif kind == "name":
        if any(ch.isdigit() for ch in value):
            raise refuse("is not a name (digits)")
        limit = 10 if any(_han(ch) for ch in value) else 20
        if len(value) > limit:
            raise refuse(f"is longer than {limit} characters")
    elif kind == "amount":
        amount = _AMOUNT.fullmatch(value)
        if not amount or _digits(amount) > 10:
            raise refuse("is not a currency symbol and at most 10 digits")
    elif kind in ("time", "date"):
        if not _MOMENT.fullmatch(value):
            raise refuse("is not 年月日 with a 24 h time")
    else:
        raise refuse(f"has no WeChat field type ({kind or 'none'})")
    return value


def render(template: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """The message fields of ``template`` for ``payload``: ``{"data", "oa_data", "page", "url"}``.

    Raises
    ------
    NotificationContentError
        An unknown template, a value missing from the payload, or a field WeChat would refuse.
    """
    if template not in TEMPLATE_NAMES:
        raise NotificationContentError(f"unknown notification template {template!r}", code="bad_notification")
    for name, value in payload.items():
        # a line break in a value would start another field of the rendered text
        if isinstance(value, str) and any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in value):
            raise NotificationContentError(f"notification {template}: {name} has control characters",
                                           code="bad_notification")
    try:
        text = _ENV.get_template(f"notify/{template}.txt").render(**payload)
    except jinja2.UndefinedError as exc:
        raise NotificationContentError(f"notification {template}: {exc.message}", code="bad_notification") from None
    data: dict[str, str] = {}
    oa_data: dict[str, str] = {}
    page = url = None
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep:
            raise NotificationContentError(f"notification {template}: line {line[:40]!r} is not key: value",
                                           code="bad_notification")
        if key == "page":
            page = value.strip() or None
        elif key == "url":
            url = value.strip() or None
            if url is not None and not is_ebill_path(url):
                raise NotificationContentError(f"notification {template}: url {url[:40]!r} is not an e-bill path",
                                               code="bad_notification")
        elif key.startswith("oa."):
            oa_data[key[3:]] = check_field(key[3:], value, template=template, free_text=True)
        else:
            data[key] = check_field(key, value, template=template)
    if not data:
        raise NotificationContentError(f"notification {template} has no fields", code="bad_notification")
    return {"data": data, "oa_data": oa_data or dict(data), "page": page, "url": url}


def quiet_until(when: dt.datetime) -> dt.datetime | None:
    """The next 08:00 local time if ``when`` falls in the quiet hours (22:00–08:00), else None."""
    local = when.astimezone(LOCAL)
    if QUIET_END <= local.time() < QUIET_START:
        return None
    day = local.date() if local.time() < QUIET_END else local.date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, QUIET_END, tzinfo=LOCAL).astimezone(UTC)


# ---------------------------------------------------------------------- writing rows


async def enqueue(event: str, identity_or_openid: WechatIdentity | str, app: str, template: str,
                  payload: Mapping[str, Any], dedupe_key: str, *, using_db, apps: NotifyApps,
                  not_before: dt.datetime | None = None, now: dt.datetime | None = None) -> OutboxMessage:
    """Write one notification in the caller's transaction; the same ``dedupe_key`` again is a no-op.

    Parameters
    ----------
    event : str
        The past-tense domain event, e.g. ``BillIssued``, ``PaymentReceived``, ``RefundDone``,
        ``OutageAlarm`` (at most 32 characters).
    identity_or_openid : WechatIdentity or str
        The recipient: an identity (its app decides the channel) or an openid in ``app``.
    app : str
        ``"mp"`` (mini-program: a subscribe message, falling back to the official account) or
        ``"oa"`` (official account: a template message). Ignored when an identity is given.
    template : str
        One of :data:`TEMPLATE_NAMES`; its file under ``templates/notify/`` renders the fields.
    payload : mapping
        The template's variables (amounts in fen, datetimes aware, dates as ``datetime.date``).
        Only JSON-ready values are kept in the row, for the record.
    dedupe_key : str
        Unique per message (≤ 128 characters). Messages about a bill start ``bill:<id>:`` so
        :func:`delivery_state` finds them.
    using_db : connection
        The caller's transaction, so the row exists exactly when the change does.
    apps : NotifyApps
        Our mini-program and official account (which channel an identity gets, which app an
        openid is in).
    not_before : datetime, optional
        Send no earlier (UTC or aware); reminders are also moved out of the quiet hours.

    Returns
    -------
    OutboxMessage
        The row written, or the one already stored under ``dedupe_key``.

    Raises
    ------
    NotificationContentError
        A field WeChat would refuse (the caller's transaction should fail with it).
    """
    rendered = render(template, payload)
    now = now or utc_now()
    if isinstance(identity_or_openid, WechatIdentity):
        openid, app_id = identity_or_openid.openid, identity_or_openid.app_id
        channel = "template" if app_id == apps.oa_appid and app_id else "subscribe"
    else:
        if app not in ("mp", "oa"):
            raise ValueError(f"app must be 'mp' or 'oa', not {app!r}")
        openid = identity_or_openid
        app_id = apps.mp_appid if app == "mp" else apps.oa_appid
        channel = "subscribe" if app == "mp" else "template"
    if len(dedupe_key) > 128 or not dedupe_key:
        raise ValueError("a dedupe key is 1 to 128 characters")
    due = (not_before or now).astimezone(UTC)
    if template in REMINDERS:
        due = quiet_until(due) or due
    row, _ = await OutboxMessage.get_or_create(
        dedupe_key=dedupe_key,
        defaults={"event": event[:32], "channel": channel, "recipient": openid, "app_id": app_id,
                  "template": template, "payload": {**rendered, "context": _plain(payload)},
                  "state": OutboxState.PENDING, "not_before": due},
        using_db=using_db)
    return row


def _plain(payload: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in payload.items():
        if isinstance(value, dt.datetime | dt.date):
            out[key] = value.isoformat()
        elif isinstance(value, str | int | float | bool) or value is None:
            out[key] = value
    return out


async def recipients_of_owner(owner_id: int, *, apps: NotifyApps, using_db=None) -> list[WechatIdentity]:
    """Whom to tell about an owner's business: their mini-program identities, or their
    official-account ones when they have none in the mini-program."""
    identities = await WechatIdentity.filter(owner_id=owner_id).using_db(using_db).order_by("id")
    mp = [i for i in identities if i.app_id != apps.oa_appid]
    return mp or identities


async def notify_owner(event: str, owner_id: int, template: str, payload: Mapping[str, Any], key: str, *,
                       using_db, apps: NotifyApps, not_before: dt.datetime | None = None,
                       now: dt.datetime | None = None) -> list[OutboxMessage]:
    """:func:`enqueue` one message per identity of the owner (none bound: nothing to write).
    The dedupe key of each is ``<key>:<identity id>``."""
    rows = []
    for identity in await recipients_of_owner(owner_id, apps=apps, using_db=using_db):
        rows.append(await enqueue(event, identity, "mp", template, payload, f"{key}:{identity.id}",
                                  using_db=using_db, apps=apps, not_before=not_before, now=now))
    return rows


async def notify_owners(event: str, template: str, items: list[tuple[int, Mapping[str, Any], str]], *,
                        using_db, apps: NotifyApps, not_before: dt.datetime | None = None,
                        now: dt.datetime | None = None) -> int:
    """:func:`notify_owner` for many owners at once (two queries and one insert, for batch jobs).

    ``items`` are ``(owner_id, payload, key)``; a payload may carry ``"_not_before"`` (its
    own send time). Keys already stored are skipped. Unlike :func:`enqueue`, content WeChat
    would refuse does not raise (the domain change must not fail for its message): the row is
    written failed with the reason ``content refused: …``. Returns the rows offered.
    """
    if not items:
        return 0
    now = now or utc_now()
    oa_appid = apps.oa_appid
    by_owner: dict[int, list[WechatIdentity]] = {}
    for identity in await WechatIdentity.filter(owner_id__in=list({o for o, _, _ in items})) \
            .using_db(using_db).order_by("id"):
        by_owner.setdefault(identity.owner_id, []).append(identity)
    drafts = []
    for owner_id, payload, key in items:
        identities = by_owner.get(owner_id, [])
        identities = [i for i in identities if i.app_id != oa_appid] or identities
        if not identities:
            continue
        own_time = payload.get("_not_before")
        payload = {k: v for k, v in payload.items() if k != "_not_before"}
        refused = None
        try:
            rendered = render(template, payload)
        except NotificationContentError as exc:
            # the change itself (a payment, a bill) must not fail for its message: the row is
            # written failed with the reason, for staff to see in delivery_state
            rendered, refused = {}, f"content refused: {exc.message}"[:500]
        due = (own_time or not_before or now).astimezone(UTC)
        if template in REMINDERS:
            due = quiet_until(due) or due
        for identity in identities:
            drafts.append(OutboxMessage(
                dedupe_key=f"{key}:{identity.id}", event=event[:32],
                channel="template" if identity.app_id == oa_appid and oa_appid else "subscribe",
                recipient=identity.openid, app_id=identity.app_id, template=template,
                payload={**rendered, "context": _plain(payload)},
                state=OutboxState.FAILED if refused else OutboxState.PENDING, last_error=refused, not_before=due))
    # the unique dedupe key makes a repeated event a no-op
    await OutboxMessage.bulk_create(drafts, ignore_conflicts=True, using_db=using_db)
    return len(drafts)


async def notify_staff(event: str, template: str, payload: Mapping[str, Any], key: str, *, using_db,
                       apps: NotifyApps, now: dt.datetime | None = None) -> list[OutboxMessage]:
    """:func:`enqueue` one message per identity of an active staff member (alarms, escalations)."""
    identities = await WechatIdentity.filter(staff_id__isnull=False, staff__active=True) \
        .using_db(using_db).order_by("id")
    return [await enqueue(event, identity, "oa", template, payload, f"{key}:{identity.id}",
                          using_db=using_db, apps=apps, now=now) for identity in identities]


# ---------------------------------------------------------------------- staff view


async def delivery_state(bill_id: int | None = None, owner_id: int | None = None, *,
                         limit: int = 10) -> list[dict[str, Any]]:
    """The latest notifications about a bill or to an owner, newest first, for staff.

    Each is ``{"id", "event", "template", "channel", "recipient", "state", "attempts",
    "reason", "created_at", "sent_at", "not_before"}``; ``reason`` is why a message failed or
    why the last try did not go through (None once sent).
    """
    if (bill_id is None) == (owner_id is None):
        raise InvalidInput("name a bill or an owner", code="bill_or_owner")
    query = OutboxMessage.all()
    if bill_id is not None:
        query = query.filter(dedupe_key__startswith=f"bill:{int(bill_id)}:")
    else:
        openids = await WechatIdentity.filter(owner_id=owner_id).values_list("openid", flat=True)
        query = query.filter(recipient__in=list(openids))
    rows = await query.order_by("-id").limit(max(1, min(limit, 100)))
    return [{"id": r.id, "event": r.event, "template": r.template, "channel": r.channel, "recipient": r.recipient,
             "state": r.state.value, "attempts": r.attempts,
             "reason": None if r.state == OutboxState.SENT else r.last_error,
             "created_at": r.created_at, "sent_at": r.sent_at, "not_before": r.not_before} for r in rows]


# ---------------------------------------------------------------------- domain events
# Called by the services inside the transaction of their change (one line each there).

AUTO_CONFIRM_NOTICE = dt.timedelta(days=1)  # the reminder goes this long before the answer date


async def forms_sent(form_ids: list[int], *, using_db, apps: NotifyApps, now: dt.datetime | None = None) -> int:
    """FormSent for each form (now sent to its owner) and AutoConfirmComing a day before its
    answer date; keys ``form:<id>:…`` (a new version is a new form, so it is told again)."""
    from settlement.models import ConfirmationForm  # the models package imports this module's users

    if not form_ids:
        return 0
    forms = await ConfirmationForm.filter(id__in=list(form_ids), sent_at__isnull=False) \
        .using_db(using_db).prefetch_related("cycle__plant")
    sent, coming = [], []
    for form in forms:
        plant = form.cycle.plant
        payload = {"plant_name": plant.name, "period": form.cycle.period,
                   "self_use_kwh": f"{form.self_use_kwh:.3f}", "answer_by": form.answer_due_at, "form_id": form.id}
        sent.append((plant.owner_id, payload, f"form:{form.id}:FormSent"))
        if form.answer_due_at is not None:
            notice = max(form.answer_due_at - AUTO_CONFIRM_NOTICE, form.sent_at)
            coming.append((plant.owner_id, {**payload, "_not_before": notice}, f"form:{form.id}:AutoConfirmComing"))
    return (await notify_owners("FormSent", "form_sent", sent, using_db=using_db, apps=apps, now=now)
            + await notify_owners("AutoConfirmComing", "auto_confirm_coming", coming, using_db=using_db, apps=apps,
                                  now=now))


async def bills_issued(bills: list[Any], *, using_db, apps: NotifyApps, now: dt.datetime | None = None) -> int:
    """BillIssued for each new bill; keys ``bill:<id>:BillIssued``."""
    from settlement.models import Plant

    plants = {p.id: p for p in await Plant.filter(id__in=list({b.plant_id for b in bills})).using_db(using_db)}
    items = [(bill.owner_id, {"bill_number": bill.number, "plant_name": plants[bill.plant_id].name,
                              "total_fen": bill.total_fen,
                              "owed_fen": bill.total_fen - bill.paid_fen - bill.credit_applied_fen,
                              "due_on": bill.due_on, "bill_id": bill.id}, f"bill:{bill.id}:BillIssued")
             for bill in bills]
    return await notify_owners("BillIssued", "bill_issued", items, using_db=using_db, apps=apps, now=now)


async def payment_received(bill: Any, payment: Any, *, using_db, apps: NotifyApps,
                           plant_name: str | None = None) -> int:
    """PaymentReceived to the bill's owner; keys ``bill:<id>:PaymentReceived:<payment id>``.

    This runs inside every payment's transaction (the busiest write of WeChat Pay notifications),
    so it is one statement when the caller already knows the plant's name, two otherwise.
    """
    if plant_name is None:
        from settlement.models import Plant

        plant_name = (await Plant.filter(id=bill.plant_id).using_db(using_db).values_list("name", flat=True))[0]
    payload = {"bill_number": bill.number, "plant_name": plant_name, "amount_fen": payment.amount_fen,
               "paid_at": payment.paid_at, "owed_fen": max(bill.total_fen - bill.paid_fen - bill.credit_applied_fen, 0),
               "bill_id": bill.id}
    # someone paying for the owner (family, finance staff with the pay right) gets the receipt too
    return await notify_owner_in_one_statement("PaymentReceived", bill.owner_id, "payment_received", payload,
                                               f"bill:{bill.id}:PaymentReceived:{payment.id}", using_db=using_db,
                                               apps=apps, also_identity=getattr(payment, "payer_id", None))


async def refund_done(refund: Any, payment: Any, *, using_db, apps: NotifyApps,
                      bill_number: str | None = None) -> int:
    """RefundDone to the payment's owner once the refund is done; key ``bill:<bill id>:RefundDone:<refund
    id>`` (``refund:<id>:RefundDone`` for a payment without a bill, a top-up, which names its order).

    A payment nobody owns yet (an unknown order) tells nobody. Content WeChat would refuse (the
    admin's reason) is written failed, as :func:`notify_owners` does: the refund does not fail for it.
    """
    if payment.owner_id is None:
        return 0
    if payment.bill_id is not None:
        if bill_number is None:
            from settlement.models import Bill

            bill_number = (await Bill.filter(id=payment.bill_id).using_db(using_db)
                           .values_list("number", flat=True))[0]
        key = f"bill:{payment.bill_id}:RefundDone:{refund.id}"
    else:
        bill_number, key = payment.out_trade_no or f"R{refund.id}", f"refund:{refund.id}:RefundDone"
    payload = {"bill_number": bill_number, "amount_fen": refund.amount_fen, "refunded_at": refund.settled_at,
               "reason": refund.reason}
    return await notify_owners("RefundDone", "refund_done", [(payment.owner_id, payload, key)],
                               using_db=using_db, apps=apps)


async def notify_owner_in_one_statement(event: str, owner_id: int, template: str, payload: Mapping[str, Any],
                                        key: str, *, using_db, apps: NotifyApps, now: dt.datetime | None = None,
                                        also_identity: int | None = None) -> int:
    """:func:`notify_owners` for one owner as a single INSERT … SELECT (no read first).

    The recipients are chosen in SQL by the rule of :func:`recipients_of_owner` (the owner's
    mini-program identities, else their official-account ones), plus the identity
    ``also_identity`` when given (whoever paid for the owner), and a key stored already is
    skipped by the unique dedupe key. Content WeChat would refuse is written failed with the
    reason, as :func:`notify_owners` does. Returns the rows written.
    """
    from settlement.owners.access import sql_for  # access imports the models, which import this module's users

    now = (now or utc_now()).astimezone(UTC)
    refused = None
    try:
        rendered = render(template, payload)
    except NotificationContentError as exc:
        rendered, refused = {}, f"content refused: {exc.message}"[:500]
    due = (quiet_until(now) or now) if template in REMINDERS else now
    postgres = using_db.capabilities.dialect == "postgres"
    cast = (lambda kind: f"CAST({{}} AS {kind})") if postgres else (lambda kind: "{}")
    oa = apps.oa_appid
    text = (
        "INSERT INTO outbox_message (dedupe_key, event, channel, recipient, app_id, template, payload, state, "
        "attempts, not_before, last_error, created_at) "
        f"SELECT {cast('TEXT')} || ':' || CAST(i.id AS TEXT), {cast('TEXT')}, "
        f"CASE WHEN i.app_id = {cast('TEXT')} AND i.app_id <> '' THEN 'template' ELSE 'subscribe' END, "
        f"i.openid, i.app_id, {cast('TEXT')}, {cast('JSONB')}, {cast('TEXT')}, 0, {cast('TIMESTAMPTZ')}, "
        f"{cast('TEXT')}, {cast('TIMESTAMPTZ')} "
        "FROM wechat_identity i WHERE (i.owner_id = {} AND (i.app_id <> {} OR NOT EXISTS "
        "(SELECT 1 FROM wechat_identity j WHERE j.owner_id = {} AND j.app_id <> {}))) OR i.id = {} "
        "ON CONFLICT (dedupe_key) DO NOTHING RETURNING id")
    body = json.dumps({**rendered, "context": _plain(payload)}, ensure_ascii=False)
    state = (OutboxState.FAILED if refused else OutboxState.PENDING).value
    values = [key, event[:32], oa, template, body, state, due, refused, now, owner_id, oa, owner_id, oa,
              also_identity if also_identity is not None else -1]
    # rows counted from RETURNING: tortoise's asyncpg client reads an INSERT's count from the wrong
    # field of the command tag ("INSERT 0 n")
    return len(await using_db.execute_query_dict(sql_for(text, using_db.capabilities.dialect), values))
