"""The demo's prepaid supply switches: every cut-off and restore command reaches the simulator.

``pvsettle serve`` has no meter-vendor adapter yet, so there its supply commands wait, pending,
for a process that has one; the demo answers them with :class:`DeviceSimulator`, which accepts
any switch, so a prepaid account in the sandbox goes through cut-off and restore for real.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from settlement.fakes.device_simulator import DeviceSimulator
from webapp.keys import device_control_key


async def switches_ctx(app: web.Application) -> AsyncIterator[None]:
    """The simulator as this process's device-control adapter for as long as the demo runs.

    It must start before ``scheduler_ctx``, which hands the adapter under ``device_control_key``
    to the prepaid job (:func:`sandbox.app.install` puts it right after the fakes)."""
    app[device_control_key] = DeviceSimulator(accept_unknown=True)
    yield
