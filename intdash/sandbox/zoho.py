"""Zoho Books (accounts server and Books API v3), as far as intdash uses it.

The consent redirect names the accounts server to use; the token response names the API domain;
refresh tokens do not rotate; more than ten access tokens per refresh token in ten minutes is
answered with HTTP 200 and "Access Denied"; ``last_modified_time`` returns records modified at or
after the time.

The invoice list carries totals but no tax; the invoice itself
(``GET /books/v3/invoices/{invoice_id}``) has its ``sub_total``, ``tax_total``, ``taxes``,
``line_items``, ``payments`` and the customer's ``tax_reg_no``. Credit notes are listed and read
alike (``/books/v3/creditnotes``, ``/creditnotes/{creditnote_id}`` and the invoices each was
applied to, ``/creditnotes/{creditnote_id}/invoices``: :mod:`intdash.sandbox.zoho_credits`),
only with a token whose consent granted ``ZohoBooks.creditnotes.READ`` (Zoho's scopes go by
module: 401, code 57, otherwise); a company has none unless ``credit_notes`` asks for some.
Lists take ``per_page`` from 1 to 200 (more is refused with code 2), ``sort_column`` and
``sort_order``; the credit notes' list sorts by what is asked (by default the newest created
first), the invoices' by modification only.

Limits: 100 calls a minute per organisation and a daily allowance that depends on the plan
(1,000 on Free up to 10,000 on Premium; the sandbox company is on Premium). Every API answer
carries ``X-Rate-Limit-Limit``, ``X-Rate-Limit-Remaining`` and ``X-Rate-Limit-Reset`` (seconds
until the window frees a call) of the minute window. Over the minute's limit: 429, code 44, with
``Retry-After``; over the day's: 429, code 45, "...maximum number of API calls allowed per day..."
with no ``Retry-After``. (Which window Zoho's headers describe, the daily error's code and text,
and ``Retry-After`` are not documented by Zoho: the connector copes with either reading.)
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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
    form_of,
    json_response,
    maybe_slow,
)
from intdash.sandbox.dataset import SourceInvoice, SourceLine
from intdash.sandbox.oauth import OAuthPolicy, OAuthServer
from intdash.sandbox.zoho_credits import (
    SORT_COLUMNS,
    CreditNotes,
    SourceCredit,
    render_credit_note,
    render_credit_note_detail,
    render_credited,
    render_line,
)
from intdash.sandbox.zoho_credits import TAX_ID as TAX_ID
from intdash.sandbox.zoho_credits import zoho_time as zoho_time

ORGANIZATION_ID = "10234695"
ORGANIZATION_NAME = "Zylker Traders"
STATUSES = (
    "sent",
    "paid",
    "paid",
    "overdue",
    "unpaid",
    "partially_paid",
    "viewed",
    "draft",
    "void",
)
MAX_PER_PAGE = 200
# what a self-client code is minted for unless the console's user picks otherwise
SELF_CLIENT_SCOPE = "ZohoBooks.invoices.READ,ZohoBooks.creditnotes.READ,ZohoBooks.settings.READ"
# the scopes that let a token read credit notes (Zoho's scopes go by module)
CREDIT_NOTE_SCOPES = frozenset(
    {"zohobooks.creditnotes.read", "zohobooks.creditnotes.all", "zohobooks.fullaccess.all"}
)
INVOICE_ID_BASE = 460000000000000
DAILY_LIMIT_MESSAGE = (
    "You have reached the maximum number of API calls allowed per day for this organization. "
    "Please try again tomorrow."
)


def parse_zoho_time(text: str) -> datetime:
    return datetime.strptime(text.strip(), "%Y-%m-%dT%H:%M:%S%z").astimezone(UTC)


def render_invoice(inv: SourceInvoice) -> dict[str, Any]:
    status = "void" if inv.voided else STATUSES[inv.status % len(STATUSES)]
    total = float(inv.total)
    return {
        "invoice_id": str(INVOICE_ID_BASE + inv.index),
        "invoice_number": inv.number,
        "customer_id": str(460000001000000 + int(inv.contact_id[:6], 16) % 1000),
        "customer_name": inv.contact,
        "status": status,
        "date": inv.issue_date.isoformat(),
        "due_date": inv.due_date.isoformat(),
        "currency_code": inv.currency,
        "total": total,
        "balance": 0.0 if status == "paid" else total,
        "created_time": zoho_time(inv.created),
        "last_modified_time": zoho_time(inv.updated),
    }


PAYMENT_MODES = ("Bank Transfer", "Cash", "Credit Card", "Check")


def render_invoice_detail(inv: SourceInvoice) -> dict[str, Any]:
    """The invoice as ``GET /invoices/{invoice_id}`` answers: the list's fields, its amounts
    before and after tax, its taxes, its lines (``rate`` and ``item_total`` with tax when
    ``is_inclusive_tax``; a discount as both a percentage and an amount), the payments of a
    paid invoice, and the customer's tax number where it has one. The list has none of these."""
    subtotal, tax = float(inv.subtotal), float(inv.tax)
    body = render_invoice(inv)
    body.update(
        sub_total=subtotal,
        tax_total=tax,
        is_inclusive_tax=inv.inclusive,
        taxes=[{"tax_name": "GST (15%)", "tax_amount": tax}],
        line_items=[_line(inv, n, line) for n, line in enumerate(inv.lines)],
    )
    if inv.contact_tax_id:
        body["tax_reg_no"] = inv.contact_tax_id
    body["payments"] = (
        [
            {
                "payment_id": str(INVOICE_ID_BASE + 7_000_000 + inv.index),
                "payment_mode": PAYMENT_MODES[inv.index % len(PAYMENT_MODES)],
                "amount": float(inv.total),
                "date": inv.due_date.isoformat(),
            }
        ]
        if body["status"] == "paid"
        else []
    )
    return body


