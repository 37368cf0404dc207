"""Cursor pagination: newest first, keyed on the id, the cursor opaque to clients.

A cursor is ``base64url("<last id>.<hmac tail>")``: clients must not build or edit one (a tampered
cursor is refused as ``invalid_cursor``), and servers can change the key later without breaking
them. The tail is the first 16 hex digits of :data:`settlement.signing.CURSOR`'s HMAC of the id.
A page asks for one row more than it shows to know whether another page follows.
"""

from __future__ import annotations

import base64
import binascii

from settlement.errors import InvalidInput
from settlement.signing import CURSOR, whole_number


def encode_cursor(last_id: int, secret_key: str) -> str:
    return base64.urlsafe_b64encode(f"{last_id}.{CURSOR.sign(secret_key, last_id)}".encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str | None, secret_key: str) -> int | None:
    """The id the previous page ended at, or None for the first page."""
    if cursor is None or cursor == "":
        return None
    refused = InvalidInput("this cursor is not one of ours: start from the first page", code="invalid_cursor")
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise refused from None
    last, _, tag = text.partition(".")
    last_id = whole_number(last)
    if last_id is None or not CURSOR.matches(tag, secret_key, last_id):
        raise refused
    return last_id


async def page(queryset, limit: int, cursor: str | None, secret_key: str):
    """One page of ``queryset`` (newest first): its rows and the next cursor (None on the last)."""
    after = decode_cursor(cursor, secret_key)
    if after is not None:
        queryset = queryset.filter(id__lt=after)
    rows = await queryset.order_by("-id").limit(limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1].id, secret_key) if more else None
