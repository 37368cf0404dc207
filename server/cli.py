"""The ``pvsettle`` command (DESIGN.md "Commands")."""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import json
import logging
import multiprocessing
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from server import bench_api, cli_readings
from server import bench_bot
from server import bench_pay, cli_payments
from server import cli_prepaid
from server import bench_notify
from server import bench_ingest
from server import cli_reports
from server import cli_telemetry
from server import logs
from server.settings import Settings, SettingsError, demo_settings

log = logging.getLogger("pvsettle")
T = TypeVar("T")


def main(argv: Sequence[str] | None = None) -> int:
    # `kill -USR1 <pid>` prints every thread's stack: how an operator sees where a process hangs
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    parser = _parser()
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pvsettle", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="embedded default: SQLite, emulated Redis, demo portfolio, serve")
    demo.add_argument("--plants", type=int, default=12, help="plants in the demo portfolio (when empty)")
    demo.set_defaults(func=cmd_demo)

    serve = sub.add_parser("serve", help="production server, settings from the environment")
    serve.add_argument("--workers", type=int, default=1, help="server processes sharing one port")
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser("migrate", help="apply migrations to PVSETTLE_DATABASE_URL")
    migrate.set_defaults(func=cmd_migrate)

    seed = sub.add_parser("seed", help="synthetic portfolio: owners, plants, meters, readings, telemetry")
    seed.add_argument("--plants", type=int, required=True)
    seed.add_argument("--months", type=int, default=3, help="whole months of readings before today")
    seed.add_argument("--seed", type=int, default=1, help="random seed: the same seed, the same portfolio")
    seed.add_argument("--telemetry-days", type=int, default=2, help="days of 15-minute telemetry")
    seed.set_defaults(func=cmd_seed)

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
    cli_readings.register(sub)
    cli_payments.register(sub)
    cli_reports.register(sub)
    cli_telemetry.register(sub)
    cli_prepaid.register(sub)
    return parser


# --- commands -----------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    logs.configure(settings.log_level)
    if args.workers < 1:
        raise SettingsError([f"--workers must be at least 1, not {args.workers}"])
    if settings.redis_url == "" and args.workers > 1:
        raise SettingsError(["PVSETTLE_REDIS_URL is needed with --workers > 1: the in-process "
                             "emulation cannot be shared between processes"])
    asyncio.run(_migrate(settings.database_url, quiet=True))
    log.info("starting", extra={"workers": args.workers, "settings": settings.public_summary()})
    if args.workers == 1:
        _serve_one(settings, reuse_port=False)
        return 0
    return _supervise(settings, args.workers)


def cmd_demo(args: argparse.Namespace) -> int:
    # the one place outside sandbox/ that imports it (a test holds it to that)
    from sandbox import app as sandbox_app, people

    settings = demo_settings()
    logs.configure(settings.log_level, json_lines=logs.wants_json(sys.stderr))
    if logging.getLogger().level >= logging.INFO:
        # the sandbox page polls every 2 s: a line per request would scroll the banner away
        logging.getLogger("pvsettle.access").setLevel(logging.WARNING)
    asyncio.run(_prepare_demo(settings, args.plants))
    print(demo_banner(settings, [(u.key, u.nickname, u.role.value if u.role else None) for u in people.USERS]),
          flush=True)
    # fake WeChat and WeChat Pay, /sandbox/, the telemetry simulator
    _serve_one(settings, reuse_port=False, install=sandbox_app.install)
    return 0


