"""The message catalogue (templates/i18n/messages.toml) covers every text a person can be shown.

The error codes are found in the source, not listed by hand: every ``code="…"`` given to a
domain exception (any subclass of ``DomainError``, found by walking the class tree), every
class-level ``code = "…"`` of one, every code a JSON error is answered with directly, and the
codes the middleware names after HTTP statuses aiohttp answers by itself. Each must have a
Chinese and an English message that is more than the code, and every placeholder a message
names must be given by each place that raises it with a literal ``params``. The bot's replies
take their names from the catalogue: every state, role, channel, rate and row error they can
show has both languages, and no reply template shows a developer's English message. Every id a
bot template takes from the catalogue (``names(section)``, then a key) is found in the templates
themselves, and every value the code can give such a lookup (an enum, the events the outbox is
given) has its entry, rendered in each language through the bot's own environment. Every
field of every notification template has the label its template has in WeChat's console. What
the sandbox page's toasts say is a message of the catalogue or an API error's message, never a
literal of sandbox.js.
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


def _module(name: str):
    import importlib

    return importlib.import_module(name)


def _enum_values(module: str, name: str) -> list[str]:
    return [m.value for m in getattr(_module(module), name)]


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


# --- what the bot's templates look up in the catalogue -------------------------------------------
# A reply names a code through ``names(section)``: ``status_names[row.status]``, or
# ``events.get(r.event, r.event)``, which shows the raw code (``ArrearsEscalated``) when the
# catalogue lacks it. So every section a template uses must hold every value the code can give it.


def _bot_lookups(source: str, imported: dict[str, str]) -> tuple[set[str], set[tuple[str, str]], set[str]]:
    """What one bot template takes from the catalogue: the sections it names, the (section, key)
    it looks up literally (``kinds.other``) and the sections it looks up by a value (``x[row.status]``).

    ``imported`` maps the names ``bot/_names.txt`` defines to their sections."""
    from jinja2 import nodes

    from bot.replies import _ENV

    tree = _ENV.parse(source)
    variables = dict(imported)
    sections: set[str] = set()

    def section_of(node) -> str | None:
        if (isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name) and node.node.name == "names"
                and node.args and isinstance(node.args[0], nodes.Const)):
            return node.args[0].value
        if isinstance(node, nodes.Name):
            return variables.get(node.name)
        return None

    for node in tree.find_all(nodes.Assign):
        if isinstance(node.target, nodes.Name) and (name := section_of(node.node)):
            variables[node.target.name] = name
    for node in tree.find_all(nodes.FromImport):
        for name in node.names:
            alias = name if isinstance(name, str) else name[1]
            original = name if isinstance(name, str) else name[0]
            if original in imported:
                variables[alias] = imported[original]
    literal: set[tuple[str, str]] = set()
    by_value: set[str] = set()
    for node in tree.find_all(nodes.Call):
        if (name := section_of(node)) is not None:
            sections.add(name)
    for node in tree.find_all((nodes.Getitem, nodes.Getattr)):
        if (name := section_of(node.node)) is None:
            continue
        sections.add(name)
        if isinstance(node, nodes.Getattr) and node.attr != "get":
            literal.add((name, node.attr))
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            literal.add((name, node.arg.value))
        else:
            by_value.add(name)  # x[value], or x.get(value, fallback)
    return sections, literal, by_value


def _bot_catalogue_use() -> dict[str, tuple[set[str], set[tuple[str, str]], set[str]]]:
    names = (ROOT / "templates" / "bot" / "_names.txt").read_text("utf-8")
    imported = {target: section for target, section in re.findall(r'set (\w+) = names\("(\w+)"\)', names)}
    return {path.name: _bot_lookups(path.read_text("utf-8"), imported)
            for path in sorted((ROOT / "templates" / "bot").glob("*.txt"))}


BOT_USE = _bot_catalogue_use()
OUTBOX_CALLS = {"enqueue": 0, "notify_owner": 0, "notify_owners": 0, "notify_staff": 0, "notify_owner_in_one_statement": 0}


def _outbox_events() -> set[str]:
    """Every event name the code gives the outbox (``notify_staff("OutageOpened" if … else "OutageEnded", …)``)."""
    found: set[str] = set()

    def constants(node: ast.expr) -> list[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, ast.IfExp):
            return constants(node.body) + constants(node.orelse)
        return []

    for tree in _trees().values():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _name(node.func) in OUTBOX_CALLS and node.args:
                found.update(constants(node.args[OUTBOX_CALLS[_name(node.func)]]))
    return found


# every value a bot template looks a section up by, from where the code defines it
BOT_VALUES: dict[str, list[str]] = {
    "role": _enum_values("settlement.models", "StaffRole"),
    "plant_status": ["online", "offline", "unknown"],
    "form_state": _enum_values("settlement.models", "FormState"),
    "bill_state": _enum_values("settlement.models", "BillState"),
    "fault_state": _enum_values("settlement.models", "FaultState"),
    "invoice_state": _enum_values("settlement.models", "InvoiceState"),
    "channel": _enum_values("settlement.models", "PaymentChannel"),
    "energy": sorted(set(_module("bot.staff").ENERGIES.values())),
    "rate": sorted(set(_module("bot.staff").RATES.values())),
    "outage_cause": _enum_values("settlement.models", "OutageCause"),
    "message_kind": ["image", "voice", "video", "shortvideo", "link", "file", "location", "other"],
    "row_error": (_enum_values("settlement.readings.ingest", "RowErrorCode")
                  + _enum_values("settlement.telemetry.ingest", "RowErrorCode")),
    "device_status": _enum_values("settlement.telemetry.ingest", "DeviceStatus"),
    "delivery_state": _enum_values("settlement.models", "OutboxState"),
    # settlement/notify/outbox.py picks the channel; models/outbox.py names the three
    "delivery_channel": ["subscribe", "template", "customer_service"],
    "event": sorted(_outbox_events()),
}


def test_the_bot_scan_finds_what_it_should():
    """A guard on the scanner: each way a template takes a name is found, and a lookup of an
    untranslated id is caught."""
    assert "event" in BOT_USE["notice.txt"][2] and "status_names" not in BOT_USE["gen.txt"][0]
    assert "plant_status" in BOT_USE["gen.txt"][2] and ("message_kind", "other") in BOT_USE["not_text.txt"][1]
    assert {"ArrearsEscalated", "OutageOpened", "OutageEnded", "PaymentReceived"} <= set(BOT_VALUES["event"])
    sections, literal, by_value = _bot_lookups(
        '{% set x = names("no_such_section") %}{{ x.nope }}{{ names("rate")["nope"] }}{{ x.get(v, v) }}', {})
    assert sections == {"no_such_section", "rate"} and by_value == {"no_such_section"}
    assert literal == {("no_such_section", "nope"), ("rate", "nope")}


@pytest.mark.parametrize("template", sorted(BOT_USE))
def test_every_id_a_bot_template_takes_from_the_catalogue_is_there_in_both_languages(template):
    sections, literal, by_value = BOT_USE[template]
    for section in sections:
        assert i18n.section(section, "zh"), f"{template} names the section {section!r}, which the catalogue lacks"
        for key in i18n.section(section, "zh"):
            texts = i18n.entries()[f"{section}.{key}"]
            assert HAN.search(texts.get("zh", "")) and texts.get("en", "").strip(), f"{section}.{key} untranslated"
    for section, key in literal:
        assert i18n.has(f"{section}.{key}"), f"{template} looks up {section}.{key}, which the catalogue lacks"
    for section in by_value:
        assert section in BOT_VALUES, f"{template} looks {section!r} up by a value: name its values in BOT_VALUES"
        missing = [v for v in BOT_VALUES[section] if not i18n.has(f"{section}.{v}")]
        assert not missing, f"{template} can be given {section} {missing}, which the catalogue lacks (the raw code shows)"


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_every_name_a_bot_template_takes_renders_in_each_language(lang, monkeypatch):
    """Rendered through the bot's own environment: with the bot speaking ``lang``, each name is
    that language's text, not the Chinese one a missing translation falls back to."""
    import bot.replies

    monkeypatch.setattr(bot.replies, "LANG", lang)
    template = bot.replies._ENV.from_string("{{ names(section)[key] }}")
    for section in sorted({s for sections, _, _ in BOT_USE.values() for s in sections}):
        for key in sorted(set(i18n.section(section, "zh")) | set(BOT_VALUES.get(section, ()))):
            assert template.render(section=section, key=key) == i18n.entries()[f"{section}.{key}"][lang], (section, key)


