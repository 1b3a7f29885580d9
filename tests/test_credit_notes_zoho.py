"""Zoho Books' credit notes: the emulator's ``/creditnotes`` answers as Zoho does and as strictly
as its ``/invoices`` (paging, sort, ``last_modified_time``, ``per_page`` at most 200, limits,
auth), and its credit notes change as a company's do; the connector reads them after the
invoices, over real OAuth and HTTP on loopback, each approved one's tax and lines read from the
credit note itself within the same budget as the invoices', naming the invoice it was raised
from (or applied to), and never counts one twice."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
from sqlmodel import select

from intdash.core.invoices import InvoiceKind, SourceState, items_from_json
from intdash.core.models import Invoice, RunOutcome
from intdash.core.workspace import Workspace
from intdash.providers.http import httpx
from intdash.providers.paging import STREAMS_MARK, split_streams
from intdash.providers.zoho_credits import credit_state, parse_credit_note
from intdash.providers.zoho_tax import TaxState
from intdash.sandbox import zoho as emulator
from intdash.sandbox.common import RateWindow
from intdash.sandbox.server import Sandbox
from intdash.sandbox.zoho import ZohoEmulator
from intdash.sandbox.zoho_credits import CREDIT_ID_BASE, SourceCredit, render_credit_note
from intdash.sync.engine import SyncEngine
from tests.providers import connect, pws, redirect_uri, sandbox_env
from tests.test_zoho import UNPACED, Seconds, Service, _approved, _id, _token

__all__ = ["pws", "redirect_uri", "sandbox_env"]  # fixtures

SIZE = 150
NOTES = 12  # two of each shape the emulator makes


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """The emulators with a company of 150 invoices each, Zoho's with twelve credit notes."""
    box = Sandbox(size=SIZE, zoho=ZohoEmulator(size=SIZE, credit_notes=NOTES)).start()
    yield box
    box.stop()


def _stored(ws: Workspace) -> dict[str, Invoice]:
    with ws.db.read() as session:
        return {row.external_id: row for row in session.exec(select(Invoice))}


def _credited(box: Sandbox, note: SourceCredit) -> str | None:
    """The invoice a credit note credits: the one it was raised from, else the first it was
    applied to."""
    if note.invoice is not None:
        return _id(box.zoho.dataset.invoice(note.invoice))
    return _id(box.zoho.dataset.invoice(note.applied[0].invoice)) if note.applied else None


def _issued(note: SourceCredit) -> bool:
    return credit_state(note.status) is SourceState.APPROVED


async def _api(ws: Workspace) -> tuple[str, dict[str, str]]:
    """A connected integration's API base and auth header (its real token)."""
    uid = ws.integrations.create("zoho").integration.uid
    await connect(ws, uid)
    token = _token(ws, uid)
    return (
        f"{token.extra['api_domain']}/books/v3",
        {"Authorization": f"Zoho-oauthtoken {token.access_token}"},
    )


ORG = {"organization_id": emulator.ORGANIZATION_ID}
BY_CHANGE = {"sort_column": "last_modified_time", "sort_order": "A"}


# -- the emulator ------------------------------------------------------------------------------


async def test_the_emulator_lists_credit_notes_without_tax_and_reads_each_whole(
    pws: Workspace, sandbox: Sandbox
) -> None:
    base, auth = await _api(pws)
    notes = list(sandbox.zoho.credit_notes.iter_all())
    assert len(notes) == NOTES
    assert {n.status for n in notes} == {"draft", "open", "closed", "void"}
    async with httpx.AsyncClient(headers=auth) as client:
        listing = await client.get(f"{base}/creditnotes", params={**ORG, **BY_CHANGE})
        listed = listing.json()["creditnotes"]
        details = {
            n.id: (await client.get(f"{base}/creditnotes/{n.id}", params=ORG)).json()["creditnote"]
            for n in notes
        }
        credited = {
            n.id: (await client.get(f"{base}/creditnotes/{n.id}/invoices", params=ORG)).json()
            for n in notes
        }
        missing = await client.get(f"{base}/creditnotes/1", params=ORG)
        other_org = await client.get(f"{base}/creditnotes", params={"organization_id": "1"})
    fields = {"creditnote_id", "creditnote_number", "status", "date", "customer_id"}
    fields |= {"customer_name", "currency_code", "total", "balance", "reference_number"}
    assert all(set(one) == fields | {"created_time", "last_modified_time"} for one in listed)
    assert [one["creditnote_id"] for one in listed] == [n.id for n in notes]
    assert missing.status_code == 404 and other_org.status_code == 400
    for note in notes:
        detail = details[note.id]
        assert Decimal(str(detail["tax_total"])) == note.tax and note.tax > 0
        assert Decimal(str(detail["sub_total"])) + note.tax == note.total
        lines = detail["line_items"]
        assert sum(Decimal(str(line["item_total"])) for line in lines) == (
            note.total if note.inclusive else note.subtotal
        )
        assert {line["tax_id"] for line in lines} == {emulator.TAX_ID}
        if note.invoice is None:  # raised on its own: no invoice named there
            assert "invoice_id" not in detail
        else:
            invoice = sandbox.zoho.dataset.invoice(note.invoice)
            assert (detail["invoice_id"], detail["invoice_number"]) == (
                _id(invoice),
                invoice.number,
            )
            assert note.currency == invoice.currency and note.total <= invoice.total
        applied = [one["invoice_id"] for one in credited[note.id]["invoices_credited"]]
        assert applied == [_id(sandbox.zoho.dataset.invoice(a.invoice)) for a in note.applied]
        assert (note.status == "closed") == bool(applied)
        balance = Decimal(str(detail["balance"]))
        assert balance == (note.total if note.status in ("draft", "open") else 0)
    assert sandbox.zoho.calls_to["creditnote"] == NOTES + 1  # (the missing one)
    assert sandbox.zoho.calls_to["creditnote_invoices"] == NOTES


