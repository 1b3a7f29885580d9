from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlmodel import func, select

from intdash.core.catalog import TYPES, Action, IntegrationType
from intdash.core.errors import ConflictError, FieldErrors, NotFoundError
from intdash.core.invoices import InvoiceData, InvoiceKind
from intdash.core.models import Credential, Invoice
from intdash.core.services.credentials import OAUTH_TOKEN
from intdash.core.status import Reason
from intdash.core.workspace import Workspace
from tests.conftest import FakeClock


def invoice_data(n: int, *, sales: bool = True) -> InvoiceData:
    return InvoiceData(
        external_id=f"ext-{n}",
        number=f"INV-{n:05d}",
        kind=InvoiceKind.SALES if sales else InvoiceKind.PURCHASE,
        contact="Kowhai Cafe",
        issue_date=date(2026, 11, 1),
        due_date=date(2026, 11, 30),
        currency="NZD",
        subtotal=Decimal("100.00"),
        tax=Decimal("15.00"),
        total=Decimal("115.00"),
        source_status="AUTHORISED",
        source_updated_at=None,
    )


def add_invoices(
    ws: Workspace, uid: str, count: int, *, start: int = 0, sales: bool = True
) -> None:
    """Through the same upsert a sync uses."""
    with ws.db.write() as session:
        row = ws.integrations.find(session, uid)
        assert row.id is not None
        batch = [invoice_data(n, sales=sales) for n in range(start, start + count)]
        ws.invoices.upsert(session.connection(), row.id, batch, ws.clock())


def authorise(ws: Workspace, uid: str) -> None:
    with ws.db.write() as session:
        row = ws.integrations.find(session, uid)
        assert row.id is not None
        ws.credentials.put(session, row.id, OAUTH_TOKEN, '{"access_token": "at-1234567"}')


def test_create_each_type(ws: Workspace) -> None:
    values = {IntegrationType.WEBHOOK: {"url": "https://example.com/in"}}
    for kind, spec in TYPES.items():
        created = ws.integrations.create(kind, values=values.get(kind, {}))
        view = created.integration
        assert view.type is kind
        assert re.fullmatch(rf"{spec.uid_prefix}-[a-z2-9]{{6}}", view.uid)
        assert view.name == f"{spec.label} {view.uid.split('-')[1]}"
        assert view.created == ws.clock()
        # a platform's integration is not authorised yet: Connect comes before its own actions
        own = tuple(a for a in spec.actions if a is not Action.RECONNECT)
        assert view.actions == ((Action.CONNECT, *own) if spec.oauth else spec.actions)
    assert len({v.uid for v in ws.integrations.listing()}) == len(TYPES)


def test_actions_by_type() -> None:
    assert TYPES[IntegrationType.XERO].actions == (Action.RECONNECT, Action.REMOVE)
    for kind in (IntegrationType.MYOB, IntegrationType.ZOHO, IntegrationType.WEBHOOK):
        assert TYPES[kind].actions == (Action.CONFIGURE, Action.REMOVE)
    assert TYPES[IntegrationType.CUSTOM].actions == (Action.API_KEYS, Action.REMOVE)


def test_new_xero_needs_authorisation_then_is_active(ws: Workspace) -> None:
    view = ws.integrations.create("xero", name="demo").integration
    assert (view.status.active, view.status.reason) == (False, Reason.NEEDS_AUTHORISATION)
    authorise(ws, view.uid)
    assert ws.integrations.get(view.uid).status.active


def test_auth_error_means_reconnect_needed(ws: Workspace) -> None:
    uid = ws.integrations.create("zoho").integration.uid
    authorise(ws, uid)
    with ws.db.write() as session:
        row = ws.integrations.find(session, uid)
        row.auth_error = "invalid_grant"
        session.add(row)
    status = ws.integrations.get(uid).status
    assert status.reason is Reason.RECONNECT_NEEDED
    assert status.explanation == "reconnect needed: invalid_grant"


def test_unknown_type(ws: Workspace) -> None:
    with pytest.raises(FieldErrors, match="type: must be one of xero, myob"):
        ws.integrations.create("quickbooks")


