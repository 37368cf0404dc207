"""Subscribe-message answers, fault reports (报修) and the photos attached to them."""

from __future__ import annotations

from aiohttp import web

from miniprogram_api.common import api, photo_store, settings
from miniprogram_api.pagination import page
from miniprogram_api.registry import Call
from miniprogram_api.schemas import (
    AttachmentOut,
    FaultFields,
    FaultOut,
    FaultQuery,
    Page,
    PageQuery,
    SubscribeIn,
    SubscriptionOut,
    SubscriptionsOut,
)
from miniprogram_api.uploads import photos_body, read_with_photos
from settlement.owners import faults
from settlement.notify import subscriptions
from settlement.owners.access import Right, visible_plants
from settlement.errors import NotFound
from settlement.models import Attachment, FaultReport, FaultState, SubscribeAcceptance
from webapp.keys import notify_apps_key


def _subscription(row: SubscribeAcceptance) -> SubscriptionOut:
    return SubscriptionOut(template_id=row.template_id, answer=row.answer.value, accepts=row.accepts, used=row.used)


@api.put("/subscriptions", body=SubscribeIn, response=SubscriptionsOut, tag="notifications")
async def report_subscriptions(request: web.Request, call: Call):
    """Report what wx.requestSubscribeMessage answered, ``{template_id: "accept" | "reject" | "ban"}``.

    Each accept lets one notification of that template reach this user.
    """
    answers = {k: v for k, v in call.body.root.items() if k != "errMsg"}
    rows = await subscriptions.record_answers(call.principal.identity_id, answers)
    return SubscriptionsOut(items=[_subscription(r) for r in rows])


@api.get("/subscriptions", query=PageQuery, response=Page[SubscriptionOut], tag="notifications")
async def list_subscriptions(request: web.Request, call: Call):
    """The templates this user answered, and how many accepted messages are left."""
    q: PageQuery = call.query
    rows, cursor = await page(SubscribeAcceptance.filter(identity_id=call.principal.identity_id), q.limit,
                              q.cursor, settings(request).secret_key)
    return Page[SubscriptionOut](items=[_subscription(r) for r in rows], next_cursor=cursor)


async def _fault_out(report: FaultReport) -> FaultOut:
    attachments = await Attachment.filter(fault_id=report.id).order_by("id")
    return FaultOut(id=report.id, plant_id=report.plant_id, text=report.text, state=report.state.value,
                    staff_note=report.staff_note, created_at=report.created_at, updated_at=report.updated_at,
                    resolved_at=report.resolved_at,
                    attachments=[AttachmentOut(id=a.id, content_type=a.content_type, size_bytes=a.size_bytes)
                                 for a in attachments])


@api.post("/plants/{plant_id}/faults", resource="plant", needs=Right.OWNER, multipart=FaultFields,
          response=FaultOut, status=201, tag="faults", errors=(409,), description=photos_body("text"))
async def report_fault(request: web.Request, call: Call):
    """Report a fault of the plant (报修), with up to 6 photos (owner only)."""
    fields, photos = await read_with_photos(request, FaultFields, call.plant_id)
    report = await faults.report_fault(call.principal, call.plant_id, fields.text, photos, photo_store(request),
                                      apps=request.config_dict[notify_apps_key])
    return await _fault_out(report)


@api.get("/faults", query=FaultQuery, response=Page[FaultOut], tag="faults")
async def list_faults(request: web.Request, call: Call):
    """Fault reports on the user's plants and where staff are with them, newest first."""
    q: FaultQuery = call.query
    rights = await visible_plants(call.principal)
    queryset = FaultReport.filter(plant_id__in=list(rights))
    if q.state is not None:
        queryset = queryset.filter(state=FaultState(q.state))
    rows, cursor = await page(queryset, q.limit, q.cursor, settings(request).secret_key)
    return Page[FaultOut](items=[await _fault_out(r) for r in rows], next_cursor=cursor)


@api.get("/faults/{fault_id}", resource="fault", needs=Right.VIEW, response=FaultOut, tag="faults")
async def fault_detail(request: web.Request, call: Call):
    """One fault report: its text, photos, state and staff's note."""
    return await _fault_out(await FaultReport.get(id=call.ids["fault_id"]))


@api.get("/attachments/{attachment_id}", resource="attachment", needs=Right.VIEW, tag="faults", binary=True,
         description="The photo itself (image/jpeg or image/png).")
async def attachment(request: web.Request, call: Call):
    """A photo attached to a dispute or a fault report."""
    row = await Attachment.get(id=call.ids["attachment_id"])
    try:
        data = await photo_store(request).get(row.storage_key)
    except FileNotFoundError:
        raise NotFound("this photo is no longer stored", code="photo_gone") from None
    extension = "png" if row.content_type == "image/png" else "jpg"
    return web.Response(body=data, content_type=row.content_type, headers={
        "Cache-Control": "private, max-age=3600",
        "X-Content-Type-Options": "nosniff",  # never sniffed as anything but the image it says
        "Content-Disposition": f'inline; filename="photo-{row.id}.{extension}"',
        "Content-Security-Policy": "default-src 'none'",  # opened as a page, it may run and load nothing
    })
