"""The one clock and the two time zones the whole server reads.

Every "now" in pvsettle comes from :func:`utc_now`, and every business date (a reading cycle's
month, a bill's due date, a prepaid day) is a date in :data:`LOCAL`, China Standard Time, which
has had no daylight saving since 1991. Stored instants are aware datetimes in :data:`UTC`.

Why one settable clock rather than ``datetime.now`` where it is needed: the rules of this domain
are about dates (due dates, the 7-day trip window, arrears aging, 24-hour e-bill reminders), and a
test, a benchmark or the sandbox must be able to stand on a chosen day and see every part of the
server agree on what day it is. Functions keep their ``now=None`` parameters for callers that pass
a time of their own; :func:`frozen` sets the time for the rest.

Epoch seconds that go on the wire (WeChat timestamps, token expiries, rate-limit windows) are
read with ``time.time()`` where they are made; they are not business time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from zoneinfo import ZoneInfo

UTC = dt.timezone.utc
#: China Standard Time, UTC+8 all year: the zone of every business date
LOCAL = ZoneInfo("Asia/Shanghai")

_frozen_at: dt.datetime | None = None


def utc_now() -> dt.datetime:
    """The current instant as an aware datetime in UTC (the frozen one inside :func:`frozen`)."""
    if _frozen_at is not None:
        return _frozen_at
    return dt.datetime.now(UTC)


def local_now() -> dt.datetime:
    """The current instant in China Standard Time."""
    return utc_now().astimezone(LOCAL)


def local_today() -> dt.date:
    """Today's date in China Standard Time: the business date."""
    return local_now().date()


@contextlib.contextmanager
def frozen(at: dt.datetime) -> Iterator[dt.datetime]:
    """Stand the clock still at ``at`` (aware; any zone) until the block ends.

    Raises
    ------
    ValueError
        If ``at`` is naive: a naive time would be read in whatever zone the machine is set to.
    """
    global _frozen_at
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("frozen() needs an aware datetime, not a naive one")
    before, _frozen_at = _frozen_at, at.astimezone(UTC)
    try:
        yield _frozen_at
    finally:
        _frozen_at = before
