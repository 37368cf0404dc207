"""The device-control port: remote cut-off and restore of a prepaid site's supply.

One adapter per meter vendor (DL/T 645 relay control through a head-end, a valve controller …);
``settlement.fakes.device_simulator`` plays the devices for the demo and the tests.

A command carries its own ``command_id``; sending the same id again must not switch twice (a
device, or its head-end, keeps the ids it has executed), so a retry after a lost
acknowledgement is harmless.

Exceptions::

    DeviceControlError        anything this port raises
    ├── NotAcknowledged       sent (or maybe sent) but no acknowledgement came back: retry later
    └── CommandRefused        the device or head-end refused the command (unknown device …)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

CUT_OFF = "cut_off"
RESTORE = "restore"


class DeviceControlError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NotAcknowledged(DeviceControlError):
    """No acknowledgement within the adapter's timeout: the command may or may not have run."""


class CommandRefused(DeviceControlError):
    """The command was refused: retrying the same command will not help, staff must look."""


@dataclass(frozen=True)
class Acknowledgement:
    """A device's word that it executed ``command_id``; ``supply_on`` is the state it reports."""

    command_id: str
    supply_on: bool


class DeviceControl(Protocol):
    async def send(self, command_id: str, serial: str, action: str) -> Acknowledgement:
        """Ask device ``serial`` to ``cut_off`` or ``restore`` supply and wait for its acknowledgement.

        Raises NotAcknowledged when none comes, CommandRefused when the command is refused.
        """
