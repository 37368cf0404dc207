"""``pvsettle gateway run`` as a process: SIGKILLed while the server is away, started again on its
queue; every reading it read arrives exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import datetime as dt
from pathlib import Path

from settlement import models as m
from tests.e2e.processes import PVSETTLE
from tests.gateway.conftest import GEN_ADDRESS, GRID_ADDRESS, KEY, config_text


def start(config: Path, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen([PVSETTLE, "gateway", "run", "--config", str(config), "--log-level", "WARNING"],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=os.environ.copy())


def queued(path: Path) -> list[tuple[str, dict]]:
    """What a gateway's queue file holds (read beside it: WAL lets a reader in)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [(kind, json.loads(row)) for kind, row in db.execute("SELECT kind, row FROM outbox ORDER BY id")]
    finally:
        db.close()


async def until(check, what: str, proc: subprocess.Popen, log: Path, tries: int = 600) -> None:
    for _ in range(tries):
        if await check():
            return
        assert proc.poll() is None, f"the gateway exited {proc.returncode}:\n{log.read_text()}"
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} did not happen:\n{log.read_text()}")


async def test_a_gateway_sigkilled_during_a_server_outage_loses_and_doubles_nothing(outage, bus, inverters, tmp_path):
    queue = tmp_path / "queue.sqlite3"
    key_file = tmp_path / "gateway.key"
    key_file.write_text(KEY + "\n")
    config = tmp_path / "gateway.toml"
    text = config_text(outage.url, bus.port, inverters.port, interval_s=1.0, queue=str(queue))
    config.write_text(text.replace("[gateway]\n", f'[gateway]\nkey_file = "{key_file}"\n'))
    log = tmp_path / "gateway.log"

    proc = start(config, log)
    try:
        await until(lambda: _count(m.Reading, 20), "readings through the running gateway", proc, log)
        outage.mode = "down"
        async def piled_up():
            return sum(1 for kind, _ in queued(queue) if kind == "readings") >= 40
        await until(piled_up, "readings queued during the outage", proc, log)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    left = [row for kind, row in queued(queue) if kind == "readings"]
    assert left

    outage.mode = "up"
    proc = start(config, log)
    try:
        async def all_in():
            stored = set(await m.Reading.all().values_list("meter__serial", "register", "read_at"))
            return not [r for r in queued(queue) if r[0] == "readings"] and len(stored) >= 20 + len(left)
        await until(all_in, "the queue left by the killed gateway sent", proc, log)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    readings = await m.Reading.all().values_list("meter__serial", "register", "read_at", "value", "revision")
    keys = [(r[0], r[1], r[2]) for r in readings]
    assert len(keys) == len(set(keys)) and {r[4] for r in readings} == {0}  # nothing doubled, nothing corrected
    stored = {(r[0], r[1], r[2].isoformat()): r[3] for r in readings}
    for row in left:  # nothing the killed gateway had queued is lost
        at = dt.datetime.fromisoformat(row["read_at"]).astimezone(dt.timezone.utc)
        assert (row["meter"], row["register"], at.isoformat()) in {(k[0], k[1], k[2]) for k in stored}, row
    polls = {}
    for serial, register, at in keys:  # every poll whole: its 10 registers, or none
        polls.setdefault((serial, at), set()).add(register)
    assert {len(regs) for regs in polls.values()} == {10}
    for serial, address in (("M-GEN-1", GEN_ADDRESS), ("M-GRID-1", GRID_ADDRESS)):
        answered = bus.meters[address].clock_reads
        read = sum(1 for s, _ in polls if s == serial)
        # a poll the meter had answered but the gateway had not yet queued when it was killed (or
        # stopped) is not a reading yet: at most one per meter per stop
        assert answered - 2 <= read <= answered, (serial, answered, read)
    assert "Traceback" not in log.read_text()


async def _count(model, at_least: int) -> bool:
    return await model.all().count() >= at_least
