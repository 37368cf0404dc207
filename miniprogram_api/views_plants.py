"""Plants: list, detail, generation history, sharing rights."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from aiohttp import web

from miniprogram_api import gate
from miniprogram_api.common import api, factors, now, settings
from miniprogram_api.pagination import page
from miniprogram_api.registry import Call
from miniprogram_api.schemas import (
    ContractOut,
    FactorsOut,
    GrantOut,
    HistoryBar,
    HistoryOut,
    HistoryQuery,
    Page,
    PageQuery,
    PlantDetail,
    PlantSummary,
    RedeemIn,
    ShareIn,
    ShareOut,
)
from settlement.telemetry import generation
from settlement.owners import grants
from settlement.telemetry import live
from settlement.owners.access import Right, visible_plants
from settlement.models import Contract, Owner, Plant, PlantAccess, PlantRight
from settlement.infra.redis_client import RedisUnavailable
from webapp.keys import redis_guard_key, redis_key, redis_ns_key


def _wh_kwh(wh: int | None) -> Decimal | None:
    return None if wh is None else (Decimal(wh) / 1000).quantize(Decimal("0.001"))


async def _summaries(request: web.Request, plants: list[Plant], rights: dict[int, Right]) -> list[dict]:
    client, ns = request.config_dict[redis_key], request.config_dict[redis_ns_key]
    at = now()
    states = {}
    raw: list[bytes | None] = []
    if plants:
        try:
            with request.config_dict[redis_guard_key].using():
                raw = await client.mget([live.channel(ns, p.id) for p in plants])
        except RedisUnavailable:  # no live state: today's energy from the database, status unknown
            raw = []
        for plant, body in zip(plants, raw):
            try:
                states[plant.id] = json.loads(body) if body else None
            except ValueError:
                states[plant.id] = None  # a state we cannot read is no state
    lifetime = await generation.lifetime_wh([p.id for p in plants])
    out = []
    for plant in plants:
        state = states.get(plant.id)
        today = generation.live_today_wh(state, at)
        if today is None:
            today = await generation.today_wh(plant.id, at)
        last_seen = None
        if state and state.get("ts"):
            try:
                last_seen = dt.datetime.fromisoformat(str(state["ts"]).replace("Z", "+00:00"))
            except ValueError:
                last_seen = None
        power = state.get("power_w") if state else None
        out.append(dict(
            id=plant.id, code=plant.code, name=plant.name, capacity_kwp=plant.capacity_kwp,
            right=rights[plant.id].label, status=generation.status_of(state, at),
            power_w=power if isinstance(power, int) else None,
            last_seen=last_seen if last_seen and last_seen.tzinfo else None,
            today_kwh=_wh_kwh(today), lifetime_kwh=_wh_kwh(lifetime[plant.id])))
    return out


@api.get("/plants", query=PageQuery, response=Page[PlantSummary], tag="plants")
async def list_plants(request: web.Request, call: Call):
    """The plants this user owns or was granted a right on: capacity, status, today's and lifetime energy."""
    rights = await visible_plants(call.principal)
    q: PageQuery = call.query
    plants, cursor = await page(Plant.filter(id__in=list(rights)), q.limit, q.cursor, settings(request).secret_key)
    return Page[PlantSummary](items=[PlantSummary(**s) for s in await _summaries(request, plants, rights)],
                              next_cursor=cursor)


@api.get("/plants/{plant_id}", resource="plant", needs=Right.VIEW, response=PlantDetail, tag="plants")
async def plant_detail(request: web.Request, call: Call):
    """One plant: its summary, address, reading day and the contract in force."""
    plant = await Plant.get(id=call.plant_id)
    summary = (await _summaries(request, [plant], {plant.id: call.right}))[0]
    contract = await Contract.filter(plant_id=plant.id, effective_from__lte=now().date()) \
        .order_by("-effective_from").first()
    owner = await Owner.get(id=plant.owner_id)
    return PlantDetail(
        **summary, address=plant.address, reading_day=plant.reading_day, commissioned_on=plant.commissioned_on,
        owner_name=owner.name,
        contract=ContractOut(effective_from=contract.effective_from, pricing_model=contract.pricing_model.value,
                             tariff_code=contract.tariff_code, discount=contract.discount,
                             fixed_price=contract.fixed_price, due_days=contract.due_days) if contract else None)


