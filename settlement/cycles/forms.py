"""The life of a confirmation form (电量确认单).

States::

    draft ──send──▶ sent ──confirm──▶ confirmed
                     │  └──(answer due passed)──▶ auto_confirmed
                     └──dispute──▶ disputed
    draft | sent | disputed ──staff adjusts a reading or an energy──▶ adjusted   (version + 1 is sent)

A confirmed (or auto-confirmed) version is final: it is never changed, and only it is billed.
Every transition writes an audit event in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from tortoise.transactions import in_transaction

from settlement import audit
from settlement.notify import outbox
from settlement.cycles.runs import RATES, _compute, _load_readings, _plan, form_contents
from settlement.context import request_id_var
from settlement.errors import Conflict, Forbidden, InvalidInput, NotFound
from settlement.i18n import Ref
from settlement.models import (
    AuditEvent,
    ConfirmationForm,
    FormState,
    Meter,
    Plant,
    Reading,
    ReadingCycle,
    ReadingSource,
    Staff,
    StaffRole,
    WechatIdentity,
)
from settlement.clock import UTC, utc_now

FINAL = (FormState.CONFIRMED, FormState.AUTO_CONFIRMED)


async def latest_form(cycle_id: int, *, using_db=None) -> ConfirmationForm:
    form = await ConfirmationForm.filter(cycle_id=cycle_id).using_db(using_db).order_by("-version").first()
    if form is None:
        raise NotFound("this cycle has no form yet", code="no_form")
    return form


async def _locked_latest(form_id: int, conn) -> ConfirmationForm:
    """The form, which must be its cycle's latest version, locked for the transition."""
    form = await ConfirmationForm.filter(id=form_id).using_db(conn).select_for_update().first()
    if form is None:
        raise NotFound(f"no form {form_id}", code="unknown_form")
    newer = await ConfirmationForm.filter(cycle_id=form.cycle_id, version__gt=form.version).using_db(conn).exists()
    if newer:
        raise Conflict(f"form {form_id} has been replaced by a newer version", code="form_superseded")
    return form


async def _locked_in(form_id: int, conn, allowed: tuple[FormState, ...], refusal: str) -> ConfirmationForm:
    """:func:`_locked_latest`, in one of the ``allowed`` states: else Conflict ``bad_state``, its
    message ``refusal`` with the form's ``{state}``."""
    form = await _locked_latest(form_id, conn)
    if form.state not in allowed:
        raise Conflict(refusal.format(state=form.state.value), code="bad_state",
                       params={"state": Ref(f"form_state.{form.state.value}")})
    return form


def _require_staff(staff: Staff, *roles: StaffRole) -> None:
    if not staff.active or staff.role not in roles:
        raise Forbidden(f"this needs the role {' or '.join(r.value for r in roles)}", code="role_required")


async def send_form(form_id: int, staff: Staff, *, apps: outbox.NotifyApps,
                    now: dt.datetime | None = None) -> ConfirmationForm:
    """Staff release a draft (a flagged form they have checked) to the owner."""
    _require_staff(staff, StaffRole.OPERATOR, StaffRole.ADMIN)
    now = (now or utc_now()).astimezone(UTC)  # SQLite compares stored UTC text
    async with in_transaction() as conn:
        form = await _locked_in(form_id, conn, (FormState.DRAFT,), "only a draft can be sent; this form is {state}")
        cycle = await ReadingCycle.get(id=form.cycle_id).using_db(conn).prefetch_related("plant__contracts")
        days = max((c for c in cycle.plant.contracts), key=lambda c: c.effective_from).auto_confirm_days
        before = form.state
        form.state, form.sent_at, form.answer_due_at = FormState.SENT, now, now + dt.timedelta(days=days)
        await form.save(using_db=conn, update_fields=["state", "sent_at", "answer_due_at"])
        await audit.record(audit.actor_of(staff), "SendForm", "form", form.id, before={"state": before},
                           after={"state": form.state}, using_db=conn)
        await outbox.forms_sent([form.id], using_db=conn, apps=apps, now=now)
    return form


