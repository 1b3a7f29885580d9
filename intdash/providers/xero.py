"""Xero: OAuth 2.0 with PKCE, the consent's tenant from /connections, invoices and then credit
notes by page and If-Modified-Since."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from intdash.core.catalog import IntegrationType
from intdash.core.config import XeroSettings
from intdash.core.invoices import InvoiceData, InvoiceKind, LineItem, Payment, SourceState
from intdash.providers.api import require
from intdash.providers.base import InvoicePage, Tenant, TokenSet
from intdash.providers.connector import Connector, RateProblem, member
from intdash.providers.errors import AuthorisationFailed, MalformedResponse
from intdash.providers.headers import seconds_from_now
from intdash.providers.http import httpx
from intdash.providers.paging import Listing, StreamPages, chain_streams, start_cursor, walk
from intdash.providers.ratelimit import RateLimits

if TYPE_CHECKING:
    from intdash.providers.api import ApiClient

_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")


def parse_ms_date(value: Any, field: str) -> datetime:
    """A .NET JSON date, ``/Date(1539993600000+0000)/``: milliseconds since the epoch (UTC)."""
    found = _MS_DATE.match(value) if isinstance(value, str) else None
    if not found:
        raise MalformedResponse(f"Xero: {field} is not a .NET date: {value!r}")
    return datetime.fromtimestamp(int(found.group(1)) / 1000, UTC)


def _money(raw: Mapping[str, Any], field: str, what: str) -> Decimal:
    value = raw.get(field, 0)
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise MalformedResponse(f"Xero: {what}: {field} is not a number")
    return Decimal(value)


def _number(raw: Mapping[str, Any], field: str, what: str) -> Decimal | None:
    value = raw.get(field)
    if value is None or type(value) is Decimal:  # the JSON's numbers are read as Decimals
        return value
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise MalformedResponse(f"Xero: {what}: a line's {field} is not a number")
    return Decimal(value)


# LineAmountTypes: whether the lines' amounts include tax (NoTax: the lines carry none)
_INCLUSIVE = {"Exclusive": False, "Inclusive": True, "NoTax": None}


def parse_line_items(
    raw: Mapping[str, Any], invoice_id: str, *, document: str = "invoice"
) -> tuple[LineItem, ...]:
    """The invoice's (or credit note's: ``document``) ``LineItems`` as Xero has them (paged and
    single reads carry them; a ``summaryOnly`` listing does not: none then). A line's discount
    is Xero's ``DiscountAmount``, or its ``DiscountRate`` percent of quantity x unit amount; a
    text-only line (no quantity, unit amount nor amount) sells nothing and is left out."""
    what = f"{document} {invoice_id}"
    lines = raw.get("LineItems")
    if lines is None:
        return ()
    if not isinstance(lines, list) or not all(isinstance(line, dict) for line in lines):
        raise MalformedResponse(f"Xero: {what}: LineItems is not a list of lines")
    basis = raw.get("LineAmountTypes", "Exclusive")
    if basis not in _INCLUSIVE:
        raise MalformedResponse(f"Xero: {what}: unknown LineAmountTypes {basis!r}")
    items: list[LineItem] = []
    for line in lines:
        quantity = _number(line, "Quantity", what)
        unit = _number(line, "UnitAmount", what)
        amount = _number(line, "LineAmount", what)
        if not (quantity or unit or amount):
            continue
        quantity, unit = quantity or Decimal(0), unit or Decimal(0)
        discount = _number(line, "DiscountAmount", what)
        rate = _number(line, "DiscountRate", what)
        if discount is None:
            discount = quantity * unit * rate / 100 if rate else Decimal(0)
        items.append(
            LineItem(
                name=str(line.get("Description") or line.get("ItemCode") or ""),
                quantity=quantity,
                unit_price=unit,
                total=quantity * unit - discount if amount is None else amount,
                discount=discount,
                tax_code=line.get("TaxType") or None,
                tax_amount=_number(line, "TaxAmount", what),
                item_code=line.get("ItemCode") or None,
                tax_inclusive=_INCLUSIVE[basis],
            )
        )
    return tuple(items)


def parse_payments(
    raw: Mapping[str, Any], invoice_id: str, *, document: str = "invoice"
) -> tuple[Payment, ...]:
    """The invoice's ``Payments`` (their amounts; Xero's invoice does not say how each was
    paid); a credit note's are the credit paid out (refunded in money)."""
    what = f"{document} {invoice_id}"
    payments = raw.get("Payments")
    if not isinstance(payments, list):
        return ()
    found: list[Payment] = []
    for payment in payments:
        amount = _number(payment, "Amount", what) if isinstance(payment, dict) else None
        if amount is None:
            raise MalformedResponse(f"Xero: {what}: a payment has no Amount")
        found.append(Payment(amount))
    return tuple(found)


