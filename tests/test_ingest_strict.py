"""The ingest API probed as an attacker and a clumsy client would: values at the edge of the
calendar, one invoice twice in a batch, values the published document forbids (and allows),
spaces around an external id, and connections that send half a request or hold the server."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_core import OpenAPI
from pydantic import ValidationError

from intdash import __version__
from intdash.core.workspace import Workspace
from intdash.providers.http import httpx
from intdash.server.body import BodyError, parse_json
from intdash.server.formats import AMOUNT, DATE, TIME, TRIMMED
from intdash.server.invoice_in import BatchIn, InvoiceIn
from intdash.server.openapi import openapi_document
from tests.test_ingest import (
    LiveServer,
    Served,
    bearer,
    client,
    conforms,
    custom,
    invoice,
    server,
    spec,
)
from tests.waiting import wait_for

__all__ = ["client", "server", "spec"]  # fixtures

Server = tuple[Workspace, LiveServer]


def push(client: httpx.Client, live: LiveServer, key: str, body: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(
        f"{live.url}/v1/invoices",
        content=content,
        headers={**bearer(key), "Content-Type": "application/json"},
    )


def fields(answer: httpx.Response) -> dict[str, str]:
    return {p["field"]: p["problem"] for p in answer.json().get("problems", [])}


# -- 3: the edge of the calendar ----------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0999-12-31T23:00:00Z"]
)
def test_a_time_beyond_the_calendar_in_utc_is_refused_naming_it(
    server: Server, client: httpx.Client, spec: OpenAPI, value: str
) -> None:
    ws, live = server
    uid, key = custom(ws)
    body = {"external_id": "o1", "currency": "NZD", "total": "1.00", "updated_at": value}
    answer = push(client, live, key, body)
    assert answer.status_code == 422, answer.text
    assert fields(answer) == {"updated_at": "must be in the years 1000 to 9998"}
    conforms(spec, "POST", "/v1/invoices", answer)
    assert not list(ws.invoices.iter_all(uid))


def test_the_first_and_last_moments_taken_are_kept_exactly(
    server: Server, client: httpx.Client, spec: OpenAPI
) -> None:
    ws, live = server
    _, key = custom(ws)
    edges = {
        "first": ("1000-01-01", "1000-01-01T00:00:00+23:59", "0999-12-31T00:01:00+00:00"),
        "last": (
            "9998-12-31",
            "9998-12-31T23:59:59.9999999-23:59",
            "9999-01-01T23:58:59.999999+00:00",
        ),
    }
    for name, (day, moment, utc) in edges.items():
        body = {
            "external_id": name,
            "currency": "NZD",
            "total": "1.00",
            "issue_date": day,
            "due_date": day,
            "updated_at": moment,
        }
        answer = push(client, live, key, body)
        assert answer.status_code == 201, answer.text
        read = client.get(f"{live.url}/v1/invoices/{name}", headers=bearer(key))
        assert (read.json()["issue_date"], read.json()["updated_at"]) == (day, utc)
        conforms(spec, "GET", f"/v1/invoices/{name}", read)


# -- 4: one invoice twice in a batch --------------------------------------------------------------


def test_a_batch_holding_an_invoice_twice_is_refused_naming_both(
    server: Server, client: httpx.Client, spec: OpenAPI
) -> None:
    ws, live = server
    uid, key = custom(ws)
    first = {"external_id": "o1", "currency": "NZD", "total": "1.00"}
    batch = {"invoices": [first, {**first, "total": "2.00"}, invoice(7), {**first, "total": "3"}]}
    answer = push(client, live, key, batch)
    assert answer.status_code == 422, answer.text
    assert "invoices[0]" in answer.json()["message"] and "invoices[1]" in answer.json()["message"]
    assert set(fields(answer)) == {"invoices[1].external_id", "invoices[3].external_id"}
    assert "invoices[0].external_id" in fields(answer)["invoices[1].external_id"]
    conforms(spec, "POST", "/v1/invoices", answer)
    # nothing of it taken, nothing fiscalized
    assert not list(ws.invoices.iter_all(uid))
    assert ws.invoices.verify().records == 0
    # each once is taken
    taken = push(client, live, key, {"invoices": [first, invoice(7)]})
    assert (taken.status_code, taken.json()["created"]) == (201, 2)


# -- 5: the document and the server agree -------------------------------------------------------

WRONG: list[tuple[str, Any, str]] = [
    ("updated_at", 0, "as a string"),
    ("issue_date", 0, "as a string"),
    ("issue_date", "2026-01-01T00:00:00", "YYYY-MM-DD"),
    ("issue_date", "2026-02-29", "not a day of the calendar"),
    ("issue_date", "26-11-02", "YYYY-MM-DD"),
    ("updated_at", "1700000000", "RFC 3339"),
    ("updated_at", "2026-11-02 09:00:00+13:00", "RFC 3339"),
    ("updated_at", "2026-11-02T09:00:00", "time zone"),
    ("updated_at", "2026-11-02T24:00:00Z", "out of range"),
    ("updated_at", "2026-11-02T23:59:60Z", "out of range"),
    ("total", "1_000", "underscores"),
    ("total", "1e3", "exponent"),
    ("total", "", "must not be empty"),
    ("tax", "", "must not be empty"),
    ("total", " 1.00", "decimal"),
    ("total", "+1.00", "decimal"),
    ("total", ".5", "decimal"),
    ("total", "1.", "decimal"),
    ("total", "007", "leading zeros"),
    ("total", "١٢", "decimal"),  # Arabic-Indic digits, which Decimal() would read
    ("total", "1.00001", "4 decimal places"),
    ("total", "1000000000000", "less than 1,000,000,000,000"),
    ("total", 1.00001, "4 decimal places"),
    ("total", 10**12, "less than 1,000,000,000,000"),
    ("total", True, "an amount"),
    ("total", None, "an amount"),
    ("currency", "nzd", "ISO 4217"),
    ("external_id", "", "must not be empty"),
    ("external_id", "x" * 201, "at most 200"),
    ("external_id", "a/../b", "'.' or '..'"),
    ("external_id", "INV\x00", "control characters"),
    ("number", "INV\n1", "control characters"),
    ("contact", 7, "must be a string"),
    ("status", "x" * 33, "at most 32"),
]


AMOUNTS = ("total", "tax", "subtotal")


def document() -> dict[str, Any]:
    return openapi_document(__version__)


def body_validator() -> jsonschema_rs.Validator:
    doc = document()
    request = doc["paths"]["/v1/invoices"]["post"]["requestBody"]["content"]["application/json"]
    return jsonschema_rs.validator_for({**request["schema"], "components": doc["components"]})


VALIDATOR = body_validator()


def server_takes(raw: bytes) -> bool:
    """Whether the server's reading of ``raw`` takes it (in-process: the same functions)."""
    try:
        body = parse_json(raw)
        if isinstance(body, dict) and "invoices" in body:
            BatchIn.model_validate(body)
        else:
            InvoiceIn.model_validate(body)
    except (BodyError, ValidationError):
        return False
    return True


