"""`pvsettle prepaid open | service | show` against this test's database, as staff would run them."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
from decimal import Decimal

from settlement import models as m


async def _pvsettle(settings, *args: str) -> tuple[int, dict | None, str]:
    env = {**os.environ, "PVSETTLE_DATABASE_URL": settings.database_url, "PVSETTLE_REDIS_URL": settings.redis_url}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "server.cli", "prepaid", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode, json.loads(out) if out.strip() else None, err.decode()


async def test_staff_open_an_account_add_electricity_and_read_the_statement(db, settings):
    owner = await m.Owner.create(name="王五")
    plant = await m.Plant.create(code="CLI01", name="仓库屋顶", owner=owner, capacity_kwp=Decimal("30"))
    await m.Contract.create(plant=plant, effective_from=dt.date(2025, 6, 1), tariff_code="js-2025",
                            pricing_model=m.PricingModel.GRID_DISCOUNT, discount=Decimal("0.85"))
    await m.Meter.create(plant=plant, serial="CLI-M1", kind=m.MeterKind.GRID, registers=["00010000"],
                         installed_on=dt.date(2025, 1, 1))
    code, opened, err = await _pvsettle(settings, "open", "--owner", str(owner.id), "--plant", str(plant.id),
                                        "--name", "仓库预付费", "--switch", "CLI-M1", "--holiday", "2026-10-01")
    assert code == 0, err
    account = await m.PrepaidAccount.get(number=opened["number"])
    assert (account.plant_id, account.holidays, account.warning_fen) == (plant.id, ["2026-10-01"], 5000)
    code, service, err = await _pvsettle(settings, "service", opened["number"], "--name", "电", "--utility",
                                         "electricity", "--unit", "kWh", "--follows-contract", "--meter", "CLI-M1")
    assert code == 0, err
    assert service["utility"] == "electricity"
    code, statement, err = await _pvsettle(settings, "show", opened["number"])
    assert code == 0 and statement["account"]["available_fen"] == 0 and statement["services"][0]["unit"] == "kWh"
    # refused: water in kWh; another owner's plant; an unknown account — nothing changes
    assert (await _pvsettle(settings, "service", opened["number"], "--name", "水", "--utility", "water",
                            "--unit", "kWh", "--tariff", "x"))[0] == 2
    other = await m.Owner.create(name="赵六")
    code, _, err = await _pvsettle(settings, "open", "--owner", str(other.id), "--plant", str(plant.id), "--name",
                                   "x", "--switch", "S")
    assert code == 2 and "no plant" in err
    assert (await _pvsettle(settings, "show", "PA0000000000"))[0] == 2
    assert await m.PrepaidAccount.all().count() == 1 and await m.PrepaidService.all().count() == 1


async def test_show_takes_the_id_open_printed_as_well_as_the_number(db, settings):
    owner = await m.Owner.create(name="钱七")
    code, opened, err = await _pvsettle(settings, "open", "--owner", str(owner.id), "--name", "宿舍预付费",
                                        "--switch", "SW-9")
    assert code == 0, err
    by_id = await _pvsettle(settings, "show", str(opened["id"]))
    by_number = await _pvsettle(settings, "show", opened["number"])
    assert by_id[0] == 0 and by_id[1] == by_number[1], by_id[2]
    assert by_id[1]["account"]["number"] == opened["number"]
    # the service command finds the account by its id too (and then judges the request itself)
    code, _, err = await _pvsettle(settings, "service", str(opened["id"]), "--name", "水", "--utility",
                                   "water", "--unit", "kWh", "--tariff", "x")
    assert code == 2 and "no prepaid account" not in err, err
    code, _, err = await _pvsettle(settings, "show", str(opened["id"] + 1000))
    assert code == 2 and "no prepaid account with the number or id" in err and "Traceback" not in err


def test_every_prepaid_option_says_what_it_is():
    import argparse

    from server.cli.main import build_parser

    parser = build_parser()
    prepaid = next(a for a in parser._subparsers._group_actions[0].choices["prepaid"]._actions
                   if isinstance(a, argparse._SubParsersAction))
    for name, sub in prepaid.choices.items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and action.help != argparse.SUPPRESS, f"prepaid {name} {action.dest} has no help"
