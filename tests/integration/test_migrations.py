"""The schema comes from migrations/ only, and they describe the models exactly."""

from pathlib import Path

from tortoise import connections

import migrations

from settlement.infra import db
from settlement.infra.db import tortoise_config


async def test_migrations_apply_to_an_empty_database_and_again_harmlessly(database_factory):
    import settlement.models as m

    url = await database_factory.empty()
    await db.migrate(url)
    await db.migrate(url)  # already applied: nothing to do, no error
    await db.close_database()
    await db.open_database(url)
    try:
        _, applied = await connections.get("default").execute_query(
            "SELECT app, name FROM tortoise_migrations ORDER BY name")
        on_disk = sorted(p.stem for p in Path(migrations.__file__).parent.glob("0*.py"))
        assert [(r["app"], r["name"]) for r in applied] == [("settlement", name) for name in on_disk]
        assert on_disk[0] == "0001_initial"
        for name in m.__all__:
            model = getattr(m, name)
            if isinstance(model, type) and hasattr(model, "_meta") and hasattr(model._meta, "db_table"):
                assert await model.all().count() == 0, name
    finally:
        await db.close_database()


async def test_models_and_migrations_agree(database_factory):
    """What `python -m tortoise makemigrations` would write now: nothing."""
    from tortoise.context import TortoiseContext
    from tortoise.migrations.autodetector import MigrationAutodetector

    config = tortoise_config(await database_factory.empty())
    async with TortoiseContext() as ctx:
        await ctx.init(config=config)
        writers = await MigrationAutodetector(ctx.apps, config["apps"]).changes()
        await ctx.close_connections()
    assert writers == [], "models changed without a migration: run python -m tortoise makemigrations"
