"""Xero's identity and Accounting API, as far as intdash uses them.

Tokens rotate on every refresh (a rotated-out refresh token gets ``invalid_grant``), access tokens
last 30 minutes, and the limits are Xero's: 5 calls in flight, 60 a minute, 5,000 a day per
tenant, answered with 429, ``Retry-After`` and ``X-Rate-Limit-Problem``, and every answer carries
the remaining-calls headers.
"""

from __future__ import annotations

import math
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from intdash.sandbox.common import (
    MALFORMED,
    InFlight,
    PlatformEmulator,
    RateWindow,
    bearer,
    form_of,
    json_response,
    maybe_slow,
    ms_date,
    parse_http_time,
)
from intdash.sandbox.dataset import SourceInvoice
from intdash.sandbox.oauth import OAuthPolicy, OAuthServer

TENANT_ID = "9d2c1bd0-5ad4-4e8a-9f0b-7e1f3a0c2d11"
CONNECTION_ID = "1f6a9f7e-33c4-4f51-8a3f-5bc0b8a2e4d7"
TENANT_NAME = "Demo Company (NZ)"
STATUSES = ("AUTHORISED", "AUTHORISED", "PAID", "PAID", "PAID", "SUBMITTED", "DRAFT", "VOIDED")
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def render_invoice(inv: SourceInvoice) -> dict[str, Any]:
    status = STATUSES[inv.status % len(STATUSES)]
    total = float(inv.total)
    paid = total if status == "PAID" else 0.0
    return {
        "Type": "ACCREC" if inv.sales else "ACCPAY",
        "InvoiceID": inv.id,
        "InvoiceNumber": inv.number,
        "Reference": f"PO-{inv.index % 9000 + 1000}",
        "Contact": {"ContactID": inv.contact_id, "Name": inv.contact},
        "Date": ms_date(datetime.combine(inv.issue_date, datetime.min.time(), UTC)),
        "DueDate": ms_date(datetime.combine(inv.due_date, datetime.min.time(), UTC)),
        "Status": status,
        "LineAmountTypes": "Exclusive",
        "SubTotal": float(inv.subtotal),
        "TotalTax": float(inv.tax),
        "Total": total,
        "AmountDue": round(total - paid, 2),
        "AmountPaid": paid,
        "AmountCredited": 0.0,
        "CurrencyCode": inv.currency,
        "CurrencyRate": 1.0,
        "IsDiscounted": False,
        "HasAttachments": False,
        "HasErrors": False,
        "UpdatedDateUTC": ms_date(inv.updated),
    }


