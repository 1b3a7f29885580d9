"""The ingest API over real sockets: uvicorn on 127.0.0.1, httpx as the client."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from intdash.core.config import load_settings
from intdash.core.workspace import Workspace
from intdash.providers.http import httpx
from intdash.server.app import create_app
from intdash.server.openapi import EXAMPLE
from tests.conftest import FakeClock
from tests.providers import free_port
from tests.waiting import wait_for


class LiveServer:
    """intdash's ASGI app served by uvicorn on a loopback port, in a thread of its own."""

    def __init__(self, ws: Workspace) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(ws), host="127.0.0.1", port=self.port, log_config=None, lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=asyncio.run, args=(self.server.serve(),))

    def __enter__(self) -> LiveServer:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            self.thread.join(0.01)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class Served:
    """A real ``intdash serve --no-scheduler`` (or with its scheduler) on a free loopback port,
    with ``env`` and ``settings`` (``INTDASH_SERVER__*`` without the prefix), its log in
    ``log``."""

    def __init__(self, env: dict[str, str], log: Path, **settings: str) -> None:
        self.schedule = False  # set before entering: run the scheduler too (a plain serve)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        values = {"PORT": str(self.port), **settings}
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("INTDASH_")},
            **env,
            **{f"INTDASH_SERVER__{name.upper()}": value for name, value in values.items()},
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Served:
        script = Path(sys.executable).with_name("intdash")
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(script), "serve", *([] if self.schedule else ["--no-scheduler"])],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        proc = self.proc

        def settled() -> str | None:
            if proc.poll() is not None:
                return "exited"
            try:
                if httpx.get(f"{self.url}/v1/health", timeout=5).status_code == 200:
                    return "up"
            except httpx.TransportError:
                pass
            return None

        try:
            state = wait_for(settled, 30)
        except AssertionError:
            state = "timed out"
        if state != "up":
            self.__exit__()
            raise RuntimeError(f"intdash serve did not start: {self.log.read_text()}")
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def open_ws(settings_env: dict[str, str], clock: FakeClock) -> Workspace:
    return Workspace.open(load_settings(), clock=clock, actor="tester")


@pytest.fixture
def server(
    env: dict[str, str], clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Workspace, LiveServer]]:
    monkeypatch.setenv("INTDASH_SERVER__RATE_PER_SECOND", "1000")
    monkeypatch.setenv("INTDASH_SERVER__RATE_BURST", "1000")
    monkeypatch.setenv("INTDASH_SERVER__MAX_BODY_BYTES", str(1024 * 1024))
    ws = open_ws(env, clock)
    with LiveServer(ws) as live:
        yield ws, live
    ws.close()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def spec() -> OpenAPI:
    from intdash import __version__
    from intdash.server.openapi import openapi_document

    return OpenAPI.from_dict(openapi_document(__version__))


def custom(ws: Workspace, limit: int = 1000) -> tuple[str, str]:
    ws.plans.set("scale", monthly_limit=limit)
    uid = ws.integrations.create("custom", name="ERP").integration.uid
    return uid, ws.keys.create(uid, "production").key


def invoice(n: int, **extra: Any) -> dict[str, Any]:
    """The served document's own example, numbered ``n``."""
    return {**EXAMPLE, "external_id": f"ERP-{n}", "number": f"INV-{n:05d}", **extra}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def conforms(spec: OpenAPI, method: str, path: str, response: httpx.Response) -> None:
    """The answer is what the OpenAPI document says it is."""
    request = MockRequest("http://127.0.0.1", method.lower(), path)
    spec.validate_response(
        request,
        MockResponse(
            response.content,
            status_code=response.status_code,
            headers=dict(response.headers),
            content_type=response.headers.get("content-type", "application/json"),
        ),
    )


# -- the happy path --------------------------------------------------------------------------


