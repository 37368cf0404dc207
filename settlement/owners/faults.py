"""Fault reports (报修): an owner reports a problem with a plant, staff work it to resolved.

States::

    open ──staff take it──▶ in_progress ──staff fix it──▶ resolved
      └──────────────staff resolve it at once──────────────▶ resolved

The owner sees the state and staff's note in the mini-program. A new report alarms the active
staff (FaultReported, through the outbox); staff move it on with :func:`set_fault_state` — the one
rule, used by the bot's 工单 command and ``pvsettle faults move`` — which writes the audit event
and tells the owner (FaultUpdated) in the change's transaction.
"""

from __future__ import annotations

import datetime as dt

from tortoise.transactions import in_transaction

from settlement import audit
from settlement import text as outside_text
from settlement.notify import outbox
from settlement.owners.access import Principal, Right, require
from settlement.errors import Conflict, Forbidden, InvalidInput, NotFound
from settlement.i18n import Ref
from settlement.models import Attachment, FaultReport, FaultState, Plant, Staff, StaffRole
from settlement.infra.storage import MAX_PHOTOS, CheckedPhoto, PhotoStore, TooManyPhotos
from settlement.clock import UTC, utc_now

MAX_TEXT = 1000
MAX_NOTE = 500
#: what the owner's and staff's notices call each state (a WeChat ``phrase``: ≤ 5 Chinese characters)
STATE_ZH = {FaultState.OPEN: "待处理", FaultState.IN_PROGRESS: "处理中", FaultState.RESOLVED: "已解决"}
REPORTED_ZH = "新报修"
NO_NOTE = "无"
NEXT = {FaultState.OPEN: (FaultState.IN_PROGRESS, FaultState.RESOLVED),
        FaultState.IN_PROGRESS: (FaultState.RESOLVED,), FaultState.RESOLVED: ()}


#: the words staff may use for the states a report moves to (bot and CLI), case-blind
STATE_WORDS = {"受理": FaultState.IN_PROGRESS, "处理中": FaultState.IN_PROGRESS, "in_progress": FaultState.IN_PROGRESS,
               "已修复": FaultState.RESOLVED, "已解决": FaultState.RESOLVED, "resolved": FaultState.RESOLVED}


def state_of_word(word: str) -> FaultState:
    """The state a staff member's word names (受理/处理中/in_progress, 已修复/已解决/resolved).

    Raises
    ------
    InvalidInput
        Any other word (``bad_fault_state``): a report is never moved back to open.
    """
    state = STATE_WORDS.get((word or "").strip().lower())
    if state is None:
        raise InvalidInput(f"no state a fault report moves to: {word[:20]!r}", code="bad_fault_state")
    return state


def _one_line(text: str | None) -> str:
    """Free text as one line for a notice field (a line break would start another field)."""
    return " ".join((text or "").split()) or NO_NOTE


async def report_fault(principal: Principal, plant_id: int, text: str, photos: list[CheckedPhoto],
                       store: PhotoStore, *, apps: outbox.NotifyApps) -> FaultReport:
    """The plant's owner reports a fault, with up to 6 checked photos; every active staff member
    with a WeChat identity is alarmed (FaultReported, key ``fault:<id>:FaultReported``)."""
    await require(principal, plant_id, Right.OWNER)
    text = (text or "").strip()
    if not text:
        raise InvalidInput("say what is wrong", code="text_required")
    if len(text) > MAX_TEXT:
        raise InvalidInput(f"the text is longer than {MAX_TEXT} characters", code="text_too_long")
    if len(photos) > MAX_PHOTOS:
        raise TooManyPhotos(f"at most {MAX_PHOTOS} photos")
    keys = [await store.put(photo) for photo in photos]
    try:
        async with in_transaction() as conn:
            report = await FaultReport.create(plant_id=plant_id, reported_by_id=principal.identity_id, text=text,
                                              using_db=conn)
            for key, photo in zip(keys, photos):
                await Attachment.create(storage_key=key, content_type=photo.content_type, size_bytes=len(photo.data),
                                        sha256=photo.sha256, uploaded_by_id=principal.identity_id,
                                        fault_id=report.id, using_db=conn)
            await audit.record(audit.actor_of(openid=principal.openid), "ReportFault", "fault_report", report.id,
                               after={"plant": plant_id, "photos": len(keys)}, using_db=conn)
            plant_name = (await Plant.filter(id=plant_id).using_db(conn).values_list("name", flat=True))[0]
            await outbox.notify_staff("FaultReported", "fault_update",
                                      {"plant_name": plant_name, "fault_id": report.id, "state_zh": REPORTED_ZH,
                                       "note": _one_line(text), "updated_at": report.created_at},
                                      f"fault:{report.id}:FaultReported", using_db=conn, apps=apps)
    except BaseException:
        for key in keys:  # nothing refers to them: do not keep orphans
            await store.delete(key)
        raise
    return report


