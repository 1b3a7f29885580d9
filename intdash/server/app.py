"""The ASGI application served by ``intdash serve`` (and the dashboard)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from intdash import __version__
from intdash.core.errors import DiskFull, StorageError
from intdash.server.ingest import IngestApi, problem
from intdash.server.openapi import openapi_document
from intdash.server.webhooks import XeroWebhook

log = logging.getLogger("intdash.server")

if TYPE_CHECKING:
    from intdash.core.workspace import Workspace
    from intdash.sync.scheduler import SyncScheduler


def create_app(workspace: Workspace, scheduler: SyncScheduler | None = None) -> Starlette:
    def database_ok() -> bool:
        try:
            with workspace.db.read() as session:
                session.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    async def health(_request: Request) -> JSONResponse:
        ok = await asyncio.to_thread(database_ok)
        holder = await asyncio.to_thread(workspace.leases.current, "scheduler")
        body = {
            "status": "ok" if ok else "unavailable",
            "version": __version__,
            "database": "ok" if ok else "unreachable",
            "scheduler": {
                "here": bool(scheduler and scheduler.leading),
                "holder": holder.holder if holder else None,
            },
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    api = IngestApi(workspace)
    xero = XeroWebhook(workspace, scheduler)
    document = openapi_document(__version__)

    async def openapi(_request: Request) -> JSONResponse:
        return JSONResponse(document)

    async def http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        names = {404: "not_found", 405: "method_not_allowed"}
        return problem(
            exc.status_code,
            names.get(exc.status_code, "http_error"),
            str(exc.detail),
            headers=dict(exc.headers or {}),
        )

    async def cannot_store(_request: Request, exc: Exception) -> Response:
        """503 and when to try again: the database cannot store now (its disk is full, or it
        is read-only); nothing of the request was stored."""
        assert isinstance(exc, StorageError)
        log.warning("refused a request: %s", exc)
        full = isinstance(exc, DiskFull)
        return problem(
            503,
            "disk_full" if full else "read_only",
            "intdash cannot store anything now: "
            + ("its database's disk is full" if full else "its database is read-only"),
            headers={"Retry-After": str(exc.retry_after)},
        )

    async def unexpected(_request: Request, exc: Exception) -> Response:
        log.error("unexpected error answering a request: %s", type(exc).__name__, exc_info=exc)
        return problem(500, "internal", "intdash failed to answer; the details are in its log")

    return Starlette(
        routes=[
            Route("/v1/health", health),
            Route("/v1/openapi.json", openapi),
            Route("/v1/invoices", api.post_invoices, methods=["POST"]),
            Route("/v1/invoices/{external_id:path}", api.get_invoice, methods=["GET"]),
            Route("/v1/webhooks/xero", xero.post, methods=["POST"]),
        ],
        exception_handlers={
            HTTPException: http_error,
            StorageError: cannot_store,
            Exception: unexpected,
        },
    )
