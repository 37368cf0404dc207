"""The demo's prepaid supply switches: every cut-off and restore command reaches the simulator.

``pvsettle serve`` has no meter-vendor adapter yet, so there its supply commands wait, pending,
for a process that has one; the demo answers them with :class:`DeviceSimulator`, which accepts
any switch, so a prepaid account in the sandbox goes through cut-off and restore for real.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from settlement.prepaid import accounts as prepaid
from settlement.fakes.device_simulator import DeviceSimulator

switches_key = web.AppKey("sandbox_switches_key", DeviceSimulator)


async def switches_ctx(app: web.Application) -> AsyncIterator[None]:
    """The simulator as this process's device-control adapter for as long as the demo runs."""
    app[switches_key] = simulator = DeviceSimulator(accept_unknown=True)
    prepaid.use_device(simulator)
    yield
    prepaid.use_device(None)
