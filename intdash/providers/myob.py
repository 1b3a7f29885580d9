"""MYOB Business (AccountRight): the consent's company file, invoices by OData page and
LastModified, credit notes with the invoices they credit (:mod:`intdash.providers.myob_credits`),
calls paced per API key."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from intdash.core.catalog import IntegrationType
from intdash.core.config import MyobSettings
from intdash.core.invoices import InvoiceData, InvoiceKind, LineItem, SourceState
from intdash.providers.base import InvoicePage, Tenant, TokenSet
from intdash.providers.connector import Connector, RateProblem, member, parse_json
from intdash.providers.errors import AuthorisationFailed, MalformedResponse
from intdash.providers.http import httpx
from intdash.providers.myob_credits import (
    TOP,
    Settlements,
    batches,
    guid_filter,
    items_of,
    turned,
)
from intdash.providers.paging import Listing, chain_streams, start_cursor, walk
from intdash.providers.ratelimit import RateLimits

if TYPE_CHECKING:
    from authlib.integrations.httpx_client import AsyncOAuth2Client

    from intdash.providers.api import ApiClient

BASE_CURRENCY = {"NZ": "NZD", "AU": "AUD"}
SECOND_WAIT = 1.0  # over 8 calls a second: the next second has room again
DAY = 86_400.0


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


def _line_number(raw: Mapping[str, Any], field: str, uid: str) -> Decimal | None:
    value = raw.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise MalformedResponse(f"MYOB: invoice {uid}: a line's {field} is not a number")
    return Decimal(value)


def parse_lines(raw: Mapping[str, Any], uid: str) -> tuple[LineItem, ...]:
    """The ``Lines`` of an invoice read by its layout (``Sale/Invoice/Item``, ``…/Service``;
    the all-layouts ``Sale/Invoice`` has none): an item line's ``ShipQuantity``, a service
    line's ``UnitCount`` (one when it has none), ``UnitPrice``, ``DiscountPercent`` (an
    amount here), ``Total`` (with tax when ``IsTaxInclusive``), its ``TaxCode.Code`` and the
    item's ``Number``. Header lines, subtotals and blank lines sell nothing and are left out."""
    lines = raw.get("Lines")
    if lines is None:
        return ()
    if not isinstance(lines, list) or not all(isinstance(line, dict) for line in lines):
        raise MalformedResponse(f"MYOB: invoice {uid}: Lines is not a list of lines")
    inclusive = raw.get("IsTaxInclusive")
    items: list[LineItem] = []
    for line in lines:
        total = _line_number(line, "Total", uid)
        if line.get("Type", "Transaction") != "Transaction" or total is None:
            continue
        quantity = _line_number(line, "ShipQuantity", uid)
        if quantity is None:
            quantity = _line_number(line, "UnitCount", uid)
        unit = _line_number(line, "UnitPrice", uid)
        if quantity is None or unit is None:  # a service line of its total alone
            quantity, unit = Decimal(1), total
        rate = _line_number(line, "DiscountPercent", uid) or Decimal(0)
        tax, item = member(line, "TaxCode"), member(line, "Item")
        items.append(
            LineItem(
                name=str(line.get("Description") or item.get("Name") or ""),
                quantity=quantity,
                unit_price=unit,
                total=total,
                discount=quantity * unit * rate / 100,
                tax_code=str(tax["Code"]) if tax.get("Code") else None,
                item_code=str(item["Number"]) if item.get("Number") else None,
                tax_inclusive=inclusive if isinstance(inclusive, bool) else None,
            )
        )
    return tuple(items)


