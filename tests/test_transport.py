"""The platform clients' HTTP/1.1 transport against real servers on loopback: keep-alive, TLS,
the ways an answer is framed, and every way a server can fail it."""

from __future__ import annotations

import asyncio
import gzip
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from intdash.providers.http import httpx, shared_client
from intdash.providers.transport import MAX_HEAD, PlatformTransport
from intdash.sandbox.vsdc_pki import VsdcPki
from tests.waiting import wait_for_async

Reader = asyncio.StreamReader
Writer = asyncio.StreamWriter
Handler = Callable[[Reader, Writer, int], Awaitable[None]]


async def read_request(reader: Reader) -> tuple[bytes, bytes]:
    """A request's head and its body (by Content-Length, or chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    fields = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines[1:] if line)}
    if "content-length" in fields:
        return head, await reader.readexactly(int(fields["content-length"]))
    body = b""
    if fields.get("transfer-encoding") == "chunked":
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            body += await reader.readexactly(size)
            await reader.readexactly(2)
        await reader.readexactly(2)
    return head, body


def answer(body: bytes = b"ok", status: str = "200 OK", *extra: str) -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class Server:
    """A raw asyncio server on a free loopback port; ``handler`` gets each connection and its
    number (1, 2, ...)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.accepted = 0
        self.heads: list[bytes] = []
        self.bodies: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def _serve(self, reader: Reader, writer: Writer) -> None:
        self.accepted += 1
        try:
            await self.handler(reader, writer, self.accepted)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def request(self, reader: Reader) -> None:
        head, body = await read_request(reader)
        self.heads.append(head)
        self.bodies.append(body)


