"""Audit events: every change to readings, forms, bills and payments says who, when, before,
after and why. Call :func:`record` inside the transaction of the change it describes."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import Enum
from typing import Any

from settlement.context import request_id_var
from settlement.models import AuditEvent, Staff

SYSTEM = "system"


def actor_of(staff: Staff | None = None, *, owner_id: int | None = None, openid: str | None = None) -> str:
    """The actor string stored on events: ``staff:<id>``, ``owner:<id>``, ``wechat:<openid>`` or system."""
    if staff is not None:
        return f"staff:{staff.id}"
    if owner_id is not None:
        return f"owner:{owner_id}"
    if openid is not None:
        return f"wechat:{openid}"
    return SYSTEM


def plain(value: Any) -> Any:
    """JSON-safe copy: decimals as strings (never floats), dates as ISO text."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


async def record(actor: str, action: str, entity: str, entity_id: object, *, before: Any = None,
                 after: Any = None, reason: str | None = None, using_db=None) -> AuditEvent:
    """Write one audit event (in the caller's transaction when ``using_db`` is given)."""
    return await AuditEvent.create(
        actor=actor, action=action, entity=entity, entity_id=str(entity_id), before=plain(before),
        after=plain(after), reason=reason, request_id=request_id_var.get(), using_db=using_db)