def parse_invoice(raw: Any, base_currency: str) -> InvoiceData:
    """A MYOB sale invoice. ``Sale/Invoice`` lists issued invoices only (quotes and orders live
    under ``Sale/Quote`` and ``Sale/Order``), Open, Closed or in Credit alike: all approved. A
    sale of a negative total is a credit note, taken in its own terms: its amounts and lines
    positive (:func:`~intdash.providers.myob_credits.turned`); the invoice it credits is named
    by its settlements, read apart (``credits`` None here)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("UID"), str):
        raise MalformedResponse("MYOB: an invoice has no UID")
    uid = raw["UID"]
    customer, terms = member(raw, "Customer"), member(raw, "Terms")
    foreign = member(raw, "ForeignCurrency")
    subtotal, tax = _money(raw, "Subtotal", uid), _money(raw, "TotalTax", uid)
    total, items = _money(raw, "TotalAmount", uid), parse_lines(raw, uid)
    credit = total < 0
    if credit:
        subtotal, tax, total = -subtotal, -tax, -total
        items = tuple(turned(item) for item in items)
    return InvoiceData(
        external_id=uid,
        number=raw.get("Number") or None,
        kind=InvoiceKind.CREDIT_NOTE if credit else InvoiceKind.SALES,
        contact=customer.get("Name"),
        issue_date=_time(raw["Date"], "Date", uid).date() if raw.get("Date") else None,
        due_date=_time(terms["DueDate"], "DueDate", uid).date() if terms.get("DueDate") else None,
        currency=str(foreign.get("Code") or base_currency),
        subtotal=subtotal,
        tax=tax,
        total=total,
        source_status=raw.get("Status"),
        source_updated_at=_time(raw.get("LastModified"), "LastModified", uid),
        state=SourceState.APPROVED,
        items=items,
    )


def _file_tenant(raw: Mapping[str, Any]) -> Tenant:
    """A company file as MYOB describes it (``Id``, ``Name``, ``Country``)."""
    file_id = str(raw["Id"])
    extra = {"currency": BASE_CURRENCY.get(str(raw.get("Country")), "AUD")}
    return Tenant(file_id, str(raw.get("Name") or file_id), extra)


class MyobConnector(Connector):
    type: ClassVar[IntegrationType] = IntegrationType.MYOB
    label: ClassVar[str] = "MYOB"
    scope: ClassVar[str] = MyobSettings.model_fields["scope"].default  # oauth_client: the setting
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

    def oauth_client(self, redirect_uri: str | None = None) -> AsyncOAuth2Client:
        """The OAuth client, asking for the scopes of the settings (``INTDASH_MYOB__SCOPE``)."""
        client = super().oauth_client(redirect_uri)
        client.scope = self.settings.scope
        return client

    def pacer_key(self, tenant_id: str) -> str:
        """MYOB's limits (8 calls a second, 1,000,000 a day) are per API key, shared by every
        company file reached with it: one pacer for the key."""
        return f"api-key:{self.settings.client_id}"

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
        """MYOB's 403 ``RateLimitError``: over 8 calls a second, wait a second; over the day's
        calls ("exceeded the daily rate limit"), stop until the next midnight UTC."""
        if response.status_code != 403:
            return None
        try:
            errors = parse_json(response, "MYOB").get("Errors")
        except (MalformedResponse, AttributeError):
            return None
        limits = [
            e for e in (errors if isinstance(errors, list) else [])
            if isinstance(e, dict) and e.get("Name") == "RateLimitError"
        ]  # fmt: skip
        if not limits:
            return None
        if any("daily" in str(e.get("Message", "")).lower() for e in limits):
            return RateProblem(DAY - self.clock() % DAY, daily=True)
        return RateProblem(SECOND_WAIT)

    @staticmethod
    def company_file_token(username: str, password: str) -> str:
        return base64.b64encode(f"{username}:{password}".encode()).decode()

    def tenant_extra(
        self, settings: Mapping[str, Any], secrets: Mapping[str, str | None]
    ) -> dict[str, str]:
        """A company file that needs its own sign-in: its token, sent as ``x-myobapi-cftoken``."""
        user, password = settings.get("company_file_username"), secrets.get("company_file_password")
        if not (user and password):
            return {}
        return {"cftoken": self.company_file_token(str(user), str(password))}

    async def find_tenant(
        self, api: ApiClient, callback: Mapping[str, str], settings: Mapping[str, Any]
    ) -> Tenant:
        """The company file of this consent. The consent's redirect names it (``businessId``,
        sent because intdash asks with ``prompt=consent``): it is taken without listing files,
        which API keys made since 12 March 2025 cannot do, its name and country read from the
        file itself. A redirect without one (a key made before then) leaves the files the
        consent allows to be listed, ``company_file_id`` choosing among several. A consent for
        another file than the integration's ``company_file_id`` is refused."""
        wanted = str(settings.get("company_file_id") or "").strip()
        business = str(callback.get("businessId") or "").strip()
        if business:
            try:
                business = str(uuid.UUID(business))
            except ValueError:
                raise AuthorisationFailed(
                    f"the MYOB redirect's businessId is not a company file GUID: {business[:60]!r}"
                ) from None
            if wanted and wanted.lower() != business.lower():
                raise AuthorisationFailed(
                    f"the MYOB consent is for company file {business}, but this integration "
                    f"reads {wanted}: connect again and approve that company file"
                )
            return await self._consented_file(api, business, callback.get("businessName"))
        listed = await api.get_json(f"{self.api}/", what="MYOB company files")
        if not isinstance(listed, list):
            raise MalformedResponse("MYOB company files: expected a list")
        files = [f for f in listed if isinstance(f, dict) and f.get("Id")]
        if not files:
            raise AuthorisationFailed(
                "MYOB did not name the company file: the consent's redirect carried no "
                "businessId, and the API key lists no company files (keys made since 12 March "
                "2025 never do; the redirect is the only source): connect again and give the "
                "whole redirected URL"
            )
        if wanted:
            chosen = next((f for f in files if str(f["Id"]).lower() == wanted.lower()), None)
            if chosen is None:
                raise AuthorisationFailed(f"MYOB company file {wanted} is not among those allowed")
        elif len(files) == 1:
            chosen = files[0]
        else:
            names = ", ".join(sorted(str(f.get("Name") or f["Id"]) for f in files))
            raise AuthorisationFailed(
                f"the MYOB consent allows {len(files)} company files ({names}): set "
                "company_file_id to the one this integration reads"
            )
        return _file_tenant(chosen)

    async def _consented_file(self, api: ApiClient, file_id: str, name: str | None) -> Tenant:
        """The company file the redirect named, confirmed by asking it for itself (one call,
        allowed by the ``sme-company-file`` scope): ``{"CompanyFile": {Id, Name, Country,
        ...}}``. Where it gives no name, the redirect's ``businessName`` is used, else the id."""
        data = await api.get_json(f"{self.api}/{file_id}/", what="MYOB company file")
        found = member(data, "CompanyFile") if isinstance(data, dict) else {}
        if str(found.get("Id") or file_id).lower() != file_id.lower():
            raise MalformedResponse(f"MYOB company file {file_id} answered as {found['Id']}")
        return _file_tenant({**found, "Id": file_id, "Name": found.get("Name") or name})

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
        invoices edited during the sync; each with its lines, read by its layout (see
        :func:`with_lines`), each credit note with the invoice it credits; then the credit
        settlements made since the cursor's second part, each bringing its credit note again
        unless this sync gave it with that settlement already (see
        :mod:`intdash.providers.myob_credits`).

        A sync that finds nothing changed makes three calls (four when the last second read
        holds invoices of two layouts): the sales of that second read again, with their layout's
        lines (what was read again is passed over, its settlements not read), and the
        settlements of the last second read again."""
        tenant = api.tenant
        if tenant is None:
            raise AuthorisationFailed("MYOB: no company file chosen yet: connect first")
        base = f"{self.api}/{tenant.id}"
        url = f"{base}/Sale/Invoice"
        currency = tenant.extra.get("currency", "AUD")
        size = self.settings.page_size
        settlements = Settlements(api, f"{base}/Sale/CreditSettlement")

        async def invoices(at: str | None) -> AsyncIterator[InvoicePage]:
            async def fetch(modified_since: datetime | None, page: int) -> Listing:
                params = _page_params(size, page, modified_since)
                items = await _read(api, url, params, "MYOB invoices")
                listed = await asyncio.to_thread(
                    lambda: [_listed(item, currency) for item in items]
                )
                invoices = await with_lines(api, url, listed, currency)
                return Listing(invoices, more=len(items) >= size)

            async for found in walk(fetch, start_cursor(at, since), label="MYOB invoices"):
                yield InvoicePage(await settlements.credit(found.invoices), found.cursor)

        async def credit_notes(at: str | None) -> AsyncIterator[InvoicePage]:
            async def fetch(modified_since: datetime | None, page: int) -> Listing:
                read = await settlements.read(_page_params(size, page, modified_since))
                return Listing([s.entry() for s in read], more=len(read) >= size)

            label = "MYOB credit settlements"
            async for found in walk(fetch, start_cursor(at, since), label=label):
                named = await self.sales_named(api, url, settlements.unseen(found.invoices))
                credited = await settlements.credit(named)
                if credited or found.cursor != at:  # a sync that finds none leaves no page
                    yield InvoicePage(credited, found.cursor)
                at = found.cursor

        async for found in chain_streams(cursor, invoices, credit_notes):
            yield found

    async def sales_named(self, api: ApiClient, url: str, uids: list[str]) -> list[InvoiceData]:
        """The sales of these UIDs, with their lines: one ``Sale/Invoice`` read for each
        :data:`~intdash.providers.myob_credits.GUIDS_PER_CALL`, then their layouts' reads."""
        tenant = api.tenant
        currency = tenant.extra.get("currency", "AUD") if tenant else "AUD"
        found: list[InvoiceData] = []
        for batch in batches(uids):
            params = {"$filter": guid_filter("UID", batch), "$top": str(TOP)}
            items = await _read(api, url, params, "MYOB invoices")
            listed = [_listed(item, currency) for item in items]
            found.extend(await with_lines(api, url, listed, currency, by_uid=True))
        return found


