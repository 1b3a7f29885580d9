"""The ingest API: Custom Integrations push their invoices here with an API key.

Every answer is JSON. What a client sends can cost it a 4xx, never a 500: the body is read up
to a limit, parsed strictly (no NaN, no duplicate-free guessing), validated field by field, and
only then handed to the same upsert, monthly limit and fiscal register as synced invoices.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import (
    ValidationError,
)
from starlette.requests import Request
from starlette.responses import JSONResponse

from intdash.core.errors import ConflictError, FieldErrors, NotFoundError
from intdash.core.services.apikeys import KeyCheck, KeyProblem
from intdash.core.services.ingest import (
    IntegrationRefused,
    KeyRefused,
    Push,
    Pushed,
    repeated,
)
from intdash.server.body import BodyError, read_json
from intdash.server.formats import (
    external_id_problem,
)
from intdash.server.invoice_in import BatchIn, InvoiceIn

if TYPE_CHECKING:
    from intdash.core.db import Database
    from intdash.core.workspace import Workspace

log = logging.getLogger("intdash.server")


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


class GroupWriter:
    """Writes concurrent pushes together: while one group is being written (in a thread, or
    on the event loop where it is small and SQLite need not wait), the pushes that arrive wait,
    and go as the next group, in one transaction and one commit. Each is answered once its
    group is committed, so an acknowledged invoice is durable."""

    MAX_GROUP = 256
    #: turns of the event loop a group waits before it is taken: the requests whose bytes came
    #: in with the first one's reach :meth:`submit` in them, and go in the same group (taken
    #: at once, about half the groups were of one push, the dearest a push)
    GATHER_TURNS = 2
    #: a group of at most this many invoices is written on the event loop, where the database
    #: need not wait for it (SQLite): a hop to a thread and back, and the interpreter's lock
    #: passed between the threads at each statement, cost such a group more than its writing
    AT_ONCE_INVOICES = 64

    def __init__(
        self, write: Callable[[Sequence[Push]], list[Pushed]], db: Database | None = None
    ) -> None:
        self._write = write
        self._db = db
        self._waiting: list[tuple[Push, asyncio.Future[Pushed]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, push: Push) -> Pushed:
        future: asyncio.Future[Pushed] = asyncio.get_running_loop().create_future()
        self._waiting.append((push, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        return await asyncio.shield(future)  # a client gone meanwhile changes nothing

    async def _drain(self) -> None:
        while self._waiting:
            for _ in range(self.GATHER_TURNS):
                await asyncio.sleep(0)
            group = self._waiting[: self.MAX_GROUP]
            del self._waiting[: self.MAX_GROUP]
            pushes = [push for push, _ in group]
            try:
                outcomes = self._at_once(pushes)
                if outcomes is None:
                    outcomes = await asyncio.to_thread(self._write, pushes)
            except BaseException as exc:  # the whole transaction failed: every push with it
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for (_, future), outcome in zip(group, outcomes, strict=True):
                if not future.done():
                    future.set_result(outcome)

    def _at_once(self, pushes: list[Push]) -> list[Pushed] | None:
        """A small group written here and now, where that needs no wait; else None."""
        if self._db is None or sum(len(p.invoices) for p in pushes) > self.AT_ONCE_INVOICES:
            return None
        done = self._db.at_once(self._write, pushes)
        return None if done is None else done[0]


class IngestApi:
    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace
        server = workspace.settings.server
        self.limit = server.max_body_bytes
        self.rates = RateLimiter(server.rate_per_second, server.rate_burst)
        self.writer = GroupWriter(workspace.ingest.accept_group, workspace.db)

    async def _authorise(
        self, request: Request, *, writing: bool = False
    ) -> KeyCheck | JSONResponse:
        """The key's check (its id and integration), or the answer refusing the request.
        ``writing``: whether the key is revoked, and its integration may take invoices, is
        checked as the push is written (in its transaction), not here."""
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
        keys = self.ws.keys
        check = keys.check_secret(presented) if writing else None
        if check is None or not check.ok:  # unknown here: read (and checked in full) anew
            check = await asyncio.to_thread(keys.verify, presented)
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
        if writing:
            return check
        try:
            await asyncio.to_thread(self.ws.ingest.check, check.integration_uid)
        except IntegrationRefused as exc:
            return problem(403, "forbidden", str(exc))
        return check

    async def post_invoices(self, request: Request) -> JSONResponse:
        check = await self._authorise(request, writing=True)
        if isinstance(check, JSONResponse):
            return check
        assert check.key_id is not None and check.integration_uid is not None
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
        if repeats := repeated([invoice.external_id for invoice in invoices]):
            return _repeated(invoices, repeats)
        push = Push(check.key_id, check.integration_uid, [i.to_data() for i in invoices])
        pushed = await self.writer.submit(push)
        refused = pushed.error
        if isinstance(refused, KeyRefused):
            challenge = {"WWW-Authenticate": 'Bearer realm="intdash"'}
            return problem(401, "unauthorized", str(refused), headers=challenge)
        if isinstance(refused, IntegrationRefused):
            return problem(403, "forbidden", str(refused))
        if isinstance(refused, ConflictError):
            return problem(409, "conflict", str(refused))
        if isinstance(refused, FieldErrors):
            return problem(422, "invalid", str(refused), problems=_problems(refused.errors))
        if refused is not None:
            raise refused
        stored = pushed.stored
        assert stored is not None
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
        check = await self._authorise(request)
        if isinstance(check, JSONResponse):
            return check
        uid = check.integration_uid
        assert uid is not None
        external_id = str(request.path_params["external_id"])
        wrong = external_id_problem(external_id)
        if wrong is not None:
            return problem(
                422, "invalid", f"external_id: {wrong}", problems=_problems({"external_id": wrong})
            )
        try:
            stored = await asyncio.to_thread(self.ws.ingest.get, uid, external_id)
        except NotFoundError as exc:
            return problem(404, "not_found", str(exc))
        return JSONResponse(stored.to_json())


def _problems(errors: dict[str, str]) -> list[dict[str, str]]:
    return [{"field": name, "problem": text} for name, text in errors.items()]


def _repeated(invoices: list[InvoiceIn], repeats: list[tuple[int, int]]) -> JSONResponse:
    """The refusal of a batch that holds one invoice more than once."""
    errors = {
        f"invoices[{at}].external_id": f"the same as invoices[{first}].external_id "
        f"({invoices[at].external_id!r}): a batch holds each invoice once"
        for at, first in repeats
    }
    at, first = repeats[0]
    message = (
        f"invoices[{first}] and invoices[{at}] have the same external_id "
        f"{invoices[at].external_id!r}: push each invoice once a batch"
    )
    return problem(422, "invalid", message, problems=_problems(errors)[:100])
