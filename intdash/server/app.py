"""The ASGI application served by ``intdash serve`` (and the dashboard)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from intdash import __version__

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

    return Starlette(routes=[Route("/v1/health", health)])
