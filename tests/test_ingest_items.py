"""Pushed invoices with their lines, the buyer's tax id and payments: kept, answered, and
refused in words when they do not add up."""

from __future__ import annotations

from typing import Any

from openapi_core import OpenAPI

from intdash.core.invoices import items_from_json
from intdash.core.workspace import Workspace
from intdash.providers.http import httpx
from tests.test_ingest import (
    LiveServer,
    bearer,
    client,
    conforms,
    custom,
    invoice,
    server,
    spec,
)

__all__ = ["client", "server", "spec"]  # fixtures

LINES: list[dict[str, Any]] = [
    {"name": "Consulting", "quantity": "2", "unit_price": "30.00", "total": "60.00",
     "tax_code": "GST", "tax_rate": "15", "tax_amount": "9.00"},
    {"name": "Travel", "quantity": 1, "unit_price": 40, "total": "40.00", "discount": "0",
     "tax_code": "GST", "item_code": "TRV"},
]  # fmt: skip


def test_an_invoice_with_lines_buyer_and_payments(
    server: tuple[Workspace, LiveServer], client: httpx.Client, spec: OpenAPI
) -> None:
    ws, live = server
    _uid, key = custom(ws)
    pushed = invoice(
        1, items=LINES, buyer_tax_id="50-123-456", payments=[{"amount": "115.00", "method": "Cash"}]
    )
    answer = client.post(f"{live.url}/v1/invoices", json=pushed, headers=bearer(key))
    assert answer.status_code == 201, answer.text
    conforms(spec, "POST", "/v1/invoices", answer)
    body = answer.json()
    assert [i["name"] for i in body["items"]] == ["Consulting", "Travel"]
    assert body["items"][1]["unit_price"] == "40" and body["items"][0]["tax_code"] == "GST"
    assert body["buyer_tax_id"] == "50-123-456"
    assert body["payments"] == [{"amount": "115.00", "method": "Cash"}]
    read = client.get(f"{live.url}/v1/invoices/ERP-1", headers=bearer(key))
    conforms(spec, "GET", "/v1/invoices/ERP-1", read)
    assert read.json()["items"] == body["items"]
    [row] = ws.invoices.page()
    with ws.db.read() as session:
        from intdash.core.models import Invoice

        stored = session.get(Invoice, row.id)
    assert stored is not None and len(items_from_json(stored.items)) == 2
    # without lines: none kept (fiscalized as one item of its total)
    plain = client.post(f"{live.url}/v1/invoices", json=invoice(2), headers=bearer(key))
    assert plain.status_code == 201 and plain.json()["items"] == []


def test_lines_that_do_not_add_up_or_are_wrong_are_refused_in_words(
    server: tuple[Workspace, LiveServer], client: httpx.Client, spec: OpenAPI
) -> None:
    ws, live = server
    _uid, key = custom(ws)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"items": [{**LINES[0], "total": "61.00"}, LINES[1]]}, "add up to 101.00"),
        ({"items": [{**LINES[0], "colour": "red"}]}, "colour"),
        ({"items": [{"name": "Consulting", "quantity": "1", "total": "100.00"}]}, "unit_price"),
        ({"items": [{**LINES[0], "tax_inclusive": True}, LINES[1]]}, "include tax or none"),
        ({"items": [{**LINES[0], "tax_inclusive": "yes"}]}, "tax_inclusive"),
        ({"payments": [{"amount": "200.00"}]}, "more than the total"),
        ({"buyer_tax_id": "x" * 101}, "buyer_tax_id"),
    ]
    for n, (extra, words) in enumerate(cases, 10):
        answer = client.post(
            f"{live.url}/v1/invoices", json=invoice(n, **extra), headers=bearer(key)
        )
        assert answer.status_code == 422, (extra, answer.text)
        assert words in answer.text, (words, answer.text)
        conforms(spec, "POST", "/v1/invoices", answer)
    assert ws.invoices.page() == []  # nothing stored
