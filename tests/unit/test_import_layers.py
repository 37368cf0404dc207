"""The project's imports: no circles, arrows only down the layers, topic packages through public names.

The layer order is the README's: ``server`` (and ``sandbox``, the demo's wiring) → the sub-apps
``bot``, ``miniprogram_api``, ``ingest_api``, ``pages``, ``pay_api`` → ``webapp`` (the app keys,
settings and JSON error shape they share) → ``settlement`` → ``billing_engine``. Every ``import`` counts, those inside functions too (a lazy import is still
an arrow); only ``if TYPE_CHECKING:`` blocks are left out, as they never run (the ORM models name
each other there for their relations' annotations).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYERS = {"billing_engine": 0, "settlement": 1, "webapp": 2, "bot": 3, "miniprogram_api": 3, "ingest_api": 3,
          "pages": 3, "pay_api": 3, "server": 4, "sandbox": 4}
SUB_APPS = {name for name, level in LAYERS.items() if level == 3}


def modules(root: Path, packages: list[str]) -> dict[str, Path]:
    found = {}
    for package in packages:
        for path in (root / package).rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _runs(node: ast.AST) -> list[ast.AST]:
    """The nodes below ``node`` that can run: ``if TYPE_CHECKING:`` bodies left out."""
    out = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and getattr(child.test, "id", getattr(child.test, "attr", None)) == "TYPE_CHECKING":
            out.extend(_runs(ast.Module(body=child.orelse, type_ignores=[])))
            continue
        out.append(child)
        out.extend(_runs(child))
    return out


def import_graph(root: Path, packages: list[str]) -> dict[str, dict[str, set[str]]]:
    """module → {imported module → the names taken from it}, for the modules of ``packages``."""
    mods = modules(root, packages)

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, dict[str, set[str]]] = {}
    for module, path in mods.items():
        edges: dict[str, set[str]] = {}
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        for node in _runs(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if (target := resolve(alias.name)) and target != module:
                        edges.setdefault(target, set())
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    if full in mods:  # a module of a package
                        edges.setdefault(full, set())
                    elif (target := resolve(base)) and target != module:
                        edges.setdefault(target, set()).add(alias.name)
        graph[module] = edges
    return graph


def circles(graph: dict[str, dict[str, set[str]]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def against_the_layers(graph: dict[str, dict[str, set[str]]]) -> list[tuple[str, str]]:
    """(importer, imported) pairs that point up the layers, or from one sub-app into another."""
    wrong = []
    for module, edges in graph.items():
        top = module.split(".")[0]
        for target in edges:
            other = target.split(".")[0]
            if other == top or other not in LAYERS or top not in LAYERS:
                continue
            if LAYERS[other] > LAYERS[top] or (top in SUB_APPS and other in SUB_APPS):
                wrong.append((module, target))
    return sorted(wrong)


def private_across_topics(graph: dict[str, dict[str, set[str]]]) -> list[tuple[str, str, str]]:
    """A topic package of settlement taking another's private module or name."""
    def topic(module: str) -> str | None:
        parts = module.split(".")
        return parts[1] if parts[0] == "settlement" and len(parts) > 2 else None

    wrong = []
    for module, edges in graph.items():
        for target, names in edges.items():
            if topic(target) is None or topic(module) in (None, topic(target)):
                continue
            privates = {n for n in names if n.startswith("_")}
            if target.rpartition(".")[2].startswith("_"):
                privates.add(target)
            wrong.extend((module, target, name) for name in sorted(privates))
    return wrong


# --- the rules on the project ---------------------------------------------------------------------

PROJECT = import_graph(ROOT, list(LAYERS))


def test_the_walk_sees_the_project():
    assert len(PROJECT) > 150
    assert "settlement.billing.bills" in PROJECT["settlement.billing.late_fees"]
    assert "settlement.pay.orders" in PROJECT["settlement.prepaid.accounts"]


def test_no_import_circles():
    assert circles(PROJECT) == []


def test_imports_point_down_the_layers():
    assert against_the_layers(PROJECT) == [], "imports against the layer order (README \"Architecture\")"


def test_topic_packages_use_each_others_public_names_only():
    assert private_across_topics(PROJECT) == []


# --- the rules catch what they should: a throwaway tree ---------------------------------------------


def _tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_planted_circle_is_found(tmp_path):
    _tree(tmp_path, {
        "settlement/__init__.py": "",
        "settlement/pay/__init__.py": "",
        "settlement/pay/payments.py": "from settlement.prepaid import accounts\n",
        "settlement/prepaid/__init__.py": "",
        # lazily, inside a function: still a circle
        "settlement/prepaid/accounts.py": "def f():\n    from settlement.pay import payments\n",
        "settlement/models.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from settlement.pay import payments\n",
    })
    graph = import_graph(tmp_path, ["settlement"])
    assert circles(graph) == [["settlement.pay.payments", "settlement.prepaid.accounts"]]


def test_a_planted_upward_arrow_and_a_sub_app_importing_another_are_found(tmp_path):
    _tree(tmp_path, {
        "billing_engine/__init__.py": "",
        "billing_engine/tariff.py": "import settlement.errors\n",
        "settlement/__init__.py": "",
        "settlement/errors.py": "",
        "bot/__init__.py": "",
        "bot/app.py": "from pay_api import app\n",
        "pay_api/__init__.py": "",
        "pay_api/app.py": "from settlement.errors import *\n",
    })
    graph = import_graph(tmp_path, ["billing_engine", "settlement", "bot", "pay_api"])
    assert against_the_layers(graph) == [("billing_engine.tariff", "settlement.errors"), ("bot.app", "pay_api.app")]


def test_a_private_name_taken_across_topic_packages_is_found(tmp_path):
    _tree(tmp_path, {
        "settlement/__init__.py": "",
        "settlement/pay/__init__.py": "",
        "settlement/pay/payments.py": "def _send_refund(): ...\n",
        "settlement/prepaid/__init__.py": "",
        "settlement/prepaid/accounts.py": "from settlement.pay.payments import _send_refund\n",
        "settlement/prepaid/usage.py": "from settlement.prepaid.accounts import _private_but_same_topic\n",
    })
    graph = import_graph(tmp_path, ["settlement"])
    assert private_across_topics(graph) == [("settlement.prepaid.accounts", "settlement.pay.payments", "_send_refund")]
