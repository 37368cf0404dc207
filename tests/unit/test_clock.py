"""The one clock: settable for a test, refusing a naive time, and the only reader of the wall clock."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import pytest

from settlement import clock
from settlement.billing.ebill_links import LINK_LIFETIME, ebill_link
from settlement.clock import LOCAL, UTC, frozen, local_now, local_today, utc_now

ROOT = Path(__file__).resolve().parents[2]
APP_PACKAGES = ("billing_engine", "settlement", "webapp", "bot", "miniprogram_api", "ingest_api", "pages",
                "pay_api", "server", "sandbox")


def test_now_is_aware_utc_and_moves():
    first = utc_now()
    assert first.tzinfo is UTC
    assert abs(first - dt.datetime.now(UTC)) < dt.timedelta(seconds=5)
    assert utc_now() >= first


def test_local_is_china_standard_time_all_year():
    for month in (1, 7):
        assert dt.datetime(2026, month, 1, tzinfo=LOCAL).utcoffset() == dt.timedelta(hours=8)


def test_frozen_sets_every_reading_and_restores():
    at = dt.datetime(2026, 3, 31, 23, 30, tzinfo=UTC)  # already 1 April in China
    with frozen(at) as now:
        assert now == at and utc_now() == at
        assert local_now() == at.astimezone(LOCAL)
        assert local_today() == dt.date(2026, 4, 1)
    assert utc_now() != at


def test_frozen_nests_and_takes_any_zone():
    outer = dt.datetime(2026, 1, 1, 8, tzinfo=LOCAL)
    with frozen(outer):
        with frozen(dt.datetime(2026, 6, 1, tzinfo=UTC)):
            assert local_today() == dt.date(2026, 6, 1)
        assert utc_now() == dt.datetime(2026, 1, 1, 0, tzinfo=UTC)


def test_frozen_refuses_a_naive_time():
    with pytest.raises(ValueError, match="naive"):
        with frozen(dt.datetime(2026, 1, 1)):
            pass
    assert clock._frozen_at is None


def test_a_rule_that_takes_no_time_reads_the_frozen_one():
    # an e-bill link without an expiry lives 30 days from the clock's now: the frozen one
    at = dt.datetime(2030, 1, 15, 4, tzinfo=UTC)
    with frozen(at):
        link = ebill_link("bill", 7, None, "k" * 32)
    assert f"exp={int((at + LINK_LIFETIME).timestamp())}&" in link


def _wall_clock_reads(tree: ast.AST) -> list[int]:
    """Lines that read the wall clock or name the business zone themselves."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            attr, owner = node.func.attr, node.func.value
            owner_name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
            if attr in ("now", "utcnow", "today") and owner_name in ("datetime", "date"):
                lines.append(node.lineno)
        if (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "ZoneInfo"
                and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value == "Asia/Shanghai"):
            lines.append(node.lineno)
    return lines


def test_only_the_clock_module_reads_the_wall_clock():
    offenders = []
    for package in APP_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == ROOT / "settlement" / "clock.py":
                continue
            offenders += [f"{path.relative_to(ROOT)}:{line}" for line in _wall_clock_reads(ast.parse(path.read_text()))]
    assert offenders == []


def test_the_check_sees_each_way_of_reading_the_clock():
    planted = ast.parse("import datetime as dt\nfrom zoneinfo import ZoneInfo\n"
                        "a = dt.datetime.now(dt.timezone.utc)\nb = dt.date.today()\n"
                        "c = datetime.utcnow()\nd = ZoneInfo('Asia/Shanghai')\ne = dt.datetime.fromisoformat('x')\n")
    assert _wall_clock_reads(planted) == [3, 4, 5, 6]
