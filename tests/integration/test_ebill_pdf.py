"""E-bills and confirmation forms as PDF through the whole server: the same signed link as the
page with ``.pdf``, parsed back with pypdf, every amount to the fen, refusals as the page's.

The plant and bill are those of tests/integration/billed_plant.py (figures worked there): lines
4,452.30 + 2,320.50 + 795.60 = 7,568.40 元 (tax 870.70), late fee 91.27, total 7,659.67, paid
3,000.00, credit applied 5.00, owed 4,654.67 元.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pypdf
import pytest
from tortoise.transactions import in_transaction

from server.dispatcher import ebill_signer
from settlement.billing import ebill_links
from settlement.notify import outbox
from settlement import models as m
from settlement.errors import InvalidInput
from settlement.notify.outbox import NotificationContentError
from tests.integration.billed_plant import assert_plain_403s, in_a_day, signed_bill_and_another, walked_plant
from tests.integration.test_notify_support import dispatcher
from tests.integration.wechat_fixtures import *  # noqa: F403
from settlement.clock import UTC, utc_now



def as_pdf(link: str) -> str:
    """A page's signed link as its PDF link (the same query, ``.pdf`` on the path)."""
    parts = urlsplit(link)
    return f"{parts.path}.pdf?{parts.query}"


def pdf_text(body: bytes) -> tuple[str, pypdf.PdfReader]:
    reader = pypdf.PdfReader(io.BytesIO(body))
    return "\n".join(page.extract_text() for page in reader.pages), reader


def has_row(text: str, *cells: str) -> bool:
    """``cells`` one after the other in the text (pypdf gives a table cell per line)."""
    lines = [line.strip() for line in text.splitlines()]
    n = len(cells)
    return any(lines[i:i + n] == list(cells) for i in range(len(lines) - n + 1))


def between(text: str, first: str, last: str) -> list[str]:
    """The lines after the line ``first`` up to the next line ``last`` (stripped): one table's body."""
    lines = [line.strip() for line in text.splitlines()]
    start = lines.index(first)
    return lines[start + 1:lines.index(last, start + 1)]


def yuan(fen: int) -> str:
    """``445230`` as the PDF prints it, ``4,452.30``."""
    return f"{fen // 100:,}.{fen % 100:02d}"


def kwh(value: str | Decimal) -> str:
    return f"{Decimal(value):,.3f}"


RATES = {"sharp": "尖", "peak": "峰", "flat": "平", "valley": "谷"}


def has_reading(text: str, line: dict) -> bool:
    """A reading line of a form (as stored) as a row: meter, register (with its rate's name),
    previous and current dial, multiplier, energy."""
    lines = [row.strip() for row in text.splitlines()]
    rest = [line["previous"], line["current"], str(line["multiplier"]), kwh(line["kwh"])]
    return any(lines[i] == line["meter"] and lines[i + 1].split(" ")[0] == line["register"]
               and lines[i + 2:i + 6] == rest for i in range(len(lines) - 5))


def assert_form_figures(text: str, form: m.ConfirmationForm) -> None:
    """Every reading line and every energy of ``form`` (as stored) is on the PDF."""
    assert len(form.lines) == 15
    for line in form.lines:
        assert has_reading(text, line), line
    keys = ("generation", "self_use", "export", "grid")
    for rate, label in RATES.items():
        assert has_row(text, label, *(kwh(form.periods[rate][k]) for k in keys)), rate
    assert has_row(text, "合计", *(kwh(getattr(form, f"{k}_kwh")) for k in keys))


def fonts(reader: pypdf.PdfReader) -> set[str]:
    names = set()
    for page in reader.pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            names.add(f"{font['/BaseFont']} {font.get('/Encoding')}")
    return names


