"""The collectors' push API (/ingest/v1) as an aiohttp sub-app. Its routes arrive with ingest."""

from aiohttp import web


def create_app() -> web.Application:
    return web.Application()