# --- the sandbox page's notices ------------------------------------------------------------------
# sandbox.js keeps its own words for its screens' furniture, but what a toast says is a message of
# the catalogue, ``say("sandbox.…")``, or an API error's message (worded by the server from the
# catalogue in the page's language): never a literal, nor a word of the page's own table.

SANDBOX_JS = ROOT / "sandbox" / "static" / "sandbox.js"
TOAST_FROM_CATALOGUE = re.compile(r'say\(\s*"(?P<id>[\w.]+)"\s*(?:,[\s\S]*)?\)')
TOAST_OF_AN_API_ERROR = re.compile(r"(?:e|err|error)\.message")


def _calls(source: str, function: str) -> list[tuple[int, str]]:
    """The argument text of each call of ``function`` (not its definition) in JavaScript ``source``,
    with the line it is on; strings are skipped while matching parentheses."""
    found = []
    for match in re.finditer(rf"(?<![\w.$]){function}\(", source):
        if source[max(0, match.start() - 9):match.start()].endswith("function "):
            continue
        depth, i, quote = 1, match.end(), None
        while depth:
            c = source[i]
            if quote:
                quote = None if c == quote and source[i - 1] != "\\" else quote
            elif c in "\"'`":
                quote = c
            elif c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
            i += 1
        found.append((source.count("\n", 0, match.start()) + 1, source[match.end():i - 1].strip()))
    return found


