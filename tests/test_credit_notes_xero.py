"""Xero's credit notes: the emulator's ``/CreditNotes`` answers as Xero does and as strictly as its
``/Invoices`` (paging, order, If-Modified-Since, refusals, limits), its credit notes change as
Xero lets them; the connector reads them after the invoices, over real OAuth and HTTP on
loopback, a sales credit note as a credit note naming the invoice it was allocated to first, a
purchase one as a purchase, without losing one to an edit between pages or counting one twice."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from intdash.providers.http import httpx
from intdash.sandbox.common import RateWindow
from intdash.sandbox.oauth import DEFAULT_REDIRECT_URI, s256
from intdash.sandbox.server import Sandbox
from intdash.sandbox.xero import TENANT_ID, XeroEmulator
from intdash.sandbox.xero_credit_book import CreditNoteBook, Refused
from intdash.sandbox.xero_invoices import xero_status

SIZE = 300
SCOPE = "offline_access accounting.invoices.read accounting.settings.read"
SPECS = Path(__file__).resolve().parents[2] / "shared" / "specs" / "xero"


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """The sandbox, its Xero organisation with credit notes of every kind (the fixture of the
    same name in tests/providers.py has none: what the workspace fixtures use)."""
    box = Sandbox(size=SIZE, xero=XeroEmulator(size=SIZE, credit_notes=True)).start()
    yield box
    box.stop()


def _token(box: Sandbox, scope: str = SCOPE) -> str:
    """An access token, by the browser's consent and the code exchange (with PKCE)."""
    policy = box.xero.oauth.policy
    verifier = secrets.token_urlsafe(48)
    consent = httpx.get(
        f"{box.url}/xero/identity/connect/authorize",
        params={"client_id": policy.client_id, "redirect_uri": DEFAULT_REDIRECT_URI,
                "response_type": "code", "scope": scope, "state": "s",
                "code_challenge": s256(verifier), "code_challenge_method": "S256"},
    )  # fmt: skip
    assert consent.status_code == 302, consent.text
    code = parse_qs(urlsplit(consent.headers["location"]).query)["code"][0]
    answer = httpx.post(
        f"{box.url}/xero/identity/connect/token",
        data={"grant_type": "authorization_code", "code": code,
              "redirect_uri": DEFAULT_REDIRECT_URI, "code_verifier": verifier},
        auth=(policy.client_id, policy.client_secret),
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


def _get(
    box: Sandbox,
    token: str,
    path: str = "CreditNotes",
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    **more: str,
) -> httpx.Response:
    sent = {"Authorization": f"Bearer {token}", "xero-tenant-id": TENANT_ID,
            "Accept": "application/json", **(headers or {})}  # fmt: skip
    query = {**(params or {}), **more}
    return httpx.get(f"{box.url}/xero/api/api.xro/2.0/{path}", params=query, headers=sent)


def _notes(answer: httpx.Response) -> list[dict[str, Any]]:
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["CreditNotes"]
    return found


def _numbers(answer: httpx.Response) -> list[str]:
    return [n["CreditNoteNumber"] for n in _notes(answer)]


def _open_sales_invoice(box: Sandbox, after: int = 0) -> int:
    """A sales invoice with something due (AUTHORISED), and no credit note allocated to it."""
    credited = {a.invoice_id for n in box.xero.credit_notes.notes for a in n.allocations}
    data = box.xero.dataset
    return next(
        i
        for i in range(after, data.size)
        if data.invoice(i).sales
        and xero_status(data.invoice(i)) == "AUTHORISED"
        and data.invoice(i).id not in credited
    )


# -- the emulator ------------------------------------------------------------------------------


def test_the_examples_are_of_every_kind(sandbox: Sandbox) -> None:
    notes = {n.number: n for n in sandbox.xero.credit_notes.notes}
    kinds = [(n.type, n.status, len(n.allocations), n.remaining > 0) for n in notes.values()]
    assert kinds == [
        ("ACCRECCREDIT", "PAID", 1, False),  # a whole invoice, allocated to it
        ("ACCRECCREDIT", "AUTHORISED", 1, True),  # allocated in part
        ("ACCRECCREDIT", "PAID", 2, False),  # allocated to two invoices
        ("ACCRECCREDIT", "AUTHORISED", 0, True),  # not allocated
        ("ACCRECCREDIT", "DRAFT", 0, True),
        ("ACCRECCREDIT", "SUBMITTED", 0, True),
        ("ACCRECCREDIT", "VOIDED", 0, False),
        ("ACCPAYCREDIT", "PAID", 1, False),  # from a supplier, allocated to a bill
    ]
    later, earlier = notes["CN-0003"].allocations  # listed first, dated later
    assert later.date > earlier.date
    assert XeroEmulator(size=SIZE).credit_notes.notes == []  # none unless asked for


def test_the_credit_notes_listing_is_xeros_shape(sandbox: Sandbox) -> None:
    token = _token(sandbox)
    page = _get(sandbox, token, page="1")
    body = page.json()
    assert body["pagination"] == {"page": 1, "pageSize": 100, "pageCount": 1, "itemCount": 8}
    allocated = body["CreditNotes"][0]
    source = sandbox.xero.dataset.invoice(sandbox.xero.dataset.index_of(
        allocated["Allocations"][0]["Invoice"]["InvoiceID"]) or 0)  # fmt: skip
    assert allocated["Allocations"][0]["Invoice"]["InvoiceNumber"] == source.number
    assert allocated["Contact"]["ContactID"] == source.contact_id
    assert allocated["Total"] == float(source.total) and allocated["RemainingCredit"] == 0
    assert allocated["LineItems"] and allocated["Date"].startswith("/Date(")
    assert "LineItems" not in _notes(_get(sandbox, token))[0]  # not paged: no lines
    [one] = _notes(_get(sandbox, token, f"CreditNotes/{allocated['CreditNoteID']}"))
    assert one["CreditNoteNumber"] == "CN-0001" and one["LineItems"]
    assert _numbers(_get(sandbox, token, "CreditNotes/cn-0002")) == ["CN-0002"]
    assert _get(sandbox, token, "CreditNotes/CN-9999").status_code == 404
    if SPECS.exists():
        spec = OpenAPI.from_dict(
            yaml.load((SPECS / "xero_accounting.yaml").read_text(), Loader=yaml.CSafeLoader),
            config=Config(spec_validator_cls=None),
        )
        for path, answer in (("/api.xro/2.0/CreditNotes", page),):
            request = MockRequest("https://api.xero.com", "GET", path, args={"page": "1"})
            spec.validate_response(request, MockResponse(answer.content, status_code=200))


def test_credit_notes_are_listed_as_strictly_as_invoices(sandbox: Sandbox) -> None:
    token = _token(sandbox)
    by_time = [n.number for n in sorted(sandbox.xero.credit_notes.notes, key=lambda n: n.updated)]
    raised = [n.number for n in sandbox.xero.credit_notes.notes]
    assert by_time != raised
    ordered = "UpdatedDateUTC ASC"
    pages = [_get(sandbox, token, page=str(p), pageSize="3", order=ordered) for p in (1, 2, 3, 4)]
    assert [len(_notes(p)) for p in pages] == [3, 3, 2, 0]
    assert pages[0].json()["pagination"] == {
        "page": 1, "pageSize": 3, "pageCount": 3, "itemCount": 8,
    }  # fmt: skip
    assert [n for p in pages for n in _numbers(p)] == by_time
    assert _numbers(_get(sandbox, token, page="1")) == raised  # no order asked: as raised
    descending = _numbers(_get(sandbox, token, order="UpdatedDateUTC DESC"))
    assert descending == by_time[::-1]
    big = _get(sandbox, token, page="1", pageSize="5000").json()["pagination"]
    assert big["pageSize"] == 1000  # as /Invoices takes it
    assert _numbers(_get(sandbox, token, where='Status=="DRAFT"')) == ["CN-0005"]
    purchase = _get(sandbox, token, where='Type=="ACCPAYCREDIT" AND RemainingCredit==0')
    assert _numbers(purchase) == ["SC-00008"]
    # If-Modified-Since: what changed after it (to the second), in the order asked for
    sandbox.xero.credit_notes.edit("CN-0005")
    since = {"If-Modified-Since": "2026-01-01T00:00:00"}
    assert _numbers(_get(sandbox, token, headers=since, order=ordered)) == ["CN-0005"]
    for params, kind in (
        ({"where": 'InvoiceNumber=="INV-0000001"'}, "QueryParseException"),
        ({"where": 'CreditNoteID=="CN-0001"'}, "QueryParseException"),
        ({"order": "DueDate ASC"}, "QueryParseException"),
        ({"page": "one"}, "ValidationException"),
        ({"pageSize": "many"}, "ValidationException"),
    ):
        refused = _get(sandbox, token, params=params)
        assert refused.status_code == 400, params
        assert refused.json()["Type"] == kind, params
    named = _get(sandbox, token, where='InvoiceNumber=="X"').json()["Message"]
    assert named == "No property or field 'InvoiceNumber' exists in type 'CreditNote'"
    xml = _get(sandbox, token, headers={"Accept": "text/xml"})
    assert xml.headers["content-type"].startswith("text/xml")


def test_credit_notes_are_refused_and_limited_as_invoices_are(sandbox: Sandbox) -> None:
    token = _token(sandbox)
    assert _get(sandbox, "not-a-token").status_code == 401
    assert (
        _get(sandbox, token, headers={"xero-tenant-id": "0" * 8 + TENANT_ID[8:]}).status_code == 403
    )
    settings_only = _token(sandbox, "offline_access accounting.settings.read")
    forbidden = _get(sandbox, settings_only)
    assert forbidden.status_code == 403 and forbidden.json()["Detail"] == (
        "AuthorizationUnsuccessful"
    )
    calls = sandbox.xero.api_calls
    sandbox.xero.minute = RateWindow(2, 60)
    first, second, third = (_get(sandbox, token, page="1") for _ in range(3))
    assert [first.status_code, second.status_code, third.status_code] == [200, 200, 429]
    assert (first.headers["X-MinLimit-Remaining"], second.headers["X-MinLimit-Remaining"]) == (
        "1",
        "0",
    )
    assert third.headers["X-Rate-Limit-Problem"] == "minute" and "Retry-After" in third.headers
    assert sandbox.xero.api_calls == calls + 3 and sandbox.xero.rate_limited == 1
    sandbox.xero.minute = RateWindow(60, 60)
    sandbox.xero.busy_429 = 1
    busy = _get(sandbox, token, page="1")
    assert busy.status_code == 429 and "Retry-After" not in busy.headers


def test_credit_notes_change_as_xero_lets_them(sandbox: Sandbox) -> None:
    token = _token(sandbox)
    book: CreditNoteBook = sandbox.xero.credit_notes
    data = sandbox.xero.dataset
    target = _open_sales_invoice(sandbox)
    invoice = data.invoice(target)
    note = book.create(invoice=target, status="DRAFT")
    assert (note.number, note.contact_id, note.currency) == (
        "CN-0009",
        invoice.contact_id,
        invoice.currency,
    )
    assert note.lines == invoice.lines[:1] and note.total > 0

    def refused(change: Any, *args: Any, **kwargs: Any) -> str:
        with pytest.raises(Refused) as caught:
            change(*args, **kwargs)
        return str(caught.value)

    assert "only an AUTHORISED note" in refused(book.allocate, note, target)
    note = book.edit(note, status="AUTHORISED")
    bill = next(i for i in range(data.size) if not data.invoice(i).sales)
    assert "another side" in refused(book.allocate, note, bill)
    other = next(
        i
        for i in range(data.size)
        if data.invoice(i).sales
        and xero_status(data.invoice(i)) == "AUTHORISED"
        and data.invoice(i).contact_id != invoice.contact_id
    )
    assert "another side, contact" in refused(book.allocate, note, other)
    assert "more than" in refused(book.allocate, note, target, note.total + 1)
    part = (note.total / 3).quantize(Decimal("0.01"))
    note = book.allocate(note, target, part)
    assert (note.status, note.remaining) == ("AUTHORISED", note.total - part)
    assert "remove its allocations" in refused(book.void, note)
    assert "more than" in refused(book.allocate, note, target, note.total)
    note = book.allocate(note, target)  # the rest
    assert (note.status, note.remaining) == ("PAID", Decimal(0))
    assert "cannot be edited" in refused(book.edit, note)
    draft = book.create(status="DRAFT")  # of its own lines, for a contact of the books
    assert draft.contact in {data.invoice(i).contact for i in range(data.size)}
    assert book.void(draft).status == "DELETED"
    unallocated = book.void(book.create(invoice=target))
    assert unallocated.status == "VOIDED" and unallocated.remaining == 0
    before = book.notes[3]
    edited = book.edit("CN-0004")
    assert (edited.number, edited.revision) == ("CN-0004", 1) and edited.total > before.total
    # every change moved the note it changed to the end, by modification time
    changed = _numbers(_get(sandbox, token, order="UpdatedDateUTC ASC"))[-4:]
    assert changed == ["CN-0009", "CN-0010", "CN-0011", "CN-0004"]
    assert _notes(_get(sandbox, token, "CreditNotes/CN-0009"))[0]["Status"] == "PAID"
    stamps = [n.updated for n in book.notes[-3:]]
    assert stamps == sorted(stamps) and all(
        abs(s - datetime.now(UTC)) < timedelta(minutes=1) for s in stamps
    )
