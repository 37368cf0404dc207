"""The portfolio's tables and their columns: what each cell may hold, parsed into typed values.

One :class:`Column` per cell kind, so the rule for a price or a date is written once and is the
same in CSV and XLSX. A blank cell of an optional column takes the model's default; a blank cell
of a required column, or a cell that does not parse, is an error that names the row's place and
the column. Nothing here reads the database: cross-references (a plant's owner, a contract's
tariff) are :mod:`settlement.portfolio.changes`' work.

The column lists are the files' documentation (README "Portfolio import"), in this order.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from settlement import text as outside_text
from settlement.models import MeterKind, OwnerKind, PricingModel, StaffRole
from settlement.portfolio.sheets import MAX_CELL, Table

# DL/T 645-2007 energy registers: forward (0001…) and reverse (0002…) active, total and rates 1-4
FORWARD = ("00010000", "00010100", "00010200", "00010300", "00010400")
REVERSE = ("00020000", "00020100", "00020200", "00020300", "00020400")
# CJ/T 188 (water, gas and heat meters): 901F, the current cumulative volume [m³]
VOLUME = ("901F",)
DEFAULT_REGISTERS = {MeterKind.GENERATION: FORWARD, MeterKind.GRID: FORWARD + REVERSE,
                     MeterKind.WATER: VOLUME, MeterKind.GAS: VOLUME}
_DLT645 = re.compile(r"^[0-9A-F]{8}$")
_CJT188 = re.compile(r"^[0-9A-F]{4}$")
_CODE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,31}$")
_BY_ID = re.compile(r"^#[1-9][0-9]{0,9}$")  # an export's key for a record made before codes existed


class CellError(ValueError):
    """A cell that does not parse; the message says what was expected."""


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a code such as 13800000000 typed into a spreadsheet comes back as a float
    text = str(value).strip()
    if len(text) > MAX_CELL:
        raise CellError(f"more than {MAX_CELL} characters")
    return text


def text(limit: int) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        out = _text(value)
        if len(out) > limit:
            raise CellError(f"at most {limit} characters, not {len(out)}")
        found = outside_text.problem(out)
        if found:
            raise CellError(f"{found}: text may not hold NUL, control characters or lone surrogates")
        return out
    return parse


def code(value: Any) -> str:
    out = _text(value)
    if not (_CODE.match(out) or _BY_ID.match(out)):
        raise CellError(f"{out[:40]!r} is not a code (letters, digits, . _ -, at most 32, "
                        "starting with a letter or digit; or #<id> as an export writes it)")
    return out


def decimal(places: int, *, low: Decimal | None = Decimal(0), high: Decimal | None = None,
            low_open: bool = False) -> Callable[[Any], Decimal]:
    """A decimal with at most ``places`` decimals in [low, high] (or (low, high] when ``low_open``)."""
    def parse(value: Any) -> Decimal:
        if isinstance(value, bool):
            raise CellError("a number, not true/false")
        raw = repr(value) if isinstance(value, float) else _text(value)
        try:
            out = Decimal(raw)
        except InvalidOperation:
            raise CellError(f"{raw[:40]!r} is not a number") from None
        if not out.is_finite():
            raise CellError(f"{raw[:40]!r} is not a number")
        if -out.as_tuple().exponent > places and out != out.quantize(Decimal(1).scaleb(-places)):
            raise CellError(f"{raw[:40]} has more than {places} decimals")
        if low is not None and (out <= low if low_open else out < low):
            raise CellError(f"{raw[:40]} is {'not above' if low_open else 'below'} {low}")
        if high is not None and out > high:
            raise CellError(f"{raw[:40]} is above {high}")
        return out.quantize(Decimal(1).scaleb(-places))
    return parse


def integer(low: int, high: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool):
            raise CellError("a whole number, not true/false")
        if isinstance(value, float):
            if not value.is_integer():
                raise CellError(f"{value!r} is not a whole number")
            value = int(value)
        raw = _text(value)
        if not re.fullmatch(r"-?[0-9]{1,12}", raw):
            raise CellError(f"{raw[:40]!r} is not a whole number")
        out = int(raw)
        if not low <= out <= high:
            raise CellError(f"{out} is not between {low} and {high}")
        return out
    return parse


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raw = _text(value).lower()
    if raw in ("true", "yes", "1", "是", "y"):
        return True
    if raw in ("false", "no", "0", "否", "n"):
        return False
    raise CellError(f"{raw[:20]!r} is not true or false")


def date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        if value.time() != dt.time(0):
            raise CellError(f"{value.isoformat()} is a time, a date is expected (YYYY-MM-DD)")
        return value.date()
    if isinstance(value, dt.date):
        return value
    raw = _text(value)
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise CellError(f"{raw[:40]!r} is not a date (YYYY-MM-DD)") from None


def local_time(value: Any) -> dt.datetime:
    """ISO 8601; without an offset it is China time (as the readings import takes it)."""
    from settlement.clock import LOCAL

    if isinstance(value, dt.datetime):
        out = value
    else:
        raw = _text(value)
        try:
            out = dt.datetime.fromisoformat(raw)
        except ValueError:
            raise CellError(f"{raw[:40]!r} is not a time (YYYY-MM-DD HH:MM[:SS][+08:00])") from None
    return out if out.tzinfo else out.replace(tzinfo=LOCAL)


def choice(enum: type) -> Callable[[Any], Any]:
    def parse(value: Any) -> Any:
        raw = _text(value).lower()
        try:
            return enum(raw)
        except ValueError:
            raise CellError(f"{raw[:40]!r} is not one of {', '.join(e.value for e in enum)}") from None
    return parse


def registers(value: Any) -> tuple[str, ...]:
    """Register ids separated by spaces, commas or semicolons: DL/T 645 (8 hex) or CJ/T 188 (4 hex)."""
    ids = tuple(r.upper() for r in re.split(r"[\s,;]+", _text(value)) if r)
    if not ids:
        raise CellError("at least one register id")
    for r in ids:
        if not (_DLT645.match(r) or _CJT188.match(r)):
            raise CellError(f"{r[:20]!r} is not a register id (DL/T 645: 8 hex digits; CJ/T 188: 4)")
    if len(set(ids)) != len(ids):
        raise CellError("a register id is listed twice")
    return ids


def register_values(value: Any) -> dict[str, Decimal]:
    """``00010000=12345.67 00010100=…``: register id = dial reading (meter units, ≤ 4 decimals)."""
    out: dict[str, Decimal] = {}
    parse_value = decimal(4)
    for item in (i for i in re.split(r"[\s,;]+", _text(value)) if i):
        register, sep, reading = item.partition("=")
        register = register.upper()
        if not sep or not (_DLT645.match(register) or _CJT188.match(register)):
            raise CellError(f"{item[:40]!r} is not register=value (e.g. 00010000=12345.67)")
        if register in out:
            raise CellError(f"register {register} is given twice")
        out[register] = parse_value(reading)
    if not out:
        raise CellError("at least one register=value")
    return out


def tiers(value: Any) -> list[list[Any]]:
    """JSON ``[[upper kWh, "price"], …, [null, "price"]]``: ascending bounds, the last open."""
    raw = _text(value)
    try:
        obj = json.loads(raw, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise CellError(f"not JSON ([[200, \"0.55\"], [null, \"0.60\"]]): {exc.msg}") from None
    if not isinstance(obj, list) or not obj:
        raise CellError("a list of [upper kWh or null, price] pairs")
    price = decimal(6, low=Decimal(0))
    out, last = [], Decimal(-1)
    for i, pair in enumerate(obj):
        if not isinstance(pair, list) or len(pair) != 2:
            raise CellError(f"tier {i + 1} is not [upper kWh or null, price]")
        upper, unit = pair
        if upper is None:
            if i != len(obj) - 1:
                raise CellError(f"tier {i + 1} is open (null) but is not the last")
        else:
            bound = decimal(3, low=last, low_open=True)(upper)
            last = bound
        out.append([None if upper is None else str(last), str(price(unit))])
    if out[-1][0] is not None:
        raise CellError("the last tier must be open: [null, price]")
    return out


@dataclass(frozen=True)
class Column:
    name: str
    parse: Callable[[Any], Any]
    required: bool = False
    default: Any = None
    field: str | None = None  # the model field, when named otherwise


@dataclass(frozen=True)
class Spec:
    name: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    #: columns of which exactly one must be given (a tariff's file or document)
    one_of: tuple[str, ...] = ()

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


PRICE = decimal(6)
RATE = decimal(4, high=Decimal(1))
FEE_RATE = decimal(5, high=Decimal("0.1"))

TABLES: tuple[Spec, ...] = (
    Spec("staff", ("code",), (
        Column("code", code, True), Column("name", text(100), True),
        Column("role", choice(StaffRole), True), Column("active", boolean, default=True))),
    Spec("owners", ("code",), (
        Column("code", code, True), Column("name", text(100), True),
        Column("kind", choice(OwnerKind), default=OwnerKind.COMMERCIAL),
        Column("phone", text(20)), Column("tax_id", text(32)))),
    Spec("tariffs", ("code", "effective_from"), (
        Column("code", code, True), Column("name", text(200)),
        Column("format", text(8)), Column("file", text(300)), Column("document", text(MAX_CELL))),
        one_of=("file", "document")),
    Spec("plants", ("code",), (
        Column("code", code, True), Column("name", text(200), True), Column("owner", code, True),
        Column("capacity_kwp", decimal(3, high=Decimal("1000000"), low_open=True), True),
        Column("address", text(300), default=""),
        Column("latitude", decimal(6, low=Decimal(-90), high=Decimal(90))),
        Column("longitude", decimal(6, low=Decimal(-180), high=Decimal(180))),
        Column("reading_day", integer(1, 28), default=1),
        Column("commissioned_on", date))),
    Spec("meters", ("serial",), (
        Column("serial", code, True), Column("plant", code, True),
        Column("kind", choice(MeterKind), True),
        Column("multiplier", integer(1, 1_000_000), default=1),
        Column("register_digits", integer(4, 10), default=6),
        Column("registers", registers),
        Column("installed_on", date, True), Column("removed_on", date))),
    Spec("meter_replacements", ("new_meter",), (
        Column("old_meter", code, True), Column("new_meter", code, True),
        Column("replaced_at", local_time, True),
        Column("final_readings", register_values, True), Column("first_readings", register_values, True))),
    Spec("contracts", ("plant", "effective_from"), (
        Column("plant", code, True), Column("effective_from", date, True),
        Column("tariff", code, True, field="tariff_code"),
        Column("pricing_model", choice(PricingModel), True),
        Column("discount", RATE), Column("floor_price", PRICE), Column("cap_price", PRICE),
        Column("fixed_price", PRICE), Column("tiers", tiers),
        Column("vat_rate", RATE, default=Decimal("0.1300")),
        Column("prices_include_vat", boolean, default=True),
        Column("due_days", integer(0, 365), default=15),
        Column("late_fee_rate", FEE_RATE, default=Decimal("0.00200")),
        Column("late_fee_rate_cross_year", FEE_RATE, default=Decimal("0.00300")),
        Column("auto_confirm_days", integer(0, 90), default=7),
        Column("allow_partial_payment", boolean, default=True),
        Column("share_export", boolean, default=False),
        Column("owner_bears_nearby_fees", boolean, default=False))),
    Spec("nearby_terms", ("plant", "effective_from"), (
        Column("plant", code, True), Column("effective_from", date, True),
        Column("voltage_level", text(32), True), Column("td_price", PRICE, True),
        Column("average_load_rate", decimal(6, high=Decimal(1)), True),
        Column("connection_kva", decimal(3, low_open=True), True),
        Column("current_capacity_charge", decimal(2), True),
        Column("system_operation_fee", PRICE, True), Column("wire_loss_price", PRICE, True))),
)
SPECS = {spec.name: spec for spec in TABLES}
NAMES = tuple(SPECS)


@dataclass(frozen=True)
class RowError:
    place: str
    column: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.place}: {'column ' + repr(self.column) + ': ' if self.column else ''}{self.message}"

    def as_dict(self) -> dict:
        return {"place": self.place, "column": self.column, "message": self.message}


@dataclass
class Parsed:
    """A parsed row: typed values by column name (blank optional cells as their default)."""

    place: str
    values: dict[str, Any]
    given: frozenset[str]  # the columns the row had a value in


def header_errors(spec: Spec, table: Table) -> list[RowError]:
    """Unknown columns, and required ones missing from the header."""
    known = {c.name for c in spec.columns}
    place = f"{table.rows[0].place.rsplit(' ', 2)[0] if table.rows else table.name} header"
    out = [RowError(place, name, f"no such column in {spec.name} (have {', '.join(sorted(known))})")
           for name in table.columns if name not in known]
    out += [RowError(place, c.name, "required column missing") for c in spec.columns
            if c.required and c.name not in table.columns]
    return out


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def parse_rows(spec: Spec, table: Table) -> tuple[list[Parsed], list[RowError]]:
    """Each row of ``table`` parsed by ``spec``; rows with errors are left out and reported."""
    errors = header_errors(spec, table)
    if errors:
        return [], errors
    parsed, seen = [], {}
    for row in table.rows:
        values, given, row_errors = {}, set(), []
        for column in spec.columns:
            raw = row.cells.get(column.name)
            if _blank(raw):
                if column.required:
                    row_errors.append(RowError(row.place, column.name, "required, the cell is empty"))
                values[column.name] = column.default
                continue
            try:
                values[column.name] = column.parse(raw)
                given.add(column.name)
            except CellError as exc:
                row_errors.append(RowError(row.place, column.name, str(exc)))
        if spec.one_of and sum(name in given for name in spec.one_of) != 1:
            row_errors.append(RowError(row.place, None, f"give exactly one of {' or '.join(spec.one_of)}"))
        if not row_errors and spec.name != "tariffs":  # a tariff's key needs its document (changes.py)
            key = tuple(values[k] for k in spec.key)
            if key in seen:
                row_errors.append(RowError(row.place, None, f"the same {'/'.join(spec.key)} as {seen[key]}"))
            seen[key] = row.place
        errors += row_errors
        if not row_errors:
            parsed.append(Parsed(row.place, values, frozenset(given)))
    return parsed, errors
