"""Token sets: read from the vault, refreshed once, shared by everything that needs them.

A refresh is single-flight: within a process, one task per integration refreshes while the
others wait for its result; across processes, a lease on the database makes every other process
wait, re-read the stored token, and use the one the winner stored. The new token set (with a
rotated refresh token) is committed before its access token is used. A refusal
(``invalid_grant``) marks the integration "reconnect needed" and is never retried.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from intdash.core.services.credentials import OAUTH_TOKEN, TENANT_ID
from intdash.core.services.leases import process_identity
from intdash.providers.base import Tenant, TokenSet
from intdash.providers.errors import NotAuthorised, ProviderTimeout, ReconnectNeeded

if TYPE_CHECKING:
    from intdash.core.workspace import Workspace
    from intdash.providers.connector import Connector

LEASE_TTL = timedelta(seconds=60)
LEASE_WAIT = 45.0  # how long to wait for another process's refresh

_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def _lock(integration_id: int) -> asyncio.Lock:
    """The process's lock for one integration's token, on the running loop."""
    per_loop = _locks.setdefault(asyncio.get_running_loop(), {})
    return per_loop.setdefault(integration_id, asyncio.Lock())


class TokenManager:
    def __init__(
        self,
        workspace: Workspace,
        *,
        clock: Callable[[], float] = time.time,
        poll: float = 0.05,
    ) -> None:
        self._ws = workspace
        self._clock = clock
        self._poll = poll
        self.holder = f"{process_identity()}:{id(self):x}"

    # -- storage (blocking; called through a thread) -----------------------------------------

    def _read(self, integration_id: int) -> tuple[TokenSet | None, str | None, str]:
        ws = self._ws
        with ws.db.read() as session:
            from intdash.core.models import Integration

            row = session.get(Integration, integration_id)
            if row is None:
                raise NotAuthorised(f"integration {integration_id} does not exist")
            stored = ws.credentials.get(session, integration_id, OAUTH_TOKEN)
        token = TokenSet.from_json(stored.value) if stored else None
        return token, row.auth_error, row.uid

    def _write(self, integration_id: int, token: TokenSet) -> None:
        with self._ws.db.write() as session:
            self._ws.credentials.put(session, integration_id, OAUTH_TOKEN, token.to_json())

    def _mark_reconnect(self, integration_id: int, reason: str) -> None:
        ws = self._ws
        from intdash.core.models import Integration

        with ws.db.write() as session:
            row = session.get(Integration, integration_id)
            if row is None or row.auth_error:
                return
            row.auth_error = reason
            session.add(row)
            ws.audit.record(session, "integration.reconnect_needed", row.uid, reason)

    def tenant(self, integration_id: int) -> Tenant | None:
        with self._ws.db.read() as session:
            stored = self._ws.credentials.get(session, integration_id, TENANT_ID)
        return Tenant.from_json(stored.value) if stored else None

    # -- use ---------------------------------------------------------------------------------

    async def current(self, integration_id: int) -> TokenSet:
        """The stored token set, as it is; an error when there is none to use."""
        token, auth_error, uid = await asyncio.to_thread(self._read, integration_id)
        if auth_error:
            raise ReconnectNeeded(f"{uid}: {auth_error}")
        if token is None:
            raise NotAuthorised(f"{uid} has not been connected yet: connect it first")
        return token

    def usable(self, token: TokenSet) -> bool:
        """Whether ``token``'s access token is good for at least the leeway."""
        return not token.expiring(self._clock())

    async def valid(self, connector: Connector, integration_id: int) -> TokenSet:
        """A token set whose access token is good for at least the leeway."""
        token = await self.current(integration_id)
        if not token.expiring(self._clock()):
            return token
        return await self.refresh(connector, integration_id, token)

    async def refresh(self, connector: Connector, integration_id: int, stale: TokenSet) -> TokenSet:
        """Replace ``stale`` (unless someone already has) and return the token set to use."""
        async with _lock(integration_id):
            current = await self.current(integration_id)
            if self._replaced(current, stale):
                return current
            name = f"token-refresh:{integration_id}"
            leases = self._ws.leases
            deadline = self._clock() + LEASE_WAIT
            while not await asyncio.to_thread(leases.acquire, name, self.holder, LEASE_TTL):
                if self._clock() > deadline:
                    raise ProviderTimeout("another process has been refreshing this token too long")
                await asyncio.sleep(self._poll)
            try:
                current = await self.current(integration_id)  # as stored now, under the lease
                if self._replaced(current, stale):
                    return current
                try:
                    fresh = await connector.refresh(current)
                except ReconnectNeeded as exc:
                    await asyncio.to_thread(self._mark_reconnect, integration_id, str(exc))
                    raise
                await asyncio.to_thread(self._write, integration_id, fresh)
                return fresh
            finally:
                await asyncio.to_thread(leases.release, name, self.holder)

    def _replaced(self, current: TokenSet, stale: TokenSet) -> bool:
        """Someone else has refreshed since ``stale`` was read."""
        return current.access_token != stale.access_token and not current.expiring(self._clock())
