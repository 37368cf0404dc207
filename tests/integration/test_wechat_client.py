"""The WeChat API adapter against the fake WeChat server on a real port: tokens shared and renewed
across processes, WeChat's errors mapped to the port's exceptions, timeouts, and no secret in logs."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging

import pytest

from server.app import create_app
from settlement.adapters.wechat_http import AiohttpWechatApi
from settlement.fakes.wechat_server import FakeWechat, field_value_ok
from settlement.ports.wechat import (
    InvalidCode,
    InvalidMessage,
    QuotaExceeded,
    RateLimited,
    RiskyUser,
    TokenExpired,
    UserRefused,
    WechatApi,
    WechatError,
    WechatUnavailable,
)
from webapp.keys import wechat_api_key
from tests.integration.wechat_fixtures import *  # noqa: F403
from tests.integration.wechat_fixtures import SettableClock

OPENID = "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"
TEMPLATE = "tmpl-bill-issued"


def forced(fake: FakeWechat) -> list:
    return [call for call in fake.calls_to("stable_token") if call.body.get("force_refresh") is True]


def normal(fake: FakeWechat) -> list:
    return [call for call in fake.calls_to("stable_token") if not call.body.get("force_refresh")]


async def send(api: AiohttpWechatApi, n: int, openid: str = OPENID) -> None:
    await api.send_subscribe_message(openid, TEMPLATE, {"thing1": f"账单 {n}", "amount2": "¥123.45"},
                                     page="pages/bill/detail?id=1")


# ---------------------------------------------------------------------- the port


def test_adapter_has_every_method_of_the_port_with_its_parameters():
    members = [name for name, value in vars(WechatApi).items()
               if inspect.isfunction(value) and not name.startswith("_")]
    assert {"access_token", "code2session", "phone_number", "send_subscribe_message",
            "send_template_message", "send_customer_service_text"} <= set(members)
    for name in members:
        implementation = getattr(AiohttpWechatApi, name)
        assert inspect.iscoroutinefunction(implementation), name
        wanted = list(inspect.signature(getattr(WechatApi, name)).parameters.values())
        given = list(inspect.signature(implementation).parameters.values())
        assert [p.name for p in given[:len(wanted)]] == [p.name for p in wanted], name
        assert all(p.default is not inspect.Parameter.empty for p in given[len(wanted):]), name


async def test_the_app_builds_the_adapter_from_its_settings(wechat_settings, fake_wechat, aiohttp_client):
    client = await aiohttp_client(create_app(wechat_settings))
    api = client.server.app[wechat_api_key]
    assert isinstance(api, AiohttpWechatApi)
    await send(api, 1)
    assert [m.touser for m in fake_wechat.sent] == [OPENID]


# ---------------------------------------------------------------------- code2session, phone


async def test_code2session_returns_openid_session_key_and_unionid(wechat_api, fake_wechat, settings):
    code = fake_wechat.register_login_code(settings.mp_appid, OPENID, unionid="oUnion-1", session_key="sk-1")
    session = await wechat_api.code2session(code)
    assert (session.openid, session.session_key, session.unionid) == (OPENID, "sk-1", "oUnion-1")
    assert "sk-1" not in repr(session)
    other = fake_wechat.register_login_code(settings.mp_appid, "o-not-bound")
    assert (await wechat_api.code2session(other)).unionid is None
    # a login needs no access token
    assert fake_wechat.calls_to("stable_token") == []


async def test_code2session_errors_map_to_the_port(wechat_api, fake_wechat, settings):
    with pytest.raises(InvalidCode) as unknown:
        await wechat_api.code2session("never-issued")
    assert unknown.value.errcode == 40029

    code = fake_wechat.register_login_code(settings.mp_appid, OPENID)
    await wechat_api.code2session(code)
    with pytest.raises(InvalidCode) as reused:
        await wechat_api.code2session(code)
    assert reused.value.errcode == 40163

    fake_wechat.fail_next("jscode2session", 45011)
    with pytest.raises(RateLimited) as limited:
        await wechat_api.code2session(fake_wechat.register_login_code(settings.mp_appid, OPENID))
    assert limited.value.errcode == 45011 and limited.value.transient

    fake_wechat.fail_next("jscode2session", 40226)
    with pytest.raises(RiskyUser) as risky:
        await wechat_api.code2session(fake_wechat.register_login_code(settings.mp_appid, OPENID))
    assert risky.value.errcode == 40226 and not risky.value.transient


async def test_code_of_another_app_or_too_old_is_invalid(wechat_api_factory, fake_wechat, settings):
    clock = SettableClock()
    fake_wechat.clock = clock
    api = await wechat_api_factory(clock=clock)
    with pytest.raises(InvalidCode):
        await api.code2session(fake_wechat.register_login_code(settings.oa_appid, OPENID))
    old = fake_wechat.register_login_code(settings.mp_appid, OPENID)
    clock.advance(301)
    with pytest.raises(InvalidCode) as expired:
        await api.code2session(old)
    assert expired.value.errcode == 40029


@pytest.mark.parametrize("hostile", ["x&secret=stolen&appid=wxother", "C012; DROP TABLE owners", "码 ?#%00", "a" * 4000])
async def test_hostile_code_is_sent_as_one_value_and_refused(wechat_api, fake_wechat, hostile):
    with pytest.raises(InvalidCode):
        await wechat_api.code2session(hostile)
    [call] = fake_wechat.calls_to("jscode2session")
    assert call.body["js_code"] == hostile
    assert call.body["appid"] == wechat_api.apps["mp"].appid


async def test_wrong_secret_is_refused_and_not_retried(wechat_api_factory, fake_wechat):
    api = await wechat_api_factory(mp_secret="not-the-secret")
    with pytest.raises(InvalidMessage) as login:
        await api.code2session("any")
    assert login.value.errcode == 40125
    with pytest.raises(InvalidMessage) as token:
        await send(api, 1)
    assert token.value.errcode == 40125
    assert len(fake_wechat.calls_to("stable_token")) == 1


async def test_phone_number_is_the_pure_number_and_its_code_works_once(wechat_api, fake_wechat, settings):
    code = fake_wechat.register_phone_code(settings.mp_appid, "13800138000")
    assert await wechat_api.phone_number(code) == "13800138000"
    with pytest.raises(InvalidCode):
        await wechat_api.phone_number(code)
    foreign = fake_wechat.register_phone_code(settings.mp_appid, "2025550123", country_code="1")
    assert await wechat_api.phone_number(foreign) == "2025550123"
    # the mini-program's token, not the official account's
    assert {call.appid for call in fake_wechat.calls_to("getuserphonenumber")} == {settings.mp_appid}


# ---------------------------------------------------------------------- tokens


async def test_token_fetched_once_and_shared_by_two_processes(wechat_api_factory, fake_wechat):
    first, second = await wechat_api_factory(), await wechat_api_factory()
    await send(first, 1)
    await send(second, 2)
    await send(first, 3)
    assert len(fake_wechat.calls_to("stable_token")) == 1
    assert len({call.access_token for call in fake_wechat.calls_to("subscribe_send")}) == 1
    assert len(fake_wechat.sent) == 3


async def test_each_app_has_its_own_token(wechat_api, fake_wechat, settings):
    await send(wechat_api, 1)
    await wechat_api.send_customer_service_text(OPENID, "您好")
    assert {call.appid for call in fake_wechat.calls_to("stable_token")} == {settings.mp_appid, settings.oa_appid}
    assert await wechat_api.access_token("mp") != await wechat_api.access_token("oa")
    with pytest.raises(ValueError, match="unknown WeChat app"):
        await wechat_api.access_token("pay")


async def test_token_renewed_early_once_while_the_old_one_keeps_working(wechat_api_factory, fake_wechat):
    clock = SettableClock()
    fake_wechat.clock = clock
    apis = [await wechat_api_factory(clock=clock) for _ in range(2)]
    await send(apis[0], 0)
    old = await apis[0].access_token("mp")
    clock.advance(7200 - 200)  # inside the last 5 minutes
    await asyncio.gather(*(send(apis[i % 2], i) for i in range(1, 11)))
    assert len(normal(fake_wechat)) == 2 and forced(fake_wechat) == []
    new = await apis[1].access_token("mp")
    assert new != old
    # the sends that did not renew went on with the old token, which WeChat still accepts
    assert all(call.errcode == 0 for call in fake_wechat.calls_to("subscribe_send"))
    assert len(fake_wechat.sent) == 11
    clock.advance(300)  # the old token has run out; the new one is used
    await send(apis[0], 11)
    assert fake_wechat.calls_to("subscribe_send")[-1].access_token == new
    assert len(fake_wechat.calls_to("stable_token")) == 2


async def test_token_run_out_in_redis_is_fetched_again_without_force(wechat_api_factory, fake_wechat):
    clock = SettableClock()
    fake_wechat.clock = clock
    api = await wechat_api_factory(clock=clock)
    await send(api, 1)
    clock.advance(7300)
    await send(api, 2)
    assert len(normal(fake_wechat)) == 2 and forced(fake_wechat) == []


async def test_token_expiring_mid_batch_is_refreshed_once_and_each_message_sent_once(wechat_api, fake_wechat):
    fake_wechat.expire_tokens_after("subscribe_send", 5)
    for n in range(12):
        await send(wechat_api, n)
    assert sorted(m.data["thing1"] for m in fake_wechat.sent) == sorted(f"账单 {n}" for n in range(12))
    assert len(normal(fake_wechat)) == 1 and len(forced(fake_wechat)) == 1
    refused = [call for call in fake_wechat.calls_to("subscribe_send") if call.errcode == 42001]
    assert len(refused) == 1


async def test_twenty_concurrent_sends_on_an_expired_token_force_one_refresh(wechat_api_factory, fake_wechat):
    first, second = await wechat_api_factory(), await wechat_api_factory()
    await send(first, 0)
    fake_wechat.expire_tokens()
    await asyncio.gather(*(send(first if n % 2 else second, n) for n in range(1, 21)))
    assert len(forced(fake_wechat)) == 1
    assert sorted(m.data["thing1"] for m in fake_wechat.sent) == sorted(f"账单 {n}" for n in range(21))


async def test_a_process_whose_token_was_replaced_by_another_takes_it_from_redis(wechat_api_factory, fake_wechat):
    first, second = await wechat_api_factory(), await wechat_api_factory()
    await send(first, 1)
    await send(second, 2)  # both now hold the token in memory
    fake_wechat.fail_next("subscribe_send", 40001)
    await send(first, 3)  # first force-refreshes: WeChat revokes the token second still holds
    await send(second, 4)
    assert len(forced(fake_wechat)) == 1 and len(normal(fake_wechat)) == 1
    second_calls = fake_wechat.calls_to("subscribe_send")[-2:]
    assert [c.errcode for c in second_calls] == [40001, 0]
    assert len(fake_wechat.sent) == 4


async def test_a_failing_refresh_is_retried_with_backoff(wechat_api, fake_wechat):
    await send(wechat_api, 0)
    fake_wechat.expire_tokens()
    fake_wechat.fail_next_http("stable_token", 503, times=1)
    fake_wechat.fail_next("stable_token", -1, times=1)
    await send(wechat_api, 1)
    assert len(forced(fake_wechat)) == 3
    assert len(fake_wechat.sent) == 2


async def test_a_refresh_that_keeps_failing_gives_up(wechat_api, fake_wechat):
    await send(wechat_api, 0)
    fake_wechat.expire_tokens()
    fake_wechat.fail_next_http("stable_token", 502, times=10)
    with pytest.raises(WechatUnavailable):
        await send(wechat_api, 1)
    assert len(forced(fake_wechat)) == wechat_api.refresh_attempts
    assert len(fake_wechat.sent) == 1


async def test_a_token_refused_again_after_refresh_is_not_refreshed_twice(wechat_api, fake_wechat):
    fake_wechat.fail_next("subscribe_send", 40001, times=2)
    with pytest.raises(TokenExpired):
        await send(wechat_api, 1)
    assert len(forced(fake_wechat)) == 1
    assert len(fake_wechat.calls_to("subscribe_send")) == 2
    assert fake_wechat.sent == []


@pytest.mark.parametrize("errcode", [40001, 42001, 40014])
async def test_every_token_error_refreshes_and_retries(wechat_api, fake_wechat, errcode):
    fake_wechat.fail_next("template_send", errcode)
    await wechat_api.send_template_message(OPENID, "tmpl-oa", {"thing1": "电费账单"})
    assert len(forced(fake_wechat)) == 1 and len(fake_wechat.sent) == 1


# ---------------------------------------------------------------------- sending and its errors


async def test_quota_used_up_raises_without_blind_retries(wechat_api, fake_wechat):
    fake_wechat.fail_next("subscribe_send", 45009)
    with pytest.raises(QuotaExceeded) as quota:
        await send(wechat_api, 1)
    assert quota.value.errcode == 45009
    assert len(fake_wechat.calls_to("subscribe_send")) == 1 and forced(fake_wechat) == []
    assert fake_wechat.sent == []


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_unavailable(wechat_api, fake_wechat, status):
    fake_wechat.fail_next_http("subscribe_send", status)
    with pytest.raises(WechatUnavailable) as failure:
        await send(wechat_api, 1)
    assert failure.value.errcode == -1 and failure.value.transient
    assert len(fake_wechat.calls_to("subscribe_send")) == 1


async def test_an_answer_that_is_not_json_is_unavailable(wechat_api, fake_wechat):
    fake_wechat.fail_next_http("custom_send", 200)
    with pytest.raises(WechatUnavailable):
        await wechat_api.send_customer_service_text(OPENID, "hello")


async def test_a_hanging_endpoint_is_unavailable_within_the_call_timeout(wechat_api_factory, fake_wechat):
    api = await wechat_api_factory(call_timeout=0.3)
    await send(api, 0)
    fake_wechat.hang_next("subscribe_send", 60)
    async with asyncio.timeout(10):  # the fake answers after 60 s: only the client's timeout ends the wait
        with pytest.raises(WechatUnavailable) as failure:
            await send(api, 1)
    assert "no answer within 0.3 s" in str(failure.value)
    assert len(fake_wechat.sent) == 1


async def test_nothing_listening_is_unavailable(wechat_api_factory, fake_wechat):
    api = await wechat_api_factory()
    await fake_wechat.close()
    with pytest.raises(WechatUnavailable):
        await api.code2session("any")


async def test_user_who_refused_the_template_raises_user_refused(wechat_api, fake_wechat):
    fake_wechat.refuse_subscribe("o-refuser", TEMPLATE)
    with pytest.raises(UserRefused) as refused:
        await send(wechat_api, 1, openid="o-refuser")
    assert refused.value.errcode == 43101
    await send(wechat_api, 2)
    assert [m.touser for m in fake_wechat.sent] == [OPENID]


async def test_a_too_long_thing_is_refused_with_47003(wechat_api, fake_wechat):
    await wechat_api.send_subscribe_message(OPENID, TEMPLATE, {"thing1": "电" * 20})
    with pytest.raises(InvalidMessage) as invalid:
        await wechat_api.send_subscribe_message(OPENID, TEMPLATE, {"thing1": "电" * 21})
    assert invalid.value.errcode == 47003
    assert "data.thing1.value invalid" in invalid.value.errmsg
    assert len(fake_wechat.sent) == 1


async def test_subscribe_message_arrives_as_sent(wechat_api, fake_wechat, settings):
    data = {"thing1": "1号屋顶电站 4月电费", "amount2": "¥1234.56", "date3": "2025年5月1日 08:00",
            "phrase4": "待支付", "character_string5": "B-2025-04-0001"}
    await wechat_api.send_subscribe_message(OPENID, TEMPLATE, data, page="pages/bill/detail?id=7")
    [message] = fake_wechat.sent
    assert (message.kind, message.appid, message.touser, message.template_id) == (
        "subscribe", settings.mp_appid, OPENID, TEMPLATE)
    assert message.data == data and message.page == "pages/bill/detail?id=7"


async def test_template_message_links_the_mini_program_and_is_sent_once_per_client_msg_id(
        wechat_api, fake_wechat, settings):
    for _ in range(2):  # a retry after a lost answer
        await wechat_api.send_template_message(OPENID, "tmpl-oa", {"thing1": "电费账单", "amount2": "¥88.00"},
                                               url="https://example.invalid/e/1", miniprogram_page="pages/bill/detail",
                                               client_msg_id="bill-7-issued")
    [message] = fake_wechat.sent
    assert (message.kind, message.appid, message.miniprogram_appid, message.page, message.url) == (
        "template", settings.oa_appid, settings.mp_appid, "pages/bill/detail", "https://example.invalid/e/1")
    fake_wechat.unfollow("o-gone")
    with pytest.raises(WechatError) as gone:
        await wechat_api.send_template_message("o-gone", "tmpl-oa", {"thing1": "电费账单"})
    assert gone.value.errcode == 43004


async def test_customer_service_text(wechat_api, fake_wechat, settings):
    await wechat_api.send_customer_service_text(OPENID, "您的电费账单已出，请在小程序中查看。")
    [message] = fake_wechat.sent
    assert (message.kind, message.appid, message.text) == ("custom", settings.oa_appid,
                                                           "您的电费账单已出，请在小程序中查看。")


# ---------------------------------------------------------------------- secrets


async def test_secrets_session_keys_and_tokens_never_reach_the_logs(wechat_api_factory, fake_wechat, settings,
                                                                    caplog):
    caplog.set_level(logging.DEBUG)
    api = await wechat_api_factory(call_timeout=0.3)
    errors: list[BaseException] = []
    code = fake_wechat.register_login_code(settings.mp_appid, OPENID, session_key="SESSION-KEY-XYZ")
    session = await api.code2session(code)
    await send(api, 1)
    await api.send_customer_service_text(OPENID, "hi")
    fake_wechat.expire_tokens()
    await send(api, 2)
    for inject, call in [
        (lambda: fake_wechat.fail_next_http("subscribe_send", 503), lambda: send(api, 3)),
        (lambda: fake_wechat.hang_next("subscribe_send", 30), lambda: send(api, 4)),
        (lambda: fake_wechat.fail_next("jscode2session", 40029), lambda: api.code2session("bad")),
        (lambda: None, lambda: api.send_subscribe_message(OPENID, TEMPLATE, {"thing1": "x" * 30})),
        (lambda: fake_wechat.fail_next("subscribe_send", 40001, times=2), lambda: send(api, 5)),
    ]:
        inject()
        try:
            await call()
        except WechatError as exc:
            errors.append(exc)
    assert len(errors) == 5
    wrong = await wechat_api_factory(oa_secret="WRONG-OA-SECRET")
    with pytest.raises(WechatError) as refused:
        await wrong.send_customer_service_text(OPENID, "x")
    errors.append(refused.value)

    secrets_ = [settings.mp_secret, settings.oa_secret, "WRONG-OA-SECRET", session.session_key,
                *fake_wechat.tokens]
    logged = caplog.text + "".join(json.dumps(vars(r), default=str, ensure_ascii=False) for r in caplog.records)
    shown = logged + "".join(f"{e!s}{e!r}{e.__cause__!r}{e.__context__!r}" for e in errors) + repr(session)
    assert any(r.name == "pvsettle.wechat" for r in caplog.records)
    leaked = [s for s in secrets_ if s in shown]
    assert leaked == []


# ---------------------------------------------------------------------- the fake's field rules


@pytest.mark.parametrize(("key", "value", "ok"), [
    ("thing1", "电" * 20, True), ("thing1", "电" * 21, False), ("thing1", "a\nb", False),
    ("number2", "1234567890.25", True), ("number2", "1" * 33, False), ("number2", "-3", False),
    ("letter3", "abc", True), ("letter3", "ab1", False),
    ("symbol4", "%$", True), ("symbol4", "%%%%%%", False),
    ("character_string5", "B-2025-04-0001", True), ("character_string5", "1" * 33, False),
    ("character_string5", "账单1", False), ("character_string5", "a b", False),
    ("phrase6", "待支付", True), ("phrase6", "待支付的账单", False), ("phrase6", "paid", False),
    ("name7", "张三", True), ("name7", "欧阳" * 5 + "娜", False), ("name7", "John Smith", True),
    ("name7", "user25", False), ("name7", "A" * 21, False),
    ("amount8", "¥1234.56", True), ("amount8", "1234.56元", True), ("amount8", "¥12345678901", False),
    ("amount8", "¥1,234.56", False), ("amount8", "-¥10", False),
    ("date9", "2025年5月1日", True), ("date9", "2025年5月1日 08:00", True), ("date9", "2025-05-01", True),
    ("date9", "2025年2月30日", False), ("date9", "08:00", False),
    ("date9", "2025年5月1日 ~ 2025年5月31日", True),
    ("time10", "15:01", True), ("time10", "2019年10月1日 15:01", True), ("time10", "25:00", False),
    ("phone_number11", "+86-0766-66888866", True), ("phone_number11", "1" * 18, False),
    ("car_number12", "粤A8Z888挂", True), ("car_number12", "粤A8Z88888挂", False),
    ("keyword1", "anything at all", False),
])
def test_fake_checks_subscribe_values_like_wechat(key, value, ok):
    assert field_value_ok(key, value) is ok


def test_template_messages_keep_free_text_keys():
    assert field_value_ok("keyword1", "anything at all", typed_only=False)
    assert not field_value_ok("thing1", "电" * 21, typed_only=False)
