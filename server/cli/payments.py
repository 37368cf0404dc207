"""``pvsettle payments import FILE``: offline payments from the BI / finance system.

==========================================================  =========================================
``pvsettle payments import FILE.csv|FILE.json [--staff ID]``  CSV with the header
                                                              ``bill,amount_fen,channel,reference,paid_at``
                                                              or JSON: a list of objects with those
                                                              keys (or ``{"payments": [...]}``);
                                                              prints ``{"file", "rows", "recorded",
                                                              "duplicates", "rejected"}``, each refused
                                                              row to stderr as a JSON line; exit 0
                                                              even with refusals, 2 when the file
                                                              cannot be read or is malformed
==========================================================  =========================================

``bill`` is the bill number (as printed on the bill, e.g. ``202610-P0001-1``; not its id),
``amount_fen`` whole fen (an amount beyond what is owed plus the bill's total again is refused by
row unless ``--allow-overpayment``), ``channel`` bank_transfer, counter or other,
``reference`` the finance system's own id of the payment (the same reference again is the same
payment), ``paid_at`` ISO 8601 (China time when it has no offset). ``--staff`` records the import
as that staff member (operator or admin), otherwise as the system.

The whole file is read and checked before anything is recorded, so a malformed file changes
nothing; then each row is recorded on its own (settlement.pay.offline_import).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys

from server.cli.common import MalformedFile, csv_header, notify_apps, on_database
from pathlib import Path

MAX_FILE = 50 * 1024 * 1024  # [bytes] far beyond a year of a finance system's export


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``payments`` command to the ``pvsettle`` parser."""
    payments = subparsers.add_parser("payments", help="offline payments from the finance system")
    payments_sub = payments.add_subparsers(dest="action", metavar="ACTION", required=True)
    imp = payments_sub.add_parser("import", help="import a CSV or JSON file of bank transfers and counter payments")
    imp.add_argument("file", metavar="FILE")
    imp.add_argument("--staff", type=int, metavar="ID",
                     help="record as this staff member (operator or admin; the staff id, as the sandbox and "
                          "the bot's 帮助 show it)")
    imp.add_argument("--allow-overpayment", action="store_true",
                     help="take amounts beyond what is owed plus the bill's total again as credit "
                          "(refused by row otherwise)")
    imp.set_defaults(func=cmd_payments_import)


def read_rows(path: Path) -> list[tuple[str, dict]]:
    """(place, row) for every payment in the file; raises MalformedFile naming the place."""
    try:
        if path.stat().st_size > MAX_FILE:
            raise MalformedFile(f"the file is larger than {MAX_FILE // (1024 * 1024)} MiB")
        raw = path.read_bytes()
    except OSError as exc:
        raise MalformedFile(f"cannot read the file: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise MalformedFile(f"line {line}: not UTF-8 text") from None
    if path.suffix.lower() == ".json":
        return _json_rows(text)
    return _csv_rows(text)


def _json_rows(text: str) -> list[tuple[str, dict]]:
    from settlement.pay.offline_import import FIELDS

    try:
        data = json.loads(text)
    except ValueError as exc:
        raise MalformedFile(f"not JSON: {exc}") from None
    if isinstance(data, dict):
        data = data.get("payments")
    if not isinstance(data, list):
        raise MalformedFile('expected a list of payments, or {"payments": [...]}')
    rows = []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise MalformedFile(f"payment {i}: not an object")
        unknown = sorted(set(item) - set(FIELDS))
        if unknown:
            raise MalformedFile(f"payment {i}: unknown keys {', '.join(unknown)[:100]}")
        rows.append((f"payment {i}", {k: item.get(k) for k in FIELDS}))
    return rows


def _csv_rows(text: str) -> list[tuple[str, dict]]:
    from settlement.pay.offline_import import FIELDS

    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows = []
    try:
        names = csv_header(reader, FIELDS)
        for record in reader:
            if not record:
                continue
            if len(record) != len(names):
                raise MalformedFile(f"line {reader.line_num}: {len(record)} fields, the header has {len(names)}")
            rows.append((f"line {reader.line_num}", dict(zip(names, record))))
    except csv.Error as exc:
        raise MalformedFile(f"line {reader.line_num}: {exc}") from None
    return rows


def cmd_payments_import(args: argparse.Namespace) -> int:
    from settlement.errors import DomainError
    from settlement.models import Staff, StaffRole
    from settlement.pay.offline_import import import_offline_payments

    path = Path(args.file)
    try:
        rows = read_rows(path)
    except MalformedFile as exc:
        print(f"pvsettle payments import: {path}: {exc}", file=sys.stderr)
        return 2
    apps = notify_apps()

    async def work():
        staff = None
        if args.staff is not None:
            staff = await Staff.get_or_none(id=args.staff)
            if staff is None or not staff.active or staff.role not in (StaffRole.OPERATOR, StaffRole.ADMIN):
                raise DomainError(f"staff {args.staff} is not an active operator or admin")
        return await import_offline_payments(rows, source=f"import:{path.name}"[:100], apps=apps, staff=staff,
                                             allow_overpayment=args.allow_overpayment)

    try:
        result = on_database(work)
    except DomainError as exc:
        print(f"pvsettle payments import: {exc.message}", file=sys.stderr)
        return 2
    for refused in result.rejected:
        print(json.dumps(refused, ensure_ascii=False), file=sys.stderr)
    print(json.dumps({"file": args.file, **result.counts()}))
    return 0
