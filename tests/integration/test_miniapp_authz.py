"""The authorization matrix of /api/v1, generated from the route registry — every route, not a chosen few.

People: owner A and owner B (each bound to their own account), A's family member with the view
right on A's plant, A's finance clerk with the pay right on it, and a stranger with no right.
"""

from __future__ import annotations

import re
import time

import pytest

from miniprogram_api.app import api as registry  # importing the app registers every route
from miniprogram_api.registry import Route
from settlement import models as m
from settlement.owners.access import Right
from settlement.owners.sessions import TokenClaims, sign_token
from settlement.infra.storage import LocalDiskStore, check_photo
from tests.integration.miniapp_support import *  # noqa: F403
from tests.integration.miniapp_support import PNG, OwnerWorld, login, owner_world

SESSION_ROUTES = [r for r in registry.routes if r.auth == "session"]
ID_ROUTES = [r for r in registry.routes if r.path_ids]
OWNER_ONLY = [r for r in ID_ROUTES if r.needs == Right.OWNER]
READABLE = [r for r in ID_ROUTES if r.needs == Right.VIEW]
PAYABLE = [r for r in ID_ROUTES if r.needs == Right.PAY]
LISTS = [r for r in registry.routes if r.method == "GET" and not r.path_ids and r.response is not None
         and "items" in r.response.model_fields and "next_cursor" in r.response.model_fields]


def _name(route: Route) -> str:
    return f"{route.method} {route.path}"


def test_the_registry_covers_what_the_matrix_needs():
    """A route with an id must say what it names and what right it needs, or the matrix cannot judge it."""
    assert len(ID_ROUTES) >= 10 and OWNER_ONLY and READABLE and LISTS
    for route in ID_ROUTES:
        assert route.resource is not None and route.needs is not None, _name(route)
    confirm = [r for r in registry.routes if r.path.endswith("/confirm")]
    assert confirm and all(r.needs == Right.OWNER for r in confirm)
    pay = [r for r in registry.routes if r.path.endswith("/pay")]
    assert pay and all(r.needs == Right.PAY for r in pay)  # the owner, or whoever they let pay


def _path(route: Route, world: OwnerWorld) -> str:
    return "/api/v1" + re.sub(r"\{(\w+)\}", lambda m_: str(world.id_of(m_.group(1))), route.path)


async def _call(api, route: Route, path: str, headers: dict) -> int:
    body = {"json": {}} if route.method in ("POST", "PUT") else {}
    async with api.request(route.method, path, headers=headers, **body) as resp:
        return resp.status  # a live stream is left at its headers: closing the response ends it


@pytest.fixture
async def people(api, fake_wechat, settings):
    a, a_identity = await owner_world("PA", "业主甲", "o-owner-a", settings.mp_appid)
    b, b_identity = await owner_world("PB", "业主乙", "o-owner-b", settings.mp_appid)
    store = LocalDiskStore(f"{settings.var_dir}/uploads")
    for world in (a, b):  # the photo record points at a stored photo
        world.attachment.storage_key = await store.put(check_photo(PNG))
        await world.attachment.save()
    viewer = await m.WechatIdentity.get(id=a.grant.identity_id)
    payer = await m.WechatIdentity.create(app_id=settings.mp_appid, openid="o-payer")
    await m.PlantAccess.create(plant=a.plant, identity=payer, right=m.PlantRight.PAY)
    await m.WechatIdentity.create(app_id=settings.mp_appid, openid="o-stranger")
    return {"a": a, "b": b, "owner_a": await login(api, fake_wechat, "o-owner-a"),
            "owner_b": await login(api, fake_wechat, "o-owner-b"),
            "viewer": await login(api, fake_wechat, viewer.openid), "payer": await login(api, fake_wechat, "o-payer"),
            "stranger": await login(api, fake_wechat, "o-stranger")}


@pytest.mark.parametrize("route", ID_ROUTES, ids=_name)
async def test_another_owners_ids_are_not_found(api, people, route):
    status = await _call(api, route, _path(route, people["b"]), people["owner_a"])
    assert status == 404, _name(route)
    assert await _call(api, route, _path(route, people["a"]), people["stranger"]) == 404


