"""Fixtures for tests that fiscalize through the V-SDC emulator over real mutual TLS.

``vsdc_emulator`` is a started :class:`~intdash.sandbox.vsdc_server.VsdcServer` on a free port
of 127.0.0.1, with a taxpayer of its own: ``.url``, ``.ca_path``, ``.pfx`` (bytes), ``.pfx_path``,
``.password``, ``.pac``, ``.settings()`` (``INTDASH_FISCAL__VSDC_URL`` and
``INTDASH_FISCAL__VSDC_CA``), ``.verify_url`` (the verification pages: HTTPS without a client
certificate), ``.faults`` (down, hold/release, sign_then_hold, reject),
``.refuse()``/``.accept()`` (nothing listening, then listening again) and ``.emulator`` (what was
signed: ``.signed``, ``.find(request_id)``, ``.count()``, ``.set_rates({...})``,
``.verify(response)``). One CA serves the whole session (``vsdc_pki``); the emulator's state is
in memory (``VsdcServer(directory=...)`` keeps it in that folder, to test a restart).

Import both where used: ``from tests.vsdc import vsdc_emulator, vsdc_pki``.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from intdash.providers.http import httpx
from intdash.sandbox.vsdc_pki import Taxpayer, VsdcPki
from intdash.sandbox.vsdc_server import VsdcServer


@pytest.fixture(scope="session")
def vsdc_pki(tmp_path_factory: pytest.TempPathFactory) -> VsdcPki:
    return VsdcPki(tmp_path_factory.mktemp("vsdc"))


@pytest.fixture
def vsdc_emulator(vsdc_pki: VsdcPki) -> Iterator[VsdcServer]:
    server = VsdcServer(pki=vsdc_pki).start()
    yield server
    server.stop()


def vsdc_client(
    server: VsdcServer, taxpayer: Taxpayer | None = None, *, timeout: float = 10.0
) -> httpx.Client:
    """A client presenting ``taxpayer``'s certificate (the server's own taxpayer by default)."""
    return httpx.Client(base_url=server.url, verify=server.ssl_context(taxpayer), timeout=timeout)


def sale(*lines: tuple[str, str, str], payment_type: int = 4) -> dict[str, Any]:
    """A normal sale of ``(name, amount, label)`` lines of quantity 1, paid in full."""
    lines = lines or (("Consulting", "115.00", "A"),)
    total = sum((Decimal(amount) for _name, amount, _label in lines), Decimal(0))
    return {
        "DateAndTimeOfIssue": "2026-11-30T10:15:00",
        "Cashier": "Operator",
        "InvoiceType": 0,
        "TransactionType": 0,
        "InvoiceNumber": "INV-0001",
        "Payment": [{"Amount": float(total), "PaymentType": payment_type}],
        "Items": [
            {
                "Name": name,
                "Quantity": 1,
                "Labels": [label],
                "UnitPrice": float(amount),
                "TotalAmount": float(amount),
            }
            for name, amount, label in lines
        ],
    }


def refund_of(original: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """``body`` as a refund naming the signed ``original`` response."""
    return {
        **body,
        "TransactionType": 1,
        "ReferentDocumentNumber": original["invoiceNumber"],
        "ReferentDocumentDT": original["sdcDateTime"],
    }
