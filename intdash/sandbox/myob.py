"""MYOB Business (AccountRight) API, as far as intdash uses it, as strict as MYOB.

OAuth: the token endpoint takes the secret in the form body and sends ``expires_in`` as text
("1200"). Consent knows MYOB's granular scopes (``sme-…``); the legacy ``CompanyFile`` scope
only for an API key made before 12 March 2025 (``key_kind="old"``).

Company files: an administrator approves one company file per consent (the first, unless
:attr:`MyobEmulator.consent_pick` names another), and the tokens of that consent reach that file
only. For a new key (``key_kind="new"``, the default) the consent's redirect is the one place
that names it (``businessId`` and ``businessName``, sent only when ``prompt=consent`` was asked),
and ``GET /accountright/`` lists nothing (an empty list); an old key's redirect names none, its
tokens reach every file of the user and ``GET /accountright/`` lists them.
``GET /accountright/{cf}/`` describes the file (``{"CompanyFile": {...}}``).

Invoices: ``Sale/Invoice`` pages with OData ``$top``/``$skip`` and a ``NextPageLink``, for a token
with an invoice scope (``sme-sales``; ``CompanyFile`` for an old key), else 403. It lists every
layout without lines, each invoice's ``InvoiceType`` naming its layout; each layout's own
endpoint (``Sale/Invoice/Service``, ``…/Item``, ...) lists that layout's invoices with their
``Lines`` (a sandbox invoice is of the Service layout, or of the Item layout for one in three;
none of the others). ``$filter`` takes what MYOB's OData (version 3) takes on ``LastModified``:
comparisons ``gt``, ``ge``, ``lt``, ``le``, ``eq`` with a ``datetime'yyyy-mm-ddThh:mm[:ss[.f]]'``
literal (no offset, no ``Z``), and ``UID eq guid'…'`` (several joined by ``or``), joined by
``and``; anything else is refused with 400 (see :mod:`intdash.sandbox.myob_credits`).
:attr:`MyobEmulator.layout_failures` makes the next reads of a layout answer 500.

Credit notes: a credit note is a sale with negative amounts, ``Status`` ``Credit`` while any of
its credit is unapplied; applying it to an invoice is a ``Sale/CreditSettlement``, listed and
filtered as the sales are (:mod:`intdash.sandbox.myob_credits`). With ``credit_every=N`` one in
N of the sandbox's sales is a credit note, every other one of them settled; tests make more
with :meth:`MyobEmulator.credit_note`, apply them with :meth:`MyobEmulator.settle` and edit any
sale with :meth:`MyobEmulator.edit`. A query string longer than 2,048 characters is refused
with 404, as IIS's request filtering refuses it by default (MYOB's own limit is not published).

Limits are per API key, whichever company file a call reads: 8 calls a second and 1,000,000 a
day, each answered over the limit with 403 ``RateLimitError`` (the daily one says "exceeded the
daily rate limit"). :attr:`MyobEmulator.arrivals` keeps when each call came, for tests to count.
"""

from __future__ import annotations

import time
import uuid
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from intdash.sandbox.common import (
    MALFORMED,
    PlatformEmulator,
    RateWindow,
    base_of,
    bearer,
    json_response,
    maybe_slow,
)
from intdash.sandbox.dataset import Dataset, SourceInvoice, SourceLine
from intdash.sandbox.myob_credits import (
    SALE_GUIDS,
    SETTLEMENT_GUIDS,
    CreditBook,
    Query,
    Standing,
    customer_link,
    parse_filter,
    sales_of,
    utc_text,
)
from intdash.sandbox.myob_credits import (
    layout_of as layout_of,  # where it always was, for those who read it here
)
from intdash.sandbox.oauth import Grant, OAuthPolicy, OAuthServer

COMPANY_FILE_ID = "0f5e4d8c-1234-4abc-9def-0123456789ab"
COMPANY_NAME = "Bay Traders Ltd"
STATUSES = ("Open", "Open", "Closed", "Closed", "Closed")  # a sale's; a credit note's: "Credit"
LAYOUTS = ("Item", "Service", "Professional", "TimeBilling", "Miscellaneous")
DEFAULT_TOP = 400
MAX_TOP = 1000
MAX_QUERY = 2048  # IIS's default maxQueryString

