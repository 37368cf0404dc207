"""E-bill pages (/e) as an aiohttp sub-app: HTML, never JSON, for owners who open a link.

===========================================  =====================================================
``GET /e/form/<id>?exp=…&sig=…[&lang=en]``      one confirmation form version (电量确认单)
``GET /e/bill/<id>?exp=…&sig=…[&lang=en]``      one bill (电费账单) with its receipts
``GET /e/form/<id>.pdf?exp=…&sig=…[&lang=en]``  the same form as a PDF file
``GET /e/bill/<id>.pdf?exp=…&sig=…[&lang=en]``  the same bill as a PDF file
===========================================  =====================================================

Links are made by :func:`settlement.billing.ebill_links.ebill_link`; the PDF takes the page's signature as it
is (the signature covers kind, id and expiry, not the format), and is drawn from the page's own
view-model (:mod:`settlement.billing.ebill_pdf`). A forged, tampered or expired link is
answered 403 and an unknown id (behind a valid signature) 404, each as a plain HTML page: the
root app's error middleware would turn errors into JSON, so this sub-app answers its own errors
(:func:`html_errors`) before they get there. No stack trace or internal detail leaves the server.
"""

from __future__ import annotations

import asyncio
import logging
import re

from aiohttp import web
from aiohttp.typedefs import Handler

from settlement.billing import ebill
from settlement.billing import ebill_links
from settlement.billing import ebill_pdf
from settlement.errors import DomainError
from webapp.json_errors import domain_status, kept_headers
from webapp.keys import settings_key

log = logging.getLogger("pvsettle.pages")

# the link is a bearer credential: keep it out of caches, referrers and search engines
HEADERS = {
    "Cache-Control": "private, no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
}

routes = web.RouteTableDef()


def _lang(request: web.Request) -> str:
    return "en" if request.query.get("lang") == "en" else "zh"


def html_page(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8", headers=HEADERS)


def _error_page(request: web.Request, status: int, code: str | None = None) -> web.Response:
    return html_page(ebill.render_error(status, _lang(request), code), status)


@web.middleware
async def html_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error of /e as an HTML page with its status; unexpected ones are logged, not shown."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _error_page(request, exc.status)
        for name, value in kept_headers(exc).items():
            response.headers[name] = value  # Allow on 405, and the like
        return response
    except DomainError as exc:
        return _error_page(request, domain_status(exc), exc.code)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _error_page(request, 500)


def _signed_query(request: web.Request) -> dict[str, str]:
    return {"exp": request.query.get("exp", ""), "sig": request.query.get("sig", "")}


def _lang_urls(request: web.Request) -> dict[str, str]:
    """The same signed link in each language (lang is not part of the signature)."""
    base = _signed_query(request)
    return {"zh": str(request.rel_url.with_query(base)),
            "en": str(request.rel_url.with_query({**base, "lang": "en"}))}


def _pdf_url(request: web.Request) -> str:
    """The page's own signed link as PDF, in the page's language."""
    query = _signed_query(request) | ({"lang": "en"} if _lang(request) == "en" else {})
    return str(request.rel_url.with_path(request.rel_url.path + ".pdf").with_query(query))


def _file_name(stem: str) -> str:
    # bill numbers are period-plant code-version; a plant code is staff's text: keep it to a
    # name every system saves as it is
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "ebill"


async def pdf_response(view: dict) -> web.Response:
    """The PDF of a page's view-model, drawn off the event loop (reportlab is CPU, ~10s of ms)."""
    body = await asyncio.get_running_loop().run_in_executor(None, ebill_pdf.render_pdf, view)
    name = _file_name(f"{view['kind']}-{view['file_stem']}")
    return web.Response(body=body, content_type="application/pdf",
                        headers={**HEADERS, "Content-Disposition": f'inline; filename="{name}.pdf"'})


def _verified_id(request: web.Request, kind: str) -> int:
    ident = int(request.match_info["id"])
    ebill_links.verify_link(kind, ident, request.query.get("exp", ""), request.query.get("sig", ""),
                      request.config_dict[settings_key].secret_key)
    return ident


@routes.get(r"/form/{id:\d{1,10}}")
async def form_page(request: web.Request) -> web.Response:
    ident = _verified_id(request, "form")
    return html_page(await ebill.render_form(ident, _lang(request), lang_urls=_lang_urls(request),
                                             pdf_url=_pdf_url(request)))


@routes.get(r"/bill/{id:\d{1,10}}")
async def bill_page(request: web.Request) -> web.Response:
    ident = _verified_id(request, "bill")
    return html_page(await ebill.render_bill(ident, _lang(request), lang_urls=_lang_urls(request),
                                             pdf_url=_pdf_url(request)))


@routes.get(r"/form/{id:\d{1,10}}.pdf")
async def form_pdf(request: web.Request) -> web.Response:
    ident = _verified_id(request, "form")
    return await pdf_response(await ebill.form_view(ident, _lang(request)))


@routes.get(r"/bill/{id:\d{1,10}}.pdf")
async def bill_pdf(request: web.Request) -> web.Response:
    ident = _verified_id(request, "bill")
    return await pdf_response(await ebill.bill_view(ident, _lang(request)))


@routes.route("*", r"/{tail:.*}")
async def anything_else(request: web.Request) -> web.Response:
    # registered last: unknown paths under /e get the HTML 404 of this sub-app, not the root's JSON
    raise web.HTTPNotFound()


def create_app() -> web.Application:
    app = web.Application(middlewares=[html_errors])
    app.add_routes(routes)
    return app
