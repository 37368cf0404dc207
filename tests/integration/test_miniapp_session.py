"""Login, tokens, binding and unbinding, account credit: the mini-program's first steps."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from types import SimpleNamespace

import pytest

from miniprogram_api import gate
from settlement.owners import bindings
from settlement import models as m
from settlement.infra.redis_client import WINDOW_S
from settlement.owners.sessions import TokenClaims, sign_token
from tests.integration.miniapp_support import *  # noqa: F403
from tests.integration.miniapp_support import FakeWechatApi, login
from settlement.clock import utc_now


async def test_login_gives_a_token_that_works_and_never_the_session_key(api, fake_wechat: FakeWechatApi):
    code = fake_wechat.login_code("o-new", unionid="u-1")
    resp = await api.post("/api/v1/session", json={"code": code})
    assert resp.status == 201
    body = await resp.json()
    assert "session_key" not in await resp.text() and "sk-" not in await resp.text()
    assert body["me"] == {"identity_id": body["me"]["identity_id"], "bound": False, "owner": None}
    identity = await m.WechatIdentity.get(id=body["me"]["identity_id"])
    assert (identity.openid, identity.unionid, identity.app_id) == ("o-new", "u-1", "wxtestmp0000000001")
    me = await api.get("/api/v1/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.status == 200 and (await me.json())["identity_id"] == identity.id
    # the same user logging in again is the same identity
    again = await login(api, fake_wechat, "o-new")
    assert (await (await api.get("/api/v1/me", headers=again)).json())["identity_id"] == identity.id


@pytest.mark.parametrize("errcode, status, code", [
    (None, 400, "invalid_code"), (45011, 429, "rate_limited"), (40226, 403, "risky_user"),
    (-1, 503, "wechat_unavailable")])
async def test_wechat_errors_become_clear_answers(api, fake_wechat, errcode, status, code):
    wx_code = fake_wechat.login_code("o-x")
    if errcode is None:
        await fake_wechat.code2session(wx_code)  # used once already: WeChat refuses it now
    else:
        fake_wechat.fail(wx_code, errcode)
    resp = await api.post("/api/v1/session", json={"code": wx_code})
    assert resp.status == status
    assert (await resp.json())["error"]["code"] == code
    assert not await m.WechatIdentity.exists(openid="o-x")


@pytest.mark.parametrize("body", [b"", b"not json", b'{"code": ""}', b'{"code": 5}', b'{"code": "a", "x": 1}',
                                  b"[]", b'{"code": "' + b"a" * 500 + b'"}'])
async def test_malformed_login_bodies_are_400(api, body):
    resp = await api.post("/api/v1/session", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] in ("invalid_body", "invalid_json")


async def test_forged_expired_and_closed_tokens_are_401(api, fake_wechat, settings):
    headers = await login(api, fake_wechat, "o-1")
    token = headers["Authorization"].split()[1]
    version, ident, sid, exp, sig = token.split(".")
    forged = [
        f"{version}.{int(ident) + 1}.{sid}.{exp}.{sig}",  # another identity, same signature
        f"{version}.{ident}.{sid}.{int(exp) + 3600}.{sig}",  # extended expiry
        f"{version}.{ident}.{sid}.{exp}.{sig[:-2]}AA",
        sign_token(TokenClaims(int(ident), sid, int(exp)), "x" * 40),  # signed with another key
        "v1.1.abc.99999999999.", "garbage", "v1." + "9" * 300, "Bearer", "v1.1.a b.1.x",
    ]
    for token in forged:
        resp = await api.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 401, token
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    expired = sign_token(TokenClaims(int(ident), sid, int(time.time()) - 1), settings.secret_key)
    resp = await api.get("/api/v1/me", headers={"Authorization": f"Bearer {expired}"})
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "token_expired"
    assert (await api.get("/api/v1/me")).status == 401
    assert (await api.get("/api/v1/me", headers={"Authorization": f"Basic {token}"})).status == 401
    # logging out ends the session before its expiry
    assert (await api.delete("/api/v1/session", headers=headers)).status == 204
    resp = await api.get("/api/v1/me", headers=headers)
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "session_closed"


async def test_sessions_are_recorded_in_the_database_and_purged_after_expiry(api, fake_wechat, settings):
    headers = await login(api, fake_wechat, "o-rec")
    sid = headers["Authorization"].split()[1].split(".")[2]
    record = await m.MiniProgramSession.get(session_id=sid)
    assert record.closed_at is None and record.expires_at > utc_now()
    # Redis forgets the session (a restart, say): the database still knows it, and Redis learns it again
    from settlement.infra.redis_client import Namespace, open_redis
    from settlement.owners.sessions import purge_expired, session_key_name

    if settings.redis_url:  # a real Redis beside the app's client (the emulation is the app's own)
        client, ns = open_redis(settings.redis_url), Namespace(settings.redis_prefix)
        try:
            await client.delete(session_key_name(ns, sid))
            assert (await api.get("/api/v1/me", headers=headers)).status == 200
            assert await client.get(session_key_name(ns, sid)) is not None
        finally:
            await client.aclose()
    assert (await api.delete("/api/v1/session", headers=headers)).status == 204
    assert (await m.MiniProgramSession.get(session_id=sid)).closed_at is not None
    assert (await api.delete("/api/v1/session", headers=headers)).status == 204  # repeating a logout is fine
    assert (await api.get("/api/v1/me", headers=headers)).status == 401
    # past their expiry the records go: the tokens carry their expiry themselves
    kept = await login(api, fake_wechat, "o-kept")
    kept_sid = kept["Authorization"].split()[1].split(".")[2]
    await m.MiniProgramSession.filter(session_id=kept_sid).update(expires_at=record.expires_at + dt.timedelta(hours=1))
    assert await purge_expired(record.expires_at - dt.timedelta(seconds=1)) == 0
    assert await purge_expired(record.expires_at) == 1
    assert not await m.MiniProgramSession.exists(session_id=sid)
    assert await m.MiniProgramSession.exists(session_id=kept_sid)


async def test_bind_by_invitation_once_then_unbind(api, fake_wechat):
    owner = await m.Owner.create(name="常州某厂", phone="13900000001")
    staff = await m.Staff.create(name="运维", role=m.StaffRole.OPERATOR)
    code, invitation = await bindings.issue_invitation(owner.id, staff, dt.timedelta(days=1))
    assert invitation.code_sha256 != code and code not in str(await m.AuditEvent.all().values())
    first = await login(api, fake_wechat, "o-first")
    typed = "-".join([code[:5].lower(), code[5:]])  # typed in lower case with a dash: still the code
    resp = await api.post("/api/v1/binding", json={"invitation_code": typed}, headers=first)
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"owner": {"id": owner.id, "name": "常州某厂"}, "by": "invitation"}
    assert (await (await api.get("/api/v1/me", headers=first)).json())["bound"] is True
    assert (await (await api.get("/api/v1/account", headers=first)).json())["credit_fen"] == 0
    # used up: a second user cannot use it
    second = await login(api, fake_wechat, "o-second")
    resp = await api.post("/api/v1/binding", json={"invitation_code": code}, headers=second)
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid_invitation"
    assert (await api.delete("/api/v1/binding", headers=first)).status == 204
    me = await (await api.get("/api/v1/me", headers=first)).json()
    assert me["bound"] is False
    assert (await api.delete("/api/v1/binding", headers=first)).status == 404
    assert (await api.get("/api/v1/account", headers=first)).status == 404
    actions = await m.AuditEvent.filter(entity="wechat_identity").values_list("action", flat=True)
    assert sorted(actions) == ["BindOwner", "UnbindOwner"]


async def test_expired_and_unknown_invitations_are_refused_alike(api, fake_wechat):
    owner = await m.Owner.create(name="甲")
    staff = await m.Staff.create(name="运维", role=m.StaffRole.ADMIN)
    past = utc_now() - dt.timedelta(days=2)
    code, _ = await bindings.issue_invitation(owner.id, staff, dt.timedelta(days=1), now=past)
    headers = await login(api, fake_wechat, "o-late")
    for attempt in (code, "ABCDEFGHJK", "' OR 1=1 --"):
        resp = await api.post("/api/v1/binding", json={"invitation_code": attempt}, headers=headers)
        assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid_invitation"
    viewer = await m.Staff.create(name="只读", role=m.StaffRole.VIEWER)
    with pytest.raises(Exception) as refused:
        await bindings.issue_invitation(owner.id, viewer)
    assert getattr(refused.value, "code", "") == "role_required"


async def test_bind_by_phone_on_file(api, fake_wechat):
    owner = await m.Owner.create(name="乙", phone="139-0000-0002")
    await m.Owner.create(name="丙", phone="13900000003")
    await m.Owner.create(name="丁", phone="13900000003")
    headers = await login(api, fake_wechat, "o-phone")
    resp = await api.post("/api/v1/binding", json={"phone_code": fake_wechat.phone_code("+86 13900000002")},
                          headers=headers)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["owner"]["id"] == owner.id
    other = await login(api, fake_wechat, "o-phone-2")
    for number, status, code in (("13900000009", 404, "phone_not_on_file"),
                                 ("13900000003", 409, "phone_ambiguous")):
        resp = await api.post("/api/v1/binding", json={"phone_code": fake_wechat.phone_code(number)}, headers=other)
        assert resp.status == status and (await resp.json())["error"]["code"] == code
    used = fake_wechat.phone_code("13900000002")
    await fake_wechat.phone_number(used)
    resp = await api.post("/api/v1/binding", json={"phone_code": used}, headers=other)
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid_code"
    # bound already to 乙: binding to another owner needs an unbind first
    resp = await api.post("/api/v1/binding", json={"phone_code": fake_wechat.phone_code("13900000002")},
                          headers=headers)
    assert resp.status == 200
    staff = await m.Staff.create(name="运维", role=m.StaffRole.OPERATOR)
    other_owner = await m.Owner.create(name="戊")
    code, _ = await bindings.issue_invitation(other_owner.id, staff)
    resp = await api.post("/api/v1/binding", json={"invitation_code": code}, headers=headers)
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "already_bound"


@pytest.mark.parametrize("body", [{}, {"invitation_code": "A", "phone_code": "B"}, {"invitation_code": None}])
async def test_binding_needs_exactly_one_way(api, fake_wechat, body):
    headers = await login(api, fake_wechat, "o-b")
    resp = await api.post("/api/v1/binding", json=body, headers=headers)
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid_body"


async def test_rate_limit_per_user_answers_429_with_retry_after(api, fake_wechat, settings, monkeypatch):
    headers = await login(api, fake_wechat, "o-busy")
    other = await login(api, fake_wechat, "o-calm")
    # the limiter's clock held one second into a window: a window that ended mid-burst would
    # start the count over (the test failed now and then), and the Retry-After is known exactly
    held = (time.time() // WINDOW_S) * WINDOW_S + 1.0
    monkeypatch.setattr(gate, "time", SimpleNamespace(time=lambda: held))
    statuses = [(await api.get("/api/v1/me", headers=headers)).status for _ in range(settings.api_rate_limit + 1)]
    assert statuses == [200] * settings.api_rate_limit + [429]
    resp = await api.get("/api/v1/me", headers=headers)
    assert resp.status == 429 and resp.headers["Retry-After"] == str(WINDOW_S - 1)
    assert (await resp.json())["error"]["code"] == "rate_limited"
    assert (await api.get("/api/v1/me", headers=other)).status == 200  # per user, not global


async def test_request_id_is_echoed(api, fake_wechat):
    headers = await login(api, fake_wechat, "o-rid")
    resp = await api.get("/api/v1/me", headers={**headers, "X-Request-Id": "mp-req-1"})
    assert resp.headers["X-Request-Id"] == "mp-req-1"


@pytest.mark.parametrize("trusted", ["127.0.0.1", ""])
async def test_logins_count_per_client_behind_trusted_proxies_and_forwarding_evades_nothing_otherwise(
        settings, aiohttp_client, fake_wechat, monkeypatch, trusted):
    # the test client is the peer 127.0.0.1: nginx, when it is trusted
    monkeypatch.setattr("miniprogram_api.app.LOGIN_LIMIT_PER_ADDRESS", 3)
    held = (time.time() // WINDOW_S) * WINDOW_S + 1.0  # one window for the whole test
    monkeypatch.setattr("miniprogram_api.app.time", SimpleNamespace(time=lambda: held))
    api = await client_with_fake_wechat(aiohttp_client, dataclasses.replace(settings, trusted_proxies=trusted),
                                        fake_wechat)

    async def log_in(client: str, n: int) -> int:
        resp = await api.post("/api/v1/session", json={"code": fake_wechat.login_code(f"o-{client}-{n}")},
                              headers={"X-Forwarded-For": client})
        return resp.status

    first = [await log_in("203.0.113.7", n) for n in range(4)]
    assert first == [201, 201, 201, 429]
    other = await log_in("198.51.100.9", 0)  # another owner behind the same nginx
    assert other == (201 if trusted else 429)
