"""The types every connector shares: token sets, tenants, pages of invoices."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from intdash.core.invoices import InvoiceData
from intdash.providers.errors import MalformedResponse

REFRESH_LEEWAY = 60.0  # refresh this many seconds before the access token expires


@dataclass(frozen=True)
class TokenSet:
    """What a platform granted: kept, as JSON, in the vault."""

    access_token: str
    refresh_token: str | None
    expires_at: float  # seconds since the epoch
    scope: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)  # api_domain, accounts_server, ...

    def expiring(self, now: float, leeway: float = REFRESH_LEEWAY) -> bool:
        return self.expires_at - leeway <= now

    def to_json(self) -> str:
        return json.dumps(
            {
                "access_token": self.access_token,
                "refresh_token": self.refresh_token,
                "expires_at": self.expires_at,
                "scope": self.scope,
                "extra": dict(self.extra),
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> TokenSet:
        data = json.loads(text)
        return cls(
            data["access_token"],
            data.get("refresh_token"),
            float(data["expires_at"]),
            data.get("scope"),
            dict(data.get("extra") or {}),
        )

    @classmethod
    def from_grant(
        cls,
        token: Mapping[str, Any],
        now: float,
        previous: TokenSet | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> TokenSet:
        """A token endpoint's answer; a refresh that names no new refresh token keeps the old."""
        access = token.get("access_token")
        if not isinstance(access, str) or not access:
            raise MalformedResponse("the token endpoint's answer has no access_token")
        try:
            expires_in = float(token.get("expires_in", 1800))
        except (TypeError, ValueError):
            raise MalformedResponse("the token endpoint's expires_in is not a number") from None
        refresh = token.get("refresh_token") or (previous.refresh_token if previous else None)
        merged = {**(previous.extra if previous else {}), **(extra or {})}
        return cls(access, refresh, now + expires_in, token.get("scope"), merged)


@dataclass(frozen=True)
class Tenant:
    """The organisation, company file or business a connection reads from."""

    id: str
    name: str
    extra: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"id": self.id, "name": self.name, "extra": dict(self.extra)})

    @classmethod
    def from_json(cls, text: str) -> Tenant:
        data = json.loads(text)
        return cls(data["id"], data["name"], dict(data.get("extra") or {}))


@dataclass(frozen=True)
class InvoicePage:
    """A page of invoices and the cursor to resume after it (the highest modified time seen)."""

    invoices: list[InvoiceData]
    cursor: str | None
