"""An OAuth 2.0 authorisation server as the platforms run theirs, for the emulators.

Consent approves at once (or denies, when told to), and only for a redirect URI registered for
the client, matched exactly (a consent for any other URI is an error page, never a redirect); the
code exchange must present the same redirect URI again. Codes are single use and short-lived.
PKCE S256 is checked when the authorisation asked for it, and a client that sends no secret must
have used it. Access tokens expire; refresh tokens rotate or not, as the platform does; a
rotated-out refresh token is refused with ``invalid_grant``, so a client that refreshes one token
set twice loses. Zoho's throttle (at most N access tokens per refresh token in ten minutes,
answered with HTTP 200 "Access Denied") can be switched on.

Where the platforms differ, :class:`OAuthPolicy` says how: the scopes the platform knows, the
scope without which no refresh token is given (Xero's ``offline_access``), IdentityServer's
refusal of a ``code_verifier`` for a code issued without a challenge, https redirect URIs, and
access tokens that are JWTs carrying the platform's claims (Xero's ``authentication_event_id``).

Every consent is an *authentication event* with an id of its own; the tokens descended from it
carry it, and ``on_consent`` tells the emulator about it (Xero connects the organisations the
user picked to it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

Clock = Callable[[], float]

# intdash's own default redirect URI: registered for every client unless told otherwise
DEFAULT_REDIRECT_URI = "http://localhost:8471/callback"
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


@dataclass
class _Code:
    redirect_uri: str
    challenge: str | None
    expires: float
    scope: str
    event_id: str
    auth_time: float


@dataclass
class Grant:
    """One consent: the tokens descended from one code."""

    scope: str
    event_id: str  # the authentication event (the consent) these tokens come from
    auth_time: float = 0.0
    revoked: bool = False
    minted: list[float] = field(default_factory=list)

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.scope.split())


# (grant, now) -> the platform's claims of an access token minted now
Claims = Callable[[Grant, float], dict[str, Any]]


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
    known_scopes: frozenset[str] | None = None  # None: any scope is accepted
    offline_scope: str | None = None  # a refresh token only when this scope was granted
    https_redirects: bool = False  # redirect URIs must be https, except on loopback
    strict_pkce: bool = False  # a code_verifier for a code issued without a challenge is refused
    jwt_claims: Claims | None = None  # access tokens are JWTs carrying these claims


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def s256(verifier: str) -> str:
    """The S256 code challenge of a PKCE verifier."""
    return _b64url(hashlib.sha256(verifier.encode()).digest())


class OAuthServer:
    def __init__(
        self,
        policy: OAuthPolicy,
        clock: Clock = time.time,
        redirect_uris: Iterable[str] | None = None,
    ) -> None:
        self.policy = policy
        self.clock = clock
        self.deny_consent = False
        self.refresh_calls = 0
        self.token_calls = 0
        self.on_consent: Callable[[str, str], None] | None = None  # (event id, scope)
        self._lock = threading.Lock()
        self._codes: dict[str, _Code] = {}
        self._access: dict[str, tuple[float, Grant]] = {}
        self._refresh: dict[str, Grant] = {}
        self._retired: set[str] = set()
        self._jwt_key = secrets.token_bytes(32)
        self.redirect_uris: set[str] = set()
        for uri in (DEFAULT_REDIRECT_URI,) if redirect_uris is None else redirect_uris:
            self.register_redirect_uri(uri)

    # -- the client's registration -----------------------------------------------------------

    def register_redirect_uri(self, uri: str) -> None:
        """Add a redirect URI to the client's registration (as in the platform's developer
        portal); it is then matched exactly."""
        parts = urlsplit(uri)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
            raise ValueError(f"{uri!r} is not an absolute http(s) URL without a fragment")
        if (
            self.policy.https_redirects
            and parts.scheme != "https"
            and parts.hostname not in LOOPBACK_HOSTS
        ):
            raise ValueError(f"{uri!r}: redirect URIs must be https, except on localhost")
        self.redirect_uris.add(uri)

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
        if redirect not in self.redirect_uris:
            return 400, f"invalid redirect_uri: {redirect} is not registered for this client"
        state = params.get("state")
        reply: dict[str, str] = {}
        problem = self._consent_problem(params)
        if problem is not None:
            reply["error"], reply["error_description"] = problem
        elif self.deny_consent:
            reply["error"] = "access_denied"
        else:
            scope = params.get("scope", "")
            event_id = str(uuid.uuid4())
            code = secrets.token_urlsafe(24)
            now = self.clock()
            with self._lock:
                self._codes[code] = _Code(
                    redirect,
                    params.get("code_challenge") or None,
                    now + self.policy.code_ttl,
                    scope,
                    event_id,
                    now,
                )
            if self.on_consent is not None:
                self.on_consent(event_id, scope)
            reply["code"] = code
            reply.update(extra or {})
        if state is not None:
            reply["state"] = state
        joiner = "&" if "?" in redirect else "?"
        return 302, f"{redirect}{joiner}{urlencode(reply)}"

    def _consent_problem(self, params: dict[str, str]) -> tuple[str, str] | None:
        """What makes this consent request one to refuse (by redirect), if anything."""
        if params.get("response_type") != "code":
            return "unsupported_response_type", "response_type must be code"
        challenge = params.get("code_challenge")
        if challenge and params.get("code_challenge_method") != "S256":
            return "invalid_request", "code_challenge_method must be S256"
        if challenge and not re.fullmatch(r"[A-Za-z0-9_-]{43}", challenge):
            return "invalid_request", "code_challenge is not an S256 challenge"
        known = self.policy.known_scopes
        if known is not None:
            asked = params.get("scope", "").split()
            if not asked:
                return "invalid_scope", "scope is required"
            unknown = sorted(set(asked) - known)
            if unknown:
                return "invalid_scope", f"unknown scope {' '.join(unknown)}"
        return None

    def mint_code(self, scope: str = "", redirect_uri: str = "") -> str:
        """A grant code made without a redirect (Zoho's self client; tests)."""
        code = secrets.token_urlsafe(24)
        event_id = str(uuid.uuid4())
        now = self.clock()
        with self._lock:
            self._codes[code] = _Code(redirect_uri, None, now + 120, scope, event_id, now)
        if self.on_consent is not None:
            self.on_consent(event_id, scope)
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

    def client_ok(self, form: dict[str, str], authorization: str | None) -> bool:
        """Whether a request to an endpoint other than the token endpoint (revocation) comes
        from the client: its secret, or its id alone for a PKCE client."""
        return self._client_ok(form, authorization, pkce=True)

    def _jwt(self, grant: Grant, now: float, claims: Claims) -> str:
        payload = {
            "nbf": int(now),
            "exp": int(now + self.policy.access_ttl),
            "iat": int(now),
            "client_id": self.policy.client_id,
            "jti": secrets.token_hex(16),
            "scope": sorted(grant.scopes),
            **claims(grant, now),
        }
        head = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = _b64url(json.dumps(payload, separators=(",", ":")).encode())
        signature = hmac.new(self._jwt_key, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{_b64url(signature)}"

    def _issue(self, grant: Grant, refresh: str | None) -> dict[str, Any]:
        now = self.clock()
        claims = self.policy.jwt_claims
        access = secrets.token_urlsafe(32) if claims is None else self._jwt(grant, now, claims)
        self._access[access] = (now + self.policy.access_ttl, grant)
        grant.minted.append(now)
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": str(self.policy.access_ttl)
            if self.policy.expires_in_as_text
            else self.policy.access_ttl,
            "scope": grant.scope,
        }
        if refresh is not None:
            body["refresh_token"] = refresh
        return body

    def _new_refresh(self, grant: Grant) -> str | None:
        """A refresh token for this grant, unless the platform gives none for its scope."""
        needed = self.policy.offline_scope
        if needed is not None and needed not in grant.scopes:
            return None
        refresh = secrets.token_urlsafe(32)
        self._refresh[refresh] = grant
        return refresh

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
        if code.redirect_uri and form.get("redirect_uri") != code.redirect_uri:
            return 400, {"error": "invalid_grant", "error_description": "redirect_uri mismatch"}
        if code.challenge:
            if not verifier or not _VERIFIER.match(verifier):
                return 400, {"error": "invalid_grant", "error_description": "PKCE check failed"}
            if not secrets.compare_digest(s256(verifier), code.challenge):
                return 400, {"error": "invalid_grant", "error_description": "PKCE check failed"}
        elif verifier and self.policy.strict_pkce:
            return 400, {
                "error": "invalid_grant",
                "error_description": "unexpected code_verifier: the authorisation had no "
                "code_challenge",
            }
        grant = Grant(code.scope, code.event_id, code.auth_time)
        return 200, self._issue(grant, self._new_refresh(grant))

    def _refresh_grant(
        self, form: dict[str, str], authorization: str | None
    ) -> tuple[int, dict[str, Any]]:
        if not self._client_ok(form, authorization, pkce=True):
            return 401, {"error": "invalid_client"}
        token = form.get("refresh_token", "")
        grant = self._refresh.get(token)
        if grant is None or grant.revoked:
            return 400, {"error": "invalid_grant"}
        asked = set(form.get("scope", "").split())
        if asked - grant.scopes:
            return 400, {
                "error": "invalid_scope",
                "error_description": f"not granted: {' '.join(sorted(asked - grant.scopes))}",
            }
        limit = self.policy.token_throttle
        if limit is not None:
            recent = [t for t in grant.minted if t > self.clock() - 600]
            if len(recent) >= limit:
                return 200, {
                    "error": "Access Denied",
                    "error_description": "You have made too many requests continuously. "
                    "Please try again after some time.",
                }
        if self.policy.rotate_refresh:
            del self._refresh[token]
            self._retired.add(token)
            return 200, self._issue(grant, self._new_refresh(grant))
        return 200, self._issue(grant, None)

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

    def grant_of(self, access_token: str) -> Grant | None:
        """The consent an access token comes from (its scope, its authentication event)."""
        with self._lock:
            found = self._access.get(access_token)
        return None if found is None else found[1]

    def expire_access_tokens(self) -> None:
        """Make every access token expire now (the client's clock still thinks otherwise)."""
        with self._lock:
            for token, (_, grant) in list(self._access.items()):
                self._access[token] = (self.clock() - 1, grant)

    def revoke_all(self) -> None:
        """The user disconnected the app: every token of every consent dies."""
        with self._lock:
            for grant in {id(g): g for g in self._refresh.values()}.values():
                grant.revoked = True
            for _, grant in self._access.values():
                grant.revoked = True

    def revoke_token(self, token: str) -> bool:
        """Revoke the consent a refresh token belongs to; whether the token was known."""
        with self._lock:
            grant = self._refresh.get(token)
            if grant is not None:
                grant.revoked = True
        return grant is not None
