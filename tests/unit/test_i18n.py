"""The message catalogue (templates/i18n/messages.toml) covers every text a person can be shown.

The error codes are found in the source, not listed by hand: every ``code="…"`` given to a
domain exception (any subclass of ``DomainError``, found by walking the class tree), every
class-level ``code = "…"`` of one, every code a JSON error is answered with directly, and the
codes the middleware names after HTTP statuses aiohttp answers by itself. Each must have a
Chinese and an English message that is more than the code, and every placeholder a message
names must be given by each place that raises it with a literal ``params``. The bot's replies
take their names from the catalogue: every state, role, channel, rate and row error they can
show has both languages, and no reply template shows a developer's English message. Every
field of every notification template has the label its template has in WeChat's console.
"""

from __future__ import annotations

import ast
import re
import string
from http import HTTPStatus
from pathlib import Path

import pytest

from settlement import i18n

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("settlement", "webapp", "miniprogram_api", "ingest_api", "bot", "server", "pages", "pay_api", "sandbox")
# JSON errors answered without raising: the function's name and which positional argument is the code
DIRECT = {"json_error": 1, "error_response": 2, "_unauthorized": 1, "_json_error": 1}
# the statuses aiohttp itself answers (router, body and header limits); the middleware names the
# code after the status's phrase
AIOHTTP_STATUSES = (400, 403, 404, 405, 408, 411, 413, 414, 415, 429, 431, 500, 503)
SNAKE = re.compile(r"\b[a-z]+(?:_[a-z0-9]+)+\b")
PLACEHOLDER = re.compile(r"\{[^{}]*\}")
HAN = re.compile(r"[\u4e00-\u9fff]")


def _trees() -> dict[Path, ast.Module]:
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py") if "fakes" not in p.parts]
    return {p: ast.parse(p.read_text("utf-8")) for p in files}


def _name(node: ast.expr) -> str | None:
    return getattr(node, "id", None) or getattr(node, "attr", None)


def _raised() -> dict[str, list[tuple[str, set[str] | None]]]:
    """Every error code in the source: code → [(where, the params given or None when not literal)]."""
    trees = _trees()
    # by name, every class of that name: two modules may each have a QuotaExceeded, one a domain error
    classes: dict[str, list[ast.ClassDef]] = {}
    errors = {"DomainError"}
    for tree in trees.values():
        for n in ast.walk(tree):
            if isinstance(n, ast.ClassDef):
                classes.setdefault(n.name, []).append(n)
    grew = True
    while grew:
        grew = False
        for name, nodes in classes.items():
            if name not in errors and any(_name(b) in errors for node in nodes for b in node.bases):
                errors.add(name)
                grew = True

    def class_code(name: str) -> str | None:
        node = next((n for n in classes.get(name, []) if name == "DomainError"
                     or any(_name(b) in errors for b in n.bases)), None)
        if node is None:
            return None
        for stmt in node.body:
            if (isinstance(stmt, ast.Assign) and any(_name(t) == "code" for t in stmt.targets)
                    and isinstance(stmt.value, ast.Constant)):
                return stmt.value.value
        return next((c for b in node.bases if (c := class_code(_name(b) or ""))), None)

    found: dict[str, list[tuple[str, set[str] | None]]] = {}
    for name in errors:
        if (code := class_code(name)) is not None:
            found.setdefault(code, [])
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            func = _name(node.func)
            if func in errors:
                keywords = {k.arg: k.value for k in node.keywords}
                code_node = keywords.get("code")
                code = code_node.value if isinstance(code_node, ast.Constant) else class_code(func)
                params_node = keywords.get("params")
                if params_node is None:
                    # a class that builds its params from keywords of its own (PhotoRefused's photo, why)
                    params: set[str] | None = set(keywords) - {"code"}
                elif isinstance(params_node, ast.Dict):
                    params = {k.value for k in params_node.keys if isinstance(k, ast.Constant)}
                else:
                    params = None  # built elsewhere (validation problems): not checked here
                if code is not None:
                    found.setdefault(code, []).append((where, params))
            elif func in DIRECT and len(node.args) > DIRECT[func] and isinstance(node.args[DIRECT[func]], ast.Constant):
                code = node.args[DIRECT[func]].value
                params_arg = node.args[DIRECT[func] + 1] if len(node.args) > DIRECT[func] + 1 else None
                given = ({k.value for k in params_arg.keys} if isinstance(params_arg, ast.Dict)
                         else None if params_arg is not None else set())
                found.setdefault(code, []).append((where, given))
    for status in AIOHTTP_STATUSES:
        found.setdefault(HTTPStatus(status).phrase.lower().replace(" ", "_"), [])
    return found