@api.get("/plants/{plant_id}/history", resource="plant", needs=Right.VIEW, query=HistoryQuery,
         response=HistoryOut, tag="plants")
async def plant_history(request: web.Request, call: Call):
    """Generation history: a day's 15-minute curve, a month's daily bars, a year's monthly bars, or every year.

    Energy comes from telemetry; a month that telemetry does not cover takes the generation of
    its confirmed form instead (``source`` says which). Self-use, export and revenue of a month
    come from its confirmed form and bill (the reading cycle named by ``billing_period``); of a
    day from the grid meter's midnight readings where there are some. What was not measured is
    null, and ``reason`` says why.
    """
    q: HistoryQuery = call.query
    at = now()
    first = generation.parse_at(q.span, q.at, at)
    bars, total = await generation.history(call.plant_id, q.span, first, at)
    f = factors(request)
    return HistoryOut(plant_id=call.plant_id, span=q.span, bars=[HistoryBar(**b.as_dict(f)) for b in bars],
                      total=HistoryBar(**total.as_dict(f)),
                      factors=FactorsOut(co2_kg_per_kwh=f.co2_kg_per_kwh, coal_kg_per_kwh=f.coal_kg_per_kwh))


# --- sharing ------------------------------------------------------------------------------------


def _grant_out(grant: PlantAccess) -> GrantOut:
    identity = grant.identity
    grantee = identity.nickname or f"…{identity.openid[-6:]}"
    return GrantOut(id=grant.id, plant_id=grant.plant_id, right=grant.right.value, grantee=grantee,
                    granted_at=grant.granted_at, revoked_at=grant.revoked_at)


@api.post("/plants/{plant_id}/shares", resource="plant", needs=Right.OWNER, body=ShareIn, response=ShareOut,
          status=201, tag="sharing")
async def create_share(request: web.Request, call: Call):
    """Make a one-time share code that gives its redeemer the view or pay right on this plant (owner only)."""
    body: ShareIn = call.body
    code, share = await grants.create_share(call.principal, call.plant_id, PlantRight(body.right),
                                            dt.timedelta(hours=body.ttl_hours))
    return ShareOut(code=code, plant_id=call.plant_id, right=body.right, expires_at=share.expires_at)


@api.post("/shares/redeem", body=RedeemIn, response=GrantOut, tag="sharing", errors=(409,))
async def redeem_share(request: web.Request, call: Call):
    """Take the right a share code gives (any logged-in user; the code then stops working)."""
    grant = await grants.redeem_share(call.principal, call.body.code)
    await gate.invalidate(request.config_dict[redis_key], request.config_dict[redis_guard_key],
                          request.config_dict[redis_ns_key], grant.identity_id)
    await grant.fetch_related("identity")
    return _grant_out(grant)


@api.get("/plants/{plant_id}/grants", resource="plant", needs=Right.OWNER, query=PageQuery,
         response=Page[GrantOut], tag="sharing")
async def list_grants(request: web.Request, call: Call):
    """Who was given a right on this plant, revoked grants included (owner only)."""
    q: PageQuery = call.query
    rows, cursor = await page(PlantAccess.filter(plant_id=call.plant_id).prefetch_related("identity"), q.limit,
                              q.cursor, settings(request).secret_key)
    return Page[GrantOut](items=[_grant_out(g) for g in rows], next_cursor=cursor)


@api.delete("/plants/{plant_id}/grants/{grant_id}", resource="plant", needs=Right.OWNER, response=GrantOut,
            tag="sharing")
async def revoke_grant(request: web.Request, call: Call):
    """Take a right back (owner only); the grantee no longer sees the plant."""
    grant = await grants.revoke_grant(call.principal, call.plant_id, call.ids["grant_id"])
    await gate.invalidate(request.config_dict[redis_key], request.config_dict[redis_guard_key],
                          request.config_dict[redis_ns_key], grant.identity_id)
    await grant.fetch_related("identity")
    return _grant_out(grant)

