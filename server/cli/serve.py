"""``pvsettle serve`` and ``pvsettle demo``: the server processes (one, or workers on one port).
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import logging
import multiprocessing
import signal
import sys
from collections.abc import Callable, Sequence

from server import logs
from server.cli.common import migrate, progress_factory
from webapp.settings import Settings, SettingsError, demo_settings

log = logging.getLogger("pvsettle")


def register(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="embedded default: SQLite, emulated Redis, demo portfolio, serve")
    demo.add_argument("--plants", type=int, default=12, help="plants in the demo portfolio (when empty)")
    demo.set_defaults(func=cmd_demo)

    serve = sub.add_parser("serve", help="production server, settings from the environment")
    serve.add_argument("--workers", type=int, default=1, help="server processes sharing one port")
    serve.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    logs.configure(settings.log_level)
    if args.workers < 1:
        raise SettingsError([f"--workers must be at least 1, not {args.workers}"])
    if settings.redis_url == "" and args.workers > 1:
        raise SettingsError(["PVSETTLE_REDIS_URL is needed with --workers > 1: the in-process "
                             "emulation cannot be shared between processes"])
    asyncio.run(migrate(settings.database_url, quiet=True))
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


async def _prepare_demo(settings: Settings, plants: int) -> None:
    from settlement.infra import db
    from settlement.models import Owner
    from settlement.seeding import SeedSpec, seed_demo_extras, seed_portfolio

    await migrate(settings.database_url, quiet=True)
    await db.open_database(settings.database_url)
    try:
        if not await Owner.exists():
            print(f"seeding a demo portfolio of {plants} plants …", file=sys.stderr)
            await seed_portfolio(SeedSpec(plants=plants, months=3, seed=1, telemetry_days=2),
                                 progress=progress_factory())
        # a nearby-consumption project and a prepaid account to look at (kept when they exist)
        extras = await seed_demo_extras()
        if extras:
            print(f"demo: nearby-consumption project {extras['nearby_plant']}, prepaid account "
                  f"{extras['prepaid_account']} (id {extras['prepaid_account_id']}) of plant "
                  f"{extras['prepaid_plant']}", file=sys.stderr)
    finally:
        await db.close_database()


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
