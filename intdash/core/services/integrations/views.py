"""An integration as the faces show it: its data, its derived status, its activity in its
type's words and its stable JSON form."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row

from intdash.core.budget import DailyBudget, daily_reserve
from intdash.core.catalog import Action, IntegrationType, TypeSpec, type_spec
from intdash.core.models import Integration
from intdash.core.plans import LicenceState
from intdash.core.schedule import NOT_SCHEDULED, NextSync, describe, events_received, poll_interval
from intdash.core.services.credentials import OAUTH_TOKEN
from intdash.core.status import Reason, Status, StatusFacts, derive_status

if TYPE_CHECKING:
    from intdash.core.config import Settings
    from intdash.core.services.leases import LeaseInfo
    from intdash.core.services.plans import PlanView


def _iso(moment: datetime | date | None) -> str | None:
    return moment.isoformat() if moment is not None else None


@dataclass(frozen=True)
class IntegrationView:
    """An integration as the faces show it: its data, its status and what it may do."""

    uid: str
    type: IntegrationType
    name: str
    created: datetime
    status: Status
    sync_enabled: bool
    sync_from: date | None
    cursor: str | None
    last_attempted_sync: datetime | None
    last_successful_sync: datetime | None
    last_sync_error: str | None
    invoices_changed_at: datetime | None  # when any of its invoices was last written
    removed_at: datetime | None
    settings: Mapping[str, Any]
    secrets_set: tuple[str, ...]
    invoices_this_month: int
    monthly_limit: int
    daily_budget: DailyBudget | None = None  # today's API calls left, while the day lasts
    daily_reserve: int = 0
    next_sync: NextSync = NOT_SCHEDULED  # when it syncs next, or why it will not

    @property
    def daily_budget_low(self) -> DailyBudget | None:
        """Today's calls when only the reserve is left: Sync Now asks before spending them."""
        budget = self.daily_budget
        return budget if budget is not None and budget.spent(self.daily_reserve) else None

    @property
    def spec(self) -> TypeSpec:
        return type_spec(self.type)

    @property
    def runs_are(self) -> str:
        """What its "last sync" times are of, in its type's word: a webhook's are deliveries."""
        return self.spec.activity

    @property
    def last_activity(self) -> datetime | None:
        """When it last did its work: its last successful sync or delivery; a Custom
        Integration is not synced, so its last push (the last write of its invoices)."""
        return self.invoices_changed_at if self.spec.pushes else self.last_successful_sync

    def activity(self) -> list[tuple[str, datetime | str | None]]:
        """What it does, in its type's words (a platform's syncs, a Custom Integration's
        pushes, a webhook's deliveries): labelled times (None: never) and states."""
        spec = self.spec
        enabled = "enabled" if self.sync_enabled else "disabled"
        month = ("This month", f"{self.invoices_this_month:,} of {self.monthly_limit:,}")
        if spec.pushes:
            accepted = "accepted" if self.sync_enabled else "refused (disabled)"
            return [(f"Last {self.runs_are}", self.last_activity), ("Pushes", accepted), month]
        times: list[tuple[str, datetime | str | None]] = [
            (f"Last attempted {self.runs_are}", self.last_attempted_sync),
            (f"Last successful {self.runs_are}", self.last_successful_sync),
        ]
        if spec.delivers:  # it fiscalizes nothing itself
            return [*times, ("Deliveries", enabled)]
        since = self.sync_from.isoformat() if self.sync_from else "the beginning"
        states = [("Sync from", since), ("Sync", enabled), month]
        if self.daily_budget is not None:  # until its platform's day ends (the reason says when)
            states.append(("Calls left today", f"{self.daily_budget.remaining:,}"))
        return [*times, *states]

    @property
    def actions(self) -> tuple[Action, ...]:
        """The type's actions. An OAuth integration that is not authorised (never connected,
        or its tokens refused) offers Connect first, in place of any Reconnect."""
        if self.removed_at:
            return ()
        actions = self.spec.actions
        unauthorised = (Reason.NEEDS_AUTHORISATION, Reason.RECONNECT_NEEDED)
        if self.spec.oauth and self.status.reason in unauthorised:
            return (Action.CONNECT, *(a for a in actions if a is not Action.RECONNECT))
        return actions

    def to_json(self) -> dict[str, Any]:
        """The stable JSON form of ``intdash integrations show --json``."""
        return {
            "uid": self.uid,
            "type": self.type.value,
            "type_label": self.spec.label,
            "name": self.name,
            "created": _iso(self.created),
            "status": "active" if self.status.active else "inactive",
            "reason": self.status.reason.value if self.status.reason else None,
            "reason_detail": self.status.detail,
            "sync_enabled": self.sync_enabled,
            "sync_from": _iso(self.sync_from),
            "last_attempted_sync": _iso(self.last_attempted_sync),
            "last_successful_sync": _iso(self.last_successful_sync),
            **self.next_sync.to_json(),
            "invoices_changed_at": _iso(self.invoices_changed_at),
            "last_sync_error": self.last_sync_error,
            "removed": self.removed_at is not None,
            "removed_at": _iso(self.removed_at),
            "settings": dict(self.settings),
            "secrets": {f.name: f.name in self.secrets_set for f in self.spec.fields if f.secret},
            "invoices_this_month": self.invoices_this_month,
            "monthly_limit": self.monthly_limit,
            "daily_api_calls": self.daily_budget.to_json() if self.daily_budget else None,
            "actions": [a.value for a in self.actions],
        }