async def confirm_form(form_id: int, *, by: WechatIdentity | None = None, staff: Staff | None = None,
                       now: dt.datetime | None = None) -> ConfirmationForm:
    """The owner confirms (``by``), or staff confirm on the owner's written word (``staff``)."""
    now = (now or utc_now()).astimezone(UTC)  # SQLite compares stored UTC text
    if staff is not None:
        _require_staff(staff, StaffRole.OPERATOR, StaffRole.ADMIN)
    async with in_transaction() as conn:
        allowed = (FormState.SENT, FormState.DISPUTED) if staff is not None else (FormState.SENT,)
        form = await _locked_in(form_id, conn, allowed, "a {state} form cannot be confirmed")
        before = form.state
        form.state, form.answered_at, form.answered_by_id = FormState.CONFIRMED, now, by.id if by else None
        await form.save(using_db=conn, update_fields=["state", "answered_at", "answered_by_id"])
        actor = audit.actor_of(staff, openid=by.openid if by else None)
        await audit.record(actor, "ConfirmForm", "form", form.id, before={"state": before},
                           after={"state": form.state}, using_db=conn)
    return form


async def dispute_form(form_id: int, reason: str, *, by: WechatIdentity | None = None,
                       now: dt.datetime | None = None) -> ConfirmationForm:
    """The owner disputes a sent form, saying why; staff then adjust and send a new version."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("a dispute needs a reason", code="reason_required")
    if len(reason) > 500:
        raise InvalidInput("the reason is longer than 500 characters", code="reason_too_long")
    now = (now or utc_now()).astimezone(UTC)  # SQLite compares stored UTC text
    async with in_transaction() as conn:
        form = await _locked_in(form_id, conn, (FormState.SENT,), "a {state} form cannot be disputed")
        form.state, form.answered_at, form.dispute_reason = FormState.DISPUTED, now, reason
        form.answered_by_id = by.id if by else None
        await form.save(using_db=conn, update_fields=["state", "answered_at", "dispute_reason", "answered_by_id"])
        await audit.record(audit.actor_of(openid=by.openid if by else None), "DisputeForm", "form", form.id,
                           before={"state": FormState.SENT}, after={"state": form.state}, reason=reason,
                           using_db=conn)
    return form


def _reading_value(value: str | Decimal) -> Decimal:
    """A corrected reading [meter units]: a finite decimal ≥ 0 with at most 4 decimals."""
    try:
        new_value = Decimal(str(value))
        if not new_value.is_finite() or new_value < 0 or new_value.as_tuple().exponent < -4:
            raise InvalidOperation
    except InvalidOperation:
        raise InvalidInput(f"{value!r} is not a reading (≥ 0, at most 4 decimals)", code="bad_value") from None
    return new_value


async def _adjustment_target(plant_code: str, period: str, meter_serial: str, register: str,
                             new_value: Decimal) -> tuple[Plant, Meter, ReadingCycle]:
    """The plant, its meter and its cycle the correction is for; the value must fit the register."""
    plant = await Plant.get_or_none(code=plant_code)
    if plant is None:
        raise NotFound(f"no plant {plant_code!r}", code="unknown_plant", params={"plant": plant_code})
    meter = await Meter.get_or_none(serial=meter_serial, plant_id=plant.id)
    if meter is None:
        raise NotFound(f"plant {plant_code} has no meter {meter_serial!r}", code="unknown_meter")
    if register not in meter.registers:
        raise InvalidInput(f"meter {meter_serial} has no register {register}", code="unknown_register")
    if new_value >= Decimal(10) ** meter.register_digits:
        raise InvalidInput(f"{new_value} does not fit the meter's {meter.register_digits} digits", code="bad_value")
    cycle = await ReadingCycle.get_or_none(plant_id=plant.id, period=period)
    if cycle is None:
        raise NotFound(f"plant {plant_code} has no cycle {period}", code="unknown_cycle")
    return plant, meter, cycle


def _boundary_read_at(form: ConfirmationForm, cycle: ReadingCycle, meter_serial: str, register: str,
                      boundary: str) -> dt.datetime:
    """When the reading the form used at this boundary was taken; the cycle's own bound if it used none."""
    used = next((line for line in form.lines if line["meter"] == meter_serial and line["register"] == register),
                None)
    at_text = used and used[f"{boundary}_at"]
    return (dt.datetime.fromisoformat(at_text.replace("Z", "+00:00")) if at_text
            else cycle.starts_at if boundary == "previous" else cycle.ends_at)


