"""Zoho Books: the accounts server and API domain of each connection, invoices by page and
``last_modified_time``, each invoice's tax read from the invoice itself as the rate limits allow
(:mod:`intdash.providers.zoho_tax`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, urlsplit

from intdash.core.catalog import IntegrationType
from intdash.core.config import ZohoSettings
from intdash.core.invoices import InvoiceData, InvoiceKind, SourceState
from intdash.providers.api import LARGE_BODY, require
from intdash.providers.base import InvoicePage, Tenant, TokenSet
from intdash.providers.connector import Connector, RateProblem, parse_json
from intdash.providers.errors import AuthorisationFailed, MalformedResponse, RateLimited
from intdash.providers.headers import seconds_from_now
from intdash.providers.http import httpx
from intdash.providers.paging import Listing, start_cursor, walk
from intdash.providers.ratelimit import RateLimits
from intdash.providers.zoho_lines import buyer_tax_id, parse_line_items, parse_payments
from intdash.providers.zoho_tax import (
    MINUTE_WAIT,
    Allowance,
    Handled,
    TaxBudget,
    TaxState,
    modified_at,
    needs_tax,
    read_on,
    refused_for_the_day,
    until_next_utc_day,
)

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


def _amount(raw: Mapping[str, Any], field: str, invoice_id: str) -> Decimal:
    value = raw.get(field)
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise MalformedResponse(f"Zoho: invoice {invoice_id}: {field} is not a number")
    return Decimal(value)


def parse_invoice(raw: Any) -> InvoiceData:
    """An invoice as Zoho's list has it (no tax: ``tax`` and ``subtotal`` are None, unknown; no
    lines, no payments) or as the invoice itself has it (``tax_total``; the subtotal is the
    total before tax, which is Zoho's ``sub_total`` when the invoice has no discount, shipping or
    adjustment; its ``line_items`` and ``payments``)."""
    if not isinstance(raw, dict) or not raw.get("invoice_id"):
        raise MalformedResponse("Zoho: an invoice has no invoice_id")
    invoice_id = str(raw["invoice_id"])
    total = _amount(raw, "total", invoice_id)
    tax = _amount(raw, "tax_total", invoice_id) if "tax_total" in raw else None
    return InvoiceData(
        external_id=invoice_id,
        number=raw.get("invoice_number") or None,
        kind=InvoiceKind.SALES,
        contact=raw.get("customer_name"),
        issue_date=_parse_date(raw.get("date"), "date", invoice_id),
        due_date=_parse_date(raw.get("due_date"), "due_date", invoice_id),
        currency=str(raw.get("currency_code") or ""),
        subtotal=None if tax is None else total - tax,
        tax=tax,
        total=total,
        source_status=raw.get("status"),
        source_updated_at=_parse_time(
            raw.get("last_modified_time"), "last_modified_time", invoice_id
        ),
        state=source_state(raw.get("status")),
        items=parse_line_items(raw, invoice_id),
        buyer_tax_id=buyer_tax_id(raw),
        payments=parse_payments(raw, invoice_id),
    )


class ZohoConnector(Connector):
    type: ClassVar[IntegrationType] = IntegrationType.ZOHO
    label: ClassVar[str] = "Zoho Books"
    scope: ClassVar[str] = "ZohoBooks.invoices.READ,ZohoBooks.settings.READ"
    auth_method: ClassVar[str] = "client_secret_post"
    grant_codes: ClassVar[bool] = True
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

    # -- rate limits (see intdash.providers.zoho_tax) ------------------------------------

    def _allowance(self, response: httpx.Response) -> Allowance | None:
        return Allowance.of(response, self.clock())

    def remaining_calls(self, response: httpx.Response) -> int | None:
        allowance = self._allowance(response)
        return None if allowance is None or allowance.daily else allowance.remaining

    def reset_after(self, response: httpx.Response) -> float | None:
        allowance = self._allowance(response)
        return None if allowance is None or allowance.daily else allowance.reset

    def daily_remaining(self, response: httpx.Response) -> int | None:
        allowance = self._allowance(response)
        return allowance.remaining if allowance is not None and allowance.daily else None

    def rate_problem(self, response: httpx.Response) -> RateProblem | None:
        """A 429: the day's calls spent (the sync stops until the day ends) or the minute's
        (wait for ``Retry-After`` when given, else for the window's reset, else a minute)."""
        if response.status_code != 429:
            return None
        now = self.clock()
        allowance = self._allowance(response)
        retry_after = seconds_from_now(response.headers.get("Retry-After"), now)
        if refused_for_the_day(response, allowance):
            if retry_after is None and allowance is not None and allowance.daily:
                retry_after = allowance.reset
            return RateProblem(retry_after or until_next_utc_day(now), daily=True)
        if retry_after is None and allowance is not None and not allowance.daily:
            retry_after = allowance.reset
        return RateProblem(MINUTE_WAIT if retry_after is None else retry_after)

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

    async def _get(
        self, api: ApiClient, url: str, params: Mapping[str, str], what: str, budget: TaxBudget
    ) -> Any:
        """GET and parse (off the loop when large), noting what the answer says of the
        allowance."""
        response = await api.get(url, params=params)
        budget.note(response, self.clock())
        if len(response.content) > LARGE_BODY:
            return await asyncio.to_thread(parse_json, response, what)
        return parse_json(response, what)

    async def _read(
        self, api: ApiClient, base: str, tenant: Tenant, listed: InvoiceData, budget: TaxBudget
    ) -> InvoiceData:
        """The invoice itself, with its tax (one call, spent from the budget). A newer version
        than the one listed is taken as it is: it is what the books hold now."""
        budget.spend()
        what = f"Zoho invoice {listed.external_id}"
        data = await self._get(
            api,
            f"{base}/invoices/{quote(listed.external_id, safe='')}",
            {"organization_id": tenant.id},
            what,
            budget,
        )
        read = parse_invoice(require(data, "invoice", dict, what))
        if read.external_id != listed.external_id or read.tax is None:
            raise MalformedResponse(f"{what}: the answer is not that invoice with its tax_total")
        listed_at, read_at = listed.source_updated_at, read.source_updated_at
        if listed_at is not None and read_at is not None and read_at < listed_at:
            return listed  # (an older copy than the list's: not to be trusted)
        return read

    async def pages(
        self, api: ApiClient, cursor: str | None, since: date | None
    ) -> AsyncIterator[InvoicePage]:
        """Invoices modified since the cursor, oldest change first, by keyset pages (see
        :mod:`intdash.providers.paging`), then the tax of those stored without it.

        Zoho's list has no tax, and reading it costs a call per invoice: more than a large first
        sync can afford (:mod:`intdash.providers.zoho_tax`). So the tax is read only of the
        invoices that are fiscalized (approved sales: not drafts, not voids), in the list's
        order, as far as the sync's :class:`~intdash.providers.zoho_tax.TaxBudget` goes; the
        rest are stored with their tax unknown (None, never 0), and wait, not fiscalized (see
        :func:`intdash.core.services.invoices.service._without_tax`). Where reading stopped is
        kept in the cursor (:class:`~intdash.providers.zoho_tax.TaxState`): while anything waits,
        new invoices join the end of the queue, and after listing what changed, each sync
        reads on from there, oldest first, as its budget allows, listing again from that point
        (a call per 200 invoices) rather than reading invoices one by one to find them.
        Zoho's ``last_modified_time`` includes the time given; what is read twice is upserted
        unchanged."""
        tenant = api.tenant
        if tenant is None:
            raise AuthorisationFailed("Zoho: no organization chosen yet: connect first")
        paging, state = TaxState.split(cursor)
        state.today(datetime.fromtimestamp(self.clock(), UTC).date())
        budget = TaxBudget(self.settings.daily_limit, state.reads, self.limits.per_window // 2)
        ended = [False]  # whether the last page listed was the list's last
        base = self._api((await api.token()).extra)  # (the connection's api_domain)

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
            what = f"Zoho invoices page {page}"
            data = await self._get(api, f"{base}/invoices", params, what, budget)
            raw = require(data, "invoices", list, what)
            context = data.get("page_context") if isinstance(data, dict) else None
            more = isinstance(context, dict) and bool(context.get("has_more_page"))
            ended[0] = not more
            return Listing([parse_invoice(item) for item in raw], more=more)

        async def read(listed: InvoiceData) -> InvoiceData:
            return await self._read(api, base, tenant, listed, budget)

        def page_of(invoices: list[InvoiceData], paged: str | None) -> InvoicePage:
            state.reads = budget.reads
            return InvoicePage(invoices, state.encode(paged))

        handled = Handled()
        async for found in walk(fetch, start_cursor(paging, since), label="Zoho invoices"):
            paging = found.cursor
            out: list[InvoiceData] = []
            for index, listed in enumerate(found.invoices):
                moment = modified_at(listed)
                if state.backlog is None and needs_tax(listed):
                    if not budget.allows():
                        state.backlog = handled.before(moment)
                    else:
                        try:
                            out.append(await read(listed))
                        except RateLimited:  # keep what was listed; the next sync reads on
                            state.backlog = handled.before(moment)
                            yield page_of(out + list(found.invoices[index:]), paging)
                            raise
                        handled.add(moment, listed.external_id)
                        continue
                if state.backlog is None:
                    handled.add(moment, listed.external_id)
                out.append(listed)
            yield page_of(out, paging)
        if state.backlog is not None and budget.allows():
            async for page in read_on(fetch, read, state, budget, ended):
                yield page_of(page, paging)
