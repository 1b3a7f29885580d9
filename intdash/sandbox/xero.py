"""Xero's identity service and Accounting API, as far as intdash uses them, as strict as Xero.

Identity: consent only for a registered redirect URI and known scopes; a refresh token only
with ``offline_access``; refresh tokens rotate (a rotated-out one gets ``invalid_grant``); access
tokens last 30 minutes and are JWTs whose payload carries ``authentication_event_id``,
``xero_userid`` and ``exp``. Each consent connects the organisations the user ticks (the first
one, unless :attr:`XeroEmulator.consent_picks` says otherwise) and stamps their connections with
its ``authEventId``; ``/connections`` lists the user's connections and filters by
``?authEventId=``; a deleted connection comes back with the next consent that ticks it.

Accounting: every call needs ``xero-tenant-id`` naming a connected organisation, and a token
whose scope allows it (invoices: ``accounting.invoices[.read]`` or
``accounting.transactions[.read]``; ``/Organisation``: ``accounting.settings[.read]``), else 403.
``GET /Invoices`` pages, filters and orders as Xero does (see
:mod:`intdash.sandbox.xero_invoices`: without ``order``, not by modification time); paged answers
carry line items. ``GET /Invoices/{InvoiceID}`` takes an InvoiceID or an InvoiceNumber.
``GET /CreditNotes`` (and ``/CreditNotes/{CreditNoteID}``) lists the organisation's credit notes
under the same scopes, limits and rules (see :mod:`intdash.sandbox.xero_credit_notes`); an
organisation has none unless the emulator is made with ``credit_notes=True`` (a few of every
kind, against its invoices) or they are raised through :attr:`Organisation.credit_notes`.

Webhook: given a URL (:attr:`XeroEmulator.webhook`, see :mod:`intdash.sandbox.xero_webhooks`),
every change to an organisation's invoices (created, edited, voided, deleted) is posted there as
a signed INVOICE event (CREATE or UPDATE) naming the organisation, and every change to its credit
notes as a CREDITNOTE event, batched and retried as Xero does.

Limits are Xero's: 5 calls in flight (429 with ``X-Rate-Limit-Problem: concurrent`` and no
``Retry-After``), 60 a minute and 5,000 a day (429 with ``Retry-After``), and every answer
carries the remaining-calls headers.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from intdash.sandbox.common import (
    MALFORMED,
    InFlight,
    PlatformEmulator,
    RateWindow,
    bearer,
    form_of,
    json_response,
    maybe_slow,
    parse_http_time,
)
from intdash.sandbox.dataset import Dataset
from intdash.sandbox.oauth import Grant, OAuthPolicy, OAuthServer
from intdash.sandbox.xero_credit_book import CreditNoteBook
from intdash.sandbox.xero_credit_notes import CreditNote, credit_note_events, render_credit_note
from intdash.sandbox.xero_credit_notes import select as select_credit_notes
from intdash.sandbox.xero_invoices import (
    Invalid,
    envelope,
    find_invoice,
    ms_date,
    parse_listing,
    select,
)
from intdash.sandbox.xero_invoices import render_invoice as render_invoice  # the Xero shape
from intdash.sandbox.xero_query import QueryError
from intdash.sandbox.xero_webhooks import XeroWebhook, invoice_events

TENANT_ID = "9d2c1bd0-5ad4-4e8a-9f0b-7e1f3a0c2d11"
CONNECTION_ID = "1f6a9f7e-33c4-4f51-8a3f-5bc0b8a2e4d7"
TENANT_NAME = "Demo Company (NZ)"
USER_ID = "5c1e7d2a-0b3f-4e6a-9d81-2f4b6c8e0a13"
INVOICE_SCOPES = frozenset(
    {"accounting.invoices", "accounting.invoices.read"}
    | {"accounting.transactions", "accounting.transactions.read"}
)
SETTINGS_SCOPES = frozenset({"accounting.settings", "accounting.settings.read"})
SCOPES = frozenset(
    {"openid", "profile", "email", "offline_access", "accounting.reports.read"}
    | {"accounting.journals.read", "accounting.budgets.read", "files", "files.read"}
    | {"assets", "assets.read", "projects", "projects.read", "payroll.employees"}
    | {f"accounting.{area}{read}" for read in ("", ".read") for area in (
        "transactions", "invoices", "payments", "banktransactions", "manualjournals",
        "settings", "contacts", "attachments",
    )}
)  # fmt: skip
_NOT_FOUND = "The resource you're looking for cannot be found"


@dataclass
class Organisation:
    tenant_id: str
    name: str
    connection_id: str
    dataset: Dataset
    credit_notes: CreditNoteBook = field(init=False)

    def __post_init__(self) -> None:
        # its credit notes follow its invoices, whichever dataset holds them now
        self.credit_notes = CreditNoteBook(f"xero-cn:{self.tenant_id}", lambda: self.dataset)


@dataclass
class Connection:
    organisation: Organisation
    auth_event_id: str
    created: datetime
    updated: datetime
    active: bool = True

    def to_json(self) -> dict[str, str]:
        def stamp(moment: datetime) -> str:
            return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}0Z"

        return {
            "id": self.organisation.connection_id,
            "authEventId": self.auth_event_id,
            "tenantId": self.organisation.tenant_id,
            "tenantType": "ORGANISATION",
            "tenantName": self.organisation.name,
            "createdDateUtc": stamp(self.created),
            "updatedDateUtc": stamp(self.updated),
        }


Handler = Callable[[Request, Organisation], Awaitable[Response]]


class XeroEmulator(PlatformEmulator):
    def __init__(
        self,
        *,
        size: int = 2500,
        client_id: str = "sandbox-xero-client",
        client_secret: str = "sandbox-xero-secret",
        access_ttl: int = 1800,
        minute_limit: int = 60,
        minute_window: float = 60.0,
        day_limit: int = 5000,
        concurrent: int = 5,
        clock: Any = time.time,
        redirect_uris: Iterable[str] | None = None,
        credit_notes: bool = False,
    ) -> None:
        """``credit_notes``: each organisation starts with a few credit notes of every kind
        (:meth:`~intdash.sandbox.xero_credit_book.CreditNoteBook.seed_examples`), else none."""
        policy = OAuthPolicy(
            client_id,
            client_secret,
            access_ttl,
            rotate_refresh=True,
            client_auth="basic",
            known_scopes=SCOPES,
            offline_scope="offline_access",
            https_redirects=True,
            strict_pkce=True,
            jwt_claims=self._claims,
        )
        super().__init__("xero", size, OAuthServer(policy, clock, redirect_uris))
        self.oauth.on_consent = self._consented
        self.clock = clock
        self._size = size
        self._credit_notes = credit_notes
        self.minute = RateWindow(minute_limit, minute_window)
        self.day = RateWindow(day_limit, 86_400)
        self.inflight = InFlight(concurrent)
        self.busy_429 = 0  # the next N API calls answer as if five were already in flight
        self.organisations: dict[str, Organisation] = {
            TENANT_ID: Organisation(TENANT_ID, TENANT_NAME, CONNECTION_ID, self.dataset)
        }
        self.webhook = XeroWebhook()
        self.api_base = "https://api.xero.com"  # events' resourceUrl (the sandbox names its own)
        self._watch(self.organisations[TENANT_ID])
        if credit_notes:
            self.credit_notes.seed_examples()
        self.consent_picks: list[str] | None = None  # tenants ticked at consent; None: the first
        self.connections: dict[str, Connection] = {}  # by tenant id: one per organisation
        self.app = Starlette(
            routes=[
                Route("/identity/connect/authorize", self.authorize),
                Route("/identity/connect/token", self.token, methods=["POST"]),
                Route("/identity/connect/revocation", self.revocation, methods=["POST"]),
                Route("/api/connections", self.list_connections),
                Route("/api/Connections", self.list_connections),
                Route("/api/connections/{id}", self.disconnect, methods=["DELETE"]),
                Route("/api/Connections/{id}", self.disconnect, methods=["DELETE"]),
                Route("/api/api.xro/2.0/Invoices", self.invoices),
                Route("/api/api.xro/2.0/Invoices/{key}", self.invoice),
                Route("/api/api.xro/2.0/CreditNotes", self.credit_notes_page),
                Route("/api/api.xro/2.0/CreditNotes/{key}", self.credit_note),
                Route("/api/api.xro/2.0/Organisation", self.organisation),
            ]
        )

    # -- organisations and connections -------------------------------------------------------

    def add_organisation(
        self, name: str, tenant_id: str | None = None, size: int | None = None
    ) -> Organisation:
        """Another organisation the user may tick at consent, with invoices of its own."""
        tenant_id = str(uuid.UUID(tenant_id)) if tenant_id else str(uuid.uuid4())
        if tenant_id in self.organisations:
            raise ValueError(f"organisation {tenant_id} exists already")
        dataset = Dataset(self._size if size is None else size, seed=f"xero:{tenant_id}")
        found = Organisation(tenant_id, name, str(uuid.uuid4()), dataset)
        self.organisations[tenant_id] = found
        self._watch(found)
        if self._credit_notes:
            found.credit_notes.seed_examples()
        return found

    @property
    def credit_notes(self) -> CreditNoteBook:
        """The first organisation's credit notes (as :attr:`dataset` is its invoices)."""
        return self.organisations[TENANT_ID].credit_notes

    def _watch(self, organisation: Organisation) -> None:
        """Post the organisation's invoice changes to the webhook, when there is one."""

        def changed(kind: str, indices: list[int]) -> None:
            if self.webhook.active:
                invoices = [organisation.dataset.invoice(index) for index in indices]
                self.webhook.add(
                    invoice_events(
                        organisation.tenant_id, self.api_base, kind, invoices, self._now()
                    )
                )

        organisation.dataset.on_change(changed)

        def credited(kind: str, notes: list[CreditNote]) -> None:
            if self.webhook.active:
                tenant = organisation.tenant_id
                self.webhook.add(credit_note_events(tenant, self.api_base, kind, notes))

        organisation.credit_notes.on_change(credited)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(float(self.clock()), UTC)

    def _consented(self, event_id: str, _scope: str) -> None:
        picks = self.consent_picks or [next(iter(self.organisations))]
        now = self._now()
        for tenant_id in picks:
            found = self.connections.get(tenant_id)
            if found is None:
                self.connections[tenant_id] = Connection(
                    self.organisations[tenant_id], event_id, now, now
                )
            else:  # a reconnection: the same connection, authorised again
                found.auth_event_id, found.updated, found.active = event_id, now, True

    def _claims(self, grant: Grant, _now: float) -> dict[str, Any]:
        return {
            "iss": "https://identity.xero.com",
            "aud": "https://identity.xero.com/resources",
            "sub": USER_ID.replace("-", ""),
            "auth_time": int(grant.auth_time),
            "xero_userid": USER_ID,
            "global_session_id": grant.event_id.replace("-", ""),
            "authentication_event_id": grant.event_id,
        }

    # -- identity ----------------------------------------------------------------------------

    async def revocation(self, request: Request) -> Response:
        """Revoking a refresh token also removes the user's connections, as on Xero."""
        form = await form_of(request)
        if not self.oauth.client_ok(form, request.headers.get("authorization")):
            return json_response({"error": "invalid_client"}, 401)
        if self.oauth.revoke_token(form.get("token", "")):
            for connection in self.connections.values():
                connection.active = False
        return Response(status_code=200)

    def _unauthorised(self, request: Request) -> Response | None:
        problem = self.oauth.check(bearer(request))
        if problem == "expired":
            stamp = datetime.now(UTC).strftime("%m/%d/%Y %H:%M:%S")
            detail = f"TokenExpired: token expired at {stamp}"
        elif problem == "invalid":
            detail = "AuthenticationUnsuccessful"
        else:
            return None
        return self._problem(401, "Unauthorized", detail)

    @staticmethod
    def _problem(status: int, title: str, detail: str) -> Response:
        return json_response(
            {"Type": None, "Title": title, "Status": status, "Detail": detail,
             "Instance": str(uuid.uuid4()), "Extensions": {}},
            status,
        )  # fmt: skip

    async def list_connections(self, request: Request) -> Response:
        refused = self._unauthorised(request)
        if refused is not None:
            return refused
        event = request.query_params.get("authEventId")
        if event is not None:
            try:
                event = str(uuid.UUID(event))
            except ValueError:
                return self._problem(400, "Bad Request", "authEventId is not a Guid")
        return json_response(
            [
                c.to_json()
                for c in self.connections.values()
                if c.active and (event is None or c.auth_event_id == event)
            ]
        )

    async def disconnect(self, request: Request) -> Response:
        refused = self._unauthorised(request)
        if refused is not None:
            return refused
        wanted = request.path_params["id"].lower()
        for connection in self.connections.values():
            if connection.active and connection.organisation.connection_id == wanted:
                connection.active = False
                return Response(status_code=204)
        return Response(status_code=404)

    # -- accounting --------------------------------------------------------------------------

    def _limit_headers(self) -> dict[str, str]:
        return {
            "X-DayLimit-Remaining": str(self.day.remaining),
            "X-MinLimit-Remaining": str(self.minute.remaining),
            "X-AppMinLimit-Remaining": "9999",
        }

    def _too_many(self, problem: str, retry_after: float | None) -> Response:
        self.rate_limited += 1
        headers = self._limit_headers()
        if retry_after is not None:  # none for the concurrency limit
            headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
        headers["X-Rate-Limit-Problem"] = problem
        return Response(status_code=429, headers=headers)

    async def _api(self, request: Request, handler: Handler, scopes: frozenset[str]) -> Response:
        """Authentication, tenant, scope, limits and faults, then ``handler``."""
        refused = self._unauthorised(request)
        if refused is not None:
            return refused
        connection = self.connections.get(request.headers.get("xero-tenant-id", "").lower())
        if connection is None or not connection.active:
            return self._problem(403, "Forbidden", "AuthenticationUnsuccessful")
        grant = self.oauth.grant_of(bearer(request))
        if grant is None or not grant.scopes & scopes:
            return self._problem(403, "Forbidden", "AuthorizationUnsuccessful")
        if self.busy_429 > 0 or not self.inflight.enter():
            self.busy_429 = max(0, self.busy_429 - 1)
            return self._too_many("concurrent", None)
        try:
            self.api_calls += 1
            await maybe_slow(self.faults)
            if self.faults.take("storm_429"):
                return self._too_many("minute", 1)
            allowed, _, _ = self.day.hit()
            if not allowed:
                tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(
                    hour=0, minute=0, second=0, microsecond=0
                )
                return self._too_many("day", (tomorrow - datetime.now(UTC)).total_seconds())
            allowed, _, wait = self.minute.hit()
            if not allowed:
                return self._too_many("minute", wait)
            if self.faults.take("fail_5xx"):
                return Response("Internal Server Error", 500, headers=self._limit_headers())
            response = await handler(request, connection.organisation)
            response.headers.update(self._limit_headers())
            return response
        finally:
            self.inflight.leave()

    @staticmethod
    def _refusal(exc: Exception) -> Response:
        if isinstance(exc, QueryError):
            body: dict[str, Any] = {"ErrorNumber": 16, "Type": "QueryParseException"}
        else:
            body = {"ErrorNumber": 10, "Type": "ValidationException"}
        body["Message"] = str(exc)
        body["Elements"] = [{"ValidationErrors": [{"Message": str(exc)}]}]
        return json_response(body, 400)

    async def invoices(self, request: Request) -> Response:
        return await self._api(request, self._invoices, INVOICE_SCOPES)

    async def _invoices(self, request: Request, organisation: Organisation) -> Response:
        if "application/json" not in request.headers.get("accept", ""):
            return Response("<Response><Status>OK</Status></Response>", media_type="text/xml")
        query = request.query_params
        try:
            ask = parse_listing(query)
        except (QueryError, Invalid) as exc:
            return self._refusal(exc)
        since = parse_http_time(request.headers.get("if-modified-since", ""))
        if self.faults.take("malformed"):
            return Response(MALFORMED, media_type="application/json")
        total, items = select(organisation.dataset, since, ask)
        lines = "page" in query and query.get("summaryOnly", "").lower() != "true"
        rendered = [render_invoice(i, lines=lines) for i in items]
        return json_response(envelope("Invoices", rendered, paged=(ask.page, ask.size, total)))

    async def invoice(self, request: Request) -> Response:
        return await self._api(request, self._invoice, INVOICE_SCOPES)

    async def _invoice(self, request: Request, organisation: Organisation) -> Response:
        dataset = organisation.dataset
        index = find_invoice(dataset, request.path_params["key"])
        if index is None:
            return Response(_NOT_FOUND, status_code=404, media_type="text/plain")
        return json_response(envelope("Invoices", [render_invoice(dataset.invoice(index))]))

    async def credit_notes_page(self, request: Request) -> Response:
        return await self._api(request, self._credit_notes_page, INVOICE_SCOPES)

    async def _credit_notes_page(self, request: Request, organisation: Organisation) -> Response:
        """As :meth:`_invoices` pages invoices (the granular ``accounting.invoices`` scopes cover
        credit notes; older apps' ``accounting.transactions`` too)."""
        if "application/json" not in request.headers.get("accept", ""):
            return Response("<Response><Status>OK</Status></Response>", media_type="text/xml")
        query = request.query_params
        since = parse_http_time(request.headers.get("if-modified-since", ""))
        try:
            page, size, total, notes = select_credit_notes(
                organisation.credit_notes.notes, since, query
            )
        except (QueryError, Invalid) as exc:
            return self._refusal(exc)
        rendered = [render_credit_note(n, lines="page" in query) for n in notes]
        return json_response(envelope("CreditNotes", rendered, paged=(page, size, total)))

    async def credit_note(self, request: Request) -> Response:
        return await self._api(request, self._credit_note, INVOICE_SCOPES)

    async def _credit_note(self, request: Request, organisation: Organisation) -> Response:
        found = organisation.credit_notes.find(request.path_params["key"])
        if found is None:
            return Response(_NOT_FOUND, status_code=404, media_type="text/plain")
        return json_response(envelope("CreditNotes", [render_credit_note(found)]))

    async def organisation(self, request: Request) -> Response:
        return await self._api(request, self._organisation, SETTINGS_SCOPES)

    async def _organisation(self, request: Request, organisation: Organisation) -> Response:
        return json_response(
            {
                "Id": str(uuid.uuid4()),
                "Status": "OK",
                "ProviderName": "intdash sandbox",
                "DateTimeUTC": ms_date(datetime.now(UTC)),
                "Organisations": [
                    {
                        "OrganisationID": organisation.tenant_id,
                        "Name": organisation.name,
                        "LegalName": organisation.name,
                        "BaseCurrency": "NZD",
                        "CountryCode": "NZ",
                        "IsDemoCompany": True,
                        "OrganisationStatus": "ACTIVE",
                        "Version": "NZ",
                        "OrganisationType": "COMPANY",
                    }
                ],
            }
        )
