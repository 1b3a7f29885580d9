"""The audit trail: who did what to which integration, and when. Never a secret in it."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlmodel import Session, col, select

from intdash.core.models import AuditEvent

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
        with self._ws.db.read() as session:
            query = select(AuditEvent).order_by(col(AuditEvent.id).desc()).limit(limit)
            if integration_uid is not None:
                query = query.where(AuditEvent.integration_uid == integration_uid)
            return list(session.exec(query))