async def _read(api: ApiClient, url: str, params: Mapping[str, str], what: str) -> list[Any]:
    """The ``Items`` of a MYOB list."""
    return items_of(await api.get_json(url, params=params, what=what), what)


def _page_params(size: int, page: int, modified_since: datetime | None) -> dict[str, str]:
    """A page of a list ordered by ``LastModified``, of what was modified since a time."""
    params = {"$top": str(size), "$skip": str((page - 1) * size), "$orderby": "LastModified asc"}
    if modified_since is not None:
        params["$filter"] = f"LastModified gt {_literal(modified_since)}"
    return params


# -- lines, read by layout -----------------------------------------------------------------------

LAYOUTS = ("Item", "Service", "Professional", "TimeBilling", "Miscellaneous")
LAYOUT_TOP = 1000  # MYOB's largest $top


def _literal(moment: datetime) -> str:
    """An OData (version 3) datetime literal to the second, in UTC without an offset, as MYOB
    takes it."""
    stamp = moment.astimezone(UTC).replace(tzinfo=None, microsecond=0)
    return f"datetime'{stamp.isoformat('T', 'seconds')}'"


Listed = tuple[InvoiceData, str, str]  # the invoice as listed, its layout, its version


def _version(raw: Mapping[str, Any]) -> str:
    """What tells one version of an invoice's lines from another: its ``LastModified`` (not
    its ``RowVersion``, which also moves when credit or a payment is applied to it, changing
    no line and not its ``LastModified``)."""
    return str(raw.get("LastModified"))