RAISED = _raised()


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_the_scan_finds_the_codes_it_should():
    """A guard on the scanner itself: codes from each way of raising are found."""
    for code in ("invalid_invitation", "unknown_plant", "link_invalid", "too_many_samples", "rate_limited",
                 "unauthorized", "not_found", "internal_error", "request_entity_too_large", "method_not_allowed"):
        assert code in RAISED, code
    assert len(RAISED) > 100


@pytest.mark.parametrize("code", sorted(RAISED))
def test_every_error_code_has_a_chinese_and_an_english_message(code):
    key = f"error.{code}"
    assert i18n.has(key), f"{code} (raised at {[w for w, _ in RAISED[code]][:3]}) has no line under [error]"
    zh, en = i18n.entries()[key].get("zh", ""), i18n.entries()[key].get("en", "")
    assert HAN.search(zh), f"{key}: the Chinese message {zh!r} has no Chinese"
    assert en.strip() and en.strip() != code and code not in en, f"{key}: the English message {en!r} is the code"
    shown = PLACEHOLDER.sub("", zh).replace("PVSETTLE_SECRET_KEY", "")  # a {placeholder} is filled in
    assert not SNAKE.search(shown), f"{key}: {zh!r} shows an identifier"


@pytest.mark.parametrize("code", sorted(c for c in RAISED if i18n.has(f"error.{c}")))
def test_every_raise_gives_the_parameters_its_message_names(code):
    needed = set()
    for lang in i18n.LANGUAGES:
        needed |= _placeholders(i18n.messages(lang)[f"error.{code}"])
    for where, given in RAISED[code]:
        if given is not None:
            assert needed <= given, f"{where} raises {code} without {sorted(needed - given)}"


def test_every_message_has_both_languages_and_the_same_placeholders():
    for key, texts in i18n.entries().items():
        assert texts.get("zh", "").strip() and texts.get("en", "").strip(), f"{key} lacks a language"
        assert _placeholders(texts["zh"]) == _placeholders(texts["en"]), key


def test_an_error_message_is_filled_in_the_callers_language():
    assert i18n.error_text("unknown_plant", "zh", {"plant": "PV99999"}) == "没有这个电站：PV99999"
    assert i18n.error_text("unknown_plant", "en", {"plant": "PV99999"}) == "No plant PV99999"
    problems = {"problems": [i18n.Ref("validation._item", {"field": i18n.field_label("reason"),
                                                           "problem": i18n.Ref("validation.string_too_short")})]}
    assert i18n.error_text("invalid_body", "zh", problems) == "请求内容有误：原因不能为空"
    assert i18n.error_text("invalid_body", "en", problems) == "The request is not valid: The reason must not be empty"
    # a code the catalogue lacks, or a message without its parameters: still a sentence, never a KeyError
    assert i18n.error_text("no_such_code", "zh") == i18n.text("error._default", "zh")
    assert i18n.error_text("unknown_plant", "en") == i18n.text("error._default", "en")


@pytest.mark.parametrize(("header", "lang"), [
    (None, "zh"), ("", "zh"), ("en", "en"), ("en-US,en;q=0.9", "en"), ("zh-CN,zh;q=0.9,en;q=0.8", "zh"),
    ("fr-FR, en;q=0.5, zh;q=0.8", "zh"), ("de", "zh"), ("en;q=abc", "zh"), ("EN-gb", "en"),
])
def test_the_language_is_negotiated_from_accept_language(header, lang):
    assert i18n.negotiate(header) == lang