async def test_bill_pdf_holds_the_bill_number_every_line_and_the_total_to_the_fen(client, settings, notify_apps):
    walked = await walked_plant(apps=notify_apps)
    bill = walked["bill"]
    resp = await client.get(as_pdf(ebill_links.ebill_link("bill", bill.id, in_a_day(), settings.secret_key)))
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/pdf"
    assert resp.headers["Content-Disposition"] == 'inline; filename="bill-202610-PV-E1-1.pdf"'
    assert resp.headers["Cache-Control"] == "private, no-store"  # the link is a credential, as on the page
    body = await resp.read()
    assert body.startswith(b"%PDF-")
    text, reader = pdf_text(body)
    assert reader.metadata.title == "电费账单 202610-PV-E1-1"
    # Chinese in a CID font every reader supplies (no font file needed), and it extracts as Unicode
    assert fonts(reader) == {"/STSong-Light /UniGB-UCS2-H"}
    for words in ("电费账单", "常州某纺织有限公司", "厂房屋顶", "江苏省常州市武进区", "部分缴费", "银行转账",
                  "峰时段自用电量", "应缴金额"):
        assert words in text, words
    assert "202610-PV-E1-1" in text
    # each charge line as the page prints it: description, kWh, unit price, amount, tax
    for row in (("峰时段自用电量", "5,400.000", "0.8245", "4,452.30", "512.21"),
                ("平时段自用电量", "4,200.000", "0.5525", "2,320.50", "266.96"),
                ("谷时段自用电量", "2,400.000", "0.3315", "795.60", "91.53")):
        assert has_row(text, *row), row
    assert has_row(text, "电费小计", "7,568.40", "870.70")  # energy subtotal and its tax
    assert has_row(text, "违约金（至 2026-11-04）", "91.27")
    for row in (("账单合计", "7,659.67 元"), ("其中增值税", "870.70 元"), ("已缴金额", "3,000.00 元"),
                ("账户余额抵扣", "5.00 元"), ("应缴金额", "4,654.67 元")):
        assert has_row(text, *row), row
    assert has_row(text, "2026年10月20日 15:00", "银行转账", "BANK-PV-E1-1020", "3,000.00")
    # and the readings and energies of its form
    assert has_row(text, "发电表", "PV-E1-G", "00010200 峰", "300.0000", "600.0000", "20", "6,000.000")
    assert has_row(text, "合计", "14,000.000", "12,000.000", "2,000.000", "8,000.000")

    # the same against the bill as stored: its number where the number goes, each of its lines
    # (and no other) in its table to the fen, its totals
    assert has_row(text, "账单编号", bill.number) and bill.number == "202610-PV-E1-1"
    lines = await m.BillLine.filter(bill_id=bill.id).order_by("seq")
    assert [(line.kind, line.amount_fen) for line in lines] == [
        ("energy", 445230), ("energy", 232050), ("energy", 79560), ("late_fee", 9127)]
    assert sum(line.amount_fen for line in lines) == bill.total_fen == 765967
    energy = [line for line in lines if line.kind == "energy"]
    assert between(text, "其中税额 (元)", "电费小计") == [
        cell for line in energy
        for cell in (line.description, kwh(line.kwh), f"{line.unit_price:.4f}", yuan(line.amount_fen),
                     yuan(line.tax_fen))]
    assert has_row(text, "电费小计", yuan(sum(line.amount_fen for line in energy)),
                   yuan(sum(line.tax_fen for line in energy)))
    assert between(text, "违约金", "违约金合计") == ["项目", "金额 (元)"] + [
        cell for line in lines if line.kind == "late_fee" for cell in (line.description, yuan(line.amount_fen))]
    owed = bill.total_fen - bill.paid_fen - bill.credit_applied_fen
    for label, fen in (("账单合计", bill.total_fen), ("已缴金额", bill.paid_fen),
                       ("账户余额抵扣", bill.credit_applied_fen), ("应缴金额", owed)):
        assert has_row(text, label, f"{yuan(fen)} 元"), label
    assert_form_figures(text, await m.ConfirmationForm.get(id=walked["form"].id))