APPROVED = frozenset({"AUTHORISED", "PAID"})
VOID = frozenset({"VOIDED", "DELETED"})


def source_state(status: Any) -> SourceState:
    """Xero: AUTHORISED and PAID are issued; VOIDED and DELETED are gone; DRAFT and SUBMITTED
    (awaiting approval) are not yet issued."""
    if status in APPROVED:
        return SourceState.APPROVED
    return SourceState.VOID if status in VOID else SourceState.PENDING


def _document(
    raw: Any, id_field: str, number_field: str, document: str, types: Mapping[str, InvoiceKind]
) -> tuple[str, str, InvoiceData]:
    """What an invoice and a credit note share: (its id, its Type, the rest of it read)."""
    if not isinstance(raw, dict) or not isinstance(raw.get(id_field), str):
        raise MalformedResponse(f"Xero: a listed {document} has no {id_field}")
    external_id = raw[id_field]
    what = f"{document} {external_id}"
    contact = member(raw, "Contact")
    kind = raw.get("Type")
    if not isinstance(kind, str) or kind not in types:
        raise MalformedResponse(f"Xero: {what}: unknown Type {kind!r}")
    currency = raw.get("CurrencyCode")
    if not isinstance(currency, str) or len(currency) != 3:
        raise MalformedResponse(f"Xero: {what}: bad CurrencyCode {currency!r}")
    data = InvoiceData(
        external_id=external_id,
        number=raw.get(number_field) or None,
        kind=types[kind],
        contact=contact.get("Name"),
        issue_date=parse_ms_date(raw["Date"], "Date").date() if raw.get("Date") else None,
        due_date=parse_ms_date(raw["DueDate"], "DueDate").date() if raw.get("DueDate") else None,
        currency=currency,
        subtotal=_money(raw, "SubTotal", what),
        tax=_money(raw, "TotalTax", what),
        total=_money(raw, "Total", what),
        source_status=raw.get("Status"),
        source_updated_at=parse_ms_date(raw.get("UpdatedDateUTC"), "UpdatedDateUTC"),
        state=source_state(raw.get("Status")),
        items=parse_line_items(raw, external_id, document=document),
        buyer_tax_id=str(contact.get("TaxNumber") or "").strip() or None,
        payments=parse_payments(raw, external_id, document=document),
    )
    return external_id, kind, data


# an /Invoices answer holds invoices and bills; credit notes are /CreditNotes' alone
INVOICE_TYPES = {"ACCREC": InvoiceKind.SALES, "ACCPAY": InvoiceKind.PURCHASE}
CREDIT_NOTE_TYPES = {"ACCRECCREDIT": InvoiceKind.CREDIT_NOTE, "ACCPAYCREDIT": InvoiceKind.PURCHASE}


def parse_invoice(raw: Any) -> InvoiceData:
    """An invoice (ACCREC) or a bill (ACCPAY, a purchase) of ``GET /Invoices``."""
    return _document(raw, "InvoiceID", "InvoiceNumber", "invoice", INVOICE_TYPES)[2]


