"""schemathesis against /api/v1/openapi.json, every check: no 5xx, every answer inside the
document, every request the document calls valid accepted and every other one refused.

The real app is served by an aiohttp runner on 127.0.0.1, port 0, in a thread of its own (the
schemathesis tests are synchronous and call it over HTTP with requests), seeded with two owners'
plants, forms, bills, fault reports and grants, and called with owner A's session token. The
WeChat port is the test fake. Examples per operation (:data:`MAX_EXAMPLES`) are counted, so a
hypothesis run that ends early fails; then schemathesis's stateful phase runs scenarios of
linked calls over the same server. The whole file stays within about a minute.

A schema cannot say which codes exist: the document marks each code only WeChat or this server
knows by a format of its own (``wx-login-code``, ``wx-phone-code``, ``pvsettle-invitation-code``,
``pvsettle-share-code``, ``pvsettle-cursor``) and photo parts by their image media types, and
here each gets a generator that makes real ones — as the mini-program gets them from wx.login,
staff, an owner, the previous page, the camera — so "valid data is accepted" is checked too.
Left out: the live stream (an endless body; it has its own tests) and the two calls that end the
session or the binding the rest of the run needs (tested in test_miniapp_session.py).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import struct
import threading
import uuid
import zlib
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from hypothesis import settings as hypothesis_settings

from schemathesis.generation.modes import GenerationMode

from webapp.keys import wechat_api_key
from webapp.settings import Settings
from tests.conftest import REDIS_URL, RUN_ID
from tests.integration.miniapp_support import FakeWechatApi, owner_world

MAX_EXAMPLES = 100  # per operation: each is a request or two to a local server
SCENARIOS, STEPS = 60, 8  # stateful phase: sequences of calls, and calls in each at most
CASES: collections.Counter[str] = collections.Counter()  # cases sent, per operation (and "stateful")


class ThreadedServer:
    """The whole app on 127.0.0.1:0, in a thread with its own event loop."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.fake = FakeWechatApi()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="api-under-test", daemon=True)
        self.runner = None
        self.port = 0
        self.token = ""
        self.world = None
        self.other = None
        self.identity = None

    def run(self, coro, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> None:
        from aiohttp import web

        from server.app import create_app
        from tests.integration.pay_support import make_fake, pay_settings

        # WeChat Pay played by its fake, so POST /bills/{bill_id}/pay answers orders, not 503
        self.fake_pay = make_fake(self.settings.mp_appid)
        await self.fake_pay.start()
        self.settings = pay_settings(self.settings, self.fake_pay, Path(self.settings.var_dir) / "pay-keys")
        app = create_app(self.settings)

        async def use_fake(app) -> None:
            app[wechat_api_key] = self.fake

        app.on_startup.append(use_fake)
        self.runner = web.AppRunner(app, shutdown_timeout=5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        a, self.identity = await owner_world("SA", "业主甲", "o-owner-a", self.settings.mp_appid)
        self.other, _ = await owner_world("SB", "业主乙", "o-owner-b", self.settings.mp_appid)
        self.world = a
        import aiohttp

        async with aiohttp.ClientSession() as session:
            async with session.post(f"{self.base}/api/v1/session",
                                    json={"code": self.fake.login_code("o-owner-a")}) as resp:
                assert resp.status == 201, await resp.text()
                self.token = (await resp.json())["token"]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ThreadedServer:
        self.thread.start()
        self.run(self._start())
        return self

    def stop(self) -> None:
        """Stop the app, and delete what it kept under its key prefix in a real Redis."""
        if self.settings.redis_url:
            from settlement.infra.redis_client import Namespace, open_redis

            async def forget() -> None:
                client = open_redis(self.settings.redis_url)
                await Namespace(self.settings.redis_prefix).delete_all(client)
                await client.aclose()

            self.run(forget())
        if self.runner is not None:
            self.run(self.runner.cleanup())
            self.run(self.fake_pay.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def served(database_factory, tmp_path_factory):
    url = asyncio.run(database_factory.migrated())
    prefix = f"pvsettle-test:{RUN_ID}:{uuid.uuid4().hex[:8]}:"
    settings = Settings(database_url=url, redis_url=REDIS_URL, redis_prefix=prefix,
                        var_dir=str(tmp_path_factory.mktemp("schemathesis-var")), scheduler_interval=0,
                        secret_key="s" * 40, mp_appid="wxtestmp0000000001", mp_secret="mp-secret",
                        wechat_api_base="http://127.0.0.1:9", pay_api_base="http://127.0.0.1:9",
                        # the run sends hundreds of requests a minute as one user: the limit is not under test
                        api_rate_limit=1_000_000)
    server = ThreadedServer(dataclasses.replace(settings)).start()
    yield server
    server.stop()


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A real PNG of one colour (8-bit RGB), written out by hand: no imaging library needed."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def register_generators(served: ThreadedServer) -> None:
    """Real values for the document's own formats and for photo parts (see the module docstring)."""
    from miniprogram_api.pagination import encode_cursor
    from miniprogram_api.registry import MAX_ID
    from settlement.owners import bindings
    from settlement.owners import grants
    from settlement import models as m
    from settlement.owners.access import load_principal

    async def share_code() -> str:  # of owner A's own plant, redeemed by A: 409 own_plant, a right answer
        principal = await load_principal(served.identity.id)
        return (await grants.create_share(principal, served.world.plant.id, m.PlantRight.VIEW))[0]

    async def invitation_code() -> str:  # for owner B, taken by A who is bound already: 409 already_bound
        staff = await m.Staff.get_or_none(name="schemathesis") or await m.Staff.create(
            name="schemathesis", role=m.StaffRole.OPERATOR)
        return (await bindings.issue_invitation(served.other.owner.id, staff))[0]

    secret = served.settings.secret_key
    schemathesis.openapi.format("pvsettle-cursor", st.integers(1, MAX_ID).map(lambda n: encode_cursor(n, secret)))
    schemathesis.openapi.format("wx-login-code", st.builds(lambda: served.fake.login_code("o-owner-a")))
    schemathesis.openapi.format("wx-phone-code", st.builds(lambda: served.fake.phone_code("13900000000")))
    schemathesis.openapi.format("pvsettle-invitation-code", st.builds(lambda: served.run(invitation_code())))
    schemathesis.openapi.format("pvsettle-share-code", st.builds(lambda: served.run(share_code())))
    schemathesis.openapi.media_type("image/png", st.builds(png, st.integers(1, 16), st.integers(1, 16),
                                                           st.tuples(*[st.integers(0, 255)] * 3)))


@pytest.fixture(scope="module")
def api_schema(served):
    register_generators(served)
    return with_the_servers_rejections(schemathesis.openapi.from_url(f"{served.base}/api/v1/openapi.json"))


def with_the_servers_rejections(schema):
    """``schema`` with 414 among the answers that reject a negative case: a query the generator
    makes longer than 8,190 bytes is refused by the server before any route (server.middleware,
    declared on every operation), and schemathesis's own list of rejections does not have 414."""
    check = schema.config.checks.negative_data_rejection
    check.expected_statuses = [*check.expected_statuses, "414"]  # a new list: the default is shared
    return schema


def _routes() -> list:
    from miniprogram_api.app import api

    return [r for r in api.routes if not r.stream and not (r.method == "DELETE" and r.path in ("/session", "/binding"))]


def _operations() -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in _routes()]


# One test per operation, each a hypothesis run over schemathesis's strategy for it (schema[path][method]);
# schemathesis's own pytest loader (from_fixture) does not run under pytest 9.
@pytest.mark.parametrize("method, path", _operations(), ids=lambda v: v)
def test_api_conforms_to_its_document(api_schema, served, method, path):
    operation = api_schema[path][method]
    names = [p for p in path.split("/") if p.startswith("{")]
    own = {name[1:-1]: served.world.id_of(name[1:-1]) for name in names}
    # random ids (almost all not found) and the seeded owner's own, so answers with data are checked too
    # the session header is given to the generator, so a negative case never claims to lack it
    auth = {"Authorization": f"Bearer {served.token}"}
    strategies = [operation.as_strategy(mode, headers=auth)
                  for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]
    if own:
        strategies.append(operation.as_strategy(GenerationMode.POSITIVE, path_parameters=own, headers=auth))

    @given(case=st.one_of(strategies))
    @hypothesis_settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                                HealthCheck.function_scoped_fixture])
    def check(case):
        CASES[f"{method} {path}"] += 1
        case.call_and_validate(base_url=f"{served.base}/api/v1", timeout=10)

    check()
    # hypothesis stops early only when it has made every case there is: for a route that takes nothing
    # (no path id, query or body) that is one
    route = next(r for r in _routes() if (r.method, r.path) == (method, path))
    takes = route.path_ids or route.query or route.body or route.multipart
    assert CASES[f"{method} {path}"] >= (MAX_EXAMPLES if takes else 1), CASES[f"{method} {path}"]


