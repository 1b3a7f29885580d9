"""``intdash demo``, run as an operator runs it: in a terminal (a pty), twice on one folder."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from intdash.core.config import load_settings
from intdash.core.fiscal_models import FiscalOutbox
from intdash.core.models import Integration
from intdash.core.status import Reason
from intdash.core.workspace import Workspace
from intdash.providers.http import httpx
from tests.conftest import run_intdash
from tests.providers import free_port
from tests.waiting import wait_for


class Terminal:
    """``intdash demo`` in a terminal of 100x30, what it wrote kept (escape codes and all)."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.leader, follower = pty.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        base = {k: v for k, v in os.environ.items() if not k.startswith("INTDASH_")}
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("intdash")), "demo", *args],
            env={**base, "TERM": "xterm-256color", **env},
            stdin=follower,
            stdout=follower,
            stderr=follower,
            start_new_session=True,
        )
        os.close(follower)
        self.written = b""
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        with contextlib.suppress(OSError):
            while chunk := os.read(self.leader, 65536):
                self.written += chunk

    @property
    def text(self) -> str:
        return self.written.decode(errors="replace")

    def type(self, keys: str) -> None:
        os.write(self.leader, keys.encode())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        os.close(self.leader)


@contextlib.contextmanager
def demo(*args: str, env: dict[str, str]) -> Iterator[Terminal]:
    terminal = Terminal(*args, env=env)
    try:
        yield terminal
    finally:
        terminal.close()


def serving(port: int) -> bool:
    """Whether the dashboard's server answers on ``port`` of loopback."""
    try:
        return httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def run_until_served(folder: Path, port: int, env: dict[str, str]) -> str:
    """Run the demo on ``folder`` until its dashboard serves on ``port``, then quit it (q)."""
    with demo("--home", str(folder), env=env) as terminal:
        wait_for(
            lambda: serving(port) or terminal.proc.poll() is not None,
            timeout=180,
            message=lambda: f"the demo never served on {port}: {terminal.text[-2000:]}",
        )
        assert terminal.proc.poll() is None, terminal.text[-2000:]
        terminal.type("q")
        assert terminal.proc.wait(timeout=60) == 0, terminal.text[-2000:]
        return terminal.text


