"""The JSON error shape of DESIGN.md, for answers this sub-app gives itself (401, 413).

Collectors are machines: the message is the catalogue's English (:mod:`settlement.i18n`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from settlement import i18n


def json_error(status: int, code: str, params: Mapping[str, Any] | None = None,
               headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": {"code": code, "message": i18n.error_text(code, "en", params)}},
                             status=status, headers=headers)
