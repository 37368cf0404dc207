"""The gateway's HTTP client of the server's /ingest/v1, one ``aiohttp.ClientSession``.

It posts exactly what any collector posts, with ``Authorization: Bearer <collector key>``:

=============================  ===================  ==============================================
kind                           path                 body
=============================  ===================  ==============================================
``readings``                   ``/readings``        ``{"readings": [{"meter", "register", "read_at", "value"}]}``
``telemetry``                  ``/telemetry``       ``{"samples": [{"device", "ts", "power_w", "energy_wh", "status"}]}``
``status``                     ``/device-status``   ``{"statuses": [{"device", "kind", "state", "observed_at", …}]}``
=============================  ===================  ==============================================

An answer 200 means the server judged every row and committed what it took (its rows refused
are in the answer). 5xx, 429, a connection that fails, a timeout: the server may be back later,
:class:`~gateway.errors.UplinkError` with ``retry`` True. 401: the key is wrong or switched
off — retried too (an operator fixes the key on the server; the rows wait). 400 and 413: sending
the same body again cannot help, ``retry`` False.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp

from gateway.errors import UplinkError

PATHS = {"readings": "/ingest/v1/readings", "telemetry": "/ingest/v1/telemetry", "status": "/ingest/v1/device-status"}
BODY_KEYS = {"readings": "readings", "telemetry": "samples", "status": "statuses"}


class Uplink:
    """Posts batches to one server.

    Parameters
    ----------
    server : str
        The server's base URL (``https://host``).
    key : str
        The collector key.
    timeout_s : float
        One request, connection to answer [s].
    """

    def __init__(self, server: str, key: str, *, timeout_s: float = 30.0):
        self.server = server.rstrip("/")
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "Uplink":
        self.session = aiohttp.ClientSession(timeout=self.timeout)
        return self

    async def __aexit__(self, *exc) -> None:
        if self.session is not None:
            await self.session.close()

    async def post(self, kind: str, rows: list[dict]) -> dict:
        """Post one batch; the server's answer (its counts and refused rows).

        Raises
        ------
        UplinkError
            The batch was not taken (see the module docstring for ``retry``).
        """
        assert self.session is not None, "use the Uplink as `async with`"
        body = json.dumps({BODY_KEYS[kind]: rows}, separators=(",", ":")).encode()
        url = self.server + PATHS[kind]
        try:
            async with self.session.post(url, data=body, headers=self.headers) as resp:
                text = await resp.text()
                status = resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise UplinkError(f"{url}: {type(exc).__name__}: {exc}") from None
        if status == 200:
            try:
                return json.loads(text)
            except ValueError:
                raise UplinkError(f"{url}: answered 200 with a body that is not JSON", status=status) from None
        retry = status >= 500 or status in (401, 408, 429)
        raise UplinkError(f"{url}: answered {status}: {text[:300]}", status=status, retry=retry)