def test_what_the_document_forbids_is_refused_naming_the_field(
    server: Server, client: httpx.Client, spec: OpenAPI
) -> None:
    ws, live = server
    uid, key = custom(ws)
    for name, value, says in WRONG:
        body = {**invoice(1), name: value}
        assert not VALIDATOR.is_valid(body), f"the document allows {name}={value!r}"
        answer = push(client, live, key, body)
        assert answer.status_code == 422, (name, value, answer.text)
        assert says in fields(answer)[name], (name, value, answer.text)
        conforms(spec, "POST", "/v1/invoices", answer)
    assert not list(ws.invoices.iter_all(uid))


def test_a_json_number_with_an_exponent_is_refused(server: Server, client: httpx.Client) -> None:
    ws, live = server
    _, key = custom(ws)
    for name, number in [
        ("total", "1e3"),
        ("total", "1E3"),
        ("total", "1000e-3"),
        ("tax", "0.5e1"),
    ]:
        raw = json.dumps({**invoice(1), name: "@"}).replace('"@"', number)
        answer = push(client, live, key, raw.encode())
        assert answer.status_code == 422, answer.text
        assert "exponent" in fields(answer)[name]


ALLOWED: list[tuple[str, Any, Any]] = [
    ("total", "0", "0.00"),
    ("total", "-0.5", "-0.50"),
    ("total", 115.5, "115.50"),
    ("total", 0.1, "0.10"),
    ("total", "999999999999.9999", "999999999999.9999"),
    ("tax", "0.0001", "0.0001"),
    ("tax", 7, "7.00"),
    ("subtotal", None, "100.00"),
    ("issue_date", "2024-02-29", "2024-02-29"),
    ("updated_at", "2026-11-02t09:00:00.5z", "2026-11-02T09:00:00.500000+00:00"),
    ("updated_at", "2026-11-02T09:00:00-00:00", "2026-11-02T09:00:00+00:00"),
    ("number", "  INV 1\u3000", "INV 1"),  # white space at the ends of a text is dropped
    ("status", " void ", "void"),
    ("external_id", "ERP/2026/..x", "ERP/2026/..x"),
    ("external_id", "Kōwhai 🌼", "Kōwhai 🌼"),
]