def test_validation_names_every_bad_field(ws: Workspace) -> None:
    with pytest.raises(FieldErrors) as caught:
        ws.integrations.create(
            "webhook",
            values={
                "url": "ftp://example.com",
                "headers": "no colon here",
                "colour": "blue",
                "sync_from": "yesterday",
            },
        )
    errors = caught.value.errors
    assert set(errors) == {"url", "headers", "colour", "sync_from"}
    assert "http(s) URL" in errors["url"]
    assert "Name: value" in errors["headers"]
    assert "not a setting of Custom/Webhook" in errors["colour"]
    assert "YYYY-MM-DD" in errors["sync_from"]
    assert ws.integrations.listing() == []  # nothing was saved


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({}, "url", "is required"),
        ({"url": "http://example.com/hook"}, "url", "only on loopback"),
        ({"url": "https://x.test/h", "headers": "Content-Type: a"}, "headers", "set by intdash"),
        ({"url": "https://x.test/h", "deliver": "xero-nothere"}, "deliver", "no integration"),
        ({"url": "https://x.test/h", "name": "   "}, "name", "must not be empty"),
        ({"url": "https://x.test/h", "name": "a\x07b"}, "name", "control characters"),
        ({"url": "https://x.test/h", "sync_enabled": "maybe"}, "sync_enabled", "true or false"),
    ],
)
def test_webhook_validation(
    ws: Workspace, values: dict[str, str], field: str, message: str
) -> None:
    with pytest.raises(FieldErrors) as caught:
        ws.integrations.create("webhook", values=values)
    assert message in caught.value.errors[field]


def test_webhook_on_loopback_with_headers_and_deliver_list(ws: Workspace) -> None:
    xero = ws.integrations.create("xero").integration.uid
    created = ws.integrations.create(
        "webhook",
        values={
            "url": "http://127.0.0.1:9000/hook",
            "headers": "X-Tenant: 42; Authorization: Bearer abcdefgh",
            "deliver": xero,
        },
    )
    view = created.integration
    assert view.settings["url"] == "http://127.0.0.1:9000/hook"
    assert view.settings["deliver"] == [xero]
    assert "headers" not in view.settings  # headers carry tokens: kept in the vault
    assert view.secrets_set == ("headers",)
    assert len(created.generated_secrets["signing_secret"]) >= 32
    assert view.status.active


def test_zoho_defaults_and_choices(ws: Workspace) -> None:
    view = ws.integrations.create("zoho").integration
    assert view.settings == {"data_centre": "com"}
    view = ws.integrations.configure(view.uid, {"data_centre": "eu", "organization_id": "123"})
    assert view.settings == {"data_centre": "eu", "organization_id": "123"}
    with pytest.raises(FieldErrors, match="data_centre: must be one of"):
        ws.integrations.configure(view.uid, {"data_centre": "mars"})
    with pytest.raises(FieldErrors, match="organization_id: must be digits only"):
        ws.integrations.configure(view.uid, {"organization_id": "abc"})
    with pytest.raises(FieldErrors, match="data_centre: is required"):
        ws.integrations.configure(view.uid, {"data_centre": ""})
    assert ws.integrations.get(view.uid).settings["data_centre"] == "eu"


def test_configure_keeps_secrets_unless_retyped(ws: Workspace) -> None:
    uid = ws.integrations.create(
        "myob", values={"company_file_password": "first-pass"}
    ).integration.uid

    def password() -> str | None:
        with ws.db.read() as session:
            row = ws.integrations.find(session, uid)
            assert row.id is not None
            found = ws.credentials.get(session, row.id, "company_file_password")
            return found.value if found else None

    ws.integrations.configure(uid, {"company_file_username": "admin"})
    assert password() == "first-pass"
    view = ws.integrations.configure(uid, {"company_file_password": "second-pass"})
    assert password() == "second-pass"
    assert view.secrets_set == ("company_file_password",)
    assert view.to_json()["secrets"] == {"company_file_password": True}
    view = ws.integrations.configure(uid, {"company_file_password": ""})
    assert password() is None
    assert view.to_json()["secrets"] == {"company_file_password": False}


def test_myob_company_file_must_be_a_guid(ws: Workspace) -> None:
    with pytest.raises(FieldErrors, match="company_file_id: must be a GUID"):
        ws.integrations.create("myob", values={"company_file_id": "not-a-guid"})
    guid = "0f5e4d8c-1234-4abc-9def-0123456789ab"
    view = ws.integrations.create("myob", values={"company_file_id": guid}).integration
    assert view.settings["company_file_id"] == guid


def test_sync_from_moves_the_cursor_only(ws: Workspace, clock: FakeClock) -> None:
    uid = ws.integrations.create("custom").integration.uid
    add_invoices(ws, uid, 3)
    with ws.db.write() as session:
        row = ws.integrations.find(session, uid)
        row.cursor = "2026-11-01T00:00:00Z"
        session.add(row)
    view = ws.integrations.configure(uid, {"sync_from": "2026-01-01"})
    assert view.sync_from == date(2026, 1, 1)
    assert view.cursor is None
    with ws.db.read() as session:
        assert session.exec(select(func.count()).select_from(Invoice)).one() == 3
    tomorrow = (clock() + timedelta(days=1)).date().isoformat()
    with pytest.raises(FieldErrors, match="must not be in the future"):
        ws.integrations.configure(uid, {"sync_from": tomorrow})
    assert ws.integrations.configure(uid, {"sync_from": ""}).sync_from is None


