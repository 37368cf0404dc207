"""settlement.telemetry.store.binary_copy: PostgreSQL's binary COPY format, read back field by field."""

from __future__ import annotations

import struct

import numpy as np

from settlement.telemetry.energy import NULL
from settlement.telemetry.store import binary_copy

PG_EPOCH_US = 946_684_800_000_000


def _read(payload: bytes, kinds: list[str]) -> list[tuple]:
    """The tuples of a binary COPY payload, decoded by the column types (a reader written from the
    format's documentation, independent of the writer)."""
    assert payload[:11] == b"PGCOPY\n\xff\r\n\x00"
    flags, extension = struct.unpack(">ii", payload[11:19])
    assert (flags, extension) == (0, 0)
    at, rows = 19, []
    while True:
        (fields,) = struct.unpack(">h", payload[at:at + 2])
        at += 2
        if fields == -1:
            break
        assert fields == len(kinds)
        row = []
        for kind in kinds:
            (length,) = struct.unpack(">i", payload[at:at + 4])
            at += 4
            if length == -1:
                row.append(None)
                continue
            data = payload[at:at + length]
            at += length
            if kind == "text":
                row.append(data.decode())
            elif kind == "timestamptz":
                row.append(struct.unpack(">q", data)[0] + PG_EPOCH_US)
            else:
                row.append(int.from_bytes(data, "big", signed=True))
        rows.append(tuple(row))
    assert at == len(payload)
    return rows


def test_every_row_comes_back_with_its_nulls_and_texts():
    ts = np.array([1_700_000_000_123_456, NULL, 946_684_800_000_000, 1_262_304_000_000_000], np.int64)
    device = np.array([1, 2, 2**31 - 1, 7], np.int64)
    energy = np.array([NULL, 5, 10**12, 0], np.int64)
    flags = np.array([0, 1, 2, 8], np.int64)
    status = ["ok", "standby", "故障", "ok"]
    kinds = ["int4", "timestamptz", "text", "int8", "int2"]
    payload = binary_copy(list(zip(kinds, [device, ts, status, energy, flags])))
    got = sorted(_read(payload, kinds), key=lambda row: row[4])
    assert got == [(1, 1_700_000_000_123_456, "ok", None, 0), (2, None, "standby", 5, 1),
                   (2**31 - 1, 946_684_800_000_000, "故障", 10**12, 2), (7, 1_262_304_000_000_000, "ok", 0, 8)]


def test_negative_numbers_and_one_row():
    kinds = ["int4", "int8"]
    assert _read(binary_copy([("int4", np.array([-5])), ("int8", np.array([-2**40]))]), kinds) == [(-5, -2**40)]