def test_push_one_then_read_it(
    server: tuple[Workspace, LiveServer], client: httpx.Client, spec: OpenAPI
) -> None:
    ws, live = server
    uid, key = custom(ws)
    answer = client.post(f"{live.url}/v1/invoices", json=invoice(1), headers=bearer(key))
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["outcome"] == "created"
    assert body["fiscal_status"] == "fiscalized"
    assert body["subtotal"] == "100.00"  # total minus tax when not given
    record = body["fiscal_record"]
    assert record["seq"] == 1 and len(record["hash"]) == 64
    conforms(spec, "POST", "/v1/invoices", answer)

    read = client.get(f"{live.url}/v1/invoices/ERP-1", headers=bearer(key))
    assert read.status_code == 200
    assert read.json()["fiscal_record"] == record
    assert read.json()["updated_at"] == "2026-11-01T20:00:00+00:00"  # kept, in UTC
    conforms(spec, "GET", "/v1/invoices/ERP-1", read)

    # the same register and history as synced invoices
    assert ws.invoices.verify().ok
    [row] = ws.invoices.page(integration_uid=uid)
    assert (row.external_id, row.fiscal_status, row.fiscal_seq) == ("ERP-1", "fiscalized", 1)
    # the key was used
    assert ws.keys.list(uid)[0].last_used is not None

    missing = client.get(f"{live.url}/v1/invoices/ERP-404", headers=bearer(key))
    assert missing.status_code == 404 and "ERP-404" in missing.json()["message"]
    conforms(spec, "GET", "/v1/invoices/ERP-404", missing)


def test_a_batch_and_its_retry(
    server: tuple[Workspace, LiveServer], client: httpx.Client, spec: OpenAPI
) -> None:
    ws, live = server
    uid, key = custom(ws)
    batch = {"invoices": [invoice(n) for n in range(1000)]}
    first = client.post(f"{live.url}/v1/invoices", json=batch, headers=bearer(key))
    assert first.status_code == 201, first.text
    assert (first.json()["created"], first.json()["unchanged"]) == (1000, 0)
    assert [i["external_id"] for i in first.json()["invoices"]] == [f"ERP-{n}" for n in range(1000)]
    conforms(spec, "POST", "/v1/invoices", first)

    # a retried request (the client never saw the answer) makes no duplicate
    again = client.post(f"{live.url}/v1/invoices", json=batch, headers=bearer(key))
    assert again.status_code == 200
    assert (again.json()["created"], again.json()["unchanged"]) == (0, 1000)
    assert [i["fiscal_record"] for i in again.json()["invoices"]] == [
        i["fiscal_record"] for i in first.json()["invoices"]
    ]
    # an edited invoice is updated, keeping its fiscal record
    edited = client.post(
        f"{live.url}/v1/invoices", json=invoice(7, status="PAID"), headers=bearer(key)
    )
    assert (edited.status_code, edited.json()["outcome"]) == (200, "updated")
    assert edited.json()["fiscal_record"] == first.json()["invoices"][7]["fiscal_record"]
    assert len(list(ws.invoices.iter_all(uid))) == 1000
    assert ws.invoices.verify().records == 1000

    too_many = {"invoices": [invoice(n) for n in range(1001)]}
    over = client.post(f"{live.url}/v1/invoices", json=too_many, headers=bearer(key))
    assert over.status_code == 422
    assert over.json()["problems"][0]["field"] == "invoices"


def test_concurrent_pushes_of_the_same_invoices(
    server: tuple[Workspace, LiveServer], spec: OpenAPI
) -> None:
    ws, live = server
    uid, key = custom(ws)
    batch = {"invoices": [invoice(n) for n in range(50)]}

    async def push() -> int:
        async with httpx.AsyncClient(timeout=30) as c:
            answer = await c.post(f"{live.url}/v1/invoices", json=batch, headers=bearer(key))
            return answer.status_code

    async def all_at_once() -> list[int]:
        return await asyncio.gather(*(push() for _ in range(6)))

    statuses = asyncio.run(all_at_once())
    assert sorted(statuses) == [200] * 5 + [201]
    assert len(list(ws.invoices.iter_all(uid))) == 50
    assert ws.invoices.verify().records == 50


# -- who may push ----------------------------------------------------------------------------


def test_keys_refused(
    server: tuple[Workspace, LiveServer], client: httpx.Client, spec: OpenAPI
) -> None:
    ws, live = server
    uid, key = custom(ws)
    url = f"{live.url}/v1/invoices"
    for headers, says in (
        ({}, "Authorization: Bearer"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "Authorization: Bearer"),
        (bearer("not-a-key"), "not an intdash API key"),
        (bearer(key[:-4] + "AAAA"), "unknown API key"),
        (bearer("idk_zzzzzzzzzz_" + "A" * 32), "unknown API key"),
    ):
        answer = client.post(url, json=invoice(1), headers=headers)
        assert answer.status_code == 401, headers
        assert says in answer.json()["message"]
        assert answer.headers["www-authenticate"].startswith("Bearer")
        conforms(spec, "POST", "/v1/invoices", answer)
    assert not list(ws.invoices.iter_all(uid))

    # a revoked key is refused at once
    assert client.post(url, json=invoice(1), headers=bearer(key)).status_code == 201
    ws.keys.revoke(ws.keys.list(uid)[0].key_id)
    revoked = client.post(url, json=invoice(2), headers=bearer(key))
    assert revoked.status_code == 401 and "revoked" in revoked.json()["message"]
    got = client.get(f"{live.url}/v1/invoices/ERP-1", headers=bearer(key))
    assert got.status_code == 401


