"""Zoho Books: the accounts server and API domain of each connection, invoices and then credit
notes (:mod:`intdash.providers.zoho_credits`) by page and ``last_modified_time``, the tax of each
read from the document itself as the rate limits allow (:mod:`intdash.providers.zoho_tax`)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, urlsplit

from authlib.integrations.httpx_client import AsyncOAuth2Client

from intdash.core.catalog import IntegrationType
from intdash.core.config import ZohoSettings
from intdash.core.invoices import InvoiceData, InvoiceKind
from intdash.providers.api import parsed, require
from intdash.providers.base import InvoicePage, Tenant, TokenSet
from intdash.providers.connector import Connector, RateProblem
from intdash.providers.errors import AuthorisationFailed, MalformedResponse, RateLimited
from intdash.providers.headers import seconds_from_now
from intdash.providers.http import httpx
from intdash.providers.paging import (
    Listing,
    StreamPages,
    chain_streams,
    split_streams,
    start_cursor,
    walk,
)
from intdash.providers.ratelimit import RateLimits
from intdash.providers.zoho_credits import (
    CREDIT_NOTES,
    Documents,
    applied,
    first_credited,
    may_read,
)
from intdash.providers.zoho_credits import SCOPE as CREDIT_SCOPE
from intdash.providers.zoho_lines import TIME_FORMAT
from intdash.providers.zoho_lines import parse_invoice as parse_invoice
from intdash.providers.zoho_lines import source_state as source_state
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

log = logging.getLogger(__name__)

ACCOUNTS_HOSTS = {
    "accounts.zoho.com", "accounts.zoho.eu", "accounts.zoho.in", "accounts.zoho.com.au",
    "accounts.zoho.jp", "accounts.zohocloud.ca", "accounts.zoho.sa", "accounts.zoho.uk",
    "accounts.zoho.com.cn",
}  # fmt: skip


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


INVOICES = Documents("invoices", "invoice", "invoice", parse_invoice)


class ZohoConnector(Connector):
    type: ClassVar[IntegrationType] = IntegrationType.ZOHO
    label: ClassVar[str] = "Zoho Books"
    scope: ClassVar[str] = f"ZohoBooks.invoices.READ,{CREDIT_SCOPE},ZohoBooks.settings.READ"
    auth_method: ClassVar[str] = "client_secret_post"
    grant_codes: ClassVar[bool] = True
    default_limits: ClassVar[RateLimits] = RateLimits(per_window=100, window=60.0)
    settings: ZohoSettings

    @property
    def authorize_url(self) -> str:
        return f"{self.settings.accounts_url.rstrip('/')}/oauth/v2/auth"

    def authorize_params(self) -> dict[str, str]:
        return {"access_type": "offline", "prompt": "consent"}

    def oauth_client(self, redirect_uri: str | None = None) -> AsyncOAuth2Client:
        """Zoho takes the scope with the consent alone (its refresh takes none): a refresh does
        not ask for it again, so a connection consented to before the connector asked for more
        (credit notes) goes on refreshing, with what it was granted."""
        client = super().oauth_client(redirect_uri)
        if redirect_uri is None:  # (a refresh, or a self-client code's exchange)
            client.scope = None
        return client

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
        self,
        api: ApiClient,
        url: str,
        params: Mapping[str, str],
        what: str,
        budget: TaxBudget,
        parse: Callable[[Any], Any] | None = None,
    ) -> Any:
        """GET, decode and ``parse`` (off the loop when large), noting what the answer says of
        the allowance."""
        response = await api.get(url, params=params)
        budget.note(response, self.clock())
        if parse is None:
            return await parsed(response, what)
        return await parsed(response, what, parse)

    async def _read(
        self,
        api: ApiClient,
        base: str,
        tenant: Tenant,
        docs: Documents,
        listed: InvoiceData,
        budget: TaxBudget,
    ) -> InvoiceData:
        """The document itself, with its tax (one call, spent from the budget); a credit note
        that names no invoice but has been applied, with the invoice it was applied to (one call
        more). A newer version than the one listed is taken as it is: it is what the books hold
        now."""
        budget.spend()
        what = f"Zoho {docs.noun} {listed.external_id}"
        url = f"{base}/{docs.path}/{quote(listed.external_id, safe='')}"
        org = {"organization_id": tenant.id}
        raw = require(await self._get(api, url, org, what, budget), docs.one, dict, what)
        read = docs.parse(raw)
        if read.external_id != listed.external_id or read.tax is None:
            raise MalformedResponse(
                f"{what}: the answer is not that {docs.noun} with its tax_total"
            )
        listed_at, read_at = listed.source_updated_at, read.source_updated_at
        if listed_at is not None and read_at is not None and read_at < listed_at:
            return listed  # (an older copy than the list's: not to be trusted)
        if read.kind is InvoiceKind.CREDIT_NOTE and read.credits is None and applied(raw):
            budget.spend()
            credited = await self._get(api, f"{url}/invoices", org, what, budget)
            read = replace(read, credits=first_credited(credited, what))
        return read

    async def pages(
        self, api: ApiClient, cursor: str | None, since: date | None
    ) -> AsyncIterator[InvoicePage]:
        """Invoices modified since the cursor, then credit notes (two streams, each with its
        part of the cursor: :func:`~intdash.providers.paging.chain_streams`), each oldest change
        first, by keyset pages (see :mod:`intdash.providers.paging`), then the tax of those
        stored without it.

        Zoho's lists have no tax, and reading it costs a call per document: more than a large
        first sync can afford (:mod:`intdash.providers.zoho_tax`). So the tax is read only of
        what is fiscalized (approved sales and credit notes: not drafts, not voids), in each
        list's order, as far as the sync's :class:`~intdash.providers.zoho_tax.TaxBudget` goes
        (one budget for both streams, the day's reads counted in each part of the cursor); the
        rest are stored with their tax unknown (None, never 0), and wait, not fiscalized (see
        :func:`intdash.core.services.invoices.service._without_tax`). Where reading stopped is
        kept in each stream's cursor (:class:`~intdash.providers.zoho_tax.TaxState`): while
        anything waits, new documents join the end of the queue, and after listing what
        changed, each sync reads on from there, oldest first, as its budget allows, listing
        again from that point (a call per 200) rather than reading documents one by one to find
        them. Zoho's ``last_modified_time`` includes the time given; what is read twice is
        upserted unchanged."""
        tenant = api.tenant
        if tenant is None:
            raise AuthorisationFailed("Zoho: no organization chosen yet: connect first")
        day = datetime.fromtimestamp(self.clock(), UTC).date()
        parts = [TaxState.split(part)[1] for part in split_streams(cursor)]
        reads = max(state.reads if state.day == day else 0 for state in parts)
        budget = TaxBudget(self.settings.daily_limit, reads, self.limits.per_window // 2)
        token = await api.token()
        base = self._api(token.extra)  # (the connection's api_domain)

        def stream(docs: Documents) -> StreamPages:
            def pages_of(part: str | None) -> AsyncIterator[InvoicePage]:
                return self._stream(api, base, tenant, docs, part, since, budget, day)

            return pages_of

        credit_notes = stream(CREDIT_NOTES)
        if not may_read(token.scope):
            log.warning(
                "Zoho: organization %s: the consent does not grant %s: credit notes are not "
                "read until it is connected again",
                tenant.id,
                CREDIT_SCOPE,
            )
            credit_notes = _nothing
        async for page in chain_streams(cursor, stream(INVOICES), credit_notes):
            yield page

    async def _stream(
        self,
        api: ApiClient,
        base: str,
        tenant: Tenant,
        docs: Documents,
        cursor: str | None,
        since: date | None,
        budget: TaxBudget,
        day: date,
    ) -> AsyncIterator[InvoicePage]:
        """One list's documents modified since its cursor, read as :meth:`pages` says."""
        paging, state = TaxState.split(cursor)
        state.today(day)
        ended = [False]  # whether the last page listed was the list's last

        async def fetch(modified_since: datetime | None, page: int) -> Listing:
            params = {
                "organization_id": tenant.id,
                "per_page": str(self.settings.page_size),
                "sort_column": "last_modified_time",
                "sort_order": "A",
                "page": str(page),
            }
            if modified_since is not None:
                params["last_modified_time"] = modified_since.astimezone(UTC).strftime(TIME_FORMAT)
            what = f"{docs.label} page {page}"

            def listing(data: Any) -> Listing:  # with the JSON, off the loop when large
                raw = require(data, docs.path, list, what)
                context = data.get("page_context")
                more = isinstance(context, dict) and bool(context.get("has_more_page"))
                return Listing([docs.parse(item) for item in raw], more=more)

            found: Listing = await self._get(
                api, f"{base}/{docs.path}", params, what, budget, listing
            )
            ended[0] = not found.more
            return found

        async def read(listed: InvoiceData) -> InvoiceData:
            return await self._read(api, base, tenant, docs, listed, budget)

        def page_of(invoices: list[InvoiceData], paged: str | None) -> InvoicePage:
            state.reads = budget.reads
            return InvoicePage(invoices, state.encode(paged))

        handled = Handled()
        async for found in walk(fetch, start_cursor(paging, since), label=docs.label):
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
            async for page in read_on(fetch, read, state, budget, ended, label=docs.label):
                yield page_of(page, paging)


async def _nothing(_cursor: str | None) -> AsyncIterator[InvoicePage]:
    """A stream not read: no page (its part of the cursor stays as it was)."""
    return
    yield  # (an async generator)
