"""The demo's tax system: paid bills of the demo's companies get their e-invoices.

``pvsettle serve`` has no tax-system adapter yet, so there an invoice request waits, requested,
for a process that has one (``server.scheduler.JobContext.tax``); the demo issues them with
:class:`FakeTaxSystem`, which numbers invoices and checks the buyer's credit code as the real one
does, so a bill paid in the sandbox shows its invoice number on its e-bill.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from settlement.fakes.tax_system import FakeTaxSystem
from webapp.keys import tax_key


async def tax_ctx(app: web.Application) -> AsyncIterator[None]:
    """The fake as this process's tax system for as long as the demo runs; it must start before
    ``scheduler_ctx``, which hands it to the invoices job (:func:`sandbox.app.install`)."""
    app[tax_key] = FakeTaxSystem()
    yield
