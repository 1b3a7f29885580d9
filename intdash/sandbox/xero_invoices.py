"""Xero's invoices: how the emulator renders them and which a ``GET /Invoices`` selects.

A listing honours ``If-Modified-Since``, ``page`` and ``pageSize`` (up to 1,000), ``order``,
``where`` (see :mod:`intdash.sandbox.xero_query`), ``IDs``, ``InvoiceNumbers``, ``ContactIDs``,
``Statuses``, ``searchTerm`` and ``createdByMyApp``. Without ``order`` invoices come in the order
they were created (here that is also InvoiceNumber order), not by modification time: a client
that needs ``UpdatedDateUTC ASC`` must ask for it. Ties in any order fall back to modification
order (reversed when the first key descends).

Ordered by ``UpdatedDateUTC`` alone and unfiltered (or in the default order, unfiltered and
without ``If-Modified-Since``), the dataset answers directly, at any size; any other listing reads
every invoice modified since the time given (fine up to ~50,000).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from intdash.sandbox.dataset import Dataset, SourceInvoice, SourceLine
from intdash.sandbox.xero_query import Value, compile_order, compile_where

STATUSES = ("AUTHORISED", "AUTHORISED", "PAID", "PAID", "PAID", "SUBMITTED", "DRAFT", "VOIDED")
ALL_STATUSES = frozenset({"DRAFT", "SUBMITTED", "DELETED", "AUTHORISED", "PAID", "VOIDED"})
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms_date(moment: datetime) -> str:
    """A .NET JSON date, exact to the millisecond (no float rounding)."""
    return f"/Date({(moment - _EPOCH) // timedelta(milliseconds=1)}+0000)/"


def envelope(
    key: str, records: list[dict[str, Any]], paged: tuple[int, int, int] | None = None
) -> dict[str, Any]:
    """An Accounting API answer: ``records`` under ``key`` (Invoices, CreditNotes), with the
    ``pagination`` of a paged listing (``paged``: page, page size, how many match)."""
    extra: dict[str, Any] = {}
    if paged is not None:
        page, size, total = paged
        pages = max(1, -(-total // size))
        extra["pagination"] = {
            "page": page,
            "pageSize": size,
            "pageCount": pages,
            "itemCount": total,
        }
    return {
        "Id": str(uuid.uuid4()),
        "Status": "OK",
        "ProviderName": "intdash sandbox",
        "DateTimeUTC": ms_date(datetime.now(UTC)),
        **extra,
        key: records,
    }


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), UTC)


def xero_status(inv: SourceInvoice) -> str:
    if inv.voided:
        return "VOIDED"
    return STATUSES[inv.status % len(STATUSES)]


def invoice_values(inv: SourceInvoice) -> dict[str, Value]:
    """An invoice's fields as ``where`` and ``order`` see them."""
    status = xero_status(inv)
    paid = inv.total if status == "PAID" else Decimal("0.00")
    return {
        "Type": "ACCREC" if inv.sales else "ACCPAY",
        "Status": status,
        "InvoiceNumber": inv.number,
        "Reference": f"PO-{inv.index % 9000 + 1000}",
        "CurrencyCode": inv.currency,
        "Contact.Name": inv.contact,
        "InvoiceID": inv.id,
        "Contact.ContactID": inv.contact_id,
        "Date": _midnight(inv.issue_date),
        "DueDate": _midnight(inv.due_date),
        "UpdatedDateUTC": inv.updated,
        "SubTotal": inv.subtotal,
        "TotalTax": inv.tax,
        "Total": inv.total,
        "AmountDue": inv.total - paid,
        "AmountPaid": paid,
        "HasAttachments": False,
        "IsDiscounted": inv.sales and any(line.discount_rate for line in inv.lines),
    }


