"""A simulator of prepaid sites' switches behind :class:`settlement.ports.device_control.DeviceControl`.

Each device has a supply state and remembers the command ids it has executed, so a command sent
again is acknowledged without switching twice, as a real head-end does. Every call is logged in
:attr:`DeviceSimulator.log` (what the tests assert on). Failures are injected per device:
:meth:`DeviceSimulator.silence` makes a device execute nothing and acknowledge nothing,
:meth:`DeviceSimulator.lose_acks` makes it execute commands whose acknowledgements are lost.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from settlement.ports.device_control import (
    CUT_OFF,
    RESTORE,
    Acknowledgement,
    CommandRefused,
    NotAcknowledged,
)
from settlement.clock import utc_now


@dataclass
class Call:
    command_id: str
    serial: str
    action: str
    outcome: str  # "executed", "repeat" (already executed: acknowledged again), "silent", "refused"
    at: dt.datetime


@dataclass
class DeviceSimulator:
    """Devices known by serial, all supplied at first; unknown serials are refused, unless
    ``accept_unknown`` (the demo: every switch exists)."""

    serials: set[str] = field(default_factory=set)
    supply_on: dict[str, bool] = field(default_factory=dict)
    executed: dict[str, set[str]] = field(default_factory=dict)
    silent: set[str] = field(default_factory=set)
    ack_lost: set[str] = field(default_factory=set)
    log: list[Call] = field(default_factory=list)
    accept_unknown: bool = False

    def add(self, serial: str) -> None:
        self.serials.add(serial)
        self.supply_on.setdefault(serial, True)
        self.executed.setdefault(serial, set())

    def silence(self, serial: str, silent: bool = True) -> None:
        """Make a device execute and acknowledge nothing (a dead link), or bring it back."""
        (self.silent.add if silent else self.silent.discard)(serial)

    def lose_acks(self, serial: str, lost: bool = True) -> None:
        """Make a device carry out commands but lose every acknowledgement (or stop doing so)."""
        (self.ack_lost.add if lost else self.ack_lost.discard)(serial)

    def executed_actions(self, serial: str) -> list[str]:
        """The actions the device really carried out, in order (repeats of an id are not)."""
        return [c.action for c in self.log if c.serial == serial and c.outcome == "executed"]

    async def send(self, command_id: str, serial: str, action: str) -> Acknowledgement:
        now = utc_now()
        if self.accept_unknown and serial not in self.serials:
            self.add(serial)
        if serial not in self.serials or action not in (CUT_OFF, RESTORE):
            self.log.append(Call(command_id, serial, action, "refused", now))
            raise CommandRefused(f"device {serial!r} does not take {action!r}")
        if serial in self.silent:
            self.log.append(Call(command_id, serial, action, "silent", now))
            raise NotAcknowledged(f"device {serial} did not answer command {command_id}")
        if command_id in self.executed[serial]:
            self.log.append(Call(command_id, serial, action, "repeat", now))
        else:
            self.executed[serial].add(command_id)
            self.supply_on[serial] = action == RESTORE
            self.log.append(Call(command_id, serial, action, "executed", now))
        if serial in self.ack_lost:
            raise NotAcknowledged(f"the acknowledgement of command {command_id} from {serial} was lost")
        return Acknowledgement(command_id=command_id, supply_on=self.supply_on[serial])