def _line(inv: SourceInvoice, n: int, line: SourceLine) -> dict[str, Any]:
    return render_line(
        line, inv.inclusive, str(INVOICE_ID_BASE + 5_000_000 + inv.index * 10 + n), n
    )


def seconds_until_free(window: RateWindow) -> float:
    """When the oldest call in the window leaves it, freeing a call (0 when none is counted)."""
    with window._lock:
        if not window._calls:
            return 0.0
        return max(0.0, window._calls[0] + window.window - window.clock())


class ZohoEmulator(PlatformEmulator):
    def __init__(
        self,
        *,
        size: int = 2500,
        client_id: str = "1000.SANDBOXZOHOCLIENT",
        client_secret: str = "sandbox-zoho-secret",
        access_ttl: int = 3600,
        per_minute: int = 100,
        minute_window: float = 60.0,
        per_day: int = 10_000,
        day_window: float = 86_400.0,
        token_throttle: int = 10,
        clock: Any = time.time,
        credit_notes: int = 0,
    ) -> None:
        policy = OAuthPolicy(
            client_id,
            client_secret,
            access_ttl,
            rotate_refresh=False,
            client_auth="post",
            token_throttle=token_throttle,
        )
        super().__init__("zoho", size, OAuthServer(policy, clock))
        self.minute = RateWindow(per_minute, minute_window)
        self.day = RateWindow(per_day, day_window)
        self.calls_to: Counter[str] = Counter()  # API calls by what they asked for ("invoice")
        # the company's credit notes, beside its invoices (none unless asked for)
        self.credit_notes = CreditNotes(lambda: self.dataset, issued)
        self.credit_notes.seed(credit_notes)
        self.app = Starlette(
            routes=[
                Route("/accounts/oauth/v2/auth", self.authorize),
                Route("/accounts/oauth/v2/token", self.token, methods=["POST"]),
                Route("/accounts/oauth/v2/token/revoke", self.revoke, methods=["POST"]),
                Route("/accounts/self-client/code", self.self_client_code, methods=["POST"]),
                Route("/api/books/v3/organizations", self.organizations),
                Route("/api/books/v3/invoices", self.invoices),
                Route("/api/books/v3/invoices/{invoice_id}", self.invoice),
                Route("/api/books/v3/creditnotes", self.creditnotes),
                Route("/api/books/v3/creditnotes/{creditnote_id}", self.creditnote),
                Route(
                    "/api/books/v3/creditnotes/{creditnote_id}/invoices", self.creditnote_invoices
                ),
            ]
        )

    def consent_extra(self, request: Request) -> dict[str, str]:
        return {"location": "us", "accounts-server": f"{base_of(request)}/accounts"}

    async def token(self, request: Request) -> Response:
        response = await super().token(request)
        body = json.loads(bytes(response.body))
        if response.status_code == 200 and "access_token" in body:
            body["api_domain"] = f"{base_of(request)}/api"
        return json_response(body, response.status_code)

    async def revoke(self, request: Request) -> Response:
        self.oauth.revoke_token(request.query_params.get("token", ""))
        return json_response({"status": "success"})

    async def self_client_code(self, request: Request) -> Response:
        """What Zoho's API console does for a self client: mint a grant code."""
        scope = (await form_of(request)).get("scope", SELF_CLIENT_SCOPE)
        return json_response({"code": self.oauth.mint_code(scope)})

    def _rate_headers(self) -> dict[str, str]:
        """The minute window, as every answer states it."""
        window = self.minute
        return {
            "X-Rate-Limit-Limit": str(window.limit),
            "X-Rate-Limit-Remaining": str(max(0, window.remaining)),
            "X-Rate-Limit-Reset": str(math.ceil(seconds_until_free(window))),
        }

    def _too_many(self, code: int, message: str, retry_after: float | None) -> Response:
        self.rate_limited += 1
        headers = self._rate_headers()
        if retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
        return json_response({"code": code, "message": message}, 429, headers)

    async def _api(self, request: Request, handler: Any) -> Response:
        problem = self.oauth.check(bearer(request, "Zoho-oauthtoken"))
        if problem is not None:
            return json_response(
                {"code": 57, "message": "You are not authorized to perform this operation"},
                401,
                self._rate_headers(),
            )
        self.api_calls += 1
        self.calls_to[handler.__name__.lstrip("_")] += 1
        await maybe_slow(self.faults)
        if self.faults.take("storm_429"):
            return self._too_many(44, "API calls per minute exceeded", 1)
        allowed, _, wait = self.minute.hit()
        if not allowed:
            return self._too_many(44, "API calls per minute exceeded", wait)
        allowed, _, _ = self.day.hit()
        if not allowed:
            return self._too_many(45, DAILY_LIMIT_MESSAGE, None)
        if self.faults.take("fail_5xx"):
            return Response("Internal Server Error", 500, headers=self._rate_headers())
        response: Response = await handler(request)
        response.headers.update(self._rate_headers())
        return response

    async def organizations(self, request: Request) -> Response:
        return await self._api(request, self._organizations)

    async def _organizations(self, request: Request) -> Response:
        return json_response(
            {
                "code": 0,
                "message": "success",
                "organizations": [
                    {
                        "organization_id": ORGANIZATION_ID,
                        "name": ORGANIZATION_NAME,
                        "currency_code": "NZD",
                        "is_default_org": True,
                    }
                ],
            }
        )

    async def invoices(self, request: Request) -> Response:
        return await self._api(request, self._invoices)

    async def _invoices(self, request: Request) -> Response:
        query = request.query_params
        asked = _list_query(query, ("last_modified_time",), "last_modified_time", "A")
        if isinstance(asked, Response):
            return asked
        if asked.descending:  # (the sandbox lists invoices oldest change first only)
            return json_response({"code": 2, "message": "Invalid value passed for sort_order"}, 400)
        if self.faults.take("malformed"):
            return Response(MALFORMED, media_type="application/json")
        # Zoho includes records modified exactly at the time given
        since = asked.since
        inclusive = None if since is None else datetime.fromtimestamp(since.timestamp() - 1, UTC)
        total = self.dataset.count_after(inclusive)
        page, per_page = asked.page, asked.per_page
        items = self.dataset.list_after(inclusive, (page - 1) * per_page, per_page)
        return json_response(
            {
                "code": 0,
                "message": "success",
                "invoices": [render_invoice(inv) for inv in items],
                "page_context": {
                    "page": page,
                    "per_page": per_page,
                    "has_more_page": page * per_page < total,
                    "report_name": "Invoices",
                    "sort_column": "last_modified_time",
                    "sort_order": "A",
                },
            }
        )

    async def invoice(self, request: Request) -> Response:
        return await self._api(request, self._invoice)

    async def _invoice(self, request: Request) -> Response:
        if request.query_params.get("organization_id") != ORGANIZATION_ID:
            return json_response({"code": 6041, "message": "Invalid organization_id"}, 400)
        raw = request.path_params["invoice_id"]
        index = int(raw) - INVOICE_ID_BASE if raw.isdigit() else -1
        if not self.dataset.exists(index):
            return json_response({"code": 1002, "message": "Invoice does not exist."}, 404)
        invoice = render_invoice_detail(self.dataset.invoice(index))
        return json_response({"code": 0, "message": "success", "invoice": invoice})

    # -- credit notes (see intdash.sandbox.zoho_credits) --------------------------------------

    def _invoice_ref(self, index: int) -> tuple[str, str]:
        return str(INVOICE_ID_BASE + index), self.dataset.invoice(index).number

    async def creditnotes(self, request: Request) -> Response:
        return await self._api(request, self._creditnotes)

    def _not_granted(self, request: Request) -> Response | None:
        """The refusal of a token whose consent did not grant reading credit notes."""
        grant = self.oauth.grant_of(bearer(request, "Zoho-oauthtoken"))
        granted = {s.lower() for s in re.split(r"[,\s]+", grant.scope if grant else "") if s}
        if granted & CREDIT_NOTE_SCOPES:
            return None
        message = "You are not authorized to perform this operation"
        return json_response({"code": 57, "message": message}, 401)

    async def _creditnotes(self, request: Request) -> Response:
        """Credit notes by page, sorted by ``sort_column`` (Zoho's default: the newest created
        first), those modified at or after ``last_modified_time`` when given."""
        refused = self._not_granted(request)
        if refused is not None:
            return refused
        asked = _list_query(request.query_params, SORT_COLUMNS, "created_time", "D")
        if isinstance(asked, Response):
            return asked
        if self.faults.take("malformed"):
            return Response(MALFORMED, media_type="application/json")
        found = self.credit_notes.listing(asked.since, asked.sort_column, asked.descending)
        page, per_page = asked.page, asked.per_page
        items = found[(page - 1) * per_page : page * per_page]
        return json_response(
            {
                "code": 0,
                "message": "success",
                "creditnotes": [render_credit_note(note) for note in items],
                "page_context": {
                    "page": page,
                    "per_page": per_page,
                    "has_more_page": page * per_page < len(found),
                    "report_name": "Credit Notes",
                    "sort_column": asked.sort_column,
                    "sort_order": "D" if asked.descending else "A",
                },
            }
        )

    async def creditnote(self, request: Request) -> Response:
        return await self._api(request, self._creditnote)

    def _credit_note_of(self, request: Request) -> SourceCredit | Response:
        """The credit note the request names, or the answer that refuses it (no scope, another
        organisation, no such note)."""
        refused = self._not_granted(request)
        if refused is not None:
            return refused
        if request.query_params.get("organization_id") != ORGANIZATION_ID:
            return json_response({"code": 6041, "message": "Invalid organization_id"}, 400)
        note = self.credit_notes.find(request.path_params["creditnote_id"])
        if note is None:
            return json_response({"code": 1002, "message": "Credit note does not exist."}, 404)
        return note

    async def _creditnote(self, request: Request) -> Response:
        note = self._credit_note_of(request)
        if isinstance(note, Response):
            return note
        body = render_credit_note_detail(note, self._invoice_ref)
        return json_response({"code": 0, "message": "success", "creditnote": body})

    async def creditnote_invoices(self, request: Request) -> Response:
        return await self._api(request, self._creditnote_invoices)

    async def _creditnote_invoices(self, request: Request) -> Response:
        note = self._credit_note_of(request)
        if isinstance(note, Response):
            return note
        credited = render_credited(note, self._invoice_ref)
        return json_response({"code": 0, "message": "success", "invoices_credited": credited})


