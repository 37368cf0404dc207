"""The JSON error shape, ``{"error": {"code": …, "message": …}}``, for every HTTP answer that refuses.

The code is for programs, the message for people, from the catalogue (:mod:`settlement.i18n`) in
the caller's language: ``Accept-Language`` (``zh`` or ``en``), Chinese when it names neither; the
collectors of ``/ingest`` are machines and always get English. The root's error middleware
(:mod:`server.middleware`) answers exceptions with it; a sub-app that answers a refusal itself
(the mini-program API's 401) uses the same helpers, so both look alike. The status a domain error
is answered with (:func:`domain_status`) and the headers kept from aiohttp's own error answers
(:func:`kept_headers`) are the same for the e-bill pages, which answer in HTML.
"""

from __future__ import annotations

from aiohttp import web

from settlement import i18n
from settlement.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound

#: the HTTP status of each kind of domain error; any other is 400
STATUS_OF = {InvalidInput: 400, NotFound: 404, Forbidden: 403, Conflict: 409}


def domain_status(exc: DomainError) -> int:
    return next((s for cls, s in STATUS_OF.items() if isinstance(exc, cls)), 400)


def kept_headers(exc: web.HTTPException) -> dict[str, str]:
    """What of aiohttp's own error answer (404, 405, 413 …) an answer in another shape keeps: its
    headers (Allow on 405, and the like) but the body's type and length."""
    return {k: v for k, v in exc.headers.items() if k.lower() not in ("content-type", "content-length")}


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def json_error(status: int, code: str, message: str, headers: dict | None = None) -> web.Response:
    return web.json_response(error_body(code, message), status=status, headers=headers)


def language_of(request: web.Request) -> str:
    """The language error messages are given in: English for collectors, else the caller's choice."""
    if request.path.startswith("/ingest/"):
        return "en"
    return i18n.negotiate(request.headers.get("Accept-Language"))


def error_response(request: web.Request, status: int, code: str, params: dict | None = None,
                   headers: dict | None = None) -> web.Response:
    """The JSON error of ``code`` with the catalogue's message in the caller's language."""
    return json_error(status, code, i18n.error_text(code, language_of(request), params), headers)
