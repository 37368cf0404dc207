"""Bills from confirmed forms, payments, account credit and late fees. Every amount is integer fen.

States::

    open ──payment──▶ partly_paid ──payment──▶ paid
      └──────────────────payment──────────────▶ paid
    open | partly_paid ──admin writes off──▶ written_off

Rules written down
------------------
* **Pricing.** A confirmed form's self-use per rate (DL/T 645 rates 1–4: sharp, peak, flat,
  valley) is priced by billing_engine under the plant's contract at the grid prices of the
  tariff version in force on the cycle's last day, in that day's month (a rate the tariff does
  not name is priced as the next lower one it does: sharp as peak). Contracts whose prices
  exclude VAT get grid prices with the VAT taken out.
* **Nearby-consumption fees.** When the plant's contract says the owner bears them
  (``owner_bears_nearby_fees``) and the plant has NearbyConsumptionTerms in force on the last
  day of the cycle's period, the bill also carries the capacity charge, the system operation fee
  and the wire-loss cost on the form's grid-drawn kWh, as lines after the energy lines — the
  same fees the staff's monthly report shows, from :mod:`settlement.billing.nearby`, in the
  contract's VAT basis. Without the flag, or without terms in force, the bill has no such lines.
* **Total.** ``total_fen`` is the sum of the bill's lines; lines are rounded once, half up, by
  the engine. Late-fee lines are added to an issued bill as their own lines, never changing
  the lines that were there.
* **Owed.** owed = total − paid − credit applied. Account credit (from overpayments) is applied
  when a bill is issued. A payment beyond what is owed becomes account credit.
* **Late fee.** From the day after the due date until payment, on the principal still unpaid
  (payments count against the principal first), at the contract's daily rates (residential
  owners at the residential rate, others at the current-year and cross-year rates), with the
  1 元 minimum on the bill's total late fee. Each accrual adds one line for the fee grown since
  the last one, keyed by the date it runs to, so the same span is never charged twice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import defaultdict
from decimal import Decimal

import numpy as np
from tortoise.transactions import in_transaction

from billing_engine import money
from billing_engine.pricing import ContractTerms, price_cycle
from billing_engine.tariff import Tariff as EngineTariff
from billing_engine.tariff_files import parse as parse_tariff
from settlement import audit
from settlement.billing import nearby
from settlement.notify import outbox
from settlement.context import request_id_var
from settlement.cycles.runs import RATES, contract_cut_off, parse_period
from settlement.errors import Conflict, Forbidden, InvalidInput, NotFound
from settlement.models import (
    AuditEvent,
    Bill,
    BillLine,
    BillState,
    ConfirmationForm,
    Contract,
    CreditEntry,
    FormState,
    LineKind,
    Payment,
    PaymentChannel,
    Plant,
    PricingModel,
    ReadingCycle,
    Staff,
    StaffRole,
    Tariff,
)
from settlement.clock import LOCAL, UTC, utc_now

ENGINE_MODEL = {PricingModel.GRID_DISCOUNT: "discount", PricingModel.FIXED_PRICE: "fixed",
                PricingModel.TIERED: "tiered"}
RATE_ZH = {"sharp": "尖", "peak": "峰", "flat": "平", "valley": "谷"}
FALLBACK = {"sharp": "peak", "peak": "flat", "valley": "valley", "flat": "flat"}
OPEN = (BillState.OPEN, BillState.PARTLY_PAID)
BATCH = 500
MAX_PAYMENT_FEN = 10**12  # 100 亿元: far beyond any plant's bill, far inside a BIGINT


def owed_fen(bill: Bill) -> int:
    return bill.total_fen - bill.paid_fen - bill.credit_applied_fen


def state_of(bill: Bill) -> BillState:
    if owed_fen(bill) <= 0:
        return BillState.PAID
    return BillState.PARTLY_PAID if bill.paid_fen + bill.credit_applied_fen > 0 else BillState.OPEN


def contract_terms(contract: Contract) -> ContractTerms:
    tiers = tuple((None if up is None else str(up), str(price)) for up, price in (contract.tiers or ()))
    return ContractTerms(
        model=ENGINE_MODEL[contract.pricing_model], discount=contract.discount or "1",
        floor_price=contract.floor_price, cap_price=contract.cap_price, fixed_price=contract.fixed_price,
        tiers=tiers, vat_rate=contract.vat_rate, prices_include_vat=contract.prices_include_vat)


async def tariff_for(code: str, day: dt.date, cache: dict) -> EngineTariff:
    """The stored tariff of ``code`` in force on ``day``, parsed once per run."""
    key = (code, day)
    if key not in cache:
        row = await Tariff.filter(code=code, effective_from__lte=day).order_by("-effective_from").first()
        if row is None:
            raise NotFound(f"no tariff {code!r} in force on {day}", code="unknown_tariff")
        cache[key] = cache.get(("doc", row.id)) or parse_tariff(row.document, row.format)
        cache[("doc", row.id)] = cache[key]
    return cache[key]


def grid_prices(tariff: EngineTariff, day: dt.date, terms: ContractTerms) -> tuple[np.ndarray, tuple[int, ...]]:
    """Grid price per DL/T 645 rate [µyuan/kWh] on ``day``, in the contract's VAT basis, and the
    tariff's own period index each rate is priced as (what bill lines store)."""
    version = tariff.version_at(day)
    prices = version.price_micro[day.month - 1]
    index = {name: i for i, name in enumerate(tariff.periods)}
    out = []
    for rate in RATES:
        name = rate
        while name not in index and FALLBACK[name] != name:
            name = FALLBACK[name]
        if name not in index:
            raise InvalidInput(f"tariff {tariff.name!r} has no period for rate {rate}", code="tariff_rates")
        out.append((int(prices[index[name]]), index[name]))
    micro = np.array([price for price, _ in out], dtype=np.int64)
    if version.prices_include_vat and not terms.prices_include_vat:
        micro = money.round_div(micro * money.PPM, money.PPM + terms.vat_ppm).astype(np.int64)
    return micro, tuple(period for _, period in out)


