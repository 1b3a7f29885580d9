"""The schedule as the database keeps it: each integration's next sync, claimed by whichever
worker finds it due (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so that two never take the same
one; SQLite's single writer serialises the claims), moved to its next slot by every attempt,
brought forward by a platform's webhook event, and derived again when the plan changes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import and_, bindparam, delete, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from intdash.core.catalog import TYPES, IntegrationType, type_spec
from intdash.core.models import Credential, Integration, RunOutcome, SyncRun, WebhookReceipt
from intdash.core.plans import Tier
from intdash.core.schedule import (
    EVENT_DELAY,
    events_received,
    next_due,
    poll_interval,
    slot_after,
)
from intdash.core.services.credentials import OAUTH_TOKEN

if TYPE_CHECKING:
    from intdash.core.services.plans import PlanView
    from intdash.core.workspace import Workspace

RECEIPTS_KEPT = timedelta(days=1)

_SYNCING_TYPES = [t.value for t, spec in TYPES.items() if spec.syncs]
_ROW = Integration.__table__  # type: ignore[attr-defined]
_AUTHORISED = exists().where(
    col(Credential.integration_id) == _ROW.c.id, col(Credential.name) == OAUTH_TOKEN
)
# what a worker may sync: live, enabled, of a platform, authorised and not refused since
SCHEDULED = and_(
    _ROW.c.removed_at.is_(None),
    _ROW.c.sync_enabled.is_(True),
    _ROW.c.type.in_(_SYNCING_TYPES),
    _ROW.c.auth_error.is_(None),
    _AUTHORISED,
)

DUE_OR_UNSET = (
    select(_ROW.c.id)
    .where(SCHEDULED)
    .where(_ROW.c.next_sync_at.is_(None) | (_ROW.c.next_sync_at <= bindparam("now")))
    .limit(1)
)


@dataclass(frozen=True)
class Received:
    """What a platform's delivery of events did."""

    replay: bool = False  # the same body came before: nothing changed
    uids: tuple[str, ...] = ()  # the integrations its events concern
    unknown: tuple[str, ...] = ()  # organisations no integration is connected to
    at_once: bool = False  # their next sync came forward (Scale); else they wait for the slot


@dataclass(frozen=True)
class Claimed:
    """A due sync this worker has claimed (its next sync already moved to the next slot)."""

    id: int
    uid: str