def render_invoice(inv: SourceInvoice, *, lines: bool = True) -> dict[str, Any]:
    v = invoice_values(inv)
    sales = v["Type"] == "ACCREC"
    body: dict[str, Any] = {
        "Type": v["Type"],
        "InvoiceID": inv.id,
        "InvoiceNumber": inv.number,
        "Reference": v["Reference"],
        "Contact": {"ContactID": inv.contact_id, "Name": inv.contact},
        "Date": ms_date(_midnight(inv.issue_date)),
        "DueDate": ms_date(_midnight(inv.due_date)),
        "Status": v["Status"],
        "LineAmountTypes": "Inclusive" if inv.inclusive else "Exclusive",
        "SubTotal": float(inv.subtotal),
        "TotalTax": float(inv.tax),
        "Total": float(inv.total),
        "AmountDue": float(str(v["AmountDue"])),
        "AmountPaid": float(str(v["AmountPaid"])),
        "AmountCredited": 0.0,
        "CurrencyCode": inv.currency,
        "CurrencyRate": 1.0,
        "IsDiscounted": v["IsDiscounted"],
        "HasAttachments": False,
        "HasErrors": False,
        "UpdatedDateUTC": ms_date(inv.updated),
    }
    if inv.contact_tax_id:
        body["Contact"]["TaxNumber"] = inv.contact_tax_id
    if lines:
        body["LineItems"] = render_lines(inv.id, inv.lines, sales, inv.inclusive)
        paid = v["Status"] == "PAID"
        body.update(Payments=[_payment(inv)] if paid else [], CreditNotes=[], Prepayments=[])
        body["Overpayments"] = []
    return body


def render_lines(
    owner_id: str, lines: tuple[SourceLine, ...], sales: bool, inclusive: bool
) -> list[dict[str, Any]]:
    """The ``LineItems`` of an invoice or a credit note (``owner_id``): each line as Xero has
    it, ``LineAmount`` = ``Quantity`` x ``UnitAmount`` less ``DiscountRate`` percent, with tax
    when the document's ``LineAmountTypes`` is Inclusive. Bills (and purchase credit notes) take
    no discounts in Xero: a discounted line of one is priced net instead."""
    return [_line(owner_id, n, line, sales, inclusive) for n, line in enumerate(lines)]


def _line(owner_id: str, n: int, line: SourceLine, sales: bool, inclusive: bool) -> dict[str, Any]:
    unit = line.unit_price
    if not sales and line.discount_rate:
        unit = line.net / line.quantity
    amount = line.net
    if inclusive:  # (one unit each, undiscounted: see the dataset)
        unit = amount = line.gross
    body: dict[str, Any] = {
        "LineItemID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"xero-line:{owner_id}:{n}")),
        "Description": line.description,
        "Quantity": float(line.quantity),
        "UnitAmount": float(unit),
        "ItemCode": line.item_code,
        "AccountCode": "200" if sales else "400",
        "TaxType": "OUTPUT2" if sales else "INPUT2",
        "TaxAmount": float(line.tax),
        "LineAmount": float(amount),
        "Tracking": [],
    }
    if sales and line.discount_rate:
        body["DiscountRate"] = float(line.discount_rate)
    return body


def _payment(inv: SourceInvoice) -> dict[str, Any]:
    return {
        "PaymentID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"xero-payment:{inv.id}")),
        "Date": ms_date(_midnight(inv.due_date)),
        "Amount": float(inv.total),
        "Reference": "",
        "CurrencyRate": 1.0,
        "HasAccount": False,
        "HasValidationErrors": False,
    }


@dataclass(frozen=True)
class Listing:
    """What one ``GET /Invoices`` asks for."""

    page: int
    size: int
    order: list[tuple[str, bool]] | None  # None: Xero's default (creation) order
    keep: Callable[[Mapping[str, Value]], bool] | None  # None: no filter

    @property
    def fast(self) -> bool:
        """The dataset can answer it directly (by modification time, unfiltered)."""
        return (
            self.keep is None
            and self.order is not None
            and ([name for name, _ in self.order] == ["UpdatedDateUTC"])
        )


class Invalid(ValueError):
    """A parameter Xero refuses with a ValidationException."""


def _guids(text: str, what: str) -> set[str]:
    try:
        return {str(uuid.UUID(part.strip())) for part in text.split(",") if part.strip()}
    except ValueError:
        raise Invalid(f"{what}: '{text}' is not a comma-separated list of Guids") from None


def page_of(query: Mapping[str, str]) -> tuple[int, int]:
    """``page`` (from 1) and ``pageSize`` (up to 1,000: more is taken as 1,000), as every paged
    listing of Xero's reads them."""
    try:
        page = max(1, int(query.get("page", "1")))
        size = min(max(int(query.get("pageSize", str(DEFAULT_PAGE_SIZE))), 1), MAX_PAGE_SIZE)
    except ValueError:
        raise Invalid("page and pageSize must be whole numbers") from None
    return page, size