def _kwh_per_rate(form: ConfirmationForm, what: str) -> list[float]:
    return [float(Decimal(form.periods[rate][what])) for rate in RATES]


async def issue_bills(period: str | None = None, *, apps: outbox.NotifyApps, now: dt.datetime | None = None,
                      plant_code: str | None = None) -> int:
    """Bill every final form (confirmed or auto-confirmed) not billed yet; returns how many.
    ``apps`` are our WeChat apps, for the owners' BillIssued messages."""
    now = (now or utc_now()).astimezone(UTC)  # SQLite compares stored UTC text
    query = ConfirmationForm.filter(state__in=[FormState.CONFIRMED, FormState.AUTO_CONFIRMED])
    if period is not None:
        parse_period(period)
        query = query.filter(cycle__period=period)
    if plant_code is not None:
        query = query.filter(cycle__plant__code=plant_code)
    billed = set(await Bill.filter(cycle__period=period).values_list("cycle_id", flat=True)) if period else \
        set(await Bill.all().values_list("cycle_id", flat=True))
    # only what pricing needs: a form's lines (meter × register) are large and not needed here
    forms = [f for f in await query.order_by("id").only("id", "cycle_id", "periods", "grid_kwh")
             if f.cycle_id not in billed]
    issued = 0
    cache: dict = {}
    for first in range(0, len(forms), BATCH):
        issued += await _issue_batch(forms[first:first + BATCH], now, cache, apps=apps)
    return issued


