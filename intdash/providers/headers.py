"""Numbers and times in a platform's answer headers (rate limits, ``Retry-After``)."""

from __future__ import annotations

import math
from datetime import UTC
from email.utils import parsedate_to_datetime


def number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def seconds_from_now(value: str | None, now: float) -> float | None:
    """A reset or Retry-After as seconds from ``now`` (Unix seconds): a count of seconds, a Unix
    time in seconds or milliseconds, or an HTTP date."""
    found = number(value)
    if found is None:
        if not value:
            return None
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return max(0.0, moment.timestamp() - now)
    if found >= 1e12:
        found = found / 1000 - now
    elif found >= 1e9:
        found -= now
    return max(0.0, found)
