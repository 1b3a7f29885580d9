"""An integration's status, derived in this one place from the facts about it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from intdash.core.budget import DailyBudget


class Reason(StrEnum):
    """Why an integration is inactive. :func:`derive_status` gives the most fundamental one that
    applies, in its own order (a reconnect needed comes before needs authorisation)."""

    REMOVED = "removed"
    LICENCE_LAPSED = "licence lapsed"
    NEEDS_AUTHORISATION = "needs authorisation"
    RECONNECT_NEEDED = "reconnect needed"
    NOT_CONFIGURED = "not configured"
    NO_API_KEY = "no API key"
    SYNC_DISABLED = "sync disabled"
    DAILY_LIMIT = "daily API limit"  # scheduled syncs wait for the platform's day to end
    LIMIT_REACHED = "monthly limit reached"
    LAST_SYNC_FAILED = "last sync failed"
    DELIVERIES_FAILING = "deliveries failing"  # a Custom/Webhook's endpoint keeps refusing
    SDC_REFUSED = "refused by the SDC"  # invoices the V-SDC refused: the operator acts
    WAITING_FOR_SDC = "waiting for the SDC"  # invoices not signed yet: the SDC unavailable


@dataclass(frozen=True)
class StatusFacts:
    """What the status depends on; gathered by the services, judged by :func:`derive_status`."""

    removed: bool = False
    licence_lapsed: bool = False
    oauth: bool = False
    authorised: bool = False
    auth_error: str | None = None
    missing_fields: tuple[str, ...] = ()
    needs_api_key: bool = False
    live_api_keys: int = 0
    sync_enabled: bool = True
    invoices_this_month: int = 0
    monthly_limit: int | None = None
    last_sync_error: str | None = None
    delivers: bool = False  # a Custom/Webhook: its last error is of deliveries, not syncs
    daily_budget: DailyBudget | None = None  # the platform's last word on today's calls
    daily_reserve: int = 0
    # the fiscal outbox (V-SDC): invoices refused, or waiting (FiscalService.waiting), in words
    # (FiscalService.describe_waiting); only while the SDC is unavailable do waiting ones count
    sdc_refused: str | None = None
    sdc_waiting: str | None = None


@dataclass(frozen=True)
class Status:
    active: bool
    reason: Reason | None = None
    detail: str | None = None

    @property
    def word(self) -> str:
        return "Active" if self.active else "Inactive"

    @property
    def glyph(self) -> str:
        return "●" if self.active else "○"

    @property
    def explanation(self) -> str:
        """The reason in words, with its detail: what an operator reads beside the status."""
        if self.reason is None:
            return ""
        return f"{self.reason.value}: {self.detail}" if self.detail else self.reason.value


ACTIVE = Status(active=True)


def derive_status(facts: StatusFacts) -> Status:
    """Active, or Inactive with the most fundamental reason that applies."""
    if facts.removed:
        return Status(False, Reason.REMOVED)
    if facts.licence_lapsed:
        return Status(False, Reason.LICENCE_LAPSED)
    if facts.oauth and facts.auth_error:
        return Status(False, Reason.RECONNECT_NEEDED, facts.auth_error)
    if facts.oauth and not facts.authorised:
        return Status(False, Reason.NEEDS_AUTHORISATION)
    if facts.missing_fields:
        return Status(False, Reason.NOT_CONFIGURED, "missing " + ", ".join(facts.missing_fields))
    if facts.needs_api_key and facts.live_api_keys == 0:
        return Status(False, Reason.NO_API_KEY)
    if not facts.sync_enabled:
        return Status(False, Reason.SYNC_DISABLED)
    if facts.daily_budget is not None and facts.daily_budget.spent(facts.daily_reserve):
        return Status(False, Reason.DAILY_LIMIT, facts.daily_budget.explanation)
    if facts.monthly_limit is not None and facts.invoices_this_month >= facts.monthly_limit:
        return Status(
            False,
            Reason.LIMIT_REACHED,
            f"{facts.invoices_this_month:,} of {facts.monthly_limit:,} this month",
        )
    if facts.last_sync_error:
        reason = Reason.DELIVERIES_FAILING if facts.delivers else Reason.LAST_SYNC_FAILED
        return Status(False, reason, facts.last_sync_error)
    if facts.sdc_refused:
        return Status(False, Reason.SDC_REFUSED, facts.sdc_refused)
    if facts.sdc_waiting:
        return Status(False, Reason.WAITING_FOR_SDC, facts.sdc_waiting)
    return ACTIVE
