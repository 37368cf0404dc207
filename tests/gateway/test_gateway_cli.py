"""``pvsettle gateway check`` and a bad configuration, through the console script."""

from __future__ import annotations

import asyncio
import json
import os

from tests.e2e.processes import PVSETTLE
from tests.gateway.conftest import GEN, GEN_ADDRESS, GRID, INV, KEY, config_text


async def pvsettle(*args: str) -> tuple[int, str, str]:
    # a child of the event loop, which keeps serving the simulators while the command asks them
    proc = await asyncio.create_subprocess_exec(PVSETTLE, *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE,
                                                env={**os.environ, "PVSETTLE_GATEWAY_KEY": KEY})
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode, out.decode(), err.decode()


async def test_check_probes_every_device_once_and_prints_what_it_found(bus, inverters, tmp_path):
    config = tmp_path / "site.toml"
    config.write_text(config_text("http://127.0.0.1:9", bus.port, inverters.port, timeout_s=0.3))
    bus.meters[GEN_ADDRESS].clock_skew_s = 900
    code, out, err = await pvsettle("gateway", "check", "--config", str(config), "--json")
    assert code == 1, err  # one device is not online
    found = {d["device"]: d for d in json.loads(out)["devices"]}
    assert (found[GEN]["state"], found[GEN]["code"]) == ("fault", "clock_skew")
    assert found[GRID]["state"] == "online" and found[GRID]["registers"]["00020400"] == "999.99"
    assert found[GRID]["power_kw"] == "0.5000"
    assert (found[INV]["state"], found[INV]["models"], found[INV]["serial_number"]) == ("online", [1, 103], "SN-G1")
    assert (found[INV]["energy_wh"], found[INV]["power_w"], found[INV]["status"]) == (1_234_567, 4321, "ok")

    bus.meters[GEN_ADDRESS].clock_skew_s = 0
    code, out, err = await pvsettle("gateway", "check", "--config", str(config))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["device", "kind", "link", "state", "what"]
    assert any(line.startswith(GEN) and "online" in line and "address 000012345601" in line for line in lines)


async def test_a_bad_configuration_exits_2_naming_the_line(tmp_path):
    config = tmp_path / "site.toml"
    config.write_text(config_text("http://127.0.0.1:9", 1, 2).replace('unit = 3', 'unit = "three"'))
    line = config.read_text().splitlines().index('unit = "three"') + 1
    for action in ("run", "check"):
        code, out, err = await pvsettle("gateway", action, "--config", str(config))
        assert code == 2 and out == ""
        assert err.strip() == (f"pvsettle gateway: {config}:{line}: inverter #1: 'unit' must be a whole number "
                               f"from 0 to 247, not 'three'")
