"""Readings in: the service (settlement.readings.ingest) and POST /ingest/v1/readings.

Every per-row refusal of the issue is checked by its code, that the message names the row and
the field, and that nothing was written for it; hostile bodies are sent on purpose.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from decimal import Decimal

import pytest
from tortoise import connections

from settlement import models as m
from settlement.readings import ingest as service
from settlement.errors import Forbidden, InvalidInput
from settlement.readings.ingest import RowStatus, ingest_readings, list_conflicts
from settlement.seeding import FORWARD, REVERSE
from settlement.clock import LOCAL, UTC

NOW = dt.datetime(2026, 10, 10, 12, 0, tzinfo=LOCAL)
TOTAL = FORWARD[0]  # 00010000, forward active total
EXPORT = REVERSE[0]  # 00020000, reverse active total
T1, T2, T3 = "2026-08-01T00:00:00+08:00", "2026-09-01T00:00:00+08:00", "2026-10-01T00:00:00+08:00"
KEY = "test-collector-key-0123456789abcdefghijklmnopq"


async def make_meters() -> dict[str, m.Meter]:
    """One plant: a grid meter M1 (forward and reverse), a generation meter M2 removed at the end
    of September, and a meter OLD replaced by NEW on 2026-09-15."""
    owner = await m.Owner.create(name="王氏纺织有限公司")
    plant = await m.Plant.create(code="PV00001", name="厂房屋顶", owner=owner, capacity_kwp=Decimal("500.000"))

    async def meter(serial: str, registers: list[str], installed: dt.date, removed: dt.date | None = None):
        return await m.Meter.create(plant=plant, serial=serial, kind=m.MeterKind.GRID, multiplier=80,
                                    register_digits=6, registers=registers, installed_on=installed,
                                    removed_on=removed)

    return {
        "M1": await meter("M1", FORWARD + REVERSE, dt.date(2025, 1, 1)),
        "M2": await meter("M2", FORWARD, dt.date(2026, 6, 1), dt.date(2026, 9, 30)),
        "OLD": await meter("OLD", [TOTAL], dt.date(2025, 1, 1), dt.date(2026, 9, 15)),
        "NEW": await meter("NEW", [TOTAL], dt.date(2026, 9, 15)),
    }


def row(meter: str = "M1", register: str = TOTAL, read_at: object = T1, value: object = "1000.00", **extra) -> dict:
    return {"meter": meter, "register": register, "read_at": read_at, "value": value, **extra}


async def ingest(rows, **kwargs):
    kwargs.setdefault("source", m.ReadingSource.AMI)
    kwargs.setdefault("received_from", "collector:test")
    kwargs.setdefault("now", NOW)
    return await ingest_readings(rows, **kwargs)


async def stored(serial: str = "M1", register: str = TOTAL) -> list[tuple[dt.datetime, Decimal, int]]:
    return await (m.Reading.filter(meter__serial=serial, register=register).order_by("read_at", "revision")
                  .values_list("read_at", "value", "revision"))


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(UTC)


@pytest.fixture
async def meters(db):
    return await make_meters()


# --- the service: good rows ---------------------------------------------------------------------


async def test_good_rows_are_stored_exactly_once_with_decimal_values_and_local_time(meters):
    result = await ingest([
        row(read_at=T1, value="1000.10"),
        row(read_at="2026-09-01 00:00", value=Decimal("1200.2")),  # naive: Asia/Shanghai
        row(read_at=dt.datetime(2026, 10, 1), value=1300),  # naive datetime, int value
        row(register=EXPORT, read_at=dt.datetime(2026, 7, 31, 16, tzinfo=UTC), value=12.5),  # aware, float
    ])
    assert result.counts() == {"created": 4, "duplicates": 0, "rejected": 0, "flagged": 0}
    assert [r.as_dict() for r in result.results] == [{"index": i, "status": "created"} for i in range(4)]
    assert await stored() == [(at(T1), Decimal("1000.1000"), 0), (at(T2), Decimal("1200.2000"), 0),
                              (at(T3), Decimal("1300.0000"), 0)]
    assert await stored(register=EXPORT) == [(at(T1), Decimal("12.5000"), 0)]
    reading = await m.Reading.get(register=EXPORT)
    assert reading.source == m.ReadingSource.AMI and reading.entered_by_id is None
    event = await m.AuditEvent.get(action="IngestReadings")
    assert event.actor == "collector:test" and event.entity == "reading_batch"
    assert event.after == {"created": 4, "duplicates": 0, "rejected": 0, "flagged": 0, "conflicts_recorded": 0,
                           "source": "ami", "rows": 4, "from": at(T1).isoformat(), "to": at(T3).isoformat()}


async def test_reposting_the_same_batch_is_all_duplicates_and_writes_nothing(meters):
    batch = [row(read_at=T1, value="1000"), row(read_at=T2, value="1100.5"), row(register=EXPORT, value="7")]
    first = await ingest(batch)
    assert first.counts() == {"created": 3, "duplicates": 0, "rejected": 0, "flagged": 0}
    again = await ingest([dict(r, value=str(Decimal(r["value"]) + Decimal("0.000"))) for r in batch])
    assert again.counts() == {"created": 0, "duplicates": 3, "rejected": 0, "flagged": 0}
    assert {r.status for r in again.results} == {RowStatus.DUPLICATE}
    assert await m.Reading.all().count() == 3
    assert await m.AuditEvent.all().count() == 1  # the batch that changed nothing left no trace
    assert await m.ReadingConflict.all().count() == 0


async def test_a_batch_mixing_good_and_bad_rows_keeps_the_good_ones(meters):
    await ingest([row(read_at=T1, value="1000")])
    result = await ingest([
        row(read_at=T2, value="1100"),  # created
        row(meter="NOPE"),  # unknown meter
        row(read_at=T1, value="1000.0000"),  # duplicate
        row(read_at=T3, value="1050"),  # below the row before it in this batch
        row(register=EXPORT, read_at=T2, value="5"),  # created
        row(value="abc"),  # malformed
        row(read_at=T1, value="999"),  # conflicts with the stored reading
    ])
    assert result.counts() == {"created": 2, "duplicates": 1, "rejected": 4, "flagged": 0}
    assert [(r.status.value, r.error.code if r.error else None) for r in result.results] == [
        ("created", None), ("rejected", "unknown_meter"), ("duplicate", None), ("rejected", "reading_decreased"),
        ("created", None), ("rejected", "invalid_field"), ("rejected", "conflicting_reading")]
    assert await m.Reading.all().count() == 3
    assert await m.ReadingConflict.all().count() == 2  # the two contradictions, not the malformed rows
    event = await m.AuditEvent.filter(action="IngestReadings").order_by("-id").first()
    assert event.after["created"] == 2 and event.after["rejected"] == 4 and event.after["conflicts_recorded"] == 2


async def test_rows_of_one_batch_are_checked_against_each_other_in_time_order(meters):
    shuffled = await ingest([row(read_at=T3, value="1300"), row(read_at=T1, value="1000"),
                             row(read_at=T2, value="1200")])
    assert shuffled.counts() == {"created": 3, "duplicates": 0, "rejected": 0, "flagged": 0}
    twice = await ingest([row(read_at="2026-10-02T00:00+08:00", value="1400"),
                          row(read_at="2026-10-02T00:00+08:00", value="1400.00"),
                          row(read_at="2026-10-02T00:00+08:00", value="1401")])
    assert [r.status for r in twice.results] == [RowStatus.CREATED, RowStatus.DUPLICATE, RowStatus.REJECTED]
    assert twice.results[2].error.code == "conflicting_reading"
    assert "an earlier row of this batch has 1400" in twice.results[2].error.message


# --- the service: every per-row refusal ---------------------------------------------------------

MALFORMED = [
    pytest.param({"register": TOTAL, "read_at": T1, "value": "1"}, "missing_field", "field 'meter' is missing",
                 id="no meter"),
    pytest.param(row(register=None), "missing_field", "field 'register' is missing", id="null register"),
    pytest.param(row(read_at="  "), "missing_field", "field 'read_at' is missing", id="blank read_at"),
    pytest.param({"meter": "M1", "register": TOTAL, "read_at": T1}, "missing_field", "field 'value' is missing",
                 id="no value"),
    pytest.param(row(meter=123), "invalid_field", "field 'meter' must be a string", id="meter a number"),
    pytest.param(row(meter="M" * 41), "invalid_field", "field 'meter'", id="meter too long"),
    pytest.param(row(register="000100"), "invalid_field", "field 'register'", id="register of 6 digits"),
    pytest.param(row(register=10000), "invalid_field", "field 'register' must be a string", id="register int"),
    pytest.param(row(read_at="2026-13-45"), "invalid_field", "field 'read_at' '2026-13-45' is not an ISO 8601",
                 id="month 13"),
    pytest.param(row(read_at="yesterday"), "invalid_field", "field 'read_at'", id="read_at words"),
    pytest.param(row(read_at=1767225600), "invalid_field", "field 'read_at' must be ISO 8601", id="epoch"),
    pytest.param(row(read_at="0001-01-01T00:00:00"), "invalid_field", "out of range", id="year 1 local"),
    pytest.param(row(value="12,5"), "invalid_field", "field 'value' '12,5' is not a decimal", id="comma"),
    pytest.param(row(value="NaN"), "invalid_field", "field 'value'", id="NaN text"),
    pytest.param(row(value="Infinity"), "invalid_field", "field 'value'", id="Infinity text"),
    pytest.param(row(value=float("nan")), "invalid_field", "not a finite number", id="float nan"),
    pytest.param(row(value=float("inf")), "invalid_field", "not a finite number", id="float inf"),
    pytest.param(row(value=Decimal("NaN")), "invalid_field", "not a finite number", id="Decimal NaN"),
    pytest.param(row(value=True), "invalid_field", "field 'value' must be a number", id="bool"),
    pytest.param(row(value=[1]), "invalid_field", "field 'value' must be a number", id="list"),
    pytest.param(row(value="-5"), "value_out_of_range", "field 'value' -5 is negative", id="negative"),
    pytest.param(row(value="1000000"), "value_out_of_range", "does not fit the 6-digit dial", id="dial"),
    pytest.param(row(value="1e400"), "value_out_of_range", "does not fit", id="1e400 text"),
    pytest.param(row(value=Decimal("1E+400")), "value_out_of_range", "does not fit", id="1e400 number"),
    pytest.param(row(value="12.12345"), "too_many_decimals", "more than 4 decimals", id="5 decimals"),
    pytest.param(row(value="123.4567891234"), "too_many_decimals", "field 'value' 123.4567891234", id="10 decimals"),
    pytest.param(row(meter="C012; DROP TABLE reading"), "unknown_meter", "'C012; DROP TABLE reading'",
                 id="sql in serial"),
    pytest.param(row(meter="M2", register=EXPORT, read_at="2026-07-01T00:00+08:00"), "unknown_register",
                 "meter M2 does not report register 00020000", id="register not reported"),
    pytest.param("M1,00010000,2026-08-01,1000", "invalid_row", "must be an object", id="not an object"),
]


@pytest.mark.parametrize(("bad", "code", "says"), MALFORMED)
async def test_a_malformed_row_is_refused_by_name_and_field_and_changes_nothing(meters, bad, code, says):
    result = await ingest([row(read_at=T1, value="1000"), bad])
    assert result.results[0].status == RowStatus.CREATED
    refused = result.results[1]
    assert refused.status == RowStatus.REJECTED and refused.error.code == code
    assert refused.error.message.startswith("row 1: ")
    assert says in refused.error.message
    assert await m.Reading.all().count() == 1
    assert await m.ReadingConflict.all().count() == 0  # only contradictions are kept for staff


async def test_values_at_the_edges_of_the_dial_and_of_precision_are_taken(meters):
    result = await ingest([row(read_at=T1, value="0"), row(read_at=T2, value="999999.9999"),
                           row(register=EXPORT, value="12.3000000000")])  # trailing zeros lose nothing
    assert result.counts()["created"] == 3


async def test_a_reading_in_the_future_is_refused(meters):
    result = await ingest([row(read_at=NOW + dt.timedelta(minutes=4), value="1"),
                           row(register=EXPORT, read_at=(NOW + dt.timedelta(minutes=6)).isoformat(), value="1")])
    assert result.results[0].status == RowStatus.CREATED  # within the 5 minutes of clock skew allowed
    error = result.results[1].error
    assert error.code == "reading_in_future" and error.message.startswith("row 1: field 'read_at'")
    assert await m.Reading.filter(register=EXPORT).count() == 0


async def test_a_reading_outside_the_meters_service_is_refused(meters):
    result = await ingest([
        row(meter="M2", read_at="2026-05-31T23:59:59+08:00", value="1"),  # before installed_on (local day)
        row(meter="M2", read_at="2026-06-01T00:00:00+08:00", value="2"),  # the day it was installed
        row(meter="M2", read_at="2026-09-30T23:00:00+08:00", value="3"),  # the day it was removed
        row(meter="M2", read_at="2026-10-01T00:00:00+08:00", value="4"),  # after removed_on
    ])
    assert [r.error.code if r.error else r.status.value for r in result.results] == [
        "meter_not_in_service", "created", "created", "meter_not_in_service"]
    assert "installed on 2026-06-01" in result.results[0].error.message
    assert "removed on 2026-09-30" in result.results[3].error.message


async def test_another_value_for_the_same_meter_and_time_is_a_conflict_kept_for_staff(meters):
    await ingest([row(read_at=T1, value="1000.00")])
    result = await ingest([row(read_at=T1, value="1000.01")], received_from="collector:second")
    error = result.results[0].error
    assert error.code == "conflicting_reading"
    assert error.message == ("row 0: field 'value' 1000.01 conflicts with meter M1 register 00010000 at "
                             "2026-08-01T00:00:00+08:00: the stored reading is 1000.0000")
    assert await stored() == [(at(T1), Decimal("1000.0000"), 0)]
    [conflict] = await list_conflicts()
    assert (conflict.meter_serial, conflict.register, conflict.read_at, conflict.value, conflict.stored_value,
            conflict.code, conflict.source, conflict.received_from) == (
        "M1", TOTAL, at(T1), "1000.01", "1000.0000", "conflicting_reading", "ami", "collector:second")
    assert conflict.message == error.message and conflict.resolved_at is None
    shown = service.conflict_as_dict(conflict)
    assert shown["read_at"] == "2026-08-01T00:00:00+08:00" and shown["meter"] == "M1"
    # the collector retries: the row is refused again, but staff see the conflict once
    again = await ingest([row(read_at=T1, value="1000.010")])
    assert again.results[0].error.code == "conflicting_reading"
    assert await m.ReadingConflict.all().count() == 1


async def test_a_decrease_that_no_rollover_explains_is_refused(meters):
    await ingest([row(read_at=T1, value="1000.00")])
    result = await ingest([row(read_at=T2, value="999.99")])
    error = result.results[0].error
    assert error.code == "reading_decreased"
    assert error.message == ("row 0: field 'value' 999.99 is below 1000.0000, the reading of meter M1 register "
                             "00010000 at 2026-08-01T00:00:00+08:00, and no rollover explains it")
    [conflict] = await list_conflicts()
    assert (conflict.code, conflict.value, conflict.stored_value) == ("reading_decreased", "999.99", "1000.0000")
    assert await m.Reading.all().count() == 1


@pytest.mark.parametrize(("before", "after", "taken"), [
    ("999950.00", "12.30", True),  # the example on a 6-digit dial: an advance of 62.30
    ("950000.00", "50000.00", True),  # an advance of exactly 10 % of the dial
    ("950000.00", "50000.01", False),  # just over 10 %: the engine would not believe it either
    ("900000.00", "99999.99", False),  # 19.99 % — was accepted before the rule matched the engine's
    ("999950.00", "100000.00", False),
    ("500000.00", "400000.00", False),
])
async def test_rollover_only_for_an_advance_of_at_most_a_tenth_of_the_dial(meters, before, after, taken):
    await ingest([row(read_at=T1, value=before)])
    result = await ingest([row(read_at=T2, value=after)])
    assert result.results[0].status == (RowStatus.CREATED if taken else RowStatus.REJECTED)
    if not taken:
        assert result.results[0].error.code == "reading_decreased"
    assert service.is_rollover(Decimal(before), Decimal(after), 6) is taken


async def test_a_backfill_between_two_stored_readings_must_lie_between_them(meters):
    await ingest([row(read_at=T1, value="1000"), row(read_at=T3, value="1200")])
    result = await ingest([
        row(read_at="2026-08-15T00:00+08:00", value="1100"),  # fits
        row(read_at="2026-09-01T00:00+08:00", value="1250"),  # above the later stored reading
        row(read_at="2026-07-15T00:00+08:00", value="1001"),  # before the first: above the one after it
        row(read_at="2026-08-20T00:00+08:00", value="1099"),  # below the backfill just accepted
    ])
    assert [r.error.code if r.error else r.status.value for r in result.results] == [
        "created", "reading_decreased", "reading_decreased", "reading_decreased"]
    assert "is above 1200.0000, the later reading" in result.results[1].error.message
    assert "is above 1000.0000, the later reading" in result.results[2].error.message
    assert "is below 1100, the reading" in result.results[3].error.message
    assert [v for _, v, _ in await stored()] == [Decimal("1000"), Decimal("1100"), Decimal("1200")]


async def test_the_neighbours_outside_the_batch_window_are_found(meters):
    # stored far before and far after; the batch sits in between, other meters in the batch widen nothing
    await ingest([row(read_at="2025-06-01T00:00+08:00", value="500"), row(read_at=T3, value="1500"),
                  row(meter="NEW", read_at="2026-09-20T00:00+08:00", value="10")])
    result = await ingest([row(read_at=T1, value="400"), row(read_at=T2, value="1600"),
                           row(meter="NEW", read_at="2026-09-25T00:00+08:00", value="11")])
    assert [r.error.code if r.error else r.status.value for r in result.results] == [
        "reading_decreased", "reading_decreased", "created"]


async def test_the_effective_value_is_the_highest_revision(meters):
    await ingest([row(read_at=T1, value="1000")])
    reading = await m.Reading.get(register=TOTAL)
    await m.Reading.create(meter=meters["M1"], register=TOTAL, read_at=reading.read_at,
                           value=Decimal("1100"), source=m.ReadingSource.ADJUSTED, revision=1, reason="misread")
    result = await ingest([
        row(read_at=T1, value="1100"),  # what staff corrected it to
        row(read_at=T1, value="1000"),  # the AMI re-sends what it sent first: already answered
        row(read_at=T2, value="1050"),  # above the original but below the corrected value
        row(read_at=T1, value="1234"),
    ])
    assert [r.error.code if r.error else r.status.value for r in result.results] == [
        "duplicate", "duplicate", "reading_decreased", "conflicting_reading"]
    assert "the stored reading is 1100.0000" in result.results[3].error.message


async def test_a_replaced_meter_starts_its_own_series(meters):
    result = await ingest([
        row(meter="OLD", read_at="2026-09-01T00:00+08:00", value="654000.00"),
        row(meter="OLD", read_at="2026-09-15T10:00+08:00", value="654321.00"),  # final reading
        row(meter="NEW", read_at="2026-09-15T10:00+08:00", value="0.50"),  # initial reading
        row(meter="NEW", read_at=T3, value="1500.00"),
    ])
    assert result.counts() == {"created": 4, "duplicates": 0, "rejected": 0, "flagged": 0}


async def test_names_given_for_rows_are_used_in_messages(meters):
    result = await ingest([row(meter="X")], row_names=["line 7"])
    assert result.results[0].error.message.startswith("line 7: field 'meter'")
    with pytest.raises(InvalidInput):
        await ingest([row()], row_names=[])


async def test_more_rows_than_a_batch_holds_are_refused_whole(meters):
    with pytest.raises(InvalidInput) as refused:
        await ingest([row()] * (service.MAX_BATCH_ROWS + 1))
    assert refused.value.code == "too_many_readings"
    assert await m.Reading.all().count() == 0


# --- staff, concurrency, efficiency -------------------------------------------------------------


async def test_manual_readings_by_staff_are_audited_one_by_one(meters):
    staff = await m.Staff.create(name="李四", role=m.StaffRole.OPERATOR)
    result = await ingest([row(read_at=T1, value="1000"), row(read_at=T2, value="1100"), row(meter="X")],
                          source=m.ReadingSource.MANUAL, received_from=f"staff:{staff.id}", staff=staff)
    assert result.counts() == {"created": 2, "duplicates": 0, "rejected": 1, "flagged": 0}
    readings = await m.Reading.all().order_by("read_at")
    assert {(r.source, r.entered_by_id) for r in readings} == {(m.ReadingSource.MANUAL, staff.id)}
    events = await m.AuditEvent.filter(action="RecordManualReading").order_by("id")
    assert [(e.actor, e.entity, e.entity_id) for e in events] == [
        (f"staff:{staff.id}", "reading", str(r.id)) for r in readings]
    assert events[1].after == {"meter": "M1", "register": TOTAL, "read_at": at(T2).isoformat(), "value": "1100.0000",
                               "source": "manual"}
    batch = await m.AuditEvent.get(action="IngestReadings")
    assert batch.actor == f"staff:{staff.id}"


@pytest.mark.parametrize("role, active", [(m.StaffRole.VIEWER, True), (m.StaffRole.ADMIN, False)])
async def test_a_viewer_or_inactive_staff_member_records_nothing(meters, role, active):
    staff = await m.Staff.create(name="王五", role=role, active=active)
    with pytest.raises(Forbidden):
        await ingest([row()], source=m.ReadingSource.MANUAL, received_from=f"staff:{staff.id}", staff=staff)
    assert await m.Reading.all().count() == 0


@pytest.mark.parametrize("their_value, status, code", [
    ("1000.00", RowStatus.DUPLICATE, None),
    ("999.00", RowStatus.REJECTED, "conflicting_reading"),
])
async def test_a_concurrent_insert_of_the_same_key_is_rechecked_not_a_server_error(
        meters, monkeypatch, their_value, status, code):
    original = service._load_stored
    calls = []

    async def load_then_someone_else_writes(candidates):
        loaded = await original(candidates)
        if not calls:  # another process wins the race between our check and our write
            await m.Reading.create(meter=meters["M1"], register=TOTAL, read_at=at(T1), value=Decimal(their_value),
                                   source=m.ReadingSource.AMI)
        calls.append(1)
        return loaded

    monkeypatch.setattr(service, "_load_stored", load_then_someone_else_writes)
    result = await ingest([row(read_at=T1, value="1000.00"), row(register=EXPORT, value="3")])
    assert len(calls) == 2  # judged twice: the unique key refused the first write
    assert result.results[0].status == status
    assert (result.results[0].error.code if result.results[0].error else None) == code
    assert result.results[1].status == RowStatus.CREATED
    assert await stored() == [(at(T1), Decimal(their_value), 0)]
    assert await m.Reading.filter(register=EXPORT).count() == 1
    assert await m.ReadingConflict.all().count() == (1 if code else 0)


async def test_queries_do_not_grow_with_the_batch(meters, monkeypatch):
    extra = [await m.Meter.create(plant_id=meters["M1"].plant_id, serial=f"X{i:03d}", kind=m.MeterKind.GRID,
                                  registers=FORWARD, installed_on=dt.date(2025, 1, 1)) for i in range(100)]
    await ingest([row(meter=meter.serial, read_at=T1, value="100") for meter in extra])
    client = connections.get("default")
    queries: list[str] = []
    real = type(client).execute_query

    async def counting(self, query, values=None):
        queries.append(query)
        return await real(self, query, values)

    monkeypatch.setattr(type(client), "execute_query", counting)

    async def count(rows) -> int:
        queries.clear()
        result = await ingest(rows)
        assert result.rejected == 0
        return len(queries)

    small = await count([row(meter="X000", read_at=T2, value="200")])
    large = await count([row(meter=meter.serial, register=register, read_at=when, value=value)
                         for meter in extra for register in FORWARD
                         for when, value in ((T3, "300"), ("2026-10-02T00:00+08:00", "301"))])
    assert 0 < large == small  # 1,000 rows over 100 meters take as many reads as one row


async def test_list_conflicts_limits_and_filters(meters):
    await ingest([row(read_at=T1, value="1000")])
    await ingest([row(read_at=T1, value=str(1001 + i)) for i in range(3)])
    assert [c.value for c in await list_conflicts(limit=2)] == ["1003", "1002"]
    first = await m.ReadingConflict.get(value="1001")
    first.resolved_at = NOW
    await first.save()
    assert {c.value for c in await list_conflicts()} == {"1002", "1003"}
    assert len(await list_conflicts(unresolved_only=False)) == 3
    with pytest.raises(InvalidInput):
        await list_conflicts(limit=0)


# --- HTTP ---------------------------------------------------------------------------------------


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def ingest_client(client):
    """The whole server with a plant's meters and a collector whose key is KEY."""
    await make_meters()
    await m.Collector.create(name="head-end-1", key_sha256=hashlib.sha256(KEY.encode()).hexdigest())
    return client


