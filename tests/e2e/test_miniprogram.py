"""The owners' mini-program (``miniprogram/``) in the README's test command.

Its tests are Node's (jest + miniprogram-simulate): ``npm ci`` from the committed lock file,
then ``npm test`` (every page rendered under miniprogram-simulate; the client's calls and the
fields its pages read checked against the OpenAPI document). Then the contract walk: a
``pvsettle demo`` in its own process, the mini-program's own pages and API client driven in Node
with a ``wx`` that speaks HTTP to it and plays wx.login / wx.requestPayment through the
sandbox's fakes (``miniprogram/contract/``): 阿明 logs in, binds, watches the live power,
confirms a form, disputes another with a photo, pays the bill (its receipt: the paid bill, its
payment, the payment_received message), reports a fault with two photos and makes a share code;
小红 redeems it, binds to the prepaid account's owner and tops the account up. This test reads
the database afterwards.

``npm ci`` runs only when ``node_modules`` was not made from this very lock file (its SHA-256
is written beside the packages after a successful ``npm ci``). Without node and npm the tests
skip, except in CI (``CI`` set), where they fail: ``.ci/run`` installs Debian's nodejs and npm.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.processes import ServerProcess, demo_environment, free_port
from tests.e2e.test_sandbox_browser import _png, _two_plant_owners

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "miniprogram"
STAMP = APP / "node_modules" / ".pvsettle-lock-sha256"


def _tools() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node and npm:
        return node, npm
    if os.environ.get("CI"):
        pytest.fail("node and npm are missing: .ci/run installs Debian's nodejs and npm (ensure_node)")
    pytest.skip("node and npm are missing (apt-get install nodejs npm)")


def _run(args: list[str], timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=APP, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def npm() -> str:
    """npm, with ``node_modules`` installed from the committed lock file."""
    _, npm = _tools()
    lock = hashlib.sha256((APP / "package-lock.json").read_bytes()).hexdigest()
    if not (STAMP.is_file() and STAMP.read_text().strip() == lock):
        done = _run([npm, "ci", "--no-audit", "--no-fund"], timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        STAMP.write_text(lock + "\n")
    return npm


def test_openapi_snapshot_is_the_generated_document():
    """The Node tests compare the client with miniprogram/test/openapi.json: it must be the
    document the server generates now (regenerate it with the command in the README)."""
    from miniprogram_api import app  # noqa: F401  (registers every route)
    from miniprogram_api.openapi import document_bytes

    committed = json.loads((APP / "test" / "openapi.json").read_text("utf-8"))
    assert committed == json.loads(document_bytes()), "miniprogram/test/openapi.json is stale: regenerate it"


def test_npm_test(npm):
    """Every page under miniprogram-simulate, the API client, and the OpenAPI checks."""
    done = _run([npm, "test", "--", "--ci"], timeout=600)
    print(done.stdout[-4000:], done.stderr[-8000:])
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-20000:]
    assert "failed" not in done.stderr.split("Tests:")[-1].split("\n")[0], done.stderr[-4000:]


@pytest.fixture
async def demo(tmp_path, database_factory, redis_prefix):
    port = free_port()
    async with demo_environment(database_factory, redis_prefix, tmp_path / "var") as (env, url):
        env["PVSETTLE_PORT"] = str(port)
        server = ServerProcess(["demo", "--plants", "12"], env, tmp_path, port)
        server.database_url = url
        try:
            await server.wait_healthy()
            yield server
        finally:
            assert server.stop(signal.SIGINT) == 0, server.output()
        assert '"level": "error"' not in server.output(), server.output()


async def _get(base: str, path: str):
    async with aiohttp.ClientSession() as session:
        async with session.get(base + path) as response:
            assert response.status == 200, (path, response.status, await response.text())
            return await response.json()


async def _post(base: str, path: str, body: dict) -> dict:
    async with aiohttp.ClientSession() as session:
        async with session.post(base + path, json=body) as response:
            assert response.status == 200, (path, response.status, await response.text())
            return await response.json()


async def _until(what: str, check, seconds: float):
    import asyncio
    import time

    deadline = time.monotonic() + seconds
    while True:
        found = await check()
        if found:
            return found
        assert time.monotonic() < deadline, f"no {what} within {seconds} s"
        await asyncio.sleep(0.5)


async def test_contract_walk_on_a_real_demo(npm, demo, tmp_path):
    base = demo.base
    # the served document is the one the Node tests checked the client against
    assert await _get(base, "/api/v1/openapi.json") == json.loads((APP / "test" / "openapi.json").read_text("utf-8"))
    prepaid = await _prepaid_account(demo.database_url)
    owners = await _until("owner of two plants with forms sent", lambda: _two_plant_owners(base), 60)
    # 阿明 binds to an owner of two plants; 小红 to the prepaid account's owner (another one)
    owner = next(o for o in owners if o["id"] != prepaid["owner_id"])
    invitation = (await _post(base, "/sandbox/api/invitation", {"owner_id": owner["id"]}))["invitation_code"]
    prepaid_invitation = (await _post(base, "/sandbox/api/invitation", {"owner_id": prepaid["owner_id"]}))[
        "invitation_code"]
    templates = (await _get(base, "/sandbox/api/users"))["templates"]
    photos = []
    for name in ("meter.png", "inverter.png"):
        (tmp_path / name).write_bytes(_png())
        photos.append(str(tmp_path / name))
    result_file = tmp_path / "walk.json"
    env = {**os.environ, "PVSETTLE_BASE": base, "MP_USER": "aming", "MP_INVITATION": invitation,
           "MP_TEMPLATES": json.dumps(templates), "MP_PHOTOS": json.dumps(photos), "MP_RESULT": str(result_file),
           "MP_PREPAID_USER": "xiaohong", "MP_PREPAID_INVITATION": prepaid_invitation,
           "MP_PREPAID_PLANT": str(prepaid["plant_id"]), "MP_PREPAID_NUMBER": prepaid["number"]}
    done = _run([npm, "run", "contract", "--", "--ci"], timeout=400, env=env)
    print(done.stderr[-3000:])
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-20000:] + demo.output()[-6000:]
    walked = json.loads(result_file.read_text())
    print("walked:", walked)
    assert walked.get("topped_up") == prepaid["number"], walked  # both tests of the walk ran to their end

    # the receipt: the payment_received subscribe message the dispatcher sent through the fake WeChat
    async def receipt():
        phone = await _get(base, "/sandbox/api/phone?user=aming")
        return [m for m in phone["messages"] if m.get("template") == "payment_received"
                and walked["bill_number"] in json.dumps(m.get("data"), ensure_ascii=False)]

    assert await _until("payment_received message", receipt, 30)
    await _check_database(demo.database_url, walked, owner, templates, prepaid)


async def _prepaid_account(url: str) -> dict:
    """The demo's prepaid account (one, on a plant of its own owner): its number, plant and owner."""
    from settlement import models as m
    from settlement.infra import db as database

    await database.open_database(url)
    try:
        account = await m.PrepaidAccount.all().first()
        assert account is not None and account.plant_id is not None
        return {"id": account.id, "number": account.number, "plant_id": account.plant_id,
                "owner_id": account.owner_id}
    finally:
        await database.close_database()


