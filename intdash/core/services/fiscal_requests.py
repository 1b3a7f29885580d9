"""An invoice as TaxCore's V-SDC is asked to sign it.

What is fiscalized is taken in the transaction that records it (:func:`content_of`: the
invoice's number, totals, line items, buyer and payments as they stood then), and the request is
built from that at the first send (:func:`build_request`), with each line's tax code turned into
a TaxCore label: the integration's own mapping first, else the one label whose rate equals the
line's rate exactly; never a guess (:class:`UnmappedTaxCode` names the code and the command that
maps it). Prices include tax, amounts have four decimal places, and the items add up to the
invoice's total, which the payments add up to.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from intdash.core.errors import ConflictError

PLACES = Decimal("0.0001")
HUNDRED = Decimal(100)
NO_CODE = "-"  # the mapping's key for lines without a tax code
SALE, REFUND = 0, 1
NORMAL = 0
PAYMENT_OTHER, PAYMENT_WIRE = 0, 4
PAYMENT_TYPES = {
    "other": 0, "cash": 1, "card": 2, "check": 3, "cheque": 3, "wiretransfer": 4,
    "wire transfer": 4, "bank transfer": 4, "banktransfer": 4, "voucher": 5, "mobilemoney": 6,
    "mobile money": 6,
}  # fmt: skip


class UnmappedTaxCode(ConflictError):
    """A line's tax code has no TaxCore label: the operator maps it."""


@dataclass(frozen=True)
class Label:
    label: str
    rate: Decimal  # percent
    category: str

    def describe(self) -> str:
        return f"{self.label} {self.rate.normalize():f}% ({self.category})"


def labels_of(status: Mapping[str, Any]) -> list[Label]:
    """The current tax rates' labels from ``GET /api/v3/status``."""
    current = status.get("currentTaxRates") or {}
    found = []
    for category in current.get("taxCategories") or []:
        for rate in category.get("taxRates") or []:
            found.append(
                Label(str(rate["label"]), _amount(rate.get("rate", 0)), str(category.get("name")))
            )
    return found


def group_of(status: Mapping[str, Any]) -> int | None:
    group = (status.get("currentTaxRates") or {}).get("groupId")
    return int(group) if group is not None else None


def _amount(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValueError(f"not an amount: {value!r}") from None


def _q(value: Decimal) -> Decimal:
    return value.quantize(PLACES, rounding=ROUND_HALF_UP)


def _number(value: Decimal) -> float:
    """A JSON number (TaxCore reads numbers, not strings), exact to four places."""
    return float(_q(value))


# -- what is fiscalized, taken in the recording transaction -----------------------------------


def _json_list(text: str | None) -> list[Any] | None:
    if not text:
        return None
    value = json.loads(text)
    return value if isinstance(value, list) else None


def content_of(row: Any) -> dict[str, Any]:
    """The invoice as it is fiscalized: what a later edit at its source does not change."""
    return {
        "external_id": row.external_id,
        "number": row.number,
        "issue_date": row.issue_date.isoformat() if row.issue_date else None,
        "currency": row.currency,
        "total": str(row.total),
        "tax": None if row.tax is None else str(row.tax),
        "items": _json_list(getattr(row, "items", None)),
        "buyer_tax_id": getattr(row, "buyer_tax_id", None),
        "payments": _json_list(getattr(row, "payments", None)),
    }


# -- the request ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Mapping_:
    """Everything a request's labels depend on."""

    integration: str  # its name, as the operator knows it
    uid: str
    codes: Mapping[str, str]  # tax code (NO_CODE for none) -> label
    labels: Sequence[Label]


def _rate_of(item: Mapping[str, Any], gross: Decimal, tax: Decimal | None) -> Decimal | None:
    """A line's rate in percent: as its platform gives it, else its tax over its net amount
    (to two places), else unknown."""
    for key in ("tax_rate", "rate"):
        if item.get(key) is not None:
            return _amount(item[key]).normalize()
    if tax is None:
        return None
    net = gross - tax
    if net == 0:
        return None
    return (tax / net * HUNDRED).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP).normalize()


def label_for(code: str | None, rate: Decimal | None, mapping: Mapping_, where: str) -> str:
    """The label of a line: the integration's mapping of its code, else the one label of its
    rate; :class:`UnmappedTaxCode` naming the code otherwise."""
    key = code if code else NO_CODE
    known = {label.label: label for label in mapping.labels}
    mapped = mapping.codes.get(key)
    shown = f"tax code {code}" if code else "a line without a tax code"
    labels = ", ".join(label.describe() for label in mapping.labels) or "none known yet"
    how = f"intdash fiscal map {mapping.uid} {key} LABEL (labels: {labels})"
    if mapped is not None:
        if mapped not in known:
            raise UnmappedTaxCode(
                f"{shown} of {mapping.integration} is mapped to label {mapped}, which the SDC's "
                f"current tax rates do not have: {how}"
            )
        return mapped
    if rate is not None:
        same = [label for label in mapping.labels if label.rate == rate]
        if len(same) == 1:
            return same[0].label
        if len(same) > 1:
            raise UnmappedTaxCode(
                f"{shown} of {mapping.integration} has no TaxCore label ({where}; its rate "
                f"{rate:f}% is that of labels {', '.join(s.label for s in same)}): {how}"
            )
    raise UnmappedTaxCode(f"{shown} of {mapping.integration} has no TaxCore label ({where}): {how}")


