"""The workspace's plan (tier, monthly invoice limit per integration) and its licence."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row
from sqlalchemy import select as sa_select
from sqlmodel import Session

from intdash.core.config import MAX_MONTHLY_LIMIT
from intdash.core.errors import FieldErrors
from intdash.core.models import Plan
from intdash.core.plans import TIERS, LicenceState, Tier, TierSpec, licence_state

if TYPE_CHECKING:
    from intdash.core.workspace import Workspace

PLAN_ROW = 1
_PLAN = Plan.__table__  # type: ignore[attr-defined]
CURRENT = sa_select(_PLAN).where(_PLAN.c.id == PLAN_ROW)  # built once
UNCHANGED: Any = object()


@dataclass(frozen=True)
class PlanView:
    spec: TierSpec
    monthly_limit: int
    limit_is_default: bool
    licence_expires: date | None
    licence: LicenceState

    @property
    def tier(self) -> Tier:
        return self.spec.tier

    def to_json(self) -> dict[str, Any]:
        return {
            "tier": self.spec.tier.value,
            "label": self.spec.label,
            "frequency": self.spec.frequency,
            "sync_interval_minutes": self.spec.interval_minutes,
            "monthly_invoice_limit": self.monthly_limit,
            "limit_is_default": self.limit_is_default,
            "licence_expires": self.licence_expires.isoformat() if self.licence_expires else None,
            "licence": self.licence.value,
        }


def parse_tier(value: str) -> Tier:
    try:
        return Tier(value.strip().lower())
    except ValueError:
        valid = ", ".join(t.value for t in Tier)
        raise FieldErrors({"tier": f"must be one of {valid}, not {value!r}"}) from None


class PlanService:
    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    def default_limit(self, tier: Tier) -> int:
        limits = self._ws.settings.limits
        return {Tier.STARTER: limits.starter, Tier.GROWTH: limits.growth, Tier.SCALE: limits.scale}[
            tier
        ]

    def view_of(self, row: Plan | Row[Any] | None) -> PlanView:
        tier = Tier(row.tier) if row else Tier.STARTER
        override = row.monthly_limit if row else None
        expires = row.licence_expires if row else None
        return PlanView(
            spec=TIERS[tier],
            monthly_limit=override if override is not None else self.default_limit(tier),
            limit_is_default=override is None,
            licence_expires=expires,
            licence=licence_state(expires, self._ws.clock().date()),
        )

    def current(self, session: Session | None = None) -> PlanView:
        if session is None:
            with self._ws.db.read() as own:
                return self.current(own)
        return self.view_of(session.connection().execute(CURRENT).first())

    def set(
        self,
        tier: Tier | str,
        *,
        monthly_limit: int | None = None,
        licence_expires: date | None = UNCHANGED,
    ) -> PlanView:
        """Change the plan. Without ``monthly_limit`` the tier's default applies; the licence
        expiry is kept unless given (``None`` clears it)."""
        chosen = tier if isinstance(tier, Tier) else parse_tier(tier)
        if monthly_limit is not None and monthly_limit < 0:
            raise FieldErrors({"limit": f"must be zero or more, not {monthly_limit}"})
        if monthly_limit is not None and monthly_limit > MAX_MONTHLY_LIMIT:
            raise FieldErrors({"limit": f"must be at most {MAX_MONTHLY_LIMIT:,}"})
        with self._ws.db.write() as session:
            row = session.get(Plan, PLAN_ROW)
            before = self.view_of(row)
            if row is None:
                row = Plan(id=PLAN_ROW, tier=chosen.value, updated_at=self._ws.clock())
            row.tier = chosen.value
            row.monthly_limit = monthly_limit
            if licence_expires is not UNCHANGED:
                row.licence_expires = licence_expires
            row.updated_at = self._ws.clock()
            session.add(row)
            after = self.view_of(row)
            self._ws.audit.record(
                session,
                "plan.changed",
                detail=(
                    f"{before.tier.value} -> {after.tier.value}, limit {after.monthly_limit}, "
                    f"licence expires {after.licence_expires or 'never'}"
                ),
            )
        self._ws.invoices.release_all()  # a higher limit lets held invoices through now
        if before.tier is not after.tier:
            self._ws.schedule.replan()  # every next sync follows from the new interval
        return after