def test_what_the_document_allows_is_taken(
    server: Server, client: httpx.Client, spec: OpenAPI
) -> None:
    ws, live = server
    _, key = custom(ws)
    for n, (name, value, kept) in enumerate(ALLOWED):
        body = {**invoice(n), name: value}
        assert VALIDATOR.is_valid(body), f"the document forbids {name}={value!r}"
        answer = push(client, live, key, body)
        assert answer.status_code == 201, (name, value, answer.text)
        conforms(spec, "POST", "/v1/invoices", answer)
        got = answer.json()[name]
        assert Decimal(got) == Decimal(kept) if name in AMOUNTS else got == kept, (name, got)


TEXTS = st.text(st.characters(codec="utf-8"), max_size=8) | st.sampled_from(
    ["", " x", "x ", "\u00a0x", "x\ufeff", "a\nb", "./a", "a/..", "a/b", "..a", "\x85"]
)
VALUES = st.one_of(
    TEXTS,
    st.from_regex(DATE.pattern, fullmatch=True),
    st.from_regex(TIME.pattern, fullmatch=True),
    st.from_regex(AMOUNT.pattern, fullmatch=True),
    st.from_regex(TRIMMED.pattern, fullmatch=True).map(lambda s: s[:210]),
    st.from_regex(r"-?[0-9]{1,14}(\.[0-9]{1,6})?", fullmatch=True),
    st.dates().map(str),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.integers(-(10**13), 10**13),
    st.decimals(-(10**13), 10**13, places=5, allow_nan=False).map(float),
    st.floats(allow_nan=False, allow_infinity=False),
    st.none(),
    st.booleans(),
)
NAMES = ["external_id", "number", "contact", "issue_date", "due_date", "currency"]
NAMES += ["subtotal", "tax", "total", "status", "updated_at", "kind"]
INVOICES = st.builds(
    lambda n, changes: {**invoice(n, issue_date=None, due_date=None), **changes},
    st.integers(0, 5),
    st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=3),
)


