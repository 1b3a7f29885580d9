"""Xero's own SDK (xero-python) and OpenAPI descriptions against the Xero emulator.

A third party's reading of Xero checks the emulator, and through it what the connector assumes:
the SDK builds the URLs, headers and form bodies as Xero's own client does and parses the
answers into its models (.NET dates, Decimal amounts, enumerations, ISO connection times), so
an answer shaped differently from Xero's fails here. The SDK has no setting for its hosts: the
API classes take a ``base_url`` and the token endpoint is a class attribute of ``TokenApi``.
The SDK does not exchange authorisation codes, so that step is plain HTTP. What the SDK cannot
see (a field of the wrong format it keeps as text) the OpenAPI descriptions check.
"""

from __future__ import annotations

import importlib
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from openapi_schema_validator import OAS30Validator
from xero_python.accounting import AccountingApi  # type: ignore[import-untyped]
from xero_python.api_client import ApiClient, Configuration  # type: ignore[import-untyped]
from xero_python.api_client.oauth2 import OAuth2Token, TokenApi  # type: ignore[import-untyped]
from xero_python.exceptions import (  # type: ignore[import-untyped]
    BadRequestException,
    HTTPStatusException,
    NotFoundException,
    RateLimitException,
)
from xero_python.identity import IdentityApi  # type: ignore[import-untyped]

from intdash.providers.connector import parse_json
from intdash.providers.http import httpx
from intdash.providers.xero import XeroConnector, auth_event_id, parse_invoice
from intdash.sandbox.oauth import s256
from intdash.sandbox.server import Sandbox
from intdash.sandbox.xero import TENANT_ID, TENANT_NAME

CALLBACK = "http://localhost:8598/callback"
SIZE = 250
SPECS = Path(__file__).resolve().parents[2] / "shared" / "specs" / "xero"


