"""Leases: named claims with an expiry, shared by every process on the database.

A holder takes a lease when it is free or expired, renews it while it works, and releases it
when done; if the holder dies, the lease expires and another may take it.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, delete, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from intdash.core.models import Lease

if TYPE_CHECKING:
    from intdash.core.workspace import Workspace


_LEASES = Lease.__table__  # type: ignore[attr-defined]
BY_NAME = select(_LEASES).where(_LEASES.c.name == bindparam("name"))  # built once


def process_identity() -> str:
    """Who this process is, for leases and for the operator: host, pid and a random tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass(frozen=True)
class LeaseInfo:
    name: str
    holder: str
    acquired_at: datetime
    expires_at: datetime


class LeaseService:
    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    def acquire(self, name: str, holder: str, ttl: timedelta) -> bool:
        """Take (or, for its holder, renew) the lease; False when someone else holds it."""
        now = self._ws.clock()
        try:
            with self._ws.db.write() as session:
                row = session.get(Lease, name, with_for_update=not self._ws.db.is_sqlite)
                if row is None:
                    session.add(
                        Lease(name=name, holder=holder, acquired_at=now, expires_at=now + ttl)
                    )
                    return True
                if row.holder != holder and row.expires_at > now:
                    return False
                if row.holder != holder:
                    row.holder, row.acquired_at = holder, now
                row.expires_at = now + ttl
                session.add(row)
                return True
        except IntegrityError:  # another process inserted it first
            return False

    def release(self, name: str, holder: str) -> None:
        with self._ws.db.write() as session:
            session.execute(
                delete(Lease).where(col(Lease.name) == name, col(Lease.holder) == holder)
            )

    def current(self, name: str, session: Session | None = None) -> LeaseInfo | None:
        """The live lease of that name, if any (read in ``session`` when given)."""
        if session is None:
            with self._ws.db.read() as own:
                return self.current(name, own)
        row = session.connection().execute(BY_NAME, {"name": name}).first()
        if row is None or row.expires_at <= self._ws.clock():
            return None
        return LeaseInfo(row.name, row.holder, row.acquired_at, row.expires_at)