def _price_groups(groups: dict[tuple, list[ConfirmationForm]],
                  priced_terms: dict[tuple, tuple[ContractTerms, np.ndarray]]) -> list[tuple]:
    """Price each group of forms with one engine call (no I/O: runs in a thread).

    Parameters
    ----------
    groups : dict of group key to forms
        Forms sharing contract terms and grid prices; the key's last item is the tariff period
        each DL/T 645 rate is priced as.
    priced_terms : dict of group key to (ContractTerms, ndarray of int64, shape (4,) [µyuan/kWh])

    Returns
    -------
    list of (form, bill lines, total [fen], tax [fen], tariff periods), group by group
    """
    bills = []
    for key, members in groups.items():
        terms, prices = priced_terms[key]
        result = price_cycle(terms, prices, [_kwh_per_rate(f, "self_use") for f in members])
        for i, form in enumerate(members):
            bills.append((form, result.lines(i), int(result.total_fen[i]), int(result.tax_total_fen[i]), key[2]))
    return bills


def _energy_lines(bill_id: int, lines, tariff_period) -> list[BillLine]:
    """A bill's energy lines from the engine's priced lines: informational ones and those with no
    energy and no money left out, numbered from 1, each named by its time-of-use rate."""
    rows = []
    for line in lines:
        if line.informational or (line.kwh == 0 and line.amount_fen == 0):
            continue
        rate = RATES[line.period] if line.period is not None else None
        rows.append(BillLine(
            bill_id=bill_id, seq=len(rows) + 1, kind=LineKind.ENERGY,
            tou_period=None if line.period is None else tariff_period[line.period],
            description=f"{RATE_ZH[rate]}时段自用电量" if rate else "自用电量",
            kwh=Decimal(f"{line.kwh:.3f}"), unit_price=Decimal(line.unit_price),
            amount_fen=line.amount_fen, tax_fen=line.tax_fen))
    return rows


async def _nearby_fees(forms: list[ConfirmationForm], cycles: dict[int, ReadingCycle],
                       contracts: dict[int, Contract]) -> dict[int, nearby.NearbyFees]:
    """The nearby-consumption fees the owner bears on each form's bill, by form id: only plants
    whose contract (``contracts``: the version each cycle, by id, is settled under) says so and
    that have terms in force for the cycle's period."""
    bearing: dict[str, list[ConfirmationForm]] = defaultdict(list)  # period → forms
    for form in forms:
        cycle = cycles[form.cycle_id]
        contract = contracts.get(cycle.id)
        if contract is not None and contract.owner_bears_nearby_fees:
            bearing[cycle.period].append(form)
    fees: dict[int, nearby.NearbyFees] = {}
    for period, members in bearing.items():
        terms = await nearby.terms_in_force(period, sorted({cycles[f.cycle_id].plant_id for f in members}))
        for form in members:
            plant_id = cycles[form.cycle_id].plant_id
            if plant_id not in terms:
                continue
            contract = contracts[form.cycle_id]
            fees[form.id] = nearby.nearby_fees(
                terms[plant_id], Decimal(form.grid_kwh),
                vat_out_ppm=0 if contract.prices_include_vat else contract_terms(contract).vat_ppm)
    return fees