@pytest.fixture
def box(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    with Sandbox(size=SIZE, redirect_uris=[CALLBACK]) as started:
        identity = f"{started.url}/xero/identity/connect"
        monkeypatch.setattr(TokenApi, "refresh_token_url", f"{identity}/token")
        monkeypatch.setattr(TokenApi, "revoke_token_url", f"{identity}/revocation")
        yield started


class Xero:
    """The SDK's clients, configured for the emulator, with the token kept as its docs show."""

    def __init__(self, box: Sandbox, token: dict[str, Any]) -> None:
        policy = box.xero.oauth.policy
        self.token = token
        self.client = ApiClient(
            Configuration(oauth2_token=OAuth2Token(policy.client_id, policy.client_secret)),
            pool_threads=1,
            oauth2_token_getter=lambda: self.token,
            oauth2_token_saver=self._save,
        )
        self.accounting = AccountingApi(self.client, base_url=f"{box.url}/xero/api/api.xro/2.0")
        self.identity = IdentityApi(self.client, base_url=f"{box.url}/xero/api")

    def _save(self, token: dict[str, Any]) -> None:
        self.token = token


def _consent_and_exchange(box: Sandbox, scope: str) -> dict[str, Any]:
    """The browser's consent and the code exchange (with PKCE), in the SDK's token shape."""
    policy = box.xero.oauth.policy
    verifier = secrets.token_urlsafe(48)
    consent = httpx.get(
        f"{box.url}/xero/identity/connect/authorize",
        params={"client_id": policy.client_id, "redirect_uri": CALLBACK, "response_type": "code",
                "scope": scope, "state": "sdk", "code_challenge": s256(verifier),
                "code_challenge_method": "S256"},
    )  # fmt: skip
    assert consent.status_code == 302, consent.text
    code = parse_qs(urlsplit(consent.headers["location"]).query)["code"][0]
    answer = httpx.post(
        f"{box.url}/xero/identity/connect/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
              "code_verifier": verifier},
        auth=(policy.client_id, policy.client_secret),
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    token: dict[str, Any] = answer.json()
    token["scope"] = token["scope"].split()
    token["expires_at"] = time.time() + token["expires_in"]
    return token


@pytest.fixture
def xero(box: Sandbox) -> Xero:
    return Xero(box, _consent_and_exchange(box, XeroConnector.scope))


def test_connections_and_refresh(box: Sandbox, xero: Xero) -> None:
    event = auth_event_id(xero.token["access_token"])
    [connection] = xero.identity.get_connections()
    assert (connection.tenant_id, connection.tenant_name) == (TENANT_ID, TENANT_NAME)
    assert connection.tenant_type == "ORGANISATION" and connection.auth_event_id == event
    assert isinstance(connection.created_date_utc, datetime)
    assert connection.created_date_utc.tzinfo is not None
    assert [c.tenant_id for c in xero.identity.get_connections(auth_event_id=event)] == [TENANT_ID]
    other_event = "00000000-0000-4000-8000-000000000000"
    assert xero.identity.get_connections(auth_event_id=other_event) == []
    before = dict(xero.token)
    refreshed = xero.client.refresh_oauth2_token()
    assert box.xero.oauth.refresh_calls == 1
    assert refreshed["refresh_token"] != before["refresh_token"]  # rotated
    assert refreshed["access_token"] != before["access_token"]
    assert set(refreshed["scope"]) == set(XeroConnector.scope.split())
    assert auth_event_id(refreshed["access_token"]) == event  # the same consent
    # the refreshed token is the one the SDK uses now
    assert xero.identity.get_connections()[0].tenant_id == TENANT_ID
    with pytest.raises(NotFoundException):
        xero.identity.delete_connection(other_event)


def test_every_page_of_invoices(box: Sandbox, xero: Xero) -> None:
    dataset = box.xero.dataset
    box.xero.dataset.touch([3, 7])
    read: list[Any] = []
    page = 1
    while True:
        answer = xero.accounting.get_invoices(
            TENANT_ID, page=page, page_size=60, order="UpdatedDateUTC ASC"
        )
        assert answer.pagination.page == page and answer.pagination.page_size == 60
        assert answer.pagination.item_count == SIZE and answer.pagination.page_count == 5
        read.extend(answer.invoices)
        if len(answer.invoices) < 60:
            break
        page += 1
    expected = list(dataset.iter_all())
    assert [i.invoice_number for i in read] == [s.number for s in expected]
    assert [i.invoice_number for i in read][-2:] == ["INV-0000004", "INV-0000008"]
    for invoice, source in zip(read, expected, strict=True):
        assert invoice.invoice_id == source.id
        assert invoice.date == source.issue_date and invoice.due_date == source.due_date
        assert invoice.updated_date_utc == source.updated
        assert (invoice.sub_total, invoice.total_tax) == (source.subtotal, source.tax)
        assert invoice.total == source.total and isinstance(invoice.total, Decimal)
        assert invoice.currency_code.value == source.currency
        assert invoice.contact.contact_id == source.contact_id
        assert invoice.contact.name == source.contact
        assert invoice.type in ("ACCREC", "ACCPAY")
        lines = invoice.line_items
        assert len(lines) == len(source.lines) >= 1
        assert sum(line.tax_amount for line in lines) == source.tax
        amounts = sum(line.line_amount for line in lines)
        assert amounts == (source.total if source.inclusive else source.subtotal)
        assert invoice.line_amount_types.value == ("Inclusive" if source.inclusive else "Exclusive")
    assert [i.invoice_number for i in xero.accounting.get_invoices(TENANT_ID).invoices][:3] == [
        "INV-0000001", "INV-0000002", "INV-0000003",
    ]  # fmt: skip


def test_modified_since_filters_and_one_invoice(box: Sandbox, xero: Xero) -> None:
    dataset = box.xero.dataset
    dataset.touch([7, 3])
    since = datetime(2026, 1, 1, tzinfo=UTC)
    changed = xero.accounting.get_invoices(
        TENANT_ID, if_modified_since=since, order="UpdatedDateUTC ASC"
    ).invoices
    assert [i.invoice_number for i in changed] == ["INV-0000008", "INV-0000004"]
    newest_first = xero.accounting.get_invoices(
        TENANT_ID, if_modified_since=since, order="UpdatedDateUTC DESC"
    ).invoices
    assert [i.invoice_number for i in newest_first] == ["INV-0000004", "INV-0000008"]
    wanted = dataset.invoice(42)
    by_ids = xero.accounting.get_invoices(TENANT_ID, i_ds=[wanted.id, dataset.invoice(1).id])
    assert [i.invoice_id for i in by_ids.invoices] == [dataset.invoice(1).id, wanted.id]
    paid = xero.accounting.get_invoices(
        TENANT_ID, statuses=["PAID"], where='Type=="ACCREC"', page=1, page_size=1000
    ).invoices
    assert paid and {(i.status, i.type) for i in paid} == {("PAID", "ACCREC")}
    [one] = xero.accounting.get_invoice(TENANT_ID, wanted.id).invoices
    assert (one.invoice_id, one.invoice_number) == (wanted.id, wanted.number)
    assert one.total == wanted.total and one.line_items
    with pytest.raises(NotFoundException):
        xero.accounting.get_invoice(TENANT_ID, "00000000-0000-4000-8000-000000000000")
    with pytest.raises(BadRequestException) as refused:
        xero.accounting.get_invoices(TENANT_ID, where='Colour=="RED"')
    assert refused.value.error_data["Type"] == "QueryParseException"
    searched = xero.accounting.get_invoices(
        TENANT_ID, search_term="inv-000001", summary_only=True, unitdp=4, include_archived=True
    ).invoices
    assert [i.invoice_number for i in searched] == [f"INV-00000{n}" for n in range(10, 20)]
    [organisation] = xero.accounting.get_organisations(TENANT_ID).organisations
    assert organisation.name == TENANT_NAME


def test_refusals_as_the_sdk_sees_them(box: Sandbox, xero: Xero) -> None:
    box.xero.busy_429 = 1
    with pytest.raises(RateLimitException) as limited:
        xero.accounting.get_invoices(TENANT_ID, page=1)
    assert limited.value.rate_limit == "concurrent"
    online = Xero(box, _consent_and_exchange(box, "accounting.settings.read"))
    assert online.token.get("refresh_token") is None  # no offline_access, no refresh token
    with pytest.raises(HTTPStatusException) as forbidden:
        online.accounting.get_invoices(TENANT_ID, page=1)
    assert forbidden.value.status == 403


def test_revoking_removes_the_connections(box: Sandbox, xero: Xero) -> None:
    old_refresh = xero.token["refresh_token"]
    xero.client.revoke_oauth2_token()
    assert xero.token["refresh_token"] is None
    assert box.xero.connections[TENANT_ID].active is False
    policy = box.xero.oauth.policy
    dead = httpx.post(
        f"{box.url}/xero/identity/connect/token",
        data={"grant_type": "refresh_token", "refresh_token": old_refresh},
        auth=(policy.client_id, policy.client_secret),
    )
    assert dead.json() == {"error": "invalid_grant"}
    stranger = httpx.post(
        f"{box.url}/xero/identity/connect/revocation",
        data={"token": "x", "client_id": policy.client_id, "client_secret": "wrong"},
    )
    assert stranger.status_code == 401


def test_the_connector_reads_what_the_sdk_reads(box: Sandbox, xero: Xero) -> None:
    """The connector's parsing and the SDK's agree on every field intdash keeps."""
    raw = httpx.get(
        f"{box.url}/xero/api/api.xro/2.0/Invoices",
        params={"page": "1", "pageSize": "50", "order": "UpdatedDateUTC ASC"},
        headers={"Authorization": f"Bearer {xero.token['access_token']}",
                 "xero-tenant-id": TENANT_ID, "Accept": "application/json"},
    )  # fmt: skip
    ours = [parse_invoice(i) for i in parse_json(raw, "Xero invoices")["Invoices"]]
    theirs = xero.accounting.get_invoices(
        TENANT_ID, page=1, page_size=50, order="UpdatedDateUTC ASC"
    ).invoices
    seen: set[str] = set()
    for mine, sdk in zip(ours, theirs, strict=True):
        assert mine.external_id == sdk.invoice_id and mine.number == sdk.invoice_number
        assert (mine.issue_date, mine.due_date) == (sdk.date, sdk.due_date)
        assert (mine.subtotal, mine.tax, mine.total) == (sdk.sub_total, sdk.total_tax, sdk.total)
        assert mine.source_updated_at == sdk.updated_date_utc
        assert mine.source_status == sdk.status and mine.currency == sdk.currency_code.value
        # what fiscalization needs: the lines, the buyer's tax number, the payments
        assert mine.buyer_tax_id == sdk.contact.tax_number
        assert [p.amount for p in mine.payments] == [p.amount for p in sdk.payments or []]
        inclusive = {"Exclusive": False, "Inclusive": True}[sdk.line_amount_types.value]
        assert len(mine.items) == len(sdk.line_items)
        for item, line in zip(mine.items, sdk.line_items, strict=True):
            assert (item.name, item.item_code, item.tax_code) == (
                line.description,
                line.item_code,
                line.tax_type,
            )
            assert (item.quantity, item.unit_price) == (line.quantity, line.unit_amount)
            assert (item.total, item.tax_amount) == (line.line_amount, line.tax_amount)
            assert item.tax_inclusive is inclusive
            rate = line.discount_rate or 0
            assert item.discount == line.quantity * line.unit_amount * rate / 100
            assert item.total == item.quantity * item.unit_price - item.discount
            if rate:
                seen.add("discount")
        found = {"inclusive": inclusive, "several": len(mine.items) > 1}
        found |= {"tax id": bool(mine.buyer_tax_id), "paid": bool(mine.payments)}
        seen.update(name for name, there in found.items() if there)
        assert sum(i.tax_amount or 0 for i in mine.items) == mine.tax
    assert seen == {"inclusive", "discount", "several", "tax id", "paid"}


def _spec(name: str) -> Any:
    yaml: Any = importlib.import_module("yaml")  # PyYAML ships no type information
    return yaml.safe_load((SPECS / name).read_text())


@pytest.mark.skipif(not SPECS.exists(), reason="../shared/specs/xero is not beside the project")
def test_what_the_strict_emulator_adds_validates(box: Sandbox, xero: Xero) -> None:
    """One invoice, filtered and summary listings, connections by event and a refusal's body,
    against Xero's own OpenAPI documents."""
    accounting = OpenAPI.from_dict(
        _spec("xero_accounting.yaml"), config=Config(spec_validator_cls=None)
    )
    identity = OpenAPI.from_dict(
        _spec("xero-identity.yaml"), config=Config(spec_validator_cls=None)
    )
    bearer = {"Authorization": f"Bearer {xero.token['access_token']}"}
    headers = {**bearer, "xero-tenant-id": TENANT_ID, "Accept": "application/json"}
    base = f"{box.url}/xero/api"

    def check(spec: OpenAPI, path: str, params: dict[str, str] | None = None) -> httpx.Response:
        answer = httpx.get(f"{base}{path}", params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        request = MockRequest("https://api.xero.com", "GET", path, args=params or {})
        spec.validate_response(request, MockResponse(answer.content, status_code=200))
        return answer

    wanted = box.xero.dataset.invoice(9)
    one = check(accounting, f"/api.xro/2.0/Invoices/{wanted.id}")
    assert one.json()["Invoices"][0]["LineItems"]
    check(accounting, "/api.xro/2.0/Invoices", {"page": "2", "pageSize": "30",
          "where": 'Status=="PAID"', "order": "Total DESC"})  # fmt: skip
    check(accounting, "/api.xro/2.0/Invoices", {"page": "1", "summaryOnly": "true"})
    event = auth_event_id(xero.token["access_token"]) or ""
    check(identity, "/Connections", {"authEventId": event})
    refused = httpx.get(f"{base}/api.xro/2.0/Invoices", params={"where": "x"}, headers=headers)
    assert refused.status_code == 400
    document = _spec("xero_accounting.yaml")
    error = {"$ref": "#/components/schemas/Error", "components": document["components"]}
    OAS30Validator(error).validate(refused.json())
