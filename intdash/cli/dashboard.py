"""Bare ``intdash``: the dashboard."""

from __future__ import annotations

import os
import sys

from intdash.cli.common import CliState, fail
from intdash.core.config import config_path


def run_dashboard(state: CliState, *, read_only: bool, no_mouse: bool, theme: str | None) -> None:
    keymap = state.settings.keymap
    if keymap:
        from intdash.tui.actions import keymap_problems

        problems = keymap_problems(keymap)
        if problems:
            where = (
                "INTDASH_KEYMAP"
                if "INTDASH_KEYMAP" in os.environ
                else f"[keymap] of {config_path()}"
            )
            fail(f"{where}: {'; '.join(problems)}")
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        fail("the dashboard needs a terminal; 'intdash --help' lists the headless commands")
    from intdash.server.runner import HttpServer
    from intdash.tui.app import IntdashApp

    app = IntdashApp(
        state.workspace, read_only=read_only, theme=theme, keymap=keymap, server=HttpServer
    )
    app.run(mouse=not no_mouse)
