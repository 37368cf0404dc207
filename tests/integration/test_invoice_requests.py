"""A paid bill's e-invoice asked for now (issue #24 point 2): by the mini-program's
``POST /api/v1/bills/{bill_id}/invoice`` and by ``pvsettle invoices request``, both through
settlement.billing.invoices.request_for_bill (the bot's 开票 is tested in test_bot_staff.py).

The owner's bill is tests/integration/miniapp_support.py's: 1,234.56 yuan, 200.00 paid; the rest
is paid here (test_bill_invoices.pay_the_rest). VAT at 13 % included: 123456 × 13 / 113 =
14202.69 → 14203 fen.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest

from settlement import models as m
from tests.integration.miniapp_support import *  # noqa: F403
from tests.integration.miniapp_support import login, owner_world
from tests.integration.test_bill_invoices import TAX_ID, invoices_job, pay_the_rest
from settlement.fakes.tax_system import FakeTaxSystem


@pytest.fixture
async def people(api, fake_wechat, settings):
    world, _ = await owner_world("PV-1", "常州某厂", "o-owner", settings.mp_appid)
    await m.Owner.filter(id=world.owner.id).update(tax_id=TAX_ID)
    payer = await m.WechatIdentity.create(app_id=settings.mp_appid, openid="o-payer")
    await m.PlantAccess.create(plant=world.plant, identity=payer, right=m.PlantRight.PAY)
    other, _ = await owner_world("PV-2", "别家", "o-other", settings.mp_appid)
    await m.Owner.filter(id=other.owner.id).update(tax_id=TAX_ID)
    return {"world": world, "other": other, "owner": await login(api, fake_wechat, "o-owner"),
            "payer": await login(api, fake_wechat, "o-payer"), "viewer": await login(api, fake_wechat, "o-owner-family"),
            "other_owner": await login(api, fake_wechat, "o-other")}


async def _counts() -> tuple[int, int]:
    return (await m.InvoiceRequest.all().count(), await m.AuditEvent.filter(action="RequestInvoice").count())


async def _ask(api, bill: m.Bill, headers: dict):
    resp = await api.post(f"/api/v1/bills/{bill.id}/invoice", headers=headers)
    return resp.status, await resp.json()


async def test_the_owner_asks_for_a_paid_bills_invoice_once_and_the_job_issues_it(api, people):
    world = people["world"]
    # partly paid: refused, clearly, and nothing asked for
    status, body = await _ask(api, world.bill, people["owner"])
    assert (status, body["error"]["code"]) == (409, "bill_not_paid")
    assert world.bill.number in body["error"]["message"]
    assert await _counts() == (0, 0)

    await pay_the_rest(world.bill)
    status, body = await _ask(api, world.bill, people["owner"])
    assert status == 200
    assert body == {"bill_id": world.bill.id, "made": True, "number": None, "amount_fen": 123456, "tax_fen": 14203,
                    "issued_at": None, "state": "requested"}
    [request] = await m.InvoiceRequest.all()
    assert (request.request_key, request.buyer_name, request.buyer_tax_id) == (
        f"bill:{world.bill.id}", "常州某厂", TAX_ID)
    [event] = await m.AuditEvent.filter(action="RequestInvoice")
    assert (event.actor, event.entity_id, event.after["amount_fen"]) == ("wechat:o-owner", str(world.bill.id), 123456)

    # asked again, by the owner and by whoever may pay: the same request, nothing new
    for who in ("owner", "payer"):
        status, body = await _ask(api, world.bill, people[who])
        assert (status, body["made"], body["amount_fen"]) == (200, False, 123456), who
    assert await _counts() == (1, 1)

    # the job hands it to the tax system once and makes no second request for the bill
    tax = FakeTaxSystem()
    done = await invoices_job(tax)
    assert (done["invoices_requested"], done["invoices_issued"]) == (0, 1)
    [(_, issued)] = tax.issued.values()
    status, body = await _ask(api, world.bill, people["owner"])
    assert (status, body["made"], body["state"], body["number"]) == (200, False, "issued", issued.number)
    assert await _counts() == (1, 1)


async def test_the_payer_may_ask_the_viewer_may_not(api, people):
    world = people["world"]
    await pay_the_rest(world.bill)
    status, body = await _ask(api, world.bill, people["viewer"])
    assert status == 403
    assert await _counts() == (0, 0)
    status, body = await _ask(api, world.bill, people["payer"])
    assert (status, body["made"]) == (200, True)
    [event] = await m.AuditEvent.filter(action="RequestInvoice")
    assert event.actor == "wechat:o-payer"


async def test_another_owners_bill_is_not_found_and_nothing_is_asked(api, people):
    other = people["other"]
    await pay_the_rest(other.bill)
    for who in ("owner", "payer", "viewer"):
        status, body = await _ask(api, other.bill, people[who])
        assert (status, body["error"]["code"]) == (404, "not_found"), who
    assert (await api.post("/api/v1/bills/999999/invoice", headers=people["owner"])).status == 404
    assert await _counts() == (0, 0)
    # its own owner may
    status, body = await _ask(api, other.bill, people["other_owner"])
    assert (status, body["made"]) == (200, True)


async def test_an_owner_without_a_valid_tax_id_is_told_so(api, people):
    world = people["world"]
    await pay_the_rest(world.bill)
    for tax_id in (None, "not-a-tax-id"):
        await m.Owner.filter(id=world.owner.id).update(tax_id=tax_id)
        status, body = await _ask(api, world.bill, people["owner"])
        assert (status, body["error"]["code"]) == (409, "no_tax_id")
        assert "纳税人识别号" in body["error"]["message"]  # in the caller's language (Chinese by default)
    english = await api.post(f"/api/v1/bills/{world.bill.id}/invoice",
                             headers={**people["owner"], "Accept-Language": "en"})
    assert "tax id" in (await english.json())["error"]["message"]
    assert await _counts() == (0, 0)


async def test_a_refused_request_is_asked_again_with_the_corrected_tax_id(api, people):
    world = people["world"]
    await pay_the_rest(world.bill)
    status, _ = await _ask(api, world.bill, people["owner"])
    await m.InvoiceRequest.filter(request_key=f"bill:{world.bill.id}").update(
        state=m.InvoiceState.FAILED, failure="购买方税号有误")
    fixed = TAX_ID[:-1] + ("0" if TAX_ID[-1] != "0" else "1")
    await m.Owner.filter(id=world.owner.id).update(tax_id=fixed)
    status, body = await _ask(api, world.bill, people["owner"])
    assert (status, body["made"], body["state"]) == (200, True, "requested")
    request = await m.InvoiceRequest.get()
    assert (request.buyer_tax_id, request.failure) == (fixed, None)
    events = await m.AuditEvent.filter(action="RequestInvoice").order_by("id")
    assert [e.before for e in events] == [None, {"state": "failed", "failure": "购买方税号有误"}]


# --- pvsettle invoices request ------------------------------------------------------------------


async def _pvsettle(settings, *args: str) -> tuple[int, list[dict], str]:
    env = {**os.environ, "PVSETTLE_DATABASE_URL": settings.database_url, "PVSETTLE_REDIS_URL": settings.redis_url,
           "PVSETTLE_MP_APPID": settings.mp_appid, "PVSETTLE_OA_APPID": settings.oa_appid}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "server.cli", "invoices", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode, [json.loads(line) for line in out.decode().splitlines() if line.strip()], err.decode()


async def test_staff_ask_from_the_command_line_once_and_refusals_change_nothing(db, settings):
    world, _ = await owner_world("PV-1", "常州某厂", "o-owner", settings.mp_appid)
    await m.Owner.filter(id=world.owner.id).update(tax_id=TAX_ID)
    operator = await m.Staff.create(name="运维老李", role=m.StaffRole.OPERATOR)
    viewer = await m.Staff.create(name="查看员", role=m.StaffRole.VIEWER)
    number = world.bill.number

    code, out, err = await _pvsettle(settings, "request", "--bill", number, "--staff", str(operator.id))
    assert (code, out) == (2, []) and "not paid in full" in err
    await pay_the_rest(world.bill)
    for args, says in ((("--bill", "202609-NOPE-1", "--staff", str(operator.id)), "no bill"),
                       (("--bill", number, "--staff", "999999"), "no staff member 999999"),
                       (("--bill", number, "--staff", str(viewer.id)), "operator or admin")):
        code, out, err = await _pvsettle(settings, "request", *args)
        assert (code, out) == (2, []) and says in err, (args, err)
    assert await _counts() == (0, 0)

    code, [asked], err = await _pvsettle(settings, "request", "--bill", number, "--staff", str(operator.id))
    assert code == 0, err
    assert asked == {"bill": number, "request_key": f"bill:{world.bill.id}", "state": "requested", "made": True,
                     "amount_fen": 123456, "tax_fen": 14203, "buyer_name": "常州某厂", "buyer_tax_id": TAX_ID,
                     "number": None}
    [event] = await m.AuditEvent.filter(action="RequestInvoice")
    assert event.actor == f"staff:{operator.id}"
    code, [again], err = await _pvsettle(settings, "request", "--bill", number, "--staff", str(operator.id))
    assert code == 0 and again["made"] is False and again["request_key"] == asked["request_key"]
    assert await _counts() == (1, 1)
