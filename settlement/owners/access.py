"""Who may see and do what on a plant, for a WeChat user of the mini-program.

Rights, from least to most::

    view   read the plant, its forms, bills, history and live state (family)
    pay    view, and pay its bills (finance staff) — paying comes with WeChat Pay
    owner  everything: confirm or dispute forms, report faults, share and revoke rights

The owner's right comes from the user's identity being bound to the plant's owner; view and pay
from a PlantAccess row that is not revoked. A plant the user has no right on does not exist for
them: it is answered as not found, never as forbidden, so ids of other owners' plants leak nothing.
A plant they may see but not act on is answered as forbidden.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum

from tortoise import connections

from settlement.errors import Forbidden, NotFound
from settlement.models import Plant, PlantAccess, PlantRight


class Right(IntEnum):
    VIEW = 1
    PAY = 2
    OWNER = 3

    @property
    def label(self) -> str:
        return self.name.lower()


_OF_GRANT = {PlantRight.VIEW: Right.VIEW, PlantRight.PAY: Right.PAY}


@dataclass(frozen=True)
class Principal:
    """The logged-in mini-program user: their WechatIdentity id and the owner it is bound to.

    ``plants``, when loaded with the user (:func:`load_principal`), holds every plant they may
    see with their right on it, as of this request; otherwise it is looked up when needed.
    """

    identity_id: int
    openid: str
    owner_id: int | None
    plants: Mapping[int, Right] | None = field(default=None, compare=False)


def sql_for(text: str, dialect: str) -> str:
    """``{}`` placeholders as the connection's driver writes them ($1, $2 … for asyncpg, ? for SQLite)."""
    if dialect != "postgres":
        return text.replace("{}", "?")
    parts = text.split("{}")
    return parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], 1))


_PRINCIPAL_SQL = (
    "SELECT i.openid, i.owner_id, p.id AS plant_id, 'owner' AS grant_right FROM wechat_identity i "
    "LEFT JOIN plant p ON p.owner_id = i.owner_id WHERE i.id = {} "
    "UNION ALL "
    "SELECT NULL, NULL, a.plant_id, a.\"right\" FROM plant_access a WHERE a.identity_id = {} AND a.revoked_at IS NULL")


async def load_principal(identity_id: int) -> Principal | None:
    """The user and every plant they may see, in one query; None when the identity is gone.

    This runs on every authenticated request, so it is one round trip of plain SQL.
    """
    conn = connections.get("default")
    rows = await conn.execute_query_dict(sql_for(_PRINCIPAL_SQL, conn.capabilities.dialect), [identity_id, identity_id])
    first = next((r for r in rows if r["grant_right"] == "owner"), None)
    if first is None:
        return None
    plants: dict[int, Right] = {}
    for row in rows:
        if row["plant_id"] is None:
            continue
        right = Right.OWNER if row["grant_right"] == "owner" else _OF_GRANT[PlantRight(row["grant_right"])]
        plants[row["plant_id"]] = max(right, plants.get(row["plant_id"], right))
    return Principal(identity_id=identity_id, openid=first["openid"], owner_id=first["owner_id"], plants=plants)


async def visible_plants(principal: Principal) -> dict[int, Right]:
    """Every plant the user may see, with their right on it (the strongest that applies)."""
    if principal.plants is not None:
        return dict(principal.plants)
    rights: dict[int, Right] = {}
    for plant_id, right in await PlantAccess.filter(identity_id=principal.identity_id, revoked_at__isnull=True) \
            .values_list("plant_id", "right"):
        rights[plant_id] = _OF_GRANT[PlantRight(right)]
    if principal.owner_id is not None:
        for plant_id in await Plant.filter(owner_id=principal.owner_id).values_list("id", flat=True):
            rights[plant_id] = Right.OWNER
    return rights


async def right_on(principal: Principal, plant_id: int) -> Right | None:
    """The user's right on one plant, or None when they have none."""
    if principal.plants is not None:
        return principal.plants.get(plant_id)
    owner_id = await Plant.filter(id=plant_id).values_list("owner_id", flat=True)
    if not owner_id:
        return None
    if principal.owner_id is not None and owner_id[0] == principal.owner_id:
        return Right.OWNER
    grant = await PlantAccess.filter(plant_id=plant_id, identity_id=principal.identity_id,
                                     revoked_at__isnull=True).values_list("right", flat=True)
    return _OF_GRANT[PlantRight(grant[0])] if grant else None


async def require(principal: Principal, plant_id: int, need: Right, *, what: str = "plant") -> Right:
    """The user's right on the plant, which must be at least ``need``.

    Raises
    ------
    NotFound
        The user has no right at all on the plant (or it does not exist): ``not_found``.
    Forbidden
        The user may see the plant but not do this: ``right_required``.
    """
    right = await right_on(principal, plant_id)
    if right is None:
        raise NotFound(f"no such {what}", code="not_found")
    if right < need:
        raise Forbidden(f"this needs the {need.label} right on the plant; you have {right.label}",
                        code="right_required")
    return right
