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
from tests.waiting import wait_for, wait_for_async


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
        await wait_for_async(lambda: receiver.got, every=0.01)  # the POST is under way: it dies
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
    wait_for(lambda: receiver.got or first.poll() is not None, every=0.02)
    assert first.poll() is None  # its POST has arrived and is held: now it dies
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    receiver.hang.set()
    receiver.hang = None
    assert states(ws, hook) == ["pending"]

    def delivered() -> bool:  # once the claim has lapsed, within a second
        ran = run_intdash("deliveries", "run", env=env)
        assert ran.returncode == 0, ran.stderr
        return states(ws, hook) == ["delivered"]

    wait_for(delivered, message=lambda: ws.deliveries.list(hook), every=0)
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


def hint(secret: str) -> str:
    """How a signing secret is shown once it has been handed over: its kind and its end."""
    return "whsec_…" + secret.rstrip("=")[-4:]


def rotated_twice(ws: Workspace, clock: FakeClock, url: str) -> tuple[str, list[str]]:
    """A webhook whose secret was rotated, then rotated again six hours into the overlap: its
    UID and its three secrets, oldest first (the first old one ends at 12:00 on 16 November,
    the second at 18:00)."""
    hook, first = webhook(ws, url)
    second = ws.deliveries.rotate_secret(hook, overlap=timedelta(hours=24))
    clock.advance(hours=6)
    third = ws.deliveries.rotate_secret(hook, overlap=timedelta(hours=24))
    return hook, [first, second, third]


def test_rotating_again_within_the_overlap_keeps_each_old_secret_until_its_own_end(
    ws: Workspace, receiver: Receiver, clock: FakeClock
) -> None:
    from datetime import UTC, datetime

    ws.plans.set("scale")
    source = ws.integrations.create("custom", name="ERP").integration.uid
    start = clock.now
    hook, (first, second, third) = rotated_twice(ws, clock, receiver.url)
    assert len({first, second, third}) == 3

    def delivered(number: int) -> Received:
        push(ws, source, number)
        assert deliver(ws) == 1
        return receiver.got[-1]

    def verifies(got: Received) -> list[bool]:
        now = clock.now.timestamp()
        return [verify(s, got.headers, got.body, now) for s in (first, second, third)]

    got = delivered(1)
    assert len(got.headers["webhook-signature"].split()) == 3
    assert verifies(got) == [True, True, True]
    shown = ws.deliveries.live_secrets(hook)
    assert [(s.hint, s.until) for s in shown] == [
        (hint(third), None),
        (hint(second), start + timedelta(hours=30)),
        (hint(first), start + timedelta(hours=24)),
    ]
    assert [s.describe() for s in shown] == [
        f"{hint(third)} (current)",
        f"{hint(second)} valid until 2026-11-16 18:00 UTC",
        f"{hint(first)} valid until 2026-11-16 12:00 UTC",
    ]
    assert ws.deliveries.live_secrets(hook)[1].to_json() == {
        "secret": hint(second),
        "current": False,
        "valid_until": "2026-11-16T18:00:00+00:00",
    }

    # the first old secret's overlap ends: it signs no more; the second still does
    clock.now = datetime(2026, 11, 16, 12, 0, 1, tzinfo=UTC)
    got = delivered(2)
    assert len(got.headers["webhook-signature"].split()) == 2
    assert verifies(got) == [False, True, True]
    assert [s.hint for s in ws.deliveries.live_secrets(hook)] == [hint(third), hint(second)]

    # and then the second's: the current secret alone
    clock.now = datetime(2026, 11, 16, 18, 0, 1, tzinfo=UTC)
    got = delivered(3)
    assert len(got.headers["webhook-signature"].split()) == 1
    assert verifies(got) == [False, False, True]
    assert [s.describe() for s in ws.deliveries.live_secrets(hook)] == [f"{hint(third)} (current)"]

    # a rotation now keeps only the secret it replaces; the lapsed ones are gone for good
    fourth = ws.deliveries.rotate_secret(hook, overlap=timedelta(hours=1))
    got = delivered(4)
    now = clock.now.timestamp()
    assert [verify(s, got.headers, got.body, now) for s in (first, second, third, fourth)] == [
        False,
        False,
        True,
        True,
    ]