def test_inactive_integrations_refused_with_403(
    server: tuple[Workspace, LiveServer], client: httpx.Client, clock: FakeClock
) -> None:
    ws, live = server
    uid, key = custom(ws)
    url = f"{live.url}/v1/invoices"
    ws.integrations.set_sync_enabled(uid, False)
    disabled = client.post(url, json=invoice(1), headers=bearer(key))
    assert disabled.status_code == 403 and "disabled" in disabled.json()["message"]
    ws.integrations.set_sync_enabled(uid, True)
    assert client.post(url, json=invoice(1), headers=bearer(key)).status_code == 201

    ws.plans.set("scale", licence_expires=(clock.now - timedelta(days=1)).date())
    lapsed = client.post(url, json=invoice(2), headers=bearer(key))
    assert lapsed.status_code == 403 and "licence" in lapsed.json()["message"]
    ws.plans.set("scale", licence_expires=(clock.now + timedelta(days=30)).date())

    ws.integrations.remove(uid)
    removed = client.post(url, json=invoice(3), headers=bearer(key))
    assert removed.status_code == 403 and "removed" in removed.json()["message"]
    # what it took before stays
    assert [i.external_id for i in ws.invoices.iter_all(uid)] == ["ERP-1"]


# -- what is sent ----------------------------------------------------------------------------


def test_bad_bodies_named(
    server: tuple[Workspace, LiveServer], client: httpx.Client, spec: OpenAPI
) -> None:
    ws, live = server
    uid, key = custom(ws)
    url = f"{live.url}/v1/invoices"

    def send(body: Any, **kw: Any) -> httpx.Response:
        if "content" not in kw:
            kw["json"] = body
        answer = client.post(url, headers={**bearer(key), **kw.pop("headers", {})}, **kw)
        conforms(spec, "POST", "/v1/invoices", answer)
        return answer

    wrong = send({"invoices": [invoice(1), invoice(2, total="12.345678", currency="nzd")]})
    assert wrong.status_code == 422
    fields = {p["field"]: p["problem"] for p in wrong.json()["problems"]}
    assert "4 decimal places" in fields["invoices[1].total"]
    assert "invoices[1].currency" in fields
    assert "invoices[0].total" not in fields

    missing = send({"external_id": "X"})
    assert {p["field"] for p in missing.json()["problems"]} == {"currency", "total"}
    naive = send(invoice(3, updated_at="2026-11-02T09:00:00"))
    assert "time zone" in naive.json()["message"]
    backwards = send(invoice(4, due_date="2026-01-01"))
    assert backwards.json()["message"] == "due_date: must not be before issue_date (2026-11-02)"
    extra = send(invoice(5, colour="blue"))
    assert extra.json()["problems"][0]["field"] == "colour"

    assert send(None, content=b"{not json").status_code == 400
    assert send(None, content=b"").status_code == 400
    assert send(None, content=b'{"total": NaN}').status_code == 400
    assert send(None, content=b"\xff\xfe").status_code == 400
    assert send(None, content=b"[" * 100_000).status_code == 400
    assert send(None, content=b"{}", headers={"Content-Type": "text/plain"}).status_code == 415
    huge = send({"invoices": [invoice(n, contact="x" * 2000) for n in range(1000)]})
    assert huge.status_code == 413
    assert not list(ws.invoices.iter_all(uid))  # nothing taken from any of them


