"""The ingest API: Custom Integrations push their invoices here with an API key.

Every answer is JSON. What a client sends can cost it a 4xx, never a 500: the body is read up
to a limit, parsed strictly (no NaN, no duplicate-free guessing), validated field by field, and
only then handed to the same upsert, monthly limit and fiscal register as synced invoices.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from starlette.requests import Request
from starlette.responses import JSONResponse

from intdash.core.errors import ConflictError, NotFoundError
from intdash.core.invoices import InvoiceData, InvoiceKind, SourceState
from intdash.core.services.apikeys import KeyProblem
from intdash.core.services.ingest import IntegrationRefused

if TYPE_CHECKING:
    from intdash.core.workspace import Workspace

log = logging.getLogger("intdash.server")

BATCH_MAX = 1000
AMOUNT_MAX = Decimal(10) ** 12


def _amount(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise ValueError("must be a finite number")
    if abs(value) >= AMOUNT_MAX:
        raise ValueError("must be less than 1,000,000,000,000 in size")
    if value != value.quantize(Decimal("0.0001")):
        raise ValueError("must have at most 4 decimal places")
    return value


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must carry a time zone (such as Z or +13:00)")
    return value.astimezone(UTC)


Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
Amount = Annotated[Decimal, AfterValidator(_amount)]


class InvoiceIn(BaseModel):
    """One invoice as a Custom Integration pushes it."""

    model_config = ConfigDict(extra="forbid", title="Invoice")

    external_id: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
        Field(description="The invoice's id in your system: pushing it again updates it."),
    ]
    number: Text | None = Field(None, description="The invoice number people see.")
    kind: Literal["sales", "purchase"] = Field(
        "sales", description="Sales invoices are fiscalized; purchase invoices are kept."
    )
    contact: Annotated[str, StringConstraints(strip_whitespace=True, max_length=400)] | None = None
    issue_date: date | None = Field(None, description="YYYY-MM-DD")
    due_date: date | None = Field(None, description="YYYY-MM-DD")
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = Field(
        description="ISO 4217 code, such as NZD."
    )
    subtotal: Amount | None = Field(None, description="Defaults to total minus tax.")
    tax: Amount = Field(Decimal(0))
    total: Amount
    status: Annotated[str, StringConstraints(strip_whitespace=True, max_length=32)] | None = Field(
        None,
        description="The invoice's status in your system. 'void' (in any case) means it was "
        "voided: if it was fiscalized, it is refunded (once), else it is not fiscalized. "
        "'draft' (in any case) means it is not issued yet: it is kept, awaiting approval, and "
        "fiscalized when a later push gives another status. Any other status, or none, means "
        "issued: a sales invoice is fiscalized (and a change of its total, tax or currency "
        "refunds that and fiscalizes it again).",
    )
    updated_at: Annotated[datetime, AfterValidator(_aware)] | None = Field(
        None, description="When it last changed in your system (with a time zone)."
    )

    @model_validator(mode="after")
    def _dates(self) -> InvoiceIn:
        if self.issue_date and self.due_date and self.due_date < self.issue_date:
            raise ValueError("due_date is before issue_date")
        return self

    def to_data(self) -> InvoiceData:
        subtotal = self.subtotal if self.subtotal is not None else self.total - self.tax
        return InvoiceData(
            self.external_id,
            self.number,
            InvoiceKind(self.kind),
            self.contact,
            self.issue_date,
            self.due_date,
            self.currency,
            subtotal,
            self.tax,
            self.total,
            self.status,
            self.updated_at,
            source_state(self.status),
        )


def source_state(status: str | None) -> SourceState:
    """A pushed status as fiscalization reads it: "void" and "draft" (in any case) are voided
    and not yet issued; any other status, or none, is issued."""
    word = (status or "").strip().casefold()
    if word == "void":
        return SourceState.VOID
    return SourceState.PENDING if word == "draft" else SourceState.APPROVED


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid", title="Batch")

    invoices: list[InvoiceIn] = Field(min_length=1, max_length=BATCH_MAX)


# -- answers ---------------------------------------------------------------------------------


def problem(
    status: int,
    error: str,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A refusal: ``{"error", "message"}`` and whatever else names the problem."""
    return JSONResponse({"error": error, "message": message, **extra}, status, headers=headers)


def _field(loc: tuple[int | str, ...]) -> str:
    name = ""
    for part in loc:
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name += f".{part}" if name else str(part)
    return name or "body"


