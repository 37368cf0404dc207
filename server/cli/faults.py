"""``pvsettle faults …``: staff list owners' fault reports (报修) and move them along.

====================================================================  ======================================
``pvsettle faults list [--state open|in_progress|resolved]``            reports, newest first, as JSON lines
``[--limit N]``                                                         ``{"id", "plant", "state", "text",
                                                                        "note", "created_at", "updated_at"}``
``pvsettle faults move ID STATE --staff ID [--note TEXT]``              move report ID to STATE: 受理 or
                                                                        处理中 (in_progress), 已修复 or 已解决
                                                                        (resolved); prints the report
====================================================================  ======================================

``move`` goes through :func:`settlement.owners.faults.set_fault_state`, the rule the bot's 工单
uses too: the allowed steps, the audit event (as the staff member ``--staff``, an active
operator or admin) and the owner's notice (FaultUpdated) in one transaction. A refused request
(no such report, a step not allowed, a note with control characters or over 500 characters)
prints its reason to stderr and exits 2; nothing is changed.
"""

from __future__ import annotations

import argparse
import json
import sys

from server.cli.common import notify_apps, on_database

STATES = ("open", "in_progress", "resolved")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``faults`` command to the ``pvsettle`` parser."""
    faults = subparsers.add_parser("faults", help="owners' fault reports (报修): list, move along")
    sub = faults.add_subparsers(dest="action", metavar="ACTION", required=True)
    listed = sub.add_parser("list", help="fault reports, newest first")
    listed.add_argument("--state", choices=STATES, help="only reports in this state")
    listed.add_argument("--limit", type=int, default=50, metavar="N", help="at most this many (default 50, ≤ 500)")
    listed.set_defaults(func=cmd_list)
    move = sub.add_parser("move", help="move a report to its next state, telling the owner")
    move.add_argument("id", metavar="ID", help="the report's id (as the bot and the owner see it: #12 or F12)")
    move.add_argument("state", metavar="STATE", help="受理|处理中|in_progress or 已修复|已解决|resolved")
    move.add_argument("--staff", type=int, required=True, metavar="ID",
                      help="the staff member who moves it (an active operator or admin; the staff id)")
    move.add_argument("--note", help="a note for the owner (at most 500 characters)")
    move.set_defaults(func=cmd_move)


def _shown(report) -> dict:
    return {"id": report.id, "plant": report.plant.code,
            "state": report.state.value, "text": report.text, "note": report.staff_note,
            "created_at": report.created_at.isoformat(), "updated_at": report.updated_at.isoformat()}


def _refused(action: str, message: str) -> int:
    print(f"pvsettle faults {action}: {message}", file=sys.stderr)
    return 2


def cmd_list(args: argparse.Namespace) -> int:
    from settlement.models import FaultState
    from settlement.owners import faults

    async def work():
        return await faults.list_faults(FaultState(args.state) if args.state else None, limit=args.limit)

    for report in on_database(work):
        print(json.dumps(_shown(report), ensure_ascii=False))
    return 0


def cmd_move(args: argparse.Namespace) -> int:
    from settlement.errors import DomainError
    from settlement.models import FaultReport, Staff
    from settlement.owners import faults

    ref = args.id.removeprefix("#").removeprefix("F").removeprefix("f")
    if not (ref.isascii() and ref.isdigit() and len(ref) <= 12):
        return _refused("move", f"{args.id[:20]!r} is not a report id (a number, as in #12)")
    try:
        state = faults.state_of_word(args.state)
    except DomainError as exc:
        return _refused("move", exc.message)
    apps = notify_apps()

    async def work():
        staff = await Staff.get_or_none(id=args.staff)
        report = await faults.set_fault_state(int(ref), state, staff, args.note, apps=apps)
        return await FaultReport.get(id=report.id).prefetch_related("plant")

    try:
        report = on_database(work)
    except DomainError as exc:
        return _refused("move", exc.message)
    print(json.dumps(_shown(report), ensure_ascii=False))
    return 0
