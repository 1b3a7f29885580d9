"""Zoho Books: the accounts server and API domain of each connection, invoices by page and
``last_modified_time``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from intdash.core.catalog import IntegrationType
from intdash.core.config import ZohoSettings
from intdash.core.invoices import InvoiceData, InvoiceKind, SourceState
from intdash.providers.api import require
from intdash.providers.base import InvoicePage, Tenant, TokenSet
from intdash.providers.connector import Connector, RateProblem
from intdash.providers.errors import AuthorisationFailed, MalformedResponse
from intdash.providers.http import httpx
from intdash.providers.paging import Listing, start_cursor, walk
from intdash.providers.ratelimit import RateLimits

if TYPE_CHECKING:
    from intdash.providers.api import ApiClient

ACCOUNTS_HOSTS = {
    "accounts.zoho.com", "accounts.zoho.eu", "accounts.zoho.in", "accounts.zoho.com.au",
    "accounts.zoho.jp", "accounts.zohocloud.ca", "accounts.zoho.sa", "accounts.zoho.uk",
    "accounts.zoho.com.cn",
}  # fmt: skip
_TIME = "%Y-%m-%dT%H:%M:%S%z"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _parse_time(value: Any, field: str, invoice_id: str) -> datetime:
    try:
        return datetime.strptime(str(value), _TIME).astimezone(UTC)
    except ValueError:
        raise MalformedResponse(f"Zoho: invoice {invoice_id}: bad {field}: {value!r}") from None


def _parse_date(value: Any, field: str, invoice_id: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise MalformedResponse(f"Zoho: invoice {invoice_id}: bad {field}: {value!r}") from None


# sent, and the states a sent invoice moves through (viewed by the customer, unpaid, overdue,
# partly or wholly paid): all issued
APPROVED = frozenset({"sent", "viewed", "unpaid", "overdue", "partially_paid", "paid"})


def source_state(status: Any) -> SourceState:
    """Zoho Books: a draft (or one pending approval) is not issued; void is gone."""
    if status in APPROVED:
        return SourceState.APPROVED
    return SourceState.VOID if status == "void" else SourceState.PENDING


def parse_invoice(raw: Any) -> InvoiceData:
    if not isinstance(raw, dict) or not raw.get("invoice_id"):
        raise MalformedResponse("Zoho: an invoice has no invoice_id")
    invoice_id = str(raw["invoice_id"])
    total = raw.get("total")
    if isinstance(total, bool) or not isinstance(total, int | Decimal):
        raise MalformedResponse(f"Zoho: invoice {invoice_id}: total is not a number")
    return InvoiceData(
        external_id=invoice_id,
        number=raw.get("invoice_number") or None,
        kind=InvoiceKind.SALES,
        contact=raw.get("customer_name"),
        issue_date=_parse_date(raw.get("date"), "date", invoice_id),
        due_date=_parse_date(raw.get("due_date"), "due_date", invoice_id),
        currency=str(raw.get("currency_code") or ""),
        # the invoice list carries totals only; the tax split is not in it
        subtotal=Decimal(total),
        tax=Decimal(0),
        total=Decimal(total),
        source_status=raw.get("status"),
        source_updated_at=_parse_time(
            raw.get("last_modified_time"), "last_modified_time", invoice_id
        ),
        state=source_state(raw.get("status")),
    )


class ZohoConnector(Connector):
    type: ClassVar[IntegrationType] = IntegrationType.ZOHO
    label: ClassVar[str] = "Zoho Books"
    scope: ClassVar[str] = "ZohoBooks.invoices.READ,ZohoBooks.settings.READ"
    auth_method: ClassVar[str] = "client_secret_post"
    default_limits: ClassVar[RateLimits] = RateLimits(per_window=100, window=60.0)
    settings: ZohoSettings

    @property
    def authorize_url(self) -> str:
        return f"{self.settings.accounts_url.rstrip('/')}/oauth/v2/auth"

    def authorize_params(self) -> dict[str, str]:
        return {"access_type": "offline", "prompt": "consent"}

    def _trusted(self, url: str, configured: str, hosts: set[str] | None) -> bool:
        """Only Zoho's own servers (or the one configured) may receive our client secret."""
        parts = urlsplit(url)
        if _origin(url) == _origin(configured):
            return True
        return parts.scheme == "https" and hosts is not None and parts.hostname in hosts

    def token_url(self, token: TokenSet | None = None) -> str:
        server = (
            token.extra.get("accounts_server") if token else None
        ) or self.settings.accounts_url
        return f"{server.rstrip('/')}/oauth/v2/token"

    def exchange_url(self, callback: Mapping[str, str]) -> str:
        return f"{self._accounts_server(callback).rstrip('/')}/oauth/v2/token"

    def _accounts_server(self, callback: Mapping[str, str]) -> str:
        server = callback.get("accounts-server") or self.settings.accounts_url
        if not self._trusted(server, self.settings.accounts_url, ACCOUNTS_HOSTS):
            raise AuthorisationFailed(
                f"the consent named an unknown Zoho accounts server: {server}"
            )
        return server

    def token_extra(self, callback: Mapping[str, str], token: Mapping[str, Any]) -> dict[str, str]:
        api_domain = str(token.get("api_domain") or self.settings.api_url)
        parts = urlsplit(api_domain)
        zoho_api = (parts.hostname or "").startswith("www.zohoapis.")
        if not (
            _origin(api_domain) == _origin(self.settings.api_url)
            or (parts.scheme == "https" and zoho_api)
        ):
            raise AuthorisationFailed(f"Zoho named an unknown API domain: {api_domain}")
        return {"accounts_server": self._accounts_server(callback), "api_domain": api_domain}

    def _api(self, token_extra: Mapping[str, str]) -> str:
        return (token_extra.get("api_domain") or self.settings.api_url).rstrip("/") + "/books/v3"

    def auth_headers(self, token: TokenSet, tenant: Tenant | None) -> dict[str, str]:
        return {"Authorization": f"Zoho-oauthtoken {token.access_token}"}

    def rate_problem(self, response: httpx.Response) -> RateProblem | None:
        if response.status_code != 429:
            return None
        try:
            return RateProblem(float(response.headers.get("Retry-After", "30")))
        except ValueError:
            return RateProblem(30.0)

    async def _organizations(self, api: ApiClient) -> list[dict[str, Any]]:
        token = await api.token()
        data = await api.get_json(
            f"{self._api(token.extra)}/organizations", what="Zoho organizations"
        )
        organizations = require(data, "organizations", list, "Zoho organizations")
        return [o for o in organizations if isinstance(o, dict) and o.get("organization_id")]

    async def find_tenant(
        self, api: ApiClient, callback: Mapping[str, str], settings: Mapping[str, Any]
    ) -> Tenant:
        organizations = await self._organizations(api)
        wanted = settings.get("organization_id")
        if wanted:
            chosen = next((o for o in organizations if str(o["organization_id"]) == wanted), None)
            if chosen is None:
                raise AuthorisationFailed(f"Zoho organization {wanted} is not among those allowed")
        else:
            chosen = next((o for o in organizations if o.get("is_default_org")), None) or (
                organizations[0] if organizations else None
            )
            if chosen is None:
                raise AuthorisationFailed("the Zoho consent gave access to no organization")
        return Tenant(
            str(chosen["organization_id"]), str(chosen.get("name") or chosen["organization_id"])
        )

    def settings_from_tenant(self, tenant: Tenant) -> dict[str, str]:
        return {"organization_id": tenant.id}

    async def test(self, api: ApiClient) -> str:
        organizations = await self._organizations(api)
        names = [str(o.get("name")) for o in organizations]
        return f"Zoho Books answered with {len(names)} organization(s): {', '.join(names)}"

    async def pages(
        self, api: ApiClient, cursor: str | None, since: date | None
    ) -> AsyncIterator[InvoicePage]:
        """Invoices modified since the cursor, oldest change first, by keyset pages (see
        :mod:`intdash.providers.paging`). Zoho's ``last_modified_time`` includes the time given;
        what is read twice is upserted unchanged."""
        tenant = api.tenant
        if tenant is None:
            raise AuthorisationFailed("Zoho: no organization chosen yet: connect first")

        async def fetch(modified_since: datetime | None, page: int) -> Listing:
            params = {
                "organization_id": tenant.id,
                "per_page": str(self.settings.page_size),
                "sort_column": "last_modified_time",
                "sort_order": "A",
                "page": str(page),
            }
            if modified_since is not None:
                params["last_modified_time"] = modified_since.astimezone(UTC).strftime(_TIME)
            token = await api.token()
            data = await api.get_json(
                f"{self._api(token.extra)}/invoices",
                params=params,
                what=f"Zoho invoices page {page}",
            )
            raw = require(data, "invoices", list, f"Zoho invoices page {page}")
            context = data.get("page_context") if isinstance(data, dict) else None
            more = isinstance(context, dict) and bool(context.get("has_more_page"))
            return Listing([parse_invoice(item) for item in raw], more=more)

        async for found in walk(fetch, start_cursor(cursor, since), label="Zoho invoices"):
            yield found
