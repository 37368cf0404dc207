"""Text from outside: the one check every boundary applies before text is kept or acted on.

Owners, collectors, WeChat, WeChat Pay and import files all send text. Some characters in it are
never meaningful in this domain and break things further in: PostgreSQL refuses NUL (U+0000) in
``text`` columns while SQLite stores it, so the two backends would disagree; a lone surrogate
(U+D800–U+DFFF, which stdlib JSON decodes from ``"\\ud800"``) cannot be encoded as UTF-8 for any
database or reply; the other control characters (C0, DEL, C1) hide in names and identifiers and
garble logs, messages and exports. So text from outside is refused — a 400 ``invalid_text`` on
the HTTP APIs, a refused row in batches and imports, a polite reply in the bot — naming the field
and the character, and nothing is stored.

Kept: tab, line feed and carriage return, which multi-line text (a dispute reason, a fault report)
legitimately holds. Identifiers that must be one line say so with their own, narrower rules.

:data:`JSON_SCHEMA_PATTERN` says the same for the OpenAPI document. It leaves lone surrogates out,
because JSON Schema strings are sequences of Unicode scalar values, in which they cannot occur.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from settlement.errors import InvalidInput

#: Control characters except tab, LF and CR (C0, DEL, C1) and the surrogates.
_REFUSED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
#: The same rule as an ECMA-262 regular expression over scalar values, for JSON Schema.
JSON_SCHEMA_PATTERN = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$"
CODE = "invalid_text"


class InvalidText(InvalidInput):
    """Text holding a character it may not hold. ``message`` names the field, the character and its
    position for developers; ``params["field"]`` names the field for the catalogue's
    ``error.invalid_text`` (settlement.i18n), which people read."""

    code = CODE

    def __init__(self, message: str, *, field: str):
        from settlement import i18n  # the catalogue imports nothing of ours; imported here to keep this module light

        super().__init__(message, params={"field": i18n.field_label(field)})


def problem(text: str) -> str | None:
    """What is wrong with ``text``, or None when it may be kept.

    >>> problem("逆变器\\x00报警")
    'holds NUL (U+0000) at position 3'
    """
    found = _REFUSED.search(text)
    if found is None:
        return None
    point = ord(found.group())
    name = ("NUL" if point == 0 else "a lone surrogate" if 0xD800 <= point <= 0xDFFF
            else "a control character")
    return f"holds {name} (U+{point:04X}) at position {found.start()}"


def message(field: str, text: str) -> str | None:
    """The refusal's message for ``field`` holding ``text``, or None when it may be kept."""
    found = problem(text)
    if found is None:
        return None
    return f"{field} {found}: text may not hold NUL, control characters or lone surrogates"


def check(field: str, text: str) -> str:
    """``text`` itself when it may be kept.

    Raises
    ------
    InvalidText
        It holds NUL, another control character but tab, LF and CR, or a lone surrogate.
    """
    refused = message(field, text)
    if refused is not None:
        raise InvalidText(refused, field=field)
    return text


def refused_field(row: Mapping, keys: Iterable[str], name: str) -> str | None:
    """The refusal's message for the first of ``keys`` whose value in ``row`` is text that may not
    be kept (``row 3: field 'meter' holds NUL …``), or None; values that are not text are not judged."""
    refused = refusal(row, keys, name)
    return None if refused is None else refused.message


def refusal(row: Mapping, keys: Iterable[str], name: str) -> InvalidText | None:
    """:func:`refused_field` as the exception to raise, its field ``<name>: <key>``."""
    for key in keys:
        value = row.get(key)
        refused = message(f"{name}: field '{key}'", value) if isinstance(value, str) else None
        if refused is not None:
            return InvalidText(refused, field=f"{name}: {key}")
    return None


def shown(text: str) -> str:
    """``text`` with what :func:`check` refuses written as ``\\uXXXX``: safe to put in a message
    that is logged, stored or sent (a field name that came from outside, say)."""
    return _REFUSED.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            label = shown(str(key))
            name = f"{where}.{label}" if where else label
            if isinstance(key, str):
                yield f"{name} (a key)", key
            yield from _strings(item, name)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _strings(item, f"{where}[{index}]")


def first_refused(value: Any, where: str = "") -> str | None:
    """The refusal's message for the first refused string anywhere in a decoded JSON document
    (keys included), or None when every string may be kept."""
    refused = document_refusal(value, where)
    return None if refused is None else refused.message


def document_refusal(value: Any, where: str = "") -> InvalidText | None:
    """:func:`first_refused` as the exception to raise, naming the string by its path."""
    try:
        for name, text in _strings(value, where):
            refused = message(name or "body", text)
            if refused is not None:
                return InvalidText(refused, field=name or "body")
    except RecursionError:  # a document nested deeper than Python's stack: not text anyone sends
        return InvalidText(f"{where or 'the body'} is nested too deeply", field=where or "body")
    return None


def check_document(value: Any, where: str = "") -> Any:
    """A decoded JSON document itself when every string in it, keys included, may be kept.

    Raises
    ------
    InvalidText
        Naming the first string that may not be kept by its path (``readings[3].meter``).
    """
    refused = document_refusal(value, where)
    if refused is not None:
        raise refused
    return value
