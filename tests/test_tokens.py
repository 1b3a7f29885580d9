"""Randomness enters through the workspace's token source, as time enters through its clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Button, Input, Static

from intdash.core.config import load_settings
from intdash.core.tokens import TokenSource, system_tokens
from intdash.core.workspace import Workspace
from intdash.providers.webhooks import test_event_id as make_test_event_id
from intdash.tui.app import IntdashApp
from intdash.tui.screens.apikeys import _check_label
from intdash.tui.screens.forms import ConfigureScreen, check_common
from tests.conftest import FakeClock


def test_a_seeded_source_repeats_itself_and_the_system_one_does_not() -> None:
    def draw(tokens: TokenSource) -> tuple[Any, ...]:
        return (
            tokens.token_bytes(8),
            tokens.token_hex(4),
            tokens.token_urlsafe(12),
            tokens.choice("abc", 10),
        )

    first, second = draw(TokenSource.seeded(3)), draw(TokenSource.seeded(3))
    assert first == second
    assert draw(TokenSource.seeded(4)) != first
    assert len(first[1]) == 8 and len(first[2]) == 16 and set(first[3]) <= set("abc")
    assert draw(system_tokens) != draw(system_tokens)
    assert TokenSource.seeded(3).is_seeded and not system_tokens.is_seeded


@pytest.fixture
def seeded_pair(
    env: dict[str, str], tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Workspace, Workspace]]:
    """Two workspaces, each in its own home, with the same seeded token source."""
    opened = []
    for name in ("one", "two"):
        home = tmp_path / name
        monkeypatch.setenv("INTDASH_HOME", str(home))
        monkeypatch.setenv("INTDASH_DATABASE_URL", f"sqlite:///{home / 'intdash.db'}")
        opened.append(
            Workspace.open(
                load_settings(), clock=clock, tokens=TokenSource.seeded(11), actor="tester"
            )
        )
    yield opened[0], opened[1]
    for ws in opened:
        ws.close()


def test_the_same_seed_makes_the_same_keys_secrets_and_event_ids(
    seeded_pair: tuple[Workspace, Workspace],
) -> None:
    made = []
    for ws in seeded_pair:
        custom = ws.integrations.create("custom", name="ERP").integration.uid
        key = ws.keys.create(custom, "production").key
        hook = ws.integrations.create(
            "webhook", name="Out", values={"url": "https://hooks.example.com/in"}
        ).integration.uid
        rotated = ws.deliveries.rotate_secret(hook, overlap=timedelta(0))
        made.append((key, rotated, make_test_event_id(ws.tokens)))
    assert made[0] == made[1]
    assert made[0][0].startswith("idk_") and made[0][1].startswith("whsec_")


def test_the_prompts_and_forms_judge_as_the_services_do() -> None:
    # the workspace's today is 2020-01-01, whatever the machine's date
    clock = FakeClock(datetime(2020, 1, 1, 12, 0, tzinfo=UTC))
    assert date.today() > date(2021, 6, 1)
    assert check_common("sync_from", "2021-06-01", clock) == (
        "must not be in the future (2021-06-01 is after today)"
    )
    assert check_common("sync_from", "2020-01-01", clock) is None
    assert check_common("name", "Acme\x07Ltd", clock) == "must not contain control characters"
    assert check_common("name", "x" * 201, clock) == "must be at most 200 characters, not 201"
    assert _check_label("  ") == "label: must not be empty"
    assert _check_label("production") is None


async def test_configure_refuses_a_name_the_service_would_refuse(ws: Workspace) -> None:
    uid = ws.integrations.create("custom", name="ERP").integration.uid
    app = IntdashApp(ws, schedule=False, poll_seconds=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        app.push_screen(ConfigureScreen(ws.integrations.get(uid)))
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ConfigureScreen)
        screen.query_one("#f-name", Input).value = "ERP\x1b[31m"
        await pilot.pause()
        assert screen.query_one("#save", Button).disabled
        problem = str(screen.query_one("#e-name", Static).render())
        assert problem == "name: must not contain control characters"