def test_api_holds_over_sequences_of_calls_linked_by_the_ids_they_return(api_schema, served):
    """schemathesis's stateful phase: scenarios of up to STEPS calls, each call's ids fed to the
    next through the links schemathesis infers from the document (a page's items to their detail
    and to what can be done with them: pay a bill, confirm or dispute a form, revoke a grant, top
    up an account), every check on every answer: what a call did must not make a later one fail
    or answer outside the document."""
    # a schema of its own (api_schema's fixture has registered the generators of the document's
    # formats): the session header is configured on it, so a negative case never lacks it
    schema = with_the_servers_rejections(schemathesis.openapi.from_url(f"{served.base}/api/v1/openapi.json"))
    schema.config.update(base_url=f"{served.base}/api/v1", headers={"Authorization": f"Bearer {served.token}"},
                         request_timeout=10)
    schema = schema.exclude(method="DELETE", path=["/session", "/binding"]).exclude(path_regex="/live$")
    machine = schema.as_state_machine()  # the links are inferred here
    assert len(schema.operations_with_incoming_links()) >= 10  # what the scenarios can follow

    class Workflow(machine):
        def after_call(self, response, case):
            CASES["stateful"] += 1

    before = CASES["stateful"]
    Workflow.run(settings=hypothesis_settings(max_examples=SCENARIOS, stateful_step_count=STEPS, deadline=None,
                                              database=None, phases=[Phase.generate],
                                              suppress_health_check=list(HealthCheck)))
    assert CASES["stateful"] - before >= 2 * SCENARIOS  # every scenario is two calls at least


def test_the_document_is_openapi_3_1_with_every_route(served):
    import json
    import urllib.request

    from miniprogram_api.app import api

    with urllib.request.urlopen(f"{served.base}/api/v1/openapi.json") as resp:
        document = json.loads(resp.read())
    assert document["openapi"] == "3.1.0"
    listed = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    assert listed == {(r.method, r.path) for r in api.routes}
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            if op["security"]:
                assert "401" in op["responses"], (method, path)
            if "{" in path:
                assert "404" in op["responses"], (method, path)