async def test_bill_pdf_in_english_and_the_page_links_to_it(client, settings, notify_apps):
    walked = await walked_plant(apps=notify_apps)
    link = ebill_links.ebill_link("bill", walked["bill"].id, in_a_day(), settings.secret_key)
    html = await (await client.get(link)).text()
    found = re.search(r'<a href="([^"]+)" type="application/pdf" id="pdf-link">PDF</a>', html)
    assert found.group(1).replace("&amp;", "&") == as_pdf(link)
    english = await (await client.get(link + "&lang=en")).text()
    pdf_link = re.search(r'<a href="([^"]+)" type="application/pdf"', english).group(1).replace("&amp;", "&")
    assert pdf_link == as_pdf(link) + "&lang=en"

    resp = await client.get(pdf_link)
    assert resp.status == 200 and resp.headers["Content-Type"] == "application/pdf"
    text, reader = pdf_text(await resp.read())
    assert reader.metadata.title == "Electricity bill 202610-PV-E1-1"
    assert has_row(text, "Peak self-use energy", "5,400.000", "0.8245", "4,452.30", "512.21")
    assert has_row(text, "Late fee (through 2026-11-04)", "91.27")
    assert has_row(text, "Bill total", "7,659.67 yuan")
    assert has_row(text, "Amount owed", "4,654.67 yuan")
    for words in ("partly paid", "常州某纺织有限公司"):
        assert words in text, words


async def test_form_pdf_holds_readings_and_energies(client, settings, notify_apps):
    walked = await walked_plant(apps=notify_apps)
    form = walked["form"]
    resp = await client.get(as_pdf(ebill_links.ebill_link("form", form.id, in_a_day(), settings.secret_key)))
    assert resp.status == 200 and resp.headers["Content-Type"] == "application/pdf"
    assert resp.headers["Content-Disposition"] == 'inline; filename="form-2026-10-PV-E1-v1.pdf"'
    text, reader = pdf_text(await resp.read())
    assert reader.metadata.title == "电量确认单 2026-10-PV-E1-v1"
    for words in ("电量确认单", "v1", "已确认", "常州某纺织有限公司"):
        assert words in text, words
    # which form it is, on every page and in its facts
    for number, page in enumerate(reader.pages, 1):
        assert page.extract_text().splitlines()[0].strip() == f"2026-10-PV-E1-v1 · {number}"
    for row in (("电站编号", "PV-E1"), ("结算月份", "2026-10"), ("版本", "v1"), ("状态", "已确认")):
        assert has_row(text, *row), row
    assert has_row(text, "PV-E1-N", "00020000 总", "500.0000", "600.0000", "20", "2,000.000")
    assert has_row(text, "峰", "6,000.000", "5,400.000", "600.000", "2,000.000")
    assert has_row(text, "合计", "14,000.000", "12,000.000", "2,000.000", "8,000.000")
    # every reading line and every energy of the form as stored
    assert_form_figures(text, await m.ConfirmationForm.get(id=form.id))


async def test_pdf_links_are_refused_as_the_pages_are(client, settings, notify_apps):
    key = settings.secret_key
    signed = await signed_bill_and_another(key, notify_apps)
    bill, other, good, exp, sig = signed.bill, signed.other, signed.link, signed.exp, signed.sig
    forged = signed.forged_sig
    refused = {
        "forged signature": f"/e/bill/{bill.id}.pdf?exp={exp}&sig={forged}",
        "signed with another key": as_pdf(ebill_links.ebill_link("bill", bill.id, in_a_day(), "x" * 40)),
        "expired": as_pdf(ebill_links.ebill_link("bill", bill.id, utc_now() - dt.timedelta(seconds=1), key)),
        "expiry pushed out": f"/e/bill/{bill.id}.pdf?exp={int(exp) + 86400}&sig={sig}",
        "another bill's id": f"/e/bill/{other.id}.pdf?exp={exp}&sig={sig}",
        "a form's signature on a bill": as_pdf(ebill_links.ebill_link("form", bill.id, in_a_day(), key))
        .replace("/e/form/", "/e/bill/"),
        "a bill's signature on a form": f"/e/form/{bill.id}.pdf?exp={exp}&sig={sig}",
        "no signature": f"/e/bill/{bill.id}.pdf?exp={exp}",
        "nothing": f"/e/bill/{bill.id}.pdf",
    }
    await assert_plain_403s(client, refused, ("7,659.67", "4,654.67", "常州某纺织有限公司", "PV-E1", "%PDF"))
    assert "链接已过期" in await (await client.get(refused["expired"])).text()
    resp = await client.get(as_pdf(ebill_links.ebill_link("bill", 999_999, in_a_day(), key)))
    assert resp.status == 404 and resp.headers["Content-Type"].startswith("text/html")
    for path in (f"/e/bill/{bill.id}.PDF?exp={exp}&sig={sig}", f"/e/bill/{bill.id}.pdf.pdf?exp={exp}&sig={sig}",
                 f"/e/bill/{bill.id}.html?exp={exp}&sig={sig}"):
        assert (await client.get(path)).status == 404, path
    assert (await client.get(as_pdf(good))).status == 200