def parse_listing(query: Mapping[str, str]) -> Listing:
    page, size = page_of(query)
    order = compile_order(query["order"]) if query.get("order", "").strip() else None
    tests: list[Callable[[Mapping[str, Value]], bool]] = []
    if query.get("where", "").strip():
        tests.append(compile_where(query["where"]))
    if query.get("IDs"):
        ids = _guids(query["IDs"], "IDs")
        tests.append(lambda v: v["InvoiceID"] in ids)
    if query.get("ContactIDs"):
        contacts = _guids(query["ContactIDs"], "ContactIDs")
        tests.append(lambda v: v["Contact.ContactID"] in contacts)
    if query.get("InvoiceNumbers"):
        numbers = {n.strip() for n in query["InvoiceNumbers"].split(",") if n.strip()}
        tests.append(lambda v: v["InvoiceNumber"] in numbers)
    if query.get("Statuses"):
        statuses = {s.strip().upper() for s in query["Statuses"].split(",") if s.strip()}
        if statuses - ALL_STATUSES:
            raise Invalid(f"Statuses: unknown {', '.join(sorted(statuses - ALL_STATUSES))}")
        tests.append(lambda v: v["Status"] in statuses)
    if query.get("searchTerm", "").strip():
        term = query["searchTerm"].strip().lower()
        tests.append(
            lambda v: term in str(v["InvoiceNumber"]).lower() or term in str(v["Reference"]).lower()
        )
    if query.get("createdByMyApp", "").lower() == "true":
        tests.append(lambda _v: False)  # every invoice here was made in Xero, not by the app
    keep = None if not tests else (lambda v: all(test(v) for test in tests))
    return Listing(page, size, order, keep)


class _Desc:
    """Reverses the comparison of a sort key."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: _Desc) -> bool:
        return bool(other.value < self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Desc) and bool(self.value == other.value)

    __hash__ = None  # type: ignore[assignment]


def _scan(dataset: Dataset, since: datetime | None) -> Iterator[SourceInvoice]:
    offset = 0
    while batch := dataset.list_after(since, offset, 1000):
        yield from batch
        offset += len(batch)


def select(
    dataset: Dataset, since: datetime | None, ask: Listing
) -> tuple[int, list[SourceInvoice]]:
    """(how many match, the invoices of the page asked for)."""
    offset = (ask.page - 1) * ask.size
    if ask.fast:
        total = dataset.count_after(since)
        assert ask.order is not None
        if not ask.order[0][1]:
            return total, dataset.list_after(since, offset, ask.size)
        end = total - offset  # descending: the ascending list read backwards
        if end <= 0:
            return total, []
        start = max(0, end - ask.size)
        return total, dataset.list_after(since, start, end - start)[::-1]
    if ask.order is None and ask.keep is None and since is None:
        size = dataset.size
        if dataset.live_count == size:  # none deleted: index order is direct
            return size, [dataset.invoice(i) for i in range(offset, min(size, offset + ask.size))]
    rows = [(n, inv, invoice_values(inv)) for n, inv in enumerate(_scan(dataset, since))]
    if ask.keep is not None:
        keep = ask.keep
        rows = [row for row in rows if keep(row[2])]
    if ask.order is None:
        rows.sort(key=lambda row: row[1].index)
    else:
        sort_rows(rows, ask.order)
    return len(rows), [inv for _, inv, _ in rows[offset : offset + ask.size]]


# (place in modification order, record, its values)
Row = TypeVar("Row", bound=tuple[int, Any, Mapping[str, Value]])


def sort_rows(rows: list[Row], keys: list[tuple[str, bool]]) -> None:
    """Sort by ``keys`` (field, descending); ties in modification order (the rows' first item),
    reversed when the first key descends."""
    backwards = keys[0][1]
    rows.sort(
        key=lambda row: tuple(
            [_Desc(row[2][name]) if desc else row[2][name] for name, desc in keys]
            + [_Desc(row[0]) if backwards else row[0]]
        )
    )


def find_invoice(dataset: Dataset, key: str) -> int | None:
    """The invoice with this InvoiceID or InvoiceNumber, if it is there."""
    if key.upper().startswith("INV-") and key[4:].isdigit():
        index = int(key[4:]) - 1
        found = dataset.exists(index) and dataset.invoice(index).number == key.upper()
        return index if found else None
    try:
        wanted = str(uuid.UUID(key))
    except ValueError:
        return None
    return dataset.index_of(wanted)
