"""Run pvsettle as a user would: the installed console script, in its own process."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp

from webapp.settings import Settings

PVSETTLE = str(Path(sys.executable).parent / "pvsettle")


def backend_name() -> str:
    """This run's backends in a word, e.g. for a folder of artifacts: ``sqlite-emulated-redis``, ``postgres-redis``."""
    from tests.conftest import ON_POSTGRES, REDIS_URL

    return f"{'postgres' if ON_POSTGRES else 'sqlite'}-{'redis' if REDIS_URL else 'emulated-redis'}"


@contextlib.asynccontextmanager
async def demo_environment(database_factory, redis_prefix: str, var: Path):
    """The environment of a ``pvsettle demo`` on this run's backends, and its database URL.

    On the embedded default that is nothing of PVSETTLE_* (the demo makes its SQLite file under
    ``var``, as a newcomer's does); with PVSETTLE_DATABASE_URL naming PostgreSQL, a new empty
    database of this run's (the demo migrates and seeds it), and with PVSETTLE_REDIS_URL, that
    Redis under this test's key prefix. Both are removed afterwards.
    """
    from tests.conftest import ON_POSTGRES, REDIS_URL

    env = {k: v for k, v in os.environ.items() if not k.startswith("PVSETTLE_")}
    env["PVSETTLE_VAR_DIR"] = str(var)
    url = f"sqlite://{var / 'pvsettle.sqlite3'}"
    if ON_POSTGRES:
        url = await database_factory.empty()
        env["PVSETTLE_DATABASE_URL"] = url
    if REDIS_URL:
        env.update(PVSETTLE_REDIS_URL=REDIS_URL, PVSETTLE_REDIS_PREFIX=redis_prefix)
    try:
        yield env, url
    finally:
        if REDIS_URL:
            from settlement.infra.redis_client import Namespace, open_redis

            client = open_redis(REDIS_URL)
            await Namespace(redis_prefix).delete_all(client)
            await client.aclose()
        await database_factory.drop(url)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settings_env(settings: Settings, tmp_path: Path, **overrides: object) -> dict[str, str]:
    """The environment that gives a server process these settings (key files made as needed)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private, public = tmp_path / "merchant.pem", tmp_path / "wechatpay-public.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    settings = dataclasses.replace(
        settings, pay_mchid="1900000001", pay_apiv3_key="k" * 32, pay_private_key_path=str(private),
        pay_cert_serial="ABC123", pay_public_key_path=str(public), pay_public_key_id="PUB_KEY_ID_1",
        pay_notify_url="https://example.invalid/pay/notify", **overrides)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVSETTLE_")}
    for field in dataclasses.fields(Settings):
        env[Settings.env_name(field.name)] = str(getattr(settings, field.name))
    return env


class ServerProcess:
    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, port: int):
        self.port = port
        self.log_path = cwd / f"server-{port}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([PVSETTLE, *args], env=env, cwd=cwd, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait_healthy(self, timeout: float = 120.0) -> dict:
        """Poll /healthz until it answers 200 (start-up includes migration and seeding)."""
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.output()}")
                try:
                    async with session.get(self.base + "/healthz") as resp:
                        if resp.status == 200:
                            return await resp.json()
                except aiohttp.ClientConnectionError:
                    pass
                await _sleep(0.25)
        raise AssertionError(f"server not healthy within {timeout} s:\n{self.output()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                # where is it stuck? the stacks go to the log that the failing test prints
                self.proc.send_signal(signal.SIGUSR1)
                time.sleep(2)
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


# Run first in the child's new session, then replaced by the console script: makes the pty on fd 0
# the session's controlling terminal, so that Ctrl-C typed on it signals the server as at a shell.
_ON_TERMINAL = ("import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
                "os.execv(sys.argv[1], sys.argv[1:])")


class TerminalProcess(ServerProcess):
    """A server run at a person's terminal: a pseudo-terminal is its controlling terminal and its
    stdin, stdout and stderr (``isatty()`` is true on each), read into :meth:`output` as it comes."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, port: int):
        self.port = port
        self.master, slave = os.openpty()
        self._out = bytearray()
        try:
            self.proc = subprocess.Popen([sys.executable, "-c", _ON_TERMINAL, PVSETTLE, *args], env=env, cwd=cwd,
                                         stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
        finally:
            os.close(slave)  # the child's copies only: reads end (EIO) once it has exited
        # always drained: a terminal nobody reads fills up and blocks the server's writes
        self._reader = threading.Thread(target=self._read, name="pty-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: no process holds the terminal any more
                return
            if not chunk:
                return
            self._out += chunk

    def output(self) -> str:
        """What the terminal showed, its CR LF line ends as LF."""
        return bytes(self._out).decode(errors="replace").replace("\r\n", "\n")

    def type(self, keys: bytes) -> None:
        """Keys typed at the terminal (``b"\x03"`` is Ctrl-C)."""
        os.write(self.master, keys)

    def close(self) -> None:
        """After the process has exited: the rest of its output read, the terminal closed."""
        self._reader.join(10)
        os.close(self.master)


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)