@pytest.mark.parametrize("route", ID_ROUTES, ids=_name)
async def test_the_owner_reaches_their_own(api, people, route):
    """So the 404s above are about ownership, not routes that fail for everybody."""
    status = await _call(api, route, _path(route, people["a"]), people["owner_a"])
    assert status not in (401, 403, 404, 500), (_name(route), status)


@pytest.mark.parametrize("who", ["viewer", "payer"])
@pytest.mark.parametrize("route", OWNER_ONLY, ids=_name)
async def test_viewers_and_payers_cannot_do_what_only_the_owner_may(api, people, route, who):
    assert await _call(api, route, _path(route, people["a"]), people[who]) == 403, _name(route)


@pytest.mark.parametrize("route", PAYABLE or [pytest.param(None, marks=pytest.mark.skip(
    reason="no route needs the pay right yet: paying comes with [pay]"))], ids=lambda r: r and _name(r))
async def test_viewers_cannot_pay_and_payers_can(api, people, route):
    assert await _call(api, route, _path(route, people["a"]), people["viewer"]) == 403, _name(route)
    status = await _call(api, route, _path(route, people["a"]), people["payer"])
    assert status not in (401, 403, 404, 500), (_name(route), status)


@pytest.mark.parametrize("who", ["viewer", "payer"])
@pytest.mark.parametrize("route", READABLE, ids=_name)
async def test_viewers_and_payers_read_the_plant_they_were_granted(api, people, route, who):
    status = await _call(api, route, _path(route, people["a"]), people[who])
    assert status == 200, (_name(route), status)


@pytest.mark.parametrize("route", LISTS, ids=_name)
async def test_lists_hold_only_what_the_user_may_see(api, people, route):
    async with api.get("/api/v1" + route.path, headers=people["owner_b"]) as resp:
        assert resp.status == 200
        items = (await resp.json())["items"]
    b = people["b"]
    assert items, _name(route)  # B has one of everything: an empty list would prove nothing
    for item in items:
        if "plant_id" in item:
            assert item["plant_id"] == b.plant.id, (_name(route), item)
        elif "template_id" in item:
            assert item["template_id"] == f"tmpl-{b.plant.code}", (_name(route), item)
        elif "bill_id" in item:
            assert item["bill_id"] == b.bill.id, (_name(route), item)
        else:
            assert item["id"] == b.plant.id, (_name(route), item)
    async with api.get("/api/v1" + route.path, headers=people["stranger"]) as resp:
        assert resp.status == 200 and (await resp.json())["items"] == []


def _bad_tokens(settings, identity_hint: int = 1) -> dict[str, str]:
    expired = sign_token(TokenClaims(identity_hint, "sessionid", int(time.time()) - 10), settings.secret_key)
    forged = sign_token(TokenClaims(identity_hint, "sessionid", int(time.time()) + 3600), "f" * 40)
    return {"none": "", "expired": f"Bearer {expired}", "forged": f"Bearer {forged}", "garbage": "Bearer x.y.z"}


@pytest.mark.parametrize("route", SESSION_ROUTES, ids=_name)
async def test_no_expired_or_forged_token_is_401_everywhere(api, people, settings, route):
    for kind, header in _bad_tokens(settings).items():
        headers = {"Authorization": header} if header else {}
        status = await _call(api, route, _path(route, people["a"]), headers)
        assert status == 401, (_name(route), kind)


async def test_a_grant_of_another_plant_cannot_be_revoked_through_ones_own(api, people):
    path = f"/api/v1/plants/{people['a'].plant.id}/grants/{people['b'].grant.id}"
    assert (await api.delete(path, headers=people["owner_a"])).status == 404
    assert (await m.PlantAccess.get(id=people["b"].grant.id)).revoked_at is None


async def test_viewer_confirming_changes_nothing(api, people):
    form = people["a"].form
    assert (await api.post(f"/api/v1/forms/{form.id}/confirm", headers=people["viewer"])).status == 403
    assert (await api.post(f"/api/v1/forms/{form.id}/confirm", headers=people["payer"])).status == 403
    assert (await m.ConfirmationForm.get(id=form.id)).state == m.FormState.SENT
    resp = await api.post(f"/api/v1/forms/{form.id}/confirm", headers=people["owner_a"])
    assert resp.status == 200 and (await resp.json())["state"] == "confirmed"
    event = await m.AuditEvent.get(entity="form", entity_id=str(form.id), action="ConfirmForm")
    assert event.actor == "wechat:o-owner-a"
