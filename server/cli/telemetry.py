"""Staff commands on telemetry.

=================================================================  ========================================
``pvsettle report reliability --period YYYY-MM[-DD]``              per plant and for the portfolio:
``    [--plant CODE …] [--now ISO-TIME]``                            availability, outages, SAIFI/SAIDI/
                                                                   CAIDI/ASAI, DL/T 836 RS-1 and outages
                                                                   per household per year against their
                                                                   targets, specific yield, PR
``pvsettle outages [--all]``                                       open plant outages (or all), newest first,
                                                                   and the episodes of repeated tripping going
                                                                   on (or all), each outage naming its episode
``pvsettle telemetry rebuild [--plant CODE …]``                    interval energies and rollups recomputed
                                                                   from the samples (seeded data, repair)
=================================================================  ========================================

Each prints one JSON object on stdout. A bad argument or a domain error exits 2 with one clear
line on stderr and no traceback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from server.cli.common import with_database
from settlement.clock import LOCAL, utc_now



def _time(text: str) -> dt.datetime:
    try:
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a time is ISO 8601 (2026-10-01T08:00+08:00), not {text!r}") from None
    return at if at.tzinfo else at.replace(tzinfo=LOCAL)


def _subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``report reliability`` (under the existing ``report`` command) and ``outages``."""
    report = subparsers.choices.get("report") or subparsers.add_parser("report", help="staff reports")
    report_sub = _subcommands(report) or report.add_subparsers(dest="report_name", metavar="NAME", required=True)
    reliability = report_sub.add_parser(
        "reliability", help="availability, outages, SAIFI/SAIDI/CAIDI/ASAI, DL/T 836 RS-1, outages per household "
                       "per year, yield and PR per plant and portfolio")
    reliability.add_argument("--period", required=True, help="YYYY-MM (a local month) or YYYY-MM-DD (a local day)")
    reliability.add_argument("--plant", action="append", metavar="CODE", help="only this plant (repeatable)")
    reliability.add_argument("--now", type=_time, default=None,
                             help="open outages count up to this time (default: now)")
    reliability.set_defaults(func=cmd_report_reliability)

    telemetry = subparsers.add_parser("telemetry", help="telemetry maintenance")
    telemetry_sub = telemetry.add_subparsers(dest="telemetry_command", metavar="ACTION", required=True)
    rebuild = telemetry_sub.add_parser("rebuild", help="recompute interval energies and rollups from the samples")
    rebuild.add_argument("--plant", action="append", metavar="CODE", help="only this plant (repeatable); default all")
    rebuild.set_defaults(func=cmd_telemetry_rebuild)

    outages = subparsers.add_parser("outages", help="plant outages: open ones, or all with --all")
    outages.add_argument("--all", action="store_true", help="closed ones too")
    outages.add_argument("--limit", type=int, default=100)
    outages.set_defaults(func=cmd_outages)


def cmd_report_reliability(args: argparse.Namespace) -> int:
    from settlement.telemetry.reliability import reliability_report

    async def work() -> dict:
        return await reliability_report(args.period, await _plant_ids(args.plant), now=args.now)

    print(json.dumps(with_database(work), ensure_ascii=False))
    return 0


async def _plant_ids(codes: list[str] | None) -> list[int] | None:
    from settlement.errors import NotFound
    from settlement.models import Plant

    if not codes:
        return None
    found = dict(await Plant.filter(code__in=codes).values_list("code", "id"))
    missing = sorted(set(codes) - set(found))
    if missing:
        raise NotFound(f"no plant has the code {', '.join(missing)}", code="unknown_plant",
                       params={"plant": ", ".join(missing)})
    return list(found.values())


def cmd_telemetry_rebuild(args: argparse.Namespace) -> int:
    from settlement.models import TelemetryDevice
    from settlement.telemetry.ingest import rebuild_rollups

    async def work() -> dict:
        plant_ids = await _plant_ids(args.plant)
        if plant_ids is None:
            plant_ids = sorted(set(await TelemetryDevice.all().values_list("plant_id", flat=True)))
        return await rebuild_rollups(plant_ids)

    print(json.dumps(with_database(work)))
    return 0


def cmd_outages(args: argparse.Namespace) -> int:
    from settlement.models import PlantOutage, TripEpisode
    from settlement.telemetry.trips import episode_as_dict

    if not 1 <= args.limit <= 10_000:
        print("pvsettle outages: --limit must be between 1 and 10000", file=sys.stderr)
        return 2

    async def work() -> dict:
        now = utc_now()
        query = PlantOutage.all() if args.all else PlantOutage.filter(ended_at__isnull=True)
        rows = await query.order_by("-started_at", "-id").limit(args.limit).prefetch_related("plant")
        episodes = TripEpisode.all() if args.all else TripEpisode.filter(ends_at__gt=now)
        episodes = await episodes.order_by("-started_at", "-id").limit(args.limit).prefetch_related("plant")

        def episode_of(outage: PlantOutage) -> int | None:
            return next((e.id for e in episodes if e.plant_id == outage.plant_id
                         and e.first_trip_at <= outage.started_at <= e.last_trip_at), None)

        return {"outages": [{"id": o.id, "plant": o.plant.code, "cause": str(o.cause),
                             "started_at": o.started_at.astimezone(LOCAL).isoformat(),
                             "ended_at": o.ended_at.astimezone(LOCAL).isoformat() if o.ended_at else None,
                             "detail": o.detail, "notified": str(o.notified),
                             "end_notified": str(o.end_notified) if o.end_notified else None,
                             "repeated_trips": episode_of(o)} for o in rows],
                "repeated_trips": [episode_as_dict(e, e.plant.code, now, LOCAL) for e in episodes]}

    print(json.dumps(with_database(work), ensure_ascii=False))
    return 0
