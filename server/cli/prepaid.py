"""``pvsettle prepaid …``: staff open prepaid accounts, add their services and read their statements.

==============================================================  ==========================================
``pvsettle prepaid open --owner ID --name N --switch SERIAL``    a prepaid account; ``--plant ID`` for one
``[--plant ID] [--warning-fen F] [--grace-hours H]``             site, ``--holiday`` repeatable; prints
``[--holiday YYYY-MM-DD …] [--allow-pay-by-number]``             ``{"id", "number", "owner", "plant"}``
``pvsettle prepaid service ACCOUNT --name N --utility U``         a metered utility: ``--follows-contract``
``--unit kWh|m3 (--follows-contract | --tariff CODE)``           (electricity of a site) or a tariff;
``[--meter SERIAL]``                                             prints ``{"id", "account", "utility"}``
``pvsettle prepaid show ACCOUNT``                                the statement as JSON
==============================================================  ==========================================

ACCOUNT is the account's number or its id: ``prepaid open`` prints both. A refused request
prints its reason to stderr and exits 2; nothing is changed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from server.cli.common import on_database


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``prepaid`` command to the ``pvsettle`` parser."""
    prepaid = subparsers.add_parser("prepaid", help="prepaid accounts: open, services, statement")
    sub = prepaid.add_subparsers(dest="action", metavar="ACTION", required=True)
    opened = sub.add_parser("open", help="open a prepaid account for an owner or one of their sites")
    opened.add_argument("--owner", type=int, required=True, metavar="ID", help="the owner's id (the account holder)")
    opened.add_argument("--plant", type=int, metavar="ID",
                        help="the plant's id, for an account of one site (its electricity can follow the contract)")
    opened.add_argument("--name", required=True, help="the account's name, shown to the owner and payers")
    opened.add_argument("--switch", required=True, metavar="SERIAL",
                        help="serial of the device that cuts and restores supply")
    opened.add_argument("--warning-fen", type=int, default=5000, metavar="FEN",
                        help="the owner is warned when the balance falls below this [fen] (default 5000 = 50 元)")
    opened.add_argument("--grace-hours", type=int, default=24, metavar="H",
                        help="hours from the cut-off notice at zero to the cut-off (default 24)")
    opened.add_argument("--holiday", action="append", default=[], type=dt.date.fromisoformat, metavar="YYYY-MM-DD",
                        help="a local date without cut-off (repeat for several)")
    opened.add_argument("--allow-pay-by-number", action="store_true",
                        help="anyone quoting the account number may top it up")
    opened.set_defaults(func=cmd_open)
    service = sub.add_parser("service", help="add a metered utility to an account")
    service.add_argument("account", metavar="ACCOUNT", help="the account's number (P…) or id, as `prepaid open` printed")
    service.add_argument("--name", required=True, help="the service's name, e.g. 一号楼用电")
    service.add_argument("--utility", required=True, choices=["electricity", "water", "gas"], help="what is metered")
    service.add_argument("--unit", required=True, choices=["kWh", "m3"], help="the unit of the meter's usage")
    how = service.add_mutually_exclusive_group(required=True)
    how.add_argument("--follows-contract", action="store_true",
                     help="electricity priced exactly as the site's bill (needs an account of one plant)")
    how.add_argument("--tariff", metavar="CODE", help="the code of the tariff that prices the usage")
    service.add_argument("--meter", metavar="SERIAL", help="serial of the meter whose usage the collectors send")
    service.set_defaults(func=cmd_service)
    show = sub.add_parser("show", help="an account's statement")
    show.add_argument("account", metavar="ACCOUNT", help="the account's number (P…) or id, as `prepaid open` printed")
    show.set_defaults(func=cmd_show)


async def find_account(key: str):
    """The account with this number, or else with this id: ``prepaid open`` prints both."""
    from settlement.errors import NotFound
    from settlement.models import PrepaidAccount

    key = key.strip()
    account = await PrepaidAccount.get_or_none(number=key)
    if account is None and key.isdigit() and len(key) <= 12:
        account = await PrepaidAccount.get_or_none(id=int(key))
    if account is None:
        raise NotFound(f"no prepaid account with the number or id {key[:40]!r}")
    return account


def _run(work) -> int:
    from settlement.errors import DomainError

    try:
        out = on_database(work)
    except DomainError as exc:
        print(f"pvsettle prepaid: {exc.message}", file=sys.stderr)
        return 2
    print(json.dumps(out, ensure_ascii=False))
    return 0


def cmd_open(args: argparse.Namespace) -> int:
    from settlement.prepaid import accounts as prepaid

    async def work():
        account = await prepaid.open_account(
            args.owner, args.name, args.switch, plant_id=args.plant, warning_fen=args.warning_fen,
            grace_hours=args.grace_hours, holidays=args.holiday, allow_pay_by_number=args.allow_pay_by_number)
        return {"id": account.id, "number": account.number, "owner": account.owner_id, "plant": account.plant_id}

    return _run(work)


def cmd_service(args: argparse.Namespace) -> int:
    from settlement.prepaid import accounts as prepaid
    from settlement.errors import NotFound
    from settlement.models import Meter, Utility

    async def work():
        account = await find_account(args.account)
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
    from settlement.prepaid import accounts as prepaid

    async def work():
        return await prepaid.statement((await find_account(args.account)).id)

    return _run(work)
