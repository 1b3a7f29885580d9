"""Xero's credit notes: the emulator's ``/CreditNotes`` answers as Xero does and as strictly as its
``/Invoices`` (paging, order, If-Modified-Since, refusals, limits), its credit notes change as
Xero lets them; the connector reads them after the invoices, over real OAuth and HTTP on
loopback, a sales credit note as a credit note naming the invoice it was allocated to first, a
purchase one as a purchase, without losing one to an edit between pages or counting one twice."""

from __future__ import annotations

import json
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
from xero_python.accounting import AccountingApi  # type: ignore[import-untyped]
from xero_python.api_client import ApiClient, Configuration  # type: ignore[import-untyped]
from xero_python.api_client.oauth2 import OAuth2Token  # type: ignore[import-untyped]
from xero_python.exceptions import BadRequestException  # type: ignore[import-untyped]

from intdash.core.invoices import InvoiceData, InvoiceKind, SourceState
from intdash.core.models import RunOutcome
from intdash.core.workspace import Workspace
from intdash.providers import xero as connector
from intdash.providers.connect import ConnectService
from intdash.providers.errors import MalformedResponse
from intdash.providers.http import httpx
from intdash.providers.paging import cursor_time, split_streams
from intdash.providers.ratelimit import RateLimits
from intdash.sandbox.common import RateWindow
from intdash.sandbox.oauth import DEFAULT_REDIRECT_URI, s256
from intdash.sandbox.server import Sandbox
from intdash.sandbox.xero import TENANT_ID, XeroEmulator
from intdash.sandbox.xero_credit_book import CreditNoteBook, Refused
from intdash.sandbox.xero_credit_notes import CreditNote, render_credit_note
from intdash.sandbox.xero_invoices import render_invoice, xero_status
from intdash.sync.engine import SyncEngine
from tests.providers import connect, fetch, pws, redirect_uri, sandbox_env

__all__ = ["pws", "redirect_uri", "sandbox_env"]  # fixtures

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
    access: str = _token_set(box, scope)["access_token"]
    return access


def _token_set(box: Sandbox, scope: str = SCOPE) -> dict[str, Any]:
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
    token: dict[str, Any] = answer.json()
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


def test_xeros_own_sdk_reads_them(sandbox: Sandbox) -> None:
    """Xero's SDK (xero-python) parses the answers into its models: an answer shaped otherwise
    than Xero's (dates, amounts, enumerations, allocations) fails here."""
    token = _token_set(sandbox)
    token.update(scope=token["scope"].split(), expires_at=datetime.now(UTC).timestamp() + 1800)
    policy = sandbox.xero.oauth.policy
    client = ApiClient(
        Configuration(oauth2_token=OAuth2Token(policy.client_id, policy.client_secret)),
        pool_threads=1,
        oauth2_token_getter=lambda: token,
        oauth2_token_saver=token.update,
    )
    accounting = AccountingApi(client, base_url=f"{sandbox.url}/xero/api/api.xro/2.0")
    first = accounting.get_credit_notes(TENANT_ID, page=1, page_size=5, order="UpdatedDateUTC ASC")
    assert (first.pagination.item_count, len(first.credit_notes)) == (8, 5)
    notes = sandbox.xero.credit_notes.notes
    read = accounting.get_credit_notes(TENANT_ID, page=1).credit_notes
    for sdk, note in zip(read, notes, strict=True):
        assert (sdk.credit_note_id, sdk.credit_note_number) == (note.id, note.number)
        assert (sdk.type, sdk.status) == (note.type, note.status)
        assert (sdk.sub_total, sdk.total_tax, sdk.total) == (note.subtotal, note.tax, note.total)
        assert sdk.remaining_credit == note.remaining and isinstance(sdk.total, Decimal)
        assert (sdk.date, sdk.updated_date_utc) == (note.issue_date, note.updated)
        assert sdk.contact.contact_id == note.contact_id
        assert [(a.invoice.invoice_id, a.amount, a.date) for a in sdk.allocations] == [
            (a.invoice_id, a.amount, a.date) for a in note.allocations
        ]
        assert len(sdk.line_items) == len(note.lines)
    [one] = accounting.get_credit_note(TENANT_ID, notes[2].id).credit_notes
    assert one.credit_note_number == "CN-0003" and len(one.allocations) == 2
    with pytest.raises(BadRequestException) as refused:
        accounting.get_credit_notes(TENANT_ID, where='Colour=="RED"')
    assert refused.value.error_data["Type"] == "QueryParseException"


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