def _toasts_not_from_the_catalogue(source: str) -> list[str]:
    bad = []
    for line, argument in _calls(source, "toast"):
        said = TOAST_FROM_CATALOGUE.fullmatch(argument)
        if TOAST_OF_AN_API_ERROR.fullmatch(argument):
            continue
        if said is None:
            bad.append(f"line {line}: toast({argument}) is not a message of the catalogue")
        elif not i18n.has(said["id"]):
            bad.append(f"line {line}: toast says {said['id']}, which the catalogue lacks")
    return bad


def test_the_toast_scan_refuses_what_it_should():
    source = """function toast(text) { box.textContent = text; }
        toast("已订阅");  toast(t("paid_ok"));  toast(`Paid ${amount}`);
        toast(say("sandbox.no_such_notice"));
        toast(say("sandbox.subscribed", { names: list.join(label("sandbox.list_separator")) }));
        try { pay(); } catch (e) { toast(e.message); }"""
    assert _toasts_not_from_the_catalogue(source) == [
        'line 2: toast("已订阅") is not a message of the catalogue',
        'line 2: toast(t("paid_ok")) is not a message of the catalogue',
        "line 2: toast(`Paid ${amount}`) is not a message of the catalogue",
        "line 3: toast says sandbox.no_such_notice, which the catalogue lacks"]


def test_every_sandbox_toast_is_a_message_of_the_catalogue():
    source = SANDBOX_JS.read_text("utf-8")
    assert len(_calls(source, "toast")) >= 4  # the scan sees the page's toasts
    assert _toasts_not_from_the_catalogue(source) == []


def test_every_id_the_sandbox_names_literally_is_in_the_catalogue():
    source = SANDBOX_JS.read_text("utf-8")
    ids = re.findall(r'(?<![\w.])(?:say|label)\(\s*"([\w.]+)"', source)
    assert "sandbox.subscribed" in ids
    assert [i for i in ids if not i18n.has(i)] == []
