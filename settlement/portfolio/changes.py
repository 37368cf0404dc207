"""Import a portfolio: every table's rows checked against each other and the database, then
stored in one transaction with an audit event per change — or, with ``check``, reported only.

Rules
-----
* **All or nothing.** A row that does not parse, names an owner, plant, meter or tariff that is in
  neither the files nor the database, or breaks a rule below is reported with its place, and
  nothing at all is stored. ``check`` runs the very same import inside a transaction that is
  rolled back, so it reports exactly what the import would do.
* **Idempotent.** Rows are matched by their key (owners and staff by code, plants by code,
  meters by serial, contracts and nearby terms by plant and ``effective_from``, tariffs by code
  and their first version's date). A row equal to what is stored changes nothing and writes no
  event; importing the same files twice changes nothing the second time. Tables left out, and
  records the files do not mention, are not touched (an import never deletes).
* **A bill already issued is never rewritten.** A contract, tariff or nearby-terms version that
  priced an issued bill cannot be edited, and a new version cannot start on or before the cut-off
  of a period already billed: the message says to add a version that starts later.
* **Meters with readings** keep their plant, kind, multiplier and register digits (the readings
  are dial values of that meter: change them and past energy changes); they can only gain
  registers. A meter that is changed is *replaced*: ``meter_replacements`` names the old and the
  new meter, the time, the old one's final and the new one's first readings, which go through the
  readings service (:func:`settlement.readings.ingest.ingest_readings`, its rules: no decrease,
  no conflict) as ``imported`` readings.
* **Meters in service** of one kind on one plant may not overlap in time: a reading cycle takes
  the plant's grid and generation meter from them.
* **Tariffs** are stored as written, in their format (the project's or an OpenEI URDB record)
  and currency. A contract's tariff must be in CNY (bills are settled in CNY, WeChat Pay takes
  nothing else) and must price the four DL/T 645 rates (sharp, peak, flat, valley, with the
  fallbacks the bills use); a URDB record in dollars is stored and exported, and refused as a
  contract's tariff with a message that says why.
* **Who.** An active admin imports (``staff``); only a database with no staff at all (a company's
  first import, which brings its staff) is imported as ``system``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tortoise.transactions import in_transaction

from billing_engine.errors import BillingError
from billing_engine.tariff import Tariff as EngineTariff
from billing_engine.tariff_files import FORMATS, format_of, parse as parse_tariff
from settlement import audit
from settlement.billing.bills import contract_terms, grid_prices
from settlement.clock import LOCAL
from settlement.cycles.runs import contract_cut_off
from settlement.errors import DomainError, Forbidden
from settlement.models import (
    Bill, Contract, Meter, MeterKind, NearbyConsumptionTerms, Owner, Plant, Reading, ReadingCycle,
    ReadingSource, Staff, StaffRole, Tariff,
)
from settlement.portfolio import tables as t
from settlement.portfolio.sheets import Table

MAX_DOCUMENT_BYTES = 1_000_000  # a tariff file: a URDB record with every schedule is a few kB
ELECTRICITY = (MeterKind.GRID, MeterKind.GENERATION)


@dataclass(frozen=True)
class Change:
    table: str
    key: str
    action: str  # "create" or "update"
    place: str
    fields: dict[str, tuple[Any, Any]]  # name → (before, after); before is None on create

    def as_dict(self) -> dict:
        return {"table": self.table, "key": self.key, "action": self.action, "place": self.place,
                "fields": {k: [audit.plain(b), audit.plain(a)] for k, (b, a) in self.fields.items()}}


@dataclass
class Outcome:
    """What an import did (or, checked, would do)."""

    stored: bool = False
    changes: list[Change] = field(default_factory=list)
    unchanged: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    readings_stored: int = 0
    errors: list[t.RowError] = field(default_factory=list)

    def counts(self) -> dict[str, dict[str, int]]:
        out = {name: {"created": 0, "updated": 0, "unchanged": self.unchanged.get(name, 0)} for name in t.NAMES}
        for change in self.changes:
            out[change.table]["created" if change.action == "create" else "updated"] += 1
        return {name: c for name, c in out.items() if any(c.values())}


class _Refused(Exception):
    """Rows broke the rules while storing (a replacement reading the readings service refused)."""

    def __init__(self, errors: list[t.RowError]):
        super().__init__(f"{len(errors)} rows refused")
        self.errors = errors


class _CheckOnly(Exception):
    """Raised at the end of a checked import to roll its transaction back."""


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (Decimal, int, float)) and isinstance(b, (Decimal, int, float, str)) and not isinstance(a, bool):
        try:
            return Decimal(str(a)) == Decimal(str(b))
        except ArithmeticError:
            return False
    if isinstance(b, (Decimal, int, float)) and isinstance(a, str) and not isinstance(b, bool):
        return _same(b, a)
    return a == b


def _diff(current: Any, wanted: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    out = {}
    for name, value in wanted.items():
        before = getattr(current, name)
        if not _same(before, value):
            out[name] = (before, value)
    return out




class _Import:
    """One import: the parsed rows, the stored state they are matched against, the plan."""

    def __init__(self, tables: dict[str, Table], source: str):
        self.tables, self.source = tables, source
        self.outcome = Outcome()
        self.rows: dict[str, list[t.Parsed]] = {}
        self.plan: list[tuple[str, t.Parsed, Any, dict]] = []  # (table, row, stored or None, wanted fields)

    def error(self, row: t.Parsed | str, column: str | None, message: str) -> None:
        self.outcome.errors.append(t.RowError(row if isinstance(row, str) else row.place, column, message))

    # --- the stored state ---------------------------------------------------------------------

    async def load(self) -> None:
        self.owners = {o.code or f"#{o.id}": o for o in await Owner.all()}
        self.owner_ids = {o.id: o for o in self.owners.values()}
        self.staff = {s.code or f"#{s.id}": s for s in await Staff.all()}
        self.tariffs = {(r.code, r.effective_from): r for r in await Tariff.all()}
        self.plants = {p.code: p for p in await Plant.all()}
        self.plant_ids = {p.id: p for p in self.plants.values()}
        self.meters = {m.serial: m for m in await Meter.all()}
        self.meter_ids = {m.id: m for m in self.meters.values()}
        self.contracts = {(c.plant_id, c.effective_from): c for c in await Contract.all()}
        self.nearby = {(n.plant_id, n.effective_from): n for n in await NearbyConsumptionTerms.all()}
        # which of the meters and plants the files name have readings or cycles (not the whole table)
        named_meters = [self.meters[r.values["serial"]].id for r in self.rows.get("meters", ())
                        if r.values["serial"] in self.meters]
        named_plants = [self.plants[r.values["code"]].id for r in self.rows.get("plants", ())
                        if r.values["code"] in self.plants]
        self.metered, self.cycled = set(), set()
        for first in range(0, len(named_meters), 500):  # SQLite takes a bounded number of parameters
            self.metered |= set(await Reading.filter(meter_id__in=named_meters[first:first + 500])
                                .distinct().values_list("meter_id", flat=True))
        for first in range(0, len(named_plants), 500):
            self.cycled |= set(await ReadingCycle.filter(plant_id__in=named_plants[first:first + 500])
                               .distinct().values_list("plant_id", flat=True))
        self.billed: dict[int, list[tuple[dt.date, str]]] = defaultdict(list)  # plant → (cut-off, bill number)
        for plant_id, period, number in await Bill.all().values_list("plant_id", "cycle__period", "number"):
            self.billed[plant_id].append((contract_cut_off(period), number))

    # --- rows → the plan -------------------------------------------------------------------------

    def parse(self) -> None:
        for spec in t.TABLES:
            table = self.tables.get(spec.name)
            if table is None:
                continue
            parsed, errors = t.parse_rows(spec, table)
            self.outcome.errors += errors
            self.rows[spec.name] = parsed

    def want(self, table: str, row: t.Parsed, stored: Any, wanted: dict) -> None:
        if isinstance(stored, _WithCodes) and stored.record is None:
            stored = None
        if stored is not None and not _diff(stored, wanted):
            self.outcome.unchanged[table] += 1
            return
        self.plan.append((table, row, stored, wanted))

    def _by_code(self, known: dict, row: t.Parsed, column: str, what: str, in_files: set[str]) -> bool:
        code = row.values[column]
        if code in known or code in in_files:
            return True
        self.error(row, column, f"no {what} {code!r} in the files or the database")
        return False

    def plan_staff_and_owners(self) -> None:
        for table, stored, fields in (("staff", self.staff, ("name", "role", "active")),
                                      ("owners", self.owners, ("name", "kind", "phone", "tax_id"))):
            for row in self.rows.get(table, ()):
                key = row.values["code"]
                current = stored.get(key)
                if key.startswith("#") and current is None:
                    self.error(row, "code", f"{key} names a record by database id, and there is none with "
                                            "that id; give a new record a code of its own")
                    continue
                wanted = {f: row.values[f] for f in fields}
                if not key.startswith("#"):
                    wanted["code"] = key
                self.want(table, row, current, wanted)

    def _tariff_document(self, row: t.Parsed, table: Table) -> Any:
        if "document" in row.given:
            text = row.values["document"]
        else:
            if table.folder is None:
                self.error(row, "file", "a workbook holds a tariff inline, in the column document")
                return None
            folder = table.folder.resolve()
            path = (folder / row.values["file"]).resolve()
            if not path.is_relative_to(folder):
                self.error(row, "file", f"{row.values['file']!r} is outside the folder of the import")
                return None
            if not path.is_file():
                self.error(row, "file", f"no file {row.values['file']!r} beside tariffs.csv")
                return None
            if path.stat().st_size > MAX_DOCUMENT_BYTES:
                self.error(row, "file", f"{row.values['file']!r} is larger than {MAX_DOCUMENT_BYTES} bytes")
                return None
            try:
                text = path.read_text("utf-8")
            except UnicodeDecodeError:
                self.error(row, "file", f"{row.values['file']!r} is not UTF-8 text")
                return None
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            self.error(row, "file" if "file" in row.given else "document",
                       f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}")
            return None

    def plan_tariffs(self) -> None:
        #: (code, effective_from) → the parsed engine tariff and its currency, file rows and stored ones
        self.engine_tariffs: dict[tuple[str, dt.date], EngineTariff] = {}
        seen: dict[tuple[str, dt.date], str] = {}
        for row in self.rows.get("tariffs", ()):
            document = self._tariff_document(row, self.tables["tariffs"])
            if document is None:
                continue
            fmt = (row.values["format"] or format_of(document)).lower()
            if fmt not in FORMATS:
                self.error(row, "format", f"{fmt!r} is not one of {', '.join(FORMATS)}")
                continue
            try:
                tariff = parse_tariff(document, fmt)
            except BillingError as exc:
                self.error(row, "file" if "file" in row.given else "document", f"not a {fmt} tariff: {exc}")
                continue
            key = (row.values["code"], tariff.versions[0].effective_from)
            if key in seen:
                self.error(row, None, f"tariff {key[0]} from {key[1]} is also at {seen[key]}")
                continue
            seen[key] = row.place
            self.engine_tariffs[key] = tariff
            current = self.tariffs.get(key)
            wanted = {"code": key[0], "effective_from": key[1], "name": row.values["name"] or tariff.name,
                      "document": document, "format": fmt, "currency": tariff.currency}
            if current is not None and not _same(current.document, document):
                billed = self._billed_under_tariff(key[0])
                if billed:
                    self.error(row, None, f"tariff {key[0]} from {key[1]} priced bills already issued "
                                          f"({', '.join(billed[:3])}): add a version that starts later instead")
                    continue
            if current is None:
                later_than = self._last_billed_cut_off_on_tariff(key[0])
                if later_than is not None and key[1] <= later_than:
                    self.error(row, None, f"bills of periods up to {later_than} are issued on tariff {key[0]}: "
                                          f"a new version must start after {later_than}, not on {key[1]}")
                    continue
            self.want("tariffs", row, current, wanted)

    def _plants_on_tariff(self, code: str) -> set[int]:
        return {c.plant_id for c in self.contracts.values() if c.tariff_code == code}

    def _billed_under_tariff(self, code: str) -> list[str]:
        return sorted(number for p in self._plants_on_tariff(code) for _, number in self.billed.get(p, ()))

    def _last_billed_cut_off_on_tariff(self, code: str) -> dt.date | None:
        cut_offs = [c for p in self._plants_on_tariff(code) for c, _ in self.billed.get(p, ())]
        return max(cut_offs, default=None)

    def plan_plants(self) -> None:
        owners_in_files = {r.values["code"] for r in self.rows.get("owners", ())}
        for row in self.rows.get("plants", ()):
            if not self._by_code(self.owners, row, "owner", "owner", owners_in_files):
                continue
            current = self.plants.get(row.values["code"])
            wanted = {name: row.values[name] for name in
                      ("code", "name", "capacity_kwp", "address", "latitude", "longitude", "reading_day",
                       "commissioned_on")}
            if current is not None and current.reading_day != wanted["reading_day"] and current.id in self.cycled:
                self.error(row, "reading_day", f"plant {current.code} has reading cycles on day {current.reading_day}: "
                                               "changing its reading day would change their spans")
                continue
            wanted["owner"] = row.values["owner"]
            self.want("plants", row, _WithCodes(current, owner=self._owner_code(current)), wanted)

    def _owner_code(self, plant: Plant | None) -> str | None:
        if plant is None:
            return None
        owner = self.owner_ids[plant.owner_id]
        return owner.code or f"#{owner.id}"

    def plan_meters(self) -> None:
        plants_in_files = {r.values["code"] for r in self.rows.get("plants", ())}
        self.meter_rows: dict[str, dict] = {}  # serial → the meter as it will be (for the checks below)
        for meter in self.meters.values():
            self.meter_rows[meter.serial] = {
                "plant": self.plant_ids[meter.plant_id].code, "kind": meter.kind, "registers": tuple(meter.registers),
                "installed_on": meter.installed_on, "removed_on": meter.removed_on, "place": "the database"}
        for row in self.rows.get("meters", ()):
            if not self._by_code(self.plants, row, "plant", "plant", plants_in_files):
                continue
            kind = row.values["kind"]
            registers = row.values["registers"] or t.DEFAULT_REGISTERS[kind]
            electric = kind in ELECTRICITY
            wrong = [r for r in registers if (len(r) == 8) != electric]
            if wrong:
                self.error(row, "registers", f"a {kind.value} meter reports {'DL/T 645 (8 hex digits)' if electric else 'CJ/T 188 (4 hex digits)'}"
                                             f" registers, not {', '.join(wrong)}")
                continue
            if row.values["removed_on"] is not None and row.values["removed_on"] < row.values["installed_on"]:
                self.error(row, "removed_on", "before installed_on")
                continue
            current = self.meters.get(row.values["serial"])
            wanted = {"serial": row.values["serial"], "kind": kind, "multiplier": row.values["multiplier"],
                      "register_digits": row.values["register_digits"], "registers": list(registers),
                      "installed_on": row.values["installed_on"], "removed_on": row.values["removed_on"],
                      "plant": row.values["plant"]}
            stored = _WithCodes(current, plant=current and self.plant_ids[current.plant_id].code)
            if current is not None and current.id in self.metered:
                fixed = [name for name in ("plant", "kind", "multiplier", "register_digits")
                         if not _same(getattr(stored, name), wanted[name])]
                lost = [r for r in current.registers if r not in registers]
                if fixed or lost:
                    what = ", ".join(fixed) + (", " if fixed and lost else "") + (
                        f"registers {' '.join(lost)}" if lost else "")
                    self.error(row, fixed[0] if fixed else "registers",
                               f"meter {current.serial} has readings: its {what} cannot change; "
                               "replace it with a new meter (table meter_replacements)")
                    continue
            self.meter_rows[row.values["serial"]] = {**wanted, "registers": tuple(registers), "place": row.place}
            self.want("meters", row, stored, wanted)
        self._check_overlaps()

    def _check_overlaps(self) -> None:
        by_slot: dict[tuple[str, MeterKind], list[tuple[str, dict]]] = defaultdict(list)
        for serial, meter in self.meter_rows.items():
            by_slot[(meter["plant"], meter["kind"])].append((serial, meter))
        far = dt.date.max
        for (plant, kind), meters in by_slot.items():
            meters.sort(key=lambda item: item[1]["installed_on"])
            for (a, ma), (b, mb) in zip(meters, meters[1:]):
                if (ma["removed_on"] or far) > mb["installed_on"]:
                    place = mb["place"] if mb["place"] != "the database" else ma["place"]
                    self.error(place, "installed_on",
                               f"{kind.value} meters {a} and {b} of plant {plant} would both be in service on "
                               f"{mb['installed_on']}: remove {a} first (removed_on) or replace it")

    def plan_replacements(self) -> None:
        self.replacements: list[tuple[t.Parsed, dict]] = []
        for row in self.rows.get("meter_replacements", ()):
            old, new = row.values["old_meter"], row.values["new_meter"]
            mo, mn = self.meter_rows.get(old), self.meter_rows.get(new)
            if mo is None or mn is None:
                self.error(row, "old_meter" if mo is None else "new_meter",
                           f"no meter {old if mo is None else new!r} in the files or the database")
                continue
            day = row.values["replaced_at"].astimezone(LOCAL).date()
            problems = []
            if mo["plant"] != mn["plant"] or mo["kind"] != mn["kind"]:
                problems.append(f"{new} must be a {mo['kind'].value} meter of plant {mo['plant']}, as {old} is")
            if mo["removed_on"] != day:
                problems.append(f"{old} must be removed on {day} (removed_on is {mo['removed_on'] or 'empty'})")
            if mn["installed_on"] != day:
                problems.append(f"{new} must be installed on {day} (installed_on is {mn['installed_on']})")
            for column, serial, meter in (("final_readings", old, mo), ("first_readings", new, mn)):
                extra = [r for r in row.values[column] if r not in meter["registers"]]
                if extra:
                    problems.append(f"{column}: {serial} does not report {' '.join(extra)}")
            if problems:
                self.error(row, None, "; ".join(problems))
                continue
            current = self.meters.get(new)
            stored_old = current and current.replaces_id and self.meter_ids[current.replaces_id].serial
            wanted = {"replaces": old, "replaced_at": row.values["replaced_at"]}
            self.replacements.append((row, wanted))
            self.want("meter_replacements", row,
                      _WithCodes(current, replaces=stored_old, replaced_at=current and current.replaced_at)
                      if current is not None else None, wanted)

    def _versions(self, stored: dict, plant_id: int | None, code: str, rows: list[t.Parsed]) -> list[dt.date]:
        dates = {d for (p, d) in stored if p == plant_id and plant_id is not None}
        dates |= {r.values["effective_from"] for r in rows if r.values["plant"] == code}
        return sorted(dates)

    def _issued_rule(self, row: t.Parsed, what: str, plant_id: int | None, changed: bool, versions: list[dt.date]) -> bool:
        """The rule that a bill already issued is never rewritten; False (and an error) when broken."""
        billed = self.billed.get(plant_id, []) if plant_id is not None else []
        start = row.values["effective_from"]
        if not billed:
            return True
        if changed:
            later = [d for d in versions if d > start]
            end = later[0] if later else dt.date.max
            priced = sorted(number for cut, number in billed if start <= cut < end)
            if priced:
                self.error(row, None, f"the {what} from {start} priced bills already issued "
                                      f"({', '.join(priced[:3])}): add a version that starts later instead")
                return False
            return True
        last = max(cut for cut, _ in billed)
        if start <= last:
            self.error(row, "effective_from", f"bills of periods up to {last} are issued: a new {what} "
                                              f"must start after {last}, not on {start}")
            return False
        return True

    def _tariff_in_force(self, code: str, day: dt.date) -> tuple[EngineTariff | None, Any]:
        """The engine tariff of ``code`` in force on ``day`` as it will be after this import, and
        its key; a stored one is parsed once per import, not once per contract that names it."""
        keys = sorted(k for k in {*self.tariffs, *self.engine_tariffs} if k[0] == code and k[1] <= day)
        if not keys:
            return None, None
        key = keys[-1]
        if key not in self.engine_tariffs:
            stored = self.tariffs[key]
            self.engine_tariffs[key] = parse_tariff(stored.document, stored.format)
        return self.engine_tariffs[key], key

    def plan_contracts(self) -> None:
        plants_in_files = {r.values["code"] for r in self.rows.get("plants", ())}
        rows = self.rows.get("contracts", ())
        for row in rows:
            if not self._by_code(self.plants, row, "plant", "plant", plants_in_files):
                continue
            values = row.values
            model_fields = {c.field or c.name: values[c.name] for c in t.SPECS["contracts"].columns if c.name != "plant"}
            draft = Contract(**model_fields)
            try:
                terms = contract_terms(draft)
            except BillingError as exc:
                self.error(row, None, f"the contract's terms do not price: {exc}")
                continue
            needed = {"grid_discount": "discount", "fixed_price": "fixed_price", "tiered": "tiers"}[values["pricing_model"].value]
            if values[needed] is None:
                self.error(row, needed, f"a {values['pricing_model'].value} contract needs {needed}")
                continue
            tariff, key = self._tariff_in_force(values["tariff"], values["effective_from"])
            if tariff is None:
                self.error(row, "tariff", f"no tariff {values['tariff']!r} in force on {values['effective_from']} "
                                          "in the files or the database")
                continue
            if tariff.currency != "CNY":
                self.error(row, "tariff", f"tariff {values['tariff']} is priced in {tariff.currency}: bills are "
                                          "settled in CNY (WeChat Pay takes nothing else)")
                continue
            try:
                grid_prices(tariff, max(values["effective_from"], key[1]), terms)
            except DomainError as exc:
                self.error(row, "tariff", f"{exc.message}: the bills price DL/T 645 rates sharp, peak, flat "
                                          "and valley from the tariff's periods")
                continue
            plant = self.plants.get(values["plant"])
            current = self.contracts.get((plant.id, values["effective_from"])) if plant else None
            if current is not None and _diff(current, model_fields) or current is None:
                versions = self._versions(self.contracts, plant and plant.id, values["plant"], rows)
                if not self._issued_rule(row, "contract version", plant and plant.id, current is not None, versions):
                    continue
            self.want("contracts", row, _WithCodes(current, plant=values["plant"]) if current else None,
                      {**model_fields, "plant": values["plant"]})

    def plan_nearby(self) -> None:
        plants_in_files = {r.values["code"] for r in self.rows.get("plants", ())}
        rows = self.rows.get("nearby_terms", ())
        names = [c.name for c in t.SPECS["nearby_terms"].columns if c.name != "plant"]
        for row in rows:
            if not self._by_code(self.plants, row, "plant", "plant", plants_in_files):
                continue
            plant = self.plants.get(row.values["plant"])
            current = self.nearby.get((plant.id, row.values["effective_from"])) if plant else None
            wanted = {name: row.values[name] for name in names}
            if current is not None and _diff(current, wanted) or current is None:
                versions = self._versions(self.nearby, plant and plant.id, row.values["plant"], rows)
                if not self._issued_rule(row, "nearby-consumption terms version", plant and plant.id,
                                         current is not None, versions):
                    continue
            self.want("nearby_terms", row, _WithCodes(current, plant=row.values["plant"]) if current else None,
                      {**wanted, "plant": row.values["plant"]})

    # --- storing -----------------------------------------------------------------------------------

    async def store(self, actor: str) -> None:
        reason = f"portfolio import {self.source}"[:500]
        for table, row, stored, wanted in self.plan:
            current = stored.record if isinstance(stored, _WithCodes) else stored
            fields = self._model_fields(table, wanted)
            before = _diff(stored, wanted) if stored is not None else {k: (None, v) for k, v in wanted.items()}
            action = "create" if stored is None else "update"
            if table == "meter_replacements":
                current = self.meters[row.values["new_meter"]]  # made earlier in this import, or stored
            if current is None:
                record = await MODEL[table].create(**fields)
                self._remember(table, record)
            else:
                for name, value in fields.items():
                    setattr(current, name, value)
                await current.save(update_fields=[f"{name}_id" if name in REFERENCES else name for name in fields])
                record = current
            known = {**row.values, **wanted}
            key = "/".join(str(audit.plain(known[k])) for k in t.SPECS[table].key)
            self.outcome.changes.append(Change(table, key, action, row.place, before))
            await audit.record(actor, ACTION[table], ENTITY[table], record.id,
                               before={k: b for k, (b, _) in before.items()} if action == "update" else None,
                               after={k: a for k, (_, a) in before.items()}, reason=reason)
        await self._store_replacement_readings()
        if self.outcome.changes or self.outcome.readings_stored:
            await audit.record(actor, "ImportPortfolio", "portfolio", self.source[:64], after=self.outcome.counts(),
                               reason=reason)

    def _model_fields(self, table: str, wanted: dict) -> dict:
        out = dict(wanted)
        if "owner" in out:
            out["owner"] = self.owners[out["owner"]]
        if "plant" in out:
            out["plant"] = self.plants[out["plant"]]
        if "replaces" in out:
            out["replaces"] = self.meters[out["replaces"]]
        return out

    def _remember(self, table: str, record: Any) -> None:
        if table == "owners":
            self.owners[record.code] = record
        elif table == "staff":
            self.staff[record.code] = record
        elif table == "plants":
            self.plants[record.code] = record
        elif table == "meters":
            self.meters[record.serial] = record

    async def _store_replacement_readings(self) -> None:
        from settlement.readings.ingest import RowStatus, ingest_readings

        rows, names = [], []
        for row, wanted in self.replacements:
            for column, serial in (("final_readings", row.values["old_meter"]), ("first_readings", row.values["new_meter"])):
                for register, value in row.values[column].items():
                    rows.append({"meter": serial, "register": register, "read_at": wanted["replaced_at"],
                                 "value": str(value)})
                    names.append(f"{row.place}: {column} {register}")
        if not rows:
            return
        result = await ingest_readings(rows, source=ReadingSource.IMPORTED, received_from=f"import:{self.source}"[:64],
                                       row_names=names)
        refused = [t.RowError(names[r.index].split(": ")[0], None, r.error.message)
                   for r in result.results if r.status == RowStatus.REJECTED]
        if refused:
            raise _Refused(refused)
        self.outcome.readings_stored = sum(r.status == RowStatus.CREATED for r in result.results)


class _WithCodes:
    """A stored record seen with its references as codes (a plant's owner code, a meter's plant
    code), so it compares with a row field by field."""

    def __init__(self, record: Any, **codes: Any):
        self.record, self._codes = record, codes

    def __getattr__(self, name: str) -> Any:
        if name in self._codes:
            return self._codes[name]
        return getattr(self.__dict__["record"], name)

    def __bool__(self) -> bool:
        return self.record is not None


MODEL = {"staff": Staff, "owners": Owner, "tariffs": Tariff, "plants": Plant, "meters": Meter,
         "meter_replacements": Meter, "contracts": Contract, "nearby_terms": NearbyConsumptionTerms}
REFERENCES = ("owner", "plant", "replaces")
ACTION = {"staff": "ImportStaff", "owners": "ImportOwner", "tariffs": "ImportTariff", "plants": "ImportPlant",
          "meters": "ImportMeter", "meter_replacements": "ReplaceMeter", "contracts": "ImportContract",
          "nearby_terms": "ImportNearbyTerms"}
ENTITY = {"staff": "staff", "owners": "owner", "tariffs": "tariff", "plants": "plant", "meters": "meter",
          "meter_replacements": "meter", "contracts": "contract", "nearby_terms": "nearby_terms"}


async def import_portfolio(tables: dict[str, Table], *, staff: Staff | None, source: str,
                           check: bool = False) -> Outcome:
    """Import the portfolio's ``tables`` (:func:`settlement.portfolio.sheets.read`).

    Parameters
    ----------
    tables : dict of str to Table
        By table name; tables left out are not touched.
    staff : Staff or None
        Who imports: an active admin. None only while the database has no staff at all.
    source : str
        The file or folder's name, for the audit trail and the readings' ``received_from``.
    check : bool
        Report what the import would do, store nothing.

    Returns
    -------
    Outcome
        ``errors`` (each with its place) and nothing stored, or the changes made (or that would
        be made) and the count of unchanged rows per table.

    Raises
    ------
    Forbidden
        ``staff`` is not an active admin, or is None while staff exist.
    """
    if staff is None:
        if await Staff.exists():
            raise Forbidden("name the staff member who imports (an active admin): only a database with no staff "
                            "at all imports without one", code="role_required")
    elif not staff.active or staff.role != StaffRole.ADMIN:
        raise Forbidden(f"staff {staff.id} may not import a portfolio (needs an active admin)", code="role_required")
    work = _Import(tables, source)
    work.parse()
    await work.load()
    work.plan_staff_and_owners()
    work.plan_tariffs()
    work.plan_plants()
    work.plan_meters()
    work.plan_replacements()
    work.plan_contracts()
    work.plan_nearby()
    outcome = work.outcome
    if outcome.errors:
        return outcome
    try:
        async with in_transaction():
            await work.store(audit.actor_of(staff))
            if check:
                raise _CheckOnly
    except _CheckOnly:
        return outcome
    except _Refused as exc:
        return Outcome(errors=exc.errors)
    outcome.stored = True
    return outcome


def describe(outcome: Outcome) -> Iterable[str]:
    """Lines for people: each error, or each change and the counts."""
    if outcome.errors:
        yield from (str(e) for e in outcome.errors)
        return
    for change in outcome.changes:
        shown = ", ".join(f"{k}: {audit.plain(b)!s} → {audit.plain(a)!s}" if change.action == "update"
                          else f"{k}={audit.plain(a)!s}" for k, (b, a) in change.fields.items()
                          if k != "document")
        yield f"{change.place}: {change.action} {change.table} {change.key}{': ' + shown if shown else ''}"
