"""Time enters through a clock so that tests can control it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware, in UTC."""


def system_clock() -> datetime:
    return datetime.now(UTC)


def month_start(moment: datetime) -> datetime:
    """The first instant (UTC) of the calendar month holding ``moment``."""
    utc = moment.astimezone(UTC)
    return utc.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_utc_midnight(moment: datetime) -> datetime:
    """The first instant (UTC) of the day after the one holding ``moment``."""
    utc = moment.astimezone(UTC)
    return utc.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)


def parse_date(text: str, field: str = "date") -> date:
    """Parse an ISO date (YYYY-MM-DD), naming the field when it is not one."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{field} must be a date as YYYY-MM-DD, not {text!r}") from None