async def _issue_batch(forms: list[ConfirmationForm], now: dt.datetime, cache: dict, *,
                       apps: outbox.NotifyApps) -> int:
    cycles = {c.id: c for c in await ReadingCycle.filter(id__in=[f.cycle_id for f in forms])}
    plants = {p.id: p for p in await Plant.filter(id__in=[c.plant_id for c in cycles.values()])}
    # per cycle, the contract version it is settled under (the cycle run's rule): a version that
    # starts later, entered before this bill is issued, prices only the cycles after it
    versions: dict[int, list[Contract]] = defaultdict(list)
    for contract in await Contract.filter(plant_id__in=list(plants)).order_by("effective_from"):
        versions[contract.plant_id].append(contract)
    contracts: dict[int, Contract] = {}  # cycle id → version
    for cycle in cycles.values():
        in_force = [c for c in versions[cycle.plant_id] if c.effective_from <= contract_cut_off(cycle.period)]
        if in_force:
            contracts[cycle.id] = in_force[-1]
    # group forms that share contract terms and grid prices: one engine call per group
    groups: dict[tuple, list[ConfirmationForm]] = defaultdict(list)
    priced_terms: dict[tuple, tuple[ContractTerms, np.ndarray]] = {}
    for form in forms:
        cycle = cycles[form.cycle_id]
        contract = contracts.get(cycle.id)
        if contract is None:
            raise NotFound(f"plant {plants[cycle.plant_id].code} has no contract in force for {cycle.period}",
                           code="no_contract")
        last_day = (cycle.ends_at.astimezone(LOCAL) - dt.timedelta(days=1)).date()
        terms = contract_terms(contract)
        # four prices a form, checked form by form: which form's refusal a batch reports stays the first one's
        prices, periods = grid_prices(await tariff_for(contract.tariff_code, last_day, cache), last_day, terms)
        key = (terms, tuple(prices.tolist()), periods)
        priced_terms[key] = (terms, prices)
        groups[key].append(form)
    # the engine's array work over the whole batch runs in a thread, as the cycle run's does
    # (settlement.cycles.runs): a batch of 500 bills must not hold every request meanwhile
    loop = asyncio.get_running_loop()
    bills = await loop.run_in_executor(None, _price_groups, groups, priced_terms)
    # the fee lines of the owners who bear them, worked out before any bill exists: they count in its total
    extra: dict[int, list[BillLine]] = {}
    cycle_of = {form.id: form.cycle_id for form in forms}
    for form_id, fees in (await _nearby_fees(forms, cycles, contracts)).items():
        contract = contracts[cycle_of[form_id]]
        extra[form_id] = nearby.fee_lines(fees, vat_ppm=contract_terms(contract).vat_ppm,
                                          prices_include_vat=contract.prices_include_vat)

    issue_day = now.astimezone(LOCAL).date()
    async with in_transaction() as conn:
        drafts = []
        for form, _, total, tax, _ in bills:
            cycle = cycles[form.cycle_id]
            plant = plants[cycle.plant_id]
            more = extra.get(form.id, [])
            drafts.append(Bill(number=f"{cycle.period.replace('-', '')}-{plant.code}-1", cycle_id=cycle.id, version=1,
                               form_id=form.id, plant_id=plant.id, owner_id=plant.owner_id, state=BillState.OPEN,
                               issued_at=now, due_on=issue_day + dt.timedelta(days=contracts[cycle.id].due_days),
                               total_fen=total + sum(line.amount_fen for line in more),
                               tax_fen=tax + sum(line.tax_fen for line in more)))
        # the unique key (cycle, version) settles a race with another issuer: its bills stay its own
        await Bill.bulk_create(drafts, ignore_conflicts=True, using_db=conn)
        mine = {b.form_id: b for b in await Bill.filter(form_id__in=[f.id for f, *_ in bills], issued_at=now)
                .using_db(conn)}
        rows, events = [], []
        for form, lines, _, _, tariff_period in bills:
            if (bill := mine.get(form.id)) is not None:
                energy = _energy_lines(bill.id, lines, tariff_period)
                for i, line in enumerate(extra.get(form.id, []), start=len(energy) + 1):
                    line.bill_id, line.seq = bill.id, i
                rows += energy + extra.get(form.id, [])
        await BillLine.bulk_create(rows, using_db=conn)
        await _apply_credit(list(mine.values()), conn)
        for bill in mine.values():
            events.append(AuditEvent(
                actor=audit.SYSTEM, action="IssueBill", entity="bill", entity_id=str(bill.id),
                after=audit.plain({"number": bill.number, "total_fen": bill.total_fen, "tax_fen": bill.tax_fen,
                                   "credit_applied_fen": bill.credit_applied_fen, "state": bill.state}),
                request_id=request_id_var.get()))
        await AuditEvent.bulk_create(events, using_db=conn)
        await outbox.bills_issued(list(mine.values()), using_db=conn, apps=apps, now=now)
    return len(mine)


