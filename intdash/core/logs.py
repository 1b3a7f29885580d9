"""Logging: JSON lines to ``$INTDASH_HOME/logs/intdash.log`` (mode 0600), every record
passed through the redacting filter first."""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
from datetime import UTC, datetime
from pathlib import Path

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


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log file that only its owner can read."""

    def _open(self):  # type: ignore[no-untyped-def]
        return open(
            self.baseFilename, self.mode, encoding=self.encoding, opener=_private_file_opener
        )


def configure_logging(
    log_path: Path,
    level: str = "INFO",
    *,
    stderr_level: str | None = None,
    structured_stderr: bool = False,
) -> None:
    """Send intdash's logs to the file (and, if asked, to stderr), replacing earlier setup."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() in (_HANDLER_NAME, _HANDLER_NAME + "-stderr"):
            root.removeHandler(handler)
            handler.close()
    log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    file_handler = PrivateRotatingFileHandler(
        log_path, maxBytes=5_000_000, backupCount=5, encoding="utf-8"
    )
    file_handler.set_name(_HANDLER_NAME)
    file_handler.setLevel(level)
    file_handler.addFilter(RedactingFilter())
    file_handler.setFormatter(JsonFormatter())
    root.addHandler(file_handler)
    levels = [logging.getLevelName(level)]
    if stderr_level:
        err = logging.StreamHandler()
        err.set_name(_HANDLER_NAME + "-stderr")
        err.setLevel(stderr_level)
        err.addFilter(RedactingFilter())
        err.setFormatter(
            JsonFormatter()
            if structured_stderr
            else logging.Formatter("%(levelname)s %(name)s: %(message)s")
        )
        root.addHandler(err)
        levels.append(logging.getLevelName(stderr_level))
    root.setLevel(min(levels))
    # the libraries' own logs quote SQL, URLs and headers: keep them to warnings
    for noisy in ("httpx", "httpcore", "sqlalchemy", "alembic", "authlib", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