def issued(invoice: SourceInvoice) -> bool:
    """Whether a credit note may be raised from the invoice: one sent, not a draft or void."""
    return render_invoice(invoice)["status"] not in ("draft", "void")


@dataclass(frozen=True)
class ListQuery:
    """What a list call asks for."""

    page: int
    per_page: int
    since: datetime | None
    sort_column: str
    descending: bool


def _list_query(
    query: Mapping[str, str], sorts: Iterable[str], default_sort: str, default_order: str
) -> ListQuery | Response:
    """A list call's organisation, page, ``per_page`` (1 to 200: more is refused, as Zoho
    refuses it), ``last_modified_time`` and sort (a column of ``sorts``, ``sort_order`` A or
    D), or the answer refusing them."""
    if query.get("organization_id") != ORGANIZATION_ID:
        return json_response({"code": 6041, "message": "Invalid organization_id"}, 400)
    try:
        page = max(int(query.get("page", "1")), 1)
        per_page = int(query.get("per_page", "200"))
        moment = query.get("last_modified_time")
        since = parse_zoho_time(moment) if moment else None
    except ValueError:
        return json_response({"code": 2, "message": "Invalid value passed"}, 400)
    if not 1 <= per_page <= MAX_PER_PAGE:
        return json_response({"code": 2, "message": "Invalid value passed for per_page"}, 400)
    column = query.get("sort_column", default_sort)
    order = query.get("sort_order", default_order)
    if column not in sorts:
        return json_response({"code": 2, "message": "Invalid value passed for sort_column"}, 400)
    if order not in ("A", "D"):
        return json_response({"code": 2, "message": "Invalid value passed for sort_order"}, 400)
    return ListQuery(page, per_page, since, column, order == "D")
