"""Every text the bot sends comes from a jinja2 template under ``templates/bot/``.

The words the templates share — names of states, rates, roles, refusals — come from the message
catalogue (:mod:`settlement.i18n`) through the globals ``names(section)`` and ``refusal_text``;
the bot speaks Chinese (the official account's users; WeChat tells the bot no language).

Templates are plain text (``.txt``: :mod:`settlement.templating` leaves autoescape off, there is
no HTML to protect), and what users typed is only ever a *value* given to a template, never a
template itself, so ``{0.__class__}`` or ``{{ 7*7 }}`` in a message is shown as typed. Keeping the reply XML intact is the job of
:func:`bot.protocol.cdata_safe`, applied to whatever text leaves the bot.

A reply is cut at ``MAX_REPLY_BYTES`` of UTF-8 (WeChat refuses longer text messages), at a line
end where possible, with a note that the list goes on.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from settlement import i18n, templating
from settlement.clock import LOCAL

LANG = "zh"
#: WeChat's limit for a text message is 2048 bytes; keep room for the cut note.
MAX_REPLY_BYTES = 2000
_CUT_NOTE = "\n…（内容过长，已截断）"


def _kwh(value: Decimal | int | str | None, places: int = 3) -> str:
    if value is None:
        return "—"
    quantum = Decimal(1).scaleb(-places)
    return format(Decimal(value).quantize(quantum), ",f")


def _wh_as_kwh(wh: int | None) -> str:
    return "—" if wh is None else _kwh(Decimal(wh) / 1000)


def _percent(rate: str | Decimal | None) -> str:
    """A ratio (a decimal string such as ``"0.9512"``) as a percentage with 2 decimals."""
    if rate is None:
        return "—"
    return f"{(Decimal(rate) * 100).quantize(Decimal('0.01'))}%"


def _local_time(when: dt.datetime | None) -> str:
    return "—" if when is None else when.astimezone(LOCAL).strftime("%Y-%m-%d %H:%M")


_ENV = templating.environment(
    filters={"kwh": _kwh, "wh_kwh": _wh_as_kwh, "local_time": _local_time, "percent": _percent},
    template_globals={"names": lambda section: i18n.section(section, LANG),
                      "refusal_text": lambda code, params=None: i18n.error_text(code, LANG, params)})


def render(template: str, /, **context: object) -> str:
    """The text of ``templates/bot/<template>.txt`` with ``context``, trimmed and cut to size."""
    text = _ENV.get_template(f"bot/{template}.txt").render(**context).strip()
    return cut(text)


def cut(text: str, limit: int = MAX_REPLY_BYTES) -> str:
    """``text`` within ``limit`` bytes of UTF-8, cut at a line end when one is near."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    room = limit - len(_CUT_NOTE.encode("utf-8"))
    head = data[:room].decode("utf-8", errors="ignore")
    line_end = head.rfind("\n")
    if line_end > room // 2:
        head = head[:line_end]
    return head + _CUT_NOTE