async def test_the_emulators_lists_refuse_more_than_200_a_page_and_sort_as_asked(
    pws: Workspace, sandbox: Sandbox
) -> None:
    sandbox.zoho.credit_notes.seed(400)
    base, auth = await _api(pws)
    async with httpx.AsyncClient(headers=auth) as client:

        async def get(path: str, **params: str) -> httpx.Response:
            return await client.get(f"{base}/{path}", params={**ORG, **params})

        too_many = [
            await get(path, per_page="201", **BY_CHANGE) for path in ("creditnotes", "invoices")
        ]
        bad = [
            await get("creditnotes", sort_column="colour"),
            await get("creditnotes", sort_column="date", sort_order="Z"),
            await get("creditnotes", per_page="0"),
            await get("creditnotes", last_modified_time="yesterday"),
        ]
        most = await get("creditnotes", per_page="200", **BY_CHANGE)
        default = await get("creditnotes")
        pages = [
            await get("creditnotes", per_page="150", page=str(n), **BY_CHANGE) for n in (1, 2, 3)
        ]
    for refused in too_many:
        assert refused.status_code == 400 and "per_page" in refused.json()["message"]
    assert [r.status_code for r in bad] == [400] * 4
    assert len(most.json()["creditnotes"]) == 200 and most.json()["page_context"]["has_more_page"]
    by_change = [n.id for n in sandbox.zoho.credit_notes.iter_all()]
    # Zoho's own order, unless asked: the newest created first (not the modification order)
    newest = sorted(sandbox.zoho.credit_notes.iter_all(), key=lambda n: (n.created, n.index))
    assert [one["creditnote_id"] for one in default.json()["creditnotes"]] == [
        n.id for n in reversed(newest)
    ][:200]
    assert default.json()["page_context"]["sort_order"] == "D"
    paged = [one["creditnote_id"] for p in pages for one in p.json()["creditnotes"]]
    assert paged == by_change
    assert [p.json()["page_context"]["has_more_page"] for p in pages] == [True, True, False]


