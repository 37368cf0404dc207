"""The message catalogue: every text an owner or staff member reads, Chinese first, then English.

One file, ``templates/i18n/messages.toml``, holds each message once, keyed by a dotted id, with
its languages side by side::

    [error]
    invalid_invitation = { zh = "邀请码无效、已使用或已过期", en = "This invitation code is unknown, used or expired" }

    [rate]
    peak = { zh = "峰", en = "Peak" }

Ids are the codes programs already see: ``error.<code>`` for every error code the API, the ingest
endpoints and the bot refuse with, ``rate.<period>``, ``form_state.<state>``, ``plant_status.…``,
``template.<name>.<field>`` for the subscribe-message fields, ``ebill.…`` for the printable
pages. Adding a message is adding one line with both languages; ``tests/unit/test_i18n.py``
fails on an error code, bot refusal or notification field without a Chinese and an English
entry that is more than the code itself.

Why a catalogue keyed by id and not gettext/Babel: gettext keys a message by its English source
sentence and compiles ``.mo`` files for Python; here the keys are the stable machine codes the
API returns beside the text (``state: "adjusted"``, ``error.code``), and the same catalogue is
served as JSON to the browser (``GET /api/v1/i18n?lang=…``) so the sandbox and the mini-program
label those codes from the one source. A TOML file read with the standard library's ``tomllib``
keeps comments, needs no compile step and no new dependency; the two languages on one line make
a missing translation visible in review.

Parameters: a message may name ``{placeholders}`` (``str.format`` syntax), filled from the
``params`` an error carries (:class:`settlement.errors.DomainError`). A parameter that is itself
a message of the catalogue is given as :class:`Ref` and resolved in the same language; a list of
them is joined by the language's separator (``error._separator``).

Language: :func:`negotiate` picks ``zh`` or ``en`` from an ``Accept-Language`` header; Chinese is
the default (the owners are in China; WeChat's ``wx.request`` sends no such header unless the
mini-program sets one).
"""

from __future__ import annotations

import functools
import logging
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from settlement.templating import TEMPLATES

log = logging.getLogger("pvsettle.i18n")

LANGUAGES = ("zh", "en")
DEFAULT = "zh"
CATALOGUE = TEMPLATES / "i18n" / "messages.toml"


@dataclass(frozen=True)
class Ref:
    """A message of the catalogue given as a parameter of another, resolved in its language."""

    key: str
    params: Mapping[str, Any] = field(default_factory=dict)


@functools.cache
def entries() -> dict[str, dict[str, str]]:
    """Every message: dotted id → {language: text}. A table whose keys are languages is a message."""
    with CATALOGUE.open("rb") as f:
        tree = tomllib.load(f)
    found: dict[str, dict[str, str]] = {}

    def walk(prefix: str, table: dict[str, Any]) -> None:
        for key, value in table.items():
            path = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict) and value and set(value) <= set(LANGUAGES):
                found[path] = value
            elif isinstance(value, dict):
                walk(path, value)
            else:
                raise ValueError(f"{CATALOGUE.name}: {path} is neither a message nor a table of messages")

    walk("", tree)
    return found


@functools.cache
def messages(lang: str) -> dict[str, str]:
    """The catalogue in one language (a missing translation falls back to Chinese): id → text."""
    lang = lang if lang in LANGUAGES else DEFAULT
    return {key: texts.get(lang) or texts[DEFAULT] for key, texts in entries().items()}


def section(name: str, lang: str) -> dict[str, str]:
    """The messages under ``name.``, keyed by the rest of their id: ``section("rate", "zh")["peak"]``."""
    prefix = name + "."
    return {key[len(prefix):]: text for key, text in messages(lang).items() if key.startswith(prefix)}


def has(key: str) -> bool:
    return key in entries()


def text(key: str, lang: str, /, **params: Any) -> str:
    """The message ``key`` in ``lang`` with its placeholders filled. An unknown key is a KeyError."""
    template = messages(lang)[key]
    return _fill(template, lang, params) if params else template


def error_text(code: str, lang: str, params: Mapping[str, Any] | None = None) -> str:
    """The human message of the error ``code`` in ``lang``.

    A code the catalogue lacks, or a message whose placeholders the error did not fill, gives the
    catalogue's general refusal (and a warning in the log): a person still reads a sentence, and
    the test of the catalogue names the gap.
    """
    table = messages(lang)
    template = table.get(f"error.{code}")
    if template is None:
        log.warning("no catalogue entry for error code %r", code)
        return table["error._default"]
    try:
        return _fill(template, lang, params or {})
    except (KeyError, IndexError, ValueError):
        log.warning("error %r: its message needs parameters it was not given", code, exc_info=True)
        return table["error._default"]


def _fill(template: str, lang: str, params: Mapping[str, Any]) -> str:
    return template.format_map({name: _resolve(value, lang) for name, value in params.items()})


def _resolve(value: Any, lang: str) -> Any:
    """A parameter as text: a :class:`Ref` in ``lang``, a list of them joined by the language's separator."""
    if isinstance(value, Ref):
        return text(value.key, lang, **value.params)
    if isinstance(value, (list, tuple)):
        return messages(lang)["error._separator"].join(str(_resolve(v, lang)) for v in value)
    return value


def field_label(name: str) -> Ref | str:
    """The name of a request field as people read it (``field.<name>``), else the name itself."""
    return Ref(f"field.{name}") if has(f"field.{name}") else name


def negotiate(accept_language: str | None, default: str = DEFAULT) -> str:
    """``zh`` or ``en``, whichever the ``Accept-Language`` header prefers (RFC 9110 q-values)."""
    best, best_q = default, 0.0
    for part in (accept_language or "").split(","):
        tag, _, rest = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in LANGUAGES:
            continue
        q = 1.0
        for param in rest.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > best_q:
            best, best_q = primary, q
    return best
