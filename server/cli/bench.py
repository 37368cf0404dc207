"""``pvsettle bench NAME``: the benchmarks (in :mod:`server.bench`), each printing one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from server import logs
from webapp.settings import Settings
from server.bench import api as bench_api, bot as bench_bot, gateway as bench_gateway, ingest as bench_ingest, notify as bench_notify, pay as bench_pay


def register(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="run a named benchmark and print one JSON object")
    bench_sub = bench.add_subparsers(dest="bench", metavar="NAME", required=True)
    engine = bench_sub.add_parser("engine", help="billing_engine: interval and register billing")
    engine.add_argument("--meter-years", type=int, default=10_000)
    engine.add_argument("--register-meters", type=int, default=1_000_000)
    engine.set_defaults(func=cmd_bench_engine)
    bench_cycle = bench_sub.add_parser("cycle", help="a reading cycle: readings to forms and bills")
    bench_cycle.add_argument("--plants", type=int, default=10_000)
    bench_cycle.set_defaults(func=cmd_bench_cycle)
    bench_bot.register(bench_sub)
    bench_api.register(bench_sub)
    bench_notify.register(bench_sub)
    bench_ingest.register(bench_sub)
    bench_pay.register(bench_sub)
    bench_gateway.register(bench_sub)


def cmd_bench_cycle(args: argparse.Namespace) -> int:
    from server.bench.cycle import bench_cycle
    from settlement.notify.outbox import NotifyApps

    settings = Settings.from_env(require_secrets=False)
    logs.configure("WARNING", json_lines=False)
    print(json.dumps(asyncio.run(bench_cycle(args.plants, settings.database_url,
                                             apps=NotifyApps.from_settings(settings)))))
    return 0


def cmd_bench_engine(args: argparse.Namespace) -> int:
    from billing_engine import bench

    print(json.dumps(bench.run(meter_years=args.meter_years, register_meters=args.register_meters)))
    return 0