async def set_fault_state(report_id: int, state: FaultState, staff: Staff | None, note: str | None = None, *,
                          apps: outbox.NotifyApps, now: dt.datetime | None = None) -> FaultReport:
    """Staff move a report on (open → in_progress → resolved), optionally with a note for the owner.

    In one transaction: the state, the audit event (ChangeFaultState) and the owner's notice
    (FaultUpdated, key ``fault:<id>:FaultUpdated:<state>``, so each step is told once).

    Raises
    ------
    Forbidden : ``staff`` is not an active operator or admin
    InvalidInput : a note over 500 characters or with control characters (``invalid_text``)
    NotFound : no such report
    Conflict : the report cannot go to ``state`` from where it is (``bad_state``)
    """
    if staff is None or not staff.active or staff.role not in (StaffRole.OPERATOR, StaffRole.ADMIN):
        raise Forbidden("changing a fault report needs the operator or admin role", code="role_required")
    if not isinstance(state, FaultState):
        raise InvalidInput(f"no fault state {str(state)[:20]!r}", code="bad_fault_state")
    note = outside_text.check("note", (note or "").strip()) or None
    if note is not None and len(note) > MAX_NOTE:
        raise InvalidInput(f"the note is longer than {MAX_NOTE} characters", code="note_too_long")
    now = (now or utc_now()).astimezone(UTC)
    async with in_transaction() as conn:
        report = await FaultReport.filter(id=report_id).using_db(conn).select_for_update().first()
        if report is None:
            raise NotFound(f"no fault report {report_id}", code="unknown_fault")
        if state not in NEXT[report.state]:
            raise Conflict(f"a {report.state.value} report cannot become {state.value}", code="bad_state",
                           params={"state": Ref(f"fault_state.{report.state.value}")})
        before = {"state": report.state, "note": report.staff_note}
        report.state, report.handled_by_id = state, staff.id
        if note is not None:
            report.staff_note = note
        if state == FaultState.RESOLVED:
            report.resolved_at = now
        await report.save(using_db=conn, update_fields=["state", "handled_by_id", "staff_note", "resolved_at",
                                                        "updated_at"])
        await audit.record(audit.actor_of(staff), "ChangeFaultState", "fault_report", report.id, before=before,
                           after={"state": state, "note": report.staff_note}, using_db=conn)
        plant = await Plant.get(id=report.plant_id).using_db(conn)
        await outbox.notify_owners("FaultUpdated", "fault_update",
                                   [(plant.owner_id, {"plant_name": plant.name, "fault_id": report.id,
                                                      "state_zh": STATE_ZH[state], "note": _one_line(note),
                                                      "updated_at": now},
                                     f"fault:{report.id}:FaultUpdated:{state.value}")],
                                   using_db=conn, apps=apps, now=now)
    return report


async def list_faults(state: FaultState | None = None, *, limit: int = 50) -> list[FaultReport]:
    """Reports, newest first, with their plant (for staff: the CLI's ``faults list``)."""
    query = FaultReport.all() if state is None else FaultReport.filter(state=state)
    return await query.order_by("-id").limit(max(1, min(limit, 500))).prefetch_related("plant")
