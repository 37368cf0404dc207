"""Signed links to e-bills: ``/e/<kind>/<id>?exp=…&sig=…``, an HMAC over the kind, the id and
the expiry, so that a link in a notification opens one form or bill, for a while, to whoever
holds it — and nothing else. Signed and checked by :data:`settlement.signing.EBILL_LINK`, whose
module says why the format stays as it is.

Apart from the pages (:mod:`settlement.billing.ebill`) because the outbox checks and signs the
links it sends without rendering anything.
"""

from __future__ import annotations

import datetime as dt
import re

from settlement.errors import Forbidden, InvalidInput
from settlement.signing import EBILL_LINK, whole_number
from settlement.clock import utc_now

KINDS = tuple(EBILL_LINK)  # ("form", "bill"): the kind is what the signature is for
LINK_LIFETIME = dt.timedelta(days=30)


class LinkRefused(Forbidden):
    """The e-bill link is forged, tampered with or expired."""

    code = "link_invalid"


# --- signed links ------------------------------------------------------------------------------


def link_signature(kind: str, ident: int, exp: int, secret_key: str) -> str:
    """HMAC-SHA256 of ``"<kind>:<id>:<exp>"`` under the server's secret key, as hex."""
    if kind not in KINDS:
        raise InvalidInput(f"an e-bill is a form or a bill, not {kind!r}", code="bad_kind")
    if not secret_key:
        raise InvalidInput("e-bill links need PVSETTLE_SECRET_KEY", code="no_secret_key")
    return EBILL_LINK[kind].sign(secret_key, int(ident), int(exp))


def public_origin(public_url: str, fallback: str) -> str:
    """Where links given to users start (no trailing slash): ``PVSETTLE_PUBLIC_URL`` when set,
    else ``fallback`` — ``http://HOST:PORT`` for the bot, the request's own origin for the API.
    The bot and the mini-program API both build their absolute e-bill links with it."""
    return (public_url or fallback).rstrip("/")


def ebill_link(kind: str, id: int, expires_at: dt.datetime | None, secret_key: str) -> str:  # noqa: A002
    """The path of a form's or bill's e-bill page, signed, valid until ``expires_at``.

    Parameters
    ----------
    kind : {"form", "bill"}
    id : int
        The ConfirmationForm (one version) or Bill id.
    expires_at : datetime (aware) or None
        When the link stops working; None for the default 30 days from now.
    secret_key : str
        The server's ``PVSETTLE_SECRET_KEY``.

    Returns
    -------
    str
        ``/e/<kind>/<id>?exp=<unix s>&sig=<hex>``; append ``&lang=en`` for English.
    """
    if expires_at is None:
        expires_at = utc_now() + LINK_LIFETIME
    if expires_at.tzinfo is None:
        raise InvalidInput("expires_at must carry a time zone", code="naive_datetime")
    exp = int(expires_at.timestamp())
    return f"/e/{kind}/{int(id)}?exp={exp}&sig={link_signature(kind, id, exp, secret_key)}"


_EBILL_PATH = re.compile(r"/e/(form|bill)/(\d{1,10})(\.pdf)?")


def is_ebill_path(path: str) -> bool:
    """Whether ``path`` is an e-bill page or PDF, unsigned: ``/e/<kind>/<id>[.pdf]``."""
    return _EBILL_PATH.fullmatch(path) is not None


def sign_path(path: str, secret_key: str, expires_at: dt.datetime | None = None) -> str:
    """``/e/<kind>/<id>[.pdf]`` as its signed link (:func:`ebill_link`), for notifications.

    Raises
    ------
    InvalidInput
        ``path`` is not an e-bill page or PDF.
    """
    found = _EBILL_PATH.fullmatch(path)
    if found is None:
        raise InvalidInput(f"{path[:60]!r} is not an e-bill path", code="bad_ebill_path")
    kind, ident, pdf = found.groups()
    link = ebill_link(kind, int(ident), expires_at, secret_key)
    return link.replace("?", ".pdf?", 1) if pdf else link


def verify_link(kind: str, ident: int, exp: str, sig: str, secret_key: str, *,
                now: dt.datetime | None = None) -> None:
    """Refuse a link whose signature does not match or whose expiry has passed.

    The signature is checked first and in constant time, so a forged link learns nothing, not
    even whether its expiry would have been accepted.

    Raises
    ------
    LinkRefused
        ``code`` ``link_invalid`` (bad or missing signature) or ``link_expired``.
    """
    refused = LinkRefused("this link is not valid")
    expires_at = whole_number(exp)
    if not secret_key or kind not in KINDS or expires_at is None:
        raise refused
    if not EBILL_LINK[kind].matches(sig, secret_key, int(ident), expires_at):
        raise refused
    if EBILL_LINK[kind].expired(expires_at, now):
        raise LinkRefused("this link has expired", code="link_expired")
