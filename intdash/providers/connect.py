"""Connecting an integration to its platform, and using the connection.

A flow is begun (its ``state`` and PKCE verifier live in the flow object only, for as long as it
lasts), completed by the redirected URL (from the loopback callback or pasted by the operator)
or, for Zoho's self client, by a grant code; the token set and tenant go into the vault and the
integration turns Active.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from intdash.core.budget import DailyBudget
from intdash.core.catalog import type_spec
from intdash.core.config import ENV_PREFIX
from intdash.core.errors import ConfigError, ConflictError, IntdashError
from intdash.core.models import Integration
from intdash.core.schedule import HANDOFF
from intdash.core.services.credentials import OAUTH_TOKEN, TENANT_ID
from intdash.providers.api import ApiClient
from intdash.providers.base import Tenant, TokenSet
from intdash.providers.connector import Connector
from intdash.providers.errors import AuthorisationFailed, ProviderError
from intdash.providers.http import httpx
from intdash.providers.ratelimit import RateLimits
from intdash.providers.registry import connector_for
from intdash.providers.tokens import TokenManager

if TYPE_CHECKING:
    from sqlmodel import Session

    from intdash.core.workspace import Workspace

FLOW_LIFETIME = 15 * 60.0


@dataclass
class AuthorisationFlow:
    """One attempt at connecting: the URL to open, and the secrets that check its answer."""

    uid: str
    integration_id: int
    url: str
    redirect_uri: str
    started: float
    state: str = field(repr=False)
    verifier: str | None = field(repr=False)


@dataclass(frozen=True)
class ConnectResult:
    uid: str
    tenant: Tenant


@dataclass(frozen=True)
class ApiParts:
    """What a platform client needs from the vault: the tenant, the type's secret fields, and
    the token set (None when there is none, or the integration needs reconnecting: the client
    then reads it, and says so, as it calls)."""

    tenant: Tenant | None
    secrets: dict[str, str | None]
    token: TokenSet | None

    def __repr__(self) -> str:  # never the secrets nor the token, in a log or a traceback
        return f"ApiParts(tenant={self.tenant!r}, secrets=…, token=…)"


@dataclass(frozen=True)
class TestResult:
    uid: str
    ok: bool
    message: str


class ConnectService:
    def __init__(
        self,
        workspace: Workspace,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        limits: Mapping[str, RateLimits] | None = None,
    ) -> None:
        self._ws = workspace
        self._transport = transport
        self._limits = dict(limits or {})
        self._clock = clock
        self.tokens = TokenManager(workspace, clock=clock)

    def connector(self, type: str) -> Connector:
        return connector_for(
            type, self._ws.settings, transport=self._transport, limits=self._limits.get(type)
        )

    @staticmethod
    def _require_client_id(connector: Connector, type: str) -> None:
        """Without its app's client id a platform refuses any consent: none is begun, and the
        setting to make is named instead."""
        if not connector.settings.client_id.strip():
            raise ConfigError(
                f"{type_spec(type).label}'s OAuth client id is not set: set "
                f"{ENV_PREFIX}{type.upper()}__CLIENT_ID (or client_id in [{type}] of the "
                "settings file)"
            )

    def _integration(self, uid: str) -> Integration:
        with self._ws.db.read() as session:
            row = self._ws.integrations.find_live(session, uid)
        if not type_spec(row.type).oauth:
            raise ConflictError(f"{row.uid} is a {type_spec(row.type).label}: it does not connect")
        return row

    # -- connecting --------------------------------------------------------------------------

    async def begin(self, uid: str) -> AuthorisationFlow:
        row = await asyncio.to_thread(self._integration, uid)
        assert row.id is not None
        connector = self.connector(row.type)
        self._require_client_id(connector, row.type)
        redirect_uri = connector.settings.redirect_uri
        state = self._ws.tokens.token_urlsafe(24)
        verifier = self._ws.tokens.token_urlsafe(48) if connector.pkce else None
        url = await connector.authorization_url(state, verifier, redirect_uri)
        return AuthorisationFlow(row.uid, row.id, url, redirect_uri, self._clock(), state, verifier)

    @staticmethod
    def callback_params(redirected: str) -> dict[str, str]:
        """The query of a redirected URL (a bare query string is accepted too)."""
        text = redirected.strip()
        query = urlsplit(text).query if "://" in text or text.startswith("/") else text.lstrip("?")
        params = dict(parse_qsl(query, keep_blank_values=True))
        if not {"code", "error", "state"} & params.keys():
            raise AuthorisationFailed(
                "that is not the redirected URL: it carries no code, error or state (?code=...)"
            )
        return params

    async def complete(
        self, flow: AuthorisationFlow, redirected: str, *, first_sync_here: bool = False
    ) -> ConnectResult:
        """Finish a flow with the URL the browser was redirected to. ``first_sync_here``: the
        caller runs the first sync at once (see :meth:`_store`)."""
        params = self.callback_params(redirected)
        if not secrets.compare_digest(params.get("state", ""), flow.state):
            raise AuthorisationFailed(
                "the redirected URL's state does not match this attempt: it belongs to another "
                "attempt or was altered; start again"
            )
        if params.get("error"):
            detail = params.get("error_description") or params["error"]
            raise AuthorisationFailed(f"consent was not given: {detail}")
        if not params.get("code"):
            raise AuthorisationFailed("the redirected URL has no authorisation code")
        if self._clock() - flow.started > FLOW_LIFETIME:
            raise AuthorisationFailed("this attempt is over 15 minutes old: start again")
        return await self._finish(
            flow.uid, params["code"], flow.verifier, flow.redirect_uri, params, first_sync_here
        )

    async def complete_with_code(
        self, uid: str, code: str, *, first_sync_here: bool = False
    ) -> ConnectResult:
        """Zoho's self client: a grant code from the API console, no redirect at all."""
        row = await asyncio.to_thread(self._integration, uid)
        connector = self.connector(row.type)
        if not connector.grant_codes:
            raise ConflictError("only Zoho Books takes a self-client grant code")
        self._require_client_id(connector, row.type)
        if not code.strip():
            raise AuthorisationFailed("the grant code is empty")
        return await self._finish(row.uid, code.strip(), None, None, {}, first_sync_here)

    async def _finish(
        self,
        uid: str,
        code: str,
        verifier: str | None,
        redirect_uri: str | None,
        params: dict[str, str],
        first_sync_here: bool = False,
    ) -> ConnectResult:
        row = await asyncio.to_thread(self._integration, uid)
        assert row.id is not None
        connector = self.connector(row.type)
        token = await connector.exchange(code, verifier, redirect_uri, params)
        async with ApiClient(connector, self.tokens, row.id, None, token=token) as api:
            tenant = await connector.find_tenant(api, params, row.settings)
        await asyncio.to_thread(self._store, row.id, connector, token, tenant, first_sync_here)
        return ConnectResult(row.uid, tenant)

    def _store(
        self,
        integration_id: int,
        connector: Connector,
        token: TokenSet,
        tenant: Tenant,
        first_sync_here: bool = False,
    ) -> None:
        ws = self._ws
        with ws.db.write() as session:
            row = session.get(Integration, integration_id)
            assert row is not None
            settings = dict(row.settings)
            for key, value in connector.settings_from_tenant(tenant).items():
                if not settings.get(key):
                    settings[key] = value
            settings["tenant_name"] = tenant.name
            row.settings = settings
            was_broken = row.auth_error
            # a consent that worked: Active at once, whatever its last sync said, and its
            # first sync due now; or, when the one who connected runs it at once, due a minute
            # from now, so that no worker races it (and one takes it if this process dies
            # before starting it)
            row.auth_error = row.last_sync_error = None
            row.remote_id = tenant.id
            now = ws.clock()
            row.next_sync_at = now + HANDOFF if first_sync_here else now
            session.add(row)
            ws.credentials.put(session, integration_id, OAUTH_TOKEN, token.to_json())
            ws.credentials.put(session, integration_id, TENANT_ID, tenant.to_json())
            ws.audit.record(
                session,
                "integration.reconnected" if was_broken else "integration.connected",
                row.uid,
                f"to {tenant.name}",
            )

    # -- using -------------------------------------------------------------------------------

    def parts_in(self, session: Session, row: Integration) -> ApiParts:
        """What a client for ``row``'s platform needs from the vault, read in ``session`` in one
        look-up: its tenant, its type's secret fields, and its token set."""
        assert row.id is not None
        secret_fields = [f.name for f in type_spec(row.type).fields if f.secret]
        stored = self._ws.credentials.get_many(
            session, row.id, [TENANT_ID, OAUTH_TOKEN, *secret_fields]
        )
        tenant = stored.get(TENANT_ID)
        token = stored.get(OAUTH_TOKEN)
        return ApiParts(
            Tenant.from_json(tenant.value) if tenant else None,
            {name: kept.value if (kept := stored.get(name)) else None for name in secret_fields},
            TokenSet.from_json(token.value) if token and not row.auth_error else None,
        )

    def client_for(self, row: Integration, parts: ApiParts) -> ApiClient:
        """A client for the integration's platform API (use it with ``async with``)."""
        assert row.id is not None
        connector = self.connector(row.type)
        tenant = parts.tenant
        extra = connector.tenant_extra(row.settings, parts.secrets)
        if tenant is not None and extra:
            tenant = Tenant(tenant.id, tenant.name, {**tenant.extra, **extra})
        return ApiClient(
            connector, self.tokens, row.id, tenant, stored=parts.token, now=self._ws.clock
        )

    def _api_parts(self, uid: str) -> tuple[Integration, ApiParts]:
        ws = self._ws
        with ws.db.read() as session:
            row = ws.integrations.find_live(session, uid)
            return row, self.parts_in(session, row)

    async def api(self, uid: str) -> ApiClient:
        """A client for the integration's platform API (use it with ``async with``)."""
        row, parts = await asyncio.to_thread(self._api_parts, uid)
        return self.client_for(row, parts)

    async def test(self, uid: str) -> TestResult:
        """The cheapest call that proves the connection works, and what it said."""
        api: ApiClient | None = None
        try:
            async with await self.api(uid) as api:
                message = await api.connector.test(api)
        except (ProviderError, AuthorisationFailed) as exc:
            return TestResult(uid, False, str(exc))
        except IntdashError:
            raise
        finally:
            if api is not None and api.daily is not None:
                await asyncio.to_thread(self.keep_daily, api.integration_id, api.daily)
        return TestResult(uid, True, message)

    def keep_daily(self, integration_id: int, budget: DailyBudget) -> None:
        """Keep what the platform said is left of today's calls, for every process to see."""
        with self._ws.db.write() as session:
            row = session.get(Integration, integration_id)
            if row is not None:
                budget.store(row)
                session.add(row)
