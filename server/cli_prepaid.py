"""``pvsettle prepaid …``: staff open prepaid accounts, add their services and read their statements.

==============================================================  ==========================================
``pvsettle prepaid open --owner ID --name N --switch SERIAL``    a prepaid account; ``--plant ID`` for one
``[--plant ID] [--warning-fen F] [--grace-hours H]``             site, ``--holiday`` repeatable; prints
``[--holiday YYYY-MM-DD …] [--allow-pay-by-number]``             ``{"id", "number", "owner", "plant"}``
``pvsettle prepaid service NUMBER --name N --utility U``         a metered utility: ``--follows-contract``
``--unit kWh|m3 (--follows-contract | --tariff CODE)``           (electricity of a site) or a tariff;
``[--meter SERIAL]``                                             prints ``{"id", "account", "utility"}``
``pvsettle prepaid show NUMBER``                                 the statement as JSON
==============================================================  ==========================================

A refused request prints its reason to stderr and exits 2; nothing is changed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``prepaid`` command to the ``pvsettle`` parser."""
    prepaid = subparsers.add_parser("prepaid", help="prepaid accounts: open, services, statement")
    sub = prepaid.add_subparsers(dest="action", metavar="ACTION", required=True)
    opened = sub.add_parser("open", help="open a prepaid account for an owner or one of their sites")
    opened.add_argument("--owner", type=int, required=True)
    opened.add_argument("--plant", type=int)
    opened.add_argument("--name", required=True)
    opened.add_argument("--switch", required=True, help="serial of the device that cuts and restores supply")
    opened.add_argument("--warning-fen", type=int, default=5000)
    opened.add_argument("--grace-hours", type=int, default=24)
    opened.add_argument("--holiday", action="append", default=[], type=dt.date.fromisoformat)
    opened.add_argument("--allow-pay-by-number", action="store_true")
    opened.set_defaults(func=cmd_open)
    service = sub.add_parser("service", help="add a metered utility to an account")
    service.add_argument("number")
    service.add_argument("--name", required=True)
    service.add_argument("--utility", required=True, choices=["electricity", "water", "gas"])
    service.add_argument("--unit", required=True, choices=["kWh", "m3"])
    how = service.add_mutually_exclusive_group(required=True)
    how.add_argument("--follows-contract", action="store_true")
    how.add_argument("--tariff")
    service.add_argument("--meter", help="serial of the meter whose usage the collectors send")
    service.set_defaults(func=cmd_service)
    show = sub.add_parser("show", help="an account's statement")
    show.add_argument("number")
    show.set_defaults(func=cmd_show)


def _run(work) -> int:
    from server.cli_readings import _with_database
    from settlement.errors import DomainError

    try:
        out = _with_database(work)
    except DomainError as exc:
        print(f"pvsettle prepaid: {exc.message}", file=sys.stderr)
        return 2
    print(json.dumps(out, ensure_ascii=False))
    return 0


def cmd_open(args: argparse.Namespace) -> int:
    from settlement import prepaid

    async def work():
        account = await prepaid.open_account(
            args.owner, args.name, args.switch, plant_id=args.plant, warning_fen=args.warning_fen,
            grace_hours=args.grace_hours, holidays=args.holiday, allow_pay_by_number=args.allow_pay_by_number)
        return {"id": account.id, "number": account.number, "owner": account.owner_id, "plant": account.plant_id}

    return _run(work)


def cmd_service(args: argparse.Namespace) -> int:
    from settlement import prepaid
    from settlement.errors import NotFound
    from settlement.models import Meter, PrepaidAccount, Utility

    async def work():
        account = await PrepaidAccount.get_or_none(number=args.number)
        if account is None:
            raise NotFound(f"no prepaid account {args.number}")
        meter_id = None
        if args.meter:
            meter = await Meter.get_or_none(serial=args.meter)
            if meter is None:
                raise NotFound(f"no meter {args.meter}")
            meter_id = meter.id
        service = await prepaid.add_service(account.id, args.name, Utility(args.utility), args.unit,
                                            tariff_code=args.tariff, follows_contract=args.follows_contract,
                                            meter_id=meter_id)
        return {"id": service.id, "account": account.number, "utility": service.utility.value}

    return _run(work)


def cmd_show(args: argparse.Namespace) -> int:
    from settlement import prepaid
    from settlement.errors import NotFound
    from settlement.models import PrepaidAccount

    async def work():
        account = await PrepaidAccount.get_or_none(number=args.number)
        if account is None:
            raise NotFound(f"no prepaid account {args.number}")
        return await prepaid.statement(account.id)

    return _run(work)