def _item_amounts(
    item: Mapping[str, Any],
) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal | None]:
    """A line's quantity, unit price, discount and total with tax included (TaxCore's prices
    include it), and its tax, from the line as its platform has it (see
    :class:`intdash.core.invoices.LineItem`: amounts on the platform's own basis, the discount
    an amount)."""
    quantity = _amount(item.get("quantity") if item.get("quantity") is not None else 1)
    price = _amount(item.get("unit_price") or 0)
    discount = _amount(item.get("discount") or 0)
    total = _amount(item["total"]) if item.get("total") is not None else quantity * price - discount
    tax = None if item.get("tax_amount") is None else _amount(item["tax_amount"])
    rate = None if item.get("tax_rate") is None else _amount(item["tax_rate"])
    if item.get("tax_inclusive") is True:
        gross = total
    elif tax is not None:
        gross = total + tax
    elif rate is not None:
        gross = total * (HUNDRED + rate) / HUNDRED
    else:
        gross = total  # no tax stated on the line
    if total and gross != total:  # the platform's basis excluded tax: scale to include it
        price, discount = price * gross / total, discount * gross / total
    return quantity, price, discount, gross, tax


def _items(content: Mapping[str, Any], mapping: Mapping_) -> list[dict[str, Any]]:
    number = content.get("number") or content["external_id"]
    total = _amount(content["total"])
    items = content.get("items") or []
    if not items:
        tax = None if content.get("tax") is None else _amount(content["tax"])
        rate = _rate_of({}, total, tax)
        label = label_for(None, rate, mapping, f"invoice {number}, which has no line items")
        return [
            {
                "Name": f"Invoice {number}"[:2048],
                "Quantity": 1.0,
                "UnitPrice": _number(total),
                "TotalAmount": _number(total),
                "Labels": [label],
            }
        ]
    built = []
    for n, item in enumerate(items, start=1):
        quantity, unit, discount, gross, tax = _item_amounts(item)
        code = item.get("tax_code")
        rate = _rate_of(item, gross, tax)
        label = label_for(code, rate, mapping, f"invoice {number}, line {n}")
        gross, unit, discount = _q(gross), _q(unit), _q(discount)
        if quantity <= 0 or abs(quantity * unit - discount - gross) > Decimal("0.005"):
            quantity, unit, discount = Decimal(1), gross, Decimal(0)  # the total kept exact
        entry: dict[str, Any] = {
            "Name": str(item.get("name") or item.get("description") or f"Line {n}")[:2048],
            "Quantity": float(quantity),
            "UnitPrice": _number(unit),
            "TotalAmount": _number(gross),
            "Labels": [label],
        }
        if discount:
            entry["Discount"] = _number(discount)
        gtin = str(item.get("item_code") or "")
        if gtin.isdigit() and 8 <= len(gtin) <= 14:
            entry["GTIN"] = gtin
        built.append(entry)
    _balance(built, total)
    return built


def _balance(items: list[dict[str, Any]], total: Decimal) -> None:
    """Make the items add up to the invoice's total (a platform's rounding of lines against the
    total, at most a few cents): the difference goes to the last line."""
    summed = sum((Decimal(str(i["TotalAmount"])) for i in items), Decimal(0))
    off = _q(total - summed)
    if off and abs(off) <= Decimal("0.05"):
        last = items[-1]
        gross = Decimal(str(last["TotalAmount"])) + off
        last.update(Quantity=1.0, UnitPrice=_number(gross), TotalAmount=_number(gross))
        last.pop("Discount", None)


def _payments(content: Mapping[str, Any], total: Decimal) -> list[dict[str, Any]]:
    found: list[tuple[Decimal, int]] = []
    for payment in content.get("payments") or []:
        amount = payment.get("amount")
        if amount is None:
            continue
        kind = str(payment.get("type") or payment.get("method") or "").lower()
        found.append((_amount(amount), PAYMENT_TYPES.get(kind, PAYMENT_OTHER)))
    paid = sum((amount for amount, _ in found), Decimal(0))
    if paid > total or not found:
        found = [(total, PAYMENT_WIRE if found else PAYMENT_OTHER)]
    elif paid < total:
        found.append((total - paid, PAYMENT_OTHER))
    return [{"Amount": _number(amount), "PaymentType": kind} for amount, kind in found]


def build_request(content: Mapping[str, Any], mapping: Mapping_) -> dict[str, Any]:
    """A sale's request (:class:`UnmappedTaxCode` when a line's code has no label)."""
    items = _items(content, mapping)
    total = sum((Decimal(str(i["TotalAmount"])) for i in items), Decimal(0))
    request: dict[str, Any] = {
        "InvoiceType": NORMAL,
        "TransactionType": SALE,
        "Payment": _payments(content, total),
        "Items": items,
    }
    number = content.get("number") or content.get("external_id")
    if number:
        request["InvoiceNumber"] = str(number)[:60]
    buyer = content.get("buyer_tax_id")
    if buyer:
        request["BuyerId"] = str(buyer)[:20]
    return request


def refund_request(
    sale_request: Mapping[str, Any], sdc_number: str, sdc_time: str
) -> dict[str, Any]:
    """The refund of a signed sale: what was signed, naming it."""
    refund = dict(sale_request)
    refund.update(
        TransactionType=REFUND, ReferentDocumentNumber=sdc_number, ReferentDocumentDT=sdc_time
    )
    return refund