class ScheduleService:
    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    # -- the rule ----------------------------------------------------------------------------

    def interval(self, type_key: str, plan: PlanView | None = None) -> timedelta:
        """How often integrations of this type are polled on the current plan (``plan``, when
        the caller has read it)."""
        ws = self._ws
        spec = type_spec(type_key)
        tier = (plan or ws.plans.current()).spec
        return poll_interval(tier, spec, events=events_received(ws.settings, spec))

    def after(
        self, uid: str, type_key: str, moment: datetime, plan: PlanView | None = None
    ) -> datetime:
        """The integration's first slot after ``moment``: its next sync after an attempt."""
        return slot_after(uid, self.interval(type_key, plan), moment)

    def events_sync_at_once(self, type_key: str) -> bool:
        """Whether the platform's events bring a sync forward (Scale), or wait for the slot."""
        ws = self._ws
        spec = type_spec(type_key)
        return events_received(ws.settings, spec) and ws.plans.current().tier is Tier.SCALE

    # -- workers -----------------------------------------------------------------------------

    def claim_due(self, limit: int) -> list[Claimed]:
        """Claim up to ``limit`` due syncs, oldest due first, moving each one's next sync to
        its next slot in the same transaction (so no other worker takes it)."""
        if limit <= 0:
            return []
        ws = self._ws
        now = ws.clock()
        with ws.db.read() as session:  # most ticks find nothing: no write transaction then
            if session.connection().execute(DUE_OR_UNSET, {"now": now}).first() is None:
                return []
        intervals = {t: self.interval(t) for t in _SYNCING_TYPES}
        with ws.db.write() as session:
            conn = session.connection()
            self._fill(session, now, intervals)
            rows = conn.execute(
                select(_ROW.c.id, _ROW.c.uid, _ROW.c.type)
                .where(SCHEDULED, _ROW.c.next_sync_at <= now)
                .order_by(_ROW.c.next_sync_at, _ROW.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True, of=_ROW)
            ).all()
            if rows:
                conn.execute(
                    update(_ROW)
                    .where(_ROW.c.id == bindparam("rid"))
                    .values(next_sync_at=bindparam("at")),
                    [{"rid": r.id, "at": slot_after(r.uid, intervals[r.type], now)} for r in rows],
                )
        return [Claimed(r.id, r.uid) for r in rows]

    def _fill(self, session: Session, now: datetime, intervals: dict[str, timedelta]) -> None:
        """Store the next sync of scheduled integrations that have none yet (new, or from
        before the schedule was stored): the first slot after the last attempt."""
        conn = session.connection()
        rows = conn.execute(
            select(_ROW.c.id, _ROW.c.uid, _ROW.c.type, _ROW.c.last_attempted_sync)
            .where(SCHEDULED, _ROW.c.next_sync_at.is_(None))
            .with_for_update(skip_locked=True, of=_ROW)
        ).all()
        if rows:
            conn.execute(
                update(_ROW)
                .where(_ROW.c.id == bindparam("rid"))
                .values(next_sync_at=bindparam("at")),
                [
                    {
                        "rid": r.id,
                        "at": next_due(r.uid, intervals[r.type], r.last_attempted_sync, now),
                    }
                    for r in rows
                ],
            )

    def defer(self, integration_id: int, until: datetime) -> None:
        """Look at it again at ``until`` (it was busy, or its platform's day is spent)."""
        with self._ws.db.write() as session:
            session.execute(
                update(Integration)
                .where(col(Integration.id) == integration_id)
                .values(next_sync_at=until)
            )

    def resume(self, run_id: int, integration_id: int) -> bool:
        """A run whose process has stopped: its integration is due now, if the run is still
        recorded running (one that ended meanwhile was no orphan)."""
        ws = self._ws
        with ws.db.write() as session:
            still = session.execute(
                select(col(SyncRun.id)).where(
                    col(SyncRun.id) == run_id, col(SyncRun.outcome) == RunOutcome.RUNNING.value
                )
            ).first()
            if still is None:
                return False
            session.execute(
                update(Integration)
                .where(col(Integration.id) == integration_id)
                .values(next_sync_at=ws.clock())
            )
        return True

    def reschedule(self, session: Session, row: Integration, *, at: datetime | None) -> None:
        """Set when ``row`` syncs next (None: derive it again from its last attempt)."""
        row.next_sync_at = at
        session.add(row)

    def replan(self) -> int:
        """The plan changed: every scheduled integration's next sync follows from its last
        attempt at the new interval (one already due stays due)."""
        ws = self._ws
        now = ws.clock()
        intervals = {t: self.interval(t) for t in _SYNCING_TYPES}
        with ws.db.write() as session:
            conn = session.connection()
            rows = conn.execute(
                select(
                    _ROW.c.id, _ROW.c.uid, _ROW.c.type, _ROW.c.last_attempted_sync,
                    _ROW.c.next_sync_at,
                ).where(_ROW.c.removed_at.is_(None), _ROW.c.type.in_(_SYNCING_TYPES))
            ).all()  # fmt: skip
            changes = []
            for r in rows:
                due = next_due(r.uid, intervals[r.type], r.last_attempted_sync, now)
                if r.next_sync_at is not None and r.next_sync_at <= now:
                    continue  # already due
                if due != r.next_sync_at:
                    changes.append({"rid": r.id, "at": due})
            if changes:
                conn.execute(
                    update(_ROW)
                    .where(_ROW.c.id == bindparam("rid"))
                    .values(next_sync_at=bindparam("at")),
                    changes,
                )
        return len(changes)

    # -- platform events ---------------------------------------------------------------------

    def receive_events(self, type_key: str, body: bytes, remote_ids: Iterable[str]) -> Received:
        """A platform's signed delivery of events about these organisations, in one
        transaction: a body received before is a replay and changes nothing; else the
        integrations the events concern have their next sync brought forward to a moment from
        now on Scale (so that a burst of events makes one sync), or wait for their slot on
        other plans. Says which integrations they concern, and which organisations none."""
        ids = sorted({r.strip().lower() for r in remote_ids if r.strip()})
        ws = self._ws
        now = ws.clock()
        soon = now + EVENT_DELAY
        at_once = self.events_sync_at_once(type_key)
        digest = hashlib.sha256(type_key.encode() + b"\0" + body).hexdigest()
        concerned = and_(
            _ROW.c.type == IntegrationType(type_key).value,
            func.lower(_ROW.c.remote_id).in_(ids),
            _ROW.c.removed_at.is_(None),
        )
        try:
            with ws.db.write() as session:
                if session.get(WebhookReceipt, digest) is not None:
                    return Received(replay=True)
                session.add(WebhookReceipt(digest=digest, source=type_key, received_at=now))
                session.execute(
                    delete(WebhookReceipt).where(
                        col(WebhookReceipt.received_at) < now - RECEIPTS_KEPT
                    )
                )
                conn = session.connection()
                found = conn.execute(select(_ROW.c.uid, _ROW.c.remote_id).where(concerned)).all()
                if found and at_once:
                    conn.execute(
                        update(_ROW)
                        .where(concerned)
                        .where(_ROW.c.next_sync_at.is_(None) | (_ROW.c.next_sync_at > soon))
                        .values(next_sync_at=soon)
                    )
        except IntegrityError:  # the same body, received at once by another worker
            return Received(replay=True)
        known = {str(r.remote_id).lower() for r in found}
        return Received(
            uids=tuple(sorted(r.uid for r in found)),
            unknown=tuple(i for i in ids if i not in known),
            at_once=at_once and bool(found),
        )
