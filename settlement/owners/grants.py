"""An owner lets another WeChat user view or pay for one plant (family, finance staff), and revokes it.

How the owner names the grantee: they don't have to know anything about them. The owner makes a
**share code** for one plant and one right (:func:`create_share`: 10 characters, valid 24 hours
by default, at most 7 days) and passes it on by any channel (a chat message, a mini-program share
card). The first logged-in user who redeems it (:func:`redeem_share`) gets the right; the code is
then used up. Only the code's SHA-256 is stored. The owner sees every grant on the plant, with
the grantee's WeChat nickname when known and an openid tail, and revokes any of them
(:func:`revoke_grant`), after which the grantee no longer sees the plant at all.

A revoked grantee can be given a right again by a new share code (the same PlantAccess row is
renewed: there is one per plant and user). Every change writes an audit event.
"""

from __future__ import annotations

import datetime as dt

from tortoise.transactions import in_transaction

from settlement import audit
from settlement.owners.access import Principal, Right, require
from settlement.owners.bindings import code_hash, new_code, normalize_code
from settlement.errors import Conflict, InvalidInput, NotFound
from settlement.models import Plant, PlantAccess, PlantRight, PlantShare
from settlement.clock import UTC, utc_now

DEFAULT_SHARE_TTL = dt.timedelta(hours=24)
MAX_SHARE_TTL = dt.timedelta(days=7)


async def create_share(principal: Principal, plant_id: int, right: PlantRight,
                       ttl: dt.timedelta = DEFAULT_SHARE_TTL, *,
                       now: dt.datetime | None = None) -> tuple[str, PlantShare]:
    """A one-time share code giving ``right`` on the plant; only the plant's owner may make one."""
    await require(principal, plant_id, Right.OWNER)
    if not dt.timedelta(minutes=5) <= ttl <= MAX_SHARE_TTL:
        raise InvalidInput("a share code lives from 5 minutes to 7 days", code="bad_ttl")
    now = (now or utc_now()).astimezone(UTC)
    code = new_code()
    async with in_transaction() as conn:
        share = await PlantShare.create(code_sha256=code_hash(code), plant_id=plant_id, right=right,
                                        created_by_id=principal.identity_id, expires_at=now + ttl, using_db=conn)
        await audit.record(audit.actor_of(openid=principal.openid), "ShareRight", "plant", plant_id,
                           after={"share": share.id, "right": right, "expires_at": share.expires_at},
                           using_db=conn)
    return code, share


async def redeem_share(principal: Principal, code: str, *, now: dt.datetime | None = None) -> PlantAccess:
    """The logged-in user takes the right a share code gives. Unknown, used and expired codes get
    the same answer."""
    now = (now or utc_now()).astimezone(UTC)  # SQLite compares stored UTC text
    code = normalize_code(code)
    refused = InvalidInput("this share code is unknown, used or expired", code="invalid_share_code")
    if not code or len(code) > 32:
        raise refused
    async with in_transaction() as conn:
        share = await PlantShare.filter(code_sha256=code_hash(code)).using_db(conn).select_for_update().first()
        if share is None or share.redeemed_at is not None or share.expires_at <= now:
            raise refused
        owner_id = await Plant.filter(id=share.plant_id).using_db(conn).values_list("owner_id", flat=True)
        if principal.owner_id is not None and owner_id and owner_id[0] == principal.owner_id:
            raise Conflict("you own this plant already", code="own_plant")
        taken = await PlantShare.filter(id=share.id, redeemed_at__isnull=True).using_db(conn) \
            .update(redeemed_at=now, redeemed_by_id=principal.identity_id)
        if taken != 1:
            raise refused
        grant = await PlantAccess.filter(plant_id=share.plant_id, identity_id=principal.identity_id) \
            .using_db(conn).select_for_update().first()
        before = None
        if grant is None:
            grant = await PlantAccess.create(plant_id=share.plant_id, identity_id=principal.identity_id,
                                             right=share.right, using_db=conn)
        else:
            before = {"right": grant.right, "revoked_at": grant.revoked_at}
            grant.right, grant.revoked_at, grant.granted_at = share.right, None, now
            await grant.save(using_db=conn, update_fields=["right", "revoked_at", "granted_at"])
        await audit.record(audit.actor_of(openid=principal.openid), "GrantRight", "plant_access", grant.id,
                           before=before, after={"plant": share.plant_id, "right": share.right,
                                                 "share": share.id}, using_db=conn)
    return grant


async def grants_of(principal: Principal, plant_id: int) -> list[PlantAccess]:
    """Every grant on the plant, revoked ones too (owner only), newest first."""
    await require(principal, plant_id, Right.OWNER)
    return await PlantAccess.filter(plant_id=plant_id).prefetch_related("identity").order_by("-id")


async def revoke_grant(principal: Principal, plant_id: int, grant_id: int, *,
                       now: dt.datetime | None = None) -> PlantAccess:
    """The owner takes a right back; revoking twice is harmless."""
    await require(principal, plant_id, Right.OWNER)
    now = (now or utc_now()).astimezone(UTC)
    async with in_transaction() as conn:
        grant = await PlantAccess.filter(id=grant_id, plant_id=plant_id).using_db(conn).select_for_update().first()
        if grant is None:
            raise NotFound("no such grant", code="not_found")
        if grant.revoked_at is None:
            grant.revoked_at = now
            await grant.save(using_db=conn, update_fields=["revoked_at"])
            await audit.record(audit.actor_of(openid=principal.openid), "RevokeRight", "plant_access", grant.id,
                               before={"right": grant.right}, after={"revoked_at": now}, using_db=conn)
    return grant
