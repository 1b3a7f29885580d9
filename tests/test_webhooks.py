"""Custom/Webhook deliveries to a receiver on loopback: signed, retried, given up on, resumed."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from intdash.core.invoices import SourceState
from intdash.core.models import DeliveryState
from intdash.core.status import Reason
from intdash.core.workspace import Workspace
from intdash.providers.webhooks import verify
from intdash.sync.deliveries import DeliveryWorker, probe_webhook
from tests.conftest import FakeClock
from tests.test_integrations import invoice_data


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]


@dataclass
class Receiver:
    """An HTTP endpoint on 127.0.0.1 that keeps what it is sent and answers ``status``."""

    status: int = 204
    hang: threading.Event | None = None  # set: answer; unset: hold the request
    got: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                receiver.got.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
                if receiver.hang is not None:
                    receiver.hang.wait(30)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # a batch of deliveries comes at once
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        if self.hang is not None:
            self.hang.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    box = Receiver()
    yield box
    box.close()


def webhook(ws: Workspace, url: str, **values: str) -> tuple[str, str]:
    created = ws.integrations.create(
        "webhook", name="Archive", values={"url": url, "headers": "X-Tenant: acme", **values}
    )
    return created.integration.uid, created.generated_secrets["signing_secret"]


def push(ws: Workspace, uid: str, *numbers: int) -> None:
    ws.ingest.accept(uid, [invoice_data(n) for n in numbers])


def deliver(ws: Workspace) -> int:
    return asyncio.run(DeliveryWorker(ws).drain())


def states(ws: Workspace, uid: str) -> list[str]:
    return [d.state for d in ws.deliveries.list(uid)]


def test_fiscalized_invoices_delivered_signed(
    ws: Workspace, receiver: Receiver, clock: FakeClock
) -> None:
    ws.plans.set("scale")
    source = ws.integrations.create("custom", name="ERP").integration.uid
    hook, secret = webhook(ws, receiver.url)
    assert secret.startswith("whsec_")
    push(ws, source, 1, 2, 3)
    # a purchase invoice is not fiscalized, so not delivered
    ws.ingest.accept(source, [invoice_data(4, sales=False)])
    assert states(ws, hook) == ["pending"] * 3
    view = ws.integrations.get(hook)
    assert (view.last_attempted_sync, view.last_successful_sync) == (None, None)
    before = ws.integrations.fingerprint()

    clock.advance(minutes=1)
    assert deliver(ws) == 3
    # its deliveries are a webhook's syncs: the dashboard shows the last, and sees it change
    view = ws.integrations.get(hook)
    assert view.runs_are == "delivery"
    assert view.last_attempted_sync == view.last_successful_sync == clock.now
    assert ws.integrations.fingerprint() != before
    assert len(receiver.got) == 3
    now = clock.now.timestamp()
    for got in receiver.got:
        assert verify(secret, got.headers, got.body, now)
        assert not verify("whsec_" + "A" * 44, got.headers, got.body, now)
        assert got.headers["x-tenant"] == "acme"
        assert got.headers["content-type"] == "application/json"
        event = got.event
        assert event["type"] == "invoice.fiscalized"
        assert event["data"]["integration"] == source
        assert event["data"]["invoice"]["fiscal_record"]["seq"] >= 1
    ids = sorted(got.event["data"]["invoice"]["external_id"] for got in receiver.got)
    assert ids == ["ext-1", "ext-2", "ext-3"]
    rows = ws.deliveries.list(hook)
    assert [r.state for r in rows] == ["delivered"] * 3
    assert all(r.attempts == 1 and r.last_status == 204 for r in rows)
    assert deliver(ws) == 0  # nothing twice

    # a webhook that takes another integration's invoices only gets nothing of these
    other = ws.integrations.create("custom", name="Other").integration.uid
    narrow, _ = webhook(ws, receiver.url, deliver=other)
    push(ws, source, 5)
    assert states(ws, narrow) == []
    push(ws, other, 6)
    assert states(ws, narrow) == ["pending"]
    # a disabled webhook is sent nothing new
    ws.integrations.set_sync_enabled(narrow, False)
    push(ws, other, 7)
    assert states(ws, narrow) == ["pending"]


def test_a_failing_receiver_is_retried_then_turns_the_webhook_inactive(
    ws: Workspace, receiver: Receiver, clock: FakeClock
) -> None:
    ws.plans.set("scale")
    source = ws.integrations.create("custom", name="ERP").integration.uid
    hook, _ = webhook(ws, receiver.url)
    receiver.status = 503
    push(ws, source, 1)
    assert deliver(ws) == 1
    view = ws.integrations.get(hook)  # attempted, not delivered
    assert (view.last_attempted_sync, view.last_successful_sync) == (clock.now, None)
    [row] = ws.deliveries.list(hook)
    assert (row.state, row.attempts, row.last_status) == ("pending", 1, 503)
    assert row.next_attempt_at is not None
    delay = row.next_attempt_at - clock.now
    assert timedelta(seconds=20) <= delay <= timedelta(seconds=40)  # 30 s ± jitter
    assert deliver(ws) == 0  # not before it is due

    # backoff grows; the same webhook-id on every attempt
    delays = [delay]
    for _ in range(5):
        clock.advance(hours=2)
        assert deliver(ws) == 1
        [row] = ws.deliveries.list(hook)
        assert row.next_attempt_at is not None
        delays.append(row.next_attempt_at - clock.now)
    assert delays[3] > delays[1] > delays[0]
    assert max(delays) <= timedelta(hours=1, minutes=12)
    assert len({got.headers["webhook-id"] for got in receiver.got}) == 1
    assert ws.integrations.get(hook).status.active

    # 20 failures in a row at the webhook: Inactive, with the reason; attempts stop
    push(ws, source, *range(2, 16))
    clock.advance(hours=2)
    deliver(ws)
    view = ws.integrations.get(hook)
    assert not view.status.active
    assert view.status.reason is Reason.DELIVERIES_FAILING
    assert "in a row" in view.status.explanation and "503" in view.status.explanation
    clock.advance(hours=2)
    assert deliver(ws) == 0

    # enabled again, it counts its failures from nothing: one more round of them (15, one per
    # waiting delivery) does not turn it straight back to Inactive
    ws.integrations.set_sync_enabled(hook, True)
    assert ws.integrations.get(hook).status.active
    clock.advance(hours=2)
    assert deliver(ws) == 15
    assert ws.integrations.get(hook).status.active

    # the receiver is mended: everything is delivered
    receiver.status = 200
    clock.advance(hours=2)
    deliver(ws)
    assert set(states(ws, hook)) == {"delivered"}


def test_given_up_after_24_hours(ws: Workspace, receiver: Receiver, clock: FakeClock) -> None:
    ws.plans.set("scale")
    source = ws.integrations.create("custom", name="ERP").integration.uid
    hook, _ = webhook(ws, receiver.url)
    receiver.status = 500
    push(ws, source, 1)
    deliver(ws)
    clock.advance(hours=24, seconds=1)
    assert deliver(ws) == 1
    [row] = ws.deliveries.list(hook)
    assert row.state == DeliveryState.FAILED.value
    view = ws.integrations.get(hook)
    assert view.status.reason is Reason.DELIVERIES_FAILING
    assert "24 hours" in view.status.explanation

    # Resend: after mending, one delivery is tried again at once
    receiver.status = 200
    ws.integrations.set_sync_enabled(hook, True)
    ws.deliveries.resend(hook, row.id)
    assert deliver(ws) == 1
    assert states(ws, hook) == ["delivered"]


def test_a_restart_mid_delivery_still_delivers(
    ws: Workspace, receiver: Receiver, clock: FakeClock, settings: Any
) -> None:
    ws.plans.set("scale")
    source = ws.integrations.create("custom", name="ERP").integration.uid
    hook, secret = webhook(ws, receiver.url)
    push(ws, source, 1)
    receiver.hang = threading.Event()

    async def crash_mid_post() -> None:
        task = asyncio.create_task(DeliveryWorker(ws).run_once())
        while not receiver.got:  # the POST is under way: the process dies
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(crash_mid_post())
    receiver.hang.set()
    receiver.hang = None
    assert states(ws, hook) == ["pending"]  # never recorded as delivered

    # another process (its own workspace, the same database) starts: the claim holds a while,
    # then lapses, and the delivery goes out again, with the same webhook-id
    again = Workspace.open(settings, clock=clock, actor="restarted")
    assert deliver(again) == 0
    clock.advance(seconds=61)
    assert deliver(again) == 1
    again.close()
    assert states(ws, hook) == ["delivered"]
    assert len(receiver.got) == 2
    assert receiver.got[0].headers["webhook-id"] == receiver.got[1].headers["webhook-id"]
    assert verify(secret, receiver.got[1].headers, receiver.got[1].body, clock.now.timestamp())


def test_secret_rotation_signs_with_both_during_the_overlap(
    ws: Workspace, receiver: Receiver, clock: FakeClock
) -> None:
    ws.plans.set("scale")
    source = ws.integrations.create("custom", name="ERP").integration.uid
    hook, old = webhook(ws, receiver.url)
    new = ws.deliveries.rotate_secret(hook, overlap=timedelta(hours=24))
    assert new != old and new.startswith("whsec_")
    push(ws, source, 1)
    deliver(ws)
    during = receiver.got[-1]
    assert len(during.headers["webhook-signature"].split()) == 2
    assert verify(old, during.headers, during.body, clock.now.timestamp())
    assert verify(new, during.headers, during.body, clock.now.timestamp())

    clock.advance(hours=25)
    push(ws, source, 2)
    deliver(ws)
    after = receiver.got[-1]
    assert len(after.headers["webhook-signature"].split()) == 1
    assert verify(new, after.headers, after.body, clock.now.timestamp())
    assert not verify(old, after.headers, after.body, clock.now.timestamp())
    # the secrets are in the vault, not in the clear
    assert new not in json.dumps(ws.integrations.get(hook).to_json())


def test_test_connection_sends_a_signed_test_event(
    ws: Workspace, receiver: Receiver, clock: FakeClock
) -> None:
    hook, secret = webhook(ws, receiver.url)
    result = asyncio.run(probe_webhook(ws, hook))
    assert result.ok and "HTTP 204" in result.describe()
    [got] = receiver.got
    assert got.event["type"] == "test"
    assert verify(secret, got.headers, got.body, clock.now.timestamp())
    receiver.status = 401
    failed = asyncio.run(probe_webhook(ws, hook))
    assert not failed.ok and "401" in failed.describe()
    assert ws.deliveries.list(hook) == []  # a test is not a delivery


def test_nothing_to_deliver_costs_a_sync_nothing(ws: Workspace) -> None:
    ws.plans.set("scale")
    source = ws.integrations.create("custom", name="ERP").integration.uid
    push(ws, source, *range(50))
    with ws.db.read() as session:
        from sqlmodel import func, select

        from intdash.core.models import Delivery

        assert session.exec(select(func.count()).select_from(Delivery)).one() == 0


def test_the_command_line(ws: Workspace, receiver: Receiver, env: dict[str, str]) -> None:
    from tests.conftest import run_intdash

    ws.plans.set("scale")
    source = ws.integrations.create("custom", name="ERP").integration.uid
    hook, old = webhook(ws, receiver.url)
    ws.ingest.accept(source, [invoice_data(1)])

    listed = run_intdash("deliveries", "list", hook, "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert (row["state"], row["integration"], row["attempts"]) == ("pending", source, 0)

    ran = run_intdash("deliveries", "run", "--json", env=env)
    assert json.loads(ran.stdout) == {"attempted": 1}, ran.stderr
    assert len(receiver.got) == 1
    assert (
        json.loads(run_intdash("deliveries", "list", hook, "--json", env=env).stdout)[0]["state"]
        == "delivered"
    )

    again = run_intdash("deliveries", "resend", hook, str(row["id"]), env=env)
    assert again.returncode == 0 and "again" in again.stdout
    rotated = run_intdash("deliveries", "rotate-secret", hook, "--json", env=env)
    fresh = json.loads(rotated.stdout)["signing_secret"]
    assert fresh.startswith("whsec_") and fresh != old

    tested = run_intdash("test", hook, env=env)
    assert tested.returncode == 0 and "HTTP 204" in tested.stdout
    receiver.status = 500
    failed = run_intdash("test", hook, env=env)
    assert failed.returncode == 1 and "HTTP 500" in failed.stderr

    wrong = run_intdash("deliveries", "list", source, env=env)
    assert wrong.returncode == 1 and "not a Custom/Webhook" in wrong.stderr


def test_a_process_killed_mid_delivery_then_a_new_one_delivers(
    env: dict[str, str], receiver: Receiver
) -> None:
    """The same, with real processes: ``intdash deliveries run`` is killed (SIGKILL) while its
    POST is held by the receiver; a new one, once the claim has lapsed, delivers."""
    import os
    import signal
    import subprocess
    import sys
    import time as clock
    from pathlib import Path

    from intdash.core.config import load_settings
    from tests.conftest import run_intdash

    env = {**env, "INTDASH_SYNC__DELIVERY_CLAIM_SECONDS": "1"}
    os.environ["INTDASH_SYNC__DELIVERY_CLAIM_SECONDS"] = "1"
    try:
        ws = Workspace.open(load_settings(), actor="tester")
    finally:
        del os.environ["INTDASH_SYNC__DELIVERY_CLAIM_SECONDS"]
    ws.plans.set("scale")
    source = ws.integrations.create("custom", name="ERP").integration.uid
    hook, secret = webhook(ws, receiver.url)
    ws.ingest.accept(source, [invoice_data(1)])
    receiver.hang = threading.Event()

    script = Path(sys.executable).with_name("intdash")
    base = {k: v for k, v in os.environ.items() if not k.startswith("INTDASH_")}
    first = subprocess.Popen(
        [str(script), "deliveries", "run"], env={**base, **env}, stdout=subprocess.DEVNULL
    )
    deadline = clock.monotonic() + 30
    while not receiver.got:  # its POST has arrived and is held: now it dies
        assert clock.monotonic() < deadline and first.poll() is None
        clock.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    receiver.hang.set()
    receiver.hang = None
    assert states(ws, hook) == ["pending"]

    deadline = clock.monotonic() + 30
    while states(ws, hook) != ["delivered"]:  # the claim lapses within a second
        assert clock.monotonic() < deadline, ws.deliveries.list(hook)
        ran = run_intdash("deliveries", "run", env=env)
        assert ran.returncode == 0, ran.stderr
    assert len(receiver.got) == 2
    assert receiver.got[0].headers["webhook-id"] == receiver.got[1].headers["webhook-id"]
    assert verify(secret, receiver.got[1].headers, receiver.got[1].body, clock.time())
    ws.close()


def test_a_refund_is_delivered_as_a_refund(
    ws: Workspace, receiver: Receiver, clock: FakeClock
) -> None:
    """An invoice voided after it was fiscalized reaches the receiver as ``invoice.refunded``,
    with the refund record naming the sale it reverses."""
    source = ws.integrations.create("custom", name="ERP").integration.uid
    _, secret = webhook(ws, receiver.url)
    push(ws, source, 1)
    clock.advance(minutes=1)
    assert deliver(ws) == 1
    ws.ingest.accept(
        source, [replace(invoice_data(1), source_status="void", state=SourceState.VOID)]
    )
    clock.advance(minutes=1)
    assert deliver(ws) == 1
    first, second = (got.event for got in receiver.got)
    assert verify(secret, receiver.got[1].headers, receiver.got[1].body, clock.now.timestamp())
    assert first["type"] == "invoice.fiscalized"
    assert second["type"] == "invoice.refunded"
    invoice = second["data"]["invoice"]
    assert invoice["fiscal_status"] == "refunded"
    assert invoice["refund_record"]["refers_to"] == invoice["fiscal_record"]["seq"]
