"""A tariff file in either format (the project's own, or an OpenEI URDB rate record) and the
shipped examples.

Apart from :mod:`billing_engine.tariff` because it picks between that module and
:mod:`billing_engine.urdb`, which itself builds on ``tariff``: here neither imports the other back.
"""

from __future__ import annotations

import json
from decimal import Decimal
from importlib import resources

from .errors import TariffError
from .tariff import Tariff, parse_tariff
from .urdb import from_urdb

__all__ = ["EXAMPLES", "FORMATS", "example", "format_of", "loads", "parse"]

EXAMPLES = ("jiangsu-2025", "zhejiang-2024")
FORMATS = ("pvsettle", "urdb")
"""The tariff formats: the project's own (:func:`~billing_engine.tariff.parse_tariff`) and OpenEI URDB."""


def format_of(obj: object) -> str:
    """``"urdb"`` for an OpenEI URDB rate record (it has ``energyratestructure``, or is an API
    answer ``{"items": [record]}``), else ``"pvsettle"``."""
    if isinstance(obj, dict) and ("energyratestructure" in obj or "items" in obj):
        return "urdb"
    return "pvsettle"


def parse(obj: object, format: str) -> Tariff:
    """A decoded tariff document in the named format (one of :data:`FORMATS`).

    Raises
    ------
    TariffError
        An unknown format or an invalid tariff (naming the field).
    """
    if format == "urdb":
        return from_urdb(obj)
    if format == "pvsettle":
        return parse_tariff(obj)
    raise TariffError(f"unknown tariff format {format!r} (have {', '.join(FORMATS)})")


def loads(text: str | bytes) -> Tariff:
    """Decode a tariff: the project's own format or an OpenEI URDB rate record.

    A record is taken as URDB when it has ``energyratestructure`` (or is an API answer
    ``{"items": [record]}``).

    Raises
    ------
    TariffError
        Invalid JSON (naming line and column) or an invalid tariff (naming the field).
    """
    try:
        obj = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise TariffError(f"invalid JSON: {exc.msg}",
                          where=f"line {exc.lineno} column {exc.colno}") from None
    except UnicodeDecodeError:
        raise TariffError("not UTF-8 text") from None
    return parse(obj, format_of(obj))


def example(name: str) -> Tariff:
    """One of the shipped example tariffs (:data:`EXAMPLES`), e.g. ``"jiangsu-2025"``."""
    if name not in EXAMPLES:
        raise TariffError(f"no example tariff {name!r} (have {', '.join(EXAMPLES)})")
    text = resources.files("billing_engine").joinpath("tariffs", f"{name}.json").read_text("utf-8")
    return loads(text)
