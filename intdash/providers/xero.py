"""Xero: OAuth 2.0 with PKCE, tenants from /connections, invoices by page and If-Modified-Since."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from intdash.core.catalog import IntegrationType
from intdash.core.config import XeroSettings
from intdash.core.invoices import InvoiceData, InvoiceKind, SourceState
from intdash.providers.api import require
from intdash.providers.base import InvoicePage, Tenant, TokenSet
from intdash.providers.connector import Connector, RateProblem, member
from intdash.providers.errors import AuthorisationFailed, MalformedResponse
from intdash.providers.http import httpx
from intdash.providers.ratelimit import RateLimits

if TYPE_CHECKING:
    from intdash.providers.api import ApiClient

PAGE_SIZE = 100
_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")


def parse_ms_date(value: Any, field: str) -> datetime:
    """A .NET JSON date, ``/Date(1539993600000+0000)/``: milliseconds since the epoch (UTC)."""
    found = _MS_DATE.match(value) if isinstance(value, str) else None
    if not found:
        raise MalformedResponse(f"Xero: {field} is not a .NET date: {value!r}")
    return datetime.fromtimestamp(int(found.group(1)) / 1000, UTC)


def _money(raw: Mapping[str, Any], field: str) -> Decimal:
    value = raw.get(field, 0)
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise MalformedResponse(f"Xero: invoice {raw.get('InvoiceID')}: {field} is not a number")
    return Decimal(value)


APPROVED = frozenset({"AUTHORISED", "PAID"})
VOID = frozenset({"VOIDED", "DELETED"})


def source_state(status: Any) -> SourceState:
    """Xero: AUTHORISED and PAID are issued; VOIDED and DELETED are gone; DRAFT and SUBMITTED
    (awaiting approval) are not yet issued."""
    if status in APPROVED:
        return SourceState.APPROVED
    return SourceState.VOID if status in VOID else SourceState.PENDING


def parse_invoice(raw: Any) -> InvoiceData:
    if not isinstance(raw, dict) or not isinstance(raw.get("InvoiceID"), str):
        raise MalformedResponse("Xero: an invoice has no InvoiceID")
    invoice_id = raw["InvoiceID"]
    contact = member(raw, "Contact")
    kind = raw.get("Type")
    if kind not in ("ACCREC", "ACCPAY", "ACCRECCREDIT", "ACCPAYCREDIT"):
        raise MalformedResponse(f"Xero: invoice {invoice_id}: unknown Type {kind!r}")
    currency = raw.get("CurrencyCode")
    if not isinstance(currency, str) or len(currency) != 3:
        raise MalformedResponse(f"Xero: invoice {invoice_id}: bad CurrencyCode {currency!r}")
    return InvoiceData(
        external_id=invoice_id,
        number=raw.get("InvoiceNumber") or None,
        kind=InvoiceKind.SALES if kind.startswith("ACCREC") else InvoiceKind.PURCHASE,
        contact=contact.get("Name"),
        issue_date=parse_ms_date(raw["Date"], "Date").date() if raw.get("Date") else None,
        due_date=parse_ms_date(raw["DueDate"], "DueDate").date() if raw.get("DueDate") else None,
        currency=currency,
        subtotal=_money(raw, "SubTotal"),
        tax=_money(raw, "TotalTax"),
        total=_money(raw, "Total"),
        source_status=raw.get("Status"),
        source_updated_at=parse_ms_date(raw.get("UpdatedDateUTC"), "UpdatedDateUTC"),
        state=source_state(raw.get("Status")),
    )


def _http_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


class XeroConnector(Connector):
    type: ClassVar[IntegrationType] = IntegrationType.XERO
    label: ClassVar[str] = "Xero"
    scope: ClassVar[str] = "offline_access accounting.invoices.read accounting.settings.read"
    pkce: ClassVar[bool] = True
    auth_method: ClassVar[str] = "client_secret_basic"
    default_limits: ClassVar[RateLimits] = RateLimits(per_window=60, window=60.0, concurrent=5)
    settings: XeroSettings

    @property
    def authorize_url(self) -> str:
        return self.settings.authorize_url

    def token_url(self, token: TokenSet | None = None) -> str:
        return self.settings.token_url

    @property
    def api(self) -> str:
        return self.settings.api_url.rstrip("/")

    def auth_headers(self, token: TokenSet, tenant: Tenant | None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {token.access_token}", "Accept": "application/json"}
        if tenant is not None:
            headers["xero-tenant-id"] = tenant.id
        return headers

    def rate_problem(self, response: httpx.Response) -> RateProblem | None:
        if response.status_code != 429:
            return None
        try:
            retry_after = float(response.headers.get("Retry-After", "60"))
        except ValueError:
            retry_after = 60.0
        problem = response.headers.get("X-Rate-Limit-Problem", "").lower()
        return RateProblem(retry_after, daily=problem == "day")

    def remaining_calls(self, response: httpx.Response) -> int | None:
        value = response.headers.get("X-MinLimit-Remaining")
        return int(value) if value and value.isdigit() else None

    async def find_tenant(
        self, api: ApiClient, callback: Mapping[str, str], settings: Mapping[str, Any]
    ) -> Tenant:
        connections = await api.get_json(f"{self.api}/connections", what="Xero /connections")
        if not isinstance(connections, list):
            raise MalformedResponse("Xero /connections: expected a list")
        organisations = [
            c for c in connections
            if isinstance(c, dict) and c.get("tenantType") == "ORGANISATION" and c.get("tenantId")
        ]  # fmt: skip
        if not organisations:
            raise AuthorisationFailed("the Xero consent gave access to no organisation")
        # the one authorised most recently is the one just chosen
        chosen = max(organisations, key=lambda c: str(c.get("updatedDateUtc", "")))
        return Tenant(
            str(chosen["tenantId"]),
            str(chosen.get("tenantName") or chosen["tenantId"]),
            {"connection_id": str(chosen.get("id", ""))},
        )

    async def test(self, api: ApiClient) -> str:
        data = await api.get_json(f"{self.api}/api.xro/2.0/Organisation", what="Xero /Organisation")
        organisations = require(data, "Organisations", list, "Xero /Organisation")
        name = organisations[0].get("Name") if organisations else None
        return f"Xero organisation {name or '(unnamed)'} answered"

    async def pages(
        self, api: ApiClient, cursor: str | None, since: date | None
    ) -> AsyncIterator[InvoicePage]:
        watermark: datetime | None = datetime.fromisoformat(cursor) if cursor else None
        if watermark is None and since is not None:
            watermark = datetime.combine(since, datetime.min.time(), UTC) - timedelta(seconds=1)
        headers = {"If-Modified-Since": _http_time(watermark)} if watermark else {}
        highest = watermark
        page = 1
        while True:
            data = await api.get_json(
                f"{self.api}/api.xro/2.0/Invoices",
                params={
                    "page": str(page),
                    "pageSize": str(PAGE_SIZE),
                    "order": "UpdatedDateUTC ASC",
                },
                headers=headers,
                what=f"Xero invoices page {page}",
            )
            raw = require(data, "Invoices", list, f"Xero invoices page {page}")
            invoices = [parse_invoice(item) for item in raw]
            for invoice in invoices:
                if invoice.source_updated_at and (
                    highest is None or invoice.source_updated_at > highest
                ):
                    highest = invoice.source_updated_at
            yield InvoicePage(invoices, highest.isoformat() if highest else cursor)
            if len(raw) < PAGE_SIZE:
                return
            page += 1
