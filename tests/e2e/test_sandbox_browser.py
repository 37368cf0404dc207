"""The sandbox in a real browser: headless Chromium (Debian's ``chromium`` driven by Playwright)
against ``pvsettle demo`` in its own process, as a newcomer runs it.

The owner's month: log in → bind with an invitation code staff issued → watch the live power
change → confirm the form → pay the bill → the bill is paid and the receipt (a subscribe message
the dispatcher sent through the fake WeChat) shows on the phone. Then the staff journey: the
owner disputes the other plant's form, the operator types 调整 in the bot console (real signed
XML to /wechat), and the owner sees form v2.

On every screen, in Chinese and then again in English, no visible text is an internal code: no
snake_case identifier, no subscribe-message template key (``amount3``), no English state or TOU
period in the Chinese UI, no 12-hour time, no big figure without thousands separators
(:func:`_assert_no_codes`). The printable e-bill and e-form, and the sandbox itself, do not
scroll sideways at a 390 px wide phone viewport and their table headings stay on one line
(:func:`_assert_fits_a_phone`). The browser's own locale is en-US on purpose: the UI's language,
not the browser's, decides how numbers and times are written.

A screenshot of each step is kept under ``test-artifacts/sandbox-browser/`` (or
``$PVSETTLE_TEST_ARTIFACTS``); the path is printed. Without ``/usr/bin/chromium`` the test skips,
except in CI (``CI`` set), where it fails: ``.ci/run`` installs chromium.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import struct
import time
import zlib
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.processes import ServerProcess, free_port

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
STEP_TIMEOUT_MS = 30_000


def _chromium() -> str:
    if Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium (ensure_chromium)")
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")


def _artifacts() -> Path:
    folder = Path(os.environ.get("PVSETTLE_TEST_ARTIFACTS") or ROOT / "test-artifacts") / "sandbox-browser"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def _png() -> bytes:
    """A 1 × 1 PNG: the dispute's photo, checked by content on upload."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\x07\xc1\x60")) + chunk(b"IEND", b""))


