"""Export the portfolio in the import's own tables, so that importing an export changes nothing.

Owners and staff made before they had codes (by ``pvsettle seed``, the demo, older versions) are
written as ``#<id>``, which an import reads as "the record with that id". Tariffs go beside the
CSV files as ``tariffs/<code>@<date>.json``, as written when imported (the project's format or
the URDB record), or inline in the workbook's ``document`` column.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from settlement.clock import LOCAL
from settlement.models import Contract, Meter, NearbyConsumptionTerms, Owner, Plant, Reading, Staff, Tariff
from settlement.portfolio import sheets
from settlement.portfolio.tables import SPECS


def _columns(name: str) -> list[str]:
    return [c.name for c in SPECS[name].columns]


async def _replacement_readings(meter: Meter) -> str:
    """The readings stored for ``meter`` at its ``replaced_at`` or the replaced one's, as register=value."""
    rows = await Reading.filter(meter_id=meter.id, read_at=meter.replaced_at).order_by("register", "revision")
    effective: dict[str, Any] = {}
    for reading in rows:
        effective[reading.register] = reading.value  # the highest revision is last
    return " ".join(f"{register}={sheets.cell_text(value)}" for register, value in effective.items())


async def tables(*, inline_tariffs: bool) -> tuple[list[tuple[str, list[str], list[list[Any]]]], dict[str, str]]:
    """Every table as (name, columns, rows), and the tariff files to write beside them."""
    owners = {o.id: o.code or f"#{o.id}" for o in await Owner.all()}
    plants = {p.id: p.code for p in await Plant.all()}
    meters = {m.id: m for m in await Meter.all().order_by("id")}
    out, files = [], {}

    rows = [[s.code or f"#{s.id}", s.name, s.role, s.active] for s in await Staff.all().order_by("id")]
    out.append(("staff", _columns("staff"), rows))
    rows = [[owners[o.id], o.name, o.kind, o.phone, o.tax_id] for o in await Owner.all().order_by("id")]
    out.append(("owners", _columns("owners"), rows))

    rows = []
    for tariff in await Tariff.all().order_by("code", "effective_from"):
        text = json.dumps(tariff.document, ensure_ascii=False, indent=None if inline_tariffs else 1)
        if inline_tariffs:
            rows.append([tariff.code, tariff.name, tariff.format, None, text])
        else:
            name = f"tariffs/{tariff.code}@{tariff.effective_from.isoformat()}.json"
            files[name] = text + "\n"
            rows.append([tariff.code, tariff.name, tariff.format, name, None])
    out.append(("tariffs", _columns("tariffs"), rows))

    rows = [[p.code, p.name, owners[p.owner_id], p.capacity_kwp, p.address, p.latitude, p.longitude, p.reading_day,
             p.commissioned_on] for p in await Plant.all().order_by("id")]
    out.append(("plants", _columns("plants"), rows))
    rows = [[m.serial, plants[m.plant_id], m.kind, m.multiplier, m.register_digits, " ".join(m.registers),
             m.installed_on, m.removed_on] for m in meters.values()]
    out.append(("meters", _columns("meters"), rows))
    rows = []
    for meter in meters.values():
        if meter.replaces_id is None:
            continue
        old = meters[meter.replaces_id]
        old.replaced_at = meter.replaced_at  # the old meter's final readings are at the same time
        rows.append([old.serial, meter.serial, meter.replaced_at.astimezone(LOCAL).isoformat(),
                     await _replacement_readings(old), await _replacement_readings(meter)])
    out.append(("meter_replacements", _columns("meter_replacements"), rows))

    rows = []
    for c in await Contract.all().order_by("plant_id", "effective_from"):
        rows.append([plants[c.plant_id], c.effective_from, c.tariff_code, c.pricing_model, c.discount, c.floor_price,
                     c.cap_price, c.fixed_price, None if c.tiers is None else json.dumps(c.tiers),
                     c.vat_rate, c.prices_include_vat, c.due_days, c.late_fee_rate, c.late_fee_rate_cross_year,
                     c.auto_confirm_days, c.allow_partial_payment, c.share_export, c.owner_bears_nearby_fees])
    out.append(("contracts", _columns("contracts"), rows))
    names = _columns("nearby_terms")[1:]
    rows = [[plants[n.plant_id], *(getattr(n, name) for name in names)]
            for n in await NearbyConsumptionTerms.all().order_by("plant_id", "effective_from")]
    out.append(("nearby_terms", _columns("nearby_terms"), rows))
    return out, files


async def export_portfolio(path: Path) -> list[Path]:
    """Write the portfolio to ``path``: an .xlsx workbook, or else a folder of CSV files."""
    if path.suffix.lower() == ".xlsx":
        found, _ = await tables(inline_tariffs=True)
        return [sheets.write_workbook(path, found)]
    found, files = await tables(inline_tariffs=False)
    return sheets.write_folder(path, found, files)
