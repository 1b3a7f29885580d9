"""Regenerate screenshots/*.svg from the real dashboard over a seeded workspace.

    python scripts/screenshots.py

The workspace is seeded as ``intdash demo`` seeds it (emulated platforms, real OAuth and syncs),
then each scene of tests/scenes.py (the scenes the snapshot tests picture) is reached in the app
running headless at 100x30, and saved; the empty state from an empty workspace.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from intdash.cli.demo import demo_sandbox, fiscal_setup, seed  # noqa: E402
from intdash.core.config import load_settings  # noqa: E402
from intdash.core.tokens import TokenSource  # noqa: E402
from intdash.core.workspace import Workspace  # noqa: E402
from intdash.sync.fiscalize import FiscalSender  # noqa: E402
from intdash.tui.app import IntdashApp  # noqa: E402
from tests import scenes  # noqa: E402

OUT = ROOT / "screenshots"
SIZE = scenes.SIZES["100x30"]


def fresh(home: str) -> Workspace:
    os.environ["INTDASH_HOME"] = home
    # seeded: the same UIDs, keys and states on every regeneration
    return Workspace.open(load_settings(), tokens=TokenSource.seeded(2026), actor="screenshots")


async def shoot(
    ws: Workspace, name: str, scene: Callable[..., Awaitable[None]], *args: Any
) -> None:
    """Start the dashboard, reach the scene (``scene(pilot, *args)``), and save it as
    ``name``.svg."""
    app = IntdashApp(ws, schedule=False)
    async with app.run_test(size=SIZE) as pilot:
        await scene(pilot, *args)
        await pilot.pause(0.3)
        app.save_screenshot(f"{name}.svg", str(OUT))


async def main() -> None:
    OUT.mkdir(exist_ok=True)
    for old in OUT.glob("*.svg"):
        old.unlink()
    await shoot(fresh(tempfile.mkdtemp(prefix="intdash-shots-")), "empty", scenes.empty)
    with demo_sandbox() as box:
        os.environ.update(box.settings("http://localhost:8471/callback"))
        ws = fresh(tempfile.mkdtemp(prefix="intdash-shots-"))
        made = await seed(ws)
        for name, scene in scenes.SCENES.items():
            await shoot(ws, name, scene, made)
    # the same, fiscalized by TaxCore's V-SDC (emulated): the SDC column and a signed invoice
    with demo_sandbox(Path(tempfile.mkdtemp(prefix="intdash-shots-vsdc-"))) as box:
        assert box.vsdc is not None
        os.environ.update(box.settings("http://localhost:8471/callback"))
        os.environ["INTDASH_FISCAL__REGISTER"] = "vsdc"
        ws = fresh(tempfile.mkdtemp(prefix="intdash-shots-"))
        await fiscal_setup(ws, box.vsdc)
        made = await seed(ws)
        await FiscalSender(ws).drain()  # as the dashboard would, in the background
        for name, scene in scenes.VSDC_SCENES.items():
            await shoot(ws, name, scene, made)
    print(f"wrote {len(list(OUT.glob('*.svg')))} screenshots to {OUT}")


if __name__ == "__main__":
    asyncio.run(main())
