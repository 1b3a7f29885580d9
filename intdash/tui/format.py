"""How values are written on screen."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.text import Text

from intdash.core.status import Status


def when(moment: datetime | None, now: datetime | None = None) -> str:
    """A time, short: today's as HH:MM, others as the date."""
    if moment is None:
        return "never"
    now = now or datetime.now(UTC)
    local = moment.astimezone()
    if local.date() == now.astimezone().date():
        return local.strftime("%H:%M")
    return local.strftime("%Y-%m-%d")


def status_text(status: Status) -> Text:
    """Never colour alone: the glyph and the word too."""
    style = "bold green" if status.active else "bright_black"
    return Text(f"{status.glyph} {status.word}", style=style)
