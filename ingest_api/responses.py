"""The JSON error shape of DESIGN.md, for answers this sub-app gives itself (401, 413)."""

from __future__ import annotations

from aiohttp import web


def json_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status, headers=headers)
