"""Xero's webhooks over real sockets: intdash's ``POST /v1/webhooks/xero`` (in process, and in
a real ``intdash serve`` with its dispatcher) and the Xero emulator's signed events.

Signatures are computed here from Xero's definition (base64 of HMAC-SHA256 of the raw body,
keyed with the webhook key), not with intdash's code: xero-python has no helper for them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from intdash.core.config import load_settings
from intdash.core.models import Integration, Invoice, SyncRun
from intdash.core.workspace import Workspace
from intdash.providers.http import httpx
from intdash.sandbox.server import Sandbox
from intdash.sandbox.xero import TENANT_ID
from intdash.sandbox.xero_webhooks import XeroWebhook
from intdash.sync.engine import SyncEngine
from tests.providers import connect, free_port, redirect_uri, sandbox, sandbox_env
from tests.test_ingest import LiveServer
from tests.waiting import wait_for

__all__ = ["redirect_uri", "sandbox", "sandbox_env"]  # fixtures

KEY = "bH8rVq2kX0c4Zr1mT6wQ9yN3pL5sD7fG+aJ/eU0iO2tY4uW6xC8vB1nM3kH5jK7lP9oI2uY4tR6eW8qA0sD2fG=="
PATH = "/v1/webhooks/xero"
OTHER_TENANT = "0b8e3f6a-1c2d-4e5f-8a9b-0c1d2e3f4a5b"


def sign(body: bytes, key: str = KEY) -> str:
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


def delivery(tenant: str = TENANT_ID, *, count: int = 1, category: str = "INVOICE") -> bytes:
    """A delivery as Xero sends one: ``count`` events of ``tenant``, new bytes every time."""
    events = [
        {
            "resourceUrl": f"https://api.xero.com/api.xro/2.0/Invoices/{resource}",
            "resourceId": resource,
            "eventDateUtc": "2026-12-01T10:15:39.902",
            "eventType": "UPDATE",
            "eventCategory": category,
            "tenantId": tenant,
            "tenantType": "ORGANISATION",
        }
        for resource in (str(uuid.uuid4()) for _ in range(count))
    ]
    body = {
        "events": events,
        "firstEventSequence": 1,
        "lastEventSequence": count,
        "entropy": uuid.uuid4().hex[:20].upper(),
    }
    return json.dumps(body).encode()


INTENT = json.dumps(  # Xero's intent to receive: no events
    {"events": [], "firstEventSequence": 0, "lastEventSequence": 0, "entropy": "HFSWXTZNPVCQWRBYIK"}
).encode()


def post(client: httpx.Client, url: str, body: bytes, signature: str | None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers["x-xero-signature"] = signature
    return client.post(f"{url}{PATH}", content=body, headers=headers)


# -- a workspace and its Xero integration ----------------------------------------------------


@pytest.fixture
def xws(sandbox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """A workspace on the real clock, its Xero the sandbox's, with the webhook key set."""
    monkeypatch.setenv("INTDASH_XERO__WEBHOOK_KEY", KEY)
    ws = Workspace.open(load_settings(), actor="tester")
    yield ws
    ws.close()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as c:
        yield c


async def synced_xero(ws: Workspace, plan: str = "scale") -> str:
    """A Xero integration on ``plan``, connected to the sandbox's organisation and synced once;
    its next sync an hour away, so that only events bring one sooner."""
    ws.plans.set(plan)
    uid = ws.integrations.create("xero", name="Acme").integration.uid
    service = await connect(ws, uid)
    await SyncEngine(ws, service).run(uid)
    ws.schedule.defer(row(ws, uid).id or 0, ws.clock() + timedelta(hours=1))
    return uid


def row(ws: Workspace, uid: str) -> Integration:
    with ws.db.read() as session:
        return ws.integrations.find(session, uid)


def next_sync(ws: Workspace, uid: str) -> datetime:
    at = row(ws, uid).next_sync_at
    assert at is not None
    return at


@pytest.fixture
def live(xws: Workspace) -> Iterator[LiveServer]:
    """intdash's app in this process (no dispatcher: what is checked is the schedule)."""
    with LiveServer(xws) as server:
        yield server


# -- the route ---------------------------------------------------------------------------------


