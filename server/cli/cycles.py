"""``pvsettle cycle run|status|bill|daily``: reading cycles by hand, as the scheduler runs them.
"""

from __future__ import annotations

import argparse
import json
import sys

from server.cli.common import notify_apps, with_database
from settlement.clock import local_today


def register(sub: argparse._SubParsersAction) -> None:
    cycle = sub.add_parser("cycle", help="reading cycles: forms, bills, late fees")
    cycle_sub = cycle.add_subparsers(dest="cycle_command", metavar="ACTION", required=True)
    run = cycle_sub.add_parser("run", help="make the confirmation forms of a period")
    run.add_argument("--period", required=True, help="YYYY-MM")
    run.add_argument("--plant", help="one plant's code")
    run.add_argument("--batch-size", type=int, default=500, help="plants per transaction")
    run.add_argument("--yes", action="store_true",
                     help="run although the period's cut-off is more than a month ago (forms of old electricity)")
    run.set_defaults(func=cmd_cycle_run)
    status = cycle_sub.add_parser("status", help="forms and bills of a period by state")
    status.add_argument("--period", required=True, help="YYYY-MM")
    status.set_defaults(func=cmd_cycle_status)
    bill = cycle_sub.add_parser("bill", help="issue bills for the confirmed forms of a period")
    bill.add_argument("--period", required=True, help="YYYY-MM")
    bill.set_defaults(func=cmd_cycle_bill)
    daily = cycle_sub.add_parser("daily", help="what the scheduler does each day: auto-confirm, late fees")
    daily.set_defaults(func=cmd_cycle_daily)


def cmd_cycle_run(args: argparse.Namespace) -> int:
    """Say which electricity the period is (it is the month *before* for most reading days),
    refuse an old one without --yes, then run."""
    from settlement.cycles import runs as cycles

    today = local_today()
    apps = notify_apps()

    async def work():
        covers = await cycles.period_covers(args.period, args.plant)
        for cover in covers:
            print(f"period {args.period}, plants read on day {cover.reading_day} ({cover.plants}): electricity "
                  f"from {cover.starts} 00:00 to {cover.ends} 00:00", file=sys.stderr)
        old = [c for c in covers if cycles.ended_over_a_month_ago(c, today)]
        if old and not args.yes:
            return covers, None
        return covers, await cycles.run_cycle(args.period, args.plant, apps=apps, batch_size=args.batch_size)

    covers, result = with_database(work)
    if result is None:
        ended = max(c.ends for c in covers)
        print(f"pvsettle cycle run: period {args.period} ended on {ended}, more than a month ago: "
              f"forms would go to owners for old electricity; add --yes if that is meant", file=sys.stderr)
        return 2
    print(json.dumps({**result.as_dict(), "covers": [c.as_dict() for c in covers]}))
    return 0


def cmd_cycle_status(args: argparse.Namespace) -> int:
    from settlement.cycles import runs as cycles

    print(json.dumps(with_database(lambda: cycles.cycle_status(args.period)), ensure_ascii=False))
    return 0


def cmd_cycle_bill(args: argparse.Namespace) -> int:
    from settlement.billing import bills

    apps = notify_apps()
    issued = with_database(lambda: bills.issue_bills(args.period, apps=apps))
    print(json.dumps({"period": args.period, "bills_issued": issued}))
    return 0


def cmd_cycle_daily(args: argparse.Namespace) -> int:
    from settlement.billing import late_fees
    from settlement.cycles import forms

    async def work():
        return {"auto_confirmed": await forms.auto_confirm_due(), "late_fee_lines": await late_fees.accrue_late_fees()}

    print(json.dumps(with_database(work)))
    return 0
