"""intdash's HTTP server on an asyncio loop: inside ``intdash serve`` and inside the dashboard.

uvicorn with three bounds on what a client can hold: a deadline for a request's line and
headers (uvicorn itself times only the idle wait between requests, and that only until a first
byte arrives), the keep-alive timeout, and the connections and requests served at once (beyond
them a request is answered 503 in JSON, where uvicorn's own ``limit_concurrency`` answers in plain
text).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from intdash.server.app import create_app
from intdash.server.ingest import problem

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from intdash.core.workspace import Workspace
    from intdash.sync.scheduler import SyncScheduler

log = logging.getLogger("intdash.server")

_LATE = json.dumps(
    {"error": "request_timeout", "message": "the request's line and headers came too slowly"}
).encode()
_408 = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(_LATE), _LATE)
)


class _HeadTooLarge(Exception):
    """A request's line and headers over the limit (the parser answers 400 and closes)."""


class _Protocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (a C parser: the HTTP stack is most of a small request's
    cost in pure Python), closing a connection whose request line and headers are not all in
    within ``header_timeout`` seconds of connecting or of the request's first byte (any byte,
    a stray line break too, once the answer before it is sent), and refusing (400) a request
    line and headers of over ``max_head`` bytes, as uvicorn's h11 protocol does: llhttp itself
    sets no bound, and uvicorn gathers the URL piece by piece."""

    header_timeout = 10.0
    max_head = 16 * 1024  # h11's bound

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._started = False  # some of the awaited request has come
        self._head = 0  # bytes of the request line and headers so far

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_headers()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # bytes while no request is under way (filler the parser drops, or the start of the
        # next request): its line and headers are awaited from now
        if self._idle() and not self.transport.is_closing():
            self._started = True
            self._await_headers()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head = 0
        if self._idle():  # a pipelined request is awaited once the one before is answered
            self._started = True
            self._await_headers()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._headers_in()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._headers_in()
        super().connection_lost(exc)

    def _idle(self) -> bool:
        """No request under way: none yet, or the last one answered."""
        return self.cycle is None or self.cycle.response_complete

    def _count(self, size: int) -> None:
        self._head += size
        if self._head > self.max_head:
            raise _HeadTooLarge

    def _await_headers(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.header_timeout, self._too_late)

    def _headers_in(self) -> None:
        self._started = False
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_late(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or not self._idle():
            return
        if self._started:
            self.transport.write(_408)
        self.transport.close()


def _protocol(header_timeout: float) -> type[HttpToolsProtocol]:
    return type("Protocol", (_Protocol,), {"header_timeout": header_timeout})


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
        self.limit = settings.limit_concurrency
        self.app = create_app(workspace, scheduler)
        self.server = _Server(
            uvicorn.Config(
                self._bounded,
                interface="asgi3",
                host=settings.host,
                port=settings.port,
                log_config=None,
                lifespan="off",
                access_log=False,
                http=_protocol(settings.header_timeout),
                timeout_keep_alive=settings.keep_alive_timeout,
            )
        )
        self.task: asyncio.Task[None] | None = None

    async def _bounded(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app, or 503 when more connections or requests than the limit are open (this
        one among them)."""
        state = self.server.server_state
        if scope["type"] == "http" and max(len(state.connections), len(state.tasks)) > self.limit:
            busy: ASGIApp = problem(
                503,
                "busy",
                "intdash is serving as many requests as it may: retry in a second",
                headers={"Retry-After": "1", "Connection": "close"},
            )
            await busy(scope, receive, send)
            return
        await self.app(scope, receive, send)

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
