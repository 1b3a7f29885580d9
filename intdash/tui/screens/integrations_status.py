"""What the main screen reads at once (a snapshot) and the status line it makes of it: the
plan, the licence, the month's usage and who schedules syncs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from intdash.core.plans import LicenceState
from intdash.core.services.integrations import IntegrationView
from intdash.core.services.leases import LeaseInfo
from intdash.core.services.plans import PlanView
from intdash.tui.format import count


@dataclass(frozen=True)
class Snapshot:
    views: list[IntegrationView]
    plan: PlanView
    scheduler: LeaseInfo | None  # who schedules syncs, if anybody does
    fingerprint: tuple[Any, ...] | None  # None: not taken (the first screenful)
    used: int  # invoices fiscalized this month, all integrations
    complete: bool = True  # False: only the first few views


def status_line(snapshot: Snapshot, *, scheduler: Any, compact: bool) -> str:
    """The plan, the licence, the month's usage and who schedules syncs (``scheduler``: this
    process's own, if it has one); shorter where the screen is narrow (the monthly limit is in
    every row's Month column there)."""
    plan, holder = snapshot.plan, snapshot.scheduler
    lapsed = plan.licence is LicenceState.LAPSED
    licence = f"[b]{'LAPSED' if lapsed else plan.licence.value}[/b]"
    if holder is None:
        who = None
    elif scheduler is not None and holder.holder == scheduler.holder:
        who = "this dashboard"
    else:
        process = holder.process
        who = f"{process.host} pid {process.pid}" if process is not None else holder.holder
    spec, ends = plan.spec, plan.licence_expires
    until = f"{'expired' if lapsed else 'to'} {ends.isoformat()}" if ends else ""
    if compact:
        return (
            f"[b]{spec.label}[/b], every {spec.interval_minutes} min │ licence {licence}"
            f"{' ' + until if until else ''} │ {count(snapshot.used, short=True)} this month"
            f" │ {f'scheduler: {who}' if who else '[b]no scheduler[/b]'}"
        )
    return (
        f"Plan [b]{spec.label}[/b] ({spec.frequency}, every {spec.interval_minutes} min, "
        f"{plan.monthly_limit:,}/month each) │ Licence {licence} ({until or 'no expiry'})"
        f" │ {snapshot.used:,} invoices this month │ syncs scheduled by "
        f"{who or '[b]nobody[/b]'}"
    )
