"""The gateway process: each device polled on its schedule, what it read queued, the queue forwarded.

* **Schedule.** Each device has its own loop; its first poll is spread over its interval (so a
  thousand meters configured at once do not all ask at second 0), then one every ``interval_s``
  on a fixed grid (no drift; a poll that overran skips to the next slot). Devices on one link
  take turns (the link's lock): an RS-485 bus carries one conversation at a time.
* **Faults** (:class:`~gateway.errors.DeviceFault`) make no readings. The device is asked again
  sooner than its interval, then less and less often: ``RETRY_FIRST_S`` × 2^(n−1) after the
  n-th fault in a row, at most ``RETRY_MAX_S`` or the interval if that is longer — a dead meter
  must not take the bus's time from the living. Its status is reported to the server when it
  changes (``offline`` for unreachable and timeout, ``fault`` for the rest, ``online`` when it
  answers again), through the same queue as the readings, so an outage of the server does not
  lose the story either.
* **Forwarding.** One task sends the queue (:mod:`gateway.queue`): statuses, readings, samples,
  each oldest first, woken by every poll that queued something; while the server is away it
  waits ``FORWARD_RETRY_FIRST_S`` doubling to ``FORWARD_RETRY_MAX_S`` between attempts.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.config import GatewayConfig, InverterConfig, MeterConfig
from gateway.errors import DeviceFault, UplinkError
from gateway.inverters import ModbusLink
from gateway.meters import MeterLink
from gateway.queue import KINDS, Queue
from gateway.uplink import Uplink

log = logging.getLogger("pvsettle.gateway")
UTC = dt.timezone.utc
RETRY_FIRST_S = 5.0
RETRY_MAX_S = 600.0
FORWARD_RETRY_FIRST_S = 1.0
FORWARD_RETRY_MAX_S = 60.0
OFFLINE_CODES = ("unreachable", "timeout")
#: Rows one POST may carry per kind (the server answers 413 above).
SERVER_LIMITS = {"readings": 5_000, "telemetry": 10_000, "status": 2_000}
FORWARD_ORDER = ("status", "readings", "telemetry")


def retry_delay(failures: int, interval_s: float) -> float:
    """Seconds until a device that failed ``failures`` times in a row is asked again [s]."""
    first = min(RETRY_FIRST_S, interval_s)
    return min(first * 2 ** (failures - 1), max(RETRY_MAX_S, interval_s))


@dataclass
class DeviceState:
    """What the gateway knows of one device (for the status reports and ``gateway check``)."""

    serial: str
    kind: str  # "meter" | "inverter"
    state: str = ""  # last reported: "online" | "offline" | "fault"; "" before the first poll
    code: str = ""
    message: str = ""
    failures: int = 0
    polls: int = 0
    faults: int = 0
    last_ok: float | None = None  # [s, monotonic]
    address: str = ""  # a meter's discovered address


@dataclass
class Stats:
    polls: int = 0
    meter_polls: int = 0  # answered well
    inverter_polls: int = 0
    faults: int = 0
    rows_sent: dict[str, int] = field(default_factory=lambda: {k: 0 for k in KINDS})
    rows_refused: dict[str, int] = field(default_factory=lambda: {k: 0 for k in KINDS})
    posts_failed: int = 0


class Gateway:
    """Polls the configured devices and forwards what they said.

    Parameters
    ----------
    config : GatewayConfig
    queue : Queue, optional
        Default: the file the config names.
    now : callable, optional
        The clock of readings and statuses (aware UTC); tests may set it.
    """

    def __init__(self, config: GatewayConfig, *, queue: Queue | None = None,
                 now: Callable[[], dt.datetime] | None = None):
        self.config = config
        self.queue = queue or Queue(config.queue)
        self.now = now or (lambda: dt.datetime.now(UTC))
        self.meter_links = {n: MeterLink(l) for n, l in config.links.items() if l.protocol == "dlt645"}
        self.modbus_links = {n: ModbusLink(l) for n, l in config.links.items() if l.protocol == "modbus"}
        self.devices = {d.serial: DeviceState(d.serial, "meter") for d in config.meters}
        self.devices.update({d.serial: DeviceState(d.serial, "inverter") for d in config.inverters})
        self.stats = Stats()
        self.limits = {k: min(config.batch_size, SERVER_LIMITS[k]) for k in KINDS}
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()

    # --- one poll --------------------------------------------------------------------------

    async def poll_meter(self, meter: MeterConfig) -> bool:
        """Poll ``meter`` once and queue its readings or its fault; True when it answered well."""
        state = self.devices[meter.serial]
        link = self.meter_links[meter.link]
        try:
            if meter.address == "discover" and not state.address:
                state.address = await link.discover()
            read = await link.read_meter(meter, address=state.address or None, now=self.now())
        except DeviceFault as fault:
            self._fault(state, fault)
            return False
        self.queue.put("readings", read.readings())
        self.stats.meter_polls += 1
        self._ok(state)
        return True

    async def poll_inverter(self, inverter: InverterConfig) -> bool:
        """Poll ``inverter`` once and queue its sample or its fault; True when it answered well."""
        state = self.devices[inverter.serial]
        try:
            read = await self.modbus_links[inverter.link].read_inverter(inverter, self.config.register_maps,
                                                                        now=self.now())
        except DeviceFault as fault:
            self._fault(state, fault)
            return False
        self.queue.put("telemetry", [read.sample()])
        self.stats.inverter_polls += 1
        if read.alarms:  # it answers, and says something is wrong: staff see it with the status
            self._ok(state, "alarms", "alarms set: " + ", ".join(read.alarms))
        else:
            self._ok(state)
        return True

    def _ok(self, state: DeviceState, code: str = "", message: str = "answering") -> None:
        state.polls += 1
        state.failures = 0
        state.last_ok = time.monotonic()
        self.stats.polls += 1
        if (state.state, state.code, state.message) != ("online", code, message):
            self._report(state, "online", code, message)
        self._wake.set()

    def _fault(self, state: DeviceState, fault: DeviceFault) -> None:
        state.polls += 1
        state.faults += 1
        state.failures += 1
        self.stats.polls += 1
        self.stats.faults += 1
        new = "offline" if fault.code in OFFLINE_CODES else "fault"
        if (new, fault.code) != (state.state, state.code):
            log.warning("device %s: %s", state.serial, fault)
            self._report(state, new, fault.code, fault.message)
            self._wake.set()

    def _report(self, state: DeviceState, new: str, code: str, message: str) -> None:
        state.state, state.code, state.message = new, code, message
        self.queue.put("status", [{"device": state.serial, "kind": state.kind, "state": new,
                                   "observed_at": self.now().isoformat(timespec="microseconds"), "code": code,
                                   "message": message[:300]}])

    # --- loops -----------------------------------------------------------------------------

    async def _device_loop(self, interval_s: float, offset_s: float, poll: Callable, device) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + offset_s
        while not self._stop.is_set():
            await asyncio.sleep(max(0.0, due - loop.time()))
            try:
                ok = await poll(device)
            except Exception:  # a bug or a full disk, not the device: said loudly, the others go on
                log.exception("polling %s failed", device.serial)
                self.devices[device.serial].failures += 1
                ok = False
            state = self.devices[device.serial]
            if ok:
                due += interval_s
                if due < loop.time():  # overran (a slow bus): the next slot on the grid, not a burst
                    due += ((loop.time() - due) // interval_s + 1) * interval_s
            else:
                due = loop.time() + retry_delay(state.failures, interval_s)

    async def forward_once(self, uplink: Uplink) -> bool:
        """Send everything queued, oldest first per kind; False when the server did not take a batch."""
        for kind in FORWARD_ORDER:
            while (batch := self.queue.take(kind, self.limits[kind])) is not None:
                try:
                    answer = await uplink.post(kind, batch.rows)
                except UplinkError as exc:
                    self.stats.posts_failed += 1
                    if exc.status == 413 and self.limits[kind] > 1:
                        self.limits[kind] = max(1, self.limits[kind] // 2)
                        log.warning("the server found a %s batch too large: %d rows a batch from now on", kind,
                                    self.limits[kind])
                        continue
                    if exc.retry or exc.status == 413:
                        log.warning("%s not sent, kept in the queue: %s", kind, exc)
                        return False
                    log.error("the server refused a %s batch as a whole, %d rows moved aside (dead): %s", kind,
                              len(batch.ids), exc)
                    self.queue.bury(batch, str(exc))
                    continue
                self.queue.done(batch)
                refused = int(answer.get("rejected", 0))
                self.stats.rows_sent[kind] += len(batch.rows) - refused
                self.stats.rows_refused[kind] += refused
                # readings answer per row ("results"), telemetry and statuses list the refused ("errors")
                refusals = answer.get("errors") or [r.get("error", r) for r in answer.get("results", [])
                                                    if r.get("status") == "rejected"]
                for error in refusals[:20]:
                    log.warning("the server refused a %s row: %s", kind, error.get("message", error))
        return True

    async def _forward_loop(self, uplink: Uplink) -> None:
        delay = FORWARD_RETRY_FIRST_S
        while not self._stop.is_set():
            self._wake.clear()
            try:
                sent = await self.forward_once(uplink)
            except Exception:  # not the server's answer (that is UplinkError): a bug, said loudly, tried again
                log.exception("forwarding the queue failed")
                sent = False
            if sent:
                delay = FORWARD_RETRY_FIRST_S
                try:
                    await asyncio.wait_for(self._wake.wait(), self.config.flush_interval_s)
                except asyncio.TimeoutError:
                    pass  # nothing new: look again anyway (rows left by a crash, a retry)
            else:
                await asyncio.sleep(delay)
                delay = min(delay * 2, FORWARD_RETRY_MAX_S)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def run(self) -> dict:
        """Poll and forward until :meth:`stop`; then send what is queued once more and close.

        Returns
        -------
        dict
            What it did: polls answered well per kind, faults, rows sent and refused per kind,
            rows still queued, ``wall_s`` [s] and ``cpu_s`` [s] (this process's CPU time).
        """
        wall, cpu = time.monotonic(), time.process_time()
        tasks = []
        meters, inverters = self.config.meters, self.config.inverters
        for i, meter in enumerate(meters):
            tasks.append(self._device_loop(meter.interval_s, meter.interval_s * i / max(1, len(meters)),
                                           self.poll_meter, meter))
        for i, inverter in enumerate(inverters):
            tasks.append(self._device_loop(inverter.interval_s, inverter.interval_s * i / max(1, len(inverters)),
                                           self.poll_inverter, inverter))
        async with Uplink(self.config.server, self.config.key) as uplink:
            running = [asyncio.create_task(t) for t in tasks]
            forwarder = asyncio.create_task(self._forward_loop(uplink))
            try:
                await self._stop.wait()
            finally:
                for task in running + [forwarder]:
                    task.cancel()
                await asyncio.gather(*running, forwarder, return_exceptions=True)
                try:
                    await asyncio.wait_for(self.forward_once(uplink), 10)
                except asyncio.TimeoutError:
                    log.warning("the queue was not sent in full at stop; it is sent at the next start")
                summary = {"meter_polls": self.stats.meter_polls, "inverter_polls": self.stats.inverter_polls,
                           "faults": self.stats.faults, "rows_sent": self.stats.rows_sent,
                           "rows_refused": self.stats.rows_refused, "queued": self.queue.pending(),
                           "wall_s": round(time.monotonic() - wall, 3), "cpu_s": round(time.process_time() - cpu, 3)}
                await self.close()
        return summary

    async def close(self) -> None:
        for link in [*self.meter_links.values(), *self.modbus_links.values()]:
            await link.close()
        self.queue.close()

    async def check(self) -> list[dict]:
        """Probe every device once (nothing is queued or sent): what ``gateway check`` prints."""
        found = []
        for meter in self.config.meters:
            link = self.meter_links[meter.link]
            row = {"device": meter.serial, "kind": "meter", "link": meter.link, "where": link.where,
                   "address": meter.address}
            try:
                address = await link.discover() if meter.address == "discover" else meter.address
                row["address"] = address
                read = await link.read_meter(meter, address=address, now=self.now())
                row.update(state="online", registers={k: f"{v:.2f}" for k, v in read.registers.items()},
                           power_kw=None if read.power_kw is None else f"{read.power_kw:.4f}",
                           clock_skew_s=round(read.clock_skew_s or 0.0, 1))
            except DeviceFault as fault:
                row.update(state="offline" if fault.code in OFFLINE_CODES else "fault", code=fault.code,
                           message=fault.message)
            found.append(row)
        for inverter in self.config.inverters:
            link = self.modbus_links[inverter.link]
            row = {"device": inverter.serial, "kind": "inverter", "link": inverter.link, "where": link.where,
                   "unit": inverter.unit, "map": inverter.map}
            try:
                read = await link.read_inverter(inverter, self.config.register_maps, now=self.now())
                chain = link.chains.get(inverter.unit)
                if chain is not None:
                    row.update(sunspec_base=chain.base, models=sorted(chain.models),
                               serial_number=chain.serial_number)
                row.update(state="online", energy_wh=read.energy_wh, power_w=read.power_w, status=read.status,
                           alarms=list(read.alarms))
            except DeviceFault as fault:
                row.update(state="offline" if fault.code in OFFLINE_CODES else "fault", code=fault.code,
                           message=fault.message)
            found.append(row)
        return found
