"""Every unique constraint of the schema refuses a duplicate (DESIGN.md "Rules": natural keys).

The constraints are read from the models, so a new one is covered without editing this test; the
positive control proves each refusal comes from that constraint and not from something else.
"""

from __future__ import annotations

import datetime as dt
import enum

import pytest
from tortoise import Tortoise
from tortoise.exceptions import IntegrityError
from tortoise.fields.relational import ForeignKeyFieldInstance

from tests.integration.portfolio import one_of_everything


def unique_constraints() -> list[tuple[str, tuple[str, ...]]]:
    import settlement.models as m

    found = []
    for name in m.__all__:
        model = getattr(m, name)
        if not (isinstance(model, type) and hasattr(model, "_meta") and hasattr(model._meta, "fields_map")):
            continue
        for field_name, field in model._meta.fields_map.items():
            if field.unique and not field.pk and not isinstance(field, ForeignKeyFieldInstance) \
                    and field_name not in model._meta.fk_fields:
                if not field_name.endswith("_id") or field_name.removesuffix("_id") not in model._meta.fk_fields:
                    found.append((name, (field_name,)))
        for together in model._meta.unique_together:
            found.append((name, tuple(together)))
    return sorted(found)


CONSTRAINTS = unique_constraints()


def test_the_natural_keys_of_design_md_are_all_there():
    expected = {
        ("ReadingCycle", ("plant", "period")), ("ConfirmationForm", ("cycle", "version")),
        ("Payment", ("transaction_id",)), ("TelemetrySample", ("device", "ts")),
        ("Reading", ("meter", "register", "read_at", "revision")), ("OutboxMessage", ("dedupe_key",)),
        ("Bill", ("cycle", "version")), ("BillLine", ("bill", "kind", "accrual_key")),
        ("WechatIdentity", ("app_id", "openid")), ("Refund", ("out_refund_no",)),
    }
    assert expected <= set(CONSTRAINTS)


def _changed(value: object) -> object:
    """Another value of the same type, to step out of a unique constraint."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, enum.Enum):
        return next(member for member in type(value) if member != value)
    if isinstance(value, str):  # same length: columns like period are short
        return value[:-1] + ("X" if value[-1:] != "X" else "Y")
    if isinstance(value, int):
        return value + 1000
    if isinstance(value, (dt.date, dt.datetime)):
        return value + dt.timedelta(days=1)
    raise TypeError(f"cannot vary {value!r}")


def _db_field(model, name: str) -> str:
    return f"{name}_id" if name in model._meta.fk_fields else name


async def _copy_values(instance) -> dict[str, object]:
    model = type(instance)
    values = {}
    for name, field in model._meta.fields_map.items():
        if field.pk or name in model._meta.fk_fields or name in model._meta.backward_fk_fields \
                or name in model._meta.backward_o2o_fields or name in model._meta.m2m_fields:
            continue
        if getattr(field, "auto_now_add", False) or getattr(field, "auto_now", False):
            continue
        values[name] = getattr(instance, name)
    return values


@pytest.mark.parametrize("model_name,fields", CONSTRAINTS, ids=[f"{m}{list(f)}" for m, f in CONSTRAINTS])
async def test_duplicate_is_refused(db, model_name, fields):
    graph = await one_of_everything()
    original = graph[model_name]
    model = type(original)
    # a copy that collides on this constraint only: every other unique constraint is stepped out of
    values = await _copy_values(original)
    for other_model, other in CONSTRAINTS:
        if other_model != model_name or other == fields:
            continue
        free = [f for f in other if f not in fields and f not in model._meta.fk_fields]
        assert free, f"{model_name}{other} cannot be varied apart from {fields}"
        values[free[0]] = _changed(values[free[0]])
    before = await model.all().count()
    with pytest.raises(IntegrityError):
        await model.create(**values)
    assert await model.all().count() == before
    # positive control: the same row with this constraint's own key changed is accepted
    free = [f for f in fields if f not in model._meta.fk_fields]
    if free:
        values[free[0]] = _changed(values[free[0]])
        await model.create(**values)
        assert await model.all().count() == before + 1