async def _revise_reading(meter: Meter, meter_serial: str, register: str, read_at: dt.datetime, new_value: Decimal,
                          reason: str, staff: Staff, conn) -> tuple[Reading | None, Reading]:
    """Store the correction as the next revision at the same time, audited; returns (replaced, new)."""
    stored = await Reading.filter(meter_id=meter.id, register=register, read_at=read_at).using_db(conn) \
        .order_by("-revision").first()
    reading = await Reading.create(
        meter_id=meter.id, register=register, read_at=read_at, value=new_value,
        source=ReadingSource.ADJUSTED if stored else ReadingSource.MANUAL,
        revision=stored.revision + 1 if stored else 0, reason=reason, entered_by_id=staff.id, using_db=conn)
    await audit.record(audit.actor_of(staff), "AdjustReading", "reading", reading.id,
                       before={"value": stored.value if stored else None,
                               "revision": stored.revision if stored else None},
                       after={"meter": meter_serial, "register": register, "read_at": read_at,
                              "value": reading.value, "revision": reading.revision}, reason=reason,
                       using_db=conn)
    return stored, reading


async def adjust_reading(plant_code: str, period: str, meter_serial: str, register: str, value: str | Decimal,
                         reason: str, staff: Staff, *, apps: outbox.NotifyApps, boundary: str = "current",
                         now: dt.datetime | None = None) -> ConfirmationForm:
    """Correct one reading a form used, with a reason; the form gets a new version, sent again.

    The correction is a new reading revision at the same time (source ``adjusted``): the old
    value stays, so the audit trail and the replaced form version still show what was there.
    """
    _require_staff(staff, StaffRole.OPERATOR, StaffRole.ADMIN)
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("an adjustment needs a reason", code="reason_required")
    if boundary not in ("previous", "current"):
        raise InvalidInput("boundary is previous or current", code="bad_boundary")
    new_value = _reading_value(value)
    now = (now or utc_now()).astimezone(UTC)  # SQLite compares stored UTC text
    plant, meter, cycle = await _adjustment_target(plant_code, period, meter_serial, register, new_value)

    async with in_transaction() as conn:
        form = await latest_form(cycle.id, using_db=conn)
        form = await _locked_latest(form.id, conn)
        if form.state in FINAL:
            raise Conflict("this form is confirmed and final; a correction needs a new cycle run",
                           code="form_final")
        read_at = _boundary_read_at(form, cycle, meter_serial, register, boundary)
        stored, reading = await _revise_reading(meter, meter_serial, register, read_at, new_value, reason, staff,
                                                conn)
        new_form = await _new_version(plant, period, form, now, conn)
        # the form's own event names the reading too, so the form can say what was adjusted
        await audit.record(audit.actor_of(staff), "AdjustForm", "form", new_form.id,
                           before={"version": form.version, "state": form.state, "total": _totals(form)},
                           after={"version": new_form.version, "state": new_form.state,
                                  "total": _totals(new_form),
                                  "reading": {"meter": meter_serial, "register": register, "boundary": boundary,
                                              "before": stored.value if stored else None,
                                              "after": reading.value}}, reason=reason, using_db=conn)
        await outbox.forms_sent([new_form.id], using_db=conn, apps=apps, now=now)  # a draft (sent_at None) is skipped
        form.state = FormState.ADJUSTED
        await form.save(using_db=conn, update_fields=["state"])
    return new_form


ENERGIES = ("generation", "export", "grid")