def test_disable_and_enable_sync(ws: Workspace) -> None:
    uid = ws.integrations.create("custom").integration.uid
    ws.keys.create(uid, "k")
    view = ws.integrations.set_sync_enabled(uid, False)
    assert (view.sync_enabled, view.status.reason) == (False, Reason.SYNC_DISABLED)
    assert ws.integrations.set_sync_enabled(uid, True).status.active


def test_configure_needs_something(ws: Workspace) -> None:
    uid = ws.integrations.create("custom").integration.uid
    with pytest.raises(FieldErrors, match="nothing to change"):
        ws.integrations.configure(uid, {})


def test_unknown_uid(ws: Workspace) -> None:
    with pytest.raises(NotFoundError, match="no integration with UID 'cust-zzzzzz'"):
        ws.integrations.get("cust-zzzzzz")
    with pytest.raises(NotFoundError):
        ws.integrations.remove("cust-zzzzzz")


def test_remove_stops_sync_wipes_credentials_keeps_invoices(ws: Workspace) -> None:
    uid = ws.integrations.create("xero", name="doomed").integration.uid
    authorise(ws, uid)
    add_invoices(ws, uid, 5)
    view = ws.integrations.remove(uid)
    assert view.removed_at == ws.clock()
    assert view.sync_enabled is False
    assert view.status.reason is Reason.REMOVED
    assert view.actions == ()
    with ws.db.read() as session:
        assert session.exec(select(func.count()).select_from(Credential)).one() == 0
        assert session.exec(select(func.count()).select_from(Invoice)).one() == 5
    assert ws.integrations.listing() == []
    assert [v.uid for v in ws.integrations.listing(include_removed=True)] == [uid]
    event = ws.audit.list(uid)[0]
    assert (event.action, event.actor) == ("integration.removed", "tester")
    assert event.detail == "sync stopped, 1 credentials wiped, 5 invoices kept"
    with pytest.raises(ConflictError, match="was removed"):
        ws.integrations.remove(uid)
    with pytest.raises(ConflictError, match="was removed"):
        ws.integrations.configure(uid, {"name": "back"})


def test_monthly_limit_reached_held_and_released(ws: Workspace, clock: FakeClock) -> None:
    ws.plans.set("starter", monthly_limit=10)
    uid = ws.integrations.create("custom").integration.uid
    ws.keys.create(uid, "k")
    add_invoices(ws, uid, 9)
    add_invoices(ws, uid, 3, start=100, sales=False)  # bills are kept, never counted
    view = ws.integrations.get(uid)
    assert (view.status.active, view.invoices_this_month, view.monthly_limit) == (True, 9, 10)
    add_invoices(ws, uid, 5, start=9)  # one more fits; four are held
    view = ws.integrations.get(uid)
    assert view.status.reason is Reason.LIMIT_REACHED
    assert view.status.explanation == "monthly limit reached: 10 of 10 this month"
    statuses = [r.fiscal_status for r in ws.invoices.iter_all(uid)]
    assert statuses.count("held") == 4 and statuses.count("fiscalized") == 10
    assert statuses.count("received") == 3
    clock.advance(days=20)  # into December: a new month, and room again
    assert ws.integrations.get(uid).status.active
    with ws.db.write() as session:
        released = ws.invoices.release_held(session.connection(), _id(ws, uid), clock())
    assert released == 4
    assert [r.fiscal_status for r in ws.invoices.iter_all(uid)].count("held") == 0
    assert ws.integrations.get(uid).invoices_this_month == 4
    assert ws.invoices.verify().ok


def test_raising_the_plan_releases_held_invoices(ws: Workspace) -> None:
    ws.plans.set("starter", monthly_limit=2)
    uid = ws.integrations.create("custom").integration.uid
    add_invoices(ws, uid, 5)
    assert [r.fiscal_status for r in ws.invoices.iter_all(uid)].count("held") == 3
    ws.plans.set("growth")
    assert [r.fiscal_status for r in ws.invoices.iter_all(uid)].count("held") == 0
    assert ws.invoices.verify().records == 5


def _id(ws: Workspace, uid: str) -> int:
    with ws.db.read() as session:
        row_id = ws.integrations.find(session, uid).id
    assert row_id is not None
    return row_id


def test_audit_trail_never_holds_secret_values(ws: Workspace) -> None:
    uid = ws.integrations.create(
        "myob", values={"company_file_password": "hunter2-secret"}
    ).integration.uid
    ws.integrations.configure(uid, {"company_file_password": "hunter3-secret", "name": "Shop"})
    events = ws.audit.list(uid)
    assert [e.action for e in events] == ["integration.configured", "integration.created"]
    assert events[0].detail == "changed: company_file_password, name"
    assert all("hunter" not in (e.detail or "") for e in events)


