"""Keeping secrets out of logs and screens.

Code that handles a secret never logs it; this module is the second line: every secret the vault
sees is remembered (in memory only) and masked wherever it would be written to a log, and text
shaped like an API key or a bearer token is masked too.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict

MASK = "********"
_MIN_LEN = 6
_MAX_REMEMBERED = 4096

_lock = threading.Lock()
_secrets: OrderedDict[str, None] = OrderedDict()

_PATTERNS = (
    # intdash API keys: keep the key id, hide the secret
    (re.compile(r"\b(idk_[a-z0-9]+_)[A-Za-z0-9]+"), r"\1" + MASK),
    (re.compile(r"(?i)\b(bearer|zoho-oauthtoken)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + MASK),
    (
        re.compile(
            r"(?i)([\"']?(?:access_token|refresh_token|id_token|client_secret|password|secret)"
            r"[\"']?\s*[:=]\s*[\"']?)[^\"'&\s,}]+"
        ),
        r"\1" + MASK,
    ),
    # OAuth callback URLs: the authorisation code and state
    (re.compile(r"([?&](?:code|state)=)[^&#\s\"']+"), r"\1" + MASK),
)


def register_secret(value: str) -> None:
    """Remember ``value`` so that it is masked in anything logged from now on."""
    if len(value) < _MIN_LEN:
        return
    with _lock:
        _secrets[value] = None
        _secrets.move_to_end(value)
        while len(_secrets) > _MAX_REMEMBERED:
            _secrets.popitem(last=False)


def redact(text: str) -> str:
    """``text`` with every known secret and secret-shaped token masked."""
    with _lock:
        known = [s for s in _secrets if s in text]
    for secret in sorted(known, key=len, reverse=True):
        text = text.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def mask(value: str | None) -> str:
    """How a secret is shown to an operator: that it is set, never what it is."""
    return MASK if value else ""


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in the message and its arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if record.exc_info and record.exc_info[1] is not None:
            # the formatted traceback may quote a secret: format it now, redacted
            formatter = logging.Formatter()
            record.exc_text = redact(formatter.formatException(record.exc_info))
            record.exc_info = None
        record.msg, record.args = cleaned, None
        return True