async def adjust_energy(plant_code: str, period: str, what: str, rate: str, kwh: str | Decimal, reason: str,
                        staff: Staff, *, apps: outbox.NotifyApps,
                        now: dt.datetime | None = None) -> ConfirmationForm:
    """Set one energy of a form directly, with a reason, when no reading can say it (a meter
    that failed mid-cycle, an estimate agreed with the owner). The form gets a new version, sent
    again; self-use of that rate follows as generation − export, never negative.

    ``what`` is generation, export or grid; ``rate`` sharp, peak, flat or valley.
    """
    _require_staff(staff, StaffRole.OPERATOR, StaffRole.ADMIN)
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("an adjustment needs a reason", code="reason_required")
    if what not in ENERGIES:
        raise InvalidInput(f"the energy is one of {', '.join(ENERGIES)}", code="bad_energy")
    if rate not in RATES:
        raise InvalidInput(f"the rate is one of {', '.join(RATES)}", code="bad_rate")
    try:
        value = Decimal(str(kwh))
        if not value.is_finite() or value < 0 or value.as_tuple().exponent < -3 or value >= Decimal(10) ** 10:
            raise InvalidOperation
    except InvalidOperation:
        raise InvalidInput(f"{kwh!r} is not an energy (≥ 0 kWh, at most 3 decimals)", code="bad_value") from None
    now = (now or utc_now()).astimezone(UTC)
    plant = await Plant.get_or_none(code=plant_code).prefetch_related("contracts")
    if plant is None:
        raise NotFound(f"no plant {plant_code!r}", code="unknown_plant", params={"plant": plant_code})
    cycle = await ReadingCycle.get_or_none(plant_id=plant.id, period=period)
    if cycle is None:
        raise NotFound(f"plant {plant_code} has no cycle {period}", code="unknown_cycle")
    async with in_transaction() as conn:
        form = await _locked_latest((await latest_form(cycle.id, using_db=conn)).id, conn)
        if form.state in FINAL:
            raise Conflict("this form is confirmed and final; a correction needs a new cycle run",
                           code="form_final")
        periods = {r: dict(v) for r, v in form.periods.items()}
        before = periods[rate][what]
        periods[rate][what] = str(value.quantize(Decimal("0.001")))
        gen, export = (Decimal(periods[rate][k]) for k in ("generation", "export"))
        periods[rate]["self_use"] = str(max(gen - export, Decimal(0)).quantize(Decimal("0.001")))
        total = {k: sum((Decimal(p[k]) for p in periods.values()), Decimal(0))
                 for k in ("generation", "self_use", "export", "grid")}
        days = max(plant.contracts, key=lambda c: c.effective_from).auto_confirm_days
        new_form = await ConfirmationForm.create(
            cycle_id=form.cycle_id, version=form.version + 1, state=FormState.SENT, lines=form.lines,
            periods=periods, generation_kwh=total["generation"], self_use_kwh=total["self_use"],
            export_kwh=total["export"], grid_kwh=total["grid"],
            flags=sorted(set(form.flags) - {"TOU_MISMATCH", "MISSING", "NEGATIVE_REFUSED", "IMPLAUSIBLE"}
                         | {"ENERGY_ADJUSTED"}),
            reader=form.reader, sent_at=now, answer_due_at=now + dt.timedelta(days=days), using_db=conn)
        await audit.record(audit.actor_of(staff), "AdjustEnergy", "form", new_form.id,
                           before={"version": form.version, "rate": rate, what: before},
                           after={"version": new_form.version, "rate": rate, what: periods[rate][what],
                                  "self_use": periods[rate]["self_use"]}, reason=reason, using_db=conn)
        await outbox.forms_sent([new_form.id], using_db=conn, apps=apps, now=now)
        form.state = FormState.ADJUSTED
        await form.save(using_db=conn, update_fields=["state"])
    return new_form


@dataclass(frozen=True)
class Adjustment:
    """One correction staff made to a form, as the form, the e-bill and the mini-program show it.

    ``kind`` is ``energy`` (``field`` = ``<generation|export|grid>.<rate>``, values in kWh) or
    ``reading`` (``field`` = ``<meter> <register> <previous|current>``, values as read);
    ``version`` is the form version the correction made; ``by`` the staff member's name.
    """

    version: int
    kind: str
    field: str
    before: str | None
    after: str | None
    by: str
    at: dt.datetime
    reason: str

    def as_dict(self) -> dict:
        return {"version": self.version, "kind": self.kind, "field": self.field, "before": self.before,
                "after": self.after, "by": self.by, "at": self.at, "reason": self.reason}


