"""Fault reports (报修): an owner reports a problem with a plant, staff work it to resolved.

States::

    open ──staff take it──▶ in_progress ──staff fix it──▶ resolved
      └──────────────staff resolve it at once──────────────▶ resolved

The owner sees the state and staff's note in the mini-program; staff change it from the bot
(:func:`set_fault_state`). Every change writes an audit event.
"""

from __future__ import annotations

import datetime as dt

from tortoise.transactions import in_transaction

from settlement import audit
from settlement.owners.access import Principal, Right, require
from settlement.errors import Conflict, Forbidden, InvalidInput, NotFound
from settlement.i18n import Ref
from settlement.models import Attachment, FaultReport, FaultState, Staff, StaffRole
from settlement.infra.storage import MAX_PHOTOS, CheckedPhoto, PhotoStore, TooManyPhotos
from settlement.clock import UTC, utc_now

MAX_TEXT = 1000
NEXT = {FaultState.OPEN: (FaultState.IN_PROGRESS, FaultState.RESOLVED),
        FaultState.IN_PROGRESS: (FaultState.RESOLVED,), FaultState.RESOLVED: ()}


async def report_fault(principal: Principal, plant_id: int, text: str, photos: list[CheckedPhoto],
                       store: PhotoStore) -> FaultReport:
    """The plant's owner reports a fault, with up to 6 checked photos."""
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
    except BaseException:
        for key in keys:  # nothing refers to them: do not keep orphans
            await store.delete(key)
        raise
    return report


async def set_fault_state(report_id: int, state: FaultState, staff: Staff, note: str | None = None, *,
                          now: dt.datetime | None = None) -> FaultReport:
    """Staff move a report on (open → in_progress → resolved), optionally with a note for the owner."""
    if not staff.active or staff.role not in (StaffRole.OPERATOR, StaffRole.ADMIN):
        raise Forbidden("changing a fault report needs the operator or admin role", code="role_required")
    note = (note or "").strip() or None
    if note is not None and len(note) > 500:
        raise InvalidInput("the note is longer than 500 characters", code="note_too_long")
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
    return report
