"""``pvsettle migrate`` and ``pvsettle seed``: the schema, and a synthetic portfolio.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from server import logs
from server.cli.common import migrate, progress_factory
from webapp.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    migrate = sub.add_parser("migrate", help="apply migrations to PVSETTLE_DATABASE_URL")
    migrate.set_defaults(func=cmd_migrate)

    seed = sub.add_parser("seed", help="synthetic portfolio: owners, plants, meters, readings, telemetry")
    seed.add_argument("--plants", type=int, required=True)
    seed.add_argument("--months", type=int, default=3, help="whole months of readings before today")
    seed.add_argument("--seed", type=int, default=1, help="random seed: the same seed, the same portfolio")
    seed.add_argument("--telemetry-days", type=int, default=2, help="days of 15-minute telemetry")
    seed.set_defaults(func=cmd_seed)


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = Settings.from_env(require_secrets=False)
    logs.configure(settings.log_level, json_lines=False)
    asyncio.run(migrate(settings.database_url, quiet=False))
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

        await migrate(settings.database_url, quiet=True)
        await db.open_database(settings.database_url)
        # with a real Redis the seeded plants' live state is published there, as the ingest would
        redis = open_redis(settings.redis_url) if settings.redis_url else None
        try:
            return await seed_portfolio(spec, progress=progress_factory(), redis=redis,
                                        namespace=Namespace(settings.redis_prefix) if redis is not None else None)
        finally:
            if redis is not None:
                await redis.aclose()
            await db.close_database()

    print(json.dumps(asyncio.run(run())))
    return 0