def test_listing_many_is_a_fixed_number_of_queries(ws: Workspace) -> None:
    from sqlalchemy import event

    for _ in range(30):
        ws.integrations.create("custom")
    statements: list[str] = []
    event.listen(ws.db.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    assert len(ws.integrations.listing()) == 30
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) <= 6


def test_fiscal_records_point_at_their_own_invoices(ws: Workspace) -> None:
    from intdash.core.fiscal import ToFiscalize, invoice_digest
    from intdash.core.models import FiscalRecord

    ws.plans.set("scale")
    first = ws.integrations.create("custom").integration.uid
    second = ws.integrations.create("custom").integration.uid
    add_invoices(ws, first, 700)
    add_invoices(ws, second, 300, start=5000)
    add_invoices(ws, first, 300, start=700)
    with ws.db.read() as session:
        pairs = session.exec(
            select(FiscalRecord, Invoice).join(Invoice, Invoice.id == FiscalRecord.invoice_id)  # type: ignore[arg-type]
        ).all()
    assert len(pairs) == 1300
    for record, invoice in pairs:
        assert record.integration_id == invoice.integration_id
        expected = invoice_digest(
            ToFiscalize(
                invoice.id or 0,
                invoice.integration_id,
                invoice.external_id,
                invoice.number,
                invoice.issue_date.isoformat() if invoice.issue_date else None,
                invoice.currency,
                str(invoice.total),
                str(invoice.tax),
            )
        )
        assert record.invoice_digest == expected
    assert ws.invoices.verify().records == 1300


def test_overview_reads_the_first_few_by_uid_and_the_status_line_at_once(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from sqlalchemy import event

    from intdash.core.services.integrations import queries as module

    ws.plans.set("growth", monthly_limit=40)
    made = [ws.integrations.create(kind).integration.uid for kind in ("custom", "xero") * 4]
    ws.integrations.remove(made[0])
    ws.keys.create(made[2], "erp")
    add_invoices(ws, made[2], 7)
    add_invoices(ws, made[4], 3, start=100)
    assert ws.leases.acquire("scheduler", "host-a:4242:abc", timedelta(minutes=1))

    statements: list[str] = []

    def seen(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(ws.db.engine, "before_cursor_execute", seen)
    overview = ws.integrations.overview(first=3)
    event.remove(ws.db.engine, "before_cursor_execute", seen)
    # one session: a handful of statements, however many integrations there are
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) <= 7

    live = sorted(uid for uid in made[1:])
    assert [v.uid for v in overview.views] == live[:3]  # by UID; the removed one left out
    assert overview.used == 10
    assert overview.plan.monthly_limit == 40
    assert overview.scheduler is not None and overview.scheduler.holder == "host-a:4242:abc"
    # the same views as the listing, field by field
    listed = {v.uid: v for v in ws.integrations.listing()}
    assert all(view == listed[view.uid] for view in overview.views)
    # and the same again when there are more integrations than an IN list takes
    monkeypatch.setattr(module, "IN_LIST_MAX", 2)
    assert {v.uid: v for v in ws.integrations.listing()} == listed
    assert ws.integrations.overview().views == ws.integrations.listing()
    by_uid = {v.uid: v for v in ws.integrations.overview().views}
    assert by_uid[made[2]].invoices_this_month == 7
    assert by_uid[made[2]].status.active  # a live key
    assert by_uid[made[4]].invoices_this_month == 3


def test_what_each_type_does_is_said_in_its_own_words(ws: Workspace) -> None:
    custom = ws.integrations.create("custom").integration.uid
    hook = ws.integrations.create("webhook", values={"url": "https://hooks.example.com/in"})
    xero = ws.integrations.create("xero").integration.uid
    add_invoices(ws, custom, 2)
    ws.integrations.set_sync_enabled(custom, False)

    pushed = dict(ws.integrations.get(custom).activity())
    assert pushed == {
        "Last push": ws.clock(),
        "Pushes": "refused (disabled)",
        "This month": "2 of 500",
    }
    delivered = dict(ws.integrations.get(hook.integration.uid).activity())
    assert list(delivered) == ["Last attempted delivery", "Last successful delivery", "Deliveries"]
    assert delivered["Deliveries"] == "enabled" and delivered["Last attempted delivery"] is None
    synced = dict(ws.integrations.get(xero).activity())
    assert synced == {
        "Last attempted sync": None,
        "Last successful sync": None,
        "Sync from": "the beginning",
        "Sync": "enabled",
        "This month": "0 of 500",
    }
