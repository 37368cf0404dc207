"""Nearby-consumption (就近消纳) fees of one project for one month: the one place they are worked out.

The staff's monthly fee report (:func:`settlement.billing.reports.nearby_report`) and the bill of a
project whose contract says the owner bears them (``Contract.owner_bears_nearby_fees``,
:func:`settlement.billing.bills.issue_bills`) both take the fees from :func:`nearby_fees`, so the two
cannot disagree; :mod:`billing_engine.capacity` does the arithmetic and the rounding.

Rules written down
------------------
* **Terms.** A project's fees for month ``YYYY-MM`` follow the latest
  :class:`~settlement.models.NearbyConsumptionTerms` version in force on the month's last day
  (:func:`terms_in_force`).
* **Fees.** Monthly capacity charge = capacity charge under current policy + T&D price ×
  average load rate × 730 h × grid-connection capacity; system operation fee and wire-loss cost
  on the grid-drawn kWh of the cycle's final (confirmed or auto-confirmed) form. Each amount is
  rounded once, half up, to fen.
* **VAT.** The terms hold the figures as the price authority publishes them, VAT included. A bill
  whose contract prices include VAT carries the fees as they are and the VAT is the part of them
  (amount × r / (1 + r)). A bill whose contract prices exclude VAT states them without VAT — each
  price divided by (1 + r) to 1e-6 yuan/kWh and the current-policy charge to the fen, half up, as
  the tariff's grid prices are (:func:`settlement.billing.bills.grid_prices`) — and adds the VAT to
  each line, as its energy lines do. The report always shows the published (VAT-included) fees.
* **Lines.** Up to four, each traceable: the capacity charge under current policy (a monthly
  amount, no kWh), the added capacity charge (kWh = capacity × load rate × 730 h, at the T&D
  price), the system operation fee and the wire-loss cost (the grid-drawn kWh at their prices).
  A line of no quantity and no money is left out. The added capacity line's description is
  ``<words>：<figures>``; the figures (``630.5 kVA × 0.4321 × 730 h``) are numbers and units
  only, so the English wording (:func:`settlement.billing.ebill.line_text`) repeats them.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import numpy as np

from billing_engine import capacity, money
from settlement import i18n
from settlement.cycles.runs import parse_period
from settlement.models import BillLine, LineKind, NearbyConsumptionTerms

KWH_PLACES = Decimal("0.001")
FIGURES_SEPARATOR = "："  # between the words and the figures of the added capacity line
LINE_WORDS = {lang: i18n.section("nearby_line", lang) for lang in i18n.LANGUAGES}


def month_end(period: str) -> dt.date:
    """The last local day of month ``period`` (``YYYY-MM``); a bad period is refused (InvalidInput)."""
    year, month = parse_period(period)
    return dt.date(year, month, calendar.monthrange(year, month)[1])


async def terms_in_force(period: str, plant_ids: list[int] | None = None) -> dict[int, NearbyConsumptionTerms]:
    """Each project's NearbyConsumptionTerms in force on the last day of ``period``, by plant id.

    Parameters
    ----------
    period : str
        ``YYYY-MM``.
    plant_ids : list of int, optional
        Only these plants; every plant with terms by default.
    """
    query = NearbyConsumptionTerms.filter(effective_from__lte=month_end(period))
    if plant_ids is not None:
        if not plant_ids:
            return {}
        query = query.filter(plant_id__in=plant_ids)
    terms: dict[int, NearbyConsumptionTerms] = {}
    for t in await query.order_by("effective_from"):
        terms[t.plant_id] = t  # the latest version in force by the month's end wins
    return terms


@dataclass(frozen=True)
class NearbyFees:
    """One project's nearby-consumption fees for one month, in one VAT basis.

    Attributes
    ----------
    terms : NearbyConsumptionTerms
    current_capacity_fen : int [fen]
        Capacity charge under current policy.
    td_price : Decimal [yuan/kWh]
        T&D price of the voltage level, as stated (1e-6 yuan/kWh).
    capacity_kwh : Decimal [kWh]
        Grid-connection capacity × average load rate × 730 h (capacity in kVA taken as kW), exact.
    capacity_added_fen : int [fen]
        ``td_price × capacity_kwh``, rounded once.
    grid_kwh : Decimal or None [kWh]
        Grid-drawn energy of the cycle's final form; None without one.
    system_operation_fee, wire_loss_price : Decimal [yuan/kWh]
        As stated (1e-6 yuan/kWh).
    system_operation_fen, wire_loss_fen : int or None [fen]
        On ``grid_kwh``; None without a final form (never guessed).
    """

    terms: NearbyConsumptionTerms
    current_capacity_fen: int
    td_price: Decimal
    capacity_kwh: Decimal
    capacity_added_fen: int
    grid_kwh: Decimal | None
    system_operation_fee: Decimal
    system_operation_fen: int | None
    wire_loss_price: Decimal
    wire_loss_fen: int | None

    @property
    def capacity_fen(self) -> int:
        """The monthly capacity charge [fen]: current policy + added."""
        return self.current_capacity_fen + self.capacity_added_fen

    @property
    def total_fen(self) -> int | None:
        """All the month's fees [fen]; None while the per-kWh fees are unknown."""
        if self.system_operation_fen is None or self.wire_loss_fen is None:
            return None
        return self.capacity_fen + self.system_operation_fen + self.wire_loss_fen


def _without_vat_price(price: Decimal, vat_ppm: int, where: str) -> Decimal:
    """A published (VAT-included) price [yuan/kWh] without VAT, half up to 1e-6 yuan/kWh."""
    micro = money.price_micro(price, where=where)
    if vat_ppm:
        micro = int(money.round_div(micro * money.PPM, money.PPM + vat_ppm))
    return Decimal(micro).scaleb(-6)


