"""The owners' busiest list as one plain SQL query: a page of bills of the plants they may see.

The mini-program opens the bill list more than anything else; a query through the ORM's query
builder costs several times its round trip in Python, so this one is written out (portable SQL,
placeholders per driver).
"""

from __future__ import annotations

from tortoise import connections

from settlement.owners.access import sql_for

BILL_COLUMNS = ("b.id, b.number, b.plant_id, p.code AS plant_code, c.period, b.version, b.state, b.issued_at, "
                "b.due_on, b.total_fen, b.tax_fen, b.paid_fen, b.credit_applied_fen")


async def bill_page(plant_ids: list[int], *, state: str | None, before_id: int | None, limit: int) -> list[dict]:
    """Up to ``limit`` bills of ``plant_ids``, newest (highest id) first, below ``before_id`` if given.

    Returns dicts with the columns of :data:`BILL_COLUMNS`; datetimes as the driver gives them.
    """
    if not plant_ids:
        return []
    where = [f"b.plant_id IN ({', '.join('{}' for _ in plant_ids)})"]
    values: list[object] = list(plant_ids)
    if state is not None:
        where.append("b.state = {}")
        values.append(state)
    if before_id is not None:
        where.append("b.id < {}")
        values.append(before_id)
    values.append(limit)
    conn = connections.get("default")
    text = (f"SELECT {BILL_COLUMNS} FROM bill b JOIN plant p ON p.id = b.plant_id "
            f"JOIN reading_cycle c ON c.id = b.cycle_id WHERE {' AND '.join(where)} ORDER BY b.id DESC LIMIT {{}}")
    return await conn.execute_query_dict(sql_for(text, conn.capabilities.dialect), values)
