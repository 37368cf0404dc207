"""Nearby-consumption fees on the bill of a project whose contract says the owner bears them
(Contract.owner_bears_nearby_fees, issue #24 point 4), to the fen, against the staff's monthly report.

The plant is the walked plant of tests/integration/billed_plant.py (cycle 2026-10, grid-drawn
8 000 kWh, energy lines 7 568.40 元, VAT 13 % included) with these terms from 2026-01-01::

    T&D price 0.1987 yuan/kWh, average load rate 0.4321, grid-connection capacity 630.5 kVA,
    capacity charge under current policy 9 456.00 元, system operation fee 0.029127 yuan/kWh,
    wire-loss price 0.013579 yuan/kWh

Fee lines (VAT included, so the tax is amount × 13 / 113, half up)::

    current policy                                         945 600 fen   tax 108 785.84 → 108 786
    630.5 kVA × 0.4321 × 730 h = 198 880.5065 kWh (198 880.507 shown)
        × 0.1987 = 39 517.556 641 55 元 → 3 951 756 fen                  tax 454 626.80 → 454 627
    system operation 8 000 kWh × 0.029127 = 233.016 元 → 23 302 fen       tax 2 680.76 → 2 681
    wire loss        8 000 kWh × 0.013579 = 108.632 元 → 10 863 fen       tax 1 249.73 → 1 250

Bill before late fees: 756 840 + 945 600 + 3 951 756 + 23 302 + 10 863 = 5 688 361 fen
(56 883.61 元), VAT 87 070 + 108 786 + 454 627 + 2 681 + 1 250 = 654 414 fen (6 544.14 元).
5.00 元 credit applied, 3 000.00 元 paid on 10-20; the late fee on 11-05 for 10 days on the
unpaid principal 5 688 361 − 500 − 300 000 = 5 387 861 fen: × 0.002 × 10 = 107 757.22 → 107 757
fen. Total 5 796 118 fen (57 961.18 元); owed 5 796 118 − 300 000 − 500 = 5 495 618 fen (54 956.18 元).
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from billing_engine.money import PPM
from settlement import models as m
from settlement.billing import ebill_links, nearby, reports
from tests.integration.billed_plant import in_a_day, walked_plant
from tests.integration.miniapp_support import *  # noqa: F403
from tests.integration.miniapp_support import login
from tests.integration.test_ebill_pdf import as_pdf, has_row, pdf_text

TERMS = {"voltage_level": "10kV", "td_price": Decimal("0.1987"), "average_load_rate": Decimal("0.4321"),
         "connection_kva": Decimal("630.5"), "current_capacity_charge": Decimal("9456.00"),
         "system_operation_fee": Decimal("0.029127"), "wire_loss_price": Decimal("0.013579")}
ENERGY = [("energy", 445230, 51221), ("energy", 232050, 26696), ("energy", 79560, 9153)]
# (kind, description, kWh, unit price, amount [fen], tax [fen]) of the fee lines, worked above
FEES = [
    ("capacity", "现行容量电费", None, None, 945600, 108786),
    ("capacity", "容量电费（接网容量 × 平均负荷率 × 月小时数，按输配电价）：630.5 kVA × 0.4321 × 730 h",
     Decimal("198880.507"), Decimal("0.1987"), 3951756, 454627),
    ("system_operation", "系统运行费（下网电量）", Decimal("8000"), Decimal("0.029127"), 23302, 2681),
    ("wire_loss", "线损费用（下网电量）", Decimal("8000"), Decimal("0.013579"), 10863, 1250),
]


async def _lines(bill: m.Bill) -> list[m.BillLine]:
    return await m.BillLine.filter(bill_id=bill.id).order_by("seq")


async def test_a_bill_carries_the_fees_the_owner_bears_to_the_fen_as_the_report_shows_them(db, notify_apps):
    walked = await walked_plant(apps=notify_apps, nearby_terms=TERMS, owner_bears_nearby_fees=True)
    bill = walked["bill"]
    lines = await _lines(bill)
    assert [line.seq for line in lines] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert [(x.kind, x.amount_fen, x.tax_fen) for x in lines[:3]] == ENERGY
    fees = [(x.kind, x.description, x.kwh, x.unit_price, x.amount_fen, x.tax_fen) for x in lines[3:7]]
    assert fees == FEES
    assert (lines[7].kind, lines[7].amount_fen) == ("late_fee", 107757)
    # the total is the sum of the lines, the VAT the sum of theirs; credit and payment as before
    assert bill.total_fen == sum(x.amount_fen for x in lines) == 5688361 + 107757 == 5796118
    assert bill.tax_fen == sum(x.tax_fen for x in lines[:7]) == 654414
    assert (bill.credit_applied_fen, bill.paid_fen, bill.state) == (500, 300000, m.BillState.PARTLY_PAID)
    assert bill.total_fen - bill.paid_fen - bill.credit_applied_fen == 5495618
    # each line is traceable: kWh × unit price is its amount (to the fen)
    for line in lines[4:7]:
        assert int((line.kwh * line.unit_price * 100).quantize(Decimal(1))) == line.amount_fen
    # the audit of the issue names the total with the fees
    issued = await m.AuditEvent.get(action="IssueBill", entity_id=str(bill.id))
    assert (issued.after["total_fen"], issued.after["tax_fen"]) == (5688361, 654414)

    # the staff's report for the same month shows the very same fees
    [row] = (await reports.nearby_report("2026-10")).rows
    assert row["plant_code"] == "PV-E1" and row["grid_kwh"] == Decimal("8000.000")
    assert (row["current_capacity_fen"], row["capacity_added_fen"], row["system_operation_fen"],
            row["wire_loss_fen"]) == tuple(fee[4] for fee in FEES)
    assert row["total_fen"] == sum(x.amount_fen for x in lines[3:7]) == 4931521


async def test_without_the_flag_the_same_plant_gets_no_fee_lines(db, notify_apps):
    walked = await walked_plant(apps=notify_apps, nearby_terms=TERMS, owner_bears_nearby_fees=False)
    bill = walked["bill"]
    lines = await _lines(bill)
    assert [(x.kind, x.amount_fen, x.tax_fen) for x in lines] == ENERGY + [("late_fee", 9127, 0)]
    assert (bill.total_fen, bill.tax_fen) == (765967, 87070)  # billed_plant.py's figures, unchanged
    # the report still shows the project's fees: it is a nearby-consumption project all the same
    [row] = (await reports.nearby_report("2026-10")).rows
    assert row["total_fen"] == 4931521


async def test_the_flag_without_terms_in_force_changes_nothing(db, notify_apps):
    # terms from November are not in force for the October cycle
    walked = await walked_plant(apps=notify_apps, nearby_terms=TERMS, nearby_from=dt.date(2026, 11, 1),
                                owner_bears_nearby_fees=True)
    bill = walked["bill"]
    assert [x.kind for x in await _lines(bill)] == ["energy", "energy", "energy", "late_fee"]
    assert bill.total_fen == 765967


async def test_a_contract_with_prices_without_vat_states_the_fees_without_vat_and_adds_it(db):
    """Published (VAT-included) figures ÷ 1.13, to 1e-6 yuan/kWh or to the fen, half up; VAT × 0.13 added::

        current policy  945 600 / 1.13 = 836 814.16 → 836 814 fen; VAT 108 785.82 → 108 786; 945 600
        T&D 0.1987 / 1.13 = 0.175841 yuan/kWh; 198 880.5065 kWh × 0.175841 = 34 971.347 143 466 5 元
            → 3 497 135 fen; VAT 454 627.55 → 454 628; 3 951 763
        system operation 0.029127 / 1.13 = 0.025776; 8 000 × 0.025776 = 206.208 元 → 20 621 fen;
            VAT 2 680.73 → 2 681; 23 302
        wire loss 0.013579 / 1.13 = 0.012017; 8 000 × 0.012017 = 96.136 元 → 9 614 fen;
            VAT 1 249.82 → 1 250; 10 864
    """
    plant = await m.Plant.create(code="PV-X1", name="x", owner=await m.Owner.create(name="x"),
                                 capacity_kwp=Decimal("10"))
    terms = await m.NearbyConsumptionTerms.create(plant=plant, effective_from=dt.date(2026, 1, 1), **TERMS)
    vat = 13 * PPM // 100  # 13 % [ppm]
    fees = nearby.nearby_fees(terms, Decimal("8000"), vat_out_ppm=vat)
    assert (fees.current_capacity_fen, fees.td_price, fees.system_operation_fee, fees.wire_loss_price) == (
        836814, Decimal("0.175841"), Decimal("0.025776"), Decimal("0.012017"))
    lines = nearby.fee_lines(fees, vat_ppm=vat, prices_include_vat=False)
    assert [(x.kind, x.kwh, x.unit_price, x.amount_fen, x.tax_fen) for x in lines] == [
        ("capacity", None, None, 945600, 108786),
        ("capacity", Decimal("198880.507"), Decimal("0.175841"), 3951763, 454628),
        ("system_operation", Decimal("8000.000"), Decimal("0.025776"), 23302, 2681),
        ("wire_loss", Decimal("8000.000"), Decimal("0.012017"), 10864, 1250)]
    # the report's published figures are those of the contract with VAT included
    published = nearby.nearby_fees(terms, Decimal("8000"))
    assert (published.capacity_fen, published.total_fen) == (945600 + 3951756, 4931521)


async def test_the_e_bill_page_and_pdf_show_the_fee_lines_in_chinese_and_english(client, settings, notify_apps):
    walked = await walked_plant(apps=notify_apps, nearby_terms=TERMS, owner_bears_nearby_fees=True)
    link = ebill_links.ebill_link("bill", walked["bill"].id, in_a_day(), settings.secret_key)
    html = await (await client.get(link)).text()
    rows = (("现行容量电费", "", "", "9,456.00", "1,087.86"),
            ("容量电费（接网容量 × 平均负荷率 × 月小时数，按输配电价）：630.5 kVA × 0.4321 × 730 h", "198,880.507",
             "0.1987", "39,517.56", "4,546.27"),
            ("系统运行费（下网电量）", "8,000.000", "0.029127", "233.02", "26.81"),
            ("线损费用（下网电量）", "8,000.000", "0.013579", "108.63", "12.50"))
    for row in rows:
        assert re.search(r"<td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\s*"
                         r"<td class=\"num\">{}</td><td class=\"num\">{}</td>".format(*map(re.escape, row)), html), row
    assert re.search(r"电费小计</td><td class=\"num\">56,883.61</td>\s*<td class=\"num\">6,544.14</td>", html)
    assert 'id="bill-total">57,961.18 元<' in html and 'id="owed">54,956.18 元<' in html

    english = await (await client.get(link + "&lang=en")).text()
    for text in ("Capacity charge under current policy", "9,456.00",
                 "Capacity charge (grid-connection capacity × average load rate × hours per month, at the T&amp;D "
                 "price): 630.5 kVA × 0.4321 × 730 h", "39,517.56",
                 "System operation fee (grid-drawn energy)", "233.02", "Wire-loss cost (grid-drawn energy)", "108.63",
                 'id="bill-total">57,961.18 yuan<', 'id="owed">54,956.18 yuan<'):
        assert text in english, text
    # the subtotal holds the fees too: electricity charges, not energy alone
    assert re.search(r"Electricity charges</td><td class=\"num\">56,883.61</td>\s*<td class=\"num\">6,544.14</td>",
                     english)

    resp = await client.get(as_pdf(link))
    assert resp.status == 200 and resp.headers["Content-Type"] == "application/pdf"
    text, _ = pdf_text(await resp.read())
    assert has_row(text, "现行容量电费", "9,456.00", "1,087.86")
    assert has_row(text, "系统运行费（下网电量）", "8,000.000", "0.029127", "233.02", "26.81")
    assert has_row(text, "线损费用（下网电量）", "8,000.000", "0.013579", "108.63", "12.50")
    assert "39,517.56" in text and "198,880.507" in text
    assert has_row(text, "电费小计", "56,883.61", "6,544.14")
    for row in (("账单合计", "57,961.18 元"), ("其中增值税", "6,544.14 元"), ("应缴金额", "54,956.18 元")):
        assert has_row(text, *row), row
    english_pdf, _ = pdf_text(await (await client.get(as_pdf(link) + "&lang=en")).read())
    assert "System operation fee (grid-drawn energy)" in english_pdf and "233.02" in english_pdf


async def test_the_api_bill_view_lists_the_fee_lines_to_the_fen(api, fake_wechat, settings, notify_apps):
    walked = await walked_plant(apps=notify_apps, nearby_terms=TERMS, owner_bears_nearby_fees=True)
    await m.WechatIdentity.create(app_id=settings.mp_appid, openid="o-nearby", owner=walked["owner"])
    headers = await login(api, fake_wechat, "o-nearby")
    body = await (await api.get(f"/api/v1/bills/{walked['bill'].id}", headers=headers)).json()
    assert body["total_fen"] == 5796118 and body["owed_fen"] == 5495618
    fees = [line for line in body["lines"] if line["kind"] in ("capacity", "system_operation", "wire_loss")]
    assert [(x["kind"], x["description"], x["amount_fen"], x["tax_fen"]) for x in fees] == [
        (kind, description, amount, tax) for kind, description, _, _, amount, tax in FEES]
    assert [(x["kwh"], x["unit_price"]) for x in fees][1:] == [
        ("198880.507", "0.198700"), ("8000.000", "0.029127"), ("8000.000", "0.013579")]
    english = await (await api.get(f"/api/v1/bills/{walked['bill'].id}",
                                   headers={**headers, "Accept-Language": "en"})).json()
    assert [x["description"] for x in english["lines"] if x["kind"] == "wire_loss"] == [
        "Wire-loss cost (grid-drawn energy)"]
