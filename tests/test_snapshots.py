"""SVG snapshots of every screen and dialog, at 100x30 and at 80x24 (the scenes, and how each is
reached, are in tests/scenes.py).

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
from collections.abc import Iterator
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
from tests import scenes
from tests.scenes import SCENES, SIZES

MOMENT = datetime(2026, 11, 16, 9, 30, tzinfo=UTC)
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


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("flow", SCENES)
def test_screen(
    flow: str,
    size: str,
    shot_ws: Workspace,
    seeded: Seeded,
    snap_compare: Any,
) -> None:
    made = seeded.made

    async def run_before(pilot: Pilot[Any]) -> None:
        await SCENES[flow](pilot, made)

    app = IntdashApp(shot_ws, schedule=False, poll_seconds=3600)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_empty_state(
    size: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, snap_compare: Any
) -> None:
    point_at(monkeypatch, tmp_path / "home", {})
    ws = Workspace.open(load_settings(), clock=lambda: MOMENT, actor="operator")
    try:
        app = IntdashApp(ws, schedule=False, poll_seconds=3600)
        assert snap_compare(app, terminal_size=SIZES[size], run_before=scenes.empty)
    finally:
        ws.close()
        monkeypatch.undo()
        time.tzset()
