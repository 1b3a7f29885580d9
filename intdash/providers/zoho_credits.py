"""Zoho Books' credit notes, read as its invoices are (see :mod:`intdash.providers.zoho`).

Zoho keeps credit notes in a list of their own, ``/creditnotes``, which pages, sorts and filters
by ``last_modified_time`` as the invoice list does and, like it, carries no tax and no lines.
The credit note itself (``/creditnotes/{creditnote_id}``) has them, and the invoice it was raised
from (``invoice_id``); one raised on its own names an invoice only once applied to one
(``/creditnotes/{creditnote_id}/invoices``: ``invoices_credited``). So each is listed, then read
within the same budget as the invoices (:mod:`intdash.providers.zoho_tax`), as each invoice is.

A credit note is fiscalized as a refund naming the invoice it credits: an open or closed one
(closed: wholly applied or refunded) is issued, a draft is not yet, a void one is gone. Its
amounts are positive, as Zoho writes them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from intdash.core.invoices import InvoiceData, InvoiceKind, SourceState
from intdash.providers.errors import MalformedResponse
from intdash.providers.zoho_lines import (
    amount,
    buyer_tax_id,
    parse_date,
    parse_line_items,
    parse_time,
)


@dataclass(frozen=True)
class Documents:
    """One of Zoho's lists of documents: its path (``invoices``), the key of a document read
    alone (``invoice``), the word for one in messages, and how one is parsed."""

    path: str
    one: str
    noun: str
    parse: Callable[[Any], InvoiceData]

    @property
    def label(self) -> str:
        return f"Zoho {self.path}"


SCOPE = "ZohoBooks.creditnotes.READ"  # Zoho's scopes go by module: credit notes are one
_GRANTING = frozenset({SCOPE.lower(), "zohobooks.creditnotes.all", "zohobooks.fullaccess.all"})


def may_read(scope: str | None) -> bool:
    """Whether a token's scope, as Zoho stated it (comma- or space-separated), lets it read
    credit notes; True when Zoho stated none. A consent given before intdash asked for credit
    notes (or a self-client code minted without them) does not: Zoho would refuse each call as
    it refuses a dead token, and the client would refresh the token in vain."""
    if scope is None:
        return True
    return bool({s.lower() for s in re.split(r"[,\s]+", scope) if s} & _GRANTING)


CREDIT_APPROVED = frozenset({"open", "closed"})


def credit_state(status: Any) -> SourceState:
    """An open credit note (or a closed one: wholly applied or refunded) is issued; a draft is
    not yet; a void one is gone."""
    if status in CREDIT_APPROVED:
        return SourceState.APPROVED
    return SourceState.VOID if status == "void" else SourceState.PENDING


def parse_credit_note(raw: Any) -> InvoiceData:
    """A credit note as Zoho's list has it (no tax: ``tax`` and ``subtotal`` None, unknown; no
    lines; no invoice named: ``credits`` None) or as the credit note itself has it (its
    ``tax_total``, ``line_items`` and the ``invoice_id`` it was raised from, when it was)."""
    if not isinstance(raw, dict) or not raw.get("creditnote_id"):
        raise MalformedResponse("Zoho: a credit note has no creditnote_id")
    credit_id = str(raw["creditnote_id"])
    what = f"credit note {credit_id}"
    total = abs(amount(raw, "total", what))
    tax = abs(amount(raw, "tax_total", what)) if "tax_total" in raw else None
    invoice = raw.get("invoice_id")
    return InvoiceData(
        external_id=credit_id,
        number=raw.get("creditnote_number") or None,
        kind=InvoiceKind.CREDIT_NOTE,
        contact=raw.get("customer_name"),
        issue_date=parse_date(raw.get("date"), "date", what),
        due_date=None,
        currency=str(raw.get("currency_code") or ""),
        subtotal=None if tax is None else total - tax,
        tax=tax,
        total=total,
        source_status=raw.get("status"),
        source_updated_at=parse_time(raw.get("last_modified_time"), "last_modified_time", what),
        state=credit_state(raw.get("status")),
        items=parse_line_items(raw, what),
        buyer_tax_id=buyer_tax_id(raw),
        credits=str(invoice) if invoice else None,
    )


CREDIT_NOTES = Documents("creditnotes", "creditnote", "credit note", parse_credit_note)


def applied(raw: dict[str, Any]) -> bool:
    """Whether the credit note itself says some of it has been applied or refunded (closed, or
    a balance below its total): the invoices it was applied to may name the one it credits."""
    if raw.get("status") == "closed":
        return True
    balance, total = raw.get("balance"), raw.get("total")
    if isinstance(balance, int | Decimal) and isinstance(total, int | Decimal):
        return Decimal(balance) < Decimal(total)
    return False


def first_credited(data: Any, what: str) -> str | None:
    """The invoice a credit note was first applied to, of ``invoices_credited`` (None: none).
    A credit note applied to several invoices credits, for fiscalization, the first."""
    credited = data.get("invoices_credited") if isinstance(data, dict) else None
    if not isinstance(credited, list) or not all(isinstance(c, dict) for c in credited):
        raise MalformedResponse(f"{what}: invoices_credited is not a list of invoices")
    for entry in credited:
        if entry.get("invoice_id"):
            return str(entry["invoice_id"])
    return None