@settings(max_examples=800, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(one=INVOICES, batch=st.booleans())
def test_the_document_and_the_server_agree_on_every_body(one: dict[str, Any], batch: bool) -> None:
    body: Any = {"invoices": [one]} if batch else one
    raw = json.dumps(body, ensure_ascii=False).encode()
    issued, due = one.get("issue_date"), one.get("due_date")
    # the document's one rule in words here: a due date is not before the issue date
    backwards = isinstance(issued, str) and isinstance(due, str) and due < issued
    documented = VALIDATOR.is_valid(json.loads(raw)) and not backwards
    assert server_takes(raw) == documented, raw


def test_the_document_publishes_the_bounds() -> None:
    invoice_schema = document()["components"]["schemas"]["Invoice"]
    props = invoice_schema["properties"]
    assert props["external_id"]["maxLength"] == 200 and props["external_id"]["minLength"] == 1
    assert props["external_id"]["pattern"] == TRIMMED.pattern
    number = props["total"]["anyOf"][1]
    assert (number["exclusiveMaximum"], number["multipleOf"]) == (10**12, 0.0001)
    assert props["total"]["anyOf"][0]["pattern"] == AMOUNT.pattern
    assert set(invoice_schema["required"]) == {"external_id", "currency", "total"}
    assert invoice_schema["additionalProperties"] is False


# -- what is not JSON text ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b'{"external_id": "o1", "external_id": "o2", "currency": "NZD", "total": "1"}', "twice"),
        (
            b'{"external_id": "o1", "currency": "NZD", "total": "1", "number": "\\ud800"}',
            "surrogate",
        ),
        (
            b'{"invoices": [{"external_id": "\\udfff", "currency": "NZD", "total": "1"}]}',
            "surrogate",
        ),
        (b'{"\\ud800": 1}', "surrogate"),
    ],
    ids=["repeated name", "lone surrogate", "in a batch", "in a name"],
)
def test_a_body_that_is_not_plain_json_text_is_refused(
    server: Server, client: httpx.Client, spec: OpenAPI, raw: bytes, says: str
) -> None:
    ws, live = server
    uid, key = custom(ws)
    answer = push(client, live, key, raw)
    assert answer.status_code == 400, answer.text
    assert says in answer.json()["message"]
    conforms(spec, "POST", "/v1/invoices", answer)
    assert not list(ws.invoices.iter_all(uid))


# -- 6: one rule for an external id, pushed or read ----------------------------------------------


def test_an_external_id_with_spaces_around_it_is_refused_on_post_and_get(
    server: Server, client: httpx.Client, spec: OpenAPI
) -> None:
    ws, live = server
    uid, key = custom(ws)
    spaced = push(client, live, key, {**invoice(1), "external_id": "  spaced  "})
    assert spaced.status_code == 422
    assert fields(spaced) == {"external_id": "must not start or end with white space"}
    conforms(spec, "POST", "/v1/invoices", spaced)
    read = client.get(f"{live.url}/v1/invoices/%20%20spaced%20%20", headers=bearer(key))
    assert read.status_code == 422
    assert fields(read) == {"external_id": "must not start or end with white space"}
    conforms(spec, "GET", "/v1/invoices/%20%20spaced%20%20", read)
    assert not list(ws.invoices.iter_all(uid))

    # what is taken is found again, exactly as pushed, spaces inside and slashes included
    for external_id in ("in side", "ERP/2026/7", "50% off?#"):
        assert push(client, live, key, {**invoice(1), "external_id": external_id}).is_success
        path = httpx.URL(f"{live.url}/v1/invoices/").copy_with(
            raw_path=f"/v1/invoices/{_quote(external_id)}".encode()
        )
        found = client.get(path, headers=bearer(key))
        assert (found.status_code, found.json()["external_id"]) == (200, external_id)


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="/")


# -- 7: connections that hold the server ---------------------------------------------------------


@pytest.fixture
def served(env: dict[str, str], ws: Workspace, tmp_path: Path) -> Iterator[tuple[Served, str]]:
    _, key = custom(ws)
    limits = {"header_timeout": "0.5", "keep_alive_timeout": "1", "limit_concurrency": "3"}
    with Served(env, tmp_path / "serve.log", **limits) as live:
        yield live, key


def _connect(live: Served) -> socket.socket:
    return socket.create_connection(("127.0.0.1", live.port), timeout=10)


def _until_closed(sock: socket.socket) -> tuple[float, bytes]:
    """Seconds until the server closes ``sock``, and what it sent before."""
    started, got = time.monotonic(), b""
    try:
        while chunk := sock.recv(4096):
            got += chunk
    except ConnectionResetError:
        pass
    return time.monotonic() - started, got


