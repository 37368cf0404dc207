"""The domain's exceptions. The server maps each class to an HTTP status in one place.

Exceptions::

    DomainError                 anything the domain refuses, with a stable ``code``
    ├── InvalidInput            the request itself is malformed or out of range
    ├── NotFound                no such thing, or not one the caller may see
    ├── Forbidden               the caller is known but lacks the right or role
    └── Conflict                the thing exists but its state does not allow this

``message`` is for developers and logs (English, with the details). What a person reads is the
catalogue's ``error.<code>`` in their language (:mod:`settlement.i18n`), its placeholders filled
from ``params``; a new code needs its line in ``templates/i18n/messages.toml``.
"""

from collections.abc import Mapping
from typing import Any


class DomainError(Exception):
    code = "domain_error"

    def __init__(self, message: str, *, code: str | None = None, params: Mapping[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.params = dict(params or {})
        if code is not None:
            self.code = code


class InvalidInput(DomainError):
    code = "invalid_input"


class NotFound(DomainError):
    code = "not_found"


class Forbidden(DomainError):
    code = "forbidden"


class Conflict(DomainError):
    code = "conflict"