# MYOB's granular scopes as its scope pages list them, and the two that its support article on
# keys made since March 2025 writes in its example (sme-customer, sme-invoice)
GRANULAR_SCOPES = frozenset(
    {"sme-company-file", "sme-company-settings", "sme-general-ledger", "sme-sales"}
    | {"sme-timebilling", "sme-inventory", "sme-banking", "sme-purchases", "sme-payroll"}
    | {f"sme-contacts-{kind}" for kind in ("customer", "supplier", "personal", "employee")}
    | {"sme-customer", "sme-invoice"}
)
LEGACY_SCOPES = frozenset({"CompanyFile", "la.global"})  # keys made before 12 March 2025
INVOICE_SCOPES = frozenset({"sme-sales", "sme-invoice", "CompanyFile"})
COMPANY_FILE_SCOPES = frozenset({"sme-company-file", "CompanyFile"})
DAILY_MESSAGE = "API key has exceeded the daily rate limit"
SECOND_MESSAGE = "API key has exceeded the per-second rate limit"

KeyKind = Literal["new", "old"]


def status_of(inv: SourceInvoice) -> str:
    """A sale's status before any credit is applied to it."""
    return STATUSES[inv.status % len(STATUSES)]


def _standing(inv: SourceInvoice, book: CreditBook | None) -> tuple[SourceInvoice, Standing]:
    if book is None:
        status = status_of(inv)
        return inv, Standing(1, status, Decimal(0) if status == "Closed" else inv.total, 0)
    return book.shown(inv), book.standing(inv)


def render_invoice(inv: SourceInvoice, base: str, book: CreditBook | None = None) -> dict[str, Any]:
    """A sale as ``Sale/Invoice`` lists it; a credit note (of ``book``) with its amounts
    negative, its customer and currency those of the sale it was raised for."""
    inv, standing = _standing(inv, book)
    layout, sign = layout_of(inv), standing.sign
    return {
        "UID": inv.id,
        "Number": inv.number,
        "Date": f"{inv.issue_date.isoformat()}T00:00:00",
        "Customer": customer_link(inv, base),
        "Status": standing.status,
        "InvoiceType": layout,
        "Terms": {"DueDate": f"{inv.due_date.isoformat()}T00:00:00"},
        "Subtotal": float(sign * inv.subtotal),
        "TotalTax": float(sign * inv.tax),
        "TotalAmount": float(sign * inv.total),
        "BalanceDueAmount": float(standing.balance),
        "ForeignCurrency": None if inv.currency == "NZD" else {"Code": inv.currency},
        "LastModified": utc_text(inv.updated),
        "RowVersion": str(1000 + inv.revision + 1_000_000 * standing.settled),
        "URI": f"{base}/Sale/Invoice/{layout}/{inv.id}",
    }


def _line(inv: SourceInvoice, n: int, line: SourceLine, base: str, sign: int) -> dict[str, Any]:
    """A line as the invoice's layout has it: a Service line's ``UnitCount`` and ``Account``, an
    Item line's ``ShipQuantity`` and ``Item``; ``Total`` = quantity x ``UnitPrice`` less
    ``DiscountPercent``, with tax when the invoice is tax-inclusive; its tax code. A credit
    note's (``sign`` -1) ``Total`` is negative: an Item line's quantity returned, a Service
    line's price."""
    quantity = float(line.quantity)
    body: dict[str, Any] = {"RowID": n + 1, "Type": "Transaction", "Description": line.description}
    item_layout = layout_of(inv) == "Item"
    if item_layout:
        item = str(uuid.uuid5(uuid.NAMESPACE_OID, f"myob-item:{line.item_code}"))
        body["ShipQuantity"] = sign * quantity
    else:
        body["UnitCount"] = quantity
    price = float(line.gross if inv.inclusive else line.unit_price)
    body["UnitPrice"] = price if item_layout else sign * price
    body["DiscountPercent"] = float(line.discount_rate)
    body["Total"] = sign * float(line.gross if inv.inclusive else line.net)
    if item_layout:
        body["Item"] = {
            "UID": item,
            "Number": line.item_code,
            "Name": line.description,
            "URI": f"{base}/Inventory/Item/{item}",
        }
        body["Location"] = None
    else:
        body["Account"] = {"UID": INCOME_ACCOUNT, "Name": "Sales", "DisplayID": "4-1000"}
    body["Job"] = None
    body["TaxCode"] = {
        "UID": GST_UID,
        "Code": "GST",
        "URI": f"{base}/GeneralLedger/TaxCode/{GST_UID}",
    }
    body["RowVersion"] = str(1000 + inv.revision)
    return body