def parse_credit_note(raw: Any) -> InvoiceData:
    """A credit note of ``GET /CreditNotes``. A sales one (ACCRECCREDIT) is a credit note that
    credits the invoice of its earliest allocation by the allocation's Date (the first listed
    of one date): a credit note allocated to several invoices names the first of them, as a
    refund names one invoice, and one not allocated yet names none (its allocation, a change
    that a later sync reads, names it then). A purchase one (ACCPAYCREDIT) is a purchase. Its
    amounts are positive, as Xero writes them; its lines are read as an invoice's."""
    credit_note_id, kind, data = _document(
        raw, "CreditNoteID", "CreditNoteNumber", "credit note", CREDIT_NOTE_TYPES
    )
    if kind != "ACCRECCREDIT":
        return data
    return replace(data, credits=_first_allocated(raw, credit_note_id))


def _first_allocated(raw: Mapping[str, Any], credit_note_id: str) -> str | None:
    """The InvoiceID of the credit note's earliest allocation (by Date), if it has one."""
    allocations = raw.get("Allocations") or []
    if not isinstance(allocations, list):
        raise MalformedResponse(f"Xero: credit note {credit_note_id}: Allocations is not a list")
    first: tuple[datetime, str] | None = None
    for allocation in allocations:
        if not isinstance(allocation, dict) or allocation.get("IsDeleted") is True:
            continue
        invoice = allocation.get("Invoice")
        invoice_id = invoice.get("InvoiceID") if isinstance(invoice, dict) else None
        if not isinstance(invoice_id, str) or not invoice_id:
            raise MalformedResponse(
                f"Xero: credit note {credit_note_id}: an allocation names no invoice"
            )
        when = parse_ms_date(allocation.get("Date"), "an allocation's Date")
        if first is None or when < first[0]:
            first = (when, invoice_id)
    return None if first is None else first[1]


def _http_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


CONCURRENCY_WAIT = 1.0  # a 429 that names no wait: the concurrency limit, free again in a moment
MINUTE_WAIT = 60.0  # a minute limit met without Retry-After (undocumented): the whole window


