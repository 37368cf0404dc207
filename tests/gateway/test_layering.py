"""The gateway may run on another box: it imports no code of the server's (DESIGN.md "Layers")."""

from __future__ import annotations

import ast
from pathlib import Path

import gateway

SERVER_SIDE = ("settlement", "webapp", "server", "sandbox", "bot", "miniprogram_api", "ingest_api", "pay_api",
               "pages", "billing_engine", "tortoise", "redis")


def test_the_gateway_imports_nothing_of_the_server():
    found = []
    for path in Path(gateway.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            found += [(path.name, n) for n in names if n.split(".")[0] in SERVER_SIDE]
    assert found == []
