"""E-bill links given to users are absolute, from one function: the bot's replies and the
mini-program API's ``ebill_url`` start at ``PVSETTLE_PUBLIC_URL``, else at where the server is
reached (#23 point 8)."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from bot.context import Env
from miniprogram_api.common import ebill_url
from settlement.billing.ebill_links import public_origin, verify_link
from webapp.keys import settings_key
from webapp.settings import Settings

SECRET = "s" * 40


def _request(settings: Settings, host: str = "10.0.0.5:8443") -> web.Request:
    app = web.Application()
    app[settings_key] = settings
    return make_mocked_request("GET", "/api/v1/forms/7", headers={"Host": host}, app=app)


def test_the_api_and_the_bot_start_links_at_the_public_url():
    settings = Settings(secret_key=SECRET, public_url="https://pv.example.com/")
    url = ebill_url(_request(settings), "form", 7)
    assert url.startswith("https://pv.example.com/e/form/7?exp=")
    env = Env(settings=settings, redis=None, ns=None, wechat=None, notify=None)  # only the settings are read
    assert env.public_url == "https://pv.example.com" == public_origin(settings.public_url, "unused")
    query = dict(part.split("=") for part in url.split("?")[1].split("&"))
    verify_link("form", 7, query["exp"], query["sig"], SECRET)  # a working signed link


def test_without_a_public_url_the_api_uses_the_requests_origin_and_the_bot_host_and_port():
    settings = Settings(secret_key=SECRET, host="0.0.0.0", port=9000)
    assert ebill_url(_request(settings), "bill", 3).startswith("http://10.0.0.5:8443/e/bill/3?exp=")
    assert Env(settings=settings, redis=None, ns=None, wechat=None, notify=None).public_url == "http://0.0.0.0:9000"
