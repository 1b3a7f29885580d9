"""Bare ``intdash``: the dashboard."""

from __future__ import annotations

import sys

from intdash.cli.common import CliState, fail


def run_dashboard(state: CliState, *, read_only: bool, no_mouse: bool, theme: str | None) -> None:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        fail("the dashboard needs a terminal; 'intdash --help' lists the headless commands")
    from intdash.server.runner import HttpServer
    from intdash.tui.app import IntdashApp

    app = IntdashApp(state.workspace, read_only=read_only, theme=theme, server=HttpServer)
    app.run(mouse=not no_mouse)