async def post(client, body, headers=None):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    resp = await client.post("/ingest/v1/readings", data=data,
                             headers={"Content-Type": "application/json", **(auth() if headers is None else headers)})
    return resp.status, await resp.json()


async def test_http_a_collector_posts_a_batch(ingest_client):
    status, body = await post(ingest_client, {"readings": [
        row(read_at=T1, value="1000.25"), row(read_at=T2, value=1100.5), row(meter="NOPE"),
        row(register=EXPORT, read_at=T1, value=12)]}, headers={**auth(), "X-Request-Id": "head-end-1-batch-7"})
    assert status == 200
    assert body["created"] == 3 and body["duplicates"] == 0 and body["rejected"] == 1
    assert body["results"][:2] == [{"index": 0, "status": "created"}, {"index": 1, "status": "created"}]
    assert body["results"][2] == {"index": 2, "status": "rejected", "error": {
        "code": "unknown_meter", "message": "row 2: field 'meter': no meter has the serial 'NOPE'"}}
    assert await stored() == [(at(T1), Decimal("1000.2500"), 0), (at(T2), Decimal("1100.5000"), 0)]
    assert {r.source for r in await m.Reading.all()} == {m.ReadingSource.AMI}
    event = await m.AuditEvent.get(action="IngestReadings")
    assert (event.actor, event.request_id) == ("collector:head-end-1", "head-end-1-batch-7")
    metrics = await (await ingest_client.get("/metrics")).text()
    assert 'pvsettle_ingest_readings_total{status="created"} 3.0' in metrics
    assert 'pvsettle_ingest_readings_total{status="rejected"} 1.0' in metrics


