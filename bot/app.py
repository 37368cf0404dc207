"""The official-account endpoint (/wechat) as an aiohttp sub-app. Its routes arrive with the bot."""

from aiohttp import web


def create_app() -> web.Application:
    return web.Application()