def test_the_monthly_limit(
    server: tuple[Workspace, LiveServer], client: httpx.Client, clock: FakeClock
) -> None:
    ws, live = server
    _, key = custom(ws, limit=5)
    batch = {"invoices": [invoice(n) for n in range(8)]}
    answer = client.post(f"{live.url}/v1/invoices", json=batch, headers=bearer(key))
    assert answer.status_code == 201
    body = answer.json()
    assert body["held"] == 3
    statuses = [i["fiscal_status"] for i in body["invoices"]]
    assert statuses == ["fiscalized"] * 5 + ["held"] * 3
    assert [i["fiscal_record"] is None for i in body["invoices"]] == [False] * 5 + [True] * 3
    # purchase invoices are kept, not fiscalized, not counted
    bill = client.post(
        f"{live.url}/v1/invoices", json=invoice(99, kind="purchase"), headers=bearer(key)
    )
    assert bill.json()["fiscal_status"] == "received"

    # the month turns: the next push releases what was held, oldest first
    clock.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    later = client.post(f"{live.url}/v1/invoices", json=invoice(8), headers=bearer(key))
    assert later.json()["fiscal_status"] == "fiscalized"
    held = client.get(f"{live.url}/v1/invoices/ERP-5", headers=bearer(key)).json()
    assert held["fiscal_status"] == "fiscalized" and held["fiscal_record"] is not None
    assert ws.invoices.verify().ok


def test_the_rate_limit(
    env: dict[str, str], clock: FakeClock, monkeypatch: pytest.MonkeyPatch, client: httpx.Client
) -> None:
    monkeypatch.setenv("INTDASH_SERVER__RATE_PER_SECOND", "0.2")
    monkeypatch.setenv("INTDASH_SERVER__RATE_BURST", "3")
    ws = open_ws(env, clock)
    uid, key = custom(ws)
    other = ws.keys.create(uid, "another").key
    with LiveServer(ws) as live:
        url = f"{live.url}/v1/invoices"
        codes = [
            client.post(url, json=invoice(n), headers=bearer(key)).status_code for n in range(3)
        ]
        assert codes == [201, 201, 201]
        limited = client.post(url, json=invoice(3), headers=bearer(key))
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 5
        # per key: another key is not held back
        assert client.post(url, json=invoice(3), headers=bearer(other)).status_code == 201
    ws.close()


# -- nothing a client sends gives a 500 -------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
FIELD_VALUES = {
    "external_id": st.text(max_size=300),
    "number": st.none() | st.text(max_size=300),
    "kind": st.sampled_from(["sales", "purchase", "SALES", "", "credit"]),
    "contact": st.none() | st.text(max_size=500),
    "issue_date": st.none() | st.dates().map(str) | st.text(max_size=12),
    "due_date": st.none() | st.dates().map(str) | st.text(max_size=12),
    "currency": st.sampled_from(["NZD", "AUD", "nzd", "NZDX", ""]) | st.text(max_size=4),
    "subtotal": st.none() | st.decimals(allow_nan=False).map(str) | st.floats() | st.integers(),
    "tax": st.decimals(allow_nan=False, allow_infinity=False).map(str) | st.integers(),
    "total": st.decimals(allow_nan=True).map(str) | st.floats() | st.integers() | st.text(),
    "status": st.none() | st.text(max_size=40),
    "updated_at": st.none() | st.datetimes().map(lambda d: d.isoformat()) | st.text(max_size=30),
}
# a good invoice with some fields changed at random, a random one, or any JSON at all
INVOICE = (
    st.builds(
        lambda n, changes: {**invoice(n), **changes},
        st.integers(0, 40),
        st.fixed_dictionaries({}, optional=FIELD_VALUES),
    )
    | st.fixed_dictionaries({}, optional=FIELD_VALUES)
    | JSON
)
BODY = INVOICE | st.fixed_dictionaries({"invoices": st.lists(INVOICE, max_size=5)}) | JSON


def test_generated_bodies_never_500(
    server: tuple[Workspace, LiveServer], client: httpx.Client, spec: OpenAPI
) -> None:
    ws, live = server
    _, key = custom(ws)
    seen: set[int] = set()

    @settings(
        max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(body=BODY, whole=st.booleans())
    def check(body: Any, whole: bool) -> None:
        text = json.dumps(body)  # floats out of JSON's range come out as Infinity: not JSON
        answer = client.post(
            f"{live.url}/v1/invoices",
            content=(text if whole else text[: len(text) // 2]).encode(),
            headers={**bearer(key), "Content-Type": "application/json"},
        )
        seen.add(answer.status_code)
        assert answer.status_code in {200, 201, 400, 422}, answer.text
        conforms(spec, "POST", "/v1/invoices", answer)

    check()
    assert {201, 422} <= seen  # the generator reaches both the good and the bad
    assert ws.invoices.verify().ok
