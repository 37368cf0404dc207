"""Events and non-text messages: subscribe (with a QR scene), unsubscribe, QR scans, menu clicks,
locations, and the message types the bot does not read.

* **subscribe** — the user gets the welcome with binding instructions; the follow is recorded as an
  audit event (SubscribeOfficialAccount). A QR code's scene ``qrscene_<invitation code>`` binds at
  once (its outcome is added to the welcome). **SCAN** (a follower scanning such a code) binds too.
* **unsubscribe** — recorded as an audit event (UnsubscribeOfficialAccount): who follows is read
  from the latest of the two events; no reply (the user no longer receives any).
* **CLICK** — the menu keys of :data:`bot.commands.MENU` run the owner commands 发电, 账单, 缴费.
* **location** (a location sent as a message) — the sender's plants, or for staff the plants near
  that point, with their distance. The periodic **LOCATION** event is recorded nowhere and
  answered with nothing: WeChat sends it each time the user opens the chat.
"""

from __future__ import annotations

import math
from decimal import Decimal

from bot import commands, owner
from bot.commands import Command
from bot.context import Caller, Env, ensure_identity
from bot.inbound import Inbound
from bot.replies import render
from bot.run import refusal, run_command
from settlement import audit
from settlement.owners.access import visible_plants
from settlement.errors import DomainError
from settlement.models import Plant

#: Plants within this box around a staff member's location are candidates [deg of latitude].
NEAR_DEGREES = Decimal("0.5")
EARTH_RADIUS_KM = 6371.0
NEAREST = 5


async def subscribe(inbound: Inbound, caller: Caller, env: Env) -> str:
    identity = await ensure_identity(caller, env.app_id)
    await audit.record(audit.actor_of(openid=caller.openid), "SubscribeOfficialAccount", "wechat_identity",
                       identity.id, after={"scene": "invitation" if inbound.event_key else None})
    bound = refused = None
    if inbound.event_key:
        bound, refused = await _bind_from_scene(inbound.event_key, caller, env)
    return render("welcome", bound=bound, refused=refused, owner_id=caller.owner_id)


async def scan(inbound: Inbound, caller: Caller, env: Env) -> str | None:
    if not inbound.event_key:
        return None
    bound, refused = await _bind_from_scene(inbound.event_key, caller, env)
    return bound or refused


async def _bind_from_scene(scene: str, caller: Caller, env: Env) -> tuple[str | None, str | None]:
    """(bound text, refusal text) of binding with the invitation code a QR scene carries."""
    try:
        return await owner.bind_code(scene, caller, env), None
    except DomainError as exc:
        return None, refusal(exc)


async def unsubscribe(inbound: Inbound, caller: Caller, env: Env) -> None:
    if caller.identity is None:
        return None  # never seen: there is nobody to mark
    await audit.record(audit.actor_of(openid=caller.openid), "UnsubscribeOfficialAccount", "wechat_identity",
                       caller.identity.id, after={"owner": caller.owner_id})
    return None


async def click(inbound: Inbound, caller: Caller, env: Env) -> str | None:
    name = commands.MENU.get(inbound.event_key)
    if name is None:
        return await owner.help_text(None, caller, env)
    return await run_command(Command(spec=commands.BY_NAME[name], args=(), reason=None, text=""), caller, env)


def distance_km(lat1: Decimal, lon1: Decimal, lat2: Decimal, lon2: Decimal) -> float:
    """Great-circle distance by the haversine formula [km] (display only, not money)."""
    p1, p2 = math.radians(float(lat1)), math.radians(float(lat2))
    dp, dl = p2 - p1, math.radians(float(lon2) - float(lon1))
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


async def location(inbound: Inbound, caller: Caller, env: Env) -> str:
    lat, lon = inbound.latitude, inbound.longitude
    if lat is None or lon is None:
        return render("location", rows=[], staff=False, label=inbound.label, known=False)
    staff = caller.role is not None
    if staff:
        box = NEAR_DEGREES / Decimal(max(math.cos(math.radians(float(lat))), 0.01))
        plants = await Plant.filter(latitude__gte=lat - NEAR_DEGREES, latitude__lte=lat + NEAR_DEGREES,
                                    longitude__gte=lon - box, longitude__lte=lon + box)
    else:
        principal = caller.principal()
        rights = await visible_plants(principal) if principal else {}
        plants = await Plant.filter(id__in=list(rights))
    rows = sorted(((distance_km(lat, lon, p.latitude, p.longitude), p) for p in plants
                   if p.latitude is not None and p.longitude is not None), key=lambda r: (r[0], r[1].code))
    return render("location", rows=rows[:NEAREST], staff=staff, label=inbound.label, known=True)


async def handle(inbound: Inbound, caller: Caller, env: Env) -> str | None:
    """The reply to an event or a non-text message (None: answer ``success``, no message)."""
    if inbound.kind == "location":
        return await location(inbound, caller, env)
    if inbound.kind != "event":
        return render("not_text", kind=inbound.kind)
    if inbound.event == "subscribe":
        return await subscribe(inbound, caller, env)
    if inbound.event == "unsubscribe":
        return await unsubscribe(inbound, caller, env)
    if inbound.event == "scan":
        return await scan(inbound, caller, env)
    if inbound.event == "click":
        return await click(inbound, caller, env)
    return None  # LOCATION reports, VIEW (a menu link opened), template-send reports…
