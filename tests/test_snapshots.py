"""SVG snapshots of every screen and dialog, at 100x30 and at 80x24.

The workspace is seeded once as ``intdash demo`` seeds it (emulated platforms, real OAuth, real
syncs), on a fixed clock and with seeded randomness, so that UIDs, keys and times come out the
same on every run; each test gets its own copy. A changed screen fails here until its new
snapshot is reviewed and accepted with ``pytest tests/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

import intdash.core.services.deliveries
import intdash.core.services.integrations.service
import intdash.tui.screens.connect
from intdash.cli.demo import demo_sandbox, seed
from intdash.core.config import load_settings
from intdash.core.tokens import TokenSource
from intdash.core.workspace import Workspace
from intdash.tui.app import IntdashApp

MOMENT = datetime(2026, 11, 16, 9, 30, tzinfo=UTC)
SIZES = {"100x30": (100, 30), "80x24": (80, 24)}
# the platforms' addresses as the snapshots show them (the emulators' ports change every run)
PLATFORMS = "http://127.0.0.1:9"
REDIRECT = "http://localhost:8471/callback"


@dataclass(frozen=True)
class Seeded:
    home: Path
    made: dict[str, str]
    platforms: dict[str, str]


def point_at(monkeypatch: pytest.MonkeyPatch, home: Path, platforms: dict[str, str]) -> None:
    for name in [n for n in os.environ if n.startswith("INTDASH_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("INTDASH_HOME", str(home))
    monkeypatch.setenv("INTDASH_DATABASE_URL", f"sqlite:///{home / 'intdash.db'}")
    for name, value in platforms.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """A demo-seeded home (made once), the UIDs of what was seeded, and the platforms'
    settings at fixed addresses."""
    home = tmp_path_factory.mktemp("seeded") / "home"
    with pytest.MonkeyPatch.context() as monkeypatch, demo_sandbox() as box:
        point_at(monkeypatch, home, box.settings(REDIRECT))
        tokens = TokenSource.seeded(2026)
        ws = Workspace.open(load_settings(), clock=lambda: MOMENT, tokens=tokens, actor="operator")
        made = asyncio.run(seed(ws))
        ws.close()
        platforms = {k: v.replace(box.url, PLATFORMS) for k, v in box.settings(REDIRECT).items()}
        yield Seeded(home, made, platforms)
    time.tzset()


@pytest.fixture
def shot_ws(seeded: Seeded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """A copy of the seeded workspace, its platforms at fixed addresses."""
    home = tmp_path / "home"
    shutil.copytree(seeded.home, home)
    point_at(monkeypatch, home, seeded.platforms)
    tokens = TokenSource.seeded(7)
    monkeypatch.setattr(intdash.tui.screens.connect, "CallbackListener", QuietListener)
    ws = Workspace.open(load_settings(), clock=lambda: MOMENT, tokens=tokens, actor="operator")
    yield ws
    ws.close()
    monkeypatch.undo()
    time.tzset()


class QuietListener:
    """The callback listener, minus its socket: the real one binds a fixed port, which another
    run on the machine may hold, and would change what the dialog says."""

    def __init__(self, redirect_uri: str) -> None:
        self.redirect_uri = redirect_uri

    async def __aenter__(self) -> QuietListener:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def wait(self) -> str:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def until(pilot: Pilot[Any], condition: Callable[[], Any], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the dashboard")
        await pilot.pause(0.02)


def select(pilot: Pilot[Any], uid: str) -> None:
    table = pilot.app.screen.query_one("#integrations")
    table.move_cursor(row=table.get_row_index(uid))  # type: ignore[attr-defined]


async def loaded(pilot: Pilot[Any]) -> None:
    """The integrations screen has read everything (not only its first screenful)."""

    def complete() -> bool:
        snapshot = getattr(pilot.app.screen, "snapshot", None)
        return snapshot is not None and snapshot.complete

    await until(pilot, complete)


async def integrations(pilot: Pilot[Any], made: dict[str, str]) -> None:
    await loaded(pilot)
    select(pilot, made["harbour"])  # the row needing a reconnect: its reason shows


async def action_menu(pilot: Pilot[Any], made: dict[str, str]) -> None:
    await loaded(pilot)
    select(pilot, made["erp"])
    await pilot.press("space")
    await until(pilot, lambda: pilot.app.screen.query("OptionList"))


async def create(pilot: Pilot[Any], made: dict[str, str]) -> None:
    await loaded(pilot)
    await pilot.press("n")
    await until(pilot, lambda: pilot.app.screen.query("#fields"))


async def configure(pilot: Pilot[Any], made: dict[str, str]) -> None:
    await loaded(pilot)
    select(pilot, made["zylker"])
    await pilot.press("c")
    await until(pilot, lambda: pilot.app.screen.query("#fields"))


async def remove(pilot: Pilot[Any], made: dict[str, str]) -> None:
    await loaded(pilot)
    select(pilot, made["zylker"])
    await pilot.press("x")
    await until(pilot, lambda: pilot.app.screen.query("#confirm"))


async def connect(pilot: Pilot[Any], made: dict[str, str]) -> None:
    await loaded(pilot)
    select(pilot, made["harbour"])
    await pilot.press("o")
    await until(pilot, lambda: getattr(pilot.app.screen, "flow", None) is not None)
    await until(pilot, lambda: "Waiting" in str(pilot.app.screen.query_one("#progress").render()))


async def details(pilot: Pilot[Any], made: dict[str, str]) -> None:
    await loaded(pilot)
    select(pilot, made["acme"])
    await pilot.press("enter")
    await until(pilot, lambda: getattr(pilot.app.screen, "view", None) is not None)


async def deliveries(pilot: Pilot[Any], made: dict[str, str]) -> None:
    await loaded(pilot)
    select(pilot, made["hook"])
    await pilot.press("enter")
    await until(pilot, lambda: getattr(pilot.app.screen, "view", None) is not None)
    await pilot.press("d")
    await until(
        pilot, lambda: pilot.app.screen.query("#deliveries") and _rows(pilot, "#deliveries")
    )


async def api_keys(pilot: Pilot[Any], made: dict[str, str]) -> None:
    await loaded(pilot)
    select(pilot, made["erp"])
    await pilot.press("a")
    await until(pilot, lambda: pilot.app.screen.query("#keys") and _rows(pilot, "#keys"))


async def key_shown(pilot: Pilot[Any], made: dict[str, str]) -> None:
    await api_keys(pilot, made)
    await pilot.press("n")
    await pilot.press(*"Reporting")
    await pilot.press("enter")
    await until(pilot, lambda: pilot.app.screen.query("#secret"))


async def invoices(pilot: Pilot[Any], made: dict[str, str]) -> None:
    await loaded(pilot)
    await pilot.press("i")
    await until(pilot, lambda: pilot.app.screen.query("#invoices") and _rows(pilot, "#invoices"))


async def help_keys(pilot: Pilot[Any], made: dict[str, str]) -> None:
    await loaded(pilot)
    await pilot.press("question_mark")
    await until(pilot, lambda: type(pilot.app.screen).__name__ == "HelpScreen")


def _rows(pilot: Pilot[Any], selector: str) -> int:
    """Rows in a table, once it has measured them (a DataTable does so when idle)."""
    table: Any = pilot.app.screen.query_one(selector)
    return int(table.row_count) if table.virtual_size.height > table.row_count else 0


FLOWS: dict[str, Callable[[Pilot[Any], dict[str, str]], Awaitable[None]]] = {
    "integrations": integrations,
    "action-menu": action_menu,
    "create": create,
    "configure": configure,
    "remove": remove,
    "connect": connect,
    "details": details,
    "deliveries": deliveries,
    "api-keys": api_keys,
    "key-shown": key_shown,
    "invoices": invoices,
    "help": help_keys,
}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("flow", FLOWS)
def test_screen(
    flow: str,
    size: str,
    shot_ws: Workspace,
    seeded: Seeded,
    snap_compare: Any,
) -> None:
    made = seeded.made

    async def run_before(pilot: Pilot[Any]) -> None:
        await FLOWS[flow](pilot, made)

    app = IntdashApp(shot_ws, schedule=False, poll_seconds=3600)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_empty_state(
    size: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, snap_compare: Any
) -> None:
    point_at(monkeypatch, tmp_path / "home", {})
    ws = Workspace.open(load_settings(), clock=lambda: MOMENT, actor="operator")

    async def run_before(pilot: Pilot[Any]) -> None:
        # shown, its button focused, and the footer offering its keys
        screen = pilot.app.screen
        await until(
            pilot,
            lambda: (
                bool(screen.query("#empty"))
                and screen.query_one("#empty").display
                and pilot.app.focused is not None
                and bool(screen.query("FooterKey"))
            ),
        )

    try:
        app = IntdashApp(ws, schedule=False, poll_seconds=3600)
        assert snap_compare(app, terminal_size=SIZES[size], run_before=run_before)
    finally:
        ws.close()
        monkeypatch.undo()
        time.tzset()