async def test_http_reposting_the_same_batch_is_idempotent(ingest_client):
    batch = {"readings": [row(read_at=T1, value="1000"), row(read_at=T2, value="1100")]}
    assert (await post(ingest_client, batch))[1]["created"] == 2
    status, body = await post(ingest_client, batch)
    assert status == 200 and (body["created"], body["duplicates"], body["rejected"]) == (0, 2, 0)
    assert await m.Reading.all().count() == 2


async def test_http_conflicts_reach_staff(ingest_client):
    await post(ingest_client, {"readings": [row(read_at=T1, value="1000")]})
    status, body = await post(ingest_client, {"readings": [row(read_at=T1, value="1001"),
                                                           row(read_at=T2, value="900")]})
    assert status == 200 and body["rejected"] == 2
    assert [r["error"]["code"] for r in body["results"]] == ["conflicting_reading", "reading_decreased"]
    conflicts = await list_conflicts()
    assert {(c.code, c.received_from) for c in conflicts} == {
        ("conflicting_reading", "collector:head-end-1"), ("reading_decreased", "collector:head-end-1")}


@pytest.mark.parametrize("headers", [
    pytest.param({}, id="no header"),
    pytest.param(auth("forged-key"), id="forged key"),
    pytest.param({"Authorization": KEY}, id="no scheme"),
    pytest.param({"Authorization": f"Basic {KEY}"}, id="basic"),
    pytest.param({"Authorization": "Bearer "}, id="empty bearer"),
    pytest.param(auth(KEY + "x"), id="one character more"),
    pytest.param(auth("k" * 5000), id="huge key"),
])
async def test_http_without_a_valid_key_nothing_is_taken(ingest_client, headers):
    status, body = await post(ingest_client, {"readings": [row()]}, headers=headers)
    assert status == 401
    assert body["error"]["code"] == "unauthorized"
    assert await m.Reading.all().count() == 0


