"""The project's own promises: the README documents every setting and CI runs its test command."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from intdash.core.config import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _env_names(model: type[BaseModel], prefix: str) -> list[str]:
    names = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names += _env_names(annotation, f"{prefix}{name.upper()}__")
        else:
            names.append(f"{prefix}{name.upper()}")
    return names


def test_readme_documents_every_setting() -> None:
    names = _env_names(Settings, ENV_PREFIX)
    assert "INTDASH_XERO__CLIENT_ID" in names
    missing = [name for name in names if f"| `{name}` |" not in README]
    assert missing == []


def test_readme_documents_every_command() -> None:
    from intdash.cli import cli

    def walk(group: object, path: str) -> list[str]:
        import click

        assert isinstance(group, click.Group)
        found = []
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                found += walk(command, f"{path} {name}")
            else:
                found.append(f"{path} {name}")
        return found

    missing = [c for c in walk(cli, "intdash") if f"`{c}" not in README]
    assert missing == []


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    command = re.search(r'^TEST_CMD="(.+)"$', ci, re.MULTILINE)
    assert command, "TEST_CMD not found in .ci/run"
    blocks = re.findall(r"```sh\n(.+?)\n```", README, re.DOTALL)
    assert command.group(1) in blocks
    test_section = README.split("## Test it", 1)[1].split("##", 1)[0]
    assert command.group(1) in test_section
