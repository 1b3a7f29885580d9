"""MYOB Business (AccountRight) API, as far as intdash uses it.

The token endpoint takes the secret in the form body and sends ``expires_in`` as text; the
consent redirect carries ``businessId``; invoices page with OData ``$top``/``$skip`` and a
``NextPageLink``; over 8 calls a second the answer is 403 with ``RateLimitError``.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any
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
from intdash.sandbox.dataset import SourceInvoice
from intdash.sandbox.oauth import OAuthPolicy, OAuthServer

COMPANY_FILE_ID = "0f5e4d8c-1234-4abc-9def-0123456789ab"
COMPANY_NAME = "Bay Traders Ltd"
STATUSES = ("Open", "Open", "Closed", "Closed", "Closed", "Credit")
DEFAULT_TOP = 400
MAX_TOP = 1000
_FILTER = re.compile(r"^LastModified gt datetime'([0-9T:\-.]+)'$")


def render_invoice(inv: SourceInvoice, base: str) -> dict[str, Any]:
    status = STATUSES[inv.status % len(STATUSES)]
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
        "InvoiceType": "Service",
        "Terms": {"DueDate": f"{inv.due_date.isoformat()}T00:00:00"},
        "Subtotal": float(inv.subtotal),
        "TotalTax": float(inv.tax),
        "TotalAmount": total,
        "BalanceDueAmount": 0.0 if status == "Closed" else total,
        "ForeignCurrency": None if inv.currency == "NZD" else {"Code": inv.currency},
        "LastModified": inv.updated.astimezone(UTC).replace(tzinfo=None).isoformat(),
        "RowVersion": str(1000 + inv.revision),
        "URI": f"{base}/Sale/Invoice/Service/{inv.id}",
    }


class MyobEmulator(PlatformEmulator):
    def __init__(
        self,
        *,
        size: int = 2500,
        client_id: str = "sandbox-myob-key",
        client_secret: str = "sandbox-myob-secret",
        access_ttl: int = 1200,
        per_second: int = 8,
        clock: Any = time.time,
    ) -> None:
        policy = OAuthPolicy(
            client_id,
            client_secret,
            access_ttl,
            rotate_refresh=True,
            client_auth="post",
            expires_in_as_text=True,
        )
        super().__init__("myob", size, OAuthServer(policy, clock))
        self.client_id = client_id
        self.second = RateWindow(per_second, 1.0)
        self.app = Starlette(
            routes=[
                Route("/oauth2/account/authorize", self.authorize),
                Route("/oauth2/v1/authorize", self.token, methods=["POST"]),
                Route("/api/accountright/", self.company_files),
                Route("/api/accountright/{cf}/Sale/Invoice", self.invoices),
                Route("/api/accountright/{cf}/CurrentUser", self.current_user),
            ]
        )

    def consent_extra(self, request: Request) -> dict[str, str]:
        if request.query_params.get("prompt") == "consent":
            return {"businessId": COMPANY_FILE_ID}
        return {}

    def _error(self, status: int, name: str, message: str) -> Response:
        return json_response(
            {"Errors": [{"Name": name, "Message": message, "AdditionalDetails": ""}],
             "Information": "Warning, error messages have not been finalised in this release"},
            status,
        )  # fmt: skip

    async def _api(self, request: Request, handler: Any) -> Response:
        problem = self.oauth.check(bearer(request))
        if problem is not None:
            return self._error(401, "OAuthTokenIsInvalid", f"The access token is {problem}")
        if request.headers.get("x-myobapi-key") != self.client_id:
            return self._error(403, "InvalidApiKey", "The x-myobapi-key header is missing or wrong")
        if request.headers.get("x-myobapi-version") != "v2":
            return self._error(400, "InvalidVersion", "x-myobapi-version must be v2")
        cf = request.path_params.get("cf")
        if cf is not None and cf != COMPANY_FILE_ID:
            return self._error(404, "CompanyFileNotFound", f"No company file {cf}")
        self.api_calls += 1
        await maybe_slow(self.faults)
        allowed, _, _ = self.second.hit()
        if not allowed or self.faults.take("storm_429"):
            self.rate_limited += 1
            return self._error(403, "RateLimitError", "API key has exceeded the per-second limit")
        if self.faults.take("fail_5xx"):
            return Response("Internal Server Error", 500)
        response: Response = await handler(request)
        return response

    async def company_files(self, request: Request) -> Response:
        return await self._api(request, self._company_files)

    async def _company_files(self, request: Request) -> Response:
        base = base_of(request)
        return json_response(
            [
                {
                    "Id": COMPANY_FILE_ID,
                    "Name": COMPANY_NAME,
                    "LibraryPath": COMPANY_NAME,
                    "ProductVersion": "2026.1",
                    "ProductLevel": {"Code": 30, "Name": "Plus"},
                    "CheckedOutDate": None,
                    "CheckedOutBy": None,
                    "Uri": f"{base}/api/accountright/{COMPANY_FILE_ID}",
                    "Country": "NZ",
                }
            ]
        )

    async def current_user(self, request: Request) -> Response:
        return await self._api(request, self._current_user)

    async def _current_user(self, request: Request) -> Response:
        return json_response({"UserAccess": [{"ResourcePath": "", "Access": ["GET"]}]})

    async def invoices(self, request: Request) -> Response:
        return await self._api(request, self._invoices)

    async def _invoices(self, request: Request) -> Response:
        query = request.query_params
        try:
            top = min(max(int(query.get("$top", DEFAULT_TOP)), 1), MAX_TOP)
            skip = max(int(query.get("$skip", "0")), 0)
        except ValueError:
            return self._error(400, "ValidationError", "$top and $skip must be numbers")
        since = None
        if query.get("$filter"):
            found = _FILTER.match(query["$filter"].strip())
            if not found:
                return self._error(400, "ValidationError", f"Unsupported filter {query['$filter']}")
            since = datetime.fromisoformat(found.group(1)).replace(tzinfo=UTC)
        if self.faults.take("malformed"):
            return Response(MALFORMED, media_type="application/json")
        total = self.dataset.count_after(since)
        items = self.dataset.list_after(since, skip, top)
        base = f"{base_of(request)}/api/accountright/{COMPANY_FILE_ID}"
        next_link = None
        if skip + len(items) < total:
            params = {k: v for k, v in query.items() if k not in ("$skip", "$top")}
            params.update({"$top": str(top), "$skip": str(skip + len(items))})
            next_link = f"{base}/Sale/Invoice?{urlencode(params)}"
        return json_response(
            {
                "Items": [render_invoice(inv, base) for inv in items],
                "NextPageLink": next_link,
                "Count": total,
            }
        )