async def test_http_an_inactive_collector_is_refused(ingest_client):
    await m.Collector.filter(name="head-end-1").update(active=False)
    resp = await ingest_client.post("/ingest/v1/readings", json={"readings": [row()]}, headers=auth())
    assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert await m.Reading.all().count() == 0


async def test_http_more_than_5000_rows_is_413(ingest_client):
    rows = [row(read_at=(dt.datetime(2026, 1, 1, tzinfo=LOCAL) + dt.timedelta(hours=i)).isoformat(), value=str(i))
            for i in range(6000)]
    status, body = await post(ingest_client, {"readings": rows})
    assert status == 413
    assert body["error"]["code"] == "too_many_readings" and "5000" in body["error"]["message"]
    assert await m.Reading.all().count() == 0


async def test_http_5000_rows_are_taken(ingest_client):
    start = dt.datetime(2026, 1, 1, tzinfo=LOCAL)
    rows = [row(read_at=(start + dt.timedelta(minutes=15 * i)).isoformat(), value=f"{i}.25") for i in range(5000)]
    status, body = await post(ingest_client, {"readings": rows})
    assert status == 200 and body["created"] == 5000
    assert await m.Reading.all().count() == 5000


@pytest.mark.parametrize("data, code", [
    pytest.param(b"this is not json", "invalid_json", id="text"),
    pytest.param(b"", "invalid_json", id="empty"),
    pytest.param(b'{"readings": [', "invalid_json", id="truncated"),
    pytest.param(b"\xff\xfe\x00garbage", "invalid_json", id="not utf-8"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, "invalid_json", id="nested deeply"),
    pytest.param(b'{"readings": [{"meter": "M1", "register": "00010000", "read_at": "2026-08-01T00:00+08:00",'
                 b' "value": NaN}]}', "invalid_json", id="NaN literal"),
    pytest.param(b'{"readings": [{"meter": "M1", "register": "00010000", "read_at": "2026-08-01T00:00+08:00",'
                 b' "value": -Infinity}]}', "invalid_json", id="Infinity literal"),
    pytest.param(b'{"readings": [{"value": 1' + b"0" * 5000 + b"}]}", "invalid_json", id="5000-digit int"),
    pytest.param(b"[]", "invalid_body", id="a list"),
    pytest.param(b'"readings"', "invalid_body", id="a string"),
    pytest.param(b"{}", "invalid_body", id="no readings"),
    pytest.param(b'{"readings": {"meter": "M1"}}', "invalid_body", id="readings an object"),
    pytest.param(b'{"readings": [1, 2]}', "invalid_body", id="rows numbers"),
    pytest.param(b'{"readings": [{"meter": "M1", "register": "00010000", "read_at": "2026-08-01T00:00+08:00",'
                 b' "value": "1"}, null]}', "invalid_body", id="a null row"),
])
async def test_http_a_malformed_body_is_400_and_writes_nothing(ingest_client, data, code):
    status, body = await post(ingest_client, data)
    assert status == 400
    assert body["error"]["code"] == code
    assert "Traceback" not in body["error"]["message"]
    assert await m.Reading.all().count() == 0


