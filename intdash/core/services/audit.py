"""The audit trail: who did what to which integration, and when. Never a secret in it."""

from __future__ import annotations

import builtins
import logging
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, and_, func
from sqlmodel import Session, col, select

from intdash.core.models import AuditEvent, Integration
from intdash.core.services.invoices.listing import integration_has, like

if TYPE_CHECKING:
    from intdash.core.workspace import Workspace

log = logging.getLogger("intdash.audit")


class AuditService:
    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    def record(
        self,
        session: Session,
        action: str,
        integration_uid: str | None = None,
        detail: str | None = None,
    ) -> AuditEvent:
        """Add an event to the caller's transaction, so it commits with the change it records."""
        event = AuditEvent(
            at=self._ws.clock(),
            actor=self._ws.actor,
            action=action,
            integration_uid=integration_uid,
            detail=detail,
        )
        session.add(event)
        log.info(
            "%s by %s%s%s",
            action,
            self._ws.actor,
            f" on {integration_uid}" if integration_uid else "",
            f": {detail}" if detail else "",
        )
        return event

    def list(self, integration_uid: str | None = None, limit: int = 100) -> list[AuditEvent]:
        """The newest events first."""
        return self.page(integration_uid=integration_uid, limit=limit)

    def page(
        self,
        *,
        integration_uid: str | None = None,
        before_id: int | None = None,
        limit: int = 100,
        search: str | None = None,
    ) -> builtins.list[AuditEvent]:
        """Events newest first, a page at a time (keyset: pass the last id as ``before_id``):
        one integration's, or every one's; ``search``: see :func:`matching`."""
        query = select(AuditEvent).order_by(col(AuditEvent.id).desc()).limit(limit)
        if before_id is not None:
            query = query.where(col(AuditEvent.id) < before_id)
        for condition in _conditions(integration_uid, search):
            query = query.where(condition)
        with self._ws.db.read() as session:
            return list(session.exec(query))

    def count(
        self,
        *,
        integration_uid: str | None = None,
        search: str | None = None,
        through_id: int | None = None,
    ) -> int:
        """How many events :meth:`page` lists for the same arguments (those up to
        ``through_id``, when given: the first page's first)."""
        query = select(func.count()).select_from(AuditEvent)
        if through_id is not None:
            query = query.where(col(AuditEvent.id) <= through_id)
        for condition in _conditions(integration_uid, search):
            query = query.where(condition)
        with self._ws.db.read() as session:
            return int(session.exec(query).one())


def _conditions(integration_uid: str | None, search: str | None) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if integration_uid is not None:
        conditions.append(col(AuditEvent.integration_uid) == integration_uid)
    words = (search or "").split()
    if words:
        conditions.append(matching(words))
    return conditions


def matching(words: list[str]) -> ColumnElement[bool]:
    """Events that have every one of ``words`` (any case) in who, what or the detail, or in
    their integration's UID, name or type."""
    per_word = []
    for word in words:
        pattern = like(word)
        named = select(col(Integration.uid)).where(integration_has(word))
        per_word.append(
            col(AuditEvent.actor).ilike(pattern, escape="\\")
            | col(AuditEvent.action).ilike(pattern, escape="\\")
            | col(AuditEvent.detail).ilike(pattern, escape="\\")
            | col(AuditEvent.integration_uid).ilike(pattern, escape="\\")
            | col(AuditEvent.integration_uid).in_(named)
        )
    return and_(*per_word)