def render_layout(inv: SourceInvoice, base: str, book: CreditBook | None = None) -> dict[str, Any]:
    """The invoice as its layout's endpoint (``Sale/Invoice/Service``, ``…/Item``) has it: the
    list's fields and its ``Lines``, ``IsTaxInclusive``."""
    body = render_invoice(inv, base, book)
    sign = -1 if book is not None and book.is_credit_note(inv.index) else 1
    body["IsTaxInclusive"] = inv.inclusive
    body["Lines"] = [_line(inv, n, line, base, sign) for n, line in enumerate(inv.lines)]
    return body


INCOME_ACCOUNT = "5b1c6a2e-8f0d-4e7a-9c3b-2d4f6a8b0c1e"
GST_UID = "a1f3c5e7-2b4d-4f6a-8c0e-1d3f5b7a9c2e"


@dataclass
class CompanyFile:
    id: str
    name: str
    country: str
    dataset: Dataset | None = None  # None: the emulator's own (its first file's)

    def to_json(self, base: str) -> dict[str, Any]:
        return {
            "Id": self.id,
            "Name": self.name,
            "LibraryPath": self.name,
            "ProductVersion": "2026.1",
            "ProductLevel": {"Code": 30, "Name": "Plus"},
            "CheckedOutDate": None,
            "CheckedOutBy": None,
            "Uri": f"{base}/api/accountright/{self.id}",
            "Country": self.country,
        }


Handler = Callable[[Request, CompanyFile | None], Awaitable[Response]]


