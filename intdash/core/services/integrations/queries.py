"""The reads behind every listing and every change the dashboard sees, built once with their
parameters bound at each call: building a statement costs more than running it here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import BindParameter, Row, bindparam, exists, func, true
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from intdash.core.models import (
    ApiKey,
    AuditEvent,
    Integration,
    Invoice,
    Lease,
    MonthlyUsage,
    RunOutcome,
    SyncRun,
)

INTEGRATIONS = Integration.__table__  # type: ignore[attr-defined]
KEYS = ApiKey.__table__  # type: ignore[attr-defined]
USAGE = MonthlyUsage.__table__  # type: ignore[attr-defined]
RUNS = SyncRun.__table__  # type: ignore[attr-defined]

_LIVE = INTEGRATIONS.c.removed_at.is_(None)
EVERY_ROW = sa_select(INTEGRATIONS).order_by(INTEGRATIONS.c.id)
LIVE_ROWS = EVERY_ROW.where(_LIVE)
FIRST_LIVE_ROWS = (
    sa_select(INTEGRATIONS).where(_LIVE).order_by(INTEGRATIONS.c.uid).limit(bindparam("first"))
)
_OF_IDS: BindParameter[int] = bindparam("ids", expanding=True)
USAGE_IN_MONTH = sa_select(USAGE.c.integration_id, USAGE.c.fiscalized).where(
    USAGE.c.month == bindparam("month")
)
USAGE_OF = USAGE_IN_MONTH.where(USAGE.c.integration_id.in_(_OF_IDS))
LIVE_KEYS = (
    sa_select(KEYS.c.integration_id, func.count())
    .where(KEYS.c.revoked_at.is_(None))
    .group_by(KEYS.c.integration_id)
)
LIVE_KEYS_OF = LIVE_KEYS.where(KEYS.c.integration_id.in_(_OF_IDS))
_NEWER = RUNS.alias("newer")
# the runs going on now, in any process: not ended (an index look-up: few runs ever are), and
# no later run of their integration (a run left running by a process that stopped is ended by
# the next one, or by a worker's tick)
_RUNNING = (
    sa_select(RUNS.c.integration_id, RUNS.c.started_at, RUNS.c.fetched)
    .where(
        RUNS.c.ended_at.is_(None),
        RUNS.c.outcome == RunOutcome.RUNNING.value,
        ~exists().where(
            _NEWER.c.integration_id == RUNS.c.integration_id,
            _NEWER.c.started_at >= RUNS.c.started_at,
            _NEWER.c.id > RUNS.c.id,
        ),
    )
    .subquery()
)
MONTH_TOTAL = sa_select(func.coalesce(func.sum(USAGE.c.fiscalized), 0).label("total")).where(
    USAGE.c.month == bindparam("month")
)
# both in one statement (a statement costs more to build than to run here): the month's total
# on every row, one row with no run when none runs
_TOTAL = MONTH_TOTAL.subquery()
MONTH_AND_RUNNING = sa_select(
    _TOTAL.c.total, _RUNNING.c.integration_id, _RUNNING.c.started_at, _RUNNING.c.fetched
).select_from(_TOTAL.outerjoin(_RUNNING, true()))
FINGERPRINT = sa_select(
    sa_select(func.max(col(AuditEvent.id))).scalar_subquery(),
    sa_select(func.max(col(SyncRun.id))).scalar_subquery(),
    sa_select(func.max(col(SyncRun.ended_at))).scalar_subquery(),
    sa_select(func.max(col(Invoice.id))).scalar_subquery(),
    sa_select(func.max(col(Integration.invoices_changed_at))).scalar_subquery(),
    sa_select(func.max(col(Integration.last_attempted_sync))).scalar_subquery(),  # deliveries
    sa_select(func.max(col(Lease.expires_at))).scalar_subquery(),
)
IN_LIST_MAX = 500  # more ids than this: read every row and pick, rather than list them all


def listable(ids: Sequence[int]) -> bool:
    """Whether ``ids`` are few enough to name in an IN list (else every row is read)."""
    return len(ids) <= IN_LIST_MAX


def integration_rows(
    session: Session, *, include_removed: bool = False, first: int | None = None
) -> list[Row[Any]]:
    """Rows of the table, not ORM objects: views are all they make, at a fraction of the
    cost (10,000 of them are read on every change the dashboard sees). ``first``: only the
    first few live ones by UID (what a screen shows while it reads the rest)."""
    if first is not None:
        return list(session.connection().execute(FIRST_LIVE_ROWS, {"first": first}))
    query = EVERY_ROW if include_removed else LIVE_ROWS
    return list(session.connection().execute(query))


def fingerprint(session: Session) -> tuple[Any, ...]:
    """Something that changes whenever anything an operator sees changes, from any process,
    at the cost of a few index look-ups."""
    return tuple(session.connection().execute(FINGERPRINT).one())


def usage_in_month(session: Session, month: date, ids: list[int]) -> dict[int, int]:
    """Invoices each of ``ids`` fiscalized in ``month``."""
    query = USAGE_OF if listable(ids) else USAGE_IN_MONTH
    found = session.connection().execute(query, {"month": month, "ids": ids})
    return {int(i): int(n) for i, n in found}


def month_total(session: Session, month: date) -> int:
    """Invoices fiscalized in ``month`` across every integration."""
    return int(session.connection().execute(MONTH_TOTAL, {"month": month}).scalar_one())


def month_and_running(session: Session, month: date) -> tuple[int, dict[int, tuple[datetime, int]]]:
    """Invoices fiscalized in ``month`` across every integration; and the syncs running now, in
    any process, by integration id: when each started and the invoices its committed pages
    fetched."""
    found = list(session.connection().execute(MONTH_AND_RUNNING, {"month": month}))
    running = {int(i): (started, int(fetched)) for _, i, started, fetched in found if i is not None}
    return int(found[0][0]), running


def live_keys(session: Session, ids: list[int]) -> dict[int, int]:
    """Live (unrevoked) API keys of each of ``ids``."""
    query = LIVE_KEYS_OF if listable(ids) else LIVE_KEYS
    return {int(i): int(n) for i, n in session.connection().execute(query, {"ids": ids})}
