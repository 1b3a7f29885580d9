"""The database side of a sync's run, each step one transaction, its statements built once.

A sync that finds nothing new is what the scheduler does thousands of times an hour, so it
costs one read (the integration, the plan and its credentials) and two writes: the start (its
claim, the run, its next slot) and the end (the run's outcome, the cursor of an empty last page,
the claim given back). A page with invoices is one more write: the page, its cursor, the run's
totals, the claim extended, and whether someone asked the run to stop.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    Connection,
    Update,
    bindparam,
    case,
    insert,
    or_,
    text,
    update,
)

from intdash.core.budget import DailyBudget
from intdash.core.models import Integration, RunOutcome, SyncRun
from intdash.core.services.leases import DROP, GIVE_BACK, GIVE_BACK_AND_DROP
from intdash.core.services.plans import PlanView
from intdash.providers.connect import ApiParts

_RUNS = SyncRun.__table__  # type: ignore[attr-defined]
_INTEGRATIONS = Integration.__table__  # type: ignore[attr-defined]
_ID: BindParameter[int] = bindparam("b_id")

# a run left 'running' holds no claim any more: its process stopped (the outcome written out,
# not bound, so that the index of the running runs serves it: ix_sync_runs_running)
INTERRUPT = (
    update(_RUNS)
    .where(_RUNS.c.integration_id == _ID, text(f"outcome = '{RunOutcome.RUNNING.value}'"))
    .values(
        outcome=RunOutcome.INTERRUPTED.value, ended_at=bindparam("b_now"), error=bindparam("b_why")
    )
)
START = insert(_RUNS).values(
    integration_id=_ID,
    trigger=bindparam("b_trigger"),
    started_at=bindparam("b_now"),
    outcome=RunOutcome.RUNNING.value,
    fetched=0,
    created=0,
    updated=0,
    held=0,
)
# the run's start on the integration, and where the run starts from as its claim stands (a run
# that held the claim until a moment ago has moved the cursor since the integration was read)
ATTEMPTED = (
    update(_INTEGRATIONS)
    .where(_INTEGRATIONS.c.id == _ID)
    .values(last_attempted_sync=bindparam("b_now"), next_sync_at=bindparam("b_next"))
    .returning(_INTEGRATIONS.c.cursor, _INTEGRATIONS.c.sync_from, _INTEGRATIONS.c.remote_id)
)
PROGRESS = (
    update(_RUNS)
    .where(_RUNS.c.id == _ID)
    .values(
        fetched=bindparam("b_fetched"),
        created=bindparam("b_created"),
        updated=bindparam("b_updated"),
        held=bindparam("b_held"),
    )
)
END = (
    update(_RUNS)
    .where(_RUNS.c.id == _ID)
    .values(outcome=bindparam("b_outcome"), ended_at=bindparam("b_now"), error=bindparam("b_error"))
)
CURSOR = update(_INTEGRATIONS).where(_INTEGRATIONS.c.id == _ID).values(cursor=bindparam("b_cursor"))
_I = _INTEGRATIONS.c
# what the platform said is left of today's calls, unless a later figure is there already
_LATER_KEPT = or_(_I.daily_observed_at.is_(None), _I.daily_observed_at <= bindparam("b_observed"))


def _daily(column: Any, value: BindParameter[Any]) -> Any:
    return case((_LATER_KEPT, value), else_=column)


DAILY = (
    update(_INTEGRATIONS)
    .where(_I.id == _ID)
    .values(
        daily_remaining=_daily(_I.daily_remaining, bindparam("b_remaining")),
        daily_observed_at=_daily(_I.daily_observed_at, bindparam("b_observed")),
        daily_resets_at=_daily(_I.daily_resets_at, bindparam("b_resets")),
    )
)


def ended(
    conn: Connection,
    integration_id: int,
    now: datetime,
    *,
    ok: bool,
    error: str | None,
    cursor: Pending | None,
    daily: DailyBudget | None,
) -> None:
    """The integration's side of a run's end, one statement: its last success (or, when
    ``error`` is given, the error shown), an empty last page's cursor, today's calls."""
    params: dict[str, Any] = {"b_id": integration_id}
    if ok:
        params["b_now"] = now
    elif error is not None:
        params["b_error"] = error
    if cursor is not None:
        params["b_cursor"] = cursor.value
    if daily is not None:
        params.update(_daily_params(daily))
    statement = _ended(ok, error is not None, cursor is not None, daily is not None)
    if statement is not None:
        conn.execute(statement, params)


@functools.cache
def _ended(ok: bool, error: bool, cursor: bool, daily: bool) -> Update | None:
    """:func:`ended`'s statement for what it writes, built once (a run's end is on the path of
    every sync, and building a statement costs more than running it)."""
    values: dict[str, Any] = {}
    if ok:
        values.update(last_successful_sync=bindparam("b_now"), last_sync_error=None)
    elif error:
        values["last_sync_error"] = bindparam("b_error")
    if cursor:
        values["cursor"] = bindparam("b_cursor")
    if daily:
        values.update(
            daily_remaining=_daily(_I.daily_remaining, bindparam("b_remaining")),
            daily_observed_at=_daily(_I.daily_observed_at, bindparam("b_observed")),
            daily_resets_at=_daily(_I.daily_resets_at, bindparam("b_resets")),
        )
    return update(_INTEGRATIONS).where(_I.id == _ID).values(values) if values else None


def _daily_params(daily: DailyBudget) -> dict[str, Any]:
    return {
        "b_remaining": daily.remaining,
        "b_observed": daily.observed_at,
        "b_resets": daily.resets_at,
    }


@dataclass(frozen=True)
class Pending:
    """The cursor of an empty page, stored with the run's end (there is nothing to store
    with it before)."""

    value: str | None


@dataclass(frozen=True)
class Begun:
    """A run that has its claim: the integration as read, the run's id, and what it read."""

    row: Integration
    run_id: int
    plan: PlanView
    parts: ApiParts


def store_daily(conn: Connection, integration_id: int, daily: DailyBudget | None) -> None:
    if daily is not None:
        conn.execute(DAILY, {"b_id": integration_id, **_daily_params(daily)})


def give_back(conn: Connection, claim: str, holder: str, cancel: str | None) -> bool:
    """Release ``holder``'s lease ``claim`` (and drop the lease ``cancel``, a request to stop,
    when named); False when the claim is not (any longer) its."""
    params = {"b_claim": claim, "b_holder": holder, "b_cancel": cancel}
    statement = GIVE_BACK if cancel is None else GIVE_BACK_AND_DROP
    return claim in conn.execute(statement, params).scalars().all()


def drop(conn: Connection, name: str) -> None:
    conn.execute(DROP, {"b_name": name})


def start(
    conn: Connection, integration_id: int, trigger: str, now: datetime, next_at: datetime, why: str
) -> tuple[int, Any]:
    """Record the run's start (and any earlier run of it left running as interrupted); its id,
    and where it starts from (the cursor, the sync-from date, the remote id)."""
    conn.execute(INTERRUPT, {"b_id": integration_id, "b_now": now, "b_why": why})
    run_id = conn.execute(
        START, {"b_id": integration_id, "b_trigger": trigger, "b_now": now}
    ).inserted_primary_key
    fresh = conn.execute(ATTEMPTED, {"b_id": integration_id, "b_now": now, "b_next": next_at})
    assert run_id is not None
    return int(run_id[0]), fresh.one()
