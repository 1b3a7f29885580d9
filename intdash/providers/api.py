"""Calls to a platform's API for one integration: authenticated, paced and retried sensibly."""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from intdash.core.budget import DailyBudget
from intdash.core.clock import Clock, system_clock
from intdash.core.heap import collections_paused
from intdash.providers.base import Tenant, TokenSet
from intdash.providers.connector import Connector, parse_json
from intdash.providers.errors import (
    MalformedResponse,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    ReconnectNeeded,
)
from intdash.providers.http import httpx, shared_client
from intdash.providers.ratelimit import Pacer
from intdash.providers.tokens import TokenManager

Sleep = Callable[[float], Awaitable[None]]
MAX_RATE_RETRIES = 5
MAX_SERVER_RETRIES = 2
LARGE_BODY = 64 * 1024

_T = TypeVar("_T")
_pacers: dict[tuple[int, str, str], Pacer] = {}


@functools.lru_cache(maxsize=512)
def _url(url: str, params: tuple[tuple[str, str], ...]) -> httpx.URL:
    """The URL of a call, parsed once: a schedule makes the same listing call (page one, the
    same order) for an integration again and again, and httpx parses a URL given as text more
    than once a request, each time costing more than the exchange itself."""
    return httpx.URL(url, params=params) if params else httpx.URL(url)  # (its own query kept)


def pacer_for(connector: Connector, tenant_id: str) -> Pacer:
    """The process's pacer for one platform tenant (or the API key it shares), on the running
    loop."""
    key = (id(asyncio.get_running_loop()), connector.type.value, connector.pacer_key(tenant_id))
    pacer = _pacers.get(key)
    if pacer is None or pacer.limits != connector.limits:
        pacer = _pacers[key] = Pacer(connector.limits)
    return pacer


class ApiClient:
    def __init__(
        self,
        connector: Connector,
        tokens: TokenManager,
        integration_id: int,
        tenant: Tenant | None,
        *,
        token: TokenSet | None = None,
        stored: TokenSet | None = None,
        sleep: Sleep = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        now: Clock = system_clock,
    ) -> None:
        self.connector = connector
        self.tokens = tokens
        self.integration_id = integration_id
        self.tenant = tenant
        self._token = token  # during a connect flow, before anything is stored
        self._stored = stored  # as read with the integration: used while it is fresh
        self._sleep = sleep
        self._jitter = jitter
        self._http = shared_client(connector.type.value, connector.timeout, connector.transport)
        self.pacer = pacer_for(connector, tenant.id if tenant else f"integration-{integration_id}")
        self.calls = 0
        self._now = now  # when answers were had: the workspace's clock
        self.daily: DailyBudget | None = None  # the tenant's daily calls, as last stated

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        pass  # the platform's client is the process's, kept for the next sync

    async def token(self) -> TokenSet:
        """The token set calls are made with now (refreshed first if it is expiring)."""
        return await self._token_now()

    async def _token_now(self) -> TokenSet:
        if self._token is not None:
            return self._token
        stored = self._stored
        if stored is not None and self.tokens.usable(stored):
            return stored  # every call of a sync, while it is not expiring: no read each call
        self._stored = await self.tokens.valid(self.connector, self.integration_id)
        return self._stored

    async def _refreshed(self, stale: TokenSet) -> TokenSet:
        if self._token is not None:
            raise ReconnectNeeded(f"{self.connector.label} refused the new access token")
        self._stored = await self.tokens.refresh(self.connector, self.integration_id, stale)
        return self._stored

    async def get(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """GET ``url``: a 2xx answer, or a typed error."""
        label = self.connector.label
        token = await self._token_now()
        target = _url(url, tuple(params.items()) if params else ())
        refreshed = False
        rate_tries = server_tries = 0
        while True:
            request_headers = {
                **self.connector.auth_headers(token, self.tenant),
                **(headers or {}),
            }
            try:
                async with self.pacer:
                    self.calls += 1
                    response = await self._http.get(target, headers=request_headers)
            except httpx.TimeoutException:
                raise ProviderTimeout(f"{label} did not answer in time ({url})") from None
            except httpx.TransportError as exc:
                raise ProviderUnavailable(f"cannot reach {label}: {exc}") from None
            self.pacer.remaining(
                self.connector.remaining_calls(response), self.connector.reset_after(response)
            )
            problem = self.connector.rate_problem(response)
            self._observe_daily(response, spent=problem is not None and problem.daily)
            if problem is not None:
                if problem.daily:
                    resumes = f"at {self.daily.resumes}" if self.daily else "tomorrow"
                    raise RateLimited(
                        f"{label}'s daily call limit is spent; syncing resumes {resumes}",
                        problem.retry_after,
                        daily=True,
                    )
                rate_tries += 1
                if rate_tries > MAX_RATE_RETRIES:
                    raise RateLimited(
                        f"{label} keeps answering 'too many requests'", problem.retry_after
                    )
                self.pacer.back_off(problem.retry_after)  # the pacer holds the next call back
                continue
            if response.status_code == 401 and not refreshed:
                refreshed = True
                token = await self._refreshed(token)
                continue
            if response.status_code == 401:
                raise ReconnectNeeded(f"{label} refuses the access token even after a refresh")
            if response.status_code >= 500:
                server_tries += 1
                if server_tries > MAX_SERVER_RETRIES:
                    raise ProviderUnavailable(
                        f"{label} answered HTTP {response.status_code} {server_tries} times ({url})"
                    )
                await self._sleep(0.2 * 2**server_tries * (1 + self._jitter()))
                continue
            if response.status_code >= 400:
                raise ProviderUnavailable(
                    f"{label} answered HTTP {response.status_code}: {response.text[:200]}"
                )
            return response

    def _observe_daily(self, response: httpx.Response, *, spent: bool) -> None:
        """Note what the answer says is left of today's calls (none, when it says the day's
        limit is met)."""
        remaining = 0 if spent else self.connector.daily_remaining(response)
        if remaining is None:
            return
        observed: datetime = self._now()
        self.daily = DailyBudget(remaining, observed, self.connector.daily_resets_at(observed))

    async def get_json(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        what: str = "",
    ) -> Any:
        return await self.get_parsed(url, _as_is, params=params, headers=headers, what=what)

    async def get_parsed(
        self,
        url: str,
        parse: Callable[[Any], _T],
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        what: str = "",
    ) -> _T:
        """The JSON answer, made into what ``parse`` makes of it: both in a thread when the
        answer is large (a page of a thousand invoices is tens of milliseconds of work, and the
        dashboard shares the event loop), here otherwise."""
        response = await self.get(url, params=params, headers=headers)
        return await parsed(response, what or f"{self.connector.label} {url}", parse)


def _as_is(data: Any) -> Any:
    return data


async def parsed(response: httpx.Response, what: str, parse: Callable[[Any], _T] = _as_is) -> _T:
    """``response``'s JSON made into what ``parse`` makes of it: in a thread when the answer is
    large (the dashboard shares the event loop), here otherwise."""

    def work() -> _T:
        return parse(parse_json(response, what))

    def large() -> _T:
        with collections_paused():  # the decoded JSON is made and dropped here, cycle-free
            return work()

    if len(response.content) > LARGE_BODY:
        return await asyncio.to_thread(large)
    return work()


def require(data: Any, key: str, kind: type, what: str) -> Any:
    """``data[key]`` of type ``kind``, or a typed error saying what was wrong."""
    if not isinstance(data, dict) or not isinstance(data.get(key), kind):
        raise MalformedResponse(f"{what}: expected '{key}' ({kind.__name__}) in the answer")
    return data[key]
