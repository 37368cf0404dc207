"""Owner commands: 绑定, 发电, 账单, 缴费, 报修, 帮助 — each calls one service and renders one template.

What an owner may see follows :mod:`settlement.owners.access`: their own plants, and plants shared with
this WeChat user (view or pay). A plant code they have no right on is answered as not found.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

from bot import commands
from bot.commands import Command, Malformed
from bot.context import Caller, Env, ensure_identity, find_caller
from bot.replies import render
from settlement.owners import bindings
from settlement.owners import faults
from settlement.telemetry import generation
from settlement.telemetry import live
from settlement.owners import principal_cache
from settlement.owners.access import Principal, Right, load_principal, visible_plants
from settlement.billing.ebill_links import ebill_link
from settlement.errors import Forbidden, NotFound
from settlement.models import Bill, BillState, Plant, WechatIdentity
from settlement.ports.wechat import WechatError
from settlement.infra.storage import LocalDiskStore
from settlement.clock import LOCAL

log = logging.getLogger("pvsettle.bot")
OPEN = (BillState.OPEN, BillState.PARTLY_PAID)
#: Mini-program pages the replies link into.
BILL_LIST_PAGE = "pages/bill/list"
BILL_PAGE = "pages/bill/detail?id={id}"
#: The mini-program page that redeems a link code (as POST /api/v1/binding's invitation_code).
LINK_PAGE = "pages/bind/link?code={code}"
#: Plants and bills listed in one reply (the rest are counted).
MAX_LISTED = 5
#: Attempts at an invitation code per WeChat user per hour: codes are not guessable, and this
#: keeps it so.
BIND_ATTEMPTS_PER_HOUR = 10
#: How long a message waits for user/info (the unionid) before it is answered without [s].
USER_INFO_TIMEOUT_S = 1.0


async def _plants(caller: Caller, least: Right = Right.VIEW) -> tuple[Principal, dict[int, Right]]:
    """The sender's principal and the plants they hold at least ``least`` on.

    Raises
    ------
    Forbidden
        ``not_bound``: the sender is bound to no owner and holds no right on any plant.
    """
    # the user with every plant they may see, in one query (settlement.owners.access)
    principal = await load_principal(caller.identity.id) if caller.identity is not None else None
    rights = await visible_plants(principal) if principal is not None else {}
    if not rights:
        raise Forbidden("this WeChat user is not bound to an owner account", code="not_bound")
    return principal, {pid: right for pid, right in rights.items() if right >= least}


async def _named_plant(code: str, rights: dict[int, Right]) -> Plant:
    plant = await Plant.get_or_none(code=code) or await Plant.filter(code__iexact=code).first()
    if plant is None or plant.id not in rights:
        raise NotFound(f"no plant {code!r} of yours", code="unknown_plant", params={"plant": code})
    return plant


async def bind(cmd: Command, caller: Caller, env: Env) -> str:
    if not cmd.args:
        if caller.owner_id is None:
            raise Malformed(cmd.spec)
        # bound here already: the one-tap way to the mini-program, where WeChat gives no unionid
        return render("bound", owner=caller.owner, plants=None, link=await _mini_program_link(caller.identity.id))
    return await bind_code("".join(cmd.args), caller, env)


async def _mini_program_link(identity_id: int) -> dict | None:
    """A link code and the mini-program page that redeems it, unless the same person (by
    unionid) is bound in the mini-program already."""
    identity = await WechatIdentity.get(id=identity_id)
    others = [i for i in await WechatIdentity.filter(id__in=await bindings.person_identity_ids(identity_id))
              if i.id != identity_id]
    if any(i.owner_id == identity.owner_id for i in others):
        return None
    code, expires_at = await bindings.issue_link_code(identity_id)
    return {"code": code, "page": LINK_PAGE.format(code=code), "expires_at": expires_at.astimezone(LOCAL)}


async def learn_unionid(caller: Caller, env: Env) -> None:
    """Link a sender the bot cannot place yet to the same person in the mini-program: WeChat's
    user/info tells the unionid when both apps share an open-platform account. Asked once a day
    per sender at most (a user without unionid would otherwise cost a call per message)."""
    if caller.owner_id is not None or caller.role is not None:
        return
    if caller.identity is not None and caller.identity.unionid:
        unionid = caller.identity.unionid
    else:
        asked = env.ns.key("bot", "unionid-asked", env.app_id, caller.openid)
        if not await env.redis.set(asked, "1", ex=86400, nx=True):
            return
        try:
            # the reply must not wait for a slow WeChat: without an answer the sender stays unlinked today
            async with asyncio.timeout(USER_INFO_TIMEOUT_S):
                unionid = (await env.wechat.user_info(caller.openid)).unionid
        except WechatError as exc:
            log.info("user/info refused, the sender stays unlinked", extra={"errcode": exc.errcode})
            return
        except TimeoutError:
            log.info("user/info did not answer in time, the sender stays unlinked")
            return
        if not unionid:
            return
    identity = await ensure_identity(caller, env.app_id)
    linked = await bindings.link_by_unionid(identity.id, unionid)
    if linked:
        await principal_cache.invalidate(env.redis, env.ns, *linked)
        refreshed = await find_caller(env.app_id, caller.openid)
        caller.identity, caller.owner = refreshed.identity, refreshed.owner


async def bind_code(code: str, caller: Caller, env: Env) -> str:
    """Bind the sender with an invitation code (typed after 绑定, or carried by a QR code's scene)."""
    attempts = env.ns.key("bot", "bind-attempts", env.app_id, caller.openid)
    tried = await env.redis.incr(attempts)
    if tried == 1:
        await env.redis.expire(attempts, 3600)
    if tried > BIND_ATTEMPTS_PER_HOUR:
        raise Forbidden("too many invitation codes tried, wait an hour", code="too_many_attempts")
    identity = await ensure_identity(caller, env.app_id)
    owner, how = await bindings.bind_with_code(identity.id, code, now=env.now)
    identity.owner_id = owner.id
    # the binding changed what this user (and the same person in the mini-program) may see: no
    # process may keep serving the old view
    await principal_cache.invalidate(env.redis, env.ns, *await bindings.person_identity_ids(identity.id))
    plants = await Plant.filter(owner_id=owner.id).order_by("code").values_list("code", "name")
    link = await _mini_program_link(identity.id) if how != "link" else None
    return render("bound", owner=owner, plants=plants, link=link)


def live_state(body: bytes | None) -> dict | None:
    """A plant's live state as stored in Redis (:mod:`settlement.telemetry.live`), or None when there is
    none or it cannot be read."""
    try:
        state = json.loads(body) if body else None
    except ValueError:
        return None
    return state if isinstance(state, dict) else None


def power_w(state: dict | None) -> int | None:
    power = state.get("power_w") if state else None
    return power if isinstance(power, int) and not isinstance(power, bool) else None


async def gen(cmd: Command, caller: Caller, env: Env) -> str:
    _, rights = await _plants(caller)
    if cmd.args:
        plants = [await _named_plant(cmd.args[0], rights)]
    else:
        plants = await Plant.filter(id__in=list(rights)).order_by("code").limit(MAX_LISTED)

    async def today() -> tuple[list[dict | None], list[int | None]]:
        states = [live_state(b) for b in await env.redis.mget([live.channel(env.ns, p.id) for p in plants])]
        known = [generation.live_today_wh(state, env.now) for state in states]
        # without a live state of today, from stored telemetry (the plants' queries side by side)
        stored = await asyncio.gather(*(generation.today_wh(p.id, env.now) for p, wh in zip(plants, known)
                                        if wh is None))
        filled = iter(stored)
        return states, [wh if wh is not None else next(filled) for wh in known]

    # independent reads at once: a reply waits for the longest, not for their sum
    async with asyncio.TaskGroup() as group:
        today_task = group.create_task(today())
        lifetime_task = group.create_task(generation.lifetime_wh([p.id for p in plants]))
    (states, today_wh), lifetime = today_task.result(), lifetime_task.result()
    rows = [{"plant": plant, "status": generation.status_of(state, env.now), "power_w": power_w(state),
             "today_wh": wh, "lifetime_wh": lifetime.get(plant.id)}
            for plant, state, wh in zip(plants, states, today_wh)]
    return render("gen", rows=rows, more=max(len(rights) - len(plants), 0))


async def _open_bills(plant_ids: list[int]) -> tuple[list[dict], int, int]:
    """The open bills of the plants, oldest due first (at most MAX_LISTED), their count and what
    is owed on all of them [fen] — in one query (an owner has few open bills)."""
    rows = await Bill.filter(plant_id__in=plant_ids, state__in=list(OPEN)).order_by("due_on", "id").values(
        "id", "number", "due_on", "state", "total_fen", "paid_fen", "credit_applied_fen", plant_code="plant__code",
        period="cycle__period")
    for row in rows:
        row["owed_fen"] = int(row["total_fen"]) - int(row["paid_fen"]) - int(row["credit_applied_fen"])
    return rows[:MAX_LISTED], len(rows), sum(row["owed_fen"] for row in rows)


async def bills(cmd: Command, caller: Caller, env: Env) -> str:
    _, rights = await _plants(caller)
    listed, count, owed = await _open_bills(list(rights))
    latest = None
    if not listed:
        latest = await Bill.filter(plant_id__in=list(rights)).exclude(state=BillState.SUPERSEDED) \
            .order_by("-issued_at", "-id").first().values(
                "id", "number", "state", "total_fen", plant_code="plant__code", period="cycle__period")
    shown = listed or ([latest] if latest else [])
    links = {b["id"]: env.public_url + ebill_link("bill", b["id"], None, env.settings.secret_key) for b in shown}
    # the same signed link as a PDF file, for owners who forward the bill or file it
    pdf_links = {ident: link.replace("?", ".pdf?", 1) for ident, link in links.items()}
    today = env.now.astimezone(LOCAL).date()
    return render("bills", bills=listed, count=count, owed_fen=owed, latest=latest, links=links,
                  pdf_links=pdf_links, today=today)


async def pay(cmd: Command, caller: Caller, env: Env) -> str:
    _, rights = await _plants(caller)
    payable = [pid for pid, right in rights.items() if right >= Right.PAY]
    if not payable:
        raise Forbidden("you may view these plants but not pay their bills", code="right_required")
    listed, count, owed = await _open_bills(payable)
    pages = {b["id"]: BILL_PAGE.format(id=b["id"]) for b in listed}
    return render("pay", bills=listed, count=count, owed_fen=owed, pages=pages, list_page=BILL_LIST_PAGE,
                  mp_appid=env.settings.mp_appid)


async def repair(cmd: Command, caller: Caller, env: Env) -> str:
    principal, rights = await _plants(caller, Right.OWNER)
    if not rights:
        raise Forbidden("only the owner of a plant may report its faults", code="right_required")
    text = cmd.text
    first = cmd.args[0]
    named = await Plant.filter(id__in=list(rights), code__iexact=first).first()
    if named is not None:
        plant = named
        parts = text.split(None, 1)
        text = parts[1].strip() if len(parts) > 1 else ""
    elif len(rights) == 1:
        plant = await Plant.get(id=next(iter(rights)))
    else:
        codes = await Plant.filter(id__in=list(rights)).order_by("code").values_list("code", flat=True)
        raise Malformed(commands.BY_NAME["repair"], "您有多座电站，请写明电站编号：" + "、".join(codes))
    if not text:
        raise Malformed(commands.BY_NAME["repair"], "请描述故障")
    # no photos come through the bot, so the store is never written; it is the mini-program's
    store = LocalDiskStore(Path(env.settings.var_dir) / "uploads")
    report = await faults.report_fault(principal, plant.id, text, [], store, apps=env.notify)
    return render("repair", report=report, plant=plant)


async def help_text(cmd: Command | None, caller: Caller, env: Env) -> str:
    return render("help", specs=commands.SPECS, role=caller.role, may=commands.may, owner=caller.owner)


HANDLERS = {"bind": bind, "gen": gen, "bills": bills, "pay": pay, "repair": repair, "help": help_text}