async def credit_balance(owner_id: int, *, using_db=None) -> int:
    amounts = await CreditEntry.filter(owner_id=owner_id).using_db(using_db).values_list("amount_fen", flat=True)
    return int(sum(amounts))


async def _apply_credit(new_bills: list[Bill], conn) -> None:
    """Use the owners' account credit on their new bills (oldest bill first)."""
    owners = {b.owner_id for b in new_bills}
    balances: dict[int, int] = defaultdict(int)
    for owner_id, amount in await CreditEntry.filter(owner_id__in=list(owners)).using_db(conn) \
            .values_list("owner_id", "amount_fen"):
        balances[owner_id] += amount
    for bill in sorted(new_bills, key=lambda b: b.id):
        use = min(balances[bill.owner_id], owed_fen(bill))
        if use <= 0:
            continue
        balances[bill.owner_id] -= use
        await CreditEntry.create(owner_id=bill.owner_id, amount_fen=-use, reason=f"applied to bill {bill.number}",
                                 bill_id=bill.id, using_db=conn)
        bill.credit_applied_fen += use
        bill.state = state_of(bill)
        await bill.save(using_db=conn, update_fields=["credit_applied_fen", "state"])


async def record_payment(bill_id: int, amount_fen: int, channel: PaymentChannel, reference: str, *,
                         apps: outbox.NotifyApps, staff: Staff | None = None, paid_at: dt.datetime | None = None,
                         source_record: dict | None = None) -> Payment:
    """Money received for a bill, at most once per (channel, reference).

    The same payment recorded again (same reference, bill and amount) returns the stored one; the
    same reference with another bill or amount is refused. What exceeds the amount owed becomes
    the owner's account credit.
    """
    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or not 0 < amount_fen <= MAX_PAYMENT_FEN:
        raise InvalidInput("the amount must be a whole number of fen from 1 to 10 000 000 000 元",
                           code="bad_amount")
    reference = (reference or "").strip()
    if not reference or len(reference) > 50:
        raise InvalidInput("a payment needs a reference of at most 50 characters", code="bad_reference")
    if staff is not None and (not staff.active or staff.role not in (StaffRole.OPERATOR, StaffRole.ADMIN)):
        raise Forbidden("recording a payment needs the operator or admin role", code="role_required")
    paid_at = paid_at or utc_now()
    transaction_id = f"{channel.value}:{reference}" if channel != PaymentChannel.WECHAT else reference
    async with in_transaction() as conn:
        existing = await Payment.get_or_none(transaction_id=transaction_id).using_db(conn)
        if existing is not None:
            if existing.bill_id == bill_id and existing.amount_fen == amount_fen:
                return existing
            raise Conflict(f"payment {reference} is already recorded for another bill or amount",
                           code="duplicate_reference")
        bill = await Bill.filter(id=bill_id).using_db(conn).select_for_update().first()
        if bill is None:
            raise NotFound(f"no bill {bill_id}", code="unknown_bill", params={"bill": bill_id})
        if bill.state not in OPEN:
            raise Conflict(f"bill {bill.number} is {bill.state.value}", code="bill_closed")
        before = {"state": bill.state, "paid_fen": bill.paid_fen}
        payment = await Payment.create(transaction_id=transaction_id, channel=channel, bill_id=bill.id,
                                       owner_id=bill.owner_id, recorded_by_id=staff.id if staff else None,
                                       amount_fen=amount_fen, paid_at=paid_at, source_record=source_record,
                                       using_db=conn)
        await apply_payment(bill, payment, audit.actor_of(staff), conn, apps=apps, before=before)
    return payment


