"""The tax system port: issuing VAT e-invoices (数电发票) for money received.

An adapter per provider (the tax bureau's platform, or a service provider in front of it); the
fake ``settlement.fakes.tax_system`` plays it for tests and the demo. A request carries its own
``request_key``; issuing the same key again must return the invoice already issued, never a
second one.

Exceptions::

    TaxError                anything this port raises
    ├── TaxRefused          the tax system refused the request (bad buyer tax id …): do not retry as is
    └── TaxUnavailable      no answer or a transient failure: retry later
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol


class TaxError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class TaxRefused(TaxError):
    pass


class TaxUnavailable(TaxError):
    pass


@dataclass(frozen=True)
class InvoiceDraft:
    """What is invoiced: amounts in fen, VAT included in ``amount_fen``."""

    request_key: str
    buyer_name: str
    buyer_tax_id: str
    item: str
    amount_fen: int
    tax_fen: int
    vat_rate: str  # e.g. "0.13"


@dataclass(frozen=True)
class IssuedInvoice:
    number: str
    issued_at: dt.datetime


class TaxInvoicing(Protocol):
    async def issue(self, draft: InvoiceDraft) -> IssuedInvoice:
        """Issue the e-invoice of ``draft`` (or return the one issued already for its request_key)."""