def auth_event_id(access_token: str) -> str | None:
    """The consent an access token comes from: ``authentication_event_id`` in the payload of
    Xero's JWT, read without verifying the signature (Xero checks the token; intdash only uses
    it to find the consent's tenants). None when the token is not a JWT or names no event."""
    parts = access_token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:  # not base64, not UTF-8 or not JSON
        return None
    found = payload.get("authentication_event_id") if isinstance(payload, dict) else None
    return found if isinstance(found, str) and found else None


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
        """Xero's 429: ``Retry-After`` when it names one; a concurrency 429 carries none (wait a
        second); a day's limit is a stop until tomorrow, not a retry."""
        if response.status_code != 429:
            return None
        problem = response.headers.get("X-Rate-Limit-Problem", "").lower()
        now = self.clock()
        retry_after = seconds_from_now(response.headers.get("Retry-After"), now)
        if retry_after is None:
            if problem == "day":  # until the day's allowance starts again
                reset = self.daily_resets_at(datetime.fromtimestamp(now, UTC))
                retry_after = max(0.0, reset.timestamp() - now)
            elif problem in ("minute", "appminute"):
                retry_after = MINUTE_WAIT
            else:
                retry_after = CONCURRENCY_WAIT
        return RateProblem(retry_after, daily=problem == "day")

    def remaining_calls(self, response: httpx.Response) -> int | None:
        value = response.headers.get("X-MinLimit-Remaining")
        return int(value) if value and value.isdigit() else None

    def daily_remaining(self, response: httpx.Response) -> int | None:
        value = response.headers.get("X-DayLimit-Remaining", "").strip()
        return int(value) if value.isdigit() else None

    async def find_tenant(
        self, api: ApiClient, callback: Mapping[str, str], settings: Mapping[str, Any]
    ) -> Tenant:
        """The organisation of this consent: /connections lists every organisation the user has
        connected to the app, by any consent (another integration's, a colleague's made a moment
        later), so it is asked for the tenants of this consent's ``authEventId`` (from the
        access token). When the consent ticked several, a reconnection keeps the organisation it
        had; otherwise the operator is asked to tick one. A token naming no event falls back to
        the organisation connected most recently."""
        event = auth_event_id((await api.token()).access_token)
        connections = await api.get_json(
            f"{self.api}/connections",
            params={"authEventId": event} if event else None,
            what="Xero /connections",
        )
        if not isinstance(connections, list):
            raise MalformedResponse("Xero /connections: expected a list")
        organisations = [
            c for c in connections
            if isinstance(c, dict) and c.get("tenantType") == "ORGANISATION" and c.get("tenantId")
            and (event is None or c.get("authEventId", event) == event)
        ]  # fmt: skip
        if not organisations:
            raise AuthorisationFailed("the Xero consent gave access to no organisation")
        if event is None:
            chosen = max(organisations, key=lambda c: str(c.get("updatedDateUtc", "")))
        elif len(organisations) == 1:
            chosen = organisations[0]
        else:
            chosen = self._one_of(organisations, settings)
        return Tenant(
            str(chosen["tenantId"]),
            str(chosen.get("tenantName") or chosen["tenantId"]),
            {"connection_id": str(chosen.get("id", "")), "auth_event_id": event or ""},
        )

    @staticmethod
    def _one_of(organisations: list[dict[str, Any]], settings: Mapping[str, Any]) -> dict[str, Any]:
        """Of several organisations ticked in one consent, the one the integration had before."""
        before = settings.get("tenant_name")
        same = [c for c in organisations if before and c.get("tenantName") == before]
        if len(same) == 1:
            return same[0]
        names = ", ".join(sorted(str(c.get("tenantName") or c["tenantId"]) for c in organisations))
        raise AuthorisationFailed(
            f"the Xero consent gave access to {len(organisations)} organisations ({names}); an "
            "integration reads one: connect again and tick only the organisation it is for"
        )

    async def test(self, api: ApiClient) -> str:
        data = await api.get_json(f"{self.api}/api.xro/2.0/Organisation", what="Xero /Organisation")
        organisations = require(data, "Organisations", list, "Xero /Organisation")
        name = organisations[0].get("Name") if organisations else None
        return f"Xero organisation {name or '(unnamed)'} answered"

    async def pages(
        self, api: ApiClient, cursor: str | None, since: date | None
    ) -> AsyncIterator[InvoicePage]:
        """Invoices modified since the cursor, then credit notes (Xero lists them apart), each
        oldest change first by keyset pages with a cursor of its own (see
        :mod:`intdash.providers.paging`); the order is asked for, never assumed."""
        size = self.settings.page_size

        def stream(resource: str, parse: Callable[[Any], InvoiceData], label: str) -> StreamPages:
            async def fetch(modified_since: datetime | None, page: int) -> Listing:
                headers = (
                    {"If-Modified-Since": _http_time(modified_since)} if modified_since else {}
                )
                what = f"{label} page {page}"

                def listing(data: Any) -> Listing:  # with the JSON, off the loop when large
                    raw = require(data, resource, list, what)
                    return Listing([parse(item) for item in raw], more=len(raw) >= size)

                return await api.get_parsed(
                    f"{self.api}/api.xro/2.0/{resource}",
                    listing,
                    params={
                        "page": str(page),
                        "pageSize": str(size),
                        "order": "UpdatedDateUTC ASC",
                    },
                    headers=headers,
                    what=what,
                )

            return lambda at: walk(fetch, start_cursor(at, since), label=label)

        invoices = stream("Invoices", parse_invoice, "Xero invoices")
        credit_notes = stream("CreditNotes", parse_credit_note, "Xero credit notes")
        async for found in chain_streams(cursor, invoices, credit_notes):
            yield found
