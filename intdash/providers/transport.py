"""HTTP/1.1 to the platforms' APIs: the transport under the process's platform clients.

httpx's client stays what intdash calls (its URLs, headers, content decoding, exceptions; where
the environment names a proxy, httpx's own transport is used instead); underneath, a request is
written to an asyncio stream and its answer parsed by httptools, the parser uvicorn serves with.
A no-change sync is two small requests, and on the general-purpose stack (httpcore, h11, anyio)
each cost about ten times the CPU of the bare exchange. Connections are kept alive per
origin, as httpx's own pool keeps them.

What an API call needs and nothing more: HTTP/1.1 only, the request body read whole before it
is sent, the answer read whole before it is returned (every caller reads it all).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Iterable
from typing import Any, SupportsIndex

import httptools
import httpx2 as httpx  # (the module intdash.providers.http hands out)

KEEPALIVE_SECONDS = 5.0  # as httpx's pool: an idle connection older than this is not reused
MAX_IDLE = 20  # idle connections kept per origin
MAX_HEAD = 64 * 1024  # an answer's status line and headers
READ_SIZE = 64 * 1024
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_NO_BODY = frozenset({204, 304})
_BAD_IN_HEADER = (b"\r", b"\n", b"\x00")

Origin = tuple[str, str, int]


class _Stale(Exception):
    """A kept-alive connection the server had closed: nothing of an answer came back."""


class _Answer:
    """httptools' callbacks for one response."""

    def __init__(self, head_only: bool) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.head_only = head_only
        self.keep_alive = False
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_size = 0
        self.body: list[bytes] = []
        self.headers_done = False
        self.done = False
        self.more = False  # bytes beyond the answer: the connection is not reused
        self.too_large = False

    def on_message_begin(self) -> None:
        self.more = self.done

    def _interim(self) -> bool:
        """An informational answer (1xx) before the final one: passed over (101, a switch of
        protocols, is refused by the parser)."""
        return 100 <= self.status < 200

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.more:
            return
        self.head_size += len(name) + len(value)
        self.too_large = self.head_size > MAX_HEAD
        if self.too_large:
            raise ValueError("too large")  # (httptools stops, and says only that a callback failed)
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if not self.done:  # (bytes beyond the answer may begin another: its status is not this)
            self.status = self.parser.get_status_code()
            self.headers_done = True

    def on_body(self, body: bytes) -> None:
        if not self.more:
            self.body.append(body)

    def on_message_complete(self) -> None:
        if self.done:
            return
        if self._interim():  # what it said is not the answer: the final one follows
            self.headers, self.head_size, self.headers_done, self.status = [], 0, False, 0
            return
        self.keep_alive = self.parser.should_keep_alive()  # (the parser forgets it after)
        self.done = True


class _Reader(asyncio.StreamReader):
    """A stream reader that counts what arrived: on a kept connection, anything beyond what
    was read as answers came while it was idle (a late surplus, a server's 408 before it lets
    go) and would be taken for the next request's answer."""

    arrived = 0

    def feed_data(self, data: Iterable[SupportsIndex]) -> None:
        self.arrived += len(bytes(data)) if not isinstance(data, bytes | bytearray) else len(data)
        super().feed_data(data)


