"""What the V-SDC emulator writes on a signed invoice: the tax items, the journal (the receipt's
text, 40 columns as TaxCore prints it), the verification QR code, and the signature.

Prices include tax: an item of total ``T`` under labels with rates ``r1 … rn`` (percent) carries
``T * ri / (100 + r1 + … + rn)`` of each, summed by label and rounded to 4 decimal places.

The signature is Ed25519 over the response's canonical JSON (keys sorted, no spaces, UTF-8)
without its ``signature`` field, base64; :class:`Signer` checks one as well.
"""

from __future__ import annotations

import base64
import io
import json
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import segno
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from intdash.sandbox.vsdc_invoice import INVOICE_TYPES, PAYMENT_TYPES, TRANSACTION_TYPES, Item
from intdash.sandbox.vsdc_rates import TaxRates

PLACES = Decimal("0.0001")
WIDTH = 40


def tax_items(items: list[Item], rates: TaxRates) -> list[dict[str, Any]]:
    labels = rates.labels
    amounts: dict[str, Decimal] = {}
    for item in items:
        total_rate = sum((labels[label][1] for label in item.labels), Decimal(0))
        for label in item.labels:
            rate = labels[label][1]
            share = item.total * rate / (Decimal(100) + total_rate)
            amounts[label] = amounts.get(label, Decimal(0)) + share
    return [
        {
            "label": label,
            "categoryName": labels[label][0].name,
            "categoryType": labels[label][0].category_type,
            "rate": float(labels[label][1]),
            "amount": float(amount.quantize(PLACES, ROUND_HALF_UP)),
        }
        for label, amount in sorted(amounts.items())
    ]


def money(value: Decimal | float) -> str:
    return f"{Decimal(str(value)).quantize(Decimal('0.01'), ROUND_HALF_UP):,.2f}"


def _pair(left: str, right: str) -> str:
    space = max(1, WIDTH - len(left) - len(right))
    return f"{left}{' ' * space}{right}"


def journal(
    response: dict[str, Any],
    *,
    items: list[Item],
    payments: list[tuple[int, Decimal]],
    invoice_type: int,
    transaction_type: int,
    cashier: str | None,
    buyer_id: str | None,
    referent: str | None,
) -> str:
    """The receipt as TaxCore's journal lays it out."""
    kind = f"{INVOICE_TYPES[invoice_type]} {TRANSACTION_TYPES[transaction_type]}".upper()
    lines = [
        " FISCAL INVOICE ".center(WIDTH, "="),
        _pair("TIN:", str(response["tin"])),
        _pair("Company:", str(response["businessName"])),
        _pair("Store:", str(response["locationName"])),
        _pair("Address:", str(response["address"])),
        _pair("District:", str(response["district"])),
    ]
    if cashier:
        lines.append(_pair("Cashier:", cashier))
    if buyer_id:
        lines.append(_pair("Buyer ID:", buyer_id))
    if referent:
        lines.append(_pair("Ref. No.:", referent))
    lines += [kind.center(WIDTH, "-"), "Items".center(WIDTH, "="), "Name  Price  Qty.  Total"]
    for item in items:
        lines.append(f"{item.name} ({', '.join(item.labels)})")
        lines.append(
            f"{money(item.unit_price):>14} {item.quantity.normalize():>8} {money(item.total):>16}"
        )
    lines += ["-" * WIDTH, _pair("Total purchase:", money(response["totalAmount"]))]
    for kind_of_payment, amount in payments:
        lines.append(_pair(f"{PAYMENT_TYPES[kind_of_payment]}:", money(amount)))
    lines += ["=" * WIDTH, "Label  Name      Rate        Tax"]
    total_tax = Decimal(0)
    for tax in response["taxItems"]:
        amount = Decimal(str(tax["amount"]))
        total_tax += amount
        lines.append(
            f"{tax['label']:<6} {tax['categoryName']:<9} {tax['rate']:>5.2f}% {money(amount):>14}"
        )
    lines += [
        "-" * WIDTH,
        _pair("Total tax:", money(total_tax)),
        "=" * WIDTH,
        _pair("SDC time:", str(response["sdcDateTime"])[:19].replace("T", " ")),
        _pair("SDC invoice no:", str(response["invoiceNumber"])),
        _pair("Invoice counter:", str(response["invoiceCounter"])),
        "=" * WIDTH,
        " END OF FISCAL INVOICE ".center(WIDTH, "="),
    ]
    return "\n".join(lines) + "\n"


def qr_png(url: str) -> str:
    """A PNG of the QR code of ``url``, base64 (segno: error level M or better, border 4)."""
    buffer = io.BytesIO()
    segno.make(url, error="m", micro=False).save(buffer, kind="png", scale=4, border=4)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def canonical(response: dict[str, Any]) -> bytes:
    unsigned = {k: v for k, v in response.items() if k != "signature"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class Signer:
    """The SDC's signing key."""

    def __init__(self, key: Ed25519PrivateKey | None = None) -> None:
        self.key = key or Ed25519PrivateKey.generate()

    @property
    def public_key(self) -> str:
        raw = self.key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return base64.b64encode(raw).decode("ascii")

    def sign(self, response: dict[str, Any]) -> str:
        return base64.b64encode(self.key.sign(canonical(response))).decode("ascii")

    def verify(self, response: dict[str, Any]) -> bool:
        try:
            signature = base64.b64decode(str(response.get("signature", "")), validate=True)
            self.key.public_key().verify(signature, canonical(response))
        except (InvalidSignature, ValueError):
            return False
        return True
