"""intdash's HTTP server on an asyncio loop: inside ``intdash serve`` and inside the dashboard."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

import uvicorn

from intdash.server.app import create_app

if TYPE_CHECKING:
    from intdash.core.workspace import Workspace
    from intdash.sync.scheduler import SyncScheduler

log = logging.getLogger("intdash.server")


class _Server(uvicorn.Server):
    """uvicorn, leaving the signals to intdash (uvicorn would re-raise them after stopping)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServer:
    """The ingest API and health on ``server.host``:``server.port``, on the running loop."""

    def __init__(self, workspace: Workspace, scheduler: SyncScheduler | None = None) -> None:
        settings = workspace.settings.server
        self.address = f"{settings.host}:{settings.port}"
        self.server = _Server(
            uvicorn.Config(
                create_app(workspace, scheduler),
                host=settings.host,
                port=settings.port,
                log_config=None,
                lifespan="off",
                access_log=False,
            )
        )
        self.task: asyncio.Task[None] | None = None

    async def _serve(self) -> None:
        try:
            await self.server.serve()
        except SystemExit:  # uvicorn exits when it cannot bind (a taken port)
            log.error("the HTTP server could not start on %s", self.address)

    async def start(self) -> bool:
        """Start serving; False (and nothing left running) when the address cannot be bound."""
        self.task = asyncio.create_task(self._serve())
        while not self.server.started and not self.task.done():
            await asyncio.sleep(0.01)
        if self.server.started:
            log.info("serving on http://%s", self.address)
        return self.server.started

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    async def wait(self) -> None:
        """Until the server stops (or could not start)."""
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.wait()
