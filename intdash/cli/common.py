"""What every command shares: the workspace (opened on first use), output, and errors.

Errors the operator can act on print one line to stderr, ``intdash: <problem>``, and exit
non-zero; nothing prints a traceback (unexpected errors go to the log file with theirs).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

import click

from intdash.core.config import Settings, load_settings, make_home
from intdash.core.errors import FieldErrors, IntdashError
from intdash.core.logs import configure_logging
from intdash.core.redact import redact
from intdash.core.workspace import Workspace

log = logging.getLogger("intdash.cli")

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70

# bounds of the numbers the commands take: beyond them a value is a typo, said in one line
MAX_ID = 2**63 - 1  # the largest row id a database here can hold
MAX_LISTED = 10_000_000  # rows a listing shows with --limit

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class CliState:
    verbose: bool = False
    structured_stderr: bool = False  # intdash serve: JSON lines on stderr as in the log file
    check_vault: bool = True  # False only for diagnostics ('intdash vault check')
    _settings: Settings | None = None
    _workspace: Workspace | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    @property
    def workspace(self) -> Workspace:
        if self._workspace is None:
            settings = self.settings
            make_home(settings)
            configure_logging(
                settings.log_path,
                settings.log_level,
                stderr_level="INFO" if self.verbose or self.structured_stderr else None,
                structured_stderr=self.structured_stderr,
            )
            self._workspace = Workspace.open(settings, check_vault=self.check_vault)
        return self._workspace

    def close(self) -> None:
        if self._workspace is not None:
            self._workspace.close()
            self._workspace = None


pass_state = click.make_pass_decorator(CliState, ensure=True)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON (stable, documented).")(
        func
    )


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def print_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """A plain aligned table, easy to read and to grep."""
    table = [list(headers), *[[str(cell) for cell in row] for row in rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    for row in table:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    click.echo(f"intdash: {message}", err=True)
    sys.exit(code)


def parse_assignments(pairs: Sequence[str], option: str = "--set") -> dict[str, str]:
    """``KEY=VALUE`` pairs; a VALUE of ``-`` is read from standard input (for secrets)."""
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, not {pair!r}", param_hint=option)
        if key in values:
            raise click.BadParameter(f"{key} is given twice", param_hint=option)
        if value == "-":
            line = sys.stdin.readline()
            if not line:
                raise click.BadParameter(f"{key}=- but standard input is empty", param_hint=option)
            value = line.rstrip("\r\n")
        values[key] = value
    return values


def _one_line(text: str) -> str:
    return " ".join(redact(text).split())


class IntdashGroup(click.Group):
    """The root group: turns every failure into one line on stderr and an exit code."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            result = super().main(*args, **kwargs)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
            fail(_one_line(exc.format_message()) + hint, EXIT_USAGE)
        except click.ClickException as exc:
            fail(_one_line(exc.format_message()), exc.exit_code)
        except click.Abort:
            fail("aborted: nothing was changed")
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except FieldErrors as exc:
            fail("invalid input: " + _one_line(str(exc)))
        except IntdashError as exc:
            fail(_one_line(str(exc)))
        except Exception as exc:  # the last resort: a line for the operator, the rest to the log
            log.exception("unexpected error")
            fail(
                f"unexpected error: {type(exc).__name__}: {_one_line(str(exc))} "
                "(details in the log: 'intdash locate')",
                EXIT_INTERNAL,
            )
        if isinstance(result, int) and result:
            sys.exit(result)
        return result
