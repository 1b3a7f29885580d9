"""Regenerate screenshots/*.svg from the real dashboard over a seeded workspace.

    python scripts/screenshots.py

The workspace is seeded as ``intdash demo`` seeds it (emulated platforms, real OAuth and syncs),
then the app runs headless at 100x30 and each screen and modal is saved.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from intdash.cli.demo import demo_sandbox, seed  # noqa: E402
from intdash.core.config import load_settings  # noqa: E402
from intdash.core.tokens import TokenSource  # noqa: E402
from intdash.core.workspace import Workspace  # noqa: E402
from intdash.tui.app import IntdashApp  # noqa: E402
from intdash.tui.widgets import RowTable  # noqa: E402

OUT = ROOT / "screenshots"
SIZE = (100, 30)


async def until(pilot: Any, condition: Callable[[], Any], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("the dashboard did not get there in time")
        await pilot.pause(0.05)


def fresh(home: str) -> Workspace:
    os.environ["INTDASH_HOME"] = home
    # seeded: the same UIDs, keys and states on every regeneration
    return Workspace.open(load_settings(), tokens=TokenSource.seeded(2026), actor="screenshots")


async def empty_state() -> None:
    app = IntdashApp(fresh(tempfile.mkdtemp(prefix="intdash-shots-")), schedule=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: empty_settled(app))
        app.save_screenshot("empty.svg", str(OUT))


def empty_settled(app: IntdashApp) -> bool:
    """The empty state shown, its button focused, and the footer offering its keys."""
    shown = bool(app.screen.query("#empty")) and app.screen.query_one("#empty").display
    return shown and app.focused is not None and bool(app.screen.query("FooterKey"))


async def seeded(made: dict[str, str], ws: Workspace) -> None:
    from intdash.tui.screens.integrations import IntegrationsScreen

    app = IntdashApp(ws, schedule=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, IntegrationsScreen) and app.screen.views)

        async def shot(name: str) -> None:
            await pilot.pause(0.3)
            app.save_screenshot(f"{name}.svg", str(OUT))

        def select(uid: str) -> None:
            table = app.screen.query_one("#integrations", RowTable)
            table.move_cursor(row=table.get_row_index(uid))

        await shot("integrations")
        await pilot.press("n")
        await shot("create")
        await pilot.press("escape")
        select(made["zylker"])
        await pilot.press("c")
        await shot("configure")
        await pilot.press("escape")
        await pilot.press("x")
        await shot("remove")
        await pilot.press("escape")
        select(made["harbour"])
        await pilot.press("o")
        await until(pilot, lambda: getattr(app.screen, "flow", None) is not None)
        await shot("connect")
        await pilot.press("escape")
        select(made["acme"])
        await pilot.press("enter")
        await until(pilot, lambda: getattr(app.screen, "view", None) is not None)
        await shot("details")
        await pilot.press("escape")
        select(made["hook"])
        await pilot.press("enter")
        await until(pilot, lambda: getattr(app.screen, "view", None) is not None)
        await pilot.press("d")
        await until(
            pilot,
            lambda: (
                app.screen.query("#deliveries")
                and app.screen.query_one("#deliveries", RowTable).row_count
            ),
        )
        await shot("deliveries")
        await pilot.press("escape")
        await pilot.press("escape")
        select(made["erp"])
        await pilot.press("a")
        await shot("api-keys")
        await pilot.press("n")
        await pilot.press(*"Reporting")
        await pilot.press("enter")
        await until(pilot, lambda: app.screen.query("#secret"))
        await shot("key-shown")
        await pilot.press("escape")
        await pilot.press("escape")
        await pilot.press("i")
        await until(
            pilot,
            lambda: (
                app.screen.query("#invoices")
                and app.screen.query_one("#invoices", RowTable).row_count
            ),
        )
        await shot("invoices")
        await pilot.press("escape")
        await pilot.press("question_mark")
        await shot("help")


async def main() -> None:
    OUT.mkdir(exist_ok=True)
    for old in OUT.glob("*.svg"):
        old.unlink()
    await empty_state()
    with demo_sandbox() as box:
        os.environ.update(box.settings("http://localhost:8471/callback"))
        ws = fresh(tempfile.mkdtemp(prefix="intdash-shots-"))
        made = await seed(ws)
        await seeded(made, ws)
    print(f"wrote {len(list(OUT.glob('*.svg')))} screenshots to {OUT}")


if __name__ == "__main__":
    asyncio.run(main())