def test_intent_to_receive_is_200_empty_signed_right_and_401_empty_signed_wrong(
    live: LiveServer, client: httpx.Client
) -> None:
    started = time.monotonic()
    right = post(client, live.url, INTENT, sign(INTENT))
    assert (right.status_code, right.content) == (200, b"")
    wrong = post(client, live.url, INTENT, sign(INTENT, key="not the key"))
    assert (wrong.status_code, wrong.content) == (401, b"")
    unsigned = post(client, live.url, INTENT, None)
    assert (unsigned.status_code, unsigned.content) == (401, b"")
    assert time.monotonic() - started < 5  # Xero's limit, for all three


def test_a_wrong_signature_is_401_before_the_body_is_read_as_json(
    live: LiveServer, client: httpx.Client
) -> None:
    garbage = b"{not json"
    refused = post(client, live.url, garbage, sign(garbage, key="another key"))
    assert (refused.status_code, refused.content) == (401, b"")
    # the same bytes signed right: now it is read, and it is no delivery
    bad = post(client, live.url, garbage, sign(garbage))
    assert bad.status_code == 400 and bad.json()["error"] == "not_json"
    for body, words in (
        (b"[]", "not a JSON object"),
        (b'{"entropy": "X"}', "no events list"),
        (b'{"events": [{"eventCategory": "INVOICE"}]}', "events[0] has no tenantId"),
        (b'{"events": [{"tenantId": "' + TENANT_ID.encode() + b'"}]}', "no eventCategory"),
        (b"", "empty"),
    ):
        answer = post(client, live.url, body, sign(body))
        assert answer.status_code == 400, body
        assert words in answer.json()["message"], answer.json()


def test_without_a_key_webhooks_are_off_and_say_which_setting(
    env: dict[str, str], ws: Workspace, client: httpx.Client
) -> None:
    with LiveServer(ws) as server:
        answer = post(client, server.url, INTENT, sign(INTENT))
    assert answer.status_code == 503
    assert answer.json()["error"] == "webhooks_off"
    assert "INTDASH_XERO__WEBHOOK_KEY" in answer.json()["message"]


async def test_an_event_on_scale_brings_the_sync_forward_and_a_replay_is_ignored(
    xws: Workspace, live: LiveServer, client: httpx.Client
) -> None:
    uid = await synced_xero(xws, "scale")
    far = next_sync(xws, uid)
    body = delivery()
    before = xws.clock()
    answer = post(client, live.url, body, sign(body))
    assert (answer.status_code, answer.content) == (200, b"")
    soon = next_sync(xws, uid)
    assert before < soon <= xws.clock() + timedelta(seconds=1) < far  # within a second

    # the sync ran (its next one an hour away again); the same bytes come again
    xws.schedule.defer(row(xws, uid).id or 0, far)
    again = post(client, live.url, body, sign(body))
    assert (again.status_code, again.content) == (200, b"")
    assert next_sync(xws, uid) == far  # ignored: no further sync

    # a new delivery (new bytes) is no replay
    fresh = delivery()
    assert post(client, live.url, fresh, sign(fresh)).status_code == 200
    assert next_sync(xws, uid) < far


async def test_events_on_growth_wait_for_the_slot(
    xws: Workspace, live: LiveServer, client: httpx.Client
) -> None:
    uid = await synced_xero(xws, "growth")
    slot = next_sync(xws, uid)
    body = delivery(count=3)
    answer = post(client, live.url, body, sign(body))
    assert (answer.status_code, answer.content) == (200, b"")
    assert next_sync(xws, uid) == slot


