"""Zoho Books' invoices as intdash reads them (:func:`parse_invoice`), with what its credit
notes share with them (times, dates, amounts), and what the document itself has beyond its list's
fields and tax (see :mod:`intdash.providers.zoho_tax`): its line items, payments and the
customer's tax number.

``what`` names the document in errors: "invoice 460000000000001", "credit note ..."."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from intdash.core.invoices import InvoiceData, InvoiceKind, LineItem, Payment, SourceState
from intdash.providers.errors import MalformedResponse

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"


def parse_time(value: Any, field: str, what: str) -> datetime:
    try:
        return datetime.strptime(str(value), TIME_FORMAT).astimezone(UTC)
    except ValueError:
        raise MalformedResponse(f"Zoho: {what}: bad {field}: {value!r}") from None


def parse_date(value: Any, field: str, what: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise MalformedResponse(f"Zoho: {what}: bad {field}: {value!r}") from None


def amount(raw: Mapping[str, Any], field: str, what: str) -> Decimal:
    value = raw.get(field)
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise MalformedResponse(f"Zoho: {what}: {field} is not a number")
    return Decimal(value)


def _line_number(raw: Mapping[str, Any], field: str, what: str) -> Decimal | None:
    value = raw.get(field)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise MalformedResponse(f"Zoho: {what}: {field} of a line or payment is not a number")
    return Decimal(value)


def _discount(line: Mapping[str, Any], gross: Decimal, what: str) -> Decimal:
    """A line's discount as an amount: ``discount_amount``, else ``discount`` ("12.5%" a
    percentage of quantity x rate, a number an amount)."""
    stated = _line_number(line, "discount_amount", what)
    if stated is not None:
        return stated
    given = line.get("discount")
    if isinstance(given, str) and given.strip().endswith("%"):
        try:
            return gross * Decimal(given.strip()[:-1]) / 100
        except ArithmeticError:
            raise MalformedResponse(
                f"Zoho: {what}: a line's discount is not a percentage: {given!r}"
            ) from None
    return _line_number(line, "discount", what) or Decimal(0)


def parse_line_items(raw: Mapping[str, Any], what: str) -> tuple[LineItem, ...]:
    """The ``line_items`` of the invoice itself (the list has none): ``rate`` is the unit
    price and ``item_total`` the line's amount, with tax when ``is_inclusive_tax``; the tax is
    Zoho's ``tax_id`` at ``tax_percentage`` (the line's tax amount is not stated)."""
    lines = raw.get("line_items")
    if lines is None:
        return ()
    if not isinstance(lines, list) or not all(isinstance(line, dict) for line in lines):
        raise MalformedResponse(f"Zoho: {what}: line_items is not a list of lines")
    inclusive = raw.get("is_inclusive_tax")
    items: list[LineItem] = []
    for line in lines:
        quantity = _line_number(line, "quantity", what) or Decimal(0)
        rate = _line_number(line, "rate", what) or Decimal(0)
        discount = _discount(line, quantity * rate, what)
        total = _line_number(line, "item_total", what)
        items.append(
            LineItem(
                name=str(line.get("name") or line.get("description") or ""),
                quantity=quantity,
                unit_price=rate,
                total=quantity * rate - discount if total is None else total,
                discount=discount,
                tax_code=str(line["tax_id"]) if line.get("tax_id") else None,
                tax_rate=_line_number(line, "tax_percentage", what),
                item_code=str(line["sku"]) if line.get("sku") else None,
                tax_inclusive=inclusive if isinstance(inclusive, bool) else None,
            )
        )
    return tuple(items)


def parse_payments(raw: Mapping[str, Any], what: str) -> tuple[Payment, ...]:
    """The invoice's ``payments``: each one's ``amount`` and ``payment_mode``."""
    payments = raw.get("payments")
    if not isinstance(payments, list):
        return ()
    found: list[Payment] = []
    for payment in payments:
        if not isinstance(payment, dict):
            raise MalformedResponse(f"Zoho: {what}: a payment is not an object")
        mode = payment.get("payment_mode")
        paid = _line_number(payment, "amount", what)
        if paid is None:
            raise MalformedResponse(f"Zoho: {what}: a payment has no amount")
        found.append(Payment(paid, str(mode) if mode else None))
    return tuple(found)


def buyer_tax_id(raw: Mapping[str, Any]) -> str | None:
    """The customer's tax registration number the invoice shows, under the name of its
    organisation's country (which Zoho Books' invoice uses for which is *unconfirmed*)."""
    for field in ("tax_reg_no", "vat_reg_no", "gst_no"):
        value = str(raw.get(field) or "").strip()
        if value:
            return value
    return None


# sent, and the states a sent invoice moves through (viewed by the customer, unpaid, overdue,
# partly or wholly paid): all issued
APPROVED = frozenset({"sent", "viewed", "unpaid", "overdue", "partially_paid", "paid"})


def source_state(status: Any) -> SourceState:
    """Zoho Books: a draft (or one pending approval) is not issued; void is gone."""
    if status in APPROVED:
        return SourceState.APPROVED
    return SourceState.VOID if status == "void" else SourceState.PENDING


def parse_invoice(raw: Any) -> InvoiceData:
    """An invoice as Zoho's list has it (no tax: ``tax`` and ``subtotal`` are None, unknown; no
    lines, no payments) or as the invoice itself has it (``tax_total``; the subtotal is the
    total before tax, which is Zoho's ``sub_total`` when the invoice has no discount, shipping or
    adjustment; its ``line_items`` and ``payments``)."""
    if not isinstance(raw, dict) or not raw.get("invoice_id"):
        raise MalformedResponse("Zoho: an invoice has no invoice_id")
    invoice_id = str(raw["invoice_id"])
    what = f"invoice {invoice_id}"
    total = amount(raw, "total", what)
    tax = amount(raw, "tax_total", what) if "tax_total" in raw else None
    return InvoiceData(
        external_id=invoice_id,
        number=raw.get("invoice_number") or None,
        kind=InvoiceKind.SALES,
        contact=raw.get("customer_name"),
        issue_date=parse_date(raw.get("date"), "date", what),
        due_date=parse_date(raw.get("due_date"), "due_date", what),
        currency=str(raw.get("currency_code") or ""),
        subtotal=None if tax is None else total - tax,
        tax=tax,
        total=total,
        source_status=raw.get("status"),
        source_updated_at=parse_time(raw.get("last_modified_time"), "last_modified_time", what),
        state=source_state(raw.get("status")),
        items=parse_line_items(raw, what),
        buyer_tax_id=buyer_tax_id(raw),
        payments=parse_payments(raw, what),
    )
