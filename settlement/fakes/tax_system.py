"""An in-memory tax system behind :class:`settlement.ports.tax.TaxInvoicing`.

It numbers invoices in order, returns the same invoice for the same request key, checks the
buyer's tax id the way the real one does (unified social credit code: 18 characters of
``0-9A-HJ-NPQRTUWXY`` with its check character), and can be made unavailable for a while.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from settlement.ports.tax import InvoiceDraft, IssuedInvoice, TaxRefused, TaxUnavailable
from settlement.clock import utc_now

_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def credit_code_ok(code: str) -> bool:
    """GB 32100-2015 unified social credit code, check character included."""
    if len(code) != 18 or any(c not in _ALPHABET for c in code):
        return False
    total = sum(_ALPHABET.index(c) * w for c, w in zip(code[:17], _WEIGHTS))
    return _ALPHABET[(31 - total % 31) % 31] == code[17]


def with_check(code17: str) -> str:
    """A valid code from its first 17 characters (for tests and the demo)."""
    total = sum(_ALPHABET.index(c) * w for c, w in zip(code17, _WEIGHTS))
    return code17 + _ALPHABET[(31 - total % 31) % 31]


@dataclass
class FakeTaxSystem:
    issued: dict[str, tuple[InvoiceDraft, IssuedInvoice]] = field(default_factory=dict)
    unavailable: int = 0  # the next this many calls fail as unavailable
    calls: int = 0

    async def issue(self, draft: InvoiceDraft) -> IssuedInvoice:
        self.calls += 1
        if self.unavailable:
            self.unavailable -= 1
            raise TaxUnavailable("the tax platform did not answer")
        if draft.request_key in self.issued:
            return self.issued[draft.request_key][1]
        if not credit_code_ok(draft.buyer_tax_id):
            raise TaxRefused(f"buyer tax id {draft.buyer_tax_id!r} is not a valid unified social credit code")
        if draft.amount_fen <= 0 or not 0 <= draft.tax_fen < draft.amount_fen:
            raise TaxRefused("amounts do not make an invoice")
        invoice = IssuedInvoice(number=f"26{len(self.issued) + 1:018d}", issued_at=utc_now())
        self.issued[draft.request_key] = (draft, invoice)
        return invoice