async def test_credit_notes_are_counted_against_the_limits_and_need_the_token(
    pws: Workspace, sandbox: Sandbox
) -> None:
    base, auth = await _api(pws)
    clock = Seconds()
    sandbox.zoho.minute = RateWindow(3, 60.0, clock=clock)
    calls, limited = sandbox.zoho.api_calls, sandbox.zoho.rate_limited
    async with httpx.AsyncClient() as client:
        anonymous = await client.get(f"{base}/creditnotes", params=ORG)
        answers = [
            await client.get(f"{base}/creditnotes", params=ORG, headers=auth),
            await client.get(f"{base}/invoices", params=ORG, headers=auth),
            await client.get(f"{base}/creditnotes/{CREDIT_ID_BASE}", params=ORG, headers=auth),
            await client.get(f"{base}/creditnotes", params=ORG, headers=auth),
        ]
    assert anonymous.status_code == 401
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["X-Rate-Limit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert answers[-1].headers["Retry-After"] == "60"
    assert (sandbox.zoho.api_calls, sandbox.zoho.rate_limited) == (calls + 4, limited + 1)


def test_a_companys_credit_notes_change_as_zohos_do(sandbox: Sandbox) -> None:
    """The hook tests change credit notes by: each change is stamped now, moving the credit note
    to the end of the modification order."""
    notes = sandbox.zoho.credit_notes
    data = sandbox.zoho.dataset
    invoice = next(i for i in data.iter_all() if _approved(i))
    before = list(notes.iter_all())
    alone = next(n for n in before if n.invoice is None and n.status == "open")
    draft = next(n for n in before if n.status == "draft")
    made = notes.create(invoice.index, share=40)
    notes.apply(alone.index, invoice.index)
    notes.approve([draft.index])
    notes.edit([before[0].index])
    notes.void([before[6].index])
    notes.delete([before[4].index])
    order = [n.index for n in notes.iter_all()]
    assert order[-5:] == [made, alone.index, draft.index, before[0].index, before[6].index]
    assert before[4].index not in order and not notes.exists(before[4].index)
    new = notes.get(made)
    assert (new.invoice, new.status, new.currency) == (invoice.index, "open", invoice.currency)
    assert new.total <= invoice.lines[0].gross
    assert notes.get(alone.index).status == "closed" and notes.get(alone.index).balance == 0
    assert notes.get(alone.index).applied[0].invoice == invoice.index
    assert notes.get(draft.index).status == "open"
    assert notes.get(before[0].index).revision == 1
    assert render_credit_note(notes.get(before[6].index))["status"] == "void"
    assert notes.control("create", 3) == {"created": 3}
    assert notes.control("void", 2) == {"voided": 2}
    with pytest.raises(ValueError, match="no change"):
        notes.control("burn", 1)
    with pytest.raises(IndexError):
        notes.create(10**6)


# -- what the connector makes of them ----------------------------------------------------------


def test_a_credit_note_is_read_as_zoho_writes_it() -> None:
    listed = {
        "creditnote_id": "460000002000007",
        "creditnote_number": "CN-00008",
        "status": "open",
        "date": "2026-12-01",
        "customer_name": "Kowhai Cafe",
        "currency_code": "NZD",
        "total": Decimal("115.00"),
        "balance": Decimal("115.00"),
        "last_modified_time": "2026-12-01T10:00:00+0000",
    }
    bare = parse_credit_note(listed)
    assert (bare.kind, bare.state, bare.tax, bare.subtotal, bare.credits, bare.items) == (
        InvoiceKind.CREDIT_NOTE, SourceState.APPROVED, None, None, None, (),
    )  # fmt: skip
    line = {"name": "Refund", "quantity": 1, "rate": Decimal(100), "item_total": Decimal(100)}
    line |= {"tax_id": emulator.TAX_ID, "tax_percentage": 15}
    read = {"tax_total": Decimal("15.00"), "invoice_id": "460000000000042", "line_items": [line]}
    whole = parse_credit_note(listed | read)
    assert (whole.tax, whole.subtotal, whole.total) == (Decimal(15), Decimal(100), Decimal(115))
    assert whole.credits == "460000000000042" and whole.items[0].tax_code == emulator.TAX_ID
    states = {s: credit_state(s) for s in ("draft", "open", "closed", "void")}
    assert states == {
        "draft": SourceState.PENDING,
        "open": SourceState.APPROVED,
        "closed": SourceState.APPROVED,
        "void": SourceState.VOID,
    }


async def test_credit_notes_are_synced_after_the_invoices_naming_the_invoice_they_credit(
    pws: Workspace, sandbox: Sandbox
) -> None:
    pws.plans.set("scale")
    sandbox.zoho.minute = RateWindow(10**6, 60.0)  # the budget allows every read
    uid = pws.integrations.create("zoho").integration.uid
    service = Service(pws, limits=UNPACED)
    await connect(pws, uid, service)
    result = await SyncEngine(pws, service).run(uid)
    assert result.outcome is RunOutcome.OK, result.error
    assert (result.fetched, result.created) == (SIZE + NOTES, SIZE + NOTES)
    stored = _stored(pws)
    notes = list(sandbox.zoho.credit_notes.iter_all())
    for note in notes:
        row = stored[note.id]
        assert (row.kind, row.number, row.total) == ("credit note", note.number, note.total)
        if not _issued(note):  # a draft or a void: not fiscalized, its tax not needed
            assert row.tax is None and row.items is None, note.status
            continue
        assert (row.subtotal, row.tax) == (note.subtotal, note.tax)
        assert row.credits == _credited(sandbox, note), note.number
        assert row.items is not None
        items = items_from_json(row.items)
        assert [i.name for i in items] == [line.description for line in note.lines]
        assert {(i.tax_code, i.tax_rate) for i in items} == {(emulator.TAX_ID, Decimal(15))}
    # every shape: from an invoice (open, closed), alone (open: none named; applied later: the
    # invoice it was applied to), draft, void
    assert {stored[n.id].credits is None for n in notes if _issued(n)} == {True, False}
    assert any(n.invoice is None and n.applied for n in notes)
    reads = sandbox.zoho.calls_to
    issued = [n for n in notes if _issued(n)]
    assert reads["creditnote"] == len(issued)  # each approved one read once, no other
    assert reads["creditnote_invoices"] == sum(1 for n in issued if n.invoice is None and n.applied)
    with pws.db.read() as session:
        cursor = pws.integrations.find(session, uid).cursor
    assert cursor is not None and STREAMS_MARK in cursor


async def test_credit_notes_are_read_within_the_invoices_budget_and_wait_without_tax(
    pws: Workspace, sandbox: Sandbox
) -> None:
    """One budget for both lists: the invoices' tax is read first, then the credit notes', as far
    as the day allows; a credit note not read is stored with its tax unknown and waits, not
    fiscalized; the next day reads it. The day's reads are counted across both."""
    pws.plans.set("scale")
    clock = Seconds(time.time())
    sandbox.zoho.minute = RateWindow(10**6, 60.0)
    approved = [i for i in sandbox.zoho.dataset.iter_all() if _approved(i)]
    cap = len(approved) + 3  # every invoice and three credit notes' reads on the first day
    uid = pws.integrations.create("zoho").integration.uid
    service = Service(pws, clock=clock, daily_limit=2 * cap, limits=UNPACED)
    await connect(pws, uid, service)
    notes = [n for n in sandbox.zoho.credit_notes.iter_all() if _issued(n)]
    result = await SyncEngine(pws, service).run(uid)
    assert result.outcome is RunOutcome.OK, result.error
    stored = _stored(pws)
    assert all(stored[_id(i)].tax == i.tax for i in approved)
    read = [n for n in notes if stored[n.id].tax is not None]
    waiting = [n for n in notes if stored[n.id].tax is None]
    assert read == notes[: len(read)] and 2 <= len(read) <= 3  # oldest first
    for note in waiting:
        row = stored[note.id]
        assert (row.fiscal_status, row.subtotal, row.items) == ("awaiting tax", None, None)
    listed = {row.external_id: row for row in pws.invoices.iter_all(uid)}
    assert all(listed[n.id].record_seq is None for n in waiting)  # no record of any
    calls = sandbox.zoho.calls_to
    day_reads = calls["invoice"] + calls["creditnote"] + calls["creditnote_invoices"]
    assert day_reads in (cap, cap + 1)  # (an applied one's invoices: one call past the cap)
    with pws.db.read() as session:
        cursor = pws.integrations.find(session, uid).cursor
    invoices_part, notes_part = split_streams(cursor)
    inv_state, notes_state = TaxState.split(invoices_part)[1], TaxState.split(notes_part)[1]
    assert inv_state.backlog is None and notes_state.backlog is not None
    assert notes_state.reads == day_reads and inv_state.reads == calls["invoice"]
    # the same day: nothing more is read (the day's reads are those of both lists)
    again = await SyncEngine(pws, service).run(uid)
    assert again.outcome is RunOutcome.OK and sandbox.zoho.calls_to["creditnote"] == len(read)
    assert again.fetched == 0
    # the next day: the rest
    clock.now += 86_400
    assert (await SyncEngine(pws, service).run(uid)).outcome is RunOutcome.OK
    stored = _stored(pws)
    for note in notes:
        row = stored[note.id]
        assert (row.tax, row.credits) == (note.tax, _credited(sandbox, note)), note.number
        assert row.fiscal_status != "awaiting tax"
    assert sandbox.zoho.calls_to["creditnote"] == len(notes)


async def test_a_quiet_second_sync_counts_nothing_twice_and_changes_are_read_again(
    pws: Workspace, sandbox: Sandbox
) -> None:
    pws.plans.set("scale")
    sandbox.zoho.minute = RateWindow(10**6, 60.0)
    uid = pws.integrations.create("zoho").integration.uid
    service = Service(pws, limits=UNPACED)
    await connect(pws, uid, service)
    assert (await SyncEngine(pws, service).run(uid)).outcome is RunOutcome.OK
    before = dict(sandbox.zoho.calls_to)
    month = pws.integrations.get(uid).invoices_this_month
    quiet = await SyncEngine(pws, service).run(uid)
    assert (quiet.outcome, quiet.fetched, quiet.created, quiet.updated) == (RunOutcome.OK, 0, 0, 0)
    calls = {k: v - before.get(k, 0) for k, v in sandbox.zoho.calls_to.items()}
    assert {k: v for k, v in calls.items() if v} == {"invoices": 1, "creditnotes": 1}
    assert pws.integrations.get(uid).invoices_this_month == month
    # changes: one raised from an invoice now, one voided, one raised alone now applied
    notes = sandbox.zoho.credit_notes
    invoice = next(i for i in sandbox.zoho.dataset.iter_all() if _approved(i))
    alone = next(n for n in notes.iter_all() if n.invoice is None and n.status == "open")
    voided = next(n for n in notes.iter_all() if n.status == "open" and n.invoice is not None)
    made = notes.create(invoice.index)
    notes.void([voided.index])
    notes.apply(alone.index, invoice.index)
    changed = await SyncEngine(pws, service).run(uid)
    assert (changed.outcome, changed.fetched, changed.created) == (RunOutcome.OK, 3, 1)
    stored = _stored(pws)
    new = stored[notes.get(made).id]
    assert (new.kind, new.credits, new.tax) == ("credit note", _id(invoice), notes.get(made).tax)
    assert stored[voided.id].source_status == "void"
    assert stored[alone.id].credits == _id(invoice)
    assert (await SyncEngine(pws, service).run(uid)).fetched == 0


async def test_credit_notes_older_than_the_invoices_cursor_are_found(
    pws: Workspace, sandbox: Sandbox
) -> None:
    """An integration synced before credit notes were read keeps its invoices' cursor; the credit
    notes' stream starts from the beginning (they are older than that cursor)."""
    pws.plans.set("scale")
    sandbox.zoho.minute = RateWindow(10**6, 60.0)
    kept = sandbox.zoho.credit_notes
    sandbox.zoho.credit_notes = type(kept)(lambda: sandbox.zoho.dataset, emulator.issued)
    uid = pws.integrations.create("zoho").integration.uid
    service = Service(pws, limits=UNPACED)
    await connect(pws, uid, service)
    first = await SyncEngine(pws, service).run(uid)
    assert (first.outcome, first.created) == (RunOutcome.OK, SIZE)
    with pws.db.read() as session:
        cursor = pws.integrations.find(session, uid).cursor
    assert cursor is not None and STREAMS_MARK not in cursor  # (no credit notes: theirs is none)
    sandbox.zoho.credit_notes = kept
    second = await SyncEngine(pws, service).run(uid)
    assert (second.outcome, second.created) == (RunOutcome.OK, NOTES)
    assert {r.kind for r in _stored(pws).values()} == {"sales", "credit note"}


async def test_a_consent_that_does_not_grant_credit_notes_still_syncs_the_invoices(
    pws: Workspace, sandbox: Sandbox
) -> None:
    """Zoho's scopes go by module: a connection made before credit notes were read (or with a
    self-client code minted without them) may not read them. Its invoices sync as before, with
    no call Zoho would refuse and no token refreshed in vain; connected again, it reads them."""
    pws.plans.set("scale")
    sandbox.zoho.minute = RateWindow(10**6, 60.0)
    uid = pws.integrations.create("zoho").integration.uid
    service = Service(pws, limits=UNPACED)
    async with httpx.AsyncClient() as client:
        minted = await client.post(
            f"{sandbox.url}/zoho/accounts/self-client/code",
            data={"scope": "ZohoBooks.invoices.READ,ZohoBooks.settings.READ"},
        )
        await service.complete_with_code(uid, minted.json()["code"])
        token = _token(pws, uid)
        refused = await client.get(
            f"{token.extra['api_domain']}/books/v3/creditnotes",
            params=ORG,
            headers={"Authorization": f"Zoho-oauthtoken {token.access_token}"},
        )
    assert refused.status_code == 401 and refused.json()["code"] == 57
    sandbox.zoho.oauth.expire_access_tokens()  # (an hour later: refreshed with what it has)
    refreshes = sandbox.zoho.oauth.refresh_calls
    result = await SyncEngine(pws, service).run(uid)
    assert (result.outcome, result.fetched) == (RunOutcome.OK, SIZE), result.error
    assert sandbox.zoho.calls_to["creditnotes"] == 1  # (the refused one above)
    assert sandbox.zoho.oauth.refresh_calls == refreshes + 1  # once, not again in vain
    assert {row.kind for row in _stored(pws).values()} == {"sales"}
    await connect(pws, uid, service)  # asking for what the connector asks for now
    again = await SyncEngine(pws, service).run(uid)
    assert (again.outcome, again.created) == (RunOutcome.OK, NOTES)
