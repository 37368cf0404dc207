"""E-bill pages through the whole server: signed links, amounts to the fen, refusals, escaping, chart.

The plant and its bill are those of tests/integration/billed_plant.py, whose docstring works the
figures by hand: lines 4452.30 + 2320.50 + 795.60 = 7568.40 元 (tax 870.70), late fee 91.27,
total 7659.67, paid 3000.00, credit applied 5.00, owed 4654.67 元.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest

from settlement.billing import ebill_links
from settlement import models as m
from tests.integration.billed_plant import assert_plain_403s, in_a_day, local, signed_bill_and_another, walked_plant
from settlement.clock import UTC, utc_now

BAR = re.compile(r'<rect class="(gen|self)" data-day="([0-9-]+)" data-kwh="([0-9.,]+)" x="[0-9.]+" '
                 r'y="[0-9.]+" width="[0-9.]+" height="([0-9.]+)">')


def bars(html: str) -> dict[tuple[str, str], tuple[str, float]]:
    """``{(class, day): (kWh text, bar height)}`` of the chart's bars."""
    return {(cls, day): (kwh, float(height)) for cls, day, kwh, height in BAR.findall(html)}


def test_links():
    link = ebill_links.ebill_link("bill", 42, dt.datetime(2030, 1, 1, tzinfo=UTC), "k" * 40)
    parts = urlsplit(link)
    query = parse_qs(parts.query)
    assert parts.path == "/e/bill/42" and query["exp"] == ["1893456000"]
    assert query["sig"] == [ebill_links.link_signature("bill", 42, 1893456000, "k" * 40)]
    assert len(query["sig"][0]) == 64
    default = int(parse_qs(urlsplit(ebill_links.ebill_link("form", 1, None, "k" * 40)).query)["exp"][0])
    assert abs(default - (utc_now() + dt.timedelta(days=30)).timestamp()) < 5  # 30 days by default


async def test_bill_page_shows_every_amount_to_the_fen_in_chinese_and_english(client, settings, notify_apps):
    walked = await walked_plant(apps=notify_apps)
    bill = walked["bill"]
    link = ebill_links.ebill_link("bill", bill.id, in_a_day(), settings.secret_key)

    resp = await client.get(link)
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
    assert resp.headers["Cache-Control"] == "private, no-store"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    html = await resp.text()
    assert '<html lang="zh-CN">' in html and "电费账单" in html
    for text in ("常州某纺织有限公司", "厂房屋顶", "PV-E1", "2026-10", "2026年9月1日 – 2026年9月30日",
                 "202610-PV-E1-1", "部分缴费", "2026年10月25日"):
        assert text in html, text
    # the lines: description, kWh, unit price, amount, tax
    for row in (("峰时段自用电量", "5,400.000", "0.8245", "4,452.30", "512.21"),
                ("平时段自用电量", "4,200.000", "0.5525", "2,320.50", "266.96"),
                ("谷时段自用电量", "2,400.000", "0.3315", "795.60", "91.53")):
        assert re.search(r"<td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\s*"
                         r"<td class=\"num\">{}</td><td class=\"num\">{}</td>".format(*map(re.escape, row)), html), row
    assert re.search(r"电费小计</td><td class=\"num\">7,568.40</td>\s*<td class=\"num\">870.70</td>", html)
    assert "违约金（至 2026-11-04）</td><td class=\"num\">91.27</td>" in html
    assert 'id="bill-total">7,659.67 元<' in html
    assert 'id="paid">3,000.00 元<' in html
    assert 'id="credit-applied">5.00 元<' in html
    assert 'id="owed">4,654.67 元<' in html
    # the receipt section: the bank transfer of 10-20
    assert "2026年10月20日 15:00</td><td>银行转账</td><td>BANK-PV-E1-1020</td>" \
           "<td class=\"num\">3,000.00</td>" in html
    # what the form holds: meter × register, previous and current reading, multiplier, kWh
    assert re.search(r"<td>PV-E1-G</td><td>00010200 峰</td>\s*<td class=\"num\"[^>]*>300.0000</td>\s*"
                     r"<td class=\"num\"[^>]*>600.0000</td>\s*<td class=\"num\">20</td><td class=\"num\">6,000.000</td>",
                     html)
    assert re.search(r"<td>合计</td><td class=\"num\">14,000.000</td>\s*<td class=\"num\">12,000.000</td>"
                     r"<td class=\"num\">2,000.000</td>\s*<td class=\"num\">8,000.000</td>", html)
    assert "@media print" in html and "<script" not in html  # printable, no JS

    # English: the same signed link with lang=en; the switch links carry the same signature
    switch = re.search(r'<a href="([^"]+)" hreflang="en">English</a>', html).group(1).replace("&amp;", "&")
    assert switch == link + "&lang=en"
    resp = await client.get(switch)
    assert resp.status == 200
    english = await resp.text()
    assert '<html lang="en">' in english and "Electricity bill" in english
    for text in ("Peak self-use energy", "4,452.30", "Valley self-use energy", "Late fee (through 2026-11-04)",
                 'id="bill-total">7,659.67 yuan<', 'id="owed">4,654.67 yuan<', "partly paid", "2026-10-25",
                 "bank transfer", "2026-09-01 – 2026-09-30"):
        assert text in english, text
    assert "中文</a>" in english


