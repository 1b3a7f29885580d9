"""The connector protocol, and the OAuth calls every platform makes through authlib."""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from authlib.common.errors import AuthlibBaseError
from authlib.integrations.httpx_client import AsyncOAuth2Client

from intdash.core.catalog import IntegrationType
from intdash.core.clock import next_utc_midnight
from intdash.core.config import OAuthAppSettings
from intdash.providers.base import InvoicePage, Tenant, TokenSet
from intdash.providers.errors import (
    AuthorisationFailed,
    MalformedResponse,
    ProviderTimeout,
    ProviderUnavailable,
    ReconnectNeeded,
    TokenThrottled,
)
from intdash.providers.http import httpx
from intdash.providers.ratelimit import RateLimits

if TYPE_CHECKING:
    from intdash.providers.api import ApiClient

TIMEOUT = httpx.Timeout(30.0, connect=10.0)


@dataclass(frozen=True)
class RateProblem:
    """A platform's answer that says a rate limit was met."""

    retry_after: float
    daily: bool = False


def parse_json(response: httpx.Response, what: str) -> Any:
    """The JSON body (numbers as Decimal), or a typed error naming what was expected."""
    try:
        return json.loads(response.content, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        raise MalformedResponse(
            f"{what}: the answer is not valid JSON (HTTP {response.status_code})"
        ) from None


def member(raw: Mapping[str, Any], key: str) -> dict[str, Any]:
    """A nested object of a platform's record, or an empty one when it is missing or not one."""
    value = raw.get(key)
    return value if isinstance(value, dict) else {}


class Connector(ABC):
    """One platform: its OAuth details, its tenant, its invoices."""

    type: ClassVar[IntegrationType]
    label: ClassVar[str]
    scope: ClassVar[str]
    pkce: ClassVar[bool] = False
    grant_codes: ClassVar[bool] = False  # takes a code made in its console (Zoho's self client)
    auth_method: ClassVar[str] = "client_secret_post"
    default_limits: ClassVar[RateLimits]

    def __init__(
        self,
        settings: OAuthAppSettings,
        *,
        limits: RateLimits | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.limits = limits or self.default_limits
        self.timeout: httpx.Timeout = TIMEOUT
        self.transport = transport
        self.clock = clock

    # -- OAuth -------------------------------------------------------------------------------

    @property
    @abstractmethod
    def authorize_url(self) -> str: ...

    @abstractmethod
    def token_url(self, token: TokenSet | None = None) -> str:
        """Where to exchange codes and refresh (Zoho: the accounts server of the consent)."""

    def authorize_params(self) -> dict[str, str]:
        """Extra parameters of the consent request."""
        return {}

    def oauth_client(self, redirect_uri: str | None = None) -> AsyncOAuth2Client:
        secret = self.settings.client_secret.get_secret_value() or None
        method = self.auth_method if secret else "none"
        return AsyncOAuth2Client(
            client_id=self.settings.client_id,
            client_secret=secret,
            scope=self.scope,
            redirect_uri=redirect_uri,
            token_endpoint_auth_method=method,
            code_challenge_method="S256" if self.pkce else None,
            timeout=self.timeout,
            transport=self.transport,
        )

    async def authorization_url(self, state: str, verifier: str | None, redirect_uri: str) -> str:
        async with self.oauth_client(redirect_uri) as client:
            url, _ = client.create_authorization_url(
                self.authorize_url,
                state=state,
                code_verifier=verifier if self.pkce else None,
                **self.authorize_params(),
            )
        return str(url)

    def token_extra(self, callback: Mapping[str, str], token: Mapping[str, Any]) -> dict[str, str]:
        """What of the consent redirect and the token answer to keep with the token set."""
        return {}

    async def exchange(
        self,
        code: str,
        verifier: str | None,
        redirect_uri: str | None,
        callback: Mapping[str, str],
    ) -> TokenSet:
        """Trade an authorisation code for a token set."""
        token_url = self.exchange_url(callback)
        params: dict[str, Any] = {"code": code}
        if self.pkce and verifier:
            params["code_verifier"] = verifier
        try:
            async with self.oauth_client(redirect_uri) as client:
                token = await client.fetch_token(
                    token_url, grant_type="authorization_code", **params
                )
        except AuthlibBaseError as exc:
            raise AuthorisationFailed(
                f"{self.label} refused the authorisation code: {exc.error}"
                + (f" ({exc.description})" if getattr(exc, "description", None) else "")
            ) from None
        except httpx.TimeoutException:
            raise ProviderTimeout(f"{self.label}'s token endpoint did not answer in time") from None
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"{self.label}'s token endpoint failed: {exc}") from None
        return TokenSet.from_grant(token, self.clock(), extra=self.token_extra(callback, token))

    def exchange_url(self, callback: Mapping[str, str]) -> str:
        return self.token_url()

    async def refresh(self, token: TokenSet) -> TokenSet:
        """A new token set from the refresh token (which some platforms rotate)."""
        if not token.refresh_token:
            raise ReconnectNeeded(f"{self.label} gave no refresh token: reconnect")
        try:
            async with self.oauth_client() as client:
                answer = await client.refresh_token(
                    self.token_url(token), refresh_token=token.refresh_token
                )
        except AuthlibBaseError as exc:
            error = str(getattr(exc, "error", "") or "")
            if error == "Access Denied":
                raise TokenThrottled(
                    f"{self.label} is throttling token requests: try again in a few minutes"
                ) from None
            if error in ("invalid_grant", "invalid_client", "unauthorized_client"):
                raise ReconnectNeeded(
                    f"{self.label} refused the stored authorisation ({error}): reconnect"
                ) from None
            raise ProviderUnavailable(f"{self.label}'s token refresh failed: {error}") from None
        except httpx.TimeoutException:
            raise ProviderTimeout(f"{self.label}'s token endpoint did not answer in time") from None
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"{self.label}'s token refresh failed: {exc}") from None
        return TokenSet.from_grant(answer, self.clock(), previous=token)

    # -- API ---------------------------------------------------------------------------------

    @abstractmethod
    def auth_headers(self, token: TokenSet, tenant: Tenant | None) -> dict[str, str]:
        """Headers that authenticate an API call."""

    @abstractmethod
    def rate_problem(self, response: httpx.Response) -> RateProblem | None:
        """Whether this answer says a rate limit was met, and for how long."""

    def remaining_calls(self, response: httpx.Response) -> int | None:
        """What the platform says is left of its window, if it says."""
        return None

    def reset_after(self, response: httpx.Response) -> float | None:
        """In how many seconds the window of :meth:`remaining_calls` frees a call, if the
        platform says (Zoho's ``X-Rate-Limit-Reset``)."""
        return None

    def pacer_key(self, tenant_id: str) -> str:
        """Whose allowance a call to ``tenant_id`` spends: calls with one key share one pacer.
        The tenant's own, unless the platform counts calls per API key (MYOB)."""
        return tenant_id

    def daily_remaining(self, response: httpx.Response) -> int | None:
        """What the platform says is left of the tenant's daily allowance of calls, if it says
        (kept with the integration: see :mod:`intdash.core.budget`)."""
        return None

    def daily_resets_at(self, observed: datetime) -> datetime:
        """When the daily allowance seen at ``observed`` starts again: the one place that says
        (by default, as on Xero, at the next midnight UTC)."""
        return next_utc_midnight(observed)

    @abstractmethod
    async def find_tenant(
        self, api: ApiClient, callback: Mapping[str, str], settings: Mapping[str, Any]
    ) -> Tenant:
        """Which organisation the consent gave access to."""

    def settings_from_tenant(self, tenant: Tenant) -> dict[str, str]:
        """Integration settings learnt when connecting (e.g. the Zoho organization id)."""
        return {}

    def tenant_extra(
        self, settings: Mapping[str, Any], secrets: Mapping[str, str | None]
    ) -> dict[str, str]:
        """What API calls need beside the stored tenant, from the integration's settings and
        its type's secret fields (MYOB: a company file's own sign-in); kept in
        :attr:`Tenant.extra` for :meth:`auth_headers`."""
        return {}

    @abstractmethod
    async def test(self, api: ApiClient) -> str:
        """The cheapest call that proves the connection works; returns what it saw."""

    @abstractmethod
    def pages(
        self, api: ApiClient, cursor: str | None, since: date | None
    ) -> AsyncIterator[InvoicePage]:
        """Invoices changed after ``cursor`` (or issued since ``since`` on a first sync)."""