@asynccontextmanager
async def serving(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    server = Server(handler)
    server.server = await asyncio.start_server(server._serve, "127.0.0.1", 0, ssl=tls)
    server.port = int(server.server.sockets[0].getsockname()[1])
    try:
        yield server
    finally:
        server.server.close()


def client(transport: PlatformTransport, timeout: float = 5.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=transport, timeout=timeout)


def plain() -> PlatformTransport:
    return PlatformTransport(ssl.create_default_context())


async def test_one_connection_serves_request_after_request() -> None:
    async def keep_answering(reader: Reader, writer: Writer, _n: int) -> None:
        while True:
            await server.request(reader)
            writer.write(answer(b'{"Invoices": []}', "200 OK", "Content-Type: application/json"))
            await writer.drain()

    async with serving(keep_answering) as server:
        transport = plain()
        async with client(transport) as http:
            for page in range(1, 6):
                got = await http.get(
                    f"http://127.0.0.1:{server.port}/api.xro/2.0/Invoices",
                    params={"page": str(page), "order": "UpdatedDateUTC ASC"},
                    headers={"xero-tenant-id": "t-1"},
                )
                assert got.status_code == 200
                assert got.json() == {"Invoices": []}
                assert got.http_version == "HTTP/1.1"
    assert server.accepted == 1 and transport.connections_made == 1
    first = server.heads[0].decode()
    line = "GET /api.xro/2.0/Invoices?page=1&order=UpdatedDateUTC+ASC HTTP/1.1\r\n"
    assert first.startswith(line)
    assert f"host: 127.0.0.1:{server.port}\r\n" in first.lower()
    assert "xero-tenant-id: t-1\r\n" in first


async def test_tls_with_the_trusted_authority_and_refused_without(tmp_path: Path) -> None:
    pki = VsdcPki(tmp_path)
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(pki.server_cert_path, pki.server_key_path)

    async def once(reader: Reader, writer: Writer, _n: int) -> None:
        await server.request(reader)
        writer.write(answer(b"secure"))
        await writer.drain()
        await reader.read()  # until the client lets go

    async with serving(once, tls=served) as server:
        url = f"https://127.0.0.1:{server.port}/x"
        trusting = ssl.create_default_context(cafile=str(pki.ca_path))
        async with client(PlatformTransport(trusting)) as http:
            assert (await http.get(url)).text == "secure"
        async with client(PlatformTransport(ssl.create_default_context())) as http:
            with pytest.raises(httpx.ConnectError, match="certificate verify failed"):
                await http.get(url)


async def test_a_kept_connection_the_server_closed_is_replaced() -> None:
    """The server answers once and lets the connection go (seen, or only found on reuse)."""

    async def answer_once_then_close(reader: Reader, writer: Writer, _n: int) -> None:
        await server.request(reader)
        writer.write(answer())
        await writer.drain()
        await read_request(reader)  # a second request on it: closed without an answer

    async with serving(answer_once_then_close) as server:
        transport = plain()
        async with client(transport) as http:
            for _ in range(3):
                assert (await http.get(f"http://127.0.0.1:{server.port}/")).text == "ok"
    assert transport.connections_made == 3


async def test_a_post_is_not_sent_twice_when_the_kept_connection_fails() -> None:
    async def answer_once_then_close(reader: Reader, writer: Writer, _n: int) -> None:
        await server.request(reader)
        writer.write(answer())
        await writer.drain()
        await server.request(reader)  # taken, never answered

    async with serving(answer_once_then_close) as server, client(plain()) as http:
        url = f"http://127.0.0.1:{server.port}/"
        assert (await http.get(url)).text == "ok"
        with pytest.raises(httpx.RemoteProtocolError, match="without answering"):
            await http.post(url, content=b"once")
    assert server.bodies == [b"", b"once"]


async def test_bodies_framed_every_way() -> None:
    zipped = gzip.compress(b"decoded " * 100)

    async def framed(reader: Reader, writer: Writer, n: int) -> None:
        await server.request(reader)
        if n == 1:  # chunked, in several writes
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for part in (b"ab", b"cde", b""):
                writer.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                await writer.drain()
        elif n == 2:  # gzip, decoded by the client
            writer.write(answer(zipped, "200 OK", "Content-Encoding: gzip"))
        elif n == 3:  # ended by the connection's close
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
        elif n == 4:  # a 204 and a HEAD's answer carry no body, whatever their headers say
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        else:
            writer.write(answer(b"", "200 OK").replace(b"Length: 0", b"Length: 1000"))
        await writer.drain()
        await writer.drain()

    async with serving(framed) as server:
        url = f"http://127.0.0.1:{server.port}/"
        transport = plain()
        async with client(transport) as http:
            async with asyncio.timeout(5):
                assert (await http.get(url, headers={"Connection": "close"})).text == "abcde"
                got = await http.get(url, headers={"Connection": "close"})
                assert got.text == "decoded " * 100
                assert (await http.get(url)).text == "until the end"
                assert (await http.get(url, headers={"Connection": "close"})).status_code == 204
                head = await http.head(url, headers={"Connection": "close"})
                assert head.status_code == 200 and head.content == b""


async def test_a_request_body_arrives_whole() -> None:
    async def echo(reader: Reader, writer: Writer, _n: int) -> None:
        while True:
            await server.request(reader)
            writer.write(answer(server.bodies[-1]))
            await writer.drain()

    async def parts() -> AsyncIterator[bytes]:
        for part in (b"one ", b"two ", b"three"):
            yield part

    async with serving(echo) as server:
        url = f"http://127.0.0.1:{server.port}/"
        async with client(plain()) as http:
            assert (await http.post(url, json={"a": 1})).json() == {"a": 1}
            assert (await http.post(url, content=parts())).text == "one two three"
            assert (await http.post(url, content=b"")).text == ""
    assert b"transfer-encoding: chunked" in server.heads[1].lower()


@pytest.mark.parametrize(
    ("sent", "error", "message"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", httpx.RemoteProtocolError,
         "in the middle of its answer"),
        (b"SMTP ready\r\n\r\n", httpx.RemoteProtocolError, "not valid HTTP/1.1"),
        (b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (MAX_HEAD + 10) + b"\r\n\r\n",
         httpx.RemoteProtocolError, "larger than"),
        (b"HTTP/1.1 100 Continue\r\n\r\n", httpx.RemoteProtocolError, "in the middle"),
        (b"", httpx.RemoteProtocolError, "without answering"),
    ],
    ids=["cut short", "not http", "huge head", "interim", "nothing"],
)  # fmt: skip
async def test_a_broken_answer_is_a_clear_error(
    sent: bytes, error: type[Exception], message: str
) -> None:
    async def broken(reader: Reader, writer: Writer, _n: int) -> None:
        await server.request(reader)
        writer.write(sent)
        await writer.drain()

    async with serving(broken) as server, client(plain()) as http:
        with pytest.raises(error, match=message):
            await http.get(f"http://127.0.0.1:{server.port}/")


async def test_time_limits_and_a_closed_port() -> None:
    async def silent(reader: Reader, writer: Writer, _n: int) -> None:
        await server.request(reader)
        await reader.read()  # never answers

    async with serving(silent) as server:
        async with client(plain(), timeout=0.2) as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.get(f"http://127.0.0.1:{server.port}/")
        port = server.port
    async with client(plain()) as http:
        with pytest.raises(httpx.ConnectError, match="cannot connect"):
            await http.get(f"http://127.0.0.1:{port}/")
        with pytest.raises(httpx.UnsupportedProtocol):
            await http.get("ftp://127.0.0.1/")