def _listed(raw: Any, currency: str) -> Listed:
    invoice = parse_invoice(raw, currency)
    layout = raw.get("InvoiceType")
    if layout not in LAYOUTS:
        raise MalformedResponse(
            f"MYOB: invoice {invoice.external_id}: InvoiceType {layout!r} is not a layout "
            f"({', '.join(LAYOUTS)})"
        )
    return invoice, str(layout), _version(raw)


def _lines_of(
    records: list[tuple[str, Mapping[str, Any]]],
) -> dict[tuple[str, str], tuple[LineItem, ...]]:
    """The lines of each of ``records`` (an invoice's UID and its layout's record), by UID and
    version, in order (the first malformed one fails them all)."""
    return {(uid, _version(raw)): parse_lines(raw, uid) for uid, raw in records}


async def with_lines(
    api: ApiClient, url: str, listed: list[Listed], currency: str, *, by_uid: bool = False
) -> list[InvoiceData]:
    """The page's invoices with their lines, which ``Sale/Invoice`` does not carry and each
    layout's own list (``Sale/Invoice/Item``, ``…/Service``, ...) does: one call per layout on
    the page, for that layout's invoices modified within the page's seconds (from the first
    one's second to the end of the last one's; more calls only when over 1,000 of the layout
    share them), or ``by_uid``, for those invoices by UID (sales read by UID are spread over
    time). An invoice is taken with the lines of the same version (its ``LastModified``). One
    edited or deleted between the two reads is not on the page: its edit moved it past the
    page, where the paging meets it again (a deletion has nothing left to read). A failed
    layout read fails the page: none of its invoices goes without lines."""
    if not listed:
        return []
    times = [invoice.source_updated_at for invoice, _, _ in listed]
    if any(moment is None for moment in times):
        raise MalformedResponse("MYOB invoices: an invoice has no LastModified")
    first, last = min(t for t in times if t), max(t for t in times if t)
    window = (
        f"LastModified ge {_literal(first)} and "
        f"LastModified lt {_literal(last.replace(microsecond=0) + timedelta(seconds=1))}"
    )
    lines: dict[tuple[str, str], tuple[LineItem, ...]] = {}
    for layout in sorted({layout for _, layout, _ in listed}):
        wanted = {invoice.external_id for invoice, kind, _ in listed if kind == layout}
        filters = (
            [guid_filter("UID", batch) for batch in batches(sorted(wanted))] if by_uid else [window]
        )
        for text in filters:
            skip = 0
            while wanted:
                params = {
                    "$filter": text,
                    "$orderby": "LastModified asc",
                    "$top": str(LAYOUT_TOP),
                    "$skip": str(skip),
                }
                items = await _read(api, f"{url}/{layout}", params, f"MYOB {layout} invoices")
                ours: list[tuple[str, Mapping[str, Any]]] = []
                for raw in items:
                    if isinstance(raw, dict) and raw.get("UID") in wanted:
                        uid = str(raw["UID"])
                        ours.append((uid, raw))
                        wanted.discard(uid)
                if ours:  # all of the answer's in one thread: a hop an invoice cost more
                    lines.update(await asyncio.to_thread(_lines_of, ours))
                if len(items) < LAYOUT_TOP:
                    break
                skip += len(items)
    kept: list[InvoiceData] = []
    for invoice, _, version in listed:
        found = lines.get((invoice.external_id, version))
        if found is not None and invoice.kind is InvoiceKind.CREDIT_NOTE:
            found = tuple(turned(item) for item in found)
        if found is not None:
            kept.append(replace(invoice, items=found))
    return kept
