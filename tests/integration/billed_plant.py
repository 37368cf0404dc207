"""Plants with forms and bills for the e-bill and report tests.

:func:`walked_plant` takes one plant the real way (readings → cycle run → confirmed form → bill →
payment → late fee), as tests/integration/test_cycle_walkthrough.py does, with figures worked by
hand below. :func:`plain_bill` makes a cycle, form and bill directly, for tests that need many
bills of chosen amounts and due dates. :func:`signed_bill_and_another` is the set-up of the tests
that refuse tampered e-bill links (pages and PDF alike).

The walked plant: 100 kWp, reading day 1, multiplier 20, Jiangsu 2025 TOU shape (VAT included:
peak 0.9700, flat 0.6500, valley 0.3900 yuan/kWh), 85 % of the grid price, due 15 days after issue,
late fee 2 ‰ a day. Cycle 2026-10 runs 2026-09-01 → 2026-10-01 (local).

Energies (Δ dial × 20)::

    rate     generation   export   self-use   grid
    sharp           0         0          0        0
    peak         6000       600       5400     2000
    flat         5000       800       4200     4000
    valley       3000       600       2400     2000
    total       14000      2000      12000     8000

Bill, issued 2026-10-10, due 2026-10-25 (unit price = grid price × 0.85)::

    peak   5400 × 0.8245 = 4452.30 元   tax 445230 × 13/113 = 51221.15 → 51221 fen
    flat   4200 × 0.5525 = 2320.50 元   tax 232050 × 13/113 = 26696.02 → 26696 fen
    valley 2400 × 0.3315 =  795.60 元   tax  79560 × 13/113 =  9153.10 →  9153 fen
    total                 7568.40 元   tax 87070 fen = 870.70 元

5.00 元 of account credit (an earlier overpayment) is applied at issue; 3000.00 元 paid by bank
transfer on 10-20. Late fee on 11-05 for 10-26 … 11-04 (10 days) on the unpaid principal
7568.40 − 5.00 − 3000.00 = 4563.40 元: 456340 × 0.002 × 10 = 9126.8 → 9127 fen = 91.27 元.
Total 7568.40 + 91.27 = 7659.67 元; owed 7659.67 − 3000.00 − 5.00 = 4654.67 元.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from settlement.billing import bills, ebill_links, late_fees
from settlement.cycles import runs as cycles
from settlement.cycles import forms
from settlement import models as m
from settlement.clock import LOCAL, UTC, utc_now
from settlement.notify.outbox import NotifyApps


GEN = ("00010000", "00010100", "00010200", "00010300", "00010400")
REV = ("00020000", "00020100", "00020200", "00020300", "00020400")


def local(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=LOCAL)


# register values [dial units] at 00:00 on the reading day: total, sharp, peak, flat, valley
GENERATION = {local(2026, 9, 1): ("1000.00", "100.00", "300.00", "400.00", "200.00"),
              local(2026, 10, 1): ("1700.00", "100.00", "600.00", "650.00", "350.00")}
EXPORT = {local(2026, 9, 1): ("500.00", "50.00", "150.00", "200.00", "100.00"),
          local(2026, 10, 1): ("600.00", "50.00", "180.00", "240.00", "130.00")}
IMPORT = {local(2026, 9, 1): ("20000.00", "0.00", "8000.00", "7000.00", "5000.00"),
          local(2026, 10, 1): ("20400.00", "0.00", "8100.00", "7200.00", "5100.00")}


async def jiangsu_tariff() -> None:
    """The Jiangsu 2025 TOU tariff of billing_engine/tariffs as ``jiangsu-2025``, once."""
    if await m.Tariff.exists(code="jiangsu-2025"):
        return
    document = json.loads(resources.files("billing_engine").joinpath("tariffs", "jiangsu-2025.json").read_text())
    await m.Tariff.create(code="jiangsu-2025", name=document["name"], effective_from=dt.date(2025, 6, 1),
                          document=document)


async def walked_plant(code: str = "PV-E1", owner_name: str = "常州某纺织有限公司", *, apps: NotifyApps,
                       nearby_terms: dict | None = None, nearby_from: dt.date = dt.date(2026, 1, 1),
                       owner_bears_nearby_fees: bool = False) -> dict:
    """One plant through cycle 2026-10 to a partly paid bill with a late fee (figures above);
    ``apps`` are the WeChat apps its messages are written for.

    ``nearby_terms`` (NearbyConsumptionTerms fields) make it a nearby-consumption project from
    ``nearby_from``, and ``owner_bears_nearby_fees`` sets its contract's flag: then its bill and late fee
    differ from the figures above (tests/integration/test_bill_nearby_fees.py works them).
    """
    await jiangsu_tariff()
    owner = await m.Owner.create(name=owner_name, kind=m.OwnerKind.COMMERCIAL, tax_id="91320400MA1XXXXXX")
    plant = await m.Plant.create(code=code, name="厂房屋顶", owner=owner, capacity_kwp=Decimal("100"),
                                 reading_day=1, address="江苏省常州市武进区")
    await m.Contract.create(plant=plant, effective_from=dt.date(2026, 1, 1), tariff_code="jiangsu-2025",
                            pricing_model=m.PricingModel.GRID_DISCOUNT, discount=Decimal("0.85"),
                            vat_rate=Decimal("0.13"), prices_include_vat=True, due_days=15,
                            late_fee_rate=Decimal("0.002"), late_fee_rate_cross_year=Decimal("0.003"),
                            auto_confirm_days=7, owner_bears_nearby_fees=owner_bears_nearby_fees)
    if nearby_terms is not None:
        await m.NearbyConsumptionTerms.create(plant=plant, effective_from=nearby_from, **nearby_terms)
    gen = await m.Meter.create(plant=plant, serial=f"{code}-G", kind=m.MeterKind.GENERATION, multiplier=20,
                               registers=list(GEN), installed_on=dt.date(2026, 1, 1))
    grid = await m.Meter.create(plant=plant, serial=f"{code}-N", kind=m.MeterKind.GRID, multiplier=20,
                                registers=list(GEN + REV), installed_on=dt.date(2026, 1, 1))
    rows = []
    for meter, registers, table in ((gen, GEN, GENERATION), (grid, REV, EXPORT), (grid, GEN, IMPORT)):
        for when, values in table.items():
            for register, value in zip(registers, values):
                rows.append(m.Reading(meter=meter, register=register, read_at=when.astimezone(UTC),
                                      value=Decimal(value), source=m.ReadingSource.AMI))
    await m.Reading.bulk_create(rows)
    staff = await m.Staff.create(name="运维小王", role=m.StaffRole.OPERATOR)
    await m.CreditEntry.create(owner=owner, amount_fen=500, reason="overpayment on an earlier bill")

    await cycles.run_cycle("2026-10", code, now=local(2026, 10, 1, 8), apps=apps)
    cycle = await m.ReadingCycle.get(plant=plant, period="2026-10")
    form = await forms.latest_form(cycle.id)
    await forms.confirm_form(form.id, staff=staff, now=local(2026, 10, 5, 9))
    assert await bills.issue_bills("2026-10", plant_code=code, now=local(2026, 10, 10, 10), apps=apps) == 1
    bill = await m.Bill.get(cycle=cycle)
    await bills.record_payment(bill.id, 300000, m.PaymentChannel.BANK_TRANSFER, f"BANK-{code}-1020",
                               staff=staff, paid_at=local(2026, 10, 20, 15), apps=apps)
    await late_fees.accrue_late_fees(dt.date(2026, 11, 5))
    bill = await m.Bill.get(id=bill.id)
    return {"owner": owner, "plant": plant, "cycle": cycle, "form": form, "bill": bill, "staff": staff,
            "grid_meter": grid, "gen_meter": gen}


async def plain_bill(code: str, period: str, *, total_fen: int, paid_fen: int = 0, due_on: dt.date,
                     issued_at: dt.datetime | None = None, state: m.BillState | None = None,
                     energies: tuple[str, str, str, str] = ("0", "0", "0", "0"),
                     form_state: m.FormState = m.FormState.CONFIRMED, owner_name: str = "业主",
                     plant: m.Plant | None = None, kind: m.OwnerKind = m.OwnerKind.COMMERCIAL,
                     paid_at: dt.datetime | None = None) -> dict:
    """A plant (or the given one) with one cycle, a form of the given energies and one bill.

    ``energies`` are generation, self-use, export and grid [kWh]; the bill is one energy line of
    ``total_fen`` (tax 0), with ``paid_fen`` recorded as one payment paid at ``paid_at``
    (default ``issued_at``).
    """
    if plant is None:
        owner = await m.Owner.create(name=owner_name, kind=kind)
        plant = await m.Plant.create(code=code, name=f"{code} 屋顶", owner=owner, capacity_kwp=Decimal("50"))
    starts_at, ends_at = cycles.cycle_span(period, plant.reading_day)
    cycle = await m.ReadingCycle.create(plant=plant, period=period, starts_at=starts_at, ends_at=ends_at)
    gen, self_use, export, grid = (Decimal(x) for x in energies)
    form = await m.ConfirmationForm.create(cycle=cycle, state=form_state, lines=[], periods={},
                                           generation_kwh=gen, self_use_kwh=self_use, export_kwh=export,
                                           grid_kwh=grid)
    issued_at = issued_at or ends_at + dt.timedelta(days=5)
    if state is None:
        state = m.BillState.PAID if paid_fen >= total_fen else \
            m.BillState.PARTLY_PAID if paid_fen else m.BillState.OPEN
    bill = await m.Bill.create(number=f"{period.replace('-', '')}-{code}-1", cycle=cycle, form=form, plant=plant,
                               owner_id=plant.owner_id, state=state, issued_at=issued_at, due_on=due_on,
                               total_fen=total_fen, tax_fen=0, paid_fen=paid_fen)
    await m.BillLine.create(bill=bill, seq=1, kind=m.LineKind.ENERGY, description="自用电量", kwh=self_use,
                            unit_price=Decimal("0.5"), amount_fen=total_fen)
    if paid_fen:
        await m.Payment.create(transaction_id=f"wx-{code}-{period}", channel=m.PaymentChannel.WECHAT, bill=bill,
                               owner_id=plant.owner_id, amount_fen=paid_fen, paid_at=paid_at or issued_at)
    return {"plant": plant, "cycle": cycle, "form": form, "bill": bill}


def in_a_day() -> dt.datetime:
    return utc_now() + dt.timedelta(days=1)


@dataclass
class SignedBill:
    """The walked plant's bill behind a good e-bill link, and another owner's bill: what the tests
    of refused links tamper with."""

    bill: m.Bill
    other: m.Bill
    link: str  # the good link, valid for a day
    exp: str
    sig: str
    forged_sig: str  # the signature with its last character changed


async def signed_bill_and_another(key: str, apps: NotifyApps) -> SignedBill:
    bill = (await walked_plant(apps=apps))["bill"]
    other = (await plain_bill("PV-OTHER", "2026-10", total_fen=12345, due_on=dt.date(2026, 10, 25)))["bill"]
    link = ebill_links.ebill_link("bill", bill.id, in_a_day(), key)
    query = parse_qs(urlsplit(link).query)
    exp, sig = query["exp"][0], query["sig"][0]
    return SignedBill(bill=bill, other=other, link=link, exp=exp, sig=sig,
                      forged_sig=sig[:-1] + ("0" if sig[-1] != "0" else "1"))


async def assert_plain_403s(client, refused: dict[str, str], hidden: tuple[str, ...]) -> None:
    """Each of ``refused`` (what it tries → its path) answers 403 with the plain HTML error page,
    which shows none of ``hidden`` (the bill's figures and names, a traceback, a PDF)."""
    for what, path in refused.items():
        resp = await client.get(path)
        assert resp.status == 403, what
        assert resp.headers["Content-Type"] == "text/html; charset=utf-8", what
        body = await resp.text()
        assert "<h1>" in body, what
        for secret in hidden:
            assert secret not in body, (what, secret)
