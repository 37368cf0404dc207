"""The field gateway's commands (:mod:`gateway`).

===============================================  ================================================
``pvsettle gateway run --config FILE``           poll the configured meters and inverters, queue
                                                 what they said, post it to the server's
                                                 /ingest/v1; SIGTERM or Ctrl-C stops it after one
                                                 more send of the queue
``pvsettle gateway check --config FILE [--json]``  probe every device once and print what it found
                                                 (a table, or one JSON object); nothing is sent
``pvsettle gateway simulate --meters N           DL/T 645 meter buses and SunSpec inverters on
    --inverters N [--per-bus K] [--port P]``     local TCP ports, fed from the demo's sky, and a
                                                 configuration for them printed (demo, benches)
===============================================  ================================================

A configuration the gateway cannot run exits 2 with one line naming the file and the line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

from server import logs


def register(subparsers: argparse._SubParsersAction) -> None:
    gateway = subparsers.add_parser("gateway", help="the field gateway: DL/T 645 meters and Modbus inverters to /ingest")
    sub = gateway.add_subparsers(dest="gateway_command", metavar="ACTION", required=True)
    run = sub.add_parser("run", help="poll the devices and forward what they said to the server")
    run.add_argument("--config", required=True, metavar="FILE", help="the gateway's TOML configuration")
    run.add_argument("--log-level", default="INFO")
    run.set_defaults(func=cmd_gateway_run)
    check = sub.add_parser("check", help="probe every configured device once and print what it found")
    check.add_argument("--config", required=True, metavar="FILE")
    check.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    check.set_defaults(func=cmd_gateway_check)
    simulate = sub.add_parser("simulate", help="simulated meters and inverters on local TCP ports (demo, bench)")
    simulate.add_argument("--meters", type=int, default=10)
    simulate.add_argument("--inverters", type=int, default=2)
    simulate.add_argument("--per-bus", type=int, default=20, help="meters behind one simulated DTU port")
    simulate.add_argument("--port", type=int, default=0, help="first port (0: any free ones)")
    simulate.add_argument("--server", default="http://127.0.0.1:8080", help="the server the printed config names")
    simulate.add_argument("--step-s", type=float, default=5.0, help="how often the simulated sky moves [s]")
    simulate.add_argument("--marker", action="store_true",
                          help="inverters show 1 + (step number mod 4000) W instead of the sky: a bench tells from "
                               "the power shown when the change it shows happened")
    simulate.set_defaults(func=cmd_gateway_simulate)


def _config(path: str):
    from gateway.config import load
    from gateway.errors import ConfigError

    try:
        return load(path)
    except ConfigError as exc:
        print(f"pvsettle gateway: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_gateway_run(args: argparse.Namespace) -> int:
    from gateway.runner import Gateway

    config = _config(args.config)
    logs.configure(args.log_level, json_lines=False)

    async def main() -> None:
        gateway = Gateway(config)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, gateway.stop)
        print(json.dumps({"gateway": "running", "meters": len(config.meters), "inverters": len(config.inverters),
                          "server": config.server, "queue": config.queue}), flush=True)
        summary = await gateway.run()
        print(json.dumps({"gateway": "stopped", **summary}), flush=True)

    asyncio.run(main())
    return 0


def cmd_gateway_check(args: argparse.Namespace) -> int:
    from gateway.runner import Gateway

    config = _config(args.config)
    logs.configure("ERROR", json_lines=False)

    async def main() -> list[dict]:
        gateway = Gateway(config, queue=_memory_queue())
        try:
            return await gateway.check()
        finally:
            await gateway.close()

    found = asyncio.run(main())
    if args.json:
        print(json.dumps({"devices": found}, ensure_ascii=False))
    else:
        print(f"{'device':<20} {'kind':<9} {'link':<14} {'state':<8} what")
        for row in found:
            if row["state"] == "online" and row["kind"] == "meter":
                what = (f"address {row['address']}, forward {row['registers'].get('00010000', '-')} kWh, "
                        f"power {row['power_kw']} kW, clock {row['clock_skew_s']:+} s")
            elif row["state"] == "online":
                what = (f"unit {row['unit']} {row['map']}, {row['energy_wh']} Wh, {row['power_w']} W, "
                        f"{row['status']}" + (f", models {row['models']}" if "models" in row else ""))
            else:
                what = f"{row['code']}: {row['message']}"
            print(f"{row['device']:<20} {row['kind']:<9} {row['link']:<14} {row['state']:<8} {what}")
    return 0 if all(r["state"] == "online" for r in found) else 1


def _memory_queue():
    from gateway.queue import Queue

    return Queue(":memory:")


def cmd_gateway_simulate(args: argparse.Namespace) -> int:
    from sandbox.field_devices import simulate_site

    logs.configure("WARNING", json_lines=False)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with simulate_site(args.meters, args.inverters, per_bus=args.per_bus, first_port=args.port,
                                 step_s=args.step_s, marker=args.marker) as site:
            print(site.config_toml(args.server), flush=True)
            print("# ready", flush=True)  # the end of the configuration, for a program reading it
            await stop.wait()

    asyncio.run(main())
    return 0
