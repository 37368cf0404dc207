"""The ``pvsettle`` command (DESIGN.md "Commands"): one parser, each command group registered by
its module in this package.
"""

from __future__ import annotations

import argparse
import faulthandler
import signal
import sys
from collections.abc import Sequence

from webapp.settings import SettingsError
from server.cli import (bench, cycles, database, faults, gateway, invoices, payments, portfolio, prepaid, prices,
                        readings, reports, serve, telemetry)


def main(argv: Sequence[str] | None = None) -> int:
    # `kill -USR1 <pid>` prints every thread's stack: how an operator sees where a process hangs
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except SettingsError as exc:
        print(f"pvsettle {args.command}: cannot start, these settings are missing or malformed:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pvsettle", description='The ``pvsettle`` command (DESIGN.md "Commands").')
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in (serve, database, cycles, bench, readings, payments, reports, telemetry, prepaid, faults, invoices,
                  portfolio, gateway, prices):
        group.register(sub)
    return parser
