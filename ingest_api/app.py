"""The collectors' push API (/ingest/v1) as an aiohttp sub-app.

Every route needs a collector's key in ``Authorization: Bearer <key>`` (:mod:`ingest_api.auth`);
errors are the JSON shape of DESIGN.md, ``{"error": {"code": …, "message": …}}``.

=====================  =========================================================================
``POST /readings``     ``{"readings": [{"meter", "register", "read_at", "value"}, …]}``, at most
                       5,000 rows → 200 ``{"created", "duplicates", "rejected", "results": […]}``
``POST /telemetry``    ``{"samples": [{"device", "ts", "power_w", "energy_wh", "status"}, …]}``, at
                       most 10,000 → 200 ``{"created", "updated", "duplicates", "rejected", …}``
``POST /usage``        ``{"usage": [{"meter", "start", "quantity"}, …]}``: 15-minute usage of prepaid
                       services' meters, at most 5,000 → 200 ``{"services", "stored", "changed", …}``
=====================  =========================================================================
"""

from aiohttp import web

from ingest_api import views
from ingest_api import telemetry_views
from ingest_api import usage_views
from ingest_api import device_status_views
from ingest_api.auth import collector_auth_middleware


def create_app() -> web.Application:
    app = web.Application(middlewares=[collector_auth_middleware])
    app.add_routes(views.routes)
    app.add_routes(telemetry_views.routes)
    app.add_routes(usage_views.routes)
    app.add_routes(device_status_views.routes)
    app.cleanup_ctx.append(telemetry_views.live_publisher_ctx)  # live state published after a batch's answer
    return app