async def test_an_unknown_organisation_is_200_warned_once_and_syncs_nothing(
    xws: Workspace, live: LiveServer, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    uid = await synced_xero(xws, "scale")
    far = next_sync(xws, uid)
    caplog.set_level(logging.WARNING, logger="intdash.server")
    for _ in range(3):
        body = delivery(OTHER_TENANT)
        answer = post(client, live.url, body, sign(body))
        assert (answer.status_code, answer.content) == (200, b"")
    assert next_sync(xws, uid) == far
    warned = [r for r in caplog.records if OTHER_TENANT in r.getMessage()]
    assert len(warned) == 1 and "no integration" in warned[0].getMessage()


async def test_events_other_than_invoices_are_acknowledged_and_ignored(
    xws: Workspace, live: LiveServer, client: httpx.Client
) -> None:
    uid = await synced_xero(xws, "scale")
    far = next_sync(xws, uid)
    body = delivery(category="CONTACT")
    assert post(client, live.url, body, sign(body)).status_code == 200
    assert next_sync(xws, uid) == far
    credit = delivery(category="CREDITNOTE")
    assert post(client, live.url, credit, sign(credit)).status_code == 200
    assert next_sync(xws, uid) < far


# -- a real intdash serve ------------------------------------------------------------------------


class Serve:
    """``intdash serve`` (scheduler and HTTP server) on a free loopback port."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("INTDASH_")},
            **env,
            "INTDASH_XERO__WEBHOOK_KEY": KEY,
            "INTDASH_SERVER__PORT": str(self.port),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Serve:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(Path(sys.executable).with_name("intdash")), "serve"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        proc = self.proc

        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"intdash serve exited: {self.log.read_text()}")
            try:
                return httpx.get(f"{self.url}/v1/health", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, 30, lambda: f"intdash serve did not start: {self.log.read_text()}")
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def runs_since(ws: Workspace, uid: str, since: datetime) -> list[SyncRun]:
    with ws.db.read() as session:
        found = row(ws, uid)
        return list(
            session.exec(
                select(SyncRun)
                .where(SyncRun.integration_id == found.id)
                .where(col(SyncRun.started_at) >= since)
            ).all()
        )


def stored(ws: Workspace, external_id: str) -> Invoice | None:
    with ws.db.read() as session:
        return session.exec(select(Invoice).where(Invoice.external_id == external_id)).first()


async def test_a_burst_of_100_events_makes_one_or_two_syncs(
    xws: Workspace,
    sandbox: Sandbox,
    sandbox_env: dict[str, str],
    client: httpx.Client,
    tmp_path: Path,
) -> None:
    uid = await synced_xero(xws, "scale")
    edited = sandbox.xero.dataset.touch_spread(5)  # what the events are about
    # the sync the first events bring is held at Xero until the burst is over (a gate the test
    # opens, so that a slow machine cannot let a burst outlast two syncs)
    sandbox.xero.faults.hold(after=0)
    with Serve(sandbox_env, tmp_path / "serve.log") as serve:
        burst = xws.clock()
        slowest = 0.0
        for _ in range(100):
            body = delivery()
            started = time.monotonic()
            answer = post(client, serve.url, body, sign(body))
            slowest = max(slowest, time.monotonic() - started)
            assert (answer.status_code, answer.content) == (200, b"")
        assert slowest < 2, slowest  # acknowledged at once, well within Xero's 5 seconds
        sandbox.xero.faults.release()

        def settled() -> list[SyncRun] | None:
            """Runs came, all ended, and the next sync is the slot after the last attempt
            (nothing brought forward, nothing deferred while busy: no run to come)."""
            runs = runs_since(xws, uid, burst)
            done = runs and all(r.ended_at is not None for r in runs)
            found = row(xws, uid)
            attempted = found.last_attempted_sync
            slot = attempted and xws.schedule.after(uid, "xero", attempted)
            return runs if done and found.next_sync_at == slot else None

        runs = wait_for(settled, 30, lambda: serve.log.read_text()[-3000:])
    assert 1 <= len(runs) <= 2, [(r.started_at, r.outcome) for r in runs]
    for index in edited:
        invoice = sandbox.xero.dataset.invoice(index)
        found = stored(xws, invoice.id)
        assert found is not None and found.total == invoice.total


async def test_the_emulator_posts_signed_events_and_the_edit_is_stored_within_seconds(
    xws: Workspace,
    sandbox: Sandbox,
    sandbox_env: dict[str, str],
    client: httpx.Client,
    tmp_path: Path,
) -> None:
    uid = await synced_xero(xws, "scale")
    with Serve(sandbox_env, tmp_path / "serve.log") as serve:
        control = f"{sandbox.url}/_sandbox/xero/webhook"
        made = client.post(control, json={"url": f"{serve.url}{PATH}", "key": KEY})
        assert made.json() == {"url": f"{serve.url}{PATH}", "key": KEY}
        intent = client.post(f"{control}/intent").json()
        assert intent["ok"], intent
        assert (intent["right"]["status"], intent["wrong"]["status"]) == (200, 401)

        index = 7
        before = stored(xws, sandbox.xero.dataset.invoice(index).id)
        assert before is not None
        started = time.monotonic()
        sandbox.xero.dataset.touch([index])  # an edit in Xero
        edited = sandbox.xero.dataset.invoice(index)
        assert edited.total != before.total

        def arrived() -> bool:
            found = stored(xws, edited.id)
            return found is not None and found.total == edited.total

        wait_for(arrived, 30, lambda: serve.log.read_text()[-3000:], every=0.01)
        latency = time.monotonic() - started
    print(f"Xero event to stored invoice: {latency:.2f} s")
    assert latency < 3, latency  # the target
    status = client.get(control).json()
    assert status["delivered"] >= 1 and status["posts"][0]["status"] == 200
    assert len(runs_since(xws, uid, xws.clock() - timedelta(minutes=5))) >= 1


# -- the emulator's webhook ------------------------------------------------------------------------


class Receiver:
    """A webhook receiver on loopback that answers with ``statuses`` in turn (then 200) and
    keeps what it got."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.got: list[tuple[bytes, str]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                owner.got.append((body, self.headers.get("x-xero-signature", "")))
                status = owner.statuses.pop(0) if owner.statuses else 200
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_the_emulator_batches_changes_into_signed_posts_and_retries() -> None:
    with Sandbox(size=300) as box, Receiver([500]) as receiver:
        webhook = box.xero.webhook
        key = webhook.configure(receiver.url)
        assert len(key) == 88  # made as Xero makes one
        box.xero.dataset.touch_spread(100)  # one burst: one post (retried once)
        wait_for(lambda: webhook.delivered == 1, 15, lambda: str(webhook.status()))
        (first, first_sig), (second, second_sig) = receiver.got
        assert first == second and first_sig == second_sig == sign(first, key)  # the same post
        sent = json.loads(second)
        assert (sent["firstEventSequence"], sent["lastEventSequence"]) == (1, 100)
        assert len(sent["entropy"]) == 20
        events = sent["events"]
        assert len(events) == 100
        assert {e["tenantId"] for e in events} == {TENANT_ID}
        assert {(e["eventCategory"], e["eventType"], e["tenantType"]) for e in events} == {
            ("INVOICE", "UPDATE", "ORGANISATION")
        }
        one = events[0]
        assert one["resourceUrl"] == f"{box.url}/xero/api/api.xro/2.0/Invoices/{one['resourceId']}"
        assert datetime.fromisoformat(one["eventDateUtc"]).year >= 2026

        created = httpx.post(f"{box.url}/_sandbox/xero/create?count=2").json()
        assert created == {"created": 2}
        wait_for(lambda: webhook.delivered == 2, 15, lambda: str(webhook.status()))
        newest = json.loads(receiver.got[-1][0])
        assert [e["eventType"] for e in newest["events"]] == ["CREATE", "CREATE"]
        assert newest["firstEventSequence"] == 101

        assert httpx.delete(f"{box.url}/_sandbox/xero/webhook").status_code == 200
        box.xero.dataset.touch_spread(3)  # no webhook: nothing is sent
        assert webhook.status()["waiting"] == 0 and len(receiver.got) == 3


def test_intent_to_receive_reports_what_the_receiver_answered() -> None:
    with Receiver([200, 200]) as receiver:
        webhook = XeroWebhook()
        webhook.configure(receiver.url, KEY)
        try:
            result = webhook.intent()
        finally:
            webhook.close()
    # a receiver that takes anything: Xero would refuse this webhook
    assert (result["right"]["status"], result["wrong"]["status"]) == (200, 200)
    assert not result["ok"]
    (right, right_sig), (wrong, wrong_sig) = receiver.got
    assert json.loads(right)["events"] == [] and right_sig == sign(right)
    assert wrong_sig != sign(wrong)


def test_no_webhook_no_posts_and_no_waiting() -> None:
    with Sandbox(size=20) as box:
        box.xero.dataset.touch_spread(5)
        status = httpx.get(f"{box.url}/_sandbox/xero/webhook").json()
        assert status["url"] is None and status["waiting"] == 0
        bad = httpx.post(f"{box.url}/_sandbox/xero/webhook", json={"url": "ftp://x"})
        assert bad.status_code == 400
        intent = httpx.post(f"{box.url}/_sandbox/xero/webhook/intent")
        assert intent.status_code == 409 and not intent.json()["ok"]