async def test_form_page_shows_the_confirmation_form(client, settings, notify_apps):
    walked = await walked_plant(apps=notify_apps)
    resp = await client.get(ebill_links.ebill_link("form", walked["form"].id, in_a_day(), settings.secret_key))
    assert resp.status == 200
    html = await resp.text()
    assert "电量确认单" in html and "v1" in html and "已确认" in html
    assert re.search(r"<td>PV-E1-N</td><td>00020000 总</td>\s*<td class=\"num\"[^>]*>500.0000</td>\s*"
                     r"<td class=\"num\"[^>]*>600.0000</td>\s*<td class=\"num\">20</td><td class=\"num\">2,000.000</td>",
                     html)
    # per rate: generation, self-use, export, grid
    assert re.search(r"<td>峰</td><td class=\"num\">6,000.000</td><td class=\"num\">5,400.000</td>\s*"
                     r"<td class=\"num\">600.000</td><td class=\"num\">2,000.000</td>", html)
    resp = await client.get(ebill_links.ebill_link("form", walked["form"].id, in_a_day(), settings.secret_key) + "&lang=en")
    english = await resp.text()
    assert "Electricity confirmation form" in english and "Grid meter, export" in english and "confirmed" in english


async def test_refused_links_are_a_plain_403_page_and_leak_nothing(client, settings, notify_apps):
    key = settings.secret_key
    signed = await signed_bill_and_another(key, notify_apps)
    bill, other, good, exp, sig = signed.bill, signed.other, signed.link, signed.exp, signed.sig
    forged_sig = signed.forged_sig
    past = utc_now() - dt.timedelta(seconds=1)
    other_exp = int(in_a_day().timestamp())
    refused = {
        "forged signature": f"/e/bill/{bill.id}?exp={exp}&sig={forged_sig}",
        "signed with another key": ebill_links.ebill_link("bill", bill.id, in_a_day(), "x" * 40),
        "expired": ebill_links.ebill_link("bill", bill.id, past, key),
        "expiry pushed out": f"/e/bill/{bill.id}?exp={int(exp) + 86400}&sig={sig}",
        "tampered id": f"/e/bill/{other.id}?exp={exp}&sig={sig}",
        "another bill's signature": f"/e/bill/{bill.id}?" + urlsplit(
            ebill_links.ebill_link("bill", other.id, dt.datetime.fromtimestamp(other_exp, UTC), key)).query,
        "a form's signature on a bill": f"/e/bill/{bill.id}?" + urlsplit(
            ebill_links.ebill_link("form", bill.id, in_a_day(), key)).query,
        "no signature": f"/e/bill/{bill.id}?exp={exp}",
        "nothing": f"/e/bill/{bill.id}",
        "garbage": f"/e/bill/{bill.id}?exp=-1&sig=%3Cscript%3E",
        "long expiry": f"/e/bill/{bill.id}?exp={'9' * 40}&sig={sig}",
    }
    await assert_plain_403s(client, refused, ("7,659.67", "4,654.67", "123.45", "常州某纺织有限公司", "PV-E1",
                                              "PV-OTHER", "厂房屋顶", "Traceback", "error\":", "<script"))
    expired = await (await client.get(refused["expired"])).text()
    assert "链接已过期" in expired
    assert "This link has expired" in await (await client.get(refused["expired"] + "&lang=en")).text()
    assert "链接无效" in await (await client.get(refused["forged signature"])).text()

    # a valid signature on an id that does not exist: 404, still HTML
    resp = await client.get(ebill_links.ebill_link("bill", 999_999, in_a_day(), key))
    assert resp.status == 404 and resp.headers["Content-Type"].startswith("text/html")
    assert "未找到" in await resp.text()
    # anything else under /e is an HTML 404 too, never the JSON error shape
    for path in ("/e/", "/e/bill/abc", "/e/receipt/1"):
        resp = await client.get(path)
        assert resp.status == 404 and resp.headers["Content-Type"].startswith("text/html"), path
    # the good link still works after all that
    assert (await client.get(good)).status == 200


