"""Logging: JSON lines to ``$INTDASH_HOME/logs/intdash.log`` (mode 0600), every record
passed through the redacting filter first.

A log file that cannot be written (a read-only home, a full disk) never stops intdash nor
prints a traceback per record: intdash says so once on stderr and logs there instead.
"""

from __future__ import annotations

import contextlib
import json
import logging
import logging.handlers
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from intdash.core.redact import RedactingFilter, redact

_HANDLER_NAME = "intdash-file"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        if record.exc_text:
            entry["exc"] = record.exc_text
        return redact(json.dumps(entry, ensure_ascii=False))


def _private_file_opener(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


def _reason(error: BaseException | None) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) if error is not None else "unknown error"


def report_unwritable(path: Path | str, error: BaseException | None) -> None:
    """Say on stderr that the log file cannot be written (once: the caller's to see to)."""
    with contextlib.suppress(Exception):
        sys.stderr.write(
            f"intdash: cannot write the log file {path}: {_reason(error)}: "
            "logging to standard error\n"
        )
        sys.stderr.flush()


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Records to whatever ``sys.stderr`` is when they are written (the dashboard captures it
    while it runs)."""

    def __init__(self, level: int | str = logging.NOTSET) -> None:
        logging.Handler.__init__(self, level)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log file that only its owner can read.

    When writing fails (a full disk, a file system turned read-only), it says so once and hands
    this and later records to ``fallback`` (if any: none when stderr already shows them),
    instead of a traceback per record. The file is not tried again by this process.
    """

    fallback: logging.Handler | None = None
    failed = False

    def _open(self):  # type: ignore[no-untyped-def]
        return open(
            self.baseFilename, self.mode, encoding=self.encoding, opener=_private_file_opener
        )

    def emit(self, record: logging.LogRecord) -> None:
        if self.failed:
            self._pass_on(record)
        else:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):  # a record that cannot be formatted: a bug to show
            super().handleError(record)
            return
        if self.failed:
            return
        self.failed = True
        stream, self.stream = self.stream, None
        if stream is not None:
            with contextlib.suppress(Exception):  # what is buffered cannot be written either
                stream.close()
        report_unwritable(self.baseFilename, error)
        self._pass_on(record)

    def _pass_on(self, record: logging.LogRecord) -> None:
        fallback = self.fallback
        if fallback is not None and record.levelno >= fallback.level:
            fallback.handle(record)


def _stderr_handler(level: int | str, structured: bool) -> logging.Handler:
    err = StderrHandler(level)
    err.set_name(_HANDLER_NAME + "-stderr")
    err.addFilter(RedactingFilter())
    err.setFormatter(
        JsonFormatter() if structured else logging.Formatter("%(levelname)s %(name)s: %(message)s")
    )
    return err


def configure_logging(
    log_path: Path,
    level: str = "INFO",
    *,
    stderr_level: str | None = None,
    structured_stderr: bool = False,
) -> None:
    """Send intdash's logs to the file (and, if asked, to stderr), replacing earlier setup.

    If the file cannot be written, now or later, intdash says so once and logs on stderr
    instead: warnings and errors (a command's own output says what its info lines would), or,
    when stderr was asked for, what it was asked for.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() in (_HANDLER_NAME, _HANDLER_NAME + "-stderr"):
            root.removeHandler(handler)
            handler.close()
    file_level = logging.getLevelName(level)
    levels = [file_level]
    # with stderr asked for, it shows what it shows already; else warnings and errors go there
    fallback = (
        None
        if stderr_level
        else _stderr_handler(max(file_level, logging.WARNING), structured_stderr)
    )
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        file_handler = PrivateRotatingFileHandler(
            log_path, maxBytes=5_000_000, backupCount=5, encoding="utf-8"
        )
    except OSError as exc:
        report_unwritable(log_path, exc)
        if fallback is not None:
            root.addHandler(fallback)
            levels.append(fallback.level)
    else:
        file_handler.set_name(_HANDLER_NAME)
        file_handler.setLevel(level)
        file_handler.addFilter(RedactingFilter())
        file_handler.setFormatter(JsonFormatter())
        file_handler.fallback = fallback
        root.addHandler(file_handler)
    if stderr_level:
        root.addHandler(_stderr_handler(stderr_level, structured_stderr))
        levels.append(logging.getLevelName(stderr_level))
    root.setLevel(min(levels))
    # the libraries' own logs quote SQL, URLs and headers: keep them to warnings
    noisy_libraries = ("httpx", "httpx2", "httpcore", "httpcore2", "sqlalchemy", "alembic")
    for noisy in (*noisy_libraries, "authlib", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
