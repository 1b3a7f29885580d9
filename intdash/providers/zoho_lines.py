"""Zoho Books: what the invoice itself has beyond its list's fields and tax (see
:mod:`intdash.providers.zoho_tax`): its line items, payments and the customer's tax number."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from intdash.core.invoices import LineItem, Payment
from intdash.providers.errors import MalformedResponse


def _line_number(raw: Mapping[str, Any], field: str, invoice_id: str) -> Decimal | None:
    value = raw.get(field)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise MalformedResponse(
            f"Zoho: invoice {invoice_id}: {field} of a line or payment is not a number"
        )
    return Decimal(value)


def _discount(line: Mapping[str, Any], gross: Decimal, invoice_id: str) -> Decimal:
    """A line's discount as an amount: ``discount_amount``, else ``discount`` ("12.5%" a
    percentage of quantity x rate, a number an amount)."""
    amount = _line_number(line, "discount_amount", invoice_id)
    if amount is not None:
        return amount
    given = line.get("discount")
    if isinstance(given, str) and given.strip().endswith("%"):
        try:
            return gross * Decimal(given.strip()[:-1]) / 100
        except ArithmeticError:
            raise MalformedResponse(
                f"Zoho: invoice {invoice_id}: a line's discount is not a percentage: {given!r}"
            ) from None
    return _line_number(line, "discount", invoice_id) or Decimal(0)


def parse_line_items(raw: Mapping[str, Any], invoice_id: str) -> tuple[LineItem, ...]:
    """The ``line_items`` of the invoice itself (the list has none): ``rate`` is the unit
    price and ``item_total`` the line's amount, with tax when ``is_inclusive_tax``; the tax is
    Zoho's ``tax_id`` at ``tax_percentage`` (the line's tax amount is not stated)."""
    lines = raw.get("line_items")
    if lines is None:
        return ()
    if not isinstance(lines, list) or not all(isinstance(line, dict) for line in lines):
        raise MalformedResponse(f"Zoho: invoice {invoice_id}: line_items is not a list of lines")
    inclusive = raw.get("is_inclusive_tax")
    items: list[LineItem] = []
    for line in lines:
        quantity = _line_number(line, "quantity", invoice_id) or Decimal(0)
        rate = _line_number(line, "rate", invoice_id) or Decimal(0)
        discount = _discount(line, quantity * rate, invoice_id)
        total = _line_number(line, "item_total", invoice_id)
        items.append(
            LineItem(
                name=str(line.get("name") or line.get("description") or ""),
                quantity=quantity,
                unit_price=rate,
                total=quantity * rate - discount if total is None else total,
                discount=discount,
                tax_code=str(line["tax_id"]) if line.get("tax_id") else None,
                tax_rate=_line_number(line, "tax_percentage", invoice_id),
                item_code=str(line["sku"]) if line.get("sku") else None,
                tax_inclusive=inclusive if isinstance(inclusive, bool) else None,
            )
        )
    return tuple(items)


def parse_payments(raw: Mapping[str, Any], invoice_id: str) -> tuple[Payment, ...]:
    """The invoice's ``payments``: each one's ``amount`` and ``payment_mode``."""
    payments = raw.get("payments")
    if not isinstance(payments, list):
        return ()
    found: list[Payment] = []
    for payment in payments:
        if not isinstance(payment, dict):
            raise MalformedResponse(f"Zoho: invoice {invoice_id}: a payment is not an object")
        mode = payment.get("payment_mode")
        amount = _line_number(payment, "amount", invoice_id)
        if amount is None:
            raise MalformedResponse(f"Zoho: invoice {invoice_id}: a payment has no amount")
        found.append(Payment(amount, str(mode) if mode else None))
    return tuple(found)


def buyer_tax_id(raw: Mapping[str, Any]) -> str | None:
    """The customer's tax registration number the invoice shows, under the name of its
    organisation's country (which Zoho Books' invoice uses for which is *unconfirmed*)."""
    for field in ("tax_reg_no", "vat_reg_no", "gst_no"):
        value = str(raw.get(field) or "").strip()
        if value:
            return value
    return None