def invalid(exc: ValidationError) -> JSONResponse:
    problems = [
        {
            "field": _field(tuple(e["loc"])),
            "problem": re.sub(r" or instance of \w+", "", e["msg"].removeprefix("Value error, ")),
        }
        for e in exc.errors(include_url=False, include_input=False)
    ]
    first = problems[0]
    return problem(422, "invalid", f"{first['field']}: {first['problem']}", problems=problems[:100])


class BodyError(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


async def read_json(request: Request, limit: int) -> Any:
    """The body as JSON, read no further than ``limit`` bytes."""
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if kind != "application/json" and not kind.endswith("+json"):
        raise BodyError(415, "unsupported_media_type", "send the body as application/json")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyError(413, "too_large", f"the body is over {limit:,} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyError(413, "too_large", f"the body is over {limit:,} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise BodyError(400, "empty", "the body is empty: send an invoice as JSON")
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise BodyError(400, "not_json", "the body is not UTF-8 text") from None
    except RecursionError:
        raise BodyError(400, "not_json", "the body is nested too deeply") from None
    except ValueError as exc:
        raise BodyError(400, "not_json", f"the body is not JSON: {exc}") from None


# -- the per-key rate limit ------------------------------------------------------------------


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """A token bucket per key: ``rate`` requests a second, ``burst`` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str, now: float | None = None) -> float:
        """0 when the request may go ahead, else the seconds until it may."""
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) > 100_000:
                self._buckets.clear()
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate


# -- the endpoints ---------------------------------------------------------------------------


class IngestApi:
    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace
        server = workspace.settings.server
        self.limit = server.max_body_bytes
        self.rates = RateLimiter(server.rate_per_second, server.rate_burst)

    async def _authorise(self, request: Request) -> str | JSONResponse:
        """The UID of the key's integration, or the answer refusing the request."""
        header = request.headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="intdash"'}
        if scheme.lower() != "bearer" or not presented.strip():
            return problem(
                401,
                "unauthorized",
                "send your API key as 'Authorization: Bearer idk_…'",
                headers=challenge,
            )
        check = await asyncio.to_thread(self.ws.keys.verify, presented)
        if not check.ok:
            message = {
                KeyProblem.MALFORMED: "that is not an intdash API key (idk_…)",
                KeyProblem.UNKNOWN: "unknown API key",
                KeyProblem.REVOKED: "this API key has been revoked",
            }[check.problem or KeyProblem.UNKNOWN]
            return problem(401, "unauthorized", message, headers=challenge)
        assert check.key_id is not None and check.integration_uid is not None
        wait = self.rates.take(check.key_id)
        if wait > 0:
            return problem(
                429,
                "rate_limited",
                f"too many requests for this key: retry in {math.ceil(wait)} s",
                headers={"Retry-After": str(math.ceil(wait))},
            )
        try:
            await asyncio.to_thread(self.ws.ingest.check, check.integration_uid)
        except IntegrationRefused as exc:
            return problem(403, "forbidden", str(exc))
        return check.integration_uid

    async def post_invoices(self, request: Request) -> JSONResponse:
        uid = await self._authorise(request)
        if isinstance(uid, JSONResponse):
            return uid
        try:
            body = await read_json(request, self.limit)
        except BodyError as exc:
            return problem(exc.status, exc.error, exc.message)
        single = not (isinstance(body, dict) and "invoices" in body)
        try:
            if single:
                invoices = [InvoiceIn.model_validate(body)]
            else:
                invoices = BatchIn.model_validate(body).invoices
        except ValidationError as exc:
            return invalid(exc)
        try:
            stored = await asyncio.to_thread(
                self.ws.ingest.accept, uid, [invoice.to_data() for invoice in invoices]
            )
        except IntegrationRefused as exc:
            return problem(403, "forbidden", str(exc))
        except ConflictError as exc:
            return problem(409, "conflict", str(exc))
        created = any(s.outcome == "created" for s in stored)
        status = 201 if created else 200
        if single:
            return JSONResponse(stored[0].to_json(), status)
        counts = {
            outcome: sum(1 for s in stored if s.outcome == outcome)
            for outcome in ("created", "updated", "unchanged")
        }
        counts["held"] = sum(1 for s in stored if s.fiscal_status == "held")
        return JSONResponse({**counts, "invoices": [s.to_json() for s in stored]}, status)

    async def get_invoice(self, request: Request) -> JSONResponse:
        uid = await self._authorise(request)
        if isinstance(uid, JSONResponse):
            return uid
        external_id = str(request.path_params["external_id"])
        try:
            stored = await asyncio.to_thread(self.ws.ingest.get, uid, external_id)
        except NotFoundError as exc:
            return problem(404, "not_found", str(exc))
        return JSONResponse(stored.to_json())