def split_to_bill(amount_fen: int, owed: int | None) -> tuple[int, int]:
    """How money that arrives for a bill divides: (to the bill, to the owner's account credit) [fen].

    Parameters
    ----------
    amount_fen : int [fen]
        The money: a payment, or a refund that did not happen coming back.
    owed : int or None [fen]
        What the bill owes while it is open (``owed_fen``); None when there is no open bill (paid
        or written off meanwhile, or none at all), and then all of it is credit.

    Returns
    -------
    (int, int) [fen]
        Together ``amount_fen``, each at least 0 for money that arrives (``amount_fen`` ≥ 0): the
        bill takes at most what it owes, never less than nothing.
    """
    to_bill = 0 if owed is None else max(min(amount_fen, owed), 0)
    return to_bill, amount_fen - to_bill


async def apply_to_bill(bill: Bill | None, amount_fen: int, *, owner_id: int, payment_id: int,
                        credit_reason: str, conn) -> int:
    """Money for ``bill``, which the caller has locked in ``conn``: what it owes is paid and the rest
    becomes the owner's account credit (:func:`split_to_bill`). Returns the amount applied [fen].

    The one place this rule is written: payments (:func:`apply_payment`) and refunds that did not
    happen (:mod:`settlement.pay.payments`) both come here.
    """
    is_open = bill is not None and bill.state in OPEN
    to_bill, to_credit = split_to_bill(amount_fen, owed_fen(bill) if is_open else None)
    if is_open:
        bill.paid_fen += to_bill
        bill.state = state_of(bill)
        await bill.save(using_db=conn, update_fields=["paid_fen", "state"])
    if to_credit > 0:
        await CreditEntry.create(owner_id=owner_id, amount_fen=to_credit, reason=credit_reason,
                                 payment_id=payment_id, using_db=conn)
    return to_bill


async def apply_payment(bill: Bill, payment: Payment, actor: str, conn, *, apps: outbox.NotifyApps,
                        before: dict | None = None, plant_name: str | None = None) -> int:
    """Apply a payment just stored to its bill, which the caller has locked in ``conn``.

    What is owed is paid and the rest becomes the owner's account credit — all of it when the bill
    is no longer open (money that arrives for a bill paid meanwhile is still the owner's). Writes
    the audit event and the owner's PaymentReceived message (``apps``: our WeChat apps). Returns
    the amount applied to the bill [fen].
    """
    before = before or {"state": bill.state, "paid_fen": bill.paid_fen}
    applied = await apply_to_bill(bill, payment.amount_fen, owner_id=bill.owner_id, payment_id=payment.id,
                                  credit_reason=f"overpayment on bill {bill.number}", conn=conn)
    await audit.record(actor, "RecordPayment", "bill", bill.id, before=before,
                       after={"state": bill.state, "paid_fen": bill.paid_fen, "payment": payment.transaction_id,
                              "amount_fen": payment.amount_fen, "to_credit_fen": payment.amount_fen - applied},
                       using_db=conn)
    await outbox.payment_received(bill, payment, using_db=conn, apps=apps,
                                  plant_name=plant_name)  # name: one query less
    return applied


async def write_off(bill_id: int, reason: str, staff: Staff) -> Bill:
    """An admin writes off what is left of a bill, with a reason."""
    if not staff.active or staff.role != StaffRole.ADMIN:
        raise Forbidden("writing off a bill needs the admin role", code="role_required")
    if not (reason or "").strip():
        raise InvalidInput("a write-off needs a reason", code="reason_required")
    async with in_transaction() as conn:
        bill = await Bill.filter(id=bill_id).using_db(conn).select_for_update().first()
        if bill is None:
            raise NotFound(f"no bill {bill_id}", code="unknown_bill", params={"bill": bill_id})
        if bill.state not in OPEN:
            raise Conflict(f"bill {bill.number} is {bill.state.value}", code="bill_closed")
        before = {"state": bill.state, "owed_fen": owed_fen(bill)}
        bill.state, bill.written_off_at = BillState.WRITTEN_OFF, utc_now()
        await bill.save(using_db=conn, update_fields=["state", "written_off_at"])
        await audit.record(audit.actor_of(staff), "WriteOffBill", "bill", bill.id, before=before,
                           after={"state": bill.state}, reason=reason.strip(), using_db=conn)
    return bill
