"""What the main screen reads at once (a snapshot) and the lines it makes of it: the status
line (the plan, the licence, the month's usage and who schedules syncs), the health views with
their counts, and the selected integration's line under the table."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rich.cells import cell_len
from rich.markup import escape
from rich.text import Text

from intdash.core.plans import LicenceState
from intdash.core.services.integrations import IntegrationView, RunningSync
from intdash.core.services.leases import LeaseInfo
from intdash.core.services.plans import PlanView
from intdash.tui.format import count
from intdash.tui.screens.integrations_table import VIEWS, HealthView


@dataclass(frozen=True)
class Snapshot:
    views: list[IntegrationView]
    plan: PlanView
    scheduler: LeaseInfo | None  # who schedules syncs, if anybody does
    fingerprint: tuple[Any, ...] | None  # None: not taken (the first screenful)
    used: int  # invoices fiscalized this month, all integrations
    complete: bool = True  # False: only the first few views
    running: Mapping[str, RunningSync] = field(default_factory=dict)  # syncs now, by UID
    fiscal: list[str] = field(default_factory=list)  # the certificate, the SDC: warnings


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
    # never colour alone: the sign and the words
    warned = "".join(f" │ [b]⚠ {escape(warning)}[/b]" for warning in snapshot.fiscal)
    if compact:
        return (
            f"[b]{spec.label}[/b], every {spec.interval_minutes} min │ licence {licence}"
            f"{' ' + until if until else ''} │ {count(snapshot.used, short=True)} this month"
            f" │ {f'scheduler: {who}' if who else '[b]no scheduler[/b]'}{warned}"
        )
    return (
        f"Plan [b]{spec.label}[/b] ({spec.frequency}, every {spec.interval_minutes} min, "
        f"{plan.monthly_limit:,}/month each) │ Licence {licence} ({until or 'no expiry'})"
        f" │ {snapshot.used:,} invoices this month │ syncs scheduled by "
        f"{who or '[b]nobody[/b]'}{warned}"
    )


def views_line(counts: Mapping[str, int] | None, current: str, width: int) -> Text:
    """The health views as tabs, each with its number key and count (``counts``: None while
    only the first screenful is read), the ``current`` one in reverse: in the longest words
    that fit ``width``."""

    def tabs(short: bool, pad: str, sep: str, named: bool) -> Text:
        line = Text(no_wrap=True, overflow="ellipsis")
        for n, view in enumerate(VIEWS, start=1):
            if n > 1:
                line.append(sep)
            here = view.key == current
            label = view.short if short else view.label
            number = "" if counts is None else count(counts.get(view.key, 0), short=short)
            words = " ".join(w for w in (label if named or here else "", number) if w)
            style = "reverse bold" if here else ""
            line.append(pad, style)
            line.append(str(n), "bold" if not here else style)
            line.append(f" {words}{pad}", style)
        return line

    line = Text()
    for short, pad, sep, named in (
        (False, " ", " ", True),
        (True, " ", "", True),
        (True, "", " ", True),
        (True, "", " ", False),
    ):
        line = tabs(short, pad, sep, named)
        if cell_len(line.plain) <= width:
            break
    return line


def selection_line(
    view: IntegrationView | None,
    *,
    syncing: str | None,
    shown: HealthView,
    filter_text: str,
) -> Text:
    """The selected integration in full: its UID, its name, its status with the whole reason,
    and the sync running now (``syncing``: how far it has come); with nothing selected, why
    the table is empty."""
    if view is None:
        line = Text(" ".join(w for w in ("Nothing", shown.empty) if w), style="bold")
        if filter_text:
            line.append(f" matches “{filter_text}”", style="bold")
        if shown.key != "all":
            line.append(" · 1 shows every integration")
        return line
    status = view.status
    line = Text.assemble(
        (view.uid, "bold"),
        " · ",
        view.name,
        " · ",
        (f"{status.glyph} {status.word}", "bold green" if status.active else "bold"),
    )
    if status.reason is not None:
        line.append(f": {status.explanation}")
    if syncing is not None:
        line.append(" · ")
        line.append(f"⟳ syncing now, {syncing}", style="bold")
    return line
