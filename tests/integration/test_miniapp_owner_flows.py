"""What an owner does in the mini-program: forms, disputes with photos, bills, sharing, faults,
subscribe answers, paging."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest

from settlement.owners import faults
from settlement import models as m
from settlement.infra.storage import MAX_PHOTO_BYTES
from tests.integration.miniapp_support import *  # noqa: F403
from tests.integration.miniapp_support import JPEG, PNG, login, owner_world
from settlement.clock import utc_now


@pytest.fixture
async def owner(api, fake_wechat, settings):
    world, identity = await owner_world("PV-1", "常州某厂", "o-owner", settings.mp_appid)
    return world, await login(api, fake_wechat, "o-owner")


def _photos_form(reason: str | None, photos: list[tuple[str, bytes, str]], field: str = "reason") -> aiohttp.FormData:
    form = aiohttp.FormData()
    if reason is not None:
        form.add_field(field, reason)
    for name, data, content_type in photos:
        # a BytesIO: aiohttp warns about large raw bytes bodies
        form.add_field("photos", io.BytesIO(data), filename=name, content_type=content_type)
    return form


async def test_form_detail_shows_the_whole_form(api, owner):
    world, headers = owner
    form = world.form
    form.lines = [{"group": "generation", "meter": "PV-1-G", "register": "00010000", "previous": "1000.0000",
                   "previous_at": "2026-08-31T16:00:00Z", "current": "1700.0000",
                   "current_at": "2026-09-30T16:00:00Z", "multiplier": 20, "kwh": "14000.000"}]
    form.periods = {"peak": {"generation": "6000.000", "self_use": "5400.000", "export": "600.000",
                             "grid": "2000.000"}}
    await form.save()
    resp = await api.get(f"/api/v1/forms/{form.id}", headers=headers)
    assert resp.status == 200
    body = await resp.json()
    assert body["lines"][0]["register"] == "00010000" and body["lines"][0]["multiplier"] == 20
    assert body["periods"]["peak"]["self_use"] == "5400.000"
    assert (body["state"], body["can_answer"], body["superseded"]) == ("sent", True, False)
    assert body["owner_name"] == "常州某厂" and body["period"] == "2026-09"
    assert body["generation_kwh"] == "1000.000"
    # absolute, as the bot's: this server's origin when PVSETTLE_PUBLIC_URL is not set
    assert body["ebill_url"].startswith(f"http://{api.host}:{api.port}/e/form/{form.id}?exp=")
    page = await api.get(urlsplit(body["ebill_url"])._replace(scheme="", netloc="").geturl())  # no session needed
    assert page.status == 200 and "text/html" in page.headers["Content-Type"]


async def test_dispute_with_photos_stores_them_and_shows_them(api, owner, settings):
    world, headers = owner
    form = _photos_form("读数与现场不符", [("a.jpg", JPEG, "image/jpeg"), ("b.png", PNG, "application/octet-stream")])
    resp = await api.post(f"/api/v1/forms/{world.form.id}/dispute", data=form, headers=headers)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["state"] == "disputed" and body["dispute_reason"] == "读数与现场不符"
    assert [a["content_type"] for a in body["attachments"]] == ["image/jpeg", "image/png"]
    stored = {p.suffix: p.read_bytes() for p in (Path(settings.var_dir) / "uploads").rglob("*") if p.is_file()}
    assert sorted(stored) == [".jpg", ".png"]  # encoded anew, not the uploads' bytes (test_miniapp_photos.py)
    photo = await api.get(f"/api/v1/attachments/{body['attachments'][1]['id']}", headers=headers)
    assert photo.status == 200 and await photo.read() == stored[".png"]
    assert photo.headers["Content-Type"] == "image/png"
    # answered already: a second dispute or a confirmation conflicts
    again = await api.post(f"/api/v1/forms/{world.form.id}/dispute", json={"reason": "再次"}, headers=headers)
    assert again.status == 409
    assert (await api.post(f"/api/v1/forms/{world.form.id}/confirm", headers=headers)).status == 409


@pytest.mark.parametrize("photos, code", [
    ([("x.jpg", b"GIF89a" + b"\x00" * 20, "image/jpeg")], "photo_refused"),  # a GIF named .jpg
    ([("x.png", b"<script>alert(1)</script>", "image/png")], "photo_refused"),
    ([("x.png", b"", "image/png")], "photo_refused"),
    ([("big.jpg", b"\xff\xd8\xff" + b"\x00" * MAX_PHOTO_BYTES, "image/jpeg")], "photo_refused"),
    ([(f"{i}.png", PNG, "image/png") for i in range(7)], "too_many_photos"),
])
async def test_hostile_photos_are_refused_and_nothing_changes(api, owner, settings, photos, code):
    world, headers = owner
    resp = await api.post(f"/api/v1/forms/{world.form.id}/dispute", data=_photos_form("不对", photos),
                          headers=headers)
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["error"]["code"] == code
    assert (await m.ConfirmationForm.get(id=world.form.id)).state == m.FormState.SENT
    uploads = Path(settings.var_dir) / "uploads"
    assert not uploads.exists() or not [p for p in uploads.rglob("*") if p.is_file()]


@pytest.mark.parametrize("reason, photos, field", [
    (None, [("a.png", PNG, "image/png")], "reason"),  # no reason
    ("x", [], "../../etc/passwd"),  # a field the route does not take
    ("   ", [], "reason"),
])
async def test_dispute_needs_a_reason(api, owner, reason, photos, field):
    world, headers = owner
    form = _photos_form(reason, photos, field=field)
    resp = await api.post(f"/api/v1/forms/{world.form.id}/dispute", data=form, headers=headers)
    assert resp.status == 400
    assert (await m.ConfirmationForm.get(id=world.form.id)).state == m.FormState.SENT


async def test_forms_and_bills_listed_by_state_and_paged(api, owner):
    world, headers = owner
    from tests.integration.billed_plant import plain_bill

    for month in range(1, 8):  # seven more periods of the same plant, bills open
        await plain_bill("PV-1", f"2026-0{month}" if month < 9 else f"2026-{month}", total_fen=1000 * month,
                         due_on=dt.date(2026, month, 28), plant=world.plant, form_state=m.FormState.CONFIRMED)
    sent = await (await api.get("/api/v1/forms?state=sent", headers=headers)).json()
    assert [f["id"] for f in sent["items"]] == [world.form.id]
    seen, cursor = [], None
    while True:
        url = "/api/v1/bills?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = await (await api.get(url, headers=headers)).json()
        seen += [b["id"] for b in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 8 and seen == sorted(seen, reverse=True) and len(set(seen)) == 8
    partly = await (await api.get("/api/v1/bills?state=partly_paid", headers=headers)).json()
    assert [b["id"] for b in partly["items"]] == [world.bill.id]
    assert partly["items"][0]["owed_fen"] == 123456 - 20000
    for bad in ("limit=0", "limit=101", "limit=x", "cursor=AAAA", "cursor=MTIzLmZvcmdlZA", "state=bogus"):
        resp = await api.get(f"/api/v1/bills?{bad}", headers=headers)
        assert resp.status == 400, bad


async def test_draft_forms_stay_with_staff(api, owner):
    """README: a form whose findings need a look stays a draft for staff; the owner sees it once sent."""
    world, headers = owner
    cycle = await m.ReadingCycle.get(id=world.form.cycle_id)
    draft = await m.ConfirmationForm.create(cycle=cycle, version=2, state=m.FormState.DRAFT, lines=[], periods={},
                                            generation_kwh=0, self_use_kwh=0, export_kwh=0, grid_kwh=0,
                                            flags=["TOU_MISMATCH"])
    assert (await api.get(f"/api/v1/forms/{draft.id}", headers=headers)).status == 404
    for action in ("confirm", "dispute"):
        resp = await api.post(f"/api/v1/forms/{draft.id}/{action}", headers=headers, json={"reason": "x"})
        assert resp.status == 404, action
    listed = await (await api.get("/api/v1/forms", headers=headers)).json()
    assert [f["id"] for f in listed["items"]] == [world.form.id]
    resp = await api.get("/api/v1/forms?state=draft", headers=headers)
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid_query"
    spec = await (await api.get("/api/v1/openapi.json")).json()
    states = spec["components"]["schemas"]["FormSummary"]["properties"]["state"]["enum"]
    assert "draft" not in states and "sent" in states
    assert (await m.ConfirmationForm.get(id=draft.id)).state == m.FormState.DRAFT  # nothing changed
    await m.ConfirmationForm.filter(id=draft.id).update(state=m.FormState.SENT)  # staff send it
    assert (await api.get(f"/api/v1/forms/{draft.id}", headers=headers)).status == 200


async def test_bill_detail_lines_payments_and_ebill(api, owner):
    world, headers = owner
    body = await (await api.get(f"/api/v1/bills/{world.bill.id}", headers=headers)).json()
    assert [line["amount_fen"] for line in body["lines"]] == [123456]
    assert [(p["amount_fen"], p["channel"]) for p in body["payments"]] == [(20000, "wechat")]
    assert body["owed_fen"] == 103456
    assert body["ebill_url"].startswith(f"http://{api.host}:{api.port}/e/bill/{world.bill.id}?")
    payments = await (await api.get("/api/v1/payments", headers=headers)).json()
    assert [p["bill_number"] for p in payments["items"]] == [world.bill.number]
    await m.CreditEntry.create(owner=world.owner, amount_fen=550, reason="overpayment")
    assert (await (await api.get("/api/v1/account", headers=headers)).json())["credit_fen"] == 550


async def test_share_redeem_and_revoke(api, owner, fake_wechat):
    world, headers = owner
    resp = await api.post(f"/api/v1/plants/{world.plant.id}/shares", json={"right": "pay", "ttl_hours": 2},
                          headers=headers)
    assert resp.status == 201
    share = await resp.json()
    finance = await login(api, fake_wechat, "o-finance")
    assert (await api.get(f"/api/v1/plants/{world.plant.id}", headers=finance)).status == 404
    resp = await api.post("/api/v1/shares/redeem", json={"code": share["code"].lower()}, headers=finance)
    assert resp.status == 200, await resp.text()
    grant = await resp.json()
    assert grant["right"] == "pay" and grant["revoked_at"] is None
    detail = await (await api.get(f"/api/v1/plants/{world.plant.id}", headers=finance)).json()
    assert detail["right"] == "pay"
    assert [b["id"] for b in (await (await api.get("/api/v1/bills", headers=finance)).json())["items"]] == [
        world.bill.id]
    # the code worked once
    stranger = await login(api, fake_wechat, "o-stranger")
    resp = await api.post("/api/v1/shares/redeem", json={"code": share["code"]}, headers=stranger)
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid_share_code"
    grants = await (await api.get(f"/api/v1/plants/{world.plant.id}/grants", headers=headers)).json()
    assert {g["id"] for g in grants["items"]} == {grant["id"], world.grant.id}
    resp = await api.delete(f"/api/v1/plants/{world.plant.id}/grants/{grant['id']}", headers=headers)
    assert resp.status == 200 and (await resp.json())["revoked_at"] is not None
    assert (await api.get(f"/api/v1/plants/{world.plant.id}", headers=finance)).status == 404
    assert (await (await api.get("/api/v1/bills", headers=finance)).json())["items"] == []
    # the owner cannot redeem a share of their own plant
    resp = await api.post(f"/api/v1/plants/{world.plant.id}/shares", json={"right": "view"}, headers=headers)
    own = await resp.json()
    resp = await api.post("/api/v1/shares/redeem", json={"code": own["code"]}, headers=headers)
    assert resp.status == 409


async def test_fault_report_with_photo_and_staff_progress(api, owner, notify_apps):
    world, headers = owner
    form = aiohttp.FormData()
    form.add_field("text", "组串 3 不发电")
    form.add_field("photos", PNG, filename="a.png", content_type="image/png")
    resp = await api.post(f"/api/v1/plants/{world.plant.id}/faults", data=form, headers=headers)
    assert resp.status == 201, await resp.text()
    report = await resp.json()
    assert report["state"] == "open" and len(report["attachments"]) == 1
    staff = await m.Staff.create(name="运维", role=m.StaffRole.OPERATOR)
    await faults.set_fault_state(report["id"], m.FaultState.IN_PROGRESS, staff, "明天上午到场", apps=notify_apps)
    body = await (await api.get(f"/api/v1/faults/{report['id']}", headers=headers)).json()
    assert (body["state"], body["staff_note"]) == ("in_progress", "明天上午到场")
    await faults.set_fault_state(report["id"], m.FaultState.RESOLVED, staff, "已更换熔丝", apps=notify_apps)
    with pytest.raises(Exception) as refused:
        await faults.set_fault_state(report["id"], m.FaultState.IN_PROGRESS, staff, apps=notify_apps)
    assert getattr(refused.value, "code", "") == "bad_state"
    listed = await (await api.get("/api/v1/faults?state=resolved", headers=headers)).json()
    assert [f["id"] for f in listed["items"]] == [report["id"]] and listed["items"][0]["resolved_at"]
    viewer = await m.Staff.create(name="只读", role=m.StaffRole.VIEWER)
    with pytest.raises(Exception) as refused:
        await faults.set_fault_state(world.fault.id, m.FaultState.RESOLVED, viewer, apps=notify_apps)
    assert getattr(refused.value, "code", "") == "role_required"
    # a JSON report without photos works too; an empty one does not
    resp = await api.post(f"/api/v1/plants/{world.plant.id}/faults", json={"text": "电表不亮"}, headers=headers)
    assert resp.status == 201
    resp = await api.post(f"/api/v1/plants/{world.plant.id}/faults", json={"text": ""}, headers=headers)
    assert resp.status == 400


async def test_subscribe_answers_are_counted_per_template(api, owner):
    _, headers = owner
    tmpl = "Xk3m_bill-issued-0000000000000000000000000"
    body = {"errMsg": "requestSubscribeMessage:ok", tmpl: "accept", "tmpl-form": "reject"}
    resp = await api.put("/api/v1/subscriptions", json=body, headers=headers)
    assert resp.status == 200, await resp.text()
    await api.put("/api/v1/subscriptions", json={tmpl: "accept"}, headers=headers)
    items = {i["template_id"]: i for i in (await (await api.get("/api/v1/subscriptions",
                                                                  headers=headers)).json())["items"]}
    assert (items[tmpl]["answer"], items[tmpl]["accepts"]) == ("accept", 2)
    assert (items["tmpl-form"]["answer"], items["tmpl-form"]["accepts"]) == ("reject", 0)
    from settlement.notify import subscriptions

    identity = await m.WechatIdentity.get(openid="o-owner")
    assert await subscriptions.may_send(identity.id, tmpl) and not await subscriptions.may_send(identity.id,
                                                                                                 "tmpl-form")
    assert await subscriptions.use_one(identity.id, tmpl) and await subscriptions.use_one(identity.id, tmpl)
    assert not await subscriptions.use_one(identity.id, tmpl)  # two accepts, two messages
    for bad in ({tmpl: "maybe"}, {"bad id!": "accept"}, {}):
        assert (await api.put("/api/v1/subscriptions", json=bad, headers=headers)).status == 400


@pytest.mark.parametrize("content_type, body", [
    ("multipart/form-data", b"garbage"),  # no boundary
    ("multipart/form-data; boundary=xyz", b"garbage without boundary"),
    ("multipart/form-data; boundary=xyz", b'--xyz\r\nContent-Disposition: form-data; name="reason"\r\n\r\nabc\r\n'),
    ("multipart/form-data; boundary=xyz", b"--xyz\r\n\r\nabc\r\n--xyz--\r\n"),  # a part without a name
    ("multipart/form-data; boundary=xyz", b"--xyz\r\n0.0--xyz--\r\n"),  # a header line that is not one
    ("multipart/mixed; boundary=xyz",
     b"--xyz\r\nContent-Type: multipart/mixed; boundary=abc\r\n\r\n--abc\r\n\r\nx\r\n--abc--\r\n--xyz--\r\n"),
    ("multipart/form-data; boundary=xyz", b'--xyz\r\nContent-Disposition: form-data; name="reason"\r\n'
                                          b"Content-Type: text/plain; charset=nope\r\n\r\nabc\r\n--xyz--\r\n"),
])
async def test_malformed_multipart_bodies_are_400(api, owner, content_type, body):
    world, headers = owner
    resp = await api.post(f"/api/v1/forms/{world.form.id}/dispute", data=body,
                          headers={**headers, "Content-Type": content_type})
    assert resp.status == 400, await resp.text()
    assert (await m.ConfirmationForm.get(id=world.form.id)).state == m.FormState.SENT


async def test_a_change_made_outside_the_api_is_seen_once_invalidated(api, owner, fake_wechat):
    """The bot or a staff tool that changes grants calls settlement.owners.principal_cache.invalidate."""
    from webapp.keys import redis_key, redis_ns_key
    from settlement.owners.principal_cache import invalidate

    world, _ = owner
    family = await m.WechatIdentity.get(id=world.grant.identity_id)
    headers = await login(api, fake_wechat, family.openid)
    assert [p["id"] for p in (await (await api.get("/api/v1/plants", headers=headers)).json())["items"]] == [
        world.plant.id]
    await m.PlantAccess.filter(id=world.grant.id).update(revoked_at=utc_now())
    app = api.server.app
    await invalidate(app[redis_key], app[redis_ns_key], family.id)
    assert (await (await api.get("/api/v1/plants", headers=headers)).json())["items"] == []
    assert (await api.get(f"/api/v1/bills/{world.bill.id}", headers=headers)).status == 404
