"""What the views share: the route registry, typed request and app keys, small helpers."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

from aiohttp import web

from miniprogram_api.registry import Registry
from settlement.billing import ebill_links
from settlement.owners.access import Principal
from settlement.telemetry.generation import Factors
from settlement.owners.sessions import TokenClaims
from settlement.infra.storage import LocalDiskStore, PhotoStore
from webapp.keys import settings_key
from webapp.settings import Settings
from settlement.clock import utc_now

api = Registry()

principal_key = web.RequestKey("principal_key", Principal)
token_claims_key = web.RequestKey("token_claims_key", TokenClaims)
# tests may put another store here; by default photos go to <var>/uploads on local disk
photo_store_key = web.AppKey("photo_store_key", PhotoStore)



def settings(request: web.Request) -> Settings:
    return request.config_dict[settings_key]


def ebill_url(request: web.Request, kind: str, ident: int) -> str:
    """The absolute signed link of a form's or bill's printable page (as the bot sends it):
    ``PVSETTLE_PUBLIC_URL``, else the origin this request reached us at."""
    s = settings(request)
    origin = ebill_links.public_origin(s.public_url, f"{request.scheme}://{request.host}")
    return origin + ebill_links.ebill_link(kind, ident, None, s.secret_key)


def photo_store(request: web.Request) -> PhotoStore:
    store = request.config_dict.get(photo_store_key)
    if store is None:
        store = LocalDiskStore(Path(settings(request).var_dir) / "uploads")
    return store


def photo_quota_bytes(request: web.Request) -> int:
    return settings(request).photo_quota_mb * 1024 * 1024


def factors(request: web.Request) -> Factors:
    s = settings(request)
    return Factors(co2_kg_per_kwh=Decimal(s.co2_kg_per_kwh), coal_kg_per_kwh=Decimal(s.coal_kg_per_kwh))


def now() -> dt.datetime:
    return utc_now()