def test_credit_notes_change_as_xero_lets_them(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = _token(sandbox)
    events: list[dict[str, Any]] = []  # what the webhook is given to post
    monkeypatch.setattr(sandbox.xero.webhook, "url", "http://127.0.0.1:9/events")
    monkeypatch.setattr(sandbox.xero.webhook, "add", events.extend)
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
    # each change is a CREDITNOTE event naming the note
    assert [(e["eventCategory"], e["eventType"], e["resourceId"]) for e in events[:3]] == [
        ("CREDITNOTE", "CREATE", note.id), *[("CREDITNOTE", "UPDATE", note.id)] * 2,
    ]  # fmt: skip
    assert len(events) == 9 and events[-1]["resourceId"] == edited.id
    assert all(e["resourceUrl"].endswith(f"/CreditNotes/{e['resourceId']}") for e in events)


# -- the connector -----------------------------------------------------------------------------


def _wire(body: dict[str, Any]) -> Any:
    """A rendering as the connector reads it off the wire (numbers as Decimals)."""
    return json.loads(json.dumps(body), parse_float=Decimal)


def _key(doc: InvoiceData) -> tuple[Any, ...]:
    return (doc.source_updated_at, doc.total, doc.source_status, doc.credits)


def _as_read(note: CreditNote) -> tuple[Any, ...]:
    return _key(connector.parse_credit_note(_wire(render_credit_note(note))))


async def _connected(ws: Workspace) -> tuple[ConnectService, str]:
    ws.plans.set("scale")  # room for every invoice: nothing held
    uid = ws.integrations.create("xero").integration.uid
    return await connect(ws, uid), uid


def test_an_invoices_answer_holds_no_credit_notes() -> None:
    """``/Invoices`` lists invoices (ACCREC) and bills (ACCPAY); a credit note's Type there is
    an answer intdash does not understand, not a sale."""
    invoice = _wire(render_invoice(XeroEmulator(size=3).dataset.invoice(0)))
    assert connector.parse_invoice(invoice).kind in (InvoiceKind.SALES, InvoiceKind.PURCHASE)
    for credit in ("ACCRECCREDIT", "ACCPAYCREDIT"):
        with pytest.raises(MalformedResponse, match=f"unknown Type '{credit}'"):
            connector.parse_invoice({**invoice, "Type": credit})
    with pytest.raises(MalformedResponse, match="unknown Type 'ACCREC'"):
        connector.parse_credit_note({**invoice, "CreditNoteID": invoice["InvoiceID"]})


async def test_a_sync_reads_each_credit_note_as_what_it_is(
    pws: Workspace, sandbox: Sandbox
) -> None:
    service, uid = await _connected(pws)
    found, cursor = await fetch(service, uid)
    notes = {n.number: n for n in sandbox.xero.credit_notes.notes}
    assert len(found) == SIZE + len(notes)
    assert {i.external_id for i in found[SIZE:]} == {n.id for n in notes.values()}  # after
    read = {number: next(i for i in found if i.external_id == n.id) for number, n in notes.items()}
    invoices = {i.external_id: i for i in found[:SIZE]}
    whole = read["CN-0001"]  # a whole invoice, credited and allocated to it
    credited = notes["CN-0001"].allocations[0].invoice_id
    assert (whole.kind, whole.credits) == (InvoiceKind.CREDIT_NOTE, credited)
    original = invoices[credited]
    assert original.kind is InvoiceKind.SALES
    assert whole.items == original.items and whole.items  # lines read as an invoice's are
    assert (whole.subtotal, whole.tax, whole.total) == (
        original.subtotal,
        original.tax,
        original.total,
    )
    assert whole.total is not None and whole.total > 0 and whole.number == "CN-0001"
    assert whole.state is SourceState.APPROVED and whole.source_status == "PAID"
    part = read["CN-0002"]
    assert part.credits == notes["CN-0002"].allocations[0].invoice_id and part.credits in invoices
    assert part.items == invoices[part.credits].items[:1]
    # allocated to two invoices: it names the one of the earlier allocation, listed second
    later, earlier = notes["CN-0003"].allocations
    assert read["CN-0003"].credits == earlier.invoice_id != later.invoice_id
    unallocated = read["CN-0004"]
    assert (unallocated.kind, unallocated.credits, unallocated.state) == (
        InvoiceKind.CREDIT_NOTE, None, SourceState.APPROVED,
    )  # fmt: skip
    assert [read[n].state for n in ("CN-0005", "CN-0006", "CN-0007")] == [
        SourceState.PENDING, SourceState.PENDING, SourceState.VOID,
    ]  # fmt: skip
    purchase = read["SC-00008"]
    assert (purchase.kind, purchase.credits) == (InvoiceKind.PURCHASE, None)
    assert purchase.items == connector.parse_line_items(
        _wire(render_credit_note(notes["SC-00008"])), purchase.external_id
    )
    # allocated since: the next sync reads it again, naming the invoice now
    [target] = [
        i for i in range(sandbox.xero.dataset.size)
        if sandbox.xero.dataset.invoice(i).number == notes["CN-0004"].reference.split()[-1]
    ]  # fmt: skip
    sandbox.xero.credit_notes.allocate("CN-0004", target)
    again, _ = await fetch(service, uid, cursor)
    assert [(i.external_id, i.kind, i.credits) for i in again] == [
        (notes["CN-0004"].id, InvoiceKind.CREDIT_NOTE, sandbox.xero.dataset.invoice(target).id)
    ]


async def test_credit_notes_over_several_pages_edited_between_them_lose_none(
    pws: Workspace, sandbox: Sandbox
) -> None:
    """An integration whose cursor predates credit notes reads every one on its next sync,
    pages of three, while notes already read are edited and one not yet read is deleted between
    its pages (each moves to the end of the listing, and the others up a page: by page number,
    one would be skipped); the cursor stored with each page never passes a note not stored."""
    service, uid = await _connected(pws)
    _, both = await fetch(service, uid)
    cursor, _ = split_streams(both)  # as stored before credit notes were read
    book = sandbox.xero.credit_notes
    sandbox.xero.minute = RateWindow(10**9, 1.0)  # pages of three: no limit in the way here
    by_time = sorted(book.notes, key=lambda n: n.updated)
    stored: dict[str, InvoiceData] = {}
    unpaced = {"xero": RateLimits(per_window=10**9, window=1.0)}
    async with await ConnectService(pws, limits=unpaced).api(uid) as api:
        api.connector.settings = api.connector.settings.model_copy(update={"page_size": 3})
        for sync in (1, 2):
            pages = 0
            async for page in api.connector.pages(api, cursor, None):
                stored.update((i.external_id, i) for i in page.invoices)
                cursor = page.cursor
                at = cursor_time(split_streams(cursor)[1])
                for note in book.notes:  # none modified at or before the cursor left out
                    if at is not None and note.updated <= at:
                        assert note.id in stored, f"the cursor passed {note.number}, unread"
                        assert _key(stored[note.id]) == _as_read(note), note.number
                if split_streams(cursor)[1] is None:
                    continue  # the invoices' page
                pages += 1
                if sync == 1 and pages == 1:
                    book.edit(by_time[0])  # read already: both move to the end
                    book.edit(by_time[1])
                    book.void(by_time[4])  # not read yet (submitted: deleted)
            assert pages >= (3 if sync == 1 else 1)
    assert not set(stored) - {n.id for n in book.notes}  # nothing of the invoices' again
    assert {n.number: _key(stored[n.id]) for n in book.notes} == {
        n.number: _as_read(n) for n in book.notes
    }


async def test_a_quiet_sync_asks_once_for_each_and_counts_nothing_twice(
    pws: Workspace, sandbox: Sandbox
) -> None:
    _, uid = await _connected(pws)
    engine = SyncEngine(pws)
    first = await engine.run(uid)
    count = SIZE + len(sandbox.xero.credit_notes)
    assert (first.outcome, first.fetched, first.created, first.updated) == (
        RunOutcome.OK, count, count, 0,
    )  # fmt: skip
    month = pws.integrations.get(uid).invoices_this_month
    calls = sandbox.xero.api_calls
    quiet = await engine.run(uid)
    assert (quiet.outcome, quiet.fetched, quiet.created, quiet.updated) == (
        RunOutcome.OK, 0, 0, 0,
    )  # fmt: skip
    assert sandbox.xero.api_calls == calls + 2  # a page of invoices, a page of credit notes
    assert pws.integrations.get(uid).invoices_this_month == month
    sandbox.xero.credit_notes.edit("CN-0005")
    edited = await engine.run(uid)
    assert (edited.fetched, edited.created, edited.updated) == (1, 0, 1)
    assert sandbox.xero.api_calls == calls + 4


def test_small_organisations_get_their_example_credit_notes() -> None:
    """An organisation added with credit notes seeds its examples whatever its invoices: a note
    is never allocated to an invoice an earlier example credited in full (small organisations
    have few open invoices, and their picks overlapped)."""
    import uuid

    from intdash.sandbox.xero import XeroEmulator

    xero = XeroEmulator(size=20, credit_notes=True)
    seeded = 0
    for n in range(1, 101):  # (three of these raised, naming a note and an invoice with 0 due)
        added = xero.add_organisation(f"Org {n}", str(uuid.UUID(int=n)), size=20)
        assert all(note.remaining >= 0 for note in added.credit_notes.notes)
        seeded += len(added.credit_notes.notes)
    assert seeded > 100
