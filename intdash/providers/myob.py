"""MYOB Business (AccountRight): company files, invoices by OData page and LastModified."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from intdash.core.catalog import IntegrationType
from intdash.core.config import MyobSettings
from intdash.core.invoices import InvoiceData, InvoiceKind, SourceState
from intdash.providers.base import InvoicePage, Tenant, TokenSet
from intdash.providers.connector import Connector, RateProblem, member, parse_json
from intdash.providers.errors import AuthorisationFailed, MalformedResponse
from intdash.providers.http import httpx
from intdash.providers.paging import Listing, start_cursor, walk
from intdash.providers.ratelimit import RateLimits

if TYPE_CHECKING:
    from intdash.providers.api import ApiClient

BASE_CURRENCY = {"NZ": "NZD", "AU": "AUD"}


def _time(value: Any, field: str, uid: str) -> datetime:
    """MYOB writes times without an offset; they are taken as UTC."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise MalformedResponse(f"MYOB: invoice {uid}: {field} is not a time: {value!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _money(raw: Mapping[str, Any], field: str, uid: str) -> Decimal:
    value = raw.get(field)
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise MalformedResponse(f"MYOB: invoice {uid}: {field} is not a number")
    return Decimal(value)


def parse_invoice(raw: Any, base_currency: str) -> InvoiceData:
    """A MYOB sale invoice. ``Sale/Invoice`` lists issued invoices only (quotes and orders live
    under ``Sale/Quote`` and ``Sale/Order``), Open, Closed or in Credit alike: all approved."""
    if not isinstance(raw, dict) or not isinstance(raw.get("UID"), str):
        raise MalformedResponse("MYOB: an invoice has no UID")
    uid = raw["UID"]
    customer, terms = member(raw, "Customer"), member(raw, "Terms")
    foreign = member(raw, "ForeignCurrency")
    return InvoiceData(
        external_id=uid,
        number=raw.get("Number") or None,
        kind=InvoiceKind.SALES,
        contact=customer.get("Name"),
        issue_date=_time(raw["Date"], "Date", uid).date() if raw.get("Date") else None,
        due_date=_time(terms["DueDate"], "DueDate", uid).date() if terms.get("DueDate") else None,
        currency=str(foreign.get("Code") or base_currency),
        subtotal=_money(raw, "Subtotal", uid),
        tax=_money(raw, "TotalTax", uid),
        total=_money(raw, "TotalAmount", uid),
        source_status=raw.get("Status"),
        source_updated_at=_time(raw.get("LastModified"), "LastModified", uid),
        state=SourceState.APPROVED,
    )


class MyobConnector(Connector):
    type: ClassVar[IntegrationType] = IntegrationType.MYOB
    label: ClassVar[str] = "MYOB"
    scope: ClassVar[str] = "sme-company-file sme-customer sme-invoice"
    auth_method: ClassVar[str] = "client_secret_post"
    default_limits: ClassVar[RateLimits] = RateLimits(per_window=8, window=1.0)
    settings: MyobSettings

    @property
    def authorize_url(self) -> str:
        return self.settings.authorize_url

    def token_url(self, token: TokenSet | None = None) -> str:
        return self.settings.token_url

    def authorize_params(self) -> dict[str, str]:
        return {"prompt": "consent"}  # so that the redirect names the company file

    @property
    def api(self) -> str:
        return self.settings.api_url.rstrip("/") + "/accountright"

    def auth_headers(self, token: TokenSet, tenant: Tenant | None) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {token.access_token}",
            "x-myobapi-key": self.settings.client_id,
            "x-myobapi-version": "v2",
            "Accept": "application/json",
        }
        if tenant is not None and tenant.extra.get("cftoken"):
            headers["x-myobapi-cftoken"] = tenant.extra["cftoken"]
        return headers

    def rate_problem(self, response: httpx.Response) -> RateProblem | None:
        if response.status_code != 403:
            return None
        try:
            errors = parse_json(response, "MYOB").get("Errors") or []
        except (MalformedResponse, AttributeError):
            return None
        if any(isinstance(e, dict) and e.get("Name") == "RateLimitError" for e in errors):
            return RateProblem(1.0)
        return None

    @staticmethod
    def company_file_token(username: str, password: str) -> str:
        return base64.b64encode(f"{username}:{password}".encode()).decode()

    async def find_tenant(
        self, api: ApiClient, callback: Mapping[str, str], settings: Mapping[str, Any]
    ) -> Tenant:
        files = await api.get_json(f"{self.api}/", what="MYOB company files")
        if not isinstance(files, list):
            raise MalformedResponse("MYOB company files: expected a list")
        wanted = callback.get("businessId") or settings.get("company_file_id")
        if wanted:
            chosen = next((f for f in files if isinstance(f, dict) and f.get("Id") == wanted), None)
            if chosen is None:
                raise AuthorisationFailed(f"MYOB company file {wanted} is not among those allowed")
        elif len(files) == 1 and isinstance(files[0], dict):
            chosen = files[0]
        else:
            raise AuthorisationFailed(
                f"the MYOB consent allows {len(files)} company files: set company_file_id"
            )
        extra = {"currency": BASE_CURRENCY.get(str(chosen.get("Country")), "AUD")}
        return Tenant(str(chosen["Id"]), str(chosen.get("Name") or chosen["Id"]), extra)

    def settings_from_tenant(self, tenant: Tenant) -> dict[str, str]:
        return {"company_file_id": tenant.id}

    async def test(self, api: ApiClient) -> str:
        tenant = api.tenant
        if tenant is None:
            raise AuthorisationFailed("MYOB: no company file chosen yet: connect first")
        await api.get_json(f"{self.api}/{tenant.id}/CurrentUser", what="MYOB CurrentUser")
        return f"MYOB company file {tenant.name} answered"

    async def pages(
        self, api: ApiClient, cursor: str | None, since: date | None
    ) -> AsyncIterator[InvoicePage]:
        """Invoices modified since the cursor, oldest change first, by keyset pages (see
        :mod:`intdash.providers.paging`) rather than ``NextPageLink``, whose ``$skip`` loses
        invoices edited during the sync."""
        tenant = api.tenant
        if tenant is None:
            raise AuthorisationFailed("MYOB: no company file chosen yet: connect first")
        url = f"{self.api}/{tenant.id}/Sale/Invoice"
        currency = tenant.extra.get("currency", "AUD")
        size = self.settings.page_size

        async def fetch(modified_since: datetime | None, page: int) -> Listing:
            params = {
                "$top": str(size),
                "$skip": str((page - 1) * size),
                "$orderby": "LastModified asc",
            }
            if modified_since is not None:
                stamp = modified_since.astimezone(UTC).replace(tzinfo=None)
                params["$filter"] = f"LastModified gt datetime'{stamp.isoformat('T', 'seconds')}'"
            data = await api.get_json(url, params=params, what="MYOB invoices")
            items = data.get("Items") if isinstance(data, dict) else None
            if not isinstance(items, list):
                raise MalformedResponse("MYOB invoices: expected 'Items' (list) in the answer")
            invoices = await asyncio.to_thread(
                lambda: [parse_invoice(item, currency) for item in items]
            )
            return Listing(invoices, more=len(items) >= size)

        async for found in walk(fetch, start_cursor(cursor, since), label="MYOB invoices"):
            yield found