class _Connection:
    def __init__(self, reader: _Reader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0
        self.consumed = 0  # bytes read as answers

    def usable(self, now: float) -> bool:
        """Open, nothing arrived since its last answer, and not past the keep-alive time (a
        server closes such connections)."""
        return (
            now - self.idle_since < KEEPALIVE_SECONDS
            and self.reader.arrived == self.consumed
            and not self.reader.at_eof()
            and self.reader.exception() is None
            and not self.writer.is_closing()
        )

    def close(self) -> None:
        self.writer.close()

    async def exchange(
        self, request: httpx.Request, data: bytes, timeouts: dict[str, float | None]
    ) -> tuple[int, _Answer, bool]:
        """Send ``data`` and read the whole answer: its status, its parts, and whether the
        connection may be used again."""
        self.writer.write(data)
        try:
            async with asyncio.timeout(timeouts.get("write")):
                await self.writer.drain()
        except TimeoutError:
            raise httpx.WriteTimeout("writing the request timed out", request=request) from None
        except OSError as exc:
            raise _Stale() from exc  # (as a closed connection found on reuse)
        answer = _Answer(head_only=request.method == "HEAD")
        parser = answer.parser
        received = 0
        while not answer.done:
            try:
                async with asyncio.timeout(timeouts.get("read")):
                    chunk = await self.reader.read(READ_SIZE)
            except TimeoutError:
                raise httpx.ReadTimeout("reading the answer timed out", request=request) from None
            except OSError as exc:
                if received == 0:
                    raise _Stale() from exc
                raise httpx.ReadError(f"reading the answer failed: {exc}", request=request) from exc
            if not chunk:
                if received == 0:
                    raise _Stale()
                if answer.headers_done and _delimited_by_close(answer.headers):
                    break  # its body ended with the connection
                raise httpx.RemoteProtocolError(
                    "the server closed the connection in the middle of its answer",
                    request=request,
                )
            received += len(chunk)
            self.consumed += len(chunk)
            try:
                parser.feed_data(chunk)
            except httptools.HttpParserUpgrade:
                raise httpx.RemoteProtocolError(
                    "the server switched protocols", request=request
                ) from None
            except httptools.HttpParserError as exc:
                if answer.too_large:
                    raise _too_large(request) from None
                if answer.done:  # bytes beyond a whole answer: it stands, the connection not
                    answer.more = True
                    break
                raise httpx.RemoteProtocolError(
                    f"the answer is not valid HTTP/1.1: {exc}", request=request
                ) from None
            if answer.headers_done and not answer.done and not answer._interim():
                if answer.head_only or answer.status in _NO_BODY:
                    break  # no body follows, whatever its headers say
            elif not answer.headers_done and received > MAX_HEAD:
                raise _too_large(request)
        again = answer.done and not answer.more and answer.keep_alive
        return answer.status, answer, again


def _too_large(request: httpx.Request) -> httpx.RemoteProtocolError:
    return httpx.RemoteProtocolError(
        f"the answer's status line and headers are larger than {MAX_HEAD} bytes", request=request
    )


def _delimited_by_close(headers: list[tuple[bytes, bytes]]) -> bool:
    names = {name.lower() for name, _ in headers}
    return b"content-length" not in names and b"transfer-encoding" not in names


def _request_bytes(request: httpx.Request, body: bytes) -> bytes:
    """The request line, headers and body, as sent."""
    lines = [request.method.encode("ascii"), b" ", request.url.raw_path, b" HTTP/1.1\r\n"]
    chunked = False
    for name, value in request.headers.raw:
        if any(bad in name or bad in value for bad in _BAD_IN_HEADER):
            raise httpx.LocalProtocolError(f"header {name!r} holds a line break", request=request)
        if name.lower() == b"transfer-encoding" and value.lower() == b"chunked":
            chunked = True
        lines += (name, b": ", value, b"\r\n")
    lines.append(b"\r\n")
    if chunked:  # the body is read whole: one chunk and the last
        if body:
            lines += (f"{len(body):x}\r\n".encode(), body, b"\r\n")
        lines.append(b"0\r\n\r\n")
    else:
        lines.append(body)
    return b"".join(lines)


class PlatformTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over asyncio's streams (TLS with ``ssl_context``), with a keep-alive pool."""

    def __init__(
        self, ssl_context: ssl.SSLContext, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ssl = ssl_context
        self._clock = clock
        self._idle: dict[Origin, list[_Connection]] = {}
        self._closed = False
        self.connections_made = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(
                f"'{url.scheme}' is not a protocol the platform client speaks", request=request
            )
        tls = url.scheme == "https"
        origin = (url.scheme, url.host, url.port or (443 if tls else 80))
        timeouts: dict[str, float | None] = dict(request.extensions.get("timeout", {}))
        data = _request_bytes(request, await request.aread())
        for attempt in (1, 2):
            conn = self._take(origin) if attempt == 1 else None  # again: on a new one
            reused = conn is not None
            if conn is None:
                conn = await self._connect(origin, request, timeouts)
            try:
                status, answer, again = await conn.exchange(request, data, timeouts)
            except _Stale:
                conn.close()
                if reused and attempt == 1 and request.method in _IDEMPOTENT:
                    continue  # the server had let the idle connection go: a new one
                raise httpx.RemoteProtocolError(
                    "the server closed the connection without answering", request=request
                ) from None
            except BaseException:
                conn.close()
                raise
            if again:
                self._give_back(origin, conn)
            else:
                conn.close()
            return httpx.Response(
                status,
                headers=answer.headers,
                stream=httpx.ByteStream(b"".join(answer.body)),
                extensions={"http_version": b"HTTP/1.1"},
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def _take(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        now = self._clock()
        while idle:
            conn = idle.pop()  # the most recently used: the likeliest to be open still
            if conn.usable(now):
                return conn
            conn.close()
        return None

    def _give_back(self, origin: Origin, conn: _Connection) -> None:
        if self._closed:  # (closed while its request was under way)
            conn.close()
            return
        conn.idle_since = self._clock()
        idle = self._idle.setdefault(origin, [])
        idle.append(conn)
        if len(idle) > MAX_IDLE:
            idle.pop(0).close()

    async def _connect(
        self, origin: Origin, request: httpx.Request, timeouts: dict[str, float | None]
    ) -> _Connection:
        scheme, host, port = origin
        tls: dict[str, Any] = (
            {"ssl": self._ssl, "server_hostname": host} if scheme == "https" else {}
        )
        loop = asyncio.get_running_loop()
        reader = _Reader(limit=READ_SIZE, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        try:
            async with asyncio.timeout(timeouts.get("connect")):
                stream, _ = await loop.create_connection(lambda: protocol, host, port, **tls)
        except TimeoutError:
            what = f"connecting to {host}:{port} timed out"
            raise httpx.ConnectTimeout(what, request=request) from None
        except (OSError, ssl.SSLError) as exc:
            what = f"cannot connect to {host}:{port}: {exc}"
            raise httpx.ConnectError(what, request=request) from None
        self.connections_made += 1
        return _Connection(reader, asyncio.StreamWriter(stream, protocol, reader, loop))

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()