async def test_http_hostile_rows_are_refused_one_by_one(ingest_client):
    body = (b'{"readings": ['
            b'{"meter": "C012; DROP TABLE reading", "register": "00010000", "read_at": "2026-08-01T00:00+08:00", '
            b'"value": "1"},'
            b'{"meter": "M1", "register": "00010000", "read_at": "2026-13-45", "value": "1"},'
            b'{"meter": "M1", "register": "00010000", "read_at": "2026-08-01T00:00+08:00", "value": "NaN"},'
            b'{"meter": "M1", "register": "00010000", "read_at": "2026-08-01T00:00+08:00", "value": "Infinity"},'
            b'{"meter": "M1", "register": "00010000", "read_at": "2026-08-01T00:00+08:00", "value": 1e400},'
            b'{"meter": "M1", "register": "00010000", "read_at": "2026-08-01T00:00+08:00", "value": 123.4567891234},'
            b'{"meter": ["M1"], "register": "00010000", "read_at": "2026-08-01T00:00+08:00", "value": "1"},'
            b'{"meter": "M1", "register": 10000, "read_at": "2026-08-01T00:00+08:00", "value": "1"},'
            b'{"meter": "M1", "register": "00010000", "read_at": {"$gt": ""}, "value": "1"},'
            b'{"meter": "M1", "register": "00010000", "read_at": "2026-08-01T00:00+08:00", "value": true},'
            b'{"meter": "M1", "register": "00010000", "read_at": "2099-01-01T00:00+08:00", "value": "1"},'
            b'{"meter": "M1", "register": "00010000", "read_at": "2026-08-01T00:00+08:00", "value": 1000.5}'
            b']}')
    status, result = await post(ingest_client, body)
    assert status == 200
    assert [r.get("error", {}).get("code", r["status"]) for r in result["results"]] == [
        "unknown_meter", "invalid_field", "invalid_field", "invalid_field", "value_out_of_range",
        "too_many_decimals", "invalid_field", "invalid_field", "invalid_field", "invalid_field",
        "reading_in_future", "created"]
    assert (result["created"], result["duplicates"], result["rejected"]) == (1, 0, 11)
    assert await stored() == [(at(T1), Decimal("1000.5000"), 0)]  # the reading table is alive and well


async def test_http_other_methods_get_the_json_error_shape(ingest_client):
    resp = await ingest_client.get("/ingest/v1/readings", headers=auth())
    assert resp.status == 405
    assert (await resp.json())["error"]["code"] == "method_not_allowed"
