"""billing_engine is pure: importing all of it pulls in no I/O framework and no project package."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
FORBIDDEN = ("aiohttp", "tortoise", "redis", "settlement", "webapp", "server", "bot", "miniprogram_api",
             "fakeredis", "asyncpg", "aiosqlite", "jinja2", "PySAM")

SCRIPT = """
import importlib, json, pkgutil, sys
import billing_engine
names = [m.name for m in pkgutil.iter_modules(billing_engine.__path__, "billing_engine.")]
for name in names:
    importlib.import_module(name)
print(json.dumps({"modules": names, "loaded": sorted(sys.modules)}))
"""


def test_importing_every_module_loads_nothing_forbidden() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    report = json.loads(out.stdout)
    assert "billing_engine.__main__" in report["modules"]
    assert {"billing_engine.tariff", "billing_engine.pricing", "billing_engine.money",
            "billing_engine.registers", "billing_engine.bench"} <= set(report["modules"])
    leaked = [m for m in report["loaded"] if m.split(".")[0] in FORBIDDEN]
    assert leaked == []


def test_sources_import_only_numpy_and_the_standard_library() -> None:
    allowed_third_party = {"numpy"}
    stdlib = set(sys.stdlib_module_names)
    for path in (ROOT / "billing_engine").glob("*.py"):
        for line in path.read_text(encoding="utf-8").splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] in ("import", "from") and not line.startswith(" "):
                top = words[1].split(".")[0]
                if words[1].startswith("."):
                    continue
                assert top in stdlib or top in allowed_third_party or top == "__future__", \
                    f"{path.name}: {line}"
