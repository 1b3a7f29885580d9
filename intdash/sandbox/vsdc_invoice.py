"""What the V-SDC emulator checks in an invoice request, and the tax rates it checks against.

An invoice is read as ASP.NET reads it: property names in any case, numbers as JSON numbers
(never strings), enums as their integers. Unlike ASP.NET, a property TaxCore does not document
is refused rather than ignored, so a misspelt one is seen. Every problem found is reported at
once, each as a ``MessageDetails`` entry naming the property as ASP.NET paths it
(``Items[0].Labels``), with codes modelled on TaxCore's (``2800`` required, ``2801`` too long,
``2804`` out of range, ``2805`` invalid value, ``2806`` invalid format, ``2807`` list empty,
``2310`` unknown tax label).

The rules: ``InvoiceType`` (0-4), ``TransactionType`` (0-1), ``Payment`` (at least one, each a
``PaymentType`` 0-6 and an ``Amount``) and ``Items`` (at least one, each a ``Name``, a
``Quantity`` above zero, a ``UnitPrice`` and a ``TotalAmount`` of zero or more, and ``Labels``:
one or more distinct labels of the current tax rates) are required. Amounts have at most 4
decimal places. An item's ``TotalAmount`` is ``Quantity * UnitPrice - Discount`` (``Discount``
an amount, default 0) to within half a cent; the invoice's total is the sum of its items', and
the payments add up to it exactly. A Refund, and a Copy, names an invoice this SDC signed for
the same taxpayer in ``ReferentDocumentNumber`` with that invoice's ``sdcDateTime`` in
``ReferentDocumentDT`` (to the second; a refund names a sale).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from intdash.sandbox.vsdc_rates import TaxRates, parse_time, stamp

INVOICE_TYPES = {0: "Normal", 1: "ProForma", 2: "Copy", 3: "Training", 4: "Advance"}
TRANSACTION_TYPES = {0: "Sale", 1: "Refund"}
PAYMENT_TYPES = {
    0: "Other", 1: "Cash", 2: "Card", 3: "Check", 4: "WireTransfer", 5: "Voucher", 6: "MobileMoney",
}  # fmt: skip
REFUND, COPY = 1, 2

TOP = (
    "DateAndTimeOfIssue", "Cashier", "BuyerId", "BuyerCostCenterId", "InvoiceType",
    "TransactionType", "Payment", "InvoiceNumber", "ReferentDocumentNumber",
    "ReferentDocumentDT", "Items", "Options",
)  # fmt: skip
ITEM = ("GTIN", "Name", "Quantity", "Discount", "Labels", "UnitPrice", "TotalAmount")
PAYMENT = ("Amount", "PaymentType")
OPTIONS = ("OmitQRCodeGen", "OmitTextualRepresentation")
LENGTHS = {
    "Cashier": 50, "BuyerId": 20, "BuyerCostCenterId": 50, "InvoiceNumber": 60,
    "ReferentDocumentNumber": 50, "Name": 2048,
}  # fmt: skip
CENT = Decimal("0.005")
PLACES = Decimal("0.0001")


class RequestError(Exception):
    """A request refused: the HTTP status, TaxCore's ``Message`` and its ``MessageDetails``."""

    def __init__(self, status: int, message: str, details: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        return {"Message": self.message, "MessageDetails": self.details}


def detail(code: str, prop: str, message: str) -> dict[str, str]:
    return {"Code": code, "Property": prop, "Message": message}


# -- the request -----------------------------------------------------------------------------


@dataclass
class Item:
    name: str
    quantity: Decimal
    unit_price: Decimal
    total: Decimal
    labels: list[str]
    discount: Decimal = Decimal(0)
    gtin: str | None = None


@dataclass
class InvoiceRequest:
    invoice_type: int
    transaction_type: int
    items: list[Item]
    payments: list[tuple[int, Decimal]]
    total: Decimal
    issued: datetime | None = None
    cashier: str | None = None
    buyer_id: str | None = None
    buyer_cost_center_id: str | None = None
    invoice_number: str | None = None
    referent_number: str | None = None
    referent_time: datetime | None = None
    omit_qr: bool = False
    omit_journal: bool = False
    raw: dict[str, Any] = field(default_factory=dict)


class _Reader:
    """Reads properties case-insensitively, collecting every problem."""

    def __init__(self) -> None:
        self.problems: list[dict[str, str]] = []

    def fields(self, value: Any, path: str, known: tuple[str, ...]) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.problems.append(detail("2806", path or "request", "must be a JSON object"))
            return None
        by_lower = {k.lower(): k for k in known}
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = by_lower.get(str(key).lower())
            where = f"{path}.{key}" if path else str(key)
            if name is None:
                self.problems.append(
                    detail("2805", where, f"{key} is not a property of this request")
                )
            elif name in out:
                self.problems.append(detail("2805", where, f"{name} is given twice"))
            else:
                out[name] = item
        return out

    def integer(
        self, data: dict[str, Any], name: str, path: str, allowed: Mapping[int, str]
    ) -> int | None:
        where = f"{path}{name}"
        value = data.get(name)
        if value is None:
            self.problems.append(detail("2800", where, f"{name} is required"))
        elif isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
            choices = ", ".join(f"{k} {v}" for k, v in allowed.items())
            self.problems.append(detail("2805", where, f"{name} must be one of {choices}"))
        else:
            return value
        return None

    def amount(
        self,
        data: dict[str, Any],
        name: str,
        path: str,
        *,
        required: bool = True,
        positive: bool = False,
    ) -> Decimal | None:
        where = f"{path}{name}"
        value = data.get(name)
        if value is None:
            if required:
                self.problems.append(detail("2800", where, f"{name} is required"))
            return None
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            self.problems.append(detail("2806", where, f"{name} must be a number"))
            return None
        number = Decimal(value)
        if not number.is_finite() or number.as_tuple().exponent < -4:  # type: ignore[operator]
            self.problems.append(detail("2806", where, f"{name} has more than 4 decimal places"))
            return None
        if number < 0 or (positive and number == 0):
            bound = "above zero" if positive else "zero or more"
            self.problems.append(detail("2804", where, f"{name} must be {bound}"))
            return None
        return number

    def text(
        self, data: dict[str, Any], name: str, path: str, *, required: bool = False
    ) -> str | None:
        where = f"{path}{name}"
        value = data.get(name)
        if value is None or value == "":
            if required:
                self.problems.append(detail("2800", where, f"{name} is required"))
            return None
        if not isinstance(value, str):
            self.problems.append(detail("2806", where, f"{name} must be a string"))
            return None
        limit = LENGTHS.get(name)
        if limit is not None and len(value) > limit:
            self.problems.append(detail("2801", where, f"{name} is longer than {limit} characters"))
            return None
        return value

    def time(self, data: dict[str, Any], name: str) -> datetime | None:
        value = self.text(data, name, "")
        if value is None:
            return None
        moment = parse_time(value)
        if moment is None:
            self.problems.append(detail("2806", name, f"{name} is not an ISO 8601 date and time"))
        return moment


Lookup = Callable[[str], "tuple[int, datetime] | None"]  # SDC number -> (transaction type, time)


def parse_request(body: bytes, rates: TaxRates, lookup: Lookup) -> InvoiceRequest:
    """The request, checked; raises :class:`RequestError` (400) listing every problem."""
    try:
        raw = json.loads(body, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(
            400, "The request is invalid.", [detail("2806", "request", f"not JSON: {exc}")]
        ) from exc
    read = _Reader()
    data = read.fields(raw, "", TOP)
    if data is None:
        raise RequestError(400, "The request is invalid.", read.problems)
    invoice_type = read.integer(data, "InvoiceType", "", INVOICE_TYPES)
    transaction_type = read.integer(data, "TransactionType", "", TRANSACTION_TYPES)
    items = _items(read, data.get("Items"), rates)
    payments = _payments(read, data.get("Payment"))
    texts = {name: read.text(data, name, "") for name in LENGTHS if name != "Name"}
    issued = read.time(data, "DateAndTimeOfIssue")
    referent_time = read.time(data, "ReferentDocumentDT")
    options = _options(read, data.get("Options"))
    total = sum((item.total for item in items or []), Decimal(0))
    if items is not None and payments is not None:
        paid = sum((amount for _type, amount in payments), Decimal(0))
        if paid != total:
            read.problems.append(
                detail(
                    "2805", "Payment", f"payments add up to {paid:.4f}, the items to {total:.4f}"
                )
            )
    referent = texts["ReferentDocumentNumber"]
    needs_referent = transaction_type == REFUND or invoice_type == COPY
    if needs_referent or referent is not None or referent_time is not None:
        _referent(read, referent, referent_time, lookup, needs_referent, transaction_type == REFUND)
    if (
        read.problems
        or invoice_type is None
        or transaction_type is None
        or items is None
        or payments is None
    ):
        raise RequestError(400, "The request is invalid.", read.problems)
    return InvoiceRequest(
        invoice_type,
        transaction_type,
        items,
        payments,
        total,
        issued=issued,
        cashier=texts["Cashier"],
        buyer_id=texts["BuyerId"],
        buyer_cost_center_id=texts["BuyerCostCenterId"],
        invoice_number=texts["InvoiceNumber"],
        referent_number=referent,
        referent_time=referent_time,
        omit_qr=options[0],
        omit_journal=options[1],
        raw=raw,
    )


def _items(read: _Reader, value: Any, rates: TaxRates) -> list[Item] | None:
    if value is None:
        read.problems.append(detail("2800", "Items", "Items is required"))
        return None
    if not isinstance(value, list) or not value:
        read.problems.append(detail("2807", "Items", "Items must list at least one item"))
        return None
    known = rates.labels
    items: list[Item] = []
    for n, entry in enumerate(value):
        path = f"Items[{n}]."
        data = read.fields(entry, path.rstrip("."), ITEM)
        if data is None:
            continue
        before = len(read.problems)
        name = read.text(data, "Name", path, required=True)
        quantity = read.amount(data, "Quantity", path, positive=True)
        price = read.amount(data, "UnitPrice", path)
        total = read.amount(data, "TotalAmount", path)
        discount = read.amount(data, "Discount", path, required=False) or Decimal(0)
        gtin = read.text(data, "GTIN", path)
        if gtin is not None and not (gtin.isdigit() and 8 <= len(gtin) <= 14):
            read.problems.append(detail("2806", f"{path}GTIN", "GTIN must be 8 to 14 digits"))
        labels = data.get("Labels")
        if labels is None:
            read.problems.append(detail("2800", f"{path}Labels", "Labels is required"))
        elif not isinstance(labels, list) or not labels:
            read.problems.append(
                detail("2807", f"{path}Labels", "Labels must list at least one tax label")
            )
        else:
            for label in labels:
                if not isinstance(label, str) or label not in known:
                    read.problems.append(
                        detail(
                            "2310",
                            f"{path}Labels",
                            f"tax label {label!r} is not in the current tax rates "
                            f"(group {rates.group_id}: {', '.join(sorted(known))})",
                        )
                    )
            if len(set(map(str, labels))) != len(labels):
                read.problems.append(detail("2805", f"{path}Labels", "a tax label is given twice"))
        if quantity is not None and price is not None and total is not None:
            expected = quantity * price - discount
            if abs(expected - total) > CENT:
                read.problems.append(
                    detail(
                        "2805",
                        f"{path}TotalAmount",
                        f"TotalAmount {total:.4f} is not Quantity * UnitPrice - Discount "
                        f"({expected.quantize(PLACES):.4f})",
                    )
                )
        if (
            len(read.problems) == before
            and name
            and quantity
            and price is not None
            and total is not None
        ):
            items.append(Item(name, quantity, price, total, list(labels or []), discount, gtin))
    return items if len(items) == len(value) else None  # totals only of a valid list


def _payments(read: _Reader, value: Any) -> list[tuple[int, Decimal]] | None:
    if value is None:
        read.problems.append(detail("2800", "Payment", "Payment is required"))
        return None
    if not isinstance(value, list) or not value:
        read.problems.append(detail("2807", "Payment", "Payment must list at least one payment"))
        return None
    payments: list[tuple[int, Decimal]] = []
    for n, entry in enumerate(value):
        path = f"Payment[{n}]."
        data = read.fields(entry, path.rstrip("."), PAYMENT)
        if data is None:
            continue
        kind = read.integer(data, "PaymentType", path, PAYMENT_TYPES)
        amount = read.amount(data, "Amount", path)
        if kind is not None and amount is not None:
            payments.append((kind, amount))
    return payments


def _options(read: _Reader, value: Any) -> tuple[bool, bool]:
    if value is None:
        return False, False
    data = read.fields(value, "Options", OPTIONS) or {}
    flags = []
    for name in OPTIONS:
        flag = data.get(name, 0)
        if flag not in (0, 1, "0", "1") or isinstance(flag, bool):
            read.problems.append(detail("2805", f"Options.{name}", f"{name} must be 0 or 1"))
        flags.append(str(flag) == "1")
    return flags[0], flags[1]


def _referent(
    read: _Reader,
    number: str | None,
    moment: datetime | None,
    lookup: Lookup,
    required: bool,
    refund: bool,
) -> None:
    why = "a refund" if refund else "a copy"
    if number is None:
        if required:
            read.problems.append(
                detail("2800", "ReferentDocumentNumber", f"{why} names the original invoice")
            )
        return
    if moment is None:
        if required or number:
            read.problems.append(
                detail(
                    "2800",
                    "ReferentDocumentDT",
                    "ReferentDocumentDT (the original's sdcDateTime) is required",
                )
            )
        return
    found = lookup(number)
    if found is None:
        read.problems.append(
            detail(
                "2805",
                "ReferentDocumentNumber",
                f"{number} is not an invoice this SDC signed for you",
            )
        )
        return
    kind, signed = found
    if signed.replace(microsecond=0) != moment.replace(microsecond=0):
        read.problems.append(
            detail(
                "2805",
                "ReferentDocumentDT",
                f"{number} was signed at {stamp(signed)}, not {stamp(moment)}",
            )
        )
    if refund and kind == REFUND:
        read.problems.append(
            detail("2805", "ReferentDocumentNumber", f"{number} is a refund, not a sale")
        )
