"""Money as text: integer fen written as 元, by integer arithmetic only, in one place.

Every amount a person or a file reads goes through here: e-bills, bot replies, notifications,
invoices, reports and ledger notes. The forms differ only in what their readers need:

* :func:`format_yuan` — ``7,403.50`` for people, ``7403.50`` without grouping for files;
* :func:`yuan` — the exact :class:`~decimal.Decimal` ``7403.50`` (spreadsheet cells);
* :func:`wechat_amount` — ``¥7403.50``, the form WeChat's ``amount`` message fields take.

Reading money from text (staff typing ``1234.50元``) is :func:`billing_engine.money.yuan_to_fen`'s.
"""

from __future__ import annotations

from decimal import Decimal


def _fen(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"an amount is integer fen, not {type(value).__name__}")
    return value


def format_yuan(fen: int, *, grouping: bool = True) -> str:
    """An amount of integer fen as 元 with two decimals.

    Parameters
    ----------
    fen : int [fen]
    grouping : bool
        Thousands separators (``7,403.50``) for people; off for machine-read files (``7403.50``).

    Returns
    -------
    str [元]

    Raises
    ------
    TypeError
        ``fen`` is not an int (a float has lost fen already; a bool is no amount).
    """
    whole, cents = divmod(abs(_fen(fen)), 100)
    sign = "-" if fen < 0 else ""
    return f"{sign}{whole:,}.{cents:02d}" if grouping else f"{sign}{whole}.{cents:02d}"


def yuan(fen: int) -> Decimal:
    """Integer fen as an exact Decimal of 元 with two decimals (for spreadsheets) [元]."""
    return Decimal(_fen(fen)).scaleb(-2)


def wechat_amount(fen: int) -> str:
    """``¥1234.50`` from fen: WeChat's ``amount`` field (a currency symbol, at most 10 digits, no
    grouping), the sign before the symbol.

    Parameters
    ----------
    fen : int-like [fen]
        A notification payload's amount. ``int()`` is taken first, as the notification field always
        did: payloads carry what the event's code computed, which may be a numpy integer.

    Returns
    -------
    str [元]
    """
    fen = int(fen)
    sign = "-" if fen < 0 else ""
    return f"{sign}¥{format_yuan(abs(fen), grouping=False)}"