async def test_a_header_with_a_line_break_is_never_sent() -> None:
    async def unused(reader: Reader, writer: Writer, _n: int) -> None:
        await server.request(reader)

    async with serving(unused) as server, client(plain()) as http:
        with pytest.raises(httpx.LocalProtocolError, match="line break"):
            await http.get(
                f"http://127.0.0.1:{server.port}/", headers={"X-A": "b\r\nX-Injected: 1"}
            )
    assert server.heads == []


async def test_the_shared_platform_client_uses_it_unless_a_proxy_is_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a proxy in the environment, platform calls go through this transport; with
    one (an operator behind a company's proxy), through httpx's own, which takes it."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    direct = shared_client("xero-transport-test", httpx.Timeout(5.0))
    assert isinstance(direct._transport, PlatformTransport)
    assert not direct._mounts
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    proxied = shared_client("xero-proxied-test", httpx.Timeout(5.0))
    assert not isinstance(proxied._transport, PlatformTransport)
    assert any(t is not None for t in proxied._mounts.values())
    await direct.aclose()
    await proxied.aclose()


def idle_unread(transport: PlatformTransport) -> bool:
    """Whether a kept connection has received bytes nobody read (the test's view inside)."""
    return any(c.reader.arrived > c.consumed for conns in transport._idle.values() for c in conns)


@pytest.mark.parametrize(
    "late",
    [
        answer(b"surplus", "500 Internal Server Error"),
        answer(b"", "408 Request Timeout", "Connection: close"),
    ],
    ids=["a surplus answer", "408 before letting go"],
)
async def test_a_kept_connection_that_received_anything_while_idle_is_not_used(
    late: bytes,
) -> None:
    """Bytes that arrive on a kept connection after its answer (a surplus answer a moment
    later, a server's 408 as it lets an idle connection go) would be read as the next
    request's answer: such a connection is closed, and the next request gets its own."""
    go = asyncio.Event()

    async def late_bytes(reader: Reader, writer: Writer, n: int) -> None:
        while True:
            await server.request(reader)
            writer.write(answer(f"answer {n}".encode()))
            await writer.drain()
            if n == 1:
                await go.wait()
                writer.write(late)
                await writer.drain()

    async with serving(late_bytes) as server:
        transport = plain()
        async with client(transport) as http:
            assert (await http.get(f"http://127.0.0.1:{server.port}/")).text == "answer 1"
            go.set()
            await wait_for_async(lambda: idle_unread(transport), 10, "the late bytes never came")
            second = await http.get(f"http://127.0.0.1:{server.port}/")
            assert (second.status_code, second.text) == (200, "answer 2")
    assert transport.connections_made == 2


async def test_a_request_is_sent_again_on_a_new_connection_not_another_kept_one() -> None:
    """Two kept connections the server has let go: a GET that finds the first gone is sent
    again on a new connection, not on the second (which is gone too)."""
    both = asyncio.Barrier(2)

    async def twice_then_gone(reader: Reader, writer: Writer, n: int) -> None:
        await server.request(reader)
        if n <= 2:
            await both.wait()  # two requests at once: two connections kept
        writer.write(answer(f"answer {n}".encode()))
        await writer.drain()
        if n <= 2:
            await read_request(reader)  # a next request on it: let go without an answer
            return
        while True:
            await server.request(reader)
            writer.write(answer(b"again"))
            await writer.drain()

    async with serving(twice_then_gone) as server:
        transport = plain()
        url = f"http://127.0.0.1:{server.port}/"
        async with client(transport) as http:
            await asyncio.gather(http.get(url), http.get(url))
            assert (await http.get(url)).text == "answer 3"
    assert transport.connections_made == 3


async def test_interim_answers_are_passed_over_and_garbage_after_an_answer_is_left() -> None:
    async def informational(reader: Reader, writer: Writer, n: int) -> None:
        await server.request(reader)
        if n == 1:  # Early Hints, then the answer
            writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
            writer.write(answer(b"final", "200 OK", "X-Final: yes"))
            await writer.drain()
            return  # and let go
        writer.write(answer(b"whole") + b"\x00\x01 not http\r\n\r\n")  # then bytes of no HTTP
        await writer.drain()
        await reader.read()

    async with serving(informational) as server:
        transport = plain()
        url = f"http://127.0.0.1:{server.port}/"
        async with client(transport) as http:
            first = await http.get(url)
            assert (first.status_code, first.text, first.headers.get("x-final")) == (
                200, "final", "yes",
            )  # fmt: skip
            assert "link" not in first.headers
            second = await http.get(url)
            assert (second.status_code, second.text) == (200, "whole")
            third = await http.get(url)  # the second's connection was not kept
            assert third.status_code == 200
    assert transport.connections_made == 3


async def test_a_connection_whose_request_ends_after_the_transport_closed_is_closed() -> None:
    release = asyncio.Event()

    async def held(reader: Reader, writer: Writer, _n: int) -> None:
        await server.request(reader)
        await release.wait()
        writer.write(answer())
        await writer.drain()
        assert await reader.read() == b""  # the client let it go
        server.bodies.append(b"closed")

    async with serving(held) as server:
        transport = plain()
        http = client(transport)
        pending = asyncio.ensure_future(http.get(f"http://127.0.0.1:{server.port}/"))
        await wait_for_async(lambda: server.heads, 10)
        await transport.aclose()
        release.set()
        assert (await pending).text == "ok"
        await wait_for_async(lambda: b"closed" in server.bodies, 10, "kept after aclose")
        assert not transport._idle


def test_a_calls_url_keeps_its_own_query() -> None:
    from intdash.providers.api import _url

    assert str(_url("https://api.example/x?skip=400", ())) == "https://api.example/x?skip=400"
    assert str(_url("https://api.example/x", (("page", "2"), ("order", "A B")))) == (
        "https://api.example/x?page=2&order=A+B"
    )


async def test_bytes_beyond_an_answer_are_not_taken_for_it_nor_the_next() -> None:
    """A server that writes more than its answer (another answer unasked): the first is what
    the request gets, and the connection is not used again (that surplus would answer the next
    request)."""

    async def too_much(reader: Reader, writer: Writer, n: int) -> None:
        while True:
            await server.request(reader)
            surplus = answer(b"surplus", "500 Internal Server Error") if n == 1 else b""
            writer.write(answer(f"answer {n}".encode()) + surplus)
            await writer.drain()

    async with serving(too_much) as server:
        transport = plain()
        async with client(transport) as http:
            first = await http.get(f"http://127.0.0.1:{server.port}/")
            assert (first.status_code, first.text) == (200, "answer 1")
            assert "surplus" not in first.text and len(first.headers) == 1
            second = await http.get(f"http://127.0.0.1:{server.port}/")
            assert (second.status_code, second.text) == (200, "answer 2")
    assert transport.connections_made == 2


async def test_a_large_answer_comes_whole() -> None:
    """A page of a thousand invoices is megabytes: read across many reads, whole."""
    big = b"".join(b'{"InvoiceID": "%08d"},' % n for n in range(60_000))

    async def large(reader: Reader, writer: Writer, _n: int) -> None:
        while True:
            await server.request(reader)
            writer.write(answer(big))
            await writer.drain()

    async with serving(large) as server:
        transport = plain()
        async with client(transport) as http:
            for _ in range(2):
                got = await http.get(f"http://127.0.0.1:{server.port}/")
                assert got.content == big
    assert len(big) > 1_000_000 and transport.connections_made == 1


async def test_a_connection_idle_past_the_keep_alive_time_is_not_used() -> None:
    now = [1000.0]

    async def keep_answering(reader: Reader, writer: Writer, n: int) -> None:
        while True:
            await server.request(reader)
            writer.write(answer(f"answer {n}".encode()))
            await writer.drain()

    async with serving(keep_answering) as server:
        transport = PlatformTransport(ssl.create_default_context(), clock=lambda: now[0])
        url = f"http://127.0.0.1:{server.port}/"
        async with client(transport) as http:
            assert (await http.get(url)).text == "answer 1"
            now[0] += 4.9  # within the keep-alive time: the same connection
            assert (await http.get(url)).text == "answer 1"
            now[0] += 5.1  # past it (a server lets such a connection go): a new one
            assert (await http.get(url)).text == "answer 2"
    assert transport.connections_made == 2


async def test_a_request_cancelled_midway_leaves_no_connection_behind() -> None:
    async def silent(reader: Reader, writer: Writer, _n: int) -> None:
        await server.request(reader)
        assert await reader.read() == b""  # the client let go
        server.bodies.append(b"let go")

    async with serving(silent) as server:
        transport = plain()
        async with client(transport) as http:
            pending = asyncio.ensure_future(http.get(f"http://127.0.0.1:{server.port}/"))
            await wait_for_async(lambda: server.heads, 10)
            pending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await pending
            await wait_for_async(lambda: b"let go" in server.bodies, 10, "kept after a cancel")
            assert not transport._idle