def open_demo(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv("INTDASH_HOME", str(folder))
    monkeypatch.delenv("INTDASH_DATABASE_URL", raising=False)
    return Workspace.open(load_settings(), actor="tester")


def test_demo_run_twice_reuses_its_workspace_and_honours_the_environment(
    env: dict[str, str], ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second run seeds nothing: it takes up the first run's integrations, authorised again
    against its own emulators, the webhook delivering to its own receiver. Both serve on the
    port the environment sets; neither touches the workspace the environment names."""
    folder = tmp_path / "demo"
    port = free_port()
    # the operator's own workspace (the test's) is named in the environment: the demo keeps off
    given = {**env, "INTDASH_SERVER__PORT": str(port), "INTDASH_LOG_LEVEL": "DEBUG"}
    first = run_until_served(folder, port, given)
    assert "Seeded:" in first and "INTDASH_DATABASE_URL set aside" in first
    demo_ws = open_demo(folder, monkeypatch)
    try:
        before = {view.uid: view for view in demo_ws.integrations.listing()}
        assert len(before) == 6
        [hook] = [view for view in before.values() if view.spec.delivers]
        marker = json.loads((folder / "demo.json").read_text())
        assert marker["server_port"] == port
        assert hook.settings["url"] == marker["sandbox"] + "/_sandbox/receiver"
    finally:
        demo_ws.close()

    second = run_until_served(folder, port, given)
    assert "Reusing the demo workspace" in second and "Seeded:" not in second
    demo_ws = open_demo(folder, monkeypatch)
    try:
        after = {view.uid: view for view in demo_ws.integrations.listing()}
        assert after.keys() == before.keys()  # the same six, no second set
        again = json.loads((folder / "demo.json").read_text())
        assert again["sandbox"] != marker["sandbox"] and again["server_port"] == port
        assert after[hook.uid].settings["url"] == again["sandbox"] + "/_sandbox/receiver"
        for uid, view in after.items():
            if not view.spec.oauth:
                continue
            connected = [e for e in demo_ws.audit.list(uid) if e.action.endswith("connected")]
            if view.status.reason is Reason.RECONNECT_NEEDED:  # Harbour Cafe, as seeded
                assert len(connected) == 1
            else:  # authorised again by this run's emulators
                assert len(connected) == 2, (uid, view.status)
        logged = (folder / "logs" / "intdash.log").read_text().splitlines()
        assert any(json.loads(line)["level"] == "debug" for line in logged)  # the level set
    finally:
        demo_ws.close()
    assert ws.integrations.listing() == []  # the environment's own workspace: untouched


def test_demo_refuses_a_folder_of_another_workspace(env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    made = run_intdash(
        "integrations", "add", "custom", "--name", "A real customer",
        env={"INTDASH_HOME": str(folder)},
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    refused = run_intdash("demo", "--home", str(folder), env=env)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"intdash: {folder} holds a workspace that intdash demo did not make: give the demo "
        "a folder of its own"
    ]


def test_the_demo_fiscalizes_through_the_emulated_vsdc(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo's register is the V-SDC emulator it starts: the taxpayer's secrets kept in the
    demo's vault, its invoices signed as the dashboard runs (the seeded ERP's pushed ones too,
    then delivered to the webhook with what was signed); a second run keeps what it made."""
    folder = tmp_path / "demo"
    port = free_port()
    given = {**env, "INTDASH_SERVER__PORT": str(port)}
    with demo("--home", str(folder), env=given) as terminal:
        wait_for(
            lambda: serving(port) or terminal.proc.poll() is not None,
            timeout=180,
            message=lambda: f"the demo never served on {port}: {terminal.text[-2000:]}",
        )
        assert "signs the invoices" in terminal.text
        demo_ws = open_demo(folder, monkeypatch)
        try:
            views = demo_ws.integrations.listing()
            [erp] = [v.uid for v in views if v.spec.pushes]
            [hook] = [v.uid for v in views if v.spec.delivers]
            assert demo_ws.fiscal.setup.secrets() is not None
            outbox = FiscalOutbox.__table__  # type: ignore[attr-defined]
            integrations = Integration.__table__  # type: ignore[attr-defined]

            def erp_rows() -> list[Any]:
                with demo_ws.db.read() as session:
                    return list(
                        session.connection().execute(
                            select(outbox.c.status, outbox.c.sdc_invoice_number, outbox.c.error)
                            .join(integrations, integrations.c.id == outbox.c.integration_id)
                            .where(integrations.c.uid == erp)
                        )
                    )

            wait_for(
                lambda: len(erp_rows()) == 5 and {r.status for r in erp_rows()} == {"signed"},
                timeout=300,
                message=lambda: f"not signed: {erp_rows()} {demo_ws.fiscal.counts()}",
            )
            assert all(r.sdc_invoice_number for r in erp_rows())

            def erp_delivered() -> list[str]:
                return [d.state for d in demo_ws.deliveries.list(hook, limit=100_000)
                        if d.source_uid == erp]  # fmt: skip

            wait_for(lambda: erp_delivered() == ["delivered"] * 5, timeout=300,
                     message=lambda: f"not delivered: {erp_delivered()}")  # fmt: skip
            assert demo_ws.fiscal.counts().failed == 0
            configured = [
                e for e in demo_ws.audit.list(None, limit=10_000) if e.action == "fiscal.configured"
            ]
            assert len(configured) == 1
        finally:
            demo_ws.close()
        terminal.type("q")
        assert terminal.proc.wait(timeout=60) == 0, terminal.text[-2000:]

    second = run_until_served(folder, port, given)
    assert "Reusing the demo workspace" in second and "signs the invoices" not in second
    demo_ws = open_demo(folder, monkeypatch)
    try:  # the taxpayer kept in the demo's folder, its secrets in the vault: not kept again
        configured = [
            e for e in demo_ws.audit.list(None, limit=10_000) if e.action == "fiscal.configured"
        ]
        assert len(configured) == 1
    finally:
        demo_ws.close()
