"""``pvsettle bench NAME``: benchmarks that print one JSON object (the keys their issues name).

Each benchmark makes its own database (a temporary SQLite file, or a fresh database on the
PostgreSQL server of ``PVSETTLE_DATABASE_URL``) and removes it afterwards, so it never touches
real data and two runs never see each other's; :mod:`server.bench.support` holds that start-up and
clean-up. This module holds ``bench cycle``; ``bench engine`` is :mod:`billing_engine.bench`, and
every other one has a module of its own, ``server/bench_<name>.py``.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING

from server.bench.support import bench_database
from settlement.clock import utc_now

if TYPE_CHECKING:
    from settlement.notify.outbox import NotifyApps

# every reading day (1-28) falls on or before the 28th: one period holds every plant's cycle
BENCH_TODAY = dt.date(2026, 10, 28)
BENCH_PERIOD = "2026-10"


async def bench_cycle(plants: int, database_url: str, *, apps: NotifyApps) -> dict:
    """A reading cycle of ``plants`` plants from readings to forms and bills, timed by stage;
    ``apps`` are the WeChat apps its messages are written for."""
    from settlement.billing import bills
    from settlement.cycles import runs as cycles
    from settlement.cycles import forms
    from settlement.seeding import NoProgress, SeedSpec, seed_portfolio

    async with bench_database(database_url, prefix="pvsettle-bench-", connect=True) as bench:
        clock = time.perf_counter()
        await seed_portfolio(SeedSpec(plants=plants, months=1, seed=42, telemetry_days=0, today=BENCH_TODAY),
                             progress=NoProgress)
        seed_seconds = time.perf_counter() - clock

        clock = time.perf_counter()
        run = await cycles.run_cycle(BENCH_PERIOD, apps=apps)
        forms_seconds = time.perf_counter() - clock

        # the owners' answer, the quickest way the system has: nobody answers, all auto-confirm
        clock = time.perf_counter()
        confirmed = await forms.auto_confirm_due(utc_now() + dt.timedelta(days=30))
        confirm_seconds = time.perf_counter() - clock

        clock = time.perf_counter()
        issued = await bills.issue_bills(BENCH_PERIOD, apps=apps)
        bills_seconds = time.perf_counter() - clock
    if run.forms_created != plants or issued != plants or confirmed != plants:
        raise RuntimeError(f"bench cycle made {run.forms_created} forms, confirmed {confirmed} and issued "
                           f"{issued} bills for {plants} plants")
    return {"plants": plants, "database": bench.kind,
            "forms_seconds": round(forms_seconds, 3), "bills_seconds": round(bills_seconds, 3),
            "confirm_seconds": round(confirm_seconds, 3), "seed_seconds": round(seed_seconds, 3)}
