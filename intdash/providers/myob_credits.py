"""MYOB's credit notes: negative sales, and the credit settlements that name what they credit.

AccountRight has no credit note of its own kind: a credit note is a sale whose amounts are
negative (``Sale/Invoice`` lists it among the invoices, ``Status`` ``Credit`` while some of its
credit is unapplied, ``Closed`` once all of it is). intdash takes it as a document of its own:
kind credit note, its amounts positive (:func:`turned`).

Which invoice it credits is not on the sale: it is the invoice its credit is applied to, by a
credit settlement (``Sale/CreditSettlement``: ``CreditFromInvoice`` names the credit note,
``Lines [{Type, Sale {UID, Number}, AmountApplied}]`` the sales it is applied to). A credit note
credits the first invoice its first settlement applies it to (settlements in order of ``Date``,
then ``Number``; a line of ``Type`` ``Invoice``: not a sales order's, nor one purged), and none
while it has no settlement (``credits`` None: its refund waits for one).

A sync learns settlements two ways, within MYOB's 8 calls a second:

- a page of sales that has credit notes is followed by one read of their settlements, filtered
  by their UIDs (``CreditFromInvoice/UID eq guid'…'``, :data:`GUIDS_PER_CALL` a call, which keeps
  the query within the 2,048 characters IIS takes by default);
- a credit note settled after it was read need not be listed again as a sale (whether settling
  changes its ``LastModified`` is not published), so the settlements are followed as a stream of
  their own, by their ``LastModified``: a settlement not seen yet brings its credit note again
  (read by UID, with its lines and all its settlements). A settlement already read with its
  credit note in the same sync brings nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from intdash.core.invoices import InvoiceData, InvoiceKind, LineItem
from intdash.providers.connector import member
from intdash.providers.errors import MalformedResponse

if TYPE_CHECKING:
    from intdash.providers.api import ApiClient

GUIDS_PER_CALL = 20  # about 80 characters each in the query string, within IIS's 2,048
TOP = 1000  # MYOB's largest $top


def items_of(data: Any, what: str) -> list[Any]:
    """The ``Items`` of a MYOB list."""
    items = data.get("Items") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise MalformedResponse(f"{what}: expected 'Items' (list) in the answer")
    return items


def batches(uids: Sequence[str], size: int = GUIDS_PER_CALL) -> Iterator[Sequence[str]]:
    for start in range(0, len(uids), size):
        yield uids[start : start + size]


def guid_filter(field: str, uids: Iterable[str]) -> str:
    """``(F eq guid'…' or F eq guid'…')``: one of these GUIDs."""
    return "(" + " or ".join(f"{field} eq guid'{uid}'" for uid in uids) + ")"


# -- a credit note in its own terms -----------------------------------------------------------


def turned(item: LineItem) -> LineItem:
    """A credit note's line as its own document has it: the amount credited positive. Its
    quantity returned (an Item line's negative ``ShipQuantity``) or its price (a Service line's
    negative ``UnitPrice``) turns positive; a line that added to the credit note's total (a
    restocking fee) turns negative, its price below zero."""
    quantity, unit = item.quantity, item.unit_price
    if quantity < 0:
        quantity = -quantity
    else:
        unit = -unit
    return replace(
        item,
        quantity=quantity,
        unit_price=unit,
        total=-item.total,
        discount=-item.discount,
        tax_amount=None if item.tax_amount is None else -item.tax_amount,
    )


# -- settlements ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settlement:
    """A credit settlement as intdash needs it: the credit note it applies, the invoices it
    applies it to (in the order of its lines), and what orders it among others."""

    uid: str
    credit_note: str
    invoices: tuple[str, ...]
    date: str
    number: str
    modified: datetime | None
    row_version: str

    def entry(self) -> InvoiceData:
        """The settlement as the keyset paging (:func:`intdash.providers.paging.walk`) orders
        and tells apart what it reads: by ``LastModified``, and everything that can change."""
        return InvoiceData(
            external_id=self.uid,
            number=self.number,
            kind=InvoiceKind.CREDIT_NOTE,
            contact=None,
            issue_date=None,
            due_date=None,
            currency="",
            subtotal=None,
            tax=None,
            total=Decimal(0),
            source_status=f"{self.row_version} {self.date} {' '.join(self.invoices)}",
            source_updated_at=self.modified,
            credits=self.credit_note,
        )


def parse_settlement(raw: Any) -> Settlement:
    """A ``Sale/CreditSettlement`` record."""
    if not isinstance(raw, dict) or not isinstance(raw.get("UID"), str):
        raise MalformedResponse("MYOB credit settlements: a settlement has no UID")
    uid = raw["UID"]
    credit = member(raw, "CreditFromInvoice").get("UID")
    lines = raw.get("Lines")
    if not isinstance(credit, str) or not isinstance(lines, list):
        raise MalformedResponse(
            f"MYOB credit settlement {uid}: no CreditFromInvoice.UID, or Lines is not a list"
        )
    invoices = tuple(
        str(member(line, "Sale")["UID"])
        for line in lines
        if isinstance(line, dict)
        and line.get("Type") == "Invoice"
        and isinstance(member(line, "Sale").get("UID"), str)
    )
    modified = None
    if raw.get("LastModified") is not None:
        try:
            modified = datetime.fromisoformat(str(raw["LastModified"]))
        except ValueError:
            raise MalformedResponse(
                f"MYOB credit settlement {uid}: LastModified is not a time"
            ) from None
        modified = modified.replace(tzinfo=UTC) if modified.tzinfo is None else modified
    return Settlement(
        uid=uid,
        credit_note=credit.lower(),
        invoices=invoices,
        date=str(raw.get("Date") or ""),
        number=str(raw.get("Number") or ""),
        modified=modified,
        row_version=str(raw.get("RowVersion") or ""),
    )


def first_credited(settlements: Iterable[Settlement]) -> str | None:
    """The invoice a credit note credits: the first its first settlement applies it to."""
    for settlement in sorted(settlements, key=lambda s: (s.date, s.number, s.uid)):
        if settlement.invoices:
            return settlement.invoices[0]
    return None


class Settlements:
    """One sync's reading of settlements: what each credit note it gave was given with."""

    def __init__(self, api: ApiClient, url: str) -> None:
        self.api = api
        self.url = url
        self.given: dict[str, frozenset[str]] = {}  # credit note -> its settlements, as given

    async def read(self, params: Mapping[str, str]) -> list[Settlement]:
        data = await self.api.get_json(self.url, params=params, what="MYOB credit settlements")
        return [parse_settlement(raw) for raw in items_of(data, "MYOB credit settlements")]

    async def of(self, credit_notes: Sequence[str]) -> dict[str, list[Settlement]]:
        """Every settlement of these credit notes: one read for each :data:`GUIDS_PER_CALL`."""
        found: dict[str, list[Settlement]] = {uid.lower(): [] for uid in credit_notes}
        for batch in batches(credit_notes):
            skip = 0
            while True:
                params = {
                    "$filter": guid_filter("CreditFromInvoice/UID", batch),
                    "$top": str(TOP),
                    "$skip": str(skip),
                }
                read = await self.read(params)
                for settlement in read:
                    found.setdefault(settlement.credit_note, []).append(settlement)
                if len(read) < TOP:
                    break
                skip += len(read)
        return found

    async def credit(self, invoices: Sequence[InvoiceData]) -> list[InvoiceData]:
        """The invoices, each credit note among them naming the invoice it credits."""
        wanted = [i.external_id for i in invoices if i.kind is InvoiceKind.CREDIT_NOTE]
        if not wanted:
            return list(invoices)
        found = await self.of(wanted)
        credited: list[InvoiceData] = []
        for invoice in invoices:
            if invoice.kind is InvoiceKind.CREDIT_NOTE:
                mine = found.get(invoice.external_id.lower(), [])
                self.given[invoice.external_id.lower()] = frozenset(s.uid for s in mine)
                invoice = replace(invoice, credits=first_credited(mine))
            credited.append(invoice)
        return credited

    def unseen(self, entries: Iterable[InvoiceData]) -> list[str]:
        """The credit notes of these settlements (:meth:`Settlement.entry`) that this sync has
        not given with them yet."""
        wanted: list[str] = []
        for entry in entries:
            credit_note = entry.credits
            if credit_note is None or credit_note in wanted:
                continue
            if entry.external_id not in self.given.get(credit_note, frozenset()):
                wanted.append(credit_note)
        return wanted