@dataclass(frozen=True)
class RunningSync:
    """A sync running now, in whichever process: since when, and the invoices its committed
    pages have fetched so far."""

    started: datetime
    fetched: int


@dataclass(frozen=True)
class Overview:
    """What the dashboard's main screen shows, read together."""

    views: list[IntegrationView]
    plan: PlanView
    used: int  # invoices fiscalized this month, every integration
    scheduler: LeaseInfo | None  # who schedules syncs, if anybody does
    running: Mapping[str, RunningSync] = field(default_factory=dict)  # by UID


@dataclass(frozen=True)
class CreatedIntegration:
    integration: IntegrationView
    generated_secrets: Mapping[str, str]  # made at creation and shown this once only


def build_view(
    row: Integration | Row[Any],
    plan: PlanView,
    secret_names: set[str],
    month: Mapping[int, int],
    keys: Mapping[int, int],
    now: datetime,
    settings: Settings,
    fiscal: Mapping[int, tuple[str | None, str | None]] | None = None,
) -> IntegrationView:
    """The view of one row, its status derived from the facts read beside it: the names of
    its stored secrets, each integration's invoices this month and live API keys, and the
    settings that say how many of its platform's daily API calls are kept in reserve; and
    ``fiscal``, each integration's invoices refused by the SDC or waiting for it, in words
    (:func:`intdash.core.services.fiscal_views.reasons`: none with the local register)."""
    spec = type_spec(row.type)
    row_id = row.id or 0
    missing = tuple(
        f.name
        for f in spec.fields
        if f.required and f.name not in secret_names and row.settings.get(f.name) in (None, "")
    )
    facts = StatusFacts(
        removed=row.removed_at is not None,
        licence_lapsed=plan.licence is LicenceState.LAPSED,
        oauth=spec.oauth,
        authorised=OAUTH_TOKEN in secret_names,
        auth_error=row.auth_error,
        missing_fields=missing,
        needs_api_key=spec.needs_api_key,
        live_api_keys=keys.get(row_id, 0),
        sync_enabled=row.sync_enabled,
        invoices_this_month=month.get(row_id, 0),
        monthly_limit=plan.monthly_limit,
        last_sync_error=row.last_sync_error,
        delivers=spec.delivers,
        daily_budget=DailyBudget.current(row, now) if spec.oauth else None,
        daily_reserve=daily_reserve(settings, spec.type.value),
        sdc_refused=(fiscal or {}).get(row_id, (None, None))[0],
        sdc_waiting=(fiscal or {}).get(row_id, (None, None))[1],
    )
    status = derive_status(facts)
    # the SDC's reasons hold its invoices, not its syncs: when it syncs next is as without them
    syncing = derive_status(replace(facts, sdc_refused=None, sdc_waiting=None))
    next_sync = describe(
        uid=row.uid,
        spec=spec,
        status=syncing,
        stored=row.next_sync_at,
        last_attempt=row.last_attempted_sync,
        interval=poll_interval(plan.spec, spec, events=events_received(settings, spec)),
        resumes_at=facts.daily_budget.resets_at if facts.daily_budget else None,
        now=now,
    )
    return IntegrationView(
        uid=row.uid,
        type=spec.type,
        name=row.name,
        created=row.created_at,
        status=status,
        sync_enabled=row.sync_enabled,
        sync_from=row.sync_from,
        cursor=row.cursor,
        last_attempted_sync=row.last_attempted_sync,
        last_successful_sync=row.last_successful_sync,
        last_sync_error=row.last_sync_error,
        invoices_changed_at=row.invoices_changed_at,
        removed_at=row.removed_at,
        settings=dict(row.settings),
        secrets_set=tuple(sorted(n for n in secret_names if spec.field(n) is not None)),
        invoices_this_month=facts.invoices_this_month,
        monthly_limit=plan.monthly_limit,
        daily_budget=facts.daily_budget,
        daily_reserve=facts.daily_reserve,
        next_sync=next_sync,
    )