async def test_html_in_an_owner_name_is_escaped(client, settings, notify_apps):
    walked = await walked_plant(owner_name='<script>alert("x")</script><img src=x onerror=alert(1)>', apps=notify_apps)
    await m.Plant.filter(id=walked["plant"].id).update(name="屋顶 & <b>仓库</b>")
    html = await (await client.get(ebill_links.ebill_link("bill", walked["bill"].id, in_a_day(), settings.secret_key))).text()
    assert "<script>" not in html and "<img src=x" not in html and "<b>仓库</b>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert "屋顶 &amp; &lt;b&gt;仓库&lt;/b&gt;" in html


async def test_chart_bars_come_from_day_rollups_and_self_use_from_daily_export_readings(client, settings, notify_apps):
    walked = await walked_plant(apps=notify_apps)
    plant, grid = walked["plant"], walked["grid_meter"]
    day_wh = {dt.date(2026, 9, 3): 412_500, dt.date(2026, 9, 4): 380_000, dt.date(2026, 9, 5): 150_000,
              # outside the cycle (2026-09-01 → 2026-10-01): never drawn
              dt.date(2026, 8, 31): 999_000, dt.date(2026, 10, 1): 999_000}
    await m.TelemetryRollup.bulk_create([
        m.TelemetryRollup(plant=plant, granularity=m.TelemetryGranularity.DAY,
                          bucket_start=local(d.year, d.month, d.day).astimezone(UTC), energy_wh=wh)
        for d, wh in day_wh.items()])
    # a 15-minute rollup is not a day: ignored
    await m.TelemetryRollup.create(plant=plant, granularity=m.TelemetryGranularity.QUARTER_HOUR,
                                   bucket_start=local(2026, 9, 6, 12).astimezone(UTC), energy_wh=25_000)
    # daily freeze readings of the grid meter's export register at local midnight: 510.00, 512.50, 515.00
    # export 09-03 = 2.5 × 20 = 50 kWh, 09-04 = 50 kWh; 09-05 has no end reading, so no self-use
    await m.Reading.bulk_create([
        m.Reading(meter=grid, register="00020000", read_at=local(2026, 9, day).astimezone(UTC), value=Decimal(v),
                  source=m.ReadingSource.AMI) for day, v in ((3, "510.00"), (4, "512.50"), (5, "515.00"))])

    html = await (await client.get(ebill_links.ebill_link("bill", walked["bill"].id, in_a_day(), settings.secret_key))).text()
    assert "<svg" in html and "</svg>" in html
    found = bars(html)
    assert {k: v[0] for k, v in found.items()} == {
        ("gen", "2026-09-03"): "412.500", ("gen", "2026-09-04"): "380.000", ("gen", "2026-09-05"): "150.000",
        ("self", "2026-09-03"): "362.500", ("self", "2026-09-04"): "330.000"}
    # heights are proportional to the kWh (axis to 500 kWh over 206 units)
    assert found[("gen", "2026-09-03")][1] == pytest.approx(206 * 412.5 / 500, abs=0.01)
    assert found[("self", "2026-09-04")][1] == pytest.approx(206 * 330 / 500, abs=0.01)
    assert "27 天没有发电数据" in html
    assert "（3 天中的 2 天）" in html
    english = await (await client.get(ebill_links.ebill_link("form", walked["form"].id, in_a_day(), settings.secret_key)
                                      + "&lang=en")).text()
    assert len(bars(english)) == 5 and "(2 of 3 days)" in english and "27 days without generation data" in english


