"""Invoices as intdash knows them, whatever platform they came from."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any


class InvoiceKind(StrEnum):
    """What a document is: a sales invoice (fiscalized once approved), a purchase (kept, never
    fiscalized), or a sales credit note, which is fiscalized as a refund naming the invoice it
    credits (its amounts are its own and positive, however its platform writes them; a purchase
    credit note is a purchase)."""

    SALES = "sales"
    PURCHASE = "purchase"
    CREDIT_NOTE = "credit note"


class SourceState(StrEnum):
    """Where an invoice stands at its source, as far as fiscalization cares.

    Only an issued (approved) sales invoice is fiscalized; a draft or one awaiting approval waits
    until an edit approves it; a voided or deleted one that was fiscalized is refunded. Each
    connector maps its platform's statuses to these.
    """

    APPROVED = "approved"  # issued: fiscalize it
    PENDING = "pending"  # a draft, or submitted for approval: not yet
    VOID = "void"  # voided or deleted at the source


@dataclass(frozen=True)
class LineItem:
    """One line of an invoice, as its platform has it (nothing recomputed, nothing rounded).

    ``unit_price`` and ``total`` are on the platform's own tax basis: ``tax_inclusive`` says
    which when the platform says (Xero's ``LineAmountTypes``, MYOB's ``IsTaxInclusive``, Zoho's
    ``is_inclusive_tax``), None when it does not. ``total`` is the line's amount after its
    discount (Xero's ``LineAmount``, MYOB's ``Total``, Zoho's ``item_total``).

    ``discount`` is an AMOUNT, the whole line's, on the same basis as ``unit_price`` (0: none):
    a platform's percentage becomes an amount exactly (quantity x unit price x rate / 100),
    where an amount would become a percentage only by rounding. TaxCore's ``Discount`` is a
    percentage: :meth:`discount_percent` gives it.

    ``tax_code`` is the platform's own id of the line's tax (Xero's ``TaxType`` such as
    "OUTPUT2", MYOB's TaxCode ``Code`` such as "GST", Zoho's ``tax_id``): what a mapping to
    fiscal tax labels keys on. ``tax_rate`` is its percentage where the platform states it
    (Zoho's ``tax_percentage``), ``tax_amount`` the line's tax where stated (None: not
    stated). ``item_code`` is the platform's code of the item sold (Xero's ``ItemCode``, MYOB's
    ``Item.Number``, Zoho's ``sku``), the GTIN where the operator keeps one there.
    """

    name: str
    quantity: Decimal
    unit_price: Decimal
    total: Decimal
    discount: Decimal = Decimal(0)
    tax_code: str | None = None
    tax_rate: Decimal | None = None
    tax_amount: Decimal | None = None
    item_code: str | None = None
    tax_inclusive: bool | None = None

    def discount_percent(self) -> Decimal:
        """The discount as a percentage of quantity x unit price (0 when that is 0)."""
        gross = self.quantity * self.unit_price
        return Decimal(0) if not self.discount or not gross else self.discount * 100 / gross


@dataclass(frozen=True)
class Payment:
    """A payment made against an invoice: its amount, and how it was paid in the platform's
    own words where it says (Zoho's ``payment_mode`` "Cash", "Bank Transfer", ...; None where it
    does not, as Xero's invoices)."""

    amount: Decimal
    method: str | None = None


@dataclass(frozen=True)
class InvoiceData:
    """One invoice normalised from a platform's own shape; what the sync engine upserts."""

    external_id: str
    number: str | None
    kind: InvoiceKind
    contact: str | None
    issue_date: date | None
    due_date: date | None
    currency: str
    # None: not known (Zoho's invoice list has no tax; the invoice itself has), never a made-up 0
    subtotal: Decimal | None
    tax: Decimal | None
    total: Decimal
    source_status: str | None
    source_updated_at: datetime | None
    state: SourceState = SourceState.APPROVED
    # what fiscalization needs beyond the totals, where the platform has it: () when it gives
    # no lines (such an invoice is fiscalized as one item of its total) or no payments
    items: tuple[LineItem, ...] = ()
    buyer_tax_id: str | None = None
    payments: tuple[Payment, ...] = ()
    # a credit note's: the external id of the invoice it credits (the platform's allocation or
    # the invoice it was raised against); None while it names none (it waits for one)
    credits: str | None = None


# -- JSON text, as stored ----------------------------------------------------------------------
#
# Items and payments are stored as JSON text: a list of objects keyed by the dataclasses' field
# names, amounts as decimal strings (exact: never a float), a field whose value is None left
# out. ``[{"name": "Consulting", "quantity": "1", "unit_price": "100.00", "total": "100.00",
# "discount": "0", "tax_code": "OUTPUT2", "tax_amount": "15.00", "tax_inclusive": false}]``.

_DECIMALS = frozenset({"quantity", "unit_price", "total", "discount", "tax_rate", "tax_amount"})
_ITEM_FIELDS = {f.name: f for f in fields(LineItem)}
_ITEM_REQUIRED = frozenset({"name", "quantity", "unit_price", "total"})


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value


# one encoder for every list stored: ``json.dumps`` with options makes a new one each call,
# which cost as much as the encoding of a sync's typical line or payment
_dump: Callable[[list[dict[str, Any]]], str] = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":")
).encode


def _item_row(item: LineItem) -> dict[str, Any]:
    """An item's JSON object: its fields in their order, None left out (spelled out field by
    field: a sync stores every line of every invoice this way)."""
    row: dict[str, Any] = {
        "name": item.name,
        "quantity": str(item.quantity),
        "unit_price": str(item.unit_price),
        "total": str(item.total),
        "discount": str(item.discount),
    }
    if item.tax_code is not None:
        row["tax_code"] = item.tax_code
    if item.tax_rate is not None:
        row["tax_rate"] = str(item.tax_rate)
    if item.tax_amount is not None:
        row["tax_amount"] = str(item.tax_amount)
    if item.item_code is not None:
        row["item_code"] = item.item_code
    if item.tax_inclusive is not None:
        row["tax_inclusive"] = item.tax_inclusive
    return row


def items_to_json(items: tuple[LineItem, ...]) -> str:
    return _dump([_item_row(item) for item in items])


def _items_to_json_by_fields(items: tuple[LineItem, ...]) -> str:
    """:func:`items_to_json` as the fields say it (what the spelled-out version must equal)."""
    return _dump(
        [
            {f: _plain(getattr(item, f)) for f in _ITEM_FIELDS if getattr(item, f) is not None}
            for item in items
        ]
    )


def payments_to_json(payments: tuple[Payment, ...]) -> str:
    return _dump(
        [
            {"amount": str(p.amount), **({} if p.method is None else {"method": p.method})}
            for p in payments
        ]
    )


def _decimal(value: Any, where: str) -> Decimal:
    """A decimal string, or a whole number (never a float: it would not be exact)."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ValueError(f"{where} is not a decimal string: {value!r}")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{where} is not a decimal string: {value!r}") from None
    if not amount.is_finite():
        raise ValueError(f"{where} is not a finite amount: {value!r}")
    return amount


def _rows(text: str | None, what: str) -> list[Mapping[str, Any]]:
    if not text:
        return []
    try:
        rows = json.loads(text)
    except ValueError:
        raise ValueError(f"{what}: not JSON") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ValueError(f"{what}: not a list of objects")
    return rows


def item_from_mapping(raw: Mapping[str, Any], where: str = "item") -> LineItem:
    """A line item from its JSON object (see above); ValueError naming what is wrong."""
    unknown = sorted(set(raw) - set(_ITEM_FIELDS))
    if unknown:
        raise ValueError(f"{where}: unknown field {unknown[0]!r}")
    missing = sorted(_ITEM_REQUIRED - {k for k, v in raw.items() if v is not None})
    if missing:
        raise ValueError(f"{where}: {missing[0]} is missing")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if value is None:
            continue
        if name in _DECIMALS:
            values[name] = _decimal(value, f"{where}.{name}")
        elif name == "tax_inclusive":
            if not isinstance(value, bool):
                raise ValueError(f"{where}.tax_inclusive is not true or false: {value!r}")
            values[name] = value
        elif not isinstance(value, str):
            raise ValueError(f"{where}.{name} is not text: {value!r}")
        else:
            values[name] = value
    return LineItem(**values)


def items_from_json(text: str | None) -> tuple[LineItem, ...]:
    """The items stored as :func:`items_to_json` wrote them (None or empty: none)."""
    rows = _rows(text, "items")
    return tuple(item_from_mapping(row, f"items[{n}]") for n, row in enumerate(rows))


def payments_from_json(text: str | None) -> tuple[Payment, ...]:
    """The payments stored as :func:`payments_to_json` wrote them (None or empty: none)."""
    found: list[Payment] = []
    for n, row in enumerate(_rows(text, "payments")):
        unknown = sorted(set(row) - {"amount", "method"})
        if unknown:
            raise ValueError(f"payments[{n}]: unknown field {unknown[0]!r}")
        method = row.get("method")
        if method is not None and not isinstance(method, str):
            raise ValueError(f"payments[{n}].method is not text: {method!r}")
        found.append(Payment(_decimal(row.get("amount"), f"payments[{n}].amount"), method))
    return tuple(found)


def line_columns(data: InvoiceData) -> dict[str, str | None]:
    """The ``invoices`` columns ``items``, ``buyer_tax_id`` and ``payments`` for an invoice:
    JSON text, or None where it has none (no lines: fiscalized as one item of its total)."""
    return {
        "items": items_to_json(data.items) if data.items else None,
        "buyer_tax_id": data.buyer_tax_id or None,
        "payments": payments_to_json(data.payments) if data.payments else None,
    }