def test_old_signing_secrets_are_never_stored_or_logged_in_the_clear(
    ws: Workspace, receiver: Receiver, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from sqlalchemy import MetaData, select

    caplog.set_level(logging.DEBUG)
    hook, every = rotated_twice(ws, clock, receiver.url)
    with ws.db.read() as session:
        conn = session.connection()
        tables = MetaData()
        tables.reflect(conn)
        dump = "\n".join(
            repr(tuple(row))
            for table in tables.sorted_tables
            for row in conn.execute(select(table))
        )
    assert "signing_secret" in dump  # every table was read
    shown = json.dumps([s.to_json() for s in ws.deliveries.live_secrets(hook)])
    shown += json.dumps(ws.integrations.get(hook).to_json())
    for secret in every:
        body = secret.removeprefix("whsec_")
        assert body not in dump
        assert body not in shown
        assert body not in caplog.text


def test_a_secret_rotated_out_before_several_were_kept_still_signs_until_its_end(
    ws: Workspace, receiver: Receiver, clock: FakeClock
) -> None:
    """A webhook rotated when only one old secret was kept (its end a setting, the secret a
    credential of its own) keeps that secret to its end, across a rotation made since."""
    from intdash.core.services.deliveries import new_signing_secret

    ws.plans.set("scale")
    source = ws.integrations.create("custom", name="ERP").integration.uid
    hook, current = webhook(ws, receiver.url)
    older = new_signing_secret()
    with ws.db.write() as session:
        row = ws.integrations.find(session, hook)
        assert row.id is not None
        ws.credentials.put(session, row.id, "signing_secret_previous", older)
        until = (clock.now + timedelta(hours=2)).isoformat()
        row.settings = {**row.settings, "signing_secret_previous_until": until}
        session.add(row)
    clock.advance(hours=1)
    newest = ws.deliveries.rotate_secret(hook, overlap=timedelta(hours=24))
    assert [s.until for s in ws.deliveries.live_secrets(hook)] == [
        None,
        clock.now + timedelta(hours=24),
        clock.now + timedelta(hours=1),
    ]
    push(ws, source, 1)
    deliver(ws)
    got = receiver.got[-1]
    now = clock.now.timestamp()
    assert [verify(s, got.headers, got.body, now) for s in (older, current, newest)] == [True] * 3
    clock.advance(hours=1, seconds=1)
    push(ws, source, 2)
    deliver(ws)
    got = receiver.got[-1]
    now = clock.now.timestamp()
    assert [verify(s, got.headers, got.body, now) for s in (older, current, newest)] == [
        False,
        True,
        True,
    ]


def test_the_command_line_lists_the_live_secrets_masked_with_their_end(
    ws: Workspace, receiver: Receiver, env: dict[str, str]
) -> None:
    from tests.conftest import run_intdash

    hook, first = webhook(ws, receiver.url)
    rotated = run_intdash("deliveries", "rotate-secret", hook, "--overlap-hours", "48", env=env)
    assert rotated.returncode == 0, rotated.stderr
    second = rotated.stdout.strip()
    rotated = run_intdash("deliveries", "rotate-secret", hook, "--overlap-hours", "24", env=env)
    third = rotated.stdout.strip()
    assert "whsec_…" in rotated.stderr and "valid until" in rotated.stderr  # what still signs
    assert first.removeprefix("whsec_") not in rotated.stderr

    listed = run_intdash("deliveries", "secrets", hook, "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    assert [(s["secret"], s["current"]) for s in data] == [
        (hint(third), True),
        (hint(first), False),  # ends 48 hours after the first rotation, after the second's end
        (hint(second), False),
    ]
    assert data[0]["valid_until"] is None
    # the same, as the workspace (its fake clock still before both ends) reads them
    assert data == [s.to_json() for s in ws.deliveries.live_secrets(hook)]

    text = run_intdash("deliveries", "secrets", hook, env=env)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    for live in ws.deliveries.live_secrets(hook):
        assert any(live.describe() in line for line in lines), text.stdout
    for secret in (first, second, third):
        assert secret.removeprefix("whsec_") not in text.stdout + listed.stdout


async def test_the_deliveries_screen_lists_the_live_secrets_masked_with_their_end(
    ws: Workspace, receiver: Receiver, clock: FakeClock
) -> None:
    from textual.widgets import Static

    from intdash.tui.screens.deliveries import DeliveriesScreen
    from tests.test_tui import app_for
    from tests.waiting import until

    hook, (first, second, third) = rotated_twice(ws, clock, receiver.url)
    app = app_for(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(DeliveriesScreen(hook))
        await until(pilot, lambda: isinstance(app.screen, DeliveriesScreen))

        def shown() -> str:
            found = app.screen.query("#deliveries-secrets")
            return str(found.only_one(Static).render()) if found else ""

        await until(pilot, lambda: hint(first) in shown())
        text = shown()
        assert f"{hint(third)} (current)" in text
        assert f"{hint(second)} valid until 2026-11-16 18:00 UTC" in text
        assert f"{hint(first)} valid until 2026-11-16 12:00 UTC" in text
        for secret in (first, second, third):
            assert secret.removeprefix("whsec_") not in text

        # the first one's overlap ends: the screen, refreshing, no longer lists it
        clock.advance(hours=18, seconds=1)
        await until(pilot, lambda: hint(first) not in shown())
        assert hint(second) in shown() and hint(third) in shown()
