"""Signatures on what the server hands out and later reads back: mini-program session tokens,
e-bill links, staff report links and pagination cursors.

Why in-house and not itsdangerous: the wire formats are fixed. E-bill links sent in notifications
live 30 days and session tokens live on in the mini-program, so every token, link and cursor issued
before must still verify, and every new one must be byte for byte what the old code made.
itsdangerous' signers write their own formats (``value.timestamp.signature`` in base64, a
key derived per salt), none of which is one of ours.

Each use is a :class:`Scheme`. The signed message is ``"<purpose>:<field>:<field>…"``, its
HMAC-SHA256 under the server's secret key (one key for every use) written as the scheme writes
it::

    scheme          message                                      signature as sent
    SESSION_TOKEN   mp-session:v1:<identity id>:<session id>:<exp>   base64url unpadded, 43
    EBILL_LINK      form:<id>:<exp> or bill:<id>:<exp>               hex, 64, either case
    REPORT_LINK     report:cycle:<period>:<fmt>:<exp>                hex, 64, either case
    CURSOR          cursor:<last id>                                 hex, its first 16

An e-bill link's purpose is its kind: those links never had a prefix ahead of it, so ``form`` and
``bill`` are the purposes. One scheme's signature cannot pass for another's because no two
messages are alike: no purpose is another's or starts with another's and a ``:`` (checked below,
when the module loads) and no field holds a ``:`` (checked by :meth:`Scheme.sign`).

What is not a signature of the right shape is refused before any HMAC is computed, and a
signature is compared in constant time. Callers check their own fields' shapes
(:func:`whole_number` for ids and expiries) and turn a refusal into their own error; this module
raises none of its own (a ``ValueError`` for a field that would make messages ambiguous is a bug
in the caller).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import string
import time
from dataclasses import dataclass
from typing import Literal

_ALPHABETS = {
    "hex": frozenset(string.digits + "abcdef"),
    "base64url": frozenset(string.ascii_letters + string.digits + "-_"),
}
_UPPER_HEX = frozenset("ABCDEF")


@dataclass(frozen=True)
class Scheme:
    """How one kind of token or link is signed.

    Parameters
    ----------
    purpose : str
        What opens the signed message, keeping this scheme's signatures apart from the others'.
    encoding : {"hex", "base64url"}
        How the 32-byte HMAC is written (base64url without padding).
    length : int
        How many characters of it are sent [characters]; fewer than the whole truncates.
    either_case : bool
        Hex signatures are accepted in upper case too (the links always were).
    open_through_expiry : bool
        Whether a thing expiring at second ``exp`` still opens during that second; session
        tokens end at ``exp``, links and reports end after it.
    """

    purpose: str
    encoding: Literal["hex", "base64url"]
    length: int
    either_case: bool = False
    open_through_expiry: bool = True

    def sign(self, secret_key: str, *fields: int | str) -> str:
        """The signature of ``fields`` under ``secret_key``, as sent."""
        texts = [str(field) for field in fields]
        if any(":" in text for text in texts):
            raise ValueError(f"a field of a {self.purpose} signature holds a ':': {texts!r}")
        message = ":".join([self.purpose, *texts]).encode()
        digest = hmac.new(secret_key.encode(), message, hashlib.sha256).digest()
        if self.encoding == "hex":
            written = digest.hex()
        else:
            written = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        return written[:self.length]

    def well_formed(self, signature: str) -> bool:
        """Whether ``signature`` has this scheme's length and alphabet (no crypto involved)."""
        allowed = _ALPHABETS[self.encoding] | (_UPPER_HEX if self.either_case else frozenset())
        return len(signature) == self.length and set(signature) <= allowed

    def matches(self, signature: str, secret_key: str, *fields: int | str) -> bool:
        """Whether ``signature`` is this scheme's signature of ``fields``, compared in constant time.

        A signature of the wrong shape is refused before the HMAC is computed.
        """
        if not self.well_formed(signature):
            return False
        given = signature.lower() if self.either_case else signature
        return hmac.compare_digest(self.sign(secret_key, *fields).encode(), given.encode())

    def expired(self, expires_at: int, now: dt.datetime | float | None = None) -> bool:
        """Whether something expiring at ``expires_at`` [unix s] no longer opens at ``now``.

        ``now`` is an aware datetime, unix seconds, or None for the clock's time.
        """
        if now is None:
            now_s = time.time()
        elif isinstance(now, dt.datetime):
            now_s = now.timestamp()
        else:
            now_s = now
        return expires_at < now_s if self.open_through_expiry else expires_at <= now_s


def whole_number(text: str, max_digits: int = 12) -> int | None:
    """``text`` as an int if it is 1 to ``max_digits`` ASCII digits, else None.

    Twelve digits of unix seconds reach the year 33658: any longer id or expiry is not one of
    ours, and none is worth an HMAC.
    """
    if not (text.isascii() and text.isdigit() and len(text) <= max_digits):
        return None
    return int(text)


SESSION_TOKEN = Scheme("mp-session:v1", "base64url", 43, open_through_expiry=False)
EBILL_LINK = {kind: Scheme(kind, "hex", 64, either_case=True) for kind in ("form", "bill")}
REPORT_LINK = Scheme("report:cycle", "hex", 64, either_case=True)
CURSOR = Scheme("cursor", "hex", 16)
SCHEMES = (SESSION_TOKEN, *EBILL_LINK.values(), REPORT_LINK, CURSOR)


def _apart(schemes: tuple[Scheme, ...]) -> None:
    for one in schemes:
        for other in schemes:
            if one is not other and (one.purpose == other.purpose or one.purpose.startswith(other.purpose + ":")):
                raise ValueError(f"signatures for {one.purpose!r} could pass for {other.purpose!r}")


_apart(SCHEMES)
