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

from dataclasses import dataclass
from enum import IntEnum

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
    """The logged-in mini-program user: their WechatIdentity id and the owner it is bound to."""

    identity_id: int
    openid: str
    owner_id: int | None


async def visible_plants(principal: Principal) -> dict[int, Right]:
    """Every plant the user may see, with their right on it (the strongest that applies)."""
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