class MyobEmulator(PlatformEmulator):
    def __init__(
        self,
        *,
        size: int = 2500,
        client_id: str = "sandbox-myob-key",
        client_secret: str = "sandbox-myob-secret",
        access_ttl: int = 1200,
        per_second: int = 8,
        day_limit: int = 1_000_000,
        key_kind: KeyKind = "new",
        clock: Any = time.time,
        credit_every: int = 0,
    ) -> None:
        policy = OAuthPolicy(
            client_id,
            client_secret,
            access_ttl,
            rotate_refresh=True,
            client_auth="post",
            expires_in_as_text=True,
            known_scopes=GRANULAR_SCOPES | (LEGACY_SCOPES if key_kind == "old" else frozenset()),
        )
        super().__init__("myob", size, OAuthServer(policy, clock))
        self.oauth.on_consent = self._consented
        self.client_id = client_id
        self.key_kind: KeyKind = key_kind
        self._size = size
        self.second = RateWindow(per_second, 1.0)  # both per API key: every file's calls count
        self.day = RateWindow(day_limit, 86_400)
        self.arrivals: deque[tuple[float, str]] = deque(maxlen=100_000)  # (when, company file)
        self.reads: deque[str] = deque(maxlen=100_000)  # each API call's path and query
        self.layout_failures: dict[str, int] = {}  # layout -> how many next reads answer 500
        self.files: dict[str, CompanyFile] = {
            COMPANY_FILE_ID: CompanyFile(COMPANY_FILE_ID, COMPANY_NAME, "NZ")
        }
        self.consent_pick: str | None = None  # the file the next consents approve; None: first
        self._consents: dict[str, str] = {}  # authentication event -> the file it approved
        CreditBook(Dataset(0), credit_every, status_of)  # refuses a wrong one here and now
        self.credit_every = credit_every  # one in N of a new dataset's sales: a credit note
        self._books: weakref.WeakKeyDictionary[Dataset, CreditBook] = weakref.WeakKeyDictionary()
        self.app = Starlette(
            routes=[
                Route("/oauth2/account/authorize", self.authorize),
                Route("/oauth2/v1/authorize", self.token, methods=["POST"]),
                Route("/api/accountright/", self.company_files),
                Route("/api/accountright/{cf}/", self.company_file),
                Route("/api/accountright/{cf}/Sale/Invoice", self.invoices),
                Route("/api/accountright/{cf}/Sale/Invoice/{layout}", self.invoices),
                Route("/api/accountright/{cf}/Sale/CreditSettlement", self.settlements),
                Route("/api/accountright/{cf}/CurrentUser", self.current_user),
            ]
        )

    # -- company files and consent -----------------------------------------------------------

    def add_company_file(
        self, name: str, file_id: str | None = None, size: int | None = None, country: str = "AU"
    ) -> CompanyFile:
        """Another company file of the same MYOB user, with invoices of its own."""
        file_id = str(uuid.UUID(file_id)) if file_id else str(uuid.uuid4())
        if file_id in self.files:
            raise ValueError(f"company file {file_id} exists already")
        dataset = Dataset(self._size if size is None else size, seed=f"myob:{file_id}")
        added = self.files[file_id] = CompanyFile(file_id, name, country, dataset)
        return added

    def dataset_of(self, file: CompanyFile) -> Dataset:
        return self.dataset if file.dataset is None else file.dataset

    def book_of(self, dataset: Dataset) -> CreditBook:
        """The credit notes and settlements of a dataset (made on first use, with
        :attr:`credit_every`'s credit notes among its sales)."""
        book = self._books.get(dataset)
        if book is None:
            book = self._books[dataset] = CreditBook(dataset, self.credit_every, status_of)
        return book

    # -- what tests change -------------------------------------------------------------------

    def _book_and_index(self, uid: str, file_id: str | None) -> tuple[CreditBook, int]:
        dataset = self.dataset_of(self.files[file_id or COMPANY_FILE_ID])
        index = dataset.index_of(uid.lower())
        if index is None:
            raise ValueError(f"no sale {uid} in the company file")
        return self.book_of(dataset), index

    def credit_note(self, raised_for: str | None = None, *, file_id: str | None = None) -> str:
        """A credit note made now for the sale ``raised_for`` (its customer's and currency;
        None: a customer's of its own), in the first company file unless ``file_id`` names
        another; returns its UID."""
        dataset = self.dataset_of(self.files[file_id or COMPANY_FILE_ID])
        book = self.book_of(dataset)
        origin = None if raised_for is None else self._book_and_index(raised_for, file_id)[1]
        return dataset.invoice(book.create(origin)).id

    def settle(
        self,
        credit_note: str,
        invoice: str,
        amount: Decimal | str | None = None,
        *,
        file_id: str | None = None,
    ) -> str:
        """Apply a credit note to an invoice now (``amount``, or all the credit it can take):
        a ``Sale/CreditSettlement``, whose UID is returned. The sales' ``Status``,
        ``BalanceDueAmount`` and ``RowVersion`` change, their ``LastModified`` does not.
        ValueError for what MYOB would refuse."""
        book, credit = self._book_and_index(credit_note, file_id)
        _, sale = self._book_and_index(invoice, file_id)
        return book.settle(credit, sale, None if amount is None else Decimal(amount)).uid

    def edit(self, uid: str, *, file_id: str | None = None) -> None:
        """Edit a sale now: a new revision, its ``LastModified`` now."""
        book, index = self._book_and_index(uid, file_id)
        book.dataset.touch([index])

    def _picked(self) -> CompanyFile:
        return self.files[self.consent_pick or COMPANY_FILE_ID]

    def consent_extra(self, request: Request) -> dict[str, str]:
        """A new key's redirect names the approved file, when consent was prompted for."""
        if self.key_kind == "new" and request.query_params.get("prompt") == "consent":
            picked = self._picked()
            return {"businessId": picked.id, "businessName": picked.name}
        return {}

    def _consented(self, event_id: str, _scope: str) -> None:
        self._consents[event_id] = self._picked().id

    def _reaches(self, grant: Grant, file: CompanyFile) -> bool:
        """A new key's consent reaches its one file; an old key's every file of the user."""
        return self.key_kind == "old" or self._consents.get(grant.event_id) == file.id

    # -- the API -----------------------------------------------------------------------------

    def _error(self, status: int, name: str, message: str) -> Response:
        return json_response(
            {"Errors": [{"Name": name, "Message": message, "AdditionalDetails": ""}],
             "Information": "Warning, error messages have not been finalised in this release"},
            status,
        )  # fmt: skip

    async def _api(self, request: Request, handler: Handler, scopes: frozenset[str]) -> Response:
        """Authentication, headers, scope, company file, limits and faults, then ``handler``."""
        if len(request.url.query) > MAX_QUERY:  # refused before anything else sees it
            return Response("404.15: the query string is too long", 404, media_type="text/plain")
        token = bearer(request)
        problem = self.oauth.check(token)
        grant = self.oauth.grant_of(token)
        if problem is not None or grant is None:
            return self._error(401, "OAuthTokenIsInvalid", f"The access token is {problem}")
        if request.headers.get("x-myobapi-key") != self.client_id:
            return self._error(403, "InvalidApiKey", "The x-myobapi-key header is missing or wrong")
        if request.headers.get("x-myobapi-version") != "v2":
            return self._error(400, "InvalidVersion", "x-myobapi-version must be v2")
        if not grant.scopes & scopes:
            return self._error(
                403, "AccessDenied", "The access token's scopes do not allow this resource"
            )
        file = None
        if "cf" in request.path_params:
            file = self.files.get(str(request.path_params["cf"]).lower())
            if file is None:
                return self._error(404, "CompanyFileNotFound", "No such company file")
            if not self._reaches(grant, file):
                return self._error(403, "AccessDenied", "The consent does not reach this file")
        self.api_calls += 1
        self.arrivals.append((self.second.clock(), file.id if file else ""))
        self.reads.append(f"{request.url.path}?{request.url.query}")
        await maybe_slow(self.faults)
        if not self.day.hit()[0]:
            self.rate_limited += 1
            return self._error(403, "RateLimitError", DAILY_MESSAGE)
        if not self.second.hit()[0] or self.faults.take("storm_429"):
            self.rate_limited += 1
            return self._error(403, "RateLimitError", SECOND_MESSAGE)
        if self.faults.take("fail_5xx"):
            return Response("Internal Server Error", 500)
        return await handler(request, file)

    async def company_files(self, request: Request) -> Response:
        return await self._api(request, self._company_files, COMPANY_FILE_SCOPES)

    async def _company_files(self, request: Request, _file: CompanyFile | None) -> Response:
        if self.key_kind == "new":  # keys made since 12 March 2025 are not shown the files
            return json_response([])
        return json_response([f.to_json(base_of(request)) for f in self.files.values()])

    async def company_file(self, request: Request) -> Response:
        return await self._api(request, self._company_file, COMPANY_FILE_SCOPES)

    async def _company_file(self, request: Request, file: CompanyFile | None) -> Response:
        assert file is not None
        return json_response(
            {
                "CompanyFile": file.to_json(base_of(request)),
                "UserAccess": [{"ResourcePath": "", "Access": ["GET"]}],
            }
        )

    async def current_user(self, request: Request) -> Response:
        return await self._api(request, self._current_user, COMPANY_FILE_SCOPES)

    async def _current_user(self, _request: Request, _file: CompanyFile | None) -> Response:
        return json_response({"UserAccess": [{"ResourcePath": "", "Access": ["GET"]}]})

    async def invoices(self, request: Request) -> Response:
        return await self._api(request, self._invoices, INVOICE_SCOPES)

    def _paging(self, request: Request, guids: frozenset[str]) -> tuple[int, int, Query] | Response:
        """``$top`` (up to 1,000), ``$skip`` and ``$filter``, or the 400 MYOB answers."""
        query = request.query_params
        try:
            top = min(max(int(query.get("$top", DEFAULT_TOP)), 1), MAX_TOP)
            skip = max(int(query.get("$skip", "0")), 0)
        except ValueError:
            return self._error(400, "ValidationError", "$top and $skip must be numbers")
        try:
            return (
                top,
                skip,
                parse_filter(query["$filter"], guids) if query.get("$filter") else Query(),
            )
        except ValueError:
            return self._error(400, "ValidationError", f"Unsupported filter {query['$filter']}")

    @staticmethod
    def _next_link(request: Request, path: str, top: int, skip: int) -> str:
        params = {k: v for k, v in request.query_params.items() if k not in ("$skip", "$top")}
        params.update({"$top": str(top), "$skip": str(skip)})
        return f"{path}?{urlencode(params)}"

    async def _invoices(self, request: Request, file: CompanyFile | None) -> Response:
        assert file is not None
        paging = self._paging(request, SALE_GUIDS)
        if isinstance(paging, Response):
            return paging
        top, skip, query = paging
        layout = request.path_params.get("layout")
        if layout not in (None, *LAYOUTS):
            return self._error(404, "ResourceNotFound", f"No such resource Sale/Invoice/{layout}")
        if layout is not None and self.layout_failures.get(layout, 0) > 0:
            self.layout_failures[layout] -= 1
            return Response("Internal Server Error", 500)
        if self.faults.take("malformed"):
            return Response(MALFORMED, media_type="application/json")
        dataset = self.dataset_of(file)
        items, total = self._listing(dataset, query, layout, skip, top)
        base = f"{base_of(request)}/api/accountright/{file.id}"
        render = render_invoice if layout is None else render_layout
        next_link = None
        if skip + len(items) < total:
            path = "Sale/Invoice" if layout is None else f"Sale/Invoice/{layout}"
            next_link = self._next_link(request, f"{base}/{path}", top, skip + len(items))
        book = self.book_of(dataset)
        return json_response(
            {
                "Items": [render(inv, base, book) for inv in items],
                "NextPageLink": next_link,
                "Count": total,
            }
        )

    @staticmethod
    def _listing(
        dataset: Dataset, query: Query, layout: str | None, skip: int, top: int
    ) -> tuple[list[SourceInvoice], int]:
        """The invoices the filter takes (of the layout, when one is read), oldest change
        first, from ``skip``, at most ``top``; and how many there are in all."""
        window = query.window
        if "UID" in query.guids:
            named = [
                inv
                for inv in sales_of(dataset, query.guids["UID"])
                if window.holds(inv.updated) and layout in (None, layout_of(inv))
            ]
            return named[skip : skip + top], len(named)
        total = dataset.count_after(window.after)
        if window.upto is not None:
            total = max(0, total - dataset.count_after(window.upto))
        if layout is None:
            return dataset.list_after(window.after, skip, min(top, max(0, total - skip))), total
        of_layout = [
            inv for inv in dataset.list_after(window.after, 0, total) if layout_of(inv) == layout
        ]
        return of_layout[skip : skip + top], len(of_layout)

    async def settlements(self, request: Request) -> Response:
        return await self._api(request, self._settlements, INVOICE_SCOPES)

    async def _settlements(self, request: Request, file: CompanyFile | None) -> Response:
        """``Sale/CreditSettlement``: paged and filtered as the sales are."""
        assert file is not None
        paging = self._paging(request, SETTLEMENT_GUIDS)
        if isinstance(paging, Response):
            return paging
        top, skip, query = paging
        if self.faults.take("malformed"):
            return Response(MALFORMED, media_type="application/json")
        dataset = self.dataset_of(file)
        book = self.book_of(dataset)
        found = book.settlements(query)
        items = found[skip : skip + top]
        base = f"{base_of(request)}/api/accountright/{file.id}"

        def sale_uri(index: int) -> str:
            sale = dataset.invoice(index)
            return f"{base}/Sale/Invoice/{layout_of(sale)}/{sale.id}"

        next_link = None
        if skip + len(items) < len(found):
            path = f"{base}/Sale/CreditSettlement"
            next_link = self._next_link(request, path, top, skip + len(items))
        return json_response(
            {
                "Items": [book.render(s, base, sale_uri) for s in items],
                "NextPageLink": next_link,
                "Count": len(found),
            }
        )