async def adjustments_of(form: ConfirmationForm) -> list[Adjustment]:
    """Every adjustment that led to this version of the form, oldest first (from the audit trail:
    ``AdjustEnergy`` and ``AdjustForm`` events of this and the earlier versions of its cycle)."""
    versions = dict(await ConfirmationForm.filter(cycle_id=form.cycle_id, version__lte=form.version)
                    .values_list("id", "version"))
    events = await AuditEvent.filter(entity="form", entity_id__in=[str(i) for i in versions],
                                     action__in=("AdjustEnergy", "AdjustForm")).order_by("at", "id")
    staff_ids = {int(e.actor.split(":", 1)[1]) for e in events
                 if e.actor.startswith("staff:") and e.actor.split(":", 1)[1].isdigit()}
    names = dict(await Staff.filter(id__in=staff_ids).values_list("id", "name")) if staff_ids else {}

    def by(actor: str) -> str:
        kind, _, ident = actor.partition(":")
        return names.get(int(ident), actor) if kind == "staff" and ident.isdigit() else actor

    out = []
    for event in events:
        after, before = event.after or {}, event.before or {}
        if event.action == "AdjustEnergy":
            what = next((k for k in ENERGIES if k in after), None)
            kind, field = "energy", f"{what}.{after.get('rate')}"
            old, new = before.get(what), after.get(what)
        else:
            reading = after.get("reading")
            if reading:
                kind, field = "reading", f"{reading['meter']} {reading['register']} {reading['boundary']}"
                old, new = reading.get("before"), reading.get("after")
            else:  # written before the event named its reading: only that the readings changed
                kind, field, old, new = "reading", "readings", None, None
        out.append(Adjustment(version=versions[int(event.entity_id)], kind=kind, field=field,
                              before=None if old is None else str(old), after=None if new is None else str(new),
                              by=by(event.actor), at=event.at, reason=event.reason or ""))
    return out


def _totals(form: ConfirmationForm) -> dict:
    return {"generation": form.generation_kwh, "self_use": form.self_use_kwh, "export": form.export_kwh,
            "grid": form.grid_kwh}


async def _new_version(plant: Plant, period: str, old: ConfirmationForm, now: dt.datetime, conn) -> ConfirmationForm:
    """Recompute the plant's form from its (now corrected) readings as the next version."""
    plan = await _plan([plant], period)
    arrays = await _load_readings(plan)  # inside the transaction: sees the corrected reading
    computed = _compute(plan, arrays)  # one plant: no need for the executor
    content = form_contents(plan, arrays, computed)[0]
    total = content["total"]
    send = not content["hold"]  # a correction that still does not add up stays with staff
    return await ConfirmationForm.create(
        cycle_id=old.cycle_id, version=old.version + 1, state=FormState.SENT if send else FormState.DRAFT,
        lines=content["lines"],
        periods=content["periods"], generation_kwh=total["generation"], self_use_kwh=total["self_use"],
        export_kwh=total["export"], grid_kwh=total["grid"], flags=content["flags"], findings=content["findings"],
        reader=old.reader,
        sent_at=now if send else None,
        answer_due_at=now + dt.timedelta(days=plan.contracts[0].auto_confirm_days) if send else None,
        using_db=conn)


async def auto_confirm_due(now: dt.datetime | None = None, *, batch_size: int = 1000) -> int:
    """Forms sent and unanswered past their answer date become auto-confirmed; returns how many.

    In batches, each one guarded UPDATE (still ``sent``?) with its audit events in one
    transaction, so an owner's answer arriving meanwhile always wins over the deadline.
    """
    now = (now or utc_now()).astimezone(UTC)  # SQLite compares stored UTC text
    count = 0
    due = await ConfirmationForm.filter(state=FormState.SENT, answer_due_at__lte=now).values_list("id", flat=True)
    for first in range(0, len(due), batch_size):
        chunk = due[first:first + batch_size]
        async with in_transaction() as conn:
            await ConfirmationForm.filter(id__in=chunk, state=FormState.SENT).using_db(conn).update(
                state=FormState.AUTO_CONFIRMED, answered_at=now)
            done = await ConfirmationForm.filter(id__in=chunk, state=FormState.AUTO_CONFIRMED, answered_at=now) \
                .using_db(conn).values_list("id", flat=True)
            await AuditEvent.bulk_create(
                [AuditEvent(actor=audit.SYSTEM, action="AutoConfirmForm", entity="form", entity_id=str(form_id),
                            before={"state": "sent"}, after={"state": "auto_confirmed"},
                            reason="no answer by the due date", request_id=request_id_var.get())
                 for form_id in done], using_db=conn)
            count += len(done)
    return count
