"""The rooms of ARCHITECTURE: who may import whom, checked on the source itself."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "intdash"
HEADLESS = ("core", "providers", "sync", "server", "sandbox", "tui")
ALLOWED = {
    "core": {"intdash.core"},
    "providers": {"intdash.core", "intdash.providers"},
    "sync": {"intdash.core", "intdash.providers", "intdash.sync"},
    "server": {"intdash.core", "intdash.sync", "intdash.server"},
    "sandbox": {"intdash.sandbox"},
    # the dashboard uses core, sync and providers; the CLI hands it the HTTP server
    "tui": {"intdash.core", "intdash.sync", "intdash.providers", "intdash.tui"},
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("room", HEADLESS)
def test_headless_rooms_never_import_textual_or_rooms_above(room: str) -> None:
    folder = PACKAGE / room
    if not folder.exists():
        pytest.skip(f"intdash/{room} does not exist yet")
    for path in folder.rglob("*.py"):
        for name in _imports(path):
            top = name.split(".")[0]
            assert top != "textual" or room == "tui", f"{path} imports {name}"
            if top == "intdash" and name != "intdash":  # the package root (its version) is shared
                assert any(name == a or name.startswith(a + ".") for a in ALLOWED[room]), (
                    f"{path} imports {name}"
                )


def test_the_headless_cli_does_not_load_textual() -> None:
    code = (
        "import sys; from intdash.cli import cli; import intdash.core.workspace; "
        "print(any(m == 'textual' or m.startswith('textual.') for m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"