def test_half_a_request_is_closed_within_the_header_timeout(served: tuple[Served, str]) -> None:
    live, _ = served
    for half in (b"POST /v1/inv", b"GET /v1/health HTTP/1.1\r\nHost: x\r\nAccept: appl"):
        with _connect(live) as sock:
            sock.sendall(half)
            waited, got = _until_closed(sock)
        assert 0.3 < waited < 3, waited
        assert got.startswith(b"HTTP/1.1 408 ") and b'"error": "request_timeout"' in got

    # a connection that sends nothing at all
    with _connect(live) as sock:
        waited, got = _until_closed(sock)
    assert (got, waited < 3) == (b"", True)

    # trickling a byte at a time does not move the deadline
    with _connect(live) as sock:
        started = time.monotonic()
        try:
            for byte in b"GET /v1/health HTTP/1.1\r\nHost: x\r\n" * 10:
                sock.sendall(bytes([byte]))
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass
        _until_closed(sock)
        assert time.monotonic() - started < 3


def _health(sock: socket.socket) -> None:
    """Ask for the health on a kept-alive connection and read the whole answer."""
    sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
        answer += sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 200 ")


def test_a_line_break_after_an_answer_does_not_hold_the_connection(
    served: tuple[Served, str],
) -> None:
    """Bytes after an answer (a stray line break, which the parser drops) wait for a request's
    line and headers no longer than the header timeout."""
    live, _ = served
    with _connect(live) as sock:
        _health(sock)
        sock.sendall(b"\r\n")  # the keep-alive wait ends on any byte
        waited, _ = _until_closed(sock)
    assert waited < 3, waited


def test_a_request_line_and_headers_over_16_kib_are_refused(served: tuple[Served, str]) -> None:
    live, _ = served
    for size, status in ((8 * 1024, b"200"), (20 * 1024, b"400")):
        with _connect(live) as sock:
            sock.sendall(
                b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Filler: "
                + b"a" * size
                + b"\r\nConnection: close\r\n\r\n"
            )
            _, got = _until_closed(sock)
        assert got.startswith(b"HTTP/1.1 " + status + b" "), got[:80]
    # nor is a URL of any length gathered without bound: the connection is closed early (its
    # 400 may be lost to the reset of what was still being sent)
    with _connect(live) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(b"GET /v1/" + b"a" * (4 * 1024 * 1024))
        waited, got = _until_closed(sock)
    assert waited < 3 and (got == b"" or got.startswith(b"HTTP/1.1 400 ")), got[:80]


def test_an_idle_connection_is_closed_after_the_keep_alive_timeout(
    served: tuple[Served, str],
) -> None:
    live, _ = served
    with _connect(live) as sock:
        _health(sock)
        waited, _ = _until_closed(sock)
    assert 0.5 < waited < 4, waited


def test_requests_beyond_the_connection_limit_are_answered_503(
    env: dict[str, str], ws: Workspace, tmp_path: Path, spec: OpenAPI
) -> None:
    _, key = custom(ws)
    limits = {"header_timeout": "30", "limit_concurrency": "3"}
    with Served(env, tmp_path / "serve.log", **limits) as live:
        _beyond_the_limit(live, key, spec)


def _beyond_the_limit(live: Served, key: str, spec: OpenAPI) -> None:
    url = f"{live.url}/v1/invoices/ERP-1"
    held = [_connect(live) for _ in range(3)]
    try:

        def refused() -> httpx.Response | None:  # once the server has taken the three
            got = httpx.get(url, headers=bearer(key))
            return got if got.status_code == 503 else None

        busy = wait_for(refused, 10)
        assert busy.status_code == 503
        assert busy.json()["error"] == "busy" and busy.headers["retry-after"] == "1"
        conforms(spec, "GET", "/v1/invoices/ERP-1", busy)
    finally:
        for sock in held:
            sock.close()
    wait_for(lambda: httpx.get(url, headers=bearer(key)).status_code != 503, 10)
    assert httpx.get(url, headers=bearer(key)).status_code == 404
