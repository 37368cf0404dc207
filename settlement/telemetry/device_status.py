"""Field device status in: what a collector (a pvsettle gateway, a data logger) says of the meters
and inverters it polls — answering, silent, answering garbage — kept where staff look.

``POST /ingest/v1/device-status`` calls :func:`record_device_statuses`. A batch is judged row by
row, as readings and samples are; a refused row changes nothing.

The rules written down
----------------------
* **A row** is ``{"device": serial, "kind": "meter" | "inverter", "state": "online" | "offline"
  | "fault", "observed_at": ISO 8601, "code": text, "message": text}``; ``code`` and
  ``message`` may be missing (""). ``device`` must be a known meter's serial (kind "meter") or
  telemetry device's serial (kind "inverter"): a status of a device we do not know is refused,
  as its readings would be. ``observed_at`` without an offset is Asia/Shanghai local time; more
  than 5 minutes ahead of the receive time it is refused.
* **One row per (collector, device)**: the latest report wins. A report older than the stored
  one (a gateway replaying its queue after an outage) is *stale* and changes nothing; the same
  time again is a *duplicate*. ``since`` is kept while the state stays the same, and set to the
  report's time when it changes.
* **Not readings.** A status never makes a reading or a sample: a gateway reports faults here
  and nothing else.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tortoise.transactions import in_transaction

from settlement import text as outside_text
from settlement.clock import LOCAL, UTC, utc_now
from settlement.models import Collector, FieldDeviceStatus, Meter, TelemetryDevice

#: Rows one request may carry (413 above).
MAX_BATCH_STATUSES = 2_000
KINDS = ("meter", "inverter")
STATES = ("online", "offline", "fault")
FUTURE_TOLERANCE = dt.timedelta(minutes=5)
MAX_SERIAL = 64
MAX_CODE = 32
MAX_MESSAGE = 300


@dataclass
class StatusResult:
    """Per-row outcome of one batch: ``statuses[i]`` is "stored", "duplicate", "stale" or "rejected"."""

    statuses: list[str]
    errors: dict[int, tuple[str, str]] = field(default_factory=dict)  # index → (code, message)

    def as_dict(self) -> dict[str, Any]:
        """The HTTP answer."""
        return {"stored": self.statuses.count("stored"), "duplicates": self.statuses.count("duplicate"),
                "stale": self.statuses.count("stale"), "rejected": self.statuses.count("rejected"),
                "errors": [{"index": i, "code": c, "message": m} for i, (c, m) in sorted(self.errors.items())]}


class _Refused(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class _Row:
    device: str
    kind: str
    state: str
    observed_at: dt.datetime
    code: str
    message: str


def _text(index: int, row: dict, key: str, limit: int, *, required: bool) -> str:
    value = row.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise _Refused("missing_field" if value is None else "invalid_field",
                       f"row {index}: field {key!r} must be text" + (" (not empty)" if required else ""))
    if len(value) > limit:
        raise _Refused("invalid_field", f"row {index}: field {key!r} has more than {limit} characters")
    refused = outside_text.message(f"row {index}: field {key!r}", value)
    if refused is not None:
        raise _Refused(outside_text.CODE, refused)
    return value.strip()


def _parse(index: int, row: object, now: dt.datetime) -> _Row:
    if not isinstance(row, dict):
        raise _Refused("invalid_row", f"row {index} must be an object with device, kind, state and observed_at")
    device = _text(index, row, "device", MAX_SERIAL, required=True)
    kind = _text(index, row, "kind", 16, required=True)
    if kind not in KINDS:
        raise _Refused("invalid_field", f"row {index}: field 'kind' must be one of {', '.join(KINDS)}")
    state = _text(index, row, "state", 16, required=True)
    if state not in STATES:
        raise _Refused("invalid_field", f"row {index}: field 'state' must be one of {', '.join(STATES)}")
    raw = _text(index, row, "observed_at", 40, required=True)
    try:
        at = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise _Refused("invalid_field", f"row {index}: field 'observed_at' is not an ISO 8601 time") from None
    at = (at.replace(tzinfo=LOCAL) if at.tzinfo is None else at).astimezone(UTC)
    if at > now + FUTURE_TOLERANCE:
        raise _Refused("ts_in_future", f"row {index}: field 'observed_at' is {at.isoformat()}, after now")
    return _Row(device, kind, state, at, _text(index, row, "code", MAX_CODE, required=False),
                _text(index, row, "message", MAX_MESSAGE, required=False))


async def record_device_statuses(collector: Collector, rows: Sequence[object], *,
                                 now: dt.datetime | None = None) -> StatusResult:
    """Judge and store one batch of device status reports from ``collector``.

    Parameters
    ----------
    collector : Collector
        Who reported; a device's status is kept per collector (two gateways may watch one meter).
    rows : sequence
        The decoded rows of the body (see the module docstring).
    now : datetime, optional
        The receive time (UTC); default the clock's.

    Returns
    -------
    StatusResult
        Each row's outcome, in the order given.
    """
    now = now or utc_now()
    result = StatusResult(statuses=["rejected"] * len(rows))
    parsed: dict[int, _Row] = {}
    for index, row in enumerate(rows):
        try:
            parsed[index] = _parse(index, row, now)
        except _Refused as exc:
            result.errors[index] = (exc.code, str(exc))
    meters = set(await Meter.filter(serial__in=[r.device for r in parsed.values() if r.kind == "meter"])
                 .values_list("serial", flat=True))
    inverters = set(await TelemetryDevice.filter(serial__in=[r.device for r in parsed.values() if r.kind == "inverter"])
                    .values_list("serial", flat=True))
    for index, row in list(parsed.items()):
        if row.device not in (meters if row.kind == "meter" else inverters):
            result.errors[index] = ("unknown_device", f"row {index}: field 'device': no {row.kind} has the serial "
                                                      f"{outside_text.shown(row.device)!r}")
            del parsed[index]
    async with in_transaction():
        stored = {s.device: s for s in await FieldDeviceStatus.filter(
            collector_id=collector.id, device__in=list({r.device for r in parsed.values()})).select_for_update()}
        # in time order, so that a batch holding a device's whole story ends on its latest state
        for index, row in sorted(parsed.items(), key=lambda item: (item[1].observed_at, item[0])):
            current = stored.get(row.device)
            if current is None:
                stored[row.device] = await FieldDeviceStatus.create(
                    collector_id=collector.id, device=row.device, kind=row.kind, state=row.state, code=row.code,
                    message=row.message, observed_at=row.observed_at, since=row.observed_at, received_at=now)
                result.statuses[index] = "stored"
            elif row.observed_at == current.observed_at:
                result.statuses[index] = "duplicate"
            elif row.observed_at < current.observed_at:
                result.statuses[index] = "stale"
            else:
                if row.state != current.state:
                    current.since = row.observed_at
                current.kind, current.state, current.code, current.message = row.kind, row.state, row.code, row.message
                current.observed_at, current.received_at = row.observed_at, now
                await current.save()
                result.statuses[index] = "stored"
    return result
