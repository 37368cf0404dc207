"""The JSON error shape, ``{"error": {"code": …, "message": …}}``, for every HTTP answer that refuses.

The code is for programs, the message for people, from the catalogue (:mod:`settlement.i18n`) in
the caller's language: ``Accept-Language`` (``zh`` or ``en``), Chinese when it names neither; the
collectors of ``/ingest`` are machines and always get English. The root's error middleware
(:mod:`server.middleware`) answers exceptions with it; a sub-app that answers a refusal itself
(the mini-program API's 401) uses the same helpers, so both look alike.
"""

from __future__ import annotations

from aiohttp import web

from settlement import i18n


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
