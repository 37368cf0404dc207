"""`pvsettle serve` as an operator runs it."""

import asyncio
import json
import signal

import aiohttp
import psutil
import pytest

from tests.conftest import REDIS_URL
from tests.e2e.processes import PVSETTLE, ServerProcess, free_port, settings_env

pytestmark = pytest.mark.slow


async def test_serve_one_worker_answers_and_stops_cleanly(settings, tmp_path):
    port = free_port()
    server = ServerProcess(["serve"], settings_env(settings, tmp_path, port=port), tmp_path, port)
    try:
        health = await server.wait_healthy()
        assert health == {"status": "ok", "db": "ok", "redis": "ok"}
    finally:
        assert server.stop(signal.SIGTERM) == 0, server.output()
    lines = [json.loads(line) for line in server.output().splitlines()]  # every log line is JSON
    starting = next(line for line in lines if line["msg"] == "starting")
    assert starting["settings"]["secret_key"] == "***"
    assert settings.secret_key not in server.output()  # secrets never logged


@pytest.mark.skipif(not REDIS_URL, reason="covered by the refusal test below on the embedded run")
async def test_serve_two_workers_share_one_port(settings, tmp_path):
    port = free_port()
    server = ServerProcess(["serve", "--workers", "2"], settings_env(settings, tmp_path, port=port),
                           tmp_path, port)
    try:
        await server.wait_healthy()
        # the worker processes, not multiprocessing's resource tracker
        workers = [p for p in psutil.Process(server.proc.pid).children() if "spawn_main" in " ".join(p.cmdline())]
        assert len(workers) == 2 and all(w.is_running() for w in workers)
        listening: set[int] = set()
        for _ in range(120):  # the first worker up answers /healthz; give the other its start-up too
            listening = {w.pid for w in workers
                         for c in w.net_connections(kind="tcp") if c.status == "LISTEN" and c.laddr.port == port}
            if listening == {w.pid for w in workers}:
                break
            await asyncio.sleep(0.25)
        assert listening == {w.pid for w in workers}  # both bound to the one port
        async with aiohttp.ClientSession() as session:
            statuses = await asyncio.gather(*(session.get(server.base + "/healthz") for _ in range(40)))
            assert {r.status for r in statuses} == {200}
    finally:
        assert server.stop(signal.SIGTERM) == 0, server.output()
    assert not any(w.is_running() for w in workers)


@pytest.mark.skipif(bool(REDIS_URL), reason="with a real Redis the two-worker test above runs instead")
def test_serve_refuses_several_workers_on_the_in_process_emulation(settings, tmp_path):
    import subprocess

    env = settings_env(settings, tmp_path, redis_url="")
    proc = subprocess.run([PVSETTLE, "serve", "--workers", "2"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "PVSETTLE_REDIS_URL is needed with --workers > 1" in proc.stderr
    assert "Traceback" not in proc.stderr


async def test_serve_without_any_wechat_pay_setting_runs_and_answers_503_where_pay_is_needed(settings, tmp_path):
    env = settings_env(settings, tmp_path)
    for name in ("MCHID", "APIV3_KEY", "PRIVATE_KEY_PATH", "CERT_SERIAL", "PUBLIC_KEY_PATH", "PUBLIC_KEY_ID",
                 "NOTIFY_URL"):
        env.pop(f"PVSETTLE_PAY_{name}")
    port = free_port()
    env["PVSETTLE_PORT"] = str(port)
    server = ServerProcess(["serve"], env, tmp_path, port)
    try:
        await server.wait_healthy()
        async with aiohttp.ClientSession() as session:
            async with session.post(server.base + "/pay/notify", data=b"{}",
                                    headers={"Content-Type": "application/json"}) as resp:
                assert resp.status == 503  # WeChat Pay sends again later
    finally:
        assert server.stop(signal.SIGTERM) == 0, server.output()
    assert "WeChat Pay is off" in server.output()


def test_serve_with_some_wechat_pay_settings_names_the_missing_ones(settings, tmp_path):
    import subprocess

    env = settings_env(settings, tmp_path)
    del env["PVSETTLE_PAY_APIV3_KEY"], env["PVSETTLE_PAY_NOTIFY_URL"]
    proc = subprocess.run([PVSETTLE, "serve"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "PVSETTLE_PAY_APIV3_KEY is missing" in proc.stderr and "PVSETTLE_PAY_NOTIFY_URL is missing" in proc.stderr
    assert "PVSETTLE_PAY_MCHID" not in proc.stderr


def test_serve_without_notify_templates_refuses_and_says_how_to_choose_the_demo_ids(settings, tmp_path):
    import subprocess

    env = settings_env(settings, tmp_path)
    del env["PVSETTLE_NOTIFY_TEMPLATES"]
    proc = subprocess.run([PVSETTLE, "serve"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "PVSETTLE_NOTIFY_TEMPLATES is missing" in proc.stderr and "'demo'" in proc.stderr