@pytest.fixture
async def demo(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVSETTLE_")}
    env.update(PVSETTLE_PORT=str(port), PVSETTLE_VAR_DIR=str(tmp_path / "var"))
    server = ServerProcess(["demo", "--plants", "12"], env, tmp_path, port)
    try:
        await server.wait_healthy()
        yield server
    finally:
        assert server.stop(signal.SIGINT) == 0, server.output()


@pytest.fixture
def demo_db(demo, tmp_path) -> Path:
    return tmp_path / "var" / "pvsettle.sqlite3"


def _sun(database: Path, plant_code: str) -> tuple[float, float]:
    """The sun's elevation at the plant's site now, and its highest since local midnight [deg]."""
    import datetime as dt
    import sqlite3

    import numpy as np

    from settlement.telemetry.solar import sun_elevation_deg

    with sqlite3.connect(database) as conn:
        lat, lon = conn.execute("SELECT latitude, longitude FROM plant WHERE code = ?", (plant_code,)).fetchone()
    now = dt.datetime.now(dt.timezone(dt.timedelta(hours=8)))
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    minutes = np.arange(int(midnight.timestamp()), int(now.timestamp()) + 1, 60, dtype=np.int64) * 1_000_000
    elevations = sun_elevation_deg(minutes, float(lat), float(lon))
    return float(elevations[-1]), float(elevations.max())


async def _two_plant_owner(base: str) -> dict:
    """An owner of two plants whose forms the scheduler has sent (its first tick is at start-up)."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/sandbox/api/owners") as response:
            owners = (await response.json())["owners"]
    return next(o for o in owners if len(o["plants"]) >= 2)


# what must never be shown to a person
SNAKE_CASE = re.compile(r"\b[a-z]+(?:_[a-z0-9]+)+\b")
TEMPLATE_KEY = re.compile(r"\b(?:thing|amount|character_string|number|time|date|phrase|keyword)\d+\b")
TWELVE_HOUR = re.compile(r"\b\d{1,2}:\d{2}(?::\d{2})?\s?[AP]M\b")
UNGROUPED = re.compile(r"(?<![\d,.])\d{4,}\.\d+\s*(?:kWh|kW|kWp|元)\b|¥\d{4,}")
# codes the API returns that are English words: in the Chinese UI each is a label missing
CODE_WORDS = re.compile(r"\b(?:online|offline|draft|sent|confirmed|disputed|adjusted|open|paid|superseded|sharp|peak"
                        r"|flat|valley|wechat|counter|viewer|operator|admin)\b")


def _codes_in(text: str, lang: str, *, grouped: bool = True) -> list[str]:
    patterns = (SNAKE_CASE, TEMPLATE_KEY, TWELVE_HOUR) + ((UNGROUPED,) if grouped else ())
    found = [m.group(0) for pattern in patterns for m in pattern.finditer(text)]
    if lang == "zh":
        found += [m.group(0) for m in CODE_WORDS.finditer(text)]
    return found


async def _assert_no_codes(page, where: str, lang: str) -> None:
    """The visible text has no internal code. The phone's messages are what WeChat delivered:
    WeChat's ``amount`` fields take digits only (no separators), so figures there are not grouped."""
    text = await page.evaluate("document.body.innerText")
    inbox = await page.evaluate("document.getElementById('inbox')?.innerText ?? ''")
    codes = _codes_in(text.replace(inbox, ""), lang) + _codes_in(inbox, lang, grouped=False)
    assert not codes, f"{where} ({lang}) shows internal codes {codes}:\n{text}"


PHONE_VIEWPORT = {"width": 390, "height": 844}


async def _assert_fits_a_phone(page, where: str) -> None:
    """No sideways scroll at 390 px, and every table heading on one line."""
    widths = await page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1], f"{where} scrolls sideways at 390 px: scrollWidth {widths[0]} > {widths[1]}"
    broken = await page.evaluate("""[...document.querySelectorAll('th')].filter((th) => {
        if (!th.textContent.trim()) return false;
        const range = document.createRange();
        range.selectNodeContents(th);
        const tops = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
        return tops.size > 1;
      }).map((th) => th.textContent.trim())""")
    assert broken == [], f"{where}: table headings wrap: {broken}"