def nearby_fees(terms: NearbyConsumptionTerms, grid_kwh: Decimal | None, *, vat_out_ppm: int = 0) -> NearbyFees:
    """The month's fees of one project under ``terms``.

    Parameters
    ----------
    terms : NearbyConsumptionTerms
        The version in force (:func:`terms_in_force`).
    grid_kwh : Decimal or None [kWh]
        Grid-drawn energy of the cycle's final form; None without one.
    vat_out_ppm : int [ppm], default 0
        VAT rate to take out of the published figures (a contract whose prices exclude VAT);
        0 keeps them as published, VAT included.

    Returns
    -------
    NearbyFees

    Raises
    ------
    billing_engine.errors.PricingError
        Negative or over-precise figures in the terms, negative grid-drawn energy.
    """
    current = money.yuan_to_fen(terms.current_capacity_charge, where="current_capacity_charge")
    if vat_out_ppm:
        current = int(money.round_div(current * money.PPM, money.PPM + vat_out_ppm))
    td = _without_vat_price(terms.td_price, vat_out_ppm, "td_price")
    operation_fee = _without_vat_price(terms.system_operation_fee, vat_out_ppm, "system_operation_fee")
    loss_price = _without_vat_price(terms.wire_loss_price, vat_out_ppm, "wire_loss_price")
    total = int(capacity.capacity_charge_fen(
        [terms.connection_kva], td, terms.average_load_rate,
        current_capacity_charge_fen=np.array([current], dtype=np.int64))[0])
    operation = loss = None
    if grid_kwh is not None:
        grid_kwh = Decimal(grid_kwh)
        # the engine quantizes energy to whole Wh, so the float of a 3-decimal kWh value is exact enough
        operation = int(capacity.system_operation_fee_fen([float(grid_kwh)], operation_fee)[0])
        loss = int(capacity.wire_loss_fen([float(grid_kwh)], loss_price)[0])
    capacity_kwh = Decimal(terms.connection_kva) * Decimal(terms.average_load_rate) * capacity.HOURS_PER_MONTH
    return NearbyFees(terms=terms, current_capacity_fen=current, td_price=td, capacity_kwh=capacity_kwh,
                      capacity_added_fen=total - current, grid_kwh=grid_kwh, system_operation_fee=operation_fee,
                      system_operation_fen=operation, wire_loss_price=loss_price, wire_loss_fen=loss)


def _plain(value: Decimal) -> str:
    return format(Decimal(value).normalize(), "f")


def capacity_figures(fees: NearbyFees) -> str:
    """The added capacity charge's figures, numbers and units only: ``630.5 kVA × 0.4321 × 730 h``."""
    t = fees.terms
    return f"{_plain(t.connection_kva)} kVA × {_plain(t.average_load_rate)} × {capacity.HOURS_PER_MONTH} h"


def fee_lines(fees: NearbyFees, *, vat_ppm: int, prices_include_vat: bool) -> list[BillLine]:
    """A bill's nearby-consumption fee lines (Chinese descriptions), not saved: the caller sets
    ``bill_id`` and ``seq`` (after the energy lines) once the bill exists.

    Parameters
    ----------
    fees : NearbyFees
        Worked out in the contract's VAT basis (``vat_out_ppm`` = the VAT rate when the contract's
        prices exclude VAT) and with the final form's grid-drawn kWh.
    vat_ppm : int [ppm]
        The contract's VAT rate.
    prices_include_vat : bool
        The contract's basis: True, the fees are payable as they are and the VAT is extracted;
        False, the VAT is added to each line.

    Returns
    -------
    list of BillLine (not saved); ``amount_fen`` payable, VAT included, ``tax_fen`` the VAT in it.
    """
    if fees.grid_kwh is None:
        raise ValueError("a bill's nearby-consumption fees need the final form's grid-drawn kWh")
    words = LINE_WORDS["zh"]
    wanted = [
        (LineKind.CAPACITY, words["current_capacity"], None, None, fees.current_capacity_fen),
        (LineKind.CAPACITY, f"{words['capacity_added']}{FIGURES_SEPARATOR}{capacity_figures(fees)}",
         fees.capacity_kwh, fees.td_price, fees.capacity_added_fen),
        (LineKind.SYSTEM_OPERATION, words["system_operation"], fees.grid_kwh, fees.system_operation_fee,
         fees.system_operation_fen),
        (LineKind.WIRE_LOSS, words["wire_loss"], fees.grid_kwh, fees.wire_loss_price, fees.wire_loss_fen),
    ]
    wanted = [w for w in wanted if w[4] or (w[2] is not None and w[2] != 0)]
    amounts, taxes = money.with_vat([w[4] for w in wanted], vat_ppm, included=prices_include_vat)
    return [BillLine(kind=kind, description=description,
                     kwh=None if kwh is None else Decimal(kwh).quantize(KWH_PLACES, rounding=ROUND_HALF_UP),
                     unit_price=price,
                     amount_fen=int(amount), tax_fen=int(tax))
            for (kind, description, kwh, price, _), amount, tax in zip(wanted, amounts, taxes)]


def line_text_en(kind: LineKind, description: str, has_kwh: bool) -> str | None:
    """The English words of a nearby-consumption fee line, or None for another kind of line."""
    words = LINE_WORDS["en"]
    if kind == LineKind.CAPACITY:
        if not has_kwh:
            return words["current_capacity"]
        _, _, figures = description.partition(FIGURES_SEPARATOR)
        return f"{words['capacity_added']}: {figures}" if figures else words["capacity_added"]
    if kind == LineKind.SYSTEM_OPERATION:
        return words["system_operation"]
    if kind == LineKind.WIRE_LOSS:
        return words["wire_loss"]
    return None
