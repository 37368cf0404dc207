"""Prepaid accounts (预付费, DOMAIN.md "Smart payment"): money in first, usage charged daily.

Money
    Every movement is one :class:`~settlement.models.PrepaidEntry` under a key unique per
    account, so an event applied again moves nothing::

        top-up           +   topup:<transaction_id>           (WeChat Pay, same /pay/notify path as bills)
        daily charge     −   charge:<service>:<day>:<n>       (n-th posting for that day: only differences)
        true-up          ±   trueup:<bill id>                 (the month's bill from the confirmed form)
        refund           −   refund:<out_refund_no>           (taken when asked, like bill refunds)
        refund returned  +   refund-returned:<out_refund_no>  (WeChat Pay refused or closed it)

    balance = Σ top-ups − Σ refunds (+ returned), charges to date = Σ charges and true-ups,
    available = balance − charges to date = Σ entries = ``PrepaidAccount.available_fen``
    (written with each entry, under the account's row lock).

Daily charges
    Usage arrives as 15-minute intervals per service (:func:`record_usage`, again and late
    as often as it likes). A service's money for a settlement period (the plant's reading
    cycle when it follows the contract, else the calendar month) is worked out by
    billing_engine on the cumulative usage from the period's first day through day *d*:
    C(d). The charge of day *d* is C(d) − C(d−1), so tiers and fixed charges fall where the
    monthly bill puts them, and a late or corrected interval re-prices its day and the later
    days of the period, posting only what changed. A service that follows the contract is
    priced exactly as bills.py prices the plant's confirmed form (the contract's terms on
    self-use per DL/T 645 rate at the grid prices of the cycle's last day), so when the form
    is billed, :func:`true_up_bills` posts bill − Σ daily charges of the cycle and settles the
    bill from the account: prepaid and postpaid take the same money for the same energy.

Thresholds (a state machine on the account, each step taken once per crossing, moved by the
money: an entry, or the grace period running out)::

    normal ──available ≤ warning──▶ warned                  low_balance notice
    normal | warned ──available ≤ 0──▶ cutoff_pending       cut-off notice (out of the quiet hours), the
                                                            cut-off due a grace period after it goes out
    cutoff_pending ──due, not in quiet hours / on a holiday (if the agreement says so)──▶ cut_off
                                                            cut-off command
    cutoff_pending ──available > 0──▶ normal | warned       the unsent cut-off is cancelled
    cut_off ──available > 0──▶ normal | warned              restore command (unless the cut-off
                                                            was cancelled before it was ever sent)

Commands go out through :class:`settlement.ports.device_control.DeviceControl` from
:func:`run_commands`: an attempt is claimed in the database before the device is called (so a
top-up that comes meanwhile knows the cut-off may have run and restores), retried on
:data:`RETRY_AFTER`; after :data:`MAX_ATTEMPTS` unacknowledged attempts (or a refusal) the
supply is recorded unknown and staff are alarmed, once. A cut-off then fails for good; a
restore keeps being retried at the longest interval until the switch answers. A new cut-off
cancels pending restores and a restore cancels pending cut-offs, so a late retry never
undoes a newer decision.

Errors are :mod:`settlement.errors`' (InvalidInput, NotFound, Forbidden, Conflict).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import numpy as np
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from billing_engine import bill as interval_bill
from billing_engine import tou
from billing_engine.pricing import price_cycle
from settlement import audit
from settlement.notify import outbox
from settlement.pay import orders
from settlement import text as outside_text
from settlement.billing.bills import OPEN, contract_terms, grid_prices, owed_fen, tariff_for
from settlement.cycles.runs import RATES
from settlement.errors import Conflict, Forbidden, InvalidInput, NotFound
from settlement.models import (
    AlertState,
    Bill,
    BillState,
    CommandKind,
    CommandState,
    Contract,
    EntryKind,
    NotificationOutcome,
    Owner,
    Payment,
    PaymentChannel,
    PayOrderState,
    Plant,
    PlantAccess,
    PlantRight,
    PrepaidAccount,
    PrepaidEntry,
    PrepaidService,
    PrepaidUsage,
    ReadingCycle,
    Refund,
    RefundState,
    Staff,
    SupplyCommand,
    SupplyState,
    Tariff,
    TopUpOrder,
    Utility,
    WechatIdentity,
)
from settlement.money_text import format_yuan
from settlement.ports.device_control import CommandRefused, DeviceControl, NotAcknowledged
from settlement.ports.pay import OrderStatus, WechatPay
from settlement.clock import LOCAL, UTC, utc_now

log = logging.getLogger("pvsettle.prepaid")
STEP = dt.timedelta(minutes=15)
SLOTS = 96  # 15-minute intervals per day
MILLI = 1000  # quantities are stored in thousandths of the unit (Wh, litres)
MAX_INTERVAL_QUANTITY = Decimal(10**6)  # [unit] in 15 minutes: anything above is a broken meter
MAX_TOPUP_FEN = 10**8  # 100 万元 in one top-up
MAX_ATTEMPTS = 5
RETRY_AFTER = (dt.timedelta(minutes=1), dt.timedelta(minutes=5), dt.timedelta(minutes=15),
               dt.timedelta(hours=1))
QUIET_START, QUIET_END = outbox.QUIET_START, outbox.QUIET_END  # no cut-off 22:00–08:00 local
UNITS = {Utility.ELECTRICITY: ("kWh",), Utility.WATER: ("m3",), Utility.GAS: ("m3",)}


def _now(now: dt.datetime | None) -> dt.datetime:
    return (now or utc_now()).astimezone(UTC)


def _local_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=LOCAL).astimezone(UTC)


# --- accounts and services -------------------------------------------------------------------------


async def open_account(owner_id: int, name: str, switch_serial: str, *, plant_id: int | None = None,
                       warning_fen: int = 5000, grace_hours: int = 24, no_cutoff_quiet_hours: bool = True,
                       no_cutoff_holidays: bool = True, holidays: Sequence[dt.date] = (),
                       allow_pay_by_number: bool = False) -> PrepaidAccount:
    """A prepaid account for an owner, or for one of the owner's sites (``plant_id``).

    Parameters
    ----------
    warning_fen : [fen] low-balance warning level (DOMAIN.md: e.g. 50 元)
    grace_hours : [h] from the cut-off notice to the earliest cut-off
    holidays : local dates on which no cut-off is made when ``no_cutoff_holidays``
    switch_serial : the device that cuts and restores the site's supply
    """
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise InvalidInput("an account needs a name of at most 100 characters", code="bad_name")
    if not switch_serial or len(switch_serial) > 32:
        raise InvalidInput("an account needs its switch's serial (at most 32 characters)", code="bad_serial")
    if not isinstance(warning_fen, int) or warning_fen < 0 or not isinstance(grace_hours, int) \
            or not 0 <= grace_hours <= 24 * 14:
        raise InvalidInput("warning level ≥ 0 fen and a grace period of 0 to 336 hours", code="bad_terms")
    if await Owner.get_or_none(id=owner_id) is None:
        raise NotFound(f"no owner {owner_id}", code="not_found")
    if plant_id is not None and not await Plant.filter(id=plant_id, owner_id=owner_id).exists():
        raise NotFound(f"owner {owner_id} has no plant {plant_id}", code="not_found")
    days = sorted({d.isoformat() for d in holidays})
    for _ in range(5):
        # a random number: quoting it lets others pay, so it must not be guessable from another one
        number = "PA" + "".join(secrets.choice("0123456789") for _ in range(10))
        try:
            return await PrepaidAccount.create(
                number=number, owner_id=owner_id, plant_id=plant_id, name=name, switch_serial=switch_serial,
                warning_fen=warning_fen, grace_hours=grace_hours, no_cutoff_quiet_hours=no_cutoff_quiet_hours,
                no_cutoff_holidays=no_cutoff_holidays, holidays=days, allow_pay_by_number=allow_pay_by_number)
        except IntegrityError:
            continue
    raise Conflict("no free account number: try again", code="busy")


async def add_service(account_id: int, name: str, utility: Utility, unit: str, *, tariff_code: str | None = None,
                      follows_contract: bool = False, meter_id: int | None = None) -> PrepaidService:
    """A metered utility of an account, with its own tariff and unit.

    ``follows_contract`` (electricity in kWh of an account for one plant) prices it as the
    plant's monthly bill does; otherwise ``tariff_code`` names a stored tariff in
    billing_engine's format, whose prices are per unit (yuan/kWh, yuan/m3).
    """
    account = await PrepaidAccount.get_or_none(id=account_id)
    if account is None:
        raise NotFound(f"no prepaid account {account_id}", code="not_found")
    utility = Utility(utility)
    if unit not in UNITS[utility]:
        raise InvalidInput(f"{utility.value} is metered in {' or '.join(UNITS[utility])}, not {unit!r}",
                           code="bad_unit")
    if follows_contract:
        if utility != Utility.ELECTRICITY or account.plant_id is None:
            raise InvalidInput("only electricity of an account for one plant can follow the plant's contract",
                               code="bad_service")
        if not await Contract.filter(plant_id=account.plant_id).exists():
            raise NotFound("the plant has no contract", code="no_contract")
    elif not tariff_code or not await Tariff.filter(code=tariff_code).exists():
        raise NotFound(f"no tariff {tariff_code!r}", code="unknown_tariff")
    try:
        return await PrepaidService.create(account_id=account.id, name=name, utility=utility, unit=unit,
                                           tariff_code=None if follows_contract else tariff_code,
                                           follows_contract=follows_contract, meter_id=meter_id)
    except IntegrityError:
        raise Conflict(f"the account has a service named {name!r} already", code="duplicate_service") from None


async def _lock(account_id: int, conn) -> PrepaidAccount:
    return await PrepaidAccount.filter(id=account_id).using_db(conn).select_for_update().get()


async def _post(account: PrepaidAccount, kind: EntryKind, amount_fen: int, key: str, now: dt.datetime, conn,
                **fields: Any) -> PrepaidEntry | None:
    """One ledger entry on a locked account; None when its key is posted already (a repeat)."""
    if await PrepaidEntry.filter(account_id=account.id, key=key).using_db(conn).exists():
        return None
    account.available_fen += amount_fen
    entry = await PrepaidEntry.create(account_id=account.id, key=key, kind=kind, amount_fen=amount_fen,
                                      available_after_fen=account.available_fen, posted_at=now, using_db=conn,
                                      **fields)
    await PrepaidAccount.filter(id=account.id).using_db(conn).update(available_fen=account.available_fen)
    return entry


# --- usage and daily charges -----------------------------------------------------------------------


@dataclass
class UsageResult:
    """What :func:`record_usage` did: intervals new, changed or the same again, and the money."""

    stored: int = 0
    changed: int = 0
    unchanged: int = 0
    charged_fen: int = 0  # [fen] net charges posted (negative when a correction gave money back)
    days: tuple[dt.date, ...] = ()


def _interval_start(index: int, value: object) -> dt.datetime:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise InvalidInput(f"row {index}: start {value[:40]!r} is not an ISO datetime", code="bad_usage") from None
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise InvalidInput(f"row {index}: the start must be a datetime with its offset", code="bad_usage")
    value = value.astimezone(UTC)
    if value.minute % 15 or value.second or value.microsecond:
        raise InvalidInput(f"row {index}: {value.isoformat()} does not start a 15-minute interval", code="bad_usage")
    return value


def _quantity(index: int, value: object) -> int:
    try:
        q = Decimal(str(value)) if not isinstance(value, bool) else None
    except InvalidOperation:
        q = None
    if q is None or not q.is_finite() or q < 0 or q > MAX_INTERVAL_QUANTITY:
        raise InvalidInput(f"row {index}: quantity {str(value)[:20]!r} is not a number from 0 to "
                           f"{MAX_INTERVAL_QUANTITY}", code="bad_usage")
    return int((q * MILLI).to_integral_value(ROUND_HALF_UP))


async def record_usage(service_id: int, rows: Iterable[tuple[object, object]], *, apps: outbox.NotifyApps,
                       now: dt.datetime | None = None) -> UsageResult:
    """Store interval usage of a service and charge its days at once.

    Parameters
    ----------
    rows : (start, quantity) pairs: an aware datetime (or ISO text with offset) on a 15-minute
        boundary, and the quantity used in that interval [the service's unit, kWh or m3]. An
        interval received again with the same quantity is a repeat; with another one it is a
        correction. Intervals in the future are refused.
    apps : our WeChat apps, for the owner's low-balance and cut-off notices

    Raises
    ------
    InvalidInput : any bad row (nothing is stored)
    NotFound : no such service
    """
    now = _now(now)
    parsed: dict[dt.datetime, int] = {}
    for i, row in enumerate(rows):
        try:
            start, quantity = row
        except (TypeError, ValueError):
            raise InvalidInput(f"row {i}: a (start, quantity) pair", code="bad_usage") from None
        at = _interval_start(i, start)
        if at > now:
            raise InvalidInput(f"row {i}: the interval {at.isoformat()} has not started yet", code="bad_usage")
        parsed[at] = _quantity(i, quantity)
    service = await PrepaidService.get_or_none(id=service_id)
    if service is None:
        raise NotFound(f"no prepaid service {service_id}", code="not_found")
    result = UsageResult()
    if not parsed:
        return result
    async with in_transaction() as conn:
        account = await _lock(service.account_id, conn)
        stored = {u.interval_start.astimezone(UTC): u for u in await PrepaidUsage.filter(
            service_id=service.id, interval_start__in=list(parsed)).using_db(conn)}
        new, touched = [], set()
        for at, milli in parsed.items():
            old = stored.get(at)
            if old is None:
                new.append(PrepaidUsage(service_id=service.id, interval_start=at, quantity_milli=milli,
                                        received_at=now))
            elif old.quantity_milli != milli:
                await PrepaidUsage.filter(id=old.id).using_db(conn).update(
                    quantity_milli=milli, revision=old.revision + 1, received_at=now)
                result.changed += 1
            else:
                result.unchanged += 1
                continue
            touched.add(at.astimezone(LOCAL).date())
        await PrepaidUsage.bulk_create(new, using_db=conn)
        result.stored = len(new)
        if touched:
            result.charged_fen = await _recompute(service, account, touched, now, conn)
            if result.charged_fen:  # thresholds move with money, not with readings that cost nothing
                await _evaluate(account, now, conn, apps=apps)
        result.days = tuple(sorted(touched))
    return result


MAX_USAGE_ROWS = 5000


async def record_usage_batch(rows: Sequence[object], *, apps: outbox.NotifyApps,
                             now: dt.datetime | None = None) -> dict[str, int]:
    """A collector's batch ``[{"meter", "start", "quantity"}, …]`` for the prepaid services metered
    by those meters (:func:`record_usage` per service). The whole batch is checked first: a bad
    row or a meter no prepaid service reads refuses it all, naming the row, and stores nothing.

    Returns ``{"services", "stored", "changed", "unchanged", "charged_fen"}``.
    """
    now = _now(now)
    if not isinstance(rows, Sequence) or isinstance(rows, (str, bytes)) or len(rows) > MAX_USAGE_ROWS:
        raise InvalidInput(f"a batch is a list of at most {MAX_USAGE_ROWS} rows", code="bad_usage")
    by_meter: dict[str, list[tuple[dt.datetime, object]]] = defaultdict(list)
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("meter"), str) or "quantity" not in row:
            raise InvalidInput(f"row {i}: an object with meter, start and quantity", code="bad_usage")
        refused = outside_text.refusal(row, ("meter", "start", "quantity"), f"row {i}")
        if refused is not None:
            raise refused
        at = _interval_start(i, row.get("start"))
        if at > now:
            raise InvalidInput(f"row {i}: the interval {at.isoformat()} has not started yet", code="bad_usage")
        _quantity(i, row["quantity"])
        by_meter[row["meter"][:32]].append((at, row["quantity"]))
    services = {serial: sid for sid, serial in await PrepaidService.filter(meter__serial__in=list(by_meter))
                .values_list("id", "meter__serial")}
    unknown = sorted(set(by_meter) - set(services))
    if unknown:
        raise InvalidInput(f"no prepaid service reads meter {unknown[0]!r}", code="unknown_meter")
    done = {"services": len(by_meter), "stored": 0, "changed": 0, "unchanged": 0, "charged_fen": 0}
    for serial, meter_rows in by_meter.items():
        result = await record_usage(services[serial], meter_rows, now=now, apps=apps)
        for key in ("stored", "changed", "unchanged", "charged_fen"):
            done[key] += getattr(result, key)
    return done


@dataclass
class _Period:
    """A settlement period of a service: local days [first, end), and how it is priced."""

    first: dt.date
    end: dt.date
    label: str
    price: Any  # ("contract", terms, grid prices, tariff, rate periods) or ("tariff", tariff, Wh earlier in the year)


def _cycle_of(day: dt.date, reading_day: int) -> tuple[dt.date, dt.date]:
    first = day.replace(day=reading_day) if day.day >= reading_day else \
        (day.replace(day=1) - dt.timedelta(days=1)).replace(day=reading_day)
    end = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=reading_day)
    return first, end


async def _period(service: PrepaidService, day: dt.date, cache: dict) -> _Period:
    if service.follows_contract:
        account = await PrepaidAccount.get(id=service.account_id)
        plant = await Plant.get(id=account.plant_id)
        first, end = _cycle_of(day, plant.reading_day)
        # the latest contract version, as bills.py takes it for the plant's bill
        contract = await Contract.filter(plant_id=plant.id).order_by("-effective_from").first()
        if contract is None:
            raise NotFound(f"plant {plant.code} has no contract", code="no_contract")
        last = end - dt.timedelta(days=1)
        terms = contract_terms(contract)
        tariff = await tariff_for(contract.tariff_code, last, cache)
        prices, rate_periods = grid_prices(tariff, last, terms)
        return _Period(first, end, f"{end:%Y-%m}", ("contract", terms, prices, tariff, rate_periods))
    first = day.replace(day=1)
    end = (first + dt.timedelta(days=32)).replace(day=1)
    tariff = await tariff_for(service.tariff_code, first, cache)
    earlier = 0
    if any(v.tiers is not None and v.tiers.basis == "annual" for v in tariff.versions):
        # annual tier blocks count the year's usage before this month too
        earlier = sum(await PrepaidUsage.filter(
            service_id=service.id, interval_start__gte=_local_midnight(first.replace(month=1)),
            interval_start__lt=_local_midnight(first)).values_list("quantity_milli", flat=True))
    return _Period(first, end, f"{first:%Y-%m}", ("tariff", tariff, int(earlier)))


def _rate_of(period_name: str) -> int:
    """The DL/T 645 rate a tariff period's usage is registered under (deep valley counts as
    valley, anything unnamed as flat), as the meter's TOU registers would hold it."""
    if period_name in RATES:
        return RATES.index(period_name)
    return RATES.index("valley") if "valley" in period_name else RATES.index("flat")


