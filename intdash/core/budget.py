"""A platform's daily allowance of API calls for one tenant, as the platform last stated it.

Xero allows each organisation 5,000 calls a day (1,000 on its Starter tier) and says on every
answer how many are left. The last figure is kept with the integration, so that every process
(the scheduler, the dashboard, the command line) sees it. When only the reserve is left
(``INTDASH_XERO__DAILY_RESERVE``), scheduled syncs wait for the reset and Sync Now asks first;
a figure whose day has ended says nothing any more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from intdash.core.config import Settings
    from intdash.core.models import Integration


@dataclass(frozen=True)
class DailyBudget:
    remaining: int  # calls left today, as the platform said
    observed_at: datetime
    resets_at: datetime  # when the platform's day starts again

    def in_force(self, now: datetime) -> bool:
        """Whether the day it speaks of is still running."""
        return now < self.resets_at

    def spent(self, reserve: int) -> bool:
        """Only the reserve (or less) is left: scheduled syncs wait for the reset."""
        return self.remaining <= reserve

    @property
    def resumes(self) -> str:
        """When syncing resumes, in words: "00:00 UTC"."""
        return f"{self.resets_at.astimezone(UTC):%H:%M} UTC"

    @property
    def explanation(self) -> str:
        """ "12 calls left, resumes 00:00 UTC"."""
        calls = "call" if self.remaining == 1 else "calls"
        return f"{self.remaining:,} {calls} left, resumes {self.resumes}"

    def to_json(self) -> dict[str, Any]:
        return {
            "remaining": self.remaining,
            "observed_at": self.observed_at.isoformat(),
            "resets_at": self.resets_at.isoformat(),
        }

    @classmethod
    def of(cls, row: Any) -> DailyBudget | None:
        """What an integration's row (an ORM object or a plain row) holds, if anything."""
        remaining, observed, resets = (
            row.daily_remaining,
            row.daily_observed_at,
            row.daily_resets_at,
        )
        if remaining is None or observed is None or resets is None:
            return None
        return cls(int(remaining), observed, resets)

    @classmethod
    def current(cls, row: Any, now: datetime) -> DailyBudget | None:
        """What an integration's row holds, while its day lasts."""
        budget = cls.of(row)
        return budget if budget is not None and budget.in_force(now) else None

    def store(self, row: Integration) -> None:
        """Keep it with the integration, unless a later figure is there already."""
        if row.daily_observed_at is not None and row.daily_observed_at > self.observed_at:
            return
        row.daily_remaining = self.remaining
        row.daily_observed_at = self.observed_at
        row.daily_resets_at = self.resets_at


def daily_reserve(settings: Settings, type: str) -> int:
    """Calls of a platform's daily allowance kept for the operator (``INTDASH_XERO__DAILY_RESERVE``
    for Xero); a platform whose settings have no reserve keeps none."""
    section = getattr(settings, type, None)
    reserve = getattr(section, "daily_reserve", 0)
    return reserve if isinstance(reserve, int) else 0