# --- the bot -----------------------------------------------------------------------------------


def _enum_values(module: str, name: str) -> list[str]:
    import importlib

    return [m.value for m in getattr(importlib.import_module(module), name)]


@pytest.mark.parametrize(("section", "values"), [
    ("form_state", _enum_values("settlement.models", "FormState")),
    ("bill_state", _enum_values("settlement.models", "BillState")),
    ("channel", _enum_values("settlement.models", "PaymentChannel")),
    ("role", _enum_values("settlement.models", "StaffRole")),
    ("fault_state", _enum_values("settlement.models", "FaultState")),
    ("row_error", _enum_values("settlement.readings.ingest", "RowErrorCode")),
    ("row_error", _enum_values("settlement.telemetry.ingest", "RowErrorCode")),
    ("line_kind", _enum_values("settlement.models", "LineKind")),
    ("rate", ["sharp", "peak", "flat", "valley"]),
    ("plant_status", ["online", "offline", "unknown"]),
])
def test_every_code_a_reply_or_page_shows_has_its_name(section, values):
    for value in values:
        for lang in i18n.LANGUAGES:
            text = i18n.section(section, lang).get(value)
            assert text and text != value.replace("_", " ") or lang == "en" and text, f"{section}.{value} in {lang}"
        assert HAN.search(i18n.section(section, "zh")[value]), f"{section}.{value} has no Chinese"


def test_no_bot_reply_shows_a_developer_message():
    """The refusals were 未能办理：… （no plant 'PV99999'）: the English ``message`` of the exception."""
    for path in (ROOT / "templates" / "bot").glob("*.txt"):
        assert not re.search(r"\{\{[^}]*\bmessage\b|\.message\b", path.read_text("utf-8")), path.name


@pytest.mark.parametrize("code", sorted(c for c in RAISED if i18n.has(f"error.{c}")))
def test_every_refusal_the_bot_can_give_is_chinese(code):
    from bot.replies import render

    params = {name: "PV99999" for name in _placeholders(i18n.messages("zh")[f"error.{code}"])}
    reply = render("refused", code=code, params=params)
    assert reply.startswith("未能办理：") and HAN.search(reply[5:]), reply
    assert code not in reply and not re.search(r"[A-Za-z]{4,} [a-z]{2,}", reply.replace("PVSETTLE_SECRET_KEY", "")), reply


# --- notifications ------------------------------------------------------------------------------


def _notify_fields() -> list[tuple[str, str]]:
    out = []
    for path in sorted((ROOT / "templates" / "notify").glob("*.txt")):
        for key in re.findall(r"^((?:oa\.)?\w+):", path.read_text("utf-8"), re.M):
            # page and url are where a tap leads, not fields; first and remark are free text, no label
            if key not in ("page", "url", "oa.first", "oa.remark"):
                out.append((path.stem, key))
    return out


def test_every_notification_template_has_a_title():
    for path in (ROOT / "templates" / "notify").glob("*.txt"):
        for lang in i18n.LANGUAGES:
            assert i18n.has(f"template.{path.stem}._title"), path.stem


@pytest.mark.parametrize(("template", "key"), _notify_fields())
def test_every_notification_field_has_its_label(template, key):
    label = f"template.{template}.{key}"
    assert i18n.has(label), f"{label} is missing"
    assert HAN.search(i18n.text(label, "zh")) and i18n.text(label, "en") != key


def test_two_amounts_of_one_message_have_two_labels():
    """bill_issued showed amount3 and amount4; an owner could not tell them apart."""
    for template in {t for t, _ in _notify_fields()}:
        labels = [i18n.text(f"template.{template}.{k}", "zh") for t, k in _notify_fields()
                  if t == template and not k.startswith("oa.")]
        assert len(labels) == len(set(labels)), (template, labels)
