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
literal (no offset, no ``Z``), joined by ``and``; anything else is refused with 400.
:attr:`MyobEmulator.layout_failures` makes the next reads of a layout answer 500.

Limits are per API key, whichever company file a call reads: 8 calls a second and 1,000,000 a
day, each answered over the limit with 403 ``RateLimitError`` (the daily one says "exceeded the
daily rate limit"). :attr:`MyobEmulator.arrivals` keeps when each call came, for tests to count.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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
from intdash.sandbox.oauth import Grant, OAuthPolicy, OAuthServer

COMPANY_FILE_ID = "0f5e4d8c-1234-4abc-9def-0123456789ab"
COMPANY_NAME = "Bay Traders Ltd"
STATUSES = ("Open", "Open", "Closed", "Closed", "Closed", "Credit")
LAYOUTS = ("Item", "Service", "Professional", "TimeBilling", "Miscellaneous")
DEFAULT_TOP = 400
MAX_TOP = 1000
_CLAUSE = re.compile(
    r"LastModified (gt|ge|lt|le|eq) "
    r"datetime'(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.(\d{1,7}))?)?)'"
)
_TICK = timedelta(microseconds=1)

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


def layout_of(inv: SourceInvoice) -> str:
    """The invoice's layout, fixed for its life: Item for one in three, else Service."""
    return "Item" if int(inv.id[-2:], 16) % 3 == 0 else "Service"


@dataclass(frozen=True)
class Window:
    """What a ``$filter`` on ``LastModified`` lets through: later than ``after`` (None: from
    the beginning) and at or before ``upto`` (None: to the end)."""

    after: datetime | None = None
    upto: datetime | None = None

    def holds(self, moment: datetime) -> bool:
        return (self.after is None or moment > self.after) and (
            self.upto is None or moment <= self.upto
        )


def parse_filter(text: str) -> Window:
    """A ``$filter`` as MYOB's OData takes it on ``LastModified``: comparisons with a
    ``datetime'…'`` literal joined by ``and`` (ValueError for anything else)."""
    after: datetime | None = None
    upto: datetime | None = None
    for clause in text.split(" and "):
        found = _CLAUSE.fullmatch(clause)
        if found is None:
            raise ValueError(clause)
        op, literal, fraction = found.groups()
        if fraction:  # up to seven digits (ticks); Python reads six
            literal = literal[: len(literal) - len(fraction)] + fraction[:6].ljust(6, "0")
        moment = datetime.fromisoformat(literal).replace(tzinfo=UTC)
        low = {"gt": moment, "ge": moment - _TICK, "eq": moment - _TICK}.get(op)
        high = {"lt": moment - _TICK, "le": moment, "eq": moment}.get(op)
        if low is not None:
            after = low if after is None else max(after, low)
        if high is not None:
            upto = high if upto is None else min(upto, high)
    return Window(after, upto)


def render_invoice(inv: SourceInvoice, base: str) -> dict[str, Any]:
    status = STATUSES[inv.status % len(STATUSES)]
    layout = layout_of(inv)
    total = float(inv.total)
    return {
        "UID": inv.id,
        "Number": inv.number,
        "Date": f"{inv.issue_date.isoformat()}T00:00:00",
        "Customer": {
            "UID": inv.contact_id,
            "Name": inv.contact,
            "DisplayID": f"CUS{inv.index % 500:05d}",
            "URI": f"{base}/Contact/Customer/{inv.contact_id}",
        },
        "Status": status,
        "InvoiceType": layout,
        "Terms": {"DueDate": f"{inv.due_date.isoformat()}T00:00:00"},
        "Subtotal": float(inv.subtotal),
        "TotalTax": float(inv.tax),
        "TotalAmount": total,
        "BalanceDueAmount": 0.0 if status == "Closed" else total,
        "ForeignCurrency": None if inv.currency == "NZD" else {"Code": inv.currency},
        "LastModified": inv.updated.astimezone(UTC).replace(tzinfo=None).isoformat(),
        "RowVersion": str(1000 + inv.revision),
        "URI": f"{base}/Sale/Invoice/{layout}/{inv.id}",
    }


def _line(inv: SourceInvoice, n: int, line: SourceLine, base: str) -> dict[str, Any]:
    """A line as the invoice's layout has it: a Service line's ``UnitCount`` and ``Account``, an
    Item line's ``ShipQuantity`` and ``Item``; ``Total`` = quantity x ``UnitPrice`` less
    ``DiscountPercent``, with tax when the invoice is tax-inclusive; its tax code."""
    quantity = float(line.quantity)
    body: dict[str, Any] = {"RowID": n + 1, "Type": "Transaction", "Description": line.description}
    if layout_of(inv) == "Item":
        item = str(uuid.uuid5(uuid.NAMESPACE_OID, f"myob-item:{line.item_code}"))
        body["ShipQuantity"] = quantity
    else:
        body["UnitCount"] = quantity
    body["UnitPrice"] = float(line.gross if inv.inclusive else line.unit_price)
    body["DiscountPercent"] = float(line.discount_rate)
    body["Total"] = float(line.gross if inv.inclusive else line.net)
    if layout_of(inv) == "Item":
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


def render_layout(inv: SourceInvoice, base: str) -> dict[str, Any]:
    """The invoice as its layout's endpoint (``Sale/Invoice/Service``, ``…/Item``) has it: the
    list's fields and its ``Lines``, ``IsTaxInclusive``."""
    body = render_invoice(inv, base)
    body["IsTaxInclusive"] = inv.inclusive
    body["Lines"] = [_line(inv, n, line, base) for n, line in enumerate(inv.lines)]
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
        self.app = Starlette(
            routes=[
                Route("/oauth2/account/authorize", self.authorize),
                Route("/oauth2/v1/authorize", self.token, methods=["POST"]),
                Route("/api/accountright/", self.company_files),
                Route("/api/accountright/{cf}/", self.company_file),
                Route("/api/accountright/{cf}/Sale/Invoice", self.invoices),
                Route("/api/accountright/{cf}/Sale/Invoice/{layout}", self.invoices),
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

    async def _invoices(self, request: Request, file: CompanyFile | None) -> Response:
        assert file is not None
        query = request.query_params
        try:
            top = min(max(int(query.get("$top", DEFAULT_TOP)), 1), MAX_TOP)
            skip = max(int(query.get("$skip", "0")), 0)
        except ValueError:
            return self._error(400, "ValidationError", "$top and $skip must be numbers")
        window = Window()
        if query.get("$filter"):
            try:
                window = parse_filter(query["$filter"])
            except ValueError:
                return self._error(400, "ValidationError", f"Unsupported filter {query['$filter']}")
        layout = request.path_params.get("layout")
        if layout not in (None, *LAYOUTS):
            return self._error(404, "ResourceNotFound", f"No such resource Sale/Invoice/{layout}")
        if layout is not None and self.layout_failures.get(layout, 0) > 0:
            self.layout_failures[layout] -= 1
            return Response("Internal Server Error", 500)
        if self.faults.take("malformed"):
            return Response(MALFORMED, media_type="application/json")
        items, total = self._listing(self.dataset_of(file), window, layout, skip, top)
        base = f"{base_of(request)}/api/accountright/{file.id}"
        render = render_invoice if layout is None else render_layout
        next_link = None
        if skip + len(items) < total:
            params = {k: v for k, v in query.items() if k not in ("$skip", "$top")}
            params.update({"$top": str(top), "$skip": str(skip + len(items))})
            path = "Sale/Invoice" if layout is None else f"Sale/Invoice/{layout}"
            next_link = f"{base}/{path}?{urlencode(params)}"
        return json_response(
            {
                "Items": [render(inv, base) for inv in items],
                "NextPageLink": next_link,
                "Count": total,
            }
        )

    @staticmethod
    def _listing(
        dataset: Dataset, window: Window, layout: str | None, skip: int, top: int
    ) -> tuple[list[SourceInvoice], int]:
        """The invoices the window holds (of the layout, when one is read), oldest change
        first, from ``skip``, at most ``top``; and how many there are in all."""
        total = dataset.count_after(window.after)
        if window.upto is not None:
            total = max(0, total - dataset.count_after(window.upto))
        if layout is None:
            return dataset.list_after(window.after, skip, min(top, max(0, total - skip))), total
        of_layout = [
            inv for inv in dataset.list_after(window.after, 0, total) if layout_of(inv) == layout
        ]
        return of_layout[skip : skip + top], len(of_layout)
