"""Staff cycle reports behind signed, expiring links: ``GET /wechat/report/cycle-<period>.<fmt>``.

报表 <period> answers with the report's figures and such a link; the file is made when the link is
opened (from the data as it is then), so no process keeps report files another one would need.

Links
-----
``/wechat/report/cycle-<YYYY-MM>.<csv|xlsx>?exp=<unix s>&sig=<hex>`` with
``sig = HMAC-SHA256(secret key, "report:cycle:<period>:<fmt>:<exp>")``: the signature covers the
period, the format and the expiry, so a link cannot be moved to another month or kept past its
time. Links live ``LINK_LIFETIME``. The signature is checked first and in constant time
(:data:`settlement.signing.REPORT_LINK`); any refusal is the same 403, so a forged link learns
nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import tempfile
from pathlib import Path

from aiohttp import web

from settlement.billing.reports import cycle_report, write_report
from settlement.signing import REPORT_LINK, whole_number
from webapp.keys import settings_key
from settlement.clock import utc_now

LINK_LIFETIME = dt.timedelta(hours=24)
FORMATS = {"csv": "text/csv; charset=utf-8",
           "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
_NAME = re.compile(r"^cycle-(\d{4}-(?:0[1-9]|1[0-2]))\.(csv|xlsx)$")


def report_signature(period: str, fmt: str, exp: int, secret_key: str) -> str:
    if not secret_key:
        raise ValueError("report links need PVSETTLE_SECRET_KEY")
    return REPORT_LINK.sign(secret_key, period, fmt, int(exp))


def report_link(period: str, fmt: str, secret_key: str, *, now: dt.datetime | None = None,
                lifetime: dt.timedelta = LINK_LIFETIME) -> tuple[str, dt.datetime]:
    """The path of the period's cycle report file, signed, and when it expires."""
    if fmt not in FORMATS:
        raise ValueError(f"a report is csv or xlsx, not {fmt!r}")
    expires = (now or utc_now()) + lifetime
    exp = int(expires.timestamp())
    return f"/wechat/report/cycle-{period}.{fmt}?exp={exp}&sig={report_signature(period, fmt, exp, secret_key)}", \
        expires


def verify(name: str, exp: str, sig: str, secret_key: str, now: float | None = None) -> tuple[str, str]:
    """(period, fmt) of a valid link; raises PermissionError for any other."""
    match = _NAME.match(name)
    expires_at = whole_number(exp)
    if not secret_key or not match or expires_at is None:
        raise PermissionError("invalid link")
    period, fmt = match.groups()
    if not REPORT_LINK.matches(sig, secret_key, period, fmt, expires_at):
        raise PermissionError("invalid link")
    if REPORT_LINK.expired(expires_at, now):
        raise PermissionError("expired link")
    return period, fmt


async def serve_report(request: web.Request) -> web.StreamResponse:
    settings = request.config_dict[settings_key]
    try:
        period, fmt = verify(request.match_info["name"], request.query.get("exp", ""),
                             request.query.get("sig", ""), settings.secret_key)
    except PermissionError:
        return web.Response(status=403, text="this link is not valid or has expired")
    report = await cycle_report(period)
    with tempfile.TemporaryDirectory(prefix="pvsettle-report-") as tmp:
        path = Path(tmp) / f"cycle-{period}.{fmt}"
        # XLSX of thousands of rows takes a while: off the event loop
        await asyncio.to_thread(write_report, report, path, fmt)
        body = await asyncio.to_thread(path.read_bytes)
    return web.Response(body=body, headers={
        "Content-Type": FORMATS[fmt], "Cache-Control": "private, no-store",
        "Content-Disposition": f'attachment; filename="cycle-{period}.{fmt}"'})
