"""The loopback listener that takes the OAuth redirect, for the length of one flow.

Over SSH the operator forwards the port (``ssh -L 8471:localhost:8471 host``), so the browser on
their own machine reaches it. Only loopback addresses are listened on.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

from intdash.core.catalog import is_loopback_host
from intdash.core.errors import ConfigError

PAGE = """<!doctype html><meta charset="utf-8"><title>intdash</title>
<body style="font-family: sans-serif; margin: 3em"><h1>{title}</h1><p>{text}</p></body>"""


class CallbackListener:
    def __init__(self, redirect_uri: str) -> None:
        parts = urlsplit(redirect_uri)
        if parts.scheme != "http" or not parts.hostname or not is_loopback_host(parts.hostname):
            raise ConfigError(
                f"the redirect URI {redirect_uri} is not on loopback: intdash can only listen on "
                "http://localhost or http://127.0.0.1"
            )
        self.redirect_uri = redirect_uri
        self.host = "127.0.0.1" if parts.hostname == "localhost" else parts.hostname
        self.port = parts.port or 80
        self.path = parts.path or "/"
        self._server: asyncio.Server | None = None
        self._result: asyncio.Future[str] | None = None

    async def __aenter__(self) -> CallbackListener:
        self._result = asyncio.get_running_loop().create_future()
        try:
            self._server = await asyncio.start_server(self._handle, self.host, self.port)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {self.host}:{self.port} for the OAuth callback "
                f"({exc.strerror}); paste the redirected URL instead"
            ) from None
        return self

    async def __aexit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        if self._result is not None and not self._result.done():
            self._result.cancel()

    async def wait(self) -> str:
        """The full redirected URL, once the browser brings it."""
        assert self._result is not None, "use 'async with'"
        return await self._result

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), 10)
            while (await asyncio.wait_for(reader.readline(), 10)) not in (b"\r\n", b"\n", b""):
                pass  # the headers: nothing in them is needed
            method, target, _ = request_line.decode("latin-1").split(" ", 2)
            parts = urlsplit(target)
            query = parse_qs(parts.query)
            if (
                method != "GET"
                or parts.path != self.path
                or not (query.get("code") or query.get("error"))
            ):
                await self._reply(writer, 404, "Not found", "This is intdash's OAuth callback.")
                return
            if query.get("error"):
                await self._reply(writer, 200, "Authorisation not given",
                                  f"The platform said: {html.escape(query['error'][0])}. "
                                  "You can close this tab.")  # fmt: skip
            else:
                await self._reply(writer, 200, "intdash is connecting",
                                  "You can close this tab and return to intdash.")  # fmt: skip
            base = self.redirect_uri.split("?", 1)[0]
            if self._result is not None and not self._result.done():
                self._result.set_result(f"{base}?{parts.query}")
        except (TimeoutError, ValueError, ConnectionError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, status: int, title: str, text: str) -> None:
        body = PAGE.format(title=html.escape(title), text=text).encode()
        reason = "OK" if status == 200 else "Not Found"
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
        )
        writer.write(head.encode() + body)
        await writer.drain()
