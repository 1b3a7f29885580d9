"""How values are written on screen."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.text import Text

from intdash.core.status import Status


def when(moment: datetime | None, now: datetime | None = None, *, short: bool = False) -> str:
    """A time, short: today's as HH:MM, others as the date (``short``: "16 Nov" this year,
    "2025-11" before, where width is scarce)."""
    if moment is None:
        return "never"
    local = moment.astimezone()
    today = (now or datetime.now(UTC)).astimezone().date()
    if local.date() == today:
        return local.strftime("%H:%M")
    if not short:
        return local.strftime("%Y-%m-%d")
    return local.strftime("%d %b" if local.year == today.year else "%Y-%m")


def status_text(status: Status) -> Text:
    """Never colour alone: the glyph and the word too."""
    style = "bold green" if status.active else "bright_black"
    return Text(f"{status.glyph} {status.word}", style=style)


def count(n: int, *, short: bool = False) -> str:
    """A count with thousands separators (``short``: 9,999 then 12k, 1.2M)."""
    if not short or n < 10_000:
        return f"{n:,}"
    if n < 1_000_000:
        return f"{n // 1000}k"
    return f"{n / 1_000_000:.1f}M"


def limit(n: int, *, short: bool = False) -> str:
    """A limit (``short``: round thousands as 2k, 50k, 1M, others as :func:`count` writes them),
    where width is scarce: a limit is a round figure more often than not."""
    if short and n >= 1000 and n % 1000 == 0:
        return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k"
    return count(n, short=short)
