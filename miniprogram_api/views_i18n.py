"""The message catalogue for clients: the words for the codes this API returns, in one language.

The API answers with machine codes (``state: "adjusted"``, ``period: "peak"``, error codes);
clients label them from this one catalogue (:mod:`settlement.i18n`), the same one the server's
error messages, the bot and the e-bills use, so a label is written once.
"""

from __future__ import annotations

from aiohttp import web

from miniprogram_api.common import api
from miniprogram_api.registry import Call
from miniprogram_api.schemas import CatalogueOut, CatalogueQuery
from settlement import i18n


@api.get("/i18n", auth="public", query=CatalogueQuery, response=CatalogueOut, tag="i18n")
async def catalogue(request: web.Request, call: Call):
    """The message catalogue in one language (``?lang=zh``, the default, or ``en``)."""
    q: CatalogueQuery = call.query
    return CatalogueOut(lang=q.lang, messages=i18n.messages(q.lang))