async def test_chart_from_lifetime_counters_when_there_is_no_rollup(client, settings, notify_apps):
    walked = await walked_plant(apps=notify_apps)
    plant = walked["plant"]
    inv1 = await m.TelemetryDevice.create(plant=plant, serial="INV-1")
    inv2 = await m.TelemetryDevice.create(plant=plant, serial="INV-2")
    received = dt.datetime(2026, 9, 12, tzinfo=UTC)
    counters = [
        # inverter 1 [Wh]; each difference belongs to the local day its interval starts in
        (inv1, local(2026, 9, 10, 6), 1_000_000),
        (inv1, local(2026, 9, 10, 12), 1_150_000),  # +150 000 on 09-10
        (inv1, local(2026, 9, 10, 18), 1_230_000),  # +80 000
        (inv1, local(2026, 9, 10, 23, 45), 1_230_500),  # +500
        (inv1, local(2026, 9, 11, 0, 15), 1_230_600),  # +100, the interval starts on 09-10
        (inv1, local(2026, 9, 11, 12), 1_300_600),  # +70 000 on 09-11
        (inv1, local(2026, 9, 11, 13), 5_000),  # a reset (drop > 10 %): not negative, not counted
        (inv1, local(2026, 9, 11, 18), 45_000),  # +40 000 from the new value
        (inv1, local(2026, 9, 11, 19), 44_990),  # a small dip is noise: the baseline stays 45 000
        (inv1, local(2026, 9, 11, 20), 45_010),  # +10
        # inverter 2: +20 000 on 09-10
        (inv2, local(2026, 9, 10, 8), 500),
        (inv2, local(2026, 9, 10, 16), 20_500),
        # after the cycle's cut-off: not in this cycle
        (inv2, local(2026, 10, 1, 12), 90_500),
    ]
    await m.TelemetrySample.bulk_create([
        m.TelemetrySample(device=device, ts=when.astimezone(UTC), received_at=received, energy_wh=wh, power_w=0)
        for device, when, wh in counters])
    # a sample without a counter (power only) is not energy: never integrated
    await m.TelemetrySample.create(device=inv1, ts=local(2026, 9, 12, 12).astimezone(UTC), received_at=received,
                                   power_w=50_000, energy_wh=None)

    html = await (await client.get(ebill_links.ebill_link("bill", walked["bill"].id, in_a_day(), settings.secret_key))).text()
    # 09-10: 150 000 + 80 000 + 500 + 100 + 20 000 = 250 600 Wh; 09-11: 70 000 + 40 000 + 10 = 110 010 Wh
    assert {k: v[0] for k, v in bars(html).items()} == {("gen", "2026-09-10"): "250.600",
                                                          ("gen", "2026-09-11"): "110.010"}
    assert "没有逐日自用电量数据" in html  # no daily export readings: self-use not drawn, and said so


async def test_chart_without_any_telemetry_says_so_and_draws_nothing(client, settings, notify_apps):
    walked = await walked_plant(apps=notify_apps)
    html = await (await client.get(ebill_links.ebill_link("bill", walked["bill"].id, in_a_day(), settings.secret_key))).text()
    assert "<svg" in html and bars(html) == {}
    assert "本周期没有逐日发电数据" in html
