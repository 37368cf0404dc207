"""What every ingest endpoint does with a batch body before its service judges the rows.

Readings, telemetry samples and prepaid usage all arrive as ``{"<key>": [ {...}, ... ]}``: the
body must be JSON (NaN and Infinity, which Python's json would take, are not), that shape, and no
longer than the endpoint allows. Rows received are counted per status on the root app's metrics.
"""

from __future__ import annotations

import json
import weakref
from decimal import Decimal
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter

from settlement.errors import InvalidInput
from settlement.i18n import Ref


class TooManyRows(InvalidInput):
    """More rows than one request may carry (the endpoints answer 413)."""

    code = "too_many_rows"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def decode(body: bytes, *, exact_decimals: bool = False) -> Any:
    """The JSON document of ``body``.

    Parameters
    ----------
    exact_decimals : bool
        Numbers with a fraction as :class:`~decimal.Decimal` (meter readings, usage): the stdlib
        parser. Otherwise orjson first (telemetry: a third of the time), the stdlib for what orjson
        refuses but JSON allows (integers beyond 64 bits), so both judge the same bodies.

    Raises
    ------
    InvalidInput
        Not JSON (code ``invalid_json``).
    """
    if not exact_decimals:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass  # judged again by the stdlib below: its error names the place
    try:
        return json.loads(body, parse_float=Decimal if exact_decimals else float, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        reason = str(exc) if isinstance(exc, ValueError) else "nested too deeply"
        raise InvalidInput(f"the body is not valid JSON: {reason[:200]}", code="invalid_json") from None


def batch_rows(document: Any, key: str, limit: int, *, too_many: type[TooManyRows] = TooManyRows,
               noun: str = "rows") -> list[Any]:
    """The list under ``key`` of a decoded body, at most ``limit`` long.

    Raises
    ------
    InvalidInput
        Not an object holding a list under ``key`` (code ``invalid_body``).
    TooManyRows
        (or ``too_many``) more than ``limit`` rows.
    """
    if not isinstance(document, dict) or not isinstance(document.get(key), list):
        raise InvalidInput(f'the body must be an object {{"{key}": [ ... ]}}', code="invalid_body",
                           params={"problems": [Ref("problem.body_shape", {"key": key})]})
    rows = document[key]
    if len(rows) > limit:
        raise too_many(f"a batch holds at most {limit} {noun}, this one has {len(rows)}: send it in parts",
                       params={"limit": limit})
    return rows


_counters: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, Counter]] = weakref.WeakKeyDictionary()


def rows_counter(registry: CollectorRegistry, name: str, description: str) -> Counter:
    """The per-status row counter ``name`` of the root app's registry, made on first use (a
    sub-app cannot see the registry before the root app starts)."""
    counters = _counters.setdefault(registry, {})
    if name not in counters:
        counters[name] = Counter(name, description, ["status"], registry=registry)
    return counters[name]
