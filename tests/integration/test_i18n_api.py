"""Errors speak the caller's language: a code for programs, the catalogue's message for people.

/api/v1 answers in the language of ``Accept-Language`` (``zh`` or ``en``), Chinese when it names
neither; /ingest answers collectors in English whatever they ask. ``GET /api/v1/i18n`` serves the
same catalogue to clients, which label the API's codes from it.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import aiohttp
import pytest

from settlement import i18n
from settlement import models as m
from tests.integration.miniapp_support import *  # noqa: F403
from tests.integration.miniapp_support import login, owner_world

EN = {"Accept-Language": "en-US,en;q=0.9"}
HAN = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
async def owner(api, fake_wechat, settings):
    world, identity = await owner_world("PV-1", "常州某厂", "o-owner", settings.mp_appid)
    return world, await login(api, fake_wechat, "o-owner")


async def _error(resp) -> tuple[int, str, str]:
    body = await resp.json()
    return resp.status, body["error"]["code"], body["error"]["message"]


async def test_a_bad_invitation_code_is_refused_in_chinese_by_default_and_in_english_on_request(api, fake_wechat):
    headers = await login(api, fake_wechat, "o-stranger")
    resp = await api.post("/api/v1/binding", json={"invitation_code": "WRONGCODE9"}, headers=headers)
    assert await _error(resp) == (400, "invalid_invitation", "邀请码无效、已使用或已过期")
    resp = await api.post("/api/v1/binding", json={"invitation_code": "WRONGCODE9"}, headers={**headers, **EN})
    assert await _error(resp) == (400, "invalid_invitation", "This invitation code is unknown, used or expired")


async def test_a_dispute_without_a_reason_says_which_field_in_words(api, owner):
    world, headers = owner
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("reason", "")
    resp = await api.post(f"/api/v1/forms/{world.form.id}/dispute", data=form, headers=headers)
    assert await _error(resp) == (400, "invalid_body", "请求内容有误：原因不能为空")
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("reason", "")
    resp = await api.post(f"/api/v1/forms/{world.form.id}/dispute", data=form, headers={**headers, **EN})
    assert await _error(resp) == (400, "invalid_body", "The request is not valid: The reason must not be empty")
    assert (await m.ConfirmationForm.get(id=world.form.id)).state == m.FormState.SENT


async def test_a_json_body_problem_and_a_query_problem_are_worded_too(api, owner):
    world, headers = owner
    resp = await api.post(f"/api/v1/plants/{world.plant.id}/shares", json={"right": "own", "extra": 1},
                          headers=headers)
    status, code, message = await _error(resp)
    assert (status, code) == (400, "invalid_body")
    assert message.startswith("请求内容有误：权限应为 ") and "不是可接受的字段" in message, message
    resp = await api.get("/api/v1/bills?limit=0", headers=headers)
    assert await _error(resp) == (400, "invalid_query", "查询参数有误：条数不能小于 1")


async def test_session_errors_are_worded_in_the_callers_language(api):
    resp = await api.get("/api/v1/plants")
    assert (resp.status, (await resp.json())["error"]["code"]) == (401, "unauthorized")
    assert (await resp.json())["error"]["message"].startswith("请先登录")
    resp = await api.get("/api/v1/plants", headers={"Authorization": "Bearer forged.token", **EN})
    status, code, message = await _error(resp)
    assert status == 401 and message == i18n.error_text(code, "en") and "log in again" in message


async def test_aiohttps_own_answers_are_worded_too(api):
    resp = await api.get("/api/v1/no-such-route")
    assert await _error(resp) == (404, "not_found", "没有找到")
    resp = await api.put("/api/v1/plants", headers=EN)
    assert await _error(resp) == (405, "method_not_allowed", "Method not allowed")


async def test_collectors_are_answered_in_english_whatever_they_ask(api):
    resp = await api.post("/ingest/v1/telemetry", json={"samples": []}, headers={"Accept-Language": "zh-CN"})
    status, code, message = await _error(resp)
    assert (status, code) == (401, "unauthorized") and message.isascii() and "Authorization: Bearer" in message


async def test_the_catalogue_is_served_in_each_language(api):
    zh = await (await api.get("/api/v1/i18n")).json()
    en = await (await api.get("/api/v1/i18n?lang=en")).json()
    assert zh["lang"] == "zh" and en["lang"] == "en"
    assert zh["messages"]["rate.peak"] == "峰" and en["messages"]["rate.peak"] == "Peak"
    assert zh["messages"]["form_state.adjusted"] == i18n.text("form_state.adjusted", "zh")
    assert zh["messages"]["template.bill_issued.amount3"] == "账单金额"
    assert set(zh["messages"]) == set(en["messages"]) == set(i18n.entries())
    resp = await api.get("/api/v1/i18n?lang=fr")
    status, code, message = await _error(resp)
    assert (status, code) == (400, "invalid_query") and message.startswith("查询参数有误：")


async def test_the_bill_detail_gives_unit_prices_the_discount_and_the_ebill_link(api, owner):
    world, headers = owner
    body = await (await api.get(f"/api/v1/bills/{world.bill.id}", headers=headers)).json()
    assert body["discount"] == "0.8500"
    assert all("unit_price" in line for line in body["lines"])
    _assert_absolute(api, body["ebill_url"], f"/e/bill/{world.bill.id}")
    # its lines worded in the caller's language, as the e-bill words them (the sandbox showed
    # 峰时段自用电量 in English)
    english = await (await api.get(f"/api/v1/bills/{world.bill.id}", headers={**headers, **EN})).json()
    assert [line["kind"] for line in english["lines"]] == [line["kind"] for line in body["lines"]]
    assert body["lines"] and all(HAN.search(line["description"]) for line in body["lines"]), body["lines"]
    assert not any(HAN.search(line["description"]) for line in english["lines"]), english["lines"]


async def test_the_form_detail_gives_an_absolute_ebill_link_too(api, owner):
    """/api/v1/forms/{id} gave a relative link while the bot gave an absolute one (#23 point 8)."""
    world, headers = owner
    body = await (await api.get(f"/api/v1/forms/{world.form.id}", headers=headers)).json()
    _assert_absolute(api, body["ebill_url"], f"/e/form/{world.form.id}")
    parts = urlsplit(body["ebill_url"])
    page = await api.get(f"{parts.path}?{parts.query}")  # and it opens
    assert page.status == 200 and page.content_type == "text/html"


def _assert_absolute(api, url: str, path: str) -> None:
    """``url`` is absolute, on the origin the request reached (no PVSETTLE_PUBLIC_URL here), signed."""
    served = api.make_url("/")
    parts = urlsplit(url)
    assert (parts.scheme, parts.hostname, parts.port) == (served.scheme, served.host, served.port), url
    assert parts.path == path and "sig=" in parts.query and "exp=" in parts.query, url