async def _daily_usage(service: PrepaidService, period: _Period, last: dt.date, conn) -> np.ndarray:
    """Usage of each 15-minute slot from the period's first day through ``last`` [milli-unit]."""
    lo = _local_midnight(period.first)
    n_days = (last - period.first).days + 1
    hi = _local_midnight(last + dt.timedelta(days=1))
    dense = np.zeros(n_days * SLOTS, dtype=np.int64)
    rows = await PrepaidUsage.filter(service_id=service.id, interval_start__gte=lo, interval_start__lt=hi) \
        .using_db(conn).values_list("interval_start", "quantity_milli")
    for at, milli in rows:
        local = at.astimezone(LOCAL).replace(tzinfo=None)
        slot = int((local - dt.datetime.combine(period.first, dt.time())) / STEP)
        if 0 <= slot < dense.size:  # around a DST change there is none in China: every day has 96 slots
            dense[slot] = milli
    return dense


def cumulative_fen(period_price: Any, first: dt.date, dense: np.ndarray) -> np.ndarray:
    """C(d): the money of the period's usage from its first day through each day [fen].

    Parameters
    ----------
    period_price : a period's pricing (``_Period.price``)
    first : the period's first local day
    dense : ndarray of int64, shape (days × 96,) [milli-unit]: usage per 15-minute slot

    Returns
    -------
    ndarray of int64, shape (days,) [fen]
    """
    n_days = dense.size // SLOTS
    start = np.datetime64(first.isoformat(), "m")
    if period_price[0] == "contract":
        _, terms, prices, tariff, _ = period_price
        slots = start + np.arange(dense.size) * np.timedelta64(15, "m")
        period_of_slot = tou.classify(tariff, slots).period
        rate_of_period = np.array([_rate_of(name) for name in tariff.periods], dtype=np.int64)
        per_day = np.zeros((n_days, len(RATES)), dtype=np.int64)
        np.add.at(per_day, (np.arange(dense.size) // SLOTS, rate_of_period[period_of_slot]), dense)
        kwh = np.cumsum(per_day, axis=0) / MILLI
        return price_cycle(terms, prices, kwh).total_fen.astype(np.int64)
    _, tariff, earlier_milli = period_price
    return np.array([int(interval_bill(tariff, dense[:(d + 1) * SLOTS] / MILLI, start, 15,
                                       ytd_kwh=earlier_milli / MILLI).total_fen[0])
                     for d in range(n_days)], dtype=np.int64)


async def _settled_periods(service: PrepaidService, account: PrepaidAccount, labels: set[str], conn) -> set[str]:
    """Labels of the reading cycles whose bill was settled from the account already (final)."""
    if not service.follows_contract or not labels:
        return set()
    bill_ids = await Bill.filter(plant_id=account.plant_id, cycle__period__in=list(labels)) \
        .using_db(conn).values_list("id", "cycle__period")
    keys = {f"trueup:{bill_id}": period for bill_id, period in bill_ids}
    done = await PrepaidEntry.filter(account_id=account.id, key__in=list(keys)).using_db(conn) \
        .values_list("key", flat=True)
    return {keys[k] for k in done}


async def _recompute(service: PrepaidService, account: PrepaidAccount, touched: set[dt.date], now: dt.datetime,
                     conn) -> int:
    """Charge the touched days and the later days of their periods; returns the net posted [fen]."""
    cache: dict = {}
    periods: dict[str, tuple[_Period, dt.date]] = {}
    for day in sorted(touched):
        period = await _period(service, day, cache)
        if period.label not in periods:
            periods[period.label] = (period, day)
    settled = await _settled_periods(service, account, set(periods), conn)
    posted_total = 0
    for label, (period, first_touched) in periods.items():
        if label in settled:
            # the month's bill settled this cycle: the confirmed form is final, as for postpaid
            log.info("usage for settled cycle %s of account %s not charged again", label, account.number)
            continue
        lo, hi = _local_midnight(period.first), _local_midnight(period.end)
        latest = await PrepaidUsage.filter(service_id=service.id, interval_start__gte=lo, interval_start__lt=hi) \
            .using_db(conn).order_by("-interval_start").first()
        last_charged = await PrepaidEntry.filter(account_id=account.id, service_id=service.id,
                                                 kind=EntryKind.CHARGE, day__gte=period.first, day__lt=period.end) \
            .using_db(conn).order_by("-day").first()
        last = max(d for d in (latest.interval_start.astimezone(LOCAL).date() if latest else None,
                               last_charged.day if last_charged else None, first_touched) if d)
        dense = await _daily_usage(service, period, last, conn)
        # a day per engine call for interval tariffs: in a thread, as the cycle run's arrays are
        # (settlement.cycles.runs), so a month of usage does not hold the event loop
        loop = asyncio.get_running_loop()
        money = await loop.run_in_executor(None, cumulative_fen, period.price, period.first, dense)
        per_day_milli = dense.reshape(-1, SLOTS).sum(axis=1)
        posted: dict[dt.date, tuple[int, int]] = defaultdict(lambda: (0, 0))
        for day, amount in await PrepaidEntry.filter(
                account_id=account.id, service_id=service.id, kind=EntryKind.CHARGE, day__gte=first_touched,
                day__lte=last).using_db(conn).values_list("day", "amount_fen"):
            fen, n = posted[day]
            posted[day] = (fen - amount, n + 1)
        day = first_touched
        while day <= last:
            i = (day - period.first).days
            target = int(money[i] - (money[i - 1] if i else 0))
            already, n = posted[day]
            if target != already:
                await _post(account, EntryKind.CHARGE, already - target, f"charge:{service.id}:{day}:{n + 1}", now,
                            conn, service_id=service.id, day=day, quantity_milli=int(per_day_milli[i]),
                            note=f"{service.name} {day:%m-%d}" if not n else f"{service.name} {day:%m-%d} 补差")
                posted_total += target - already
            day += dt.timedelta(days=1)
    return posted_total


# --- thresholds and supply commands ----------------------------------------------------------------


def cutoff_allowed(account: PrepaidAccount, at: dt.datetime) -> bool:
    """Whether the agreement lets supply be cut at ``at`` (quiet hours, holidays)."""
    local = at.astimezone(LOCAL)
    if account.no_cutoff_quiet_hours and not QUIET_END <= local.time() < QUIET_START:
        return False
    if account.no_cutoff_holidays and local.date().isoformat() in (account.holidays or []):
        return False
    return True


def _notice(account: PrepaidAccount, amount_fen: int, at: dt.datetime, what: str) -> dict[str, Any]:
    return {"account_name": account.name, "account_number": account.number, "amount_fen": max(amount_fen, 0),
            "at": at, "what": what}


async def _command(account: PrepaidAccount, kind: CommandKind, now: dt.datetime, conn) -> SupplyCommand:
    other = CommandKind.RESTORE if kind == CommandKind.CUT_OFF else CommandKind.CUT_OFF
    # a newer decision wins: a retry of the opposite command must never undo it
    await SupplyCommand.filter(account_id=account.id, kind=other, state=CommandState.PENDING).using_db(conn) \
        .update(state=CommandState.CANCELLED, last_error="overtaken by a newer command")
    n = account.crossings if kind == CommandKind.CUT_OFF else account.restores
    return await SupplyCommand.create(
        command_id=f"{account.number}-{'C' if kind == CommandKind.CUT_OFF else 'R'}{n}", account_id=account.id,
        kind=kind, target_serial=account.switch_serial, next_attempt_at=now, created_at=now, using_db=conn)


async def _lift(account: PrepaidAccount, now: dt.datetime, conn) -> bool:
    """Available is above zero again: cancel a cut-off not yet sent, restore if one may have run.
    Returns whether a restore command was issued."""
    pending = await SupplyCommand.filter(account_id=account.id, kind=CommandKind.CUT_OFF,
                                         state=CommandState.PENDING).using_db(conn)
    maybe_cut = any(c.attempts > 0 for c in pending)
    if pending:
        await SupplyCommand.filter(id__in=[c.id for c in pending]).using_db(conn).update(
            state=CommandState.CANCELLED, last_error="the account was topped up")
    if account.alert_state == AlertState.CUT_OFF and (maybe_cut or account.supply != SupplyState.ON):
        account.restores += 1
        await _command(account, CommandKind.RESTORE, now, conn)
        return True
    return False


async def _evaluate(account: PrepaidAccount, now: dt.datetime, conn, *, apps: outbox.NotifyApps) -> None:
    """Move the locked account's alert state for its available balance at ``now`` (once per crossing)."""
    before = (account.alert_state, account.cutoff_due_at, account.warnings, account.crossings, account.restores)
    available, state = account.available_fen, account.alert_state
    if available > 0:
        if state in (AlertState.CUTOFF_PENDING, AlertState.CUT_OFF):
            await _lift(account, now, conn)
            account.cutoff_due_at = None
            account.alert_state = AlertState.NORMAL if available > account.warning_fen else AlertState.WARNED
        elif available > account.warning_fen:
            account.alert_state = AlertState.NORMAL
        elif state == AlertState.NORMAL:
            account.warnings += 1
            account.alert_state = AlertState.WARNED
            await outbox.notify_owner("LowBalance", account.owner_id, "low_balance",
                                      {"owner_name": account.name, "balance_fen": available, "checked_at": now},
                                      f"prepaid:{account.id}:warn:{account.warnings}", using_db=conn, apps=apps,
                                      now=now)
    else:
        if state in (AlertState.NORMAL, AlertState.WARNED):
            account.crossings += 1
            account.alert_state = AlertState.CUTOFF_PENDING
            # the notice waits out the quiet hours, and the grace period runs from when it goes out
            told_at = outbox.quiet_until(now) or now
            account.cutoff_due_at = told_at + dt.timedelta(hours=account.grace_hours)
            await outbox.notify_owner("CutOffPending", account.owner_id, "prepaid_notice",
                                      _notice(account, -available, account.cutoff_due_at, "已欠费，请在停电前充值"),
                                      f"prepaid:{account.id}:cutoff-notice:{account.crossings}", using_db=conn,
                                      apps=apps, not_before=told_at, now=now)
        if account.alert_state == AlertState.CUTOFF_PENDING and now >= account.cutoff_due_at \
                and cutoff_allowed(account, now):
            account.alert_state = AlertState.CUT_OFF
            await _command(account, CommandKind.CUT_OFF, now, conn)
    after = (account.alert_state, account.cutoff_due_at, account.warnings, account.crossings, account.restores)
    if after != before:
        await PrepaidAccount.filter(id=account.id).using_db(conn).update(
            alert_state=account.alert_state, cutoff_due_at=account.cutoff_due_at, warnings=account.warnings,
            crossings=account.crossings, restores=account.restores)
        await audit.record(audit.SYSTEM, "PrepaidThreshold", "prepaid_account", account.id,
                           before={"state": before[0], "available_fen": available},
                           after={"state": account.alert_state, "cutoff_due_at": account.cutoff_due_at},
                           using_db=conn)


async def run_commands(device: DeviceControl, now: dt.datetime | None = None, *,
                       apps: outbox.NotifyApps) -> dict[str, int]:
    """Send the supply commands that are due; returns counts of what became of them."""
    now = _now(now)
    done = {"commands_acknowledged": 0, "commands_retrying": 0, "commands_failed": 0}
    commands = await SupplyCommand.filter(state=CommandState.PENDING, next_attempt_at__lte=now).order_by("id")
    accounts = {a.id: a for a in await PrepaidAccount.filter(id__in={c.account_id for c in commands})}
    for command in commands:
        if command.kind == CommandKind.CUT_OFF and not cutoff_allowed(accounts[command.account_id], now):
            continue  # a retry, too, waits out the quiet hours and holidays
        attempts = command.attempts + 1
        retry_at = now + RETRY_AFTER[min(command.attempts, len(RETRY_AFTER) - 1)]
        # claimed before the device is called: a top-up from now on knows this may have run
        claimed = await SupplyCommand.filter(id=command.id, state=CommandState.PENDING,
                                             attempts=command.attempts).update(attempts=attempts,
                                                                               next_attempt_at=retry_at)
        if not claimed:
            continue  # another process took it, or a top-up cancelled it
        try:
            ack = await device.send(command.command_id, command.target_serial, command.kind.value)
        except NotAcknowledged as exc:
            # a cut-off is given up after MAX_ATTEMPTS; a restore never is (a paid site must get its
            # supply back), it is retried at the longest interval after staff were alarmed
            give_up = command.kind == CommandKind.CUT_OFF and attempts >= MAX_ATTEMPTS
            await _unacknowledged(command, str(exc), now, give_up=give_up, alarm=attempts == MAX_ATTEMPTS, apps=apps)
            done["commands_failed" if give_up else "commands_retrying"] += 1
            continue
        except CommandRefused as exc:
            await _unacknowledged(command, str(exc), now, give_up=True, alarm=True, apps=apps)
            done["commands_failed"] += 1
            continue
        async with in_transaction() as conn:
            account = await _lock(command.account_id, conn)
            await SupplyCommand.filter(id=command.id).using_db(conn).update(
                state=CommandState.ACKNOWLEDGED, acknowledged_at=now, last_error=None)
            supply = SupplyState.ON if ack.supply_on else SupplyState.OFF
            await PrepaidAccount.filter(id=account.id).using_db(conn).update(supply=supply)
            cut = command.kind == CommandKind.CUT_OFF
            await outbox.notify_owner("SupplyCutOff" if cut else "SupplyRestored", account.owner_id, "prepaid_notice",
                                      _notice(account, abs(account.available_fen), now,
                                              "已欠费停电，充值后自动复电" if cut else "已恢复供电"),
                                      f"prepaid:{account.id}:cmd:{command.id}", using_db=conn, apps=apps, now=now)
            await audit.record(audit.SYSTEM, "SupplyCommandAcknowledged", "prepaid_account", account.id,
                               after={"command": command.command_id, "kind": command.kind, "supply": supply},
                               using_db=conn)
        done["commands_acknowledged"] += 1
    return done


async def _unacknowledged(command: SupplyCommand, error: str, now: dt.datetime, *, give_up: bool,
                          alarm: bool, apps: outbox.NotifyApps) -> None:
    async with in_transaction() as conn:
        account = await _lock(command.account_id, conn)
        current = await SupplyCommand.filter(id=command.id).using_db(conn).get()
        if current.state != CommandState.PENDING:
            return  # cancelled meanwhile by a newer decision: nothing to retry or alarm
        await SupplyCommand.filter(id=command.id).using_db(conn).update(
            state=CommandState.FAILED if give_up else CommandState.PENDING, last_error=error[:200])
        if not alarm:
            return
        # the device may or may not have switched: nobody may believe either state any more
        await PrepaidAccount.filter(id=account.id).using_db(conn).update(supply=SupplyState.UNKNOWN)
        what = "断电指令未确认" if command.kind == CommandKind.CUT_OFF else "复电指令未确认"
        await outbox.notify_staff("DeviceAlarm", "outage_alarm",
                                  {"plant_name": account.name, "plant_code": account.number, "started_at": now,
                                   "what": what}, f"prepaid:cmd:{command.id}:alarm", using_db=conn, apps=apps, now=now)
        await audit.record(audit.SYSTEM, "SupplyCommandFailed" if give_up else "SupplyCommandUnacknowledged",
                           "prepaid_account", account.id,
                           after={"command": command.command_id, "kind": command.kind,
                                  "attempts": current.attempts, "error": error[:200]}, using_db=conn)


async def tick(now: dt.datetime | None = None, device: DeviceControl | None = None, *,
               apps: outbox.NotifyApps) -> dict[str, int]:
    """The scheduler's prepaid step: cut-offs whose grace is over, true-ups of issued bills, and
    (with a device port) the supply commands that are due. Safe to run again.

    ``device`` is the device-control adapter of this process (the scheduler passes the one on the
    app); None: the commands wait, pending, for a process that has one. ``apps`` are our WeChat
    apps, for the notices and alarms these steps write."""
    now = _now(now)
    done = {"prepaid_evaluated": 0}
    due = await PrepaidAccount.filter(alert_state=AlertState.CUTOFF_PENDING, cutoff_due_at__lte=now) \
        .values_list("id", flat=True)
    for account_id in due:
        async with in_transaction() as conn:
            await _evaluate(await _lock(account_id, conn), now, conn, apps=apps)
        done["prepaid_evaluated"] += 1
    done["prepaid_true_ups"] = await true_up_bills(now, apps=apps)
    if device is not None:
        done.update(await run_commands(device, now, apps=apps))
    return done


# --- the month's settlement ------------------------------------------------------------------------


async def true_up_bills(now: dt.datetime | None = None, *, apps: outbox.NotifyApps) -> int:
    """Settle each open bill of a prepaid plant from its account: post bill − Σ daily charges of
    the cycle (a true-up, either sign) and mark the bill paid. A bill of a cycle in which the
    account charged nothing (it was opened later) stays a postpaid bill. Returns how many were settled."""
    now = _now(now)
    settled = 0
    services = await PrepaidService.filter(follows_contract=True).values_list("account_id", "id")
    by_account: dict[int, list[int]] = defaultdict(list)
    for account_id, service_id in services:
        by_account[account_id].append(service_id)
    for account in await PrepaidAccount.filter(id__in=list(by_account), plant_id__isnull=False):
        trued_up = set(await PrepaidEntry.filter(account_id=account.id, kind=EntryKind.TRUE_UP)
                       .values_list("key", flat=True))
        for bill in await Bill.filter(plant_id=account.plant_id, state__in=list(OPEN)).order_by("id"):
            # unlocked first looks, so that a tick costs no transaction per waiting bill; both are
            # looked at again under the locks
            if f"trueup:{bill.id}" in trued_up:
                continue
            cycle = await ReadingCycle.get(id=bill.cycle_id)
            if not await PrepaidEntry.filter(account_id=account.id, service_id__in=by_account[account.id],
                                             kind=EntryKind.CHARGE,
                                             day__gte=cycle.starts_at.astimezone(LOCAL).date(),
                                             day__lt=cycle.ends_at.astimezone(LOCAL).date()).exists():
                continue
            async with in_transaction() as conn:
                locked = await _lock(account.id, conn)
                key = f"trueup:{bill.id}"
                if await PrepaidEntry.filter(account_id=locked.id, key=key).using_db(conn).exists():
                    continue
                bill = await Bill.filter(id=bill.id).using_db(conn).select_for_update().get()
                if bill.state not in OPEN:
                    continue
                first = cycle.starts_at.astimezone(LOCAL).date()
                end = cycle.ends_at.astimezone(LOCAL).date()
                charges = await PrepaidEntry.filter(account_id=locked.id, service_id__in=by_account[account.id],
                                                    kind=EntryKind.CHARGE, day__gte=first, day__lt=end) \
                    .using_db(conn).values_list("amount_fen", flat=True)
                if not charges:
                    continue  # the account charged nothing in this cycle (opened later): a postpaid bill
                charged = -int(sum(charges))
                owed = owed_fen(bill)
                await _post(locked, EntryKind.TRUE_UP, charged - owed, key, now, conn, bill_id=bill.id,
                            note=f"{bill.number} 结算 {format_yuan(owed, grouping=False)} 元，"
                                 f"已扣 {format_yuan(charged, grouping=False)} 元")
                before = {"state": bill.state, "paid_fen": bill.paid_fen}
                await Bill.filter(id=bill.id).using_db(conn).update(paid_fen=bill.paid_fen + owed,
                                                                     state=BillState.PAID)
                await audit.record(audit.SYSTEM, "SettleFromPrepaid", "bill", bill.id, before=before,
                                   after={"state": BillState.PAID, "paid_fen": bill.paid_fen + owed,
                                          "account": locked.number, "charged_fen": charged,
                                          "true_up_fen": charged - owed}, using_db=conn)
                await _evaluate(locked, now, conn, apps=apps)
                settled += 1
    return settled


# --- top-ups ---------------------------------------------------------------------------------------


async def may_top_up(identity: WechatIdentity, account: PrepaidAccount) -> None:
    """The owner, a user with the pay right on the account's site (any of the owner's sites for
    an owner-wide account), or anyone quoting the number when the owner allows it.

    Raises NotFound when the user may not know the account exists, Forbidden when they may only view.
    """
    if identity.owner_id is not None and identity.owner_id == account.owner_id:
        return
    plants = [account.plant_id] if account.plant_id is not None else \
        await Plant.filter(owner_id=account.owner_id).values_list("id", flat=True)
    rights = await PlantAccess.filter(plant_id__in=plants, identity_id=identity.id, revoked_at__isnull=True) \
        .values_list("right", flat=True)
    if PlantRight.PAY in [PlantRight(r) for r in rights] or account.allow_pay_by_number:
        return
    if rights:
        raise Forbidden("topping up this account needs the pay right on its site", code="right_required")
    raise NotFound("no such account", code="not_found")


async def start_topup(pay: WechatPay, account_number: str, identity_id: int, amount_fen: int, *,
                      now: dt.datetime | None = None) -> orders.JsapiPayment:
    """A JSAPI prepay order topping up a prepaid account by ``amount_fen`` [fen], for its owner or
    whoever may pay for it (:func:`may_top_up`); paid through /pay/notify like a bill."""
    now = _now(now)
    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or not 0 < amount_fen <= MAX_TOPUP_FEN:
        raise InvalidInput(f"a top-up is a whole number of fen from 1 to {MAX_TOPUP_FEN}", code="bad_amount")
    identity = await WechatIdentity.get_or_none(id=identity_id)
    account = await PrepaidAccount.get_or_none(number=str(account_number)[:20])
    if identity is None or account is None:
        raise NotFound("no such account", code="not_found")
    await may_top_up(identity, account)
    # another top-up of the same account may take the attempt number first
    order = await orders.next_attempt(
        TopUpOrder, {"account_id": account.id},
        lambda attempt: f"{orders.TOPUP_PREFIX}{now.astimezone(LOCAL):%y%m%d}A{account.id}N{attempt}",
        amount_fen=amount_fen, payer_id=identity.id, payer_openid=identity.openid, expires_at=now + orders.ORDER_TTL)
    if order is None:
        raise Conflict("too many top-ups are being started for this account at once: try again", code="busy")
    return await orders.prepay(pay, order, f"预付费充值 {account.number}", now)


NEUTRAL_PAYER = "微信用户"  # a payer who gave no name: never a piece of their openid (issue #24 point 6)
PAYER_NAME_MAX = 8  # [characters] so that "<name>充值，余额…元" fits a 20-character thing field


def _payer_name(payer: WechatIdentity | None, account: PrepaidAccount) -> str:
    """Who topped up, as the owner's notice says it: 本人, the name the payer gave, or a neutral word."""
    if payer is None:
        return "他人"
    if payer.owner_id == account.owner_id:
        return "本人"
    name = " ".join((payer.nickname or "").split())
    if not name or outside_text.problem(name) or payer.openid in name:
        return NEUTRAL_PAYER
    return name if len(name) <= PAYER_NAME_MAX else name[:PAYER_NAME_MAX - 1] + "…"


async def settle_topup(status: OrderStatus, via: str, now: dt.datetime, conn, *,
                       apps: outbox.NotifyApps) -> orders.Handled | None:
    """Record a paid top-up at most once (called by :mod:`settlement.pay.payments` in its transaction);
    None when ``status`` names no top-up order of ours."""
    order = await TopUpOrder.filter(out_trade_no=status.out_trade_no).using_db(conn).select_for_update().first()
    if order is None:
        return None
    if status.amount_fen != order.amount_fen or (status.currency or "CNY") != "CNY":
        raise orders.Refuse(400, f"amount {status.amount_fen} {status.currency} is not the top-up's "
                                    f"{order.amount_fen} CNY")
    existing = await Payment.filter(transaction_id=status.transaction_id).using_db(conn).first()
    if existing is not None:
        if existing.out_trade_no != order.out_trade_no:
            raise orders.Refuse(409, "this transaction_id is recorded for another order")
        return orders.Handled(204, NotificationOutcome.DUPLICATE, "already recorded")
    if order.state == PayOrderState.PAID:
        raise orders.Refuse(409, "the top-up is already paid by another transaction")
    account = await _lock(order.account_id, conn)
    payment = await Payment.create(transaction_id=status.transaction_id, out_trade_no=order.out_trade_no,
                                   channel=PaymentChannel.WECHAT, owner_id=account.owner_id, payer_id=order.payer_id,
                                   amount_fen=status.amount_fen, paid_at=status.success_time or now,
                                   source_record=dict(status.raw), using_db=conn)
    await _post(account, EntryKind.TOPUP, order.amount_fen, f"topup:{status.transaction_id}", now, conn,
                payment_id=payment.id, payer_id=order.payer_id, note=f"微信支付 {order.out_trade_no}")
    order.state, order.transaction_id, order.settled_at = PayOrderState.PAID, status.transaction_id, now
    await order.save(using_db=conn, update_fields=["state", "transaction_id", "settled_at"])
    payer = await WechatIdentity.get_or_none(id=order.payer_id).using_db(conn) if order.payer_id else None
    name = _payer_name(payer, account)
    await audit.record(f"wechatpay:{via}", "TopUpPrepaid", "prepaid_account", account.id,
                       after={"transaction_id": status.transaction_id, "amount_fen": order.amount_fen,
                              "payer_id": order.payer_id, "available_fen": account.available_fen}, using_db=conn)
    # the owner is told of every top-up, and by whom when someone else paid
    await outbox.notify_owner("TopUpReceived", account.owner_id, "prepaid_notice",
                              _notice(account, order.amount_fen, now,
                                      f"{name}充值，余额{format_yuan(account.available_fen, grouping=False)}元"),
                              f"prepaid:{account.id}:topup:{payment.id}", using_db=conn, apps=apps, now=now)
    await _evaluate(account, now, conn, apps=apps)
    return orders.Handled(204, NotificationOutcome.ACCEPTED)


# --- refunds ---------------------------------------------------------------------------------------


async def reserve_topup_refund(payment_id: int, amount_fen: int, reason: str, staff: Staff | None, *,
                               apps: outbox.NotifyApps, now: dt.datetime | None = None) -> tuple[Refund, Payment]:
    """The pending refund of (part of) a top-up that an admin asks for, with a reason: the money
    leaves the account now; if WeChat Pay refuses or closes it, it comes back (:func:`return_refund`).
    WeChat Pay is asked by :func:`settlement.pay.payments.refund_topup`, which calls this.

    Raises
    ------
    Forbidden : not an active admin
    InvalidInput : no reason, or not whole positive fen
    NotFound : no such top-up
    Conflict : more than is left of the payment or available on the account
    """
    reason = orders.refund_reason(staff, reason, amount_fen, MAX_TOPUP_FEN)
    now = _now(now)
    async with in_transaction() as conn:
        payment = await Payment.filter(id=payment_id).using_db(conn).select_for_update().first()
        order = await TopUpOrder.filter(out_trade_no=payment.out_trade_no).using_db(conn).first() \
            if payment is not None and payment.out_trade_no else None
        if order is None:
            raise NotFound(f"no top-up payment {payment_id}", code="unknown_payment")
        account = await _lock(order.account_id, conn)
        left = await orders.refundable_fen(payment, using_db=conn)
        if amount_fen > min(left, account.available_fen):
            raise Conflict(f"at most {max(min(left, account.available_fen), 0)} fen of this top-up can be "
                           f"refunded now", code="refund_too_large")
        attempt = await Refund.filter(payment_id=payment.id).using_db(conn).count() + 1
        refund = await Refund.create(payment_id=payment.id, out_refund_no=f"R{payment.id}N{attempt}",
                                     amount_fen=amount_fen, reason=reason, requested_by_id=staff.id,
                                     state=RefundState.PENDING, using_db=conn)
        await _post(account, EntryKind.REFUND, -amount_fen, f"refund:{refund.out_refund_no}", now, conn,
                    payment_id=payment.id, note=reason[:200])
        await audit.record(audit.actor_of(staff), "RefundTopUp", "prepaid_account", account.id,
                           after={"out_refund_no": refund.out_refund_no, "amount_fen": amount_fen,
                                  "available_fen": account.available_fen}, reason=reason, using_db=conn)
        await _evaluate(account, now, conn, apps=apps)
    return refund, payment


async def return_refund(refund: Refund, payment: Payment, conn, why: str, *, apps: outbox.NotifyApps) -> None:
    """A top-up refund that did not happen: its money comes back to the account (once)."""
    order = await TopUpOrder.filter(out_trade_no=payment.out_trade_no).using_db(conn).get()
    account = await _lock(order.account_id, conn)
    now = _now(None)
    await _post(account, EntryKind.REFUND_RETURNED, refund.amount_fen, f"refund-returned:{refund.out_refund_no}",
                now, conn, payment_id=payment.id, note=f"退款 {refund.out_refund_no} {why}"[:200])
    await _evaluate(account, now, conn, apps=apps)


# --- what owners see -------------------------------------------------------------------------------


async def balance(account_id: int) -> dict[str, Any]:
    """``{"number", "available_fen", "balance_fen", "charges_fen", "state", "supply"}``: balance is
    what was paid in (top-ups less refunds), charges to date what was used; available = their difference."""
    account = await PrepaidAccount.get_or_none(id=account_id)
    if account is None:
        raise NotFound(f"no prepaid account {account_id}", code="not_found")
    sums: dict[str, int] = defaultdict(int)
    for kind, amount in await PrepaidEntry.filter(account_id=account.id).values_list("kind", "amount_fen"):
        sums[EntryKind(kind).value] += amount
    paid_in = sums["topup"] + sums["refund"] + sums["refund_returned"]
    charges = -(sums["charge"] + sums["true_up"])
    return {"number": account.number, "available_fen": account.available_fen, "balance_fen": paid_in,
            "charges_fen": charges, "state": account.alert_state.value, "supply": account.supply.value}


async def statement(account_id: int, *, first: dt.date | None = None, end: dt.date | None = None) -> dict[str, Any]:
    """Every movement of the account (posted in [first, end) local days when given), each
    service's usage and charges in its own unit, and the totals, on one statement."""
    account = await PrepaidAccount.get_or_none(id=account_id)
    if account is None:
        raise NotFound(f"no prepaid account {account_id}", code="not_found")
    query = PrepaidEntry.filter(account_id=account.id)
    if first is not None:
        query = query.filter(posted_at__gte=_local_midnight(first))
    if end is not None:
        query = query.filter(posted_at__lt=_local_midnight(end))
    services = {s.id: s for s in await PrepaidService.filter(account_id=account.id).order_by("id")}
    per_service: dict[int, list[int]] = {sid: [0, 0] for sid in services}
    usage = PrepaidUsage.filter(service_id__in=list(services))
    if first is not None:
        usage = usage.filter(interval_start__gte=_local_midnight(first))
    if end is not None:
        usage = usage.filter(interval_start__lt=_local_midnight(end))
    for service_id, milli in await usage.values_list("service_id", "quantity_milli"):
        per_service[service_id][1] += milli
    entries = []
    for e in await query.order_by("id"):
        if e.service_id in per_service and e.kind == EntryKind.CHARGE:
            per_service[e.service_id][0] -= e.amount_fen
        entries.append({"posted_at": e.posted_at.isoformat(), "kind": e.kind.value, "amount_fen": e.amount_fen,
                        "available_after_fen": e.available_after_fen, "day": e.day.isoformat() if e.day else None,
                        "service": services[e.service_id].name if e.service_id in services else None,
                        "quantity": None if e.quantity_milli is None else e.quantity_milli / MILLI,
                        "note": e.note})
    return {"account": await balance(account.id),
            "services": [{"name": s.name, "utility": s.utility.value, "unit": s.unit,
                          "quantity": per_service[sid][1] / MILLI, "charged_fen": per_service[sid][0]}
                         for sid, s in services.items()],
            "entries": entries}