def demo_banner(settings: Settings, users: Sequence[tuple[str, str, str | None]]) -> str:
    """What ``pvsettle demo`` prints once it is ready: where to go, who to be, how to stop.

    ``users`` are the sandbox's demo WeChat users as (key, nickname, staff role or None).
    """
    base = f"http://{settings.host}:{settings.port}"
    redis = settings.redis_url or "in-process emulation"
    owners = ", ".join(f"{nick} ({key})" for key, nick, role in users if role is None)
    staff = ", ".join(f"{nick} ({key})" if key == role else f"{nick} ({key}, {role})"
                      for key, nick, role in users if role is not None)
    return "\n".join([
        "",
        f"pvsettle demo on {base}",
        "",
        f"  open     {base}/sandbox/   the owner's mini-program, phone and bot, without WeChat",
        f"  health   {base}/healthz",
        f"  metrics  {base}/metrics",
        "",
        "  demo users (pick one in the sandbox):",
        f"    owners  {owners}: log in, then bind with an invitation code from the staff desk",
        f"    staff   {staff}: the bot console's staff commands, e.g. 调整 (operator) or 退款 (admin)",
        "",
        "  The demo plants follow the real sun at their sites in China: at night there (roughly",
        "  10:00-22:00 UTC) they produce nothing.",
        f"  database {settings.database_url}, Redis {redis}; PVSETTLE_LOG_LEVEL=DEBUG logs every request.",
        "",
        "  Stop it with Ctrl-C.",
        "",
    ])


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = Settings.from_env(require_secrets=False)
    logs.configure(settings.log_level, json_lines=False)
    asyncio.run(_migrate(settings.database_url, quiet=False))
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    from settlement.infra.redis_client import Namespace, open_redis
    from settlement.seeding import SeedSpec, seed_portfolio

    settings = Settings.from_env(require_secrets=False)
    logs.configure(settings.log_level, json_lines=False)
    spec = SeedSpec(plants=args.plants, months=args.months, seed=args.seed,
                    telemetry_days=args.telemetry_days)

    async def run() -> dict:
        from settlement.infra import db

        await _migrate(settings.database_url, quiet=True)
        await db.open_database(settings.database_url)
        # with a real Redis the seeded plants' live state is published there, as the ingest would
        redis = open_redis(settings.redis_url) if settings.redis_url else None
        try:
            return await seed_portfolio(spec, progress=_progress_factory(), redis=redis,
                                        namespace=Namespace(settings.redis_prefix) if redis is not None else None)
        finally:
            if redis is not None:
                await redis.aclose()
            await db.close_database()

    print(json.dumps(asyncio.run(run())))
    return 0


