"""The sandbox exists only where ``pvsettle demo`` installs it: never in the app ``pvsettle serve``
builds, and nothing outside ``server/cli/serve.py``'s demo path imports it."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

from server.app import create_app
from settlement.fakes.pay_server import FakeWechatPay
from settlement.fakes.wechat_server import FakeWechat
from webapp.settings import PAY_API_BASE, WECHAT_API_BASE

ROOT = Path(__file__).resolve().parents[2]


def _sandbox_resources(app) -> list[str]:
    found = [r.canonical for r in app.router.resources() if r.canonical.startswith("/sandbox")]
    for sub in app._subapps:  # mounted sub-apps answer under their prefix
        found += [r.canonical for r in sub.router.resources() if r.canonical.startswith("/sandbox")]
    return found


async def test_the_serve_app_has_no_sandbox_route_and_starts_no_fake(settings, aiohttp_client):
    # the real WeChat hosts, as in production: a sandbox would replace them with its fakes
    settings = dataclasses.replace(settings, wechat_api_base=WECHAT_API_BASE, pay_api_base=PAY_API_BASE)
    app = create_app(settings)
    assert _sandbox_resources(app) == []
    assert not any(getattr(ctx, "__module__", "").startswith("sandbox") for ctx in app.cleanup_ctx)
    client = await aiohttp_client(app)
    for path in ("/sandbox/", "/sandbox/api/users", "/sandbox/static/sandbox.js"):
        response = await client.get(path)
        assert response.status == 404, path
    assert (await client.post("/sandbox/api/login", json={"user": "aming"})).status == 404
    values = [v for v in app._state.values()]  # what the started app holds
    assert not any(isinstance(v, FakeWechat | FakeWechatPay) for v in values)
    from webapp.keys import settings_key

    assert (app[settings_key].wechat_api_base, app[settings_key].pay_api_base) == (WECHAT_API_BASE, PAY_API_BASE)
    from webapp.keys import device_control_key

    assert device_control_key not in app  # no switch simulator: supply commands wait for a real adapter


def test_nothing_but_the_demo_path_imports_the_sandbox():
    importers = []
    for package in ("settlement", "billing_engine", "webapp", "bot", "miniprogram_api", "ingest_api", "pages", "pay_api",
                    "server"):
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text("utf-8"))
            for node in ast.walk(tree):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                if any(n == "sandbox" or n.startswith("sandbox.") for n in names):
                    importers.append(str(path.relative_to(ROOT)))
    # the demo, and the field device simulators behind `pvsettle gateway simulate` and `bench gateway`
    assert sorted(importers) == ["server/bench/gateway.py", "server/cli/gateway.py", "server/cli/serve.py"]


async def test_the_demo_wiring_serves_the_sandbox_on_the_fake_wechat(settings, aiohttp_client):
    from sandbox.app import install
    from sandbox.fakes import sandbox_fakes_ctx
    from sandbox.switches import switches_ctx

    # no pay settings here: the sandbox plays WeChat and says WeChat Pay is off
    settings = dataclasses.replace(settings, wechat_api_base=WECHAT_API_BASE, pay_api_base=PAY_API_BASE)
    app = install(create_app(settings))
    assert app.cleanup_ctx[0] is sandbox_fakes_ctx  # before every resource that reads the settings
    assert _sandbox_resources(app)
    client = await aiohttp_client(app)
    from server.scheduler import scheduler_ctx
    from settlement.fakes.device_simulator import DeviceSimulator
    from webapp.keys import device_control_key

    # the demo's prepaid cut-offs and restores reach the switch simulator, there before the
    # scheduler that hands it to the prepaid job
    assert isinstance(app[device_control_key], DeviceSimulator)
    assert app.cleanup_ctx.index(switches_ctx) < app.cleanup_ctx.index(scheduler_ctx)

    page = await client.get("/sandbox/")
    assert page.status == 200 and "chart.umd.min.js?v=" in await page.text()
    users = await (await client.get("/sandbox/api/users")).json()
    assert (users["wechat"], users["pay"]) == (True, False)
    from settlement import models as m

    staff_ids = {u["key"]: u["staff_id"] for u in users["users"] if u["role"]}
    assert staff_ids == {key: (await m.Staff.get(name=name)).id
                         for key, name in (("operator", "沙箱运维小周"), ("admin", "沙箱财务老陈"))}

    code = (await (await client.post("/sandbox/api/login", json={"user": "aming"})).json())["code"]
    opened = await client.post("/api/v1/session", json={"code": code})  # code2session on the fake WeChat
    assert opened.status == 201 and (await opened.json())["me"]["bound"] is False
    again = await client.post("/api/v1/session", json={"code": code})
    assert again.status == 400  # a wx.login code is used once, as WeChat has it

    reply = await (await client.post("/sandbox/api/bot", json={"user": "operator", "text": "帮助"})).json()
    assert reply["status"] == 200 and "运维命令" in reply["reply"]  # signed XML accepted, staff recognised
    phone = await (await client.get("/sandbox/api/phone", params={"user": "operator"})).json()
    assert [(m["kind"], m["text"]) for m in phone["messages"]] == [("bot", "帮助")]

    refused = await client.post("/sandbox/api/pay", json={"user": "aming", "out_trade_no": "x"})
    assert refused.status == 503
    unknown = await client.post("/sandbox/api/login", json={"user": "nobody"})
    assert unknown.status == 404 and (await unknown.json())["error"]["code"] == "unknown_user"


async def test_binding_in_the_sandbox_mini_program_binds_the_official_account(settings, aiohttp_client):
    """#23 point 3: after binding with a code in the mini-program, 发电 / 账单 in the bot know the owner."""
    from sandbox.app import install
    from settlement import models as m
    from settlement.seeding import NoProgress, SeedSpec, seed_portfolio

    settings = dataclasses.replace(settings, wechat_api_base=WECHAT_API_BASE, pay_api_base=PAY_API_BASE)
    client = await aiohttp_client(install(create_app(settings)))  # its start opens the database
    await seed_portfolio(SeedSpec(plants=2, months=1, seed=3, telemetry_days=0), progress=NoProgress)
    owner = await m.Owner.all().order_by("id").first()
    invitation = (await (await client.post("/sandbox/api/invitation", json={"owner_id": owner.id})).json())
    code = (await (await client.post("/sandbox/api/login", json={"user": "aming"})).json())["code"]
    token = (await (await client.post("/api/v1/session", json={"code": code})).json())["token"]
    bound = await client.post("/api/v1/binding", json={"invitation_code": invitation["invitation_code"]},
                              headers={"Authorization": f"Bearer {token}"})
    assert bound.status == 200
    for word in ("账单", "发电"):
        reply = await (await client.post("/sandbox/api/bot", json={"user": "aming", "text": word})).json()
        assert reply["status"] == 200 and "还没有绑定" not in reply["reply"], reply
