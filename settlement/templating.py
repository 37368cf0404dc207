"""The one jinja2 set-up for every template under ``templates/``: bot replies, notifications,
e-bills and invoices.

:data:`TEMPLATES` is where the templates are, found once: next to the source tree, which is the
same place in a checkout, an editable install and a wheel (``templates`` ships as a package).
:func:`environment` gives a renderer its environment:

* template names are paths under ``templates/`` (``bot/help.txt``, ``ebill/bill.html``);
* autoescape follows the file's extension: on for ``.html`` (owners' names and addresses end up in
  pages), off for ``.txt`` (bot replies and WeChat message fields are plain text; what users
  typed is only ever a value given to a template, never a template itself);
* a name missing from the context is an error (``StrictUndefined``), never an empty string on a
  bill;
* a block tag's own line leaves no blank line or indentation behind (``trim_blocks``,
  ``lstrip_blocks``);
* money has the same filters everywhere (:mod:`settlement.money_text`): ``yuan`` writes
  ``7,403.50``, ``wechat_amount`` writes ``¥7403.50`` for WeChat's ``amount`` fields.

Each renderer adds the filters and globals only it uses (its own way of writing times, kWh,
percentages) and keeps its environment for the life of the process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jinja2

from settlement.money_text import format_yuan, wechat_amount

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
SHARED_FILTERS: Mapping[str, Callable[..., str]] = {"yuan": format_yuan, "wechat_amount": wechat_amount}


def environment(*, filters: Mapping[str, Callable[..., Any]] | None = None,
                template_globals: Mapping[str, Any] | None = None) -> jinja2.Environment:
    """A jinja2 environment over :data:`TEMPLATES` with the shared filters and ``filters``.

    Parameters
    ----------
    filters : mapping of name to callable, optional
        The caller's own filters, beside :data:`SHARED_FILTERS`.
    template_globals : mapping of name to object, optional
        Names every template of the caller sees.

    Raises
    ------
    ValueError
        A filter of the caller's has a shared filter's name: one name, one meaning in every template.
    """
    filters = dict(filters or {})
    if clash := sorted(filters.keys() & SHARED_FILTERS.keys()):
        raise ValueError(f"filters {clash} are shared ones (settlement.templating.SHARED_FILTERS)")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        # unknown extensions and template strings escape: the safe side if one ever appears
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), disabled_extensions=("txt",),
                                            default_for_string=True, default=True),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(SHARED_FILTERS)
    env.filters.update(filters)
    env.globals.update(template_globals or {})
    return env
