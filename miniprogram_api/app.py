"""The owner-facing JSON API (/api/v1) as an aiohttp sub-app. Its routes arrive with the API."""

from aiohttp import web


def create_app() -> web.Application:
    return web.Application()