async def _check_database(url: str, walked: dict, owner: dict, templates: dict, prepaid: dict) -> None:
    from settlement import models as m
    from settlement.infra import db as database

    await database.open_database(url)
    try:
        form = await m.ConfirmationForm.get(id=walked["confirmed_form"])
        assert form.state == m.FormState.CONFIRMED and form.answered_by_id is not None
        identity = await m.WechatIdentity.get(id=form.answered_by_id)
        assert (await m.Owner.get(id=owner["id"])).id == owner["id"]
        bill = await m.Bill.get(id=walked["paid_bill"])
        assert bill.form_id == form.id and bill.state == m.BillState.PAID and bill.owner_id == owner["id"]
        payments = await m.Payment.filter(bill_id=bill.id)
        assert len(payments) == 1 and payments[0].channel == m.PaymentChannel.WECHAT
        assert payments[0].payer_id == identity.id
        disputed = await m.ConfirmationForm.get(id=walked["disputed_form"])
        assert disputed.state == m.FormState.DISPUTED
        assert await m.Attachment.filter(form_id=disputed.id).count() == 1
        fault = await m.FaultReport.get(id=walked["fault"])
        assert fault.plant_id == walked["plants"][0] and fault.text == "逆变器指示灯不亮"
        assert await m.Attachment.filter(fault_id=fault.id).count() == 2
        # what the taps asked WeChat for reached the server: each template accepted
        answers = {row.template_id: row.answer for row in await m.SubscribeAcceptance.filter(identity_id=identity.id)}
        for name in ("bill_issued", "payment_received", "form_sent", "fault_update"):
            assert answers.get(templates[name]) == m.SubscribeAnswer.ACCEPT, (name, answers)

        # the second user: the shared plant's view right, and the top-up on the prepaid account
        granted = await m.PlantAccess.filter(plant_id=walked["plants"][0], right=m.PlantRight.VIEW, revoked_at=None)
        assert len(granted) == 1 and granted[0].identity_id != identity.id
        topups = await m.PrepaidEntry.filter(account_id=prepaid["id"], kind=m.EntryKind.TOPUP, amount_fen=5000)
        assert len(topups) == 1 and topups[0].payer_id == granted[0].identity_id
        # the ledger: the top-up added its 5,000 fen to what was available just before it
        prior = await m.PrepaidEntry.filter(account_id=prepaid["id"], id__lt=topups[0].id).order_by("-id").first()
        assert topups[0].available_after_fen == (prior.available_after_fen if prior else 0) + 5000
    finally:
        await database.close_database()
