"""Confirmation forms (电量确认单): list by state, detail, confirm, dispute with photos."""

from __future__ import annotations

from aiohttp import web
from tortoise.transactions import in_transaction

from miniprogram_api.common import api, ebill_url, photo_store, settings
from miniprogram_api.pagination import page
from miniprogram_api.registry import Call
from miniprogram_api.schemas import (
    AttachmentOut,
    DisputeFields,
    FormAdjustment,
    FormDetail,
    FormLine,
    FormPeriod,
    FormQuery,
    FormSummary,
    Page,
)
from miniprogram_api.uploads import photos_body, read_with_photos
from settlement.cycles import forms
from settlement.owners.access import Right, visible_plants
from settlement.models import Attachment, ConfirmationForm, FormState, WechatIdentity


def summary_of(form: ConfirmationForm) -> dict:
    plant = form.cycle.plant
    return dict(id=form.id, plant_id=plant.id, plant_code=plant.code, period=form.cycle.period,
                version=form.version, state=form.state.value, generation_kwh=form.generation_kwh,
                self_use_kwh=form.self_use_kwh, export_kwh=form.export_kwh, grid_kwh=form.grid_kwh,
                sent_at=form.sent_at, answer_due_at=form.answer_due_at, answered_at=form.answered_at)


async def _detail(request: web.Request, form_id: int, right: Right) -> FormDetail:
    form = await ConfirmationForm.get(id=form_id).prefetch_related("cycle__plant__owner")
    plant = form.cycle.plant
    superseded = await ConfirmationForm.filter(cycle_id=form.cycle_id, version__gt=form.version).exists()
    attachments = await Attachment.filter(form_id=form.id).order_by("id")
    return FormDetail(
        **summary_of(form), plant_name=plant.name, plant_address=plant.address, owner_name=plant.owner.name,
        cycle_starts_at=form.cycle.starts_at, cycle_ends_at=form.cycle.ends_at, reader=form.reader,
        lines=[FormLine(**line) for line in form.lines or []],
        periods={rate: FormPeriod(**values) for rate, values in (form.periods or {}).items()},
        flags=list(form.flags or []), dispute_reason=form.dispute_reason,
        attachments=[AttachmentOut(id=a.id, content_type=a.content_type, size_bytes=a.size_bytes)
                     for a in attachments],
        superseded=superseded, can_answer=right >= Right.OWNER and form.state == FormState.SENT and not superseded,
        ebill_url=ebill_url(request, "form", form.id),
        adjustments=[FormAdjustment(**a.as_dict()) for a in await forms.adjustments_of(form)])


@api.get("/forms", query=FormQuery, response=Page[FormSummary], tag="forms")
async def list_forms(request: web.Request, call: Call):
    """Confirmation forms of the user's plants, newest first, optionally of one state; drafts stay with staff."""
    q: FormQuery = call.query
    rights = await visible_plants(call.principal)
    queryset = (ConfirmationForm.filter(cycle__plant_id__in=list(rights)).exclude(state=FormState.DRAFT)
                .prefetch_related("cycle__plant"))
    if q.state is not None:
        queryset = queryset.filter(state=FormState(q.state))
    rows, cursor = await page(queryset, q.limit, q.cursor, settings(request).secret_key)
    return Page[FormSummary](items=[FormSummary(**summary_of(f)) for f in rows], next_cursor=cursor)


@api.get("/forms/{form_id}", resource="form", needs=Right.VIEW, response=FormDetail, tag="forms")
async def form_detail(request: web.Request, call: Call):
    """Everything on the form: readings per meter and register, energies per TOU period, totals, state."""
    return await _detail(request, call.ids["form_id"], call.right)


async def _identity(call: Call) -> WechatIdentity:
    return await WechatIdentity.get(id=call.principal.identity_id)


@api.post("/forms/{form_id}/confirm", resource="form", needs=Right.OWNER, response=FormDetail, tag="forms",
          errors=(409,))
async def confirm(request: web.Request, call: Call):
    """The owner confirms the form (only its latest version, only while it is sent)."""
    await forms.confirm_form(call.ids["form_id"], by=await _identity(call))
    return await _detail(request, call.ids["form_id"], call.right)


@api.post("/forms/{form_id}/dispute", resource="form", needs=Right.OWNER, multipart=DisputeFields,
          response=FormDetail, tag="forms", errors=(409,), description=photos_body("reason"))
async def dispute(request: web.Request, call: Call):
    """The owner disputes the form, saying why, with up to 6 photos."""
    fields, photos = await read_with_photos(request, DisputeFields, call.plant_id)
    store = photo_store(request)
    keys = [await store.put(photo) for photo in photos]
    try:
        form = await forms.dispute_form(call.ids["form_id"], fields.reason, by=await _identity(call))
        async with in_transaction() as conn:
            for key, photo in zip(keys, photos):
                await Attachment.create(storage_key=key, content_type=photo.content_type,
                                        size_bytes=len(photo.data), sha256=photo.sha256,
                                        uploaded_by_id=call.principal.identity_id, form_id=form.id, using_db=conn)
    except BaseException:
        for key in keys:  # the dispute did not happen: keep no photo of it
            await store.delete(key)
        raise
    return await _detail(request, form.id, call.right)