class XeroEmulator(PlatformEmulator):
    def __init__(
        self,
        *,
        size: int = 2500,
        client_id: str = "sandbox-xero-client",
        client_secret: str = "sandbox-xero-secret",
        access_ttl: int = 1800,
        minute_limit: int = 60,
        minute_window: float = 60.0,
        day_limit: int = 5000,
        concurrent: int = 5,
        clock: Any = time.time,
    ) -> None:
        super().__init__(
            "xero",
            size,
            OAuthServer(
                OAuthPolicy(
                    client_id, client_secret, access_ttl, rotate_refresh=True, client_auth="basic"
                ),
                clock,
            ),
        )
        self.minute = RateWindow(minute_limit, minute_window)
        self.day = RateWindow(day_limit, 86_400)
        self.inflight = InFlight(concurrent)
        self.connected = True
        self.app = Starlette(
            routes=[
                Route("/identity/connect/authorize", self.authorize),
                Route("/identity/connect/token", self.token, methods=["POST"]),
                Route("/identity/connect/revocation", self.revocation, methods=["POST"]),
                Route("/api/connections", self.connections),
                Route("/api/Connections", self.connections),
                Route("/api/connections/{id}", self.disconnect, methods=["DELETE"]),
                Route("/api/api.xro/2.0/Invoices", self.invoices),
                Route("/api/api.xro/2.0/Organisation", self.organisation),
            ]
        )

    # -- identity ----------------------------------------------------------------------------

    async def revocation(self, request: Request) -> Response:
        self.oauth.revoke_token((await form_of(request)).get("token", ""))
        return Response(status_code=200)

    def _unauthorised(self, request: Request) -> Response | None:
        problem = self.oauth.check(bearer(request))
        if problem == "expired":
            stamp = datetime.now(UTC).strftime("%m/%d/%Y %H:%M:%S")
            detail = f"TokenExpired: token expired at {stamp}"
        elif problem == "invalid":
            detail = "AuthenticationUnsuccessful"
        else:
            return None
        return json_response(
            {"Type": None, "Title": "Unauthorized", "Status": 401, "Detail": detail}, 401
        )

    async def connections(self, request: Request) -> Response:
        refused = self._unauthorised(request)
        if refused is not None:
            return refused
        if not self.connected:
            return json_response([])
        stamp = "2026-01-05T09:00:00.0000000Z"
        return json_response(
            [
                {
                    "id": CONNECTION_ID,
                    "authEventId": "3c6e2a41-8d7e-4f5a-b1d2-9e0f4c7a6b85",
                    "tenantId": TENANT_ID,
                    "tenantType": "ORGANISATION",
                    "tenantName": TENANT_NAME,
                    "createdDateUtc": stamp,
                    "updatedDateUtc": stamp,
                }
            ]
        )

    async def disconnect(self, request: Request) -> Response:
        refused = self._unauthorised(request)
        if refused is not None:
            return refused
        self.connected = False
        return Response(status_code=204)

    # -- accounting --------------------------------------------------------------------------

    def _limit_headers(self) -> dict[str, str]:
        return {
            "X-DayLimit-Remaining": str(self.day.remaining),
            "X-MinLimit-Remaining": str(self.minute.remaining),
            "X-AppMinLimit-Remaining": "9999",
        }

    def _too_many(self, problem: str, retry_after: float) -> Response:
        self.rate_limited += 1
        headers = self._limit_headers()
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
        headers["X-Rate-Limit-Problem"] = problem
        return Response(status_code=429, headers=headers)

    async def _api(self, request: Request, handler: Any) -> Response:
        """Authentication, tenant, limits and faults, then ``handler``."""
        refused = self._unauthorised(request)
        if refused is not None:
            return refused
        if request.headers.get("xero-tenant-id") != TENANT_ID or not self.connected:
            return json_response(
                {"Title": "Forbidden", "Status": 403, "Detail": "AuthenticationUnsuccessful"}, 403
            )
        if not self.inflight.enter():
            return self._too_many("concurrent", 1)
        try:
            self.api_calls += 1
            await maybe_slow(self.faults)
            if self.faults.take("storm_429"):
                return self._too_many("minute", 1)
            allowed, _, _ = self.day.hit()
            if not allowed:
                tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(
                    hour=0, minute=0, second=0, microsecond=0
                )
                return self._too_many("day", (tomorrow - datetime.now(UTC)).total_seconds())
            allowed, _, wait = self.minute.hit()
            if not allowed:
                return self._too_many("minute", wait)
            if self.faults.take("fail_5xx"):
                return Response("Internal Server Error", 500, headers=self._limit_headers())
            response: Response = await handler(request)
            response.headers.update(self._limit_headers())
            return response
        finally:
            self.inflight.leave()

    async def invoices(self, request: Request) -> Response:
        return await self._api(request, self._invoices)

    async def _invoices(self, request: Request) -> Response:
        if "application/json" not in request.headers.get("accept", ""):
            return Response("<Response><Status>OK</Status></Response>", media_type="text/xml")
        since = parse_http_time(request.headers.get("if-modified-since", ""))
        try:
            page = max(1, int(request.query_params.get("page", "1")))
            size = int(request.query_params.get("pageSize", str(DEFAULT_PAGE_SIZE)))
        except ValueError:
            return json_response({"Type": "ValidationException", "Message": "bad page"}, 400)
        size = min(max(size, 1), MAX_PAGE_SIZE)
        if self.faults.take("malformed"):
            return Response(MALFORMED, media_type="application/json")
        total = self.dataset.count_after(since)
        items = self.dataset.list_after(since, (page - 1) * size, size)
        return json_response(
            {
                "Id": str(uuid.uuid4()),
                "Status": "OK",
                "ProviderName": "intdash sandbox",
                "DateTimeUTC": ms_date(datetime.now(UTC)),
                "pagination": {
                    "page": page,
                    "pageSize": size,
                    "pageCount": max(1, math.ceil(total / size)),
                    "itemCount": total,
                },
                "Invoices": [render_invoice(inv) for inv in items],
            }
        )

    async def organisation(self, request: Request) -> Response:
        return await self._api(request, self._organisation)

    async def _organisation(self, request: Request) -> Response:
        return json_response(
            {
                "Id": str(uuid.uuid4()),
                "Status": "OK",
                "ProviderName": "intdash sandbox",
                "DateTimeUTC": ms_date(datetime.now(UTC)),
                "Organisations": [
                    {
                        "OrganisationID": TENANT_ID,
                        "Name": TENANT_NAME,
                        "LegalName": TENANT_NAME,
                        "BaseCurrency": "NZD",
                        "CountryCode": "NZ",
                        "IsDemoCompany": True,
                        "OrganisationStatus": "ACTIVE",
                        "Version": "NZ",
                        "OrganisationType": "COMPANY",
                    }
                ],
            }
        )