def _with_database(work):
    """Run ``work()`` against PVSETTLE_DATABASE_URL (migrated first); domain errors exit 2."""
    from settlement.errors import DomainError

    settings = Settings.from_env(require_secrets=False)
    logs.configure(settings.log_level, json_lines=False)

    try:
        return asyncio.run(_on_migrated(settings.database_url, work))
    except DomainError as exc:
        print(f"pvsettle: {exc.message}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_cycle_run(args: argparse.Namespace) -> int:
    """Say which electricity the period is (it is the month *before* for most reading days),
    refuse an old one without --yes, then run."""
    import datetime as dt

    from settlement.cycles import runs as cycles

    today = dt.datetime.now(cycles.LOCAL).date()

    async def work():
        covers = await cycles.period_covers(args.period, args.plant)
        for cover in covers:
            print(f"period {args.period}, plants read on day {cover.reading_day} ({cover.plants}): electricity "
                  f"from {cover.starts} 00:00 to {cover.ends} 00:00", file=sys.stderr)
        old = [c for c in covers if cycles.ended_over_a_month_ago(c, today)]
        if old and not args.yes:
            return covers, None
        return covers, await cycles.run_cycle(args.period, args.plant, batch_size=args.batch_size)

    covers, result = _with_database(work)
    if result is None:
        ended = max(c.ends for c in covers)
        print(f"pvsettle cycle run: period {args.period} ended on {ended}, more than a month ago: "
              f"forms would go to owners for old electricity; add --yes if that is meant", file=sys.stderr)
        return 2
    print(json.dumps({**result.as_dict(), "covers": [c.as_dict() for c in covers]}))
    return 0


def cmd_cycle_status(args: argparse.Namespace) -> int:
    from settlement.cycles import runs as cycles

    print(json.dumps(_with_database(lambda: cycles.cycle_status(args.period)), ensure_ascii=False))
    return 0


def cmd_cycle_bill(args: argparse.Namespace) -> int:
    from settlement.billing import bills

    issued = _with_database(lambda: bills.issue_bills(args.period))
    print(json.dumps({"period": args.period, "bills_issued": issued}))
    return 0


def cmd_cycle_daily(args: argparse.Namespace) -> int:
    from settlement.billing import late_fees
    from settlement.cycles import forms

    async def work():
        return {"auto_confirmed": await forms.auto_confirm_due(), "late_fee_lines": await late_fees.accrue_late_fees()}

    print(json.dumps(_with_database(work)))
    return 0


def cmd_bench_cycle(args: argparse.Namespace) -> int:
    from server.bench import bench_cycle

    settings = Settings.from_env(require_secrets=False)
    logs.configure("WARNING", json_lines=False)
    print(json.dumps(asyncio.run(bench_cycle(args.plants, settings.database_url))))
    return 0


def cmd_bench_engine(args: argparse.Namespace) -> int:
    from billing_engine import bench

    print(json.dumps(bench.run(meter_years=args.meter_years, register_meters=args.register_meters)))
    return 0


# --- helpers ------------------------------------------------------------------------------------


async def _migrate(database_url: str, *, quiet: bool) -> None:
    from settlement.infra import db

    def progress(event: str, app_label: str, name: str) -> None:
        if event == "apply_done":
            print(f"applied {app_label}.{name}", file=sys.stderr)

    await db.migrate(database_url, progress=None if quiet else progress)
    await db.close_database()


async def _on_migrated(database_url: str, work: Callable[[], Awaitable[T]]) -> T:
    """Migrate ``database_url`` quietly, connect, await ``work()`` and disconnect (also when it raises).

    Shared by ``_with_database`` here and in :mod:`server.cli_readings` and by the reports of
    :mod:`server.cli_reports`.
    """
    from settlement.infra import db

    await _migrate(database_url, quiet=True)
    await db.open_database(database_url)
    try:
        return await work()
    finally:
        await db.close_database()


async def _prepare_demo(settings: Settings, plants: int) -> None:
    from settlement.infra import db
    from settlement.models import Owner
    from settlement.seeding import SeedSpec, seed_demo_extras, seed_portfolio

    await _migrate(settings.database_url, quiet=True)
    await db.open_database(settings.database_url)
    try:
        if not await Owner.exists():
            print(f"seeding a demo portfolio of {plants} plants …", file=sys.stderr)
            await seed_portfolio(SeedSpec(plants=plants, months=3, seed=1, telemetry_days=2),
                                 progress=_progress_factory())
        # a nearby-consumption project and a prepaid account to look at (kept when they exist)
        extras = await seed_demo_extras()
        if extras:
            print(f"demo: nearby-consumption project {extras['nearby_plant']}, prepaid account "
                  f"{extras['prepaid_account']} (id {extras['prepaid_account_id']}) of plant "
                  f"{extras['prepaid_plant']}", file=sys.stderr)
    finally:
        await db.close_database()


def _progress_factory():
    """A tqdm bar on a terminal, plain lines otherwise (logs, CI)."""
    from settlement.seeding import Progress

    if sys.stderr.isatty():
        from tqdm import tqdm

        class Bar(Progress):
            def __init__(self, label: str, total: int):
                self._bar = tqdm(total=total, desc=label, unit="plant", file=sys.stderr)

            def advance(self, n: int = 1) -> None:
                self._bar.update(n)

            def close(self) -> None:
                self._bar.close()

        return Bar
    return Progress


def _serve_one(settings: Settings, *, reuse_port: bool,
               install: Callable[[object], None] | None = None) -> None:
    from aiohttp import web

    from server import loop
    from server.app import create_app

    app = create_app(settings)
    if install is not None:  # `pvsettle demo` only: the sandbox
        install(app)
    event_loop = loop.new_event_loop()
    # `kill -USR1` prints the event loop's tasks as well as the threads: a hang at shutdown is an
    # await that never ends, which only a task's stack shows. The loop's handler goes first and
    # faulthandler chains to it, as setting either one alone would replace the other (and
    # faulthandler, registered already by main(), re-installs itself only once unregistered).
    faulthandler.unregister(signal.SIGUSR1)
    event_loop.add_signal_handler(signal.SIGUSR1, _print_tasks, event_loop)
    faulthandler.register(signal.SIGUSR1, all_threads=True, chain=True)
    # open keep-alive connections get 10 s to finish on shutdown, not aiohttp's default minute
    web.run_app(app, host=settings.host, port=settings.port, reuse_port=reuse_port, loop=event_loop,
                print=None, access_log=logging.getLogger("pvsettle.access"), shutdown_timeout=10)


def _print_tasks(event_loop: asyncio.AbstractEventLoop) -> None:
    """Every task of ``event_loop`` with the stack it waits in, to stderr."""
    for task in asyncio.all_tasks(event_loop):
        print(f"asyncio task {task.get_name()}:", file=sys.stderr)
        task.print_stack(file=sys.stderr)
    sys.stderr.flush()


def _worker(settings: Settings) -> None:
    logs.configure(settings.log_level)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when workers stop
    _serve_one(settings, reuse_port=True)


def _supervise(settings: Settings, workers: int) -> int:
    """Run ``workers`` processes on one port (SO_REUSEPORT: the kernel spreads connections).

    When one worker dies the others are stopped too and the exit code says so: restarting is the
    job of the process manager above us (systemd, a container runtime).
    """
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(settings,), name=f"pvsettle-worker-{i}") for i in range(workers)]
    for proc in procs:
        proc.start()
    stopping = False

    def stop(signum, _frame):
        nonlocal stopping
        stopping = True
        for proc in procs:
            if proc.is_alive():
                proc.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    from multiprocessing.connection import wait

    wait([p.sentinel for p in procs])
    if not stopping:
        log.error("a worker exited; stopping the others",
                  extra={"exit_codes": [p.exitcode for p in procs]})
        stop(None, None)
    for proc in procs:
        proc.join()
    return 0 if stopping else 1


if __name__ == "__main__":
    sys.exit(main())
