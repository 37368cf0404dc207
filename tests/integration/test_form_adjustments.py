"""An adjusted form and its bill say they were adjusted: what, from what to what, who, when and
why — on the printable form and e-bill, in /api/v1/forms/{id}, as the audit trail recorded it
(#23 point 5). The adjustments are made as staff make them, by the bot's 调整."""

from __future__ import annotations

import datetime as dt
import io
from urllib.parse import urlsplit

from pypdf import PdfReader

from settlement.billing import bills
from settlement.cycles import forms
from settlement import models as m
from settlement.clock import LOCAL
from tests.integration.bot_support import *  # noqa: F403
from tests.integration.bot_support import ADMIN, OPERATOR, Bot, november_cycle

def _when(at: dt.datetime, lang: str) -> str:
    """An adjustment's time as the printed pages give it: local to the plants, to the minute."""
    local = at.astimezone(LOCAL)
    day = f"{local.year}年{local.month}月{local.day}日" if lang == "zh" else local.date().isoformat()
    return f"{day} {local:%H:%M}"


def _block(page: str) -> str:
    """The adjustments block of a printable page's HTML."""
    start = page.index('id="adjustments"')
    return page[start:page.index("</section>", start)]


async def _pdf_text(bot_app, url: str) -> str:
    """The text of the PDF of the printable page at ``url`` (``/e/…/<id>.pdf``)."""
    parts = urlsplit(url)
    pdf = await bot_app.get(parts.path + ".pdf?" + parts.query)
    assert pdf.status == 200 and pdf.content_type == "application/pdf"
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(await pdf.read())).pages)
    return " ".join(text.split())  # a table cell wraps where it likes: 2026年12月4日⏎10:07


async def _owner_session(bot_app, fake_wechat, people, mp_appid: str) -> dict[str, str]:
    await m.WechatIdentity.create(app_id=mp_appid, openid="o-mp-owner-e1", owner=people["owner"])
    code = fake_wechat.register_login_code(mp_appid, "o-mp-owner-e1")
    resp = await bot_app.post("/api/v1/session", json={"code": code})
    assert resp.status == 201
    return {"Authorization": f"Bearer {(await resp.json())['token']}"}


async def _page(bot_app, url: str) -> str:
    parts = urlsplit(url)
    resp = await bot_app.get(parts.path + "?" + parts.query)
    assert resp.status == 200
    return await resp.text()


async def test_an_adjusted_form_and_its_bill_show_each_adjustment(bot: Bot, bot_app, fake_wechat, people,
                                                                   wechat_settings, notify_apps):
    cycle = await november_cycle(people, apps=notify_apps)
    assert "第 2 版" in (await bot.say(OPERATOR, "调整 PV-E1 PV-E1-G 00010200 690 原因 峰段读数复核")).text
    assert "第 3 版" in (await bot.say(ADMIN, "调整 PV-E1 电量 发电 峰 1234.5 原因 电表故障，按逆变器估算")).text
    form = await m.ConfirmationForm.get(cycle=cycle, version=3)

    adjustments = await forms.adjustments_of(form)
    assert [(a.version, a.kind, a.field, a.by, a.reason) for a in adjustments] == [
        (2, "reading", "PV-E1-G 00010200 current", people["operator"].name, "峰段读数复核"),
        (3, "energy", "generation.peak", people["admin"].name, "电表故障，按逆变器估算")]
    assert adjustments[1].after == "1234.500" and adjustments[1].before is not None
    assert adjustments[0].after == "690.0000"
    events = await m.AuditEvent.filter(action__in=("AdjustForm", "AdjustEnergy")).order_by("id")
    assert [a.at for a in adjustments] == [e.at for e in events]
    # version 2 shows only what made it; version 1 shows nothing
    v2 = await m.ConfirmationForm.get(cycle=cycle, version=2)
    assert [a.version for a in await forms.adjustments_of(v2)] == [2]
    assert await forms.adjustments_of(await m.ConfirmationForm.get(cycle=cycle, version=1)) == []

    # the mini-program's view of the form
    headers = await _owner_session(bot_app, fake_wechat, people, wechat_settings.mp_appid)
    resp = await bot_app.get(f"/api/v1/forms/{form.id}", headers=headers)
    assert resp.status == 200
    detail = await resp.json()
    assert [(a["version"], a["kind"], a["field"], a["after"], a["by"], a["reason"]) for a in detail["adjustments"]] == [
        (2, "reading", "PV-E1-G 00010200 current", "690.0000", people["operator"].name, "峰段读数复核"),
        (3, "energy", "generation.peak", "1234.500", people["admin"].name, "电表故障，按逆变器估算")]
    assert dt.datetime.fromisoformat(detail["adjustments"][0]["at"]) == adjustments[0].at

    # the printable form, in both languages, with when each adjustment was made
    times = {lang: [_when(a.at, lang) for a in adjustments] for lang in ("zh", "en")}
    block = _block(await _page(bot_app, detail["ebill_url"]))
    for text in ("调整记录", "峰段读数复核", "电表故障，按逆变器估算", people["operator"].name, people["admin"].name,
                 "发电量 峰 (kWh)", "1,234.500", "PV-E1-G 00010200 峰 本次示数", "690", "v2", "v3", "调整时间",
                 *times["zh"]):
        assert text in block, text
    english = await _page(bot_app, detail["ebill_url"] + "&lang=en")
    assert "Adjustments" in english and "Generation Peak (kWh)" in english and "current reading" in english
    for text in times["en"]:
        assert text in _block(english), text
    # the form's PDF, drawn from the same view: the times are read after the block's heading, not
    # from the form's own sent time above it (the adjusted version was sent the minute it was made)
    text = await _pdf_text(bot_app, detail["ebill_url"])
    text = text[text.index("调整记录"):]
    for words in ("峰段读数复核", "电表故障，按逆变器估算", people["admin"].name, "v2", "v3", *times["zh"]):
        assert words in text, words
    text = await _pdf_text(bot_app, detail["ebill_url"] + "&lang=en")
    text = text[text.index("Adjustments"):]
    for words in times["en"]:
        assert words in text, words

    # the bill of the confirmed form says it too
    await forms.confirm_form(form.id, staff=people["operator"])
    assert await bills.issue_bills("2026-11", apps=notify_apps) == 1
    bill = await m.Bill.get(form_id=form.id)
    resp = await bot_app.get(f"/api/v1/bills/{bill.id}", headers=headers)
    bill_url = (await resp.json())["ebill_url"]
    page = await _page(bot_app, bill_url)
    for words in ("电表故障，按逆变器估算", people["admin"].name, *times["zh"]):
        assert words in _block(page), words

    # and its PDF
    text = await _pdf_text(bot_app, bill_url)
    text = text[text.index("调整记录"):]
    for words in ("电表故障，按逆变器估算", people["admin"].name, "v3", *times["zh"]):
        assert words in text, words


async def test_a_form_never_adjusted_shows_no_adjustment_block(bot: Bot, bot_app, fake_wechat, people,
                                                               wechat_settings, notify_apps):
    cycle = await november_cycle(people, apps=notify_apps)
    form = await m.ConfirmationForm.get(cycle=cycle, version=1)
    headers = await _owner_session(bot_app, fake_wechat, people, wechat_settings.mp_appid)
    detail = await (await bot_app.get(f"/api/v1/forms/{form.id}", headers=headers)).json()
    assert detail["adjustments"] == []
    assert 'id="adjustments"' not in await _page(bot_app, detail["ebill_url"])
