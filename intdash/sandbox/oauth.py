"""An OAuth 2.0 authorisation server as the platforms run theirs, for the emulators.

Consent approves at once (or denies, when told to). Codes are single use and short-lived; PKCE
S256 is checked when the authorisation asked for it. Access tokens expire; refresh tokens rotate
or not, as the platform does; a rotated-out refresh token is refused with ``invalid_grant``, so a
client that refreshes one token set twice loses. Zoho's throttle (at most N access tokens per
refresh token in ten minutes, answered with HTTP 200 "Access Denied") can be switched on.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

Clock = Callable[[], float]


@dataclass
class _Code:
    redirect_uri: str
    challenge: str | None
    expires: float
    scope: str


@dataclass
class _Family:
    """One consent: the tokens descended from one code."""

    scope: str
    revoked: bool = False
    minted: list[float] = field(default_factory=list)


@dataclass
class OAuthPolicy:
    client_id: str
    client_secret: str
    access_ttl: int
    rotate_refresh: bool
    client_auth: str  # "basic" or "post"
    code_ttl: int = 300
    expires_in_as_text: bool = False  # MYOB sends it as a string
    token_throttle: int | None = None  # Zoho: access tokens per refresh token per 10 min


class OAuthServer:
    def __init__(self, policy: OAuthPolicy, clock: Clock = time.time) -> None:
        self.policy = policy
        self.clock = clock
        self.deny_consent = False
        self.refresh_calls = 0
        self.token_calls = 0
        self._lock = threading.Lock()
        self._codes: dict[str, _Code] = {}
        self._access: dict[str, tuple[float, _Family]] = {}
        self._refresh: dict[str, _Family] = {}
        self._retired: set[str] = set()

    # -- consent -----------------------------------------------------------------------------

    def authorize(
        self, params: dict[str, str], extra: dict[str, str] | None = None
    ) -> tuple[int, str]:
        """Answer a consent request: (status, redirect location or error text)."""
        if params.get("client_id") != self.policy.client_id:
            return 400, "unknown client_id"
        redirect = params.get("redirect_uri", "")
        if not redirect:
            return 400, "redirect_uri is required"
        if params.get("response_type") != "code":
            return 400, "response_type must be code"
        state = params.get("state")
        reply: dict[str, str] = {}
        if self.deny_consent:
            reply["error"] = "access_denied"
        else:
            challenge = params.get("code_challenge")
            if challenge and params.get("code_challenge_method") != "S256":
                return 400, "code_challenge_method must be S256"
            code = secrets.token_urlsafe(24)
            with self._lock:
                self._codes[code] = _Code(
                    redirect,
                    challenge,
                    self.clock() + self.policy.code_ttl,
                    params.get("scope", ""),
                )
            reply["code"] = code
            reply.update(extra or {})
        if state is not None:
            reply["state"] = state
        joiner = "&" if "?" in redirect else "?"
        return 302, f"{redirect}{joiner}{urlencode(reply)}"

    def mint_code(self, scope: str = "", redirect_uri: str = "") -> str:
        """A grant code made without a redirect (Zoho's self client)."""
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = _Code(redirect_uri, None, self.clock() + 120, scope)
        return code

    # -- tokens ------------------------------------------------------------------------------

    def _client_ok(self, form: dict[str, str], authorization: str | None, pkce: bool) -> bool:
        policy = self.policy
        if authorization and authorization.startswith("Basic "):
            try:
                raw = base64.b64decode(authorization[6:]).decode()
            except ValueError:
                return False
            client_id, _, secret = raw.partition(":")
            return client_id == policy.client_id and secrets.compare_digest(
                secret, policy.client_secret
            )
        if form.get("client_id") != policy.client_id:
            return False
        posted = form.get("client_secret")
        if posted is None:
            return pkce  # a PKCE client may send no secret
        return secrets.compare_digest(posted, policy.client_secret)

    def _issue(self, family: _Family, refresh: str | None) -> dict[str, Any]:
        access = secrets.token_urlsafe(32)
        now = self.clock()
        self._access[access] = (now + self.policy.access_ttl, family)
        family.minted.append(now)
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": str(self.policy.access_ttl)
            if self.policy.expires_in_as_text
            else self.policy.access_ttl,
            "scope": family.scope,
        }
        if refresh is not None:
            body["refresh_token"] = refresh
        return body

    def token(self, form: dict[str, str], authorization: str | None) -> tuple[int, dict[str, Any]]:
        """Answer the token endpoint: (status, JSON body)."""
        grant = form.get("grant_type")
        with self._lock:
            self.token_calls += 1
            if grant == "authorization_code":
                return self._exchange(form, authorization)
            if grant == "refresh_token":
                self.refresh_calls += 1
                return self._refresh_grant(form, authorization)
        return 400, {"error": "unsupported_grant_type"}

    def _exchange(
        self, form: dict[str, str], authorization: str | None
    ) -> tuple[int, dict[str, Any]]:
        code = self._codes.pop(form.get("code", ""), None)
        verifier = form.get("code_verifier")
        if not self._client_ok(form, authorization, pkce=bool(code and code.challenge)):
            return 401, {"error": "invalid_client"}
        if code is None or code.expires < self.clock():
            return 400, {"error": "invalid_grant", "error_description": "code is invalid or used"}
        if code.redirect_uri and form.get("redirect_uri", code.redirect_uri) != code.redirect_uri:
            return 400, {"error": "invalid_grant", "error_description": "redirect_uri mismatch"}
        if code.challenge:
            digest = hashlib.sha256((verifier or "").encode()).digest()
            expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            if not verifier or not secrets.compare_digest(expected, code.challenge):
                return 400, {"error": "invalid_grant", "error_description": "PKCE check failed"}
        family = _Family(code.scope)
        refresh = secrets.token_urlsafe(32)
        self._refresh[refresh] = family
        return 200, self._issue(family, refresh)

    def _refresh_grant(
        self, form: dict[str, str], authorization: str | None
    ) -> tuple[int, dict[str, Any]]:
        if not self._client_ok(form, authorization, pkce=True):
            return 401, {"error": "invalid_client"}
        token = form.get("refresh_token", "")
        family = self._refresh.get(token)
        if family is None or family.revoked:
            return 400, {"error": "invalid_grant"}
        limit = self.policy.token_throttle
        if limit is not None:
            recent = [t for t in family.minted if t > self.clock() - 600]
            if len(recent) >= limit:
                return 200, {
                    "error": "Access Denied",
                    "error_description": "You have made too many requests continuously. "
                    "Please try again after some time.",
                }
        if self.policy.rotate_refresh:
            del self._refresh[token]
            self._retired.add(token)
            new_refresh = secrets.token_urlsafe(32)
            self._refresh[new_refresh] = family
            return 200, self._issue(family, new_refresh)
        return 200, self._issue(family, None)

    # -- resource checks ---------------------------------------------------------------------

    def check(self, access_token: str) -> str | None:
        """None when the token may be used, else why not: "expired" or "invalid"."""
        with self._lock:
            found = self._access.get(access_token)
        if found is None or found[1].revoked:
            return "invalid"
        if found[0] <= self.clock():
            return "expired"
        return None

    def expire_access_tokens(self) -> None:
        """Make every access token expire now (the client's clock still thinks otherwise)."""
        with self._lock:
            for token, (_, family) in list(self._access.items()):
                self._access[token] = (self.clock() - 1, family)

    def revoke_all(self) -> None:
        """The user disconnected the app: every token of every consent dies."""
        with self._lock:
            for family in {id(f): f for f in self._refresh.values()}.values():
                family.revoked = True
            for _, family in self._access.values():
                family.revoked = True

    def revoke_token(self, token: str) -> None:
        with self._lock:
            family = self._refresh.get(token)
            if family is not None:
                family.revoked = True