async def test_markup_in_names_is_text_in_the_pdf(client, settings, notify_apps):
    """reportlab's Paragraph reads a little markup: names from outside must come out as written."""
    walked = await walked_plant(owner_name='<b>大</b> & <font size="40">公司</font> <para>', apps=notify_apps)
    resp = await client.get(as_pdf(ebill_links.ebill_link("bill", walked["bill"].id, in_a_day(), settings.secret_key)))
    assert resp.status == 200
    text, _ = pdf_text(await resp.read())
    assert '<b>大</b> & <font size="40">公司</font> <para>' in text


async def test_the_bill_notification_links_to_the_pdf(client, settings, fake_wechat, wechat_api, wechat_redis,
                                                      notify_apps):
    """BillIssued on the official account carries the bill's signed PDF link, signed when sent."""
    walked = await walked_plant(apps=notify_apps)
    bill = walked["bill"]
    await m.WechatIdentity.create(app_id=settings.oa_appid, openid="oa-owner-pdf", owner_id=bill.owner_id)
    async with in_transaction() as conn:
        assert await outbox.bills_issued([bill], using_db=conn, apps=notify_apps) == 1
    row = await m.OutboxMessage.get(template="bill_issued")
    assert row.payload["url"] == f"/e/bill/{bill.id}.pdf"  # the row keeps the path, never a signature
    await dispatcher(wechat_api, wechat_redis, settings, sign_link=ebill_signer(settings)).run_once()

    [sent] = fake_wechat.sent
    assert (sent.kind, sent.touser) == ("template", "oa-owner-pdf")
    link = urlsplit(sent.url)
    assert f"{link.scheme}://{link.netloc}" == f"http://{settings.host}:{settings.port}"
    assert link.path == f"/e/bill/{bill.id}.pdf"
    query = {k: v[0] for k, v in parse_qs(link.query).items()}
    ebill_links.verify_link("bill", bill.id, query["exp"], query["sig"], settings.secret_key)  # raises if forged
    resp = await client.get(link.path, params=query)
    assert resp.status == 200 and resp.headers["Content-Type"] == "application/pdf"
    text, _ = pdf_text(await resp.read())
    assert has_row(text, "账单编号", "202610-PV-E1-1") and has_row(text, "应缴金额", "4,654.67 元")


def test_the_form_notification_names_the_form_pdf():
    fields = outbox.render("form_sent", {"plant_name": "厂房屋顶", "period": "2026-10", "self_use_kwh": "12000.000",
                                         "answer_by": dt.datetime(2026, 11, 20, 4, tzinfo=UTC), "form_id": 7})
    assert fields["url"] == "/e/form/7.pdf" and fields["page"] == "pages/forms/detail?id=7"


def test_only_e_bill_paths_are_signed_for_notifications(settings):
    assert ebill_links.sign_path("/e/form/3", "k" * 40).startswith("/e/form/3?exp=")
    assert ebill_links.sign_path("/e/bill/3.pdf", "k" * 40).startswith("/e/bill/3.pdf?exp=")
    for bad in ("/e/bill/3.pdf?exp=1", "/api/v1/bills/3", "https://evil.example/e/bill/3", "/e/bill/x",
                "/e/receipt/3", "/e/bill/3.pdf.pdf"):
        with pytest.raises(InvalidInput):
            ebill_links.sign_path(bad, "k" * 40)
    with pytest.raises(NotificationContentError):
        outbox.render("bill_issued", {"bill_number": "1", "plant_name": "站", "total_fen": 1, "owed_fen": 1,
                                      "due_on": dt.date(2026, 12, 1), "bill_id": "3.pdf?https://evil.example/"})