async def test_an_owner_month_and_a_staff_adjustment_in_the_browser(demo, demo_db):
    from playwright.async_api import async_playwright, expect

    chromium = _chromium()
    shots = _artifacts()
    print(f"\nsandbox screenshots: {shots}")
    started = time.monotonic()
    owner = await _two_plant_owner(demo.base)
    first, second = owner["plants"][0]["code"], owner["plants"][1]["code"]
    errors: list[str] = []

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, headless=True,
                                          args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            # the browser's locale is not the UI's: numbers and times must follow the UI
            context = await browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-US",
                                                timezone_id="America/New_York")
            page = await context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.set_default_timeout(STEP_TIMEOUT_MS)
            expect.set_options(timeout=STEP_TIMEOUT_MS)

            lang = "zh"

            async def shot(name: str) -> None:
                await page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
                await _assert_no_codes(page, name, lang)

            async def printable(link, name: str) -> None:
                """The e-bill or e-form behind ``link``, on a phone: fits, speaks the UI's language."""
                href = await link.get_attribute("href")
                assert f"lang={lang}" in href, href
                phone = await context.new_page()
                await phone.set_viewport_size(PHONE_VIEWPORT)
                await phone.goto(demo.base + href if href.startswith("/") else href)
                await phone.screenshot(path=str(shots / f"{name}.png"), full_page=True)
                await _assert_fits_a_phone(phone, name)
                await _assert_no_codes(phone, name, lang)
                assert await phone.evaluate("document.documentElement.lang") == ("zh-CN" if lang == "zh" else "en")
                await phone.close()

            await page.goto(f"{demo.base}/sandbox/")
            await expect(page.get_by_test_id("user-aming")).to_be_visible()
            await shot("01-sandbox")

            # staff issue an invitation; 阿明 logs in to the mini-program and binds with it
            await page.get_by_test_id(f"invite-{first}").click()
            code = (await page.get_by_test_id("invitation-code").inner_text()).strip()
            assert re.fullmatch(r"[2-9A-Z]{10}", code), code
            await page.get_by_test_id("user-aming").check()
            await page.get_by_test_id("login").click()
            # a wrong code first: refused in words, in the UI's language, the code only on the element
            await page.get_by_test_id("bind-code").fill("WRONG23456")
            await page.get_by_test_id("bind").click()
            await expect(page.get_by_test_id("bind-error")).to_have_text("邀请码无效、已使用或已过期")
            await expect(page.get_by_test_id("bind-error")).to_have_attribute("data-code", "invalid_invitation")
            await page.get_by_test_id("bind-code").fill(code)
            await shot("02-login-and-bind")
            await page.get_by_test_id("bind").click()
            await expect(page.get_by_test_id(f"plant-{first}")).to_be_visible()
            await expect(page.get_by_test_id(f"plant-{second}")).to_be_visible()
            await expect(page.get_by_test_id(f"plant-{first}").get_by_test_id("plant-status")).to_have_text(
                re.compile(r"^(在线|离线|无实时数据)$"))
            await shot("03-bound-plants")

            # the live power (the simulator's samples through the ingest, SSE to the page) follows
            # the real sun at the plant: it moves by day and is 0 at night
            await page.get_by_test_id(f"plant-{first}").click()
            power = page.get_by_test_id("live-power")
            await expect(power).to_have_attribute("data-w", re.compile(r"^\d+$"))  # [W]
            sun_now, sun_today = _sun(demo_db, first)
            if sun_now > 3:
                before = await power.get_attribute("data-w")
                await expect(power).not_to_have_attribute("data-w", before)
                assert int(await power.get_attribute("data-w")) > 0
            elif sun_now < -1:
                await expect(power).to_have_attribute("data-w", "0")
            await expect(power).to_have_text(re.compile(r"^\d{1,3}(,\d{3})*\.\d$"))  # [kW], grouped
            chart = page.get_by_test_id("chart")
            await page.get_by_test_id("span-day").click()  # drawn again, now that the simulator has produced
            await expect(chart).to_have_attribute("data-span", "day")
            if sun_today > 3:  # today: the seeded and simulated energy since sunrise
                await expect(chart).not_to_have_attribute("data-measured", "0")
            await expect(chart).to_have_attribute("data-y-unit", "kWh")  # the y axis says its unit
            await expect(page.get_by_test_id("lifetime")).to_have_text(re.compile(r"^(\d{1,3}(,\d{3})*\.\d{3}|—)$"))
            await expect(page.locator("#clock")).to_have_text(re.compile(r"^\d{2}:\d{2}:\d{2}$"))  # 24 h, not PM
            await shot("04-live-power-and-day-chart")
            for span in ("month", "year"):
                await page.get_by_test_id(f"span-{span}").click()
                await expect(chart).to_have_attribute("data-span", span)
                # the seeded days' energy, rolled up when the demo started
                await expect(chart).not_to_have_attribute("data-measured", "0")
            await shot("05-year-chart")

            # confirm the form of the first plant; the scheduler bills it within a tick
            await page.get_by_test_id("tab-forms").click()
            await page.get_by_test_id(f"form-{first}-v1").click()
            await expect(page.locator("[data-testid=form] td[data-rate=peak]")).to_have_text("峰")
            await printable(page.get_by_test_id("form-ebill"), "06a-eform-390px")
            await page.get_by_test_id("form-confirm").click()
            await expect(page.locator("[data-testid=form] .state.confirmed")).to_be_visible()
            await shot("06-form-confirmed")
            await page.get_by_test_id("tab-bills").click()
            deadline = time.monotonic() + 30
            while not await page.get_by_test_id(f"bill-{first}").count():
                assert time.monotonic() < deadline, "no bill within 30 s of confirming"
                await page.wait_for_timeout(1000)
                await page.get_by_test_id("tab-bills").click()
            await page.get_by_test_id(f"bill-{first}").click()
            # the phone's bill: unit prices, the contract's discount, the printable e-bill
            await expect(page.get_by_test_id("bill-unit-price").first).to_have_text(re.compile(r"^\d+\.\d{4}$"))
            await expect(page.get_by_test_id("bill-discount")).to_contain_text("电网电价 × 0.")
            await shot("07-bill-open")
            await printable(page.get_by_test_id("bill-ebill"), "07a-ebill-390px")
            bill_href = await page.get_by_test_id("bill-ebill").get_attribute("href")
            assert bill_href.startswith(f"{demo.base}/e/bill/"), bill_href  # absolute, as the bot's (#23 point 8)

            # pay: the fake WeChat Pay signs and encrypts its notification to /pay/notify
            await page.get_by_test_id("bill-pay").click()
            await expect(page.locator("[data-testid=bill] .state.paid")).to_be_visible()
            await expect(page.get_by_test_id("bill-owed")).to_have_text("¥0.00")
            await shot("08-bill-paid")
            receipt = page.locator("[data-testid=message][data-template=payment_received]")
            await expect(receipt).to_have_count(1)
            await expect(receipt).to_contain_text("缴费成功通知")
            await expect(receipt).to_contain_text(owner["plants"][0]["name"][:10])
            await expect(receipt).to_contain_text(f"-{first}-1")  # the bill's number
            # each field under the label its template gives it, not thing3 / amount1
            for label in ("缴费金额：¥", "账单编号：", "电站名称：", "缴费时间：", "尚欠金额：¥0.00"):
                await expect(receipt).to_contain_text(label)
            issued = page.locator("[data-testid=message][data-template=bill_issued]")
            await expect(issued).to_have_count(1)
            for label in ("电费账单通知", "账单金额：¥", "应缴金额（扣除余额抵扣）：¥", "缴费截止日："):
                await expect(issued).to_contain_text(label)
            await expect(receipt.locator(".kind")).to_have_text(re.compile(r"· \d{2}:\d{2}:\d{2}$"))
            await shot("09-receipt-on-the-phone")

            # the staff journey: dispute → 调整 by the operator in the bot console → form v2
            await page.get_by_test_id("tab-forms").click()
            await page.get_by_test_id(f"form-{second}-v1").click()
            # a dispute without its reason is refused in words (the API's own check, not the page's)
            await page.get_by_test_id("form-dispute").click()
            await expect(page.get_by_test_id("toast")).to_have_text("请求内容有误：原因不能为空")
            await page.get_by_test_id("dispute-reason").fill("峰段发电量比逆变器记录少")
            await page.get_by_test_id("dispute-photos").set_input_files(
                [{"name": "inverter.png", "mimeType": "image/png", "buffer": _png()}])
            await page.get_by_test_id("form-dispute").click()
            await expect(page.locator("[data-testid=form] .state.disputed")).to_be_visible()
            await expect(page.get_by_test_id("form")).to_contain_text("1 张照片")
            await shot("10-form-disputed")
            period = (await page.get_by_test_id("form").inner_text())
            period = re.search(r"\d{4}-\d{2}", period).group(0)
            await page.get_by_test_id("bot-user").select_option("operator")
            await page.get_by_test_id("bot-input").fill(f"调整 {second} 电量 发电 峰 1234.5 原因 业主提供逆变器记录")
            await page.get_by_test_id("bot-send").click()
            await expect(page.get_by_test_id("bot-reply")).to_contain_text(f"已调整 {second} {period}")
            await expect(page.get_by_test_id("bot-reply")).to_contain_text("确认单第 2 版")
            await shot("11-bot-adjusted")
            await page.get_by_test_id("tab-forms").click()
            await page.get_by_test_id(f"form-{second}-v2").click()
            await expect(page.get_by_test_id("form-version")).to_contain_text("v2")
            await expect(page.locator("[data-testid=form] .state.sent")).to_be_visible()
            await expect(page.get_by_test_id("form")).to_contain_text(period)
            await expect(page.get_by_test_id("form")).not_to_contain_text("null")
            # the owner subscribed when disputing: the new version reached the phone
            await expect(page.locator("[data-testid=message][data-template=form_sent]")).to_have_count(1)
            await shot("12-owner-sees-form-v2")
            # the form says it was adjusted, and by whom and why; its printable page too (#23 points 5, 8)
            adjustments = page.get_by_test_id("form-adjustments")
            await expect(adjustments).to_contain_text("业主提供逆变器记录")
            await expect(adjustments).to_contain_text("发电量 峰")  # generation.peak, in words
            eform_href = await page.get_by_test_id("form-ebill").get_attribute("href")
            assert eform_href.startswith(f"{demo.base}/e/form/"), eform_href
            eform = await browser.new_page()
            await eform.goto(eform_href)
            await expect(eform.locator("#adjustments")).to_contain_text("业主提供逆变器记录")
            await eform.close()
            # bound in the mini-program, the same person is bound in the official account (#23 point 3)
            await page.get_by_test_id("bot-user").select_option("aming")
            await page.get_by_test_id("bot-input").fill("账单")
            await page.get_by_test_id("bot-send").click()
            await expect(page.get_by_test_id("bot-reply")).to_contain_text(owner["plants"][0]["code"])
            await expect(page.get_by_test_id("bot-reply")).not_to_contain_text("还没有绑定")

            # and the page speaks English, every screen of the owner's journey again
            lang = "en"
            await page.get_by_test_id("lang").click()
            await expect(page.get_by_test_id("tab-forms")).to_have_text("Forms")
            await expect(page.get_by_test_id("bot-send")).to_have_text("Send")
            await expect(page.locator("[data-testid=form] .state.sent")).to_have_text("awaiting confirmation")
            await expect(page.locator("[data-testid=form] td[data-rate=peak]")).to_have_text("Peak")
            await expect(receipt).to_contain_text("Amount paid: ¥")
            await expect(issued).to_contain_text("Amount owed (after account credit): ¥")
            await shot("13-english-form-v2")
            await printable(page.get_by_test_id("form-ebill"), "13a-eform-390px-english")
            await page.get_by_test_id("tab-forms").click()
            await expect(page.get_by_test_id(f"form-{first}-v1").get_by_test_id("state")).to_have_text("confirmed")
            await shot("14-english-forms")
            await page.get_by_test_id("tab-plants").click()
            await expect(page.get_by_test_id(f"plant-{first}").get_by_test_id("plant-status")).to_have_text(
                re.compile(r"^(online|offline|no live data)$"))
            await shot("15-english-plants")
            await page.get_by_test_id(f"plant-{first}").click()
            await expect(chart).to_have_attribute("data-y-unit", "kWh")
            await shot("16-english-plant")
            await page.get_by_test_id("tab-bills").click()
            await page.get_by_test_id(f"bill-{first}").click()
            await expect(page.locator("[data-testid=bill] .state.paid")).to_have_text("paid")
            await expect(page.get_by_test_id("bill-discount")).to_contain_text("grid price × 0.")
            await shot("17-english-bill")
            await printable(page.get_by_test_id("bill-ebill"), "17a-ebill-390px-english")

            # the sandbox itself on a phone-sized window
            await page.set_viewport_size(PHONE_VIEWPORT)
            await shot("18-sandbox-390px-english")
            await _assert_fits_a_phone(page, "the sandbox")
        finally:
            await browser.close()
    assert errors == [], errors
    print(f"sandbox browser journey: {time.monotonic() - started:.1f} s")
