"""What can go wrong talking to a platform, in types the sync engine and the faces can act on."""

from __future__ import annotations

from intdash.core.errors import IntdashError


class ProviderError(IntdashError):
    """A call to a platform failed. ``retryable``: trying again later may succeed."""

    retryable = True


class ProviderTimeout(ProviderError):
    """The platform did not answer in time."""


class ProviderUnavailable(ProviderError):
    """The platform answered with a server error (5xx)."""


class MalformedResponse(ProviderError):
    """The platform's answer could not be understood; nothing from it was used."""


class RateLimited(ProviderError):
    """The platform's rate limit was met. ``daily``: the day's allowance is spent."""

    def __init__(self, message: str, retry_after: float, *, daily: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.daily = daily


class TokenThrottled(ProviderError):
    """The token endpoint refuses to mint more tokens for now (Zoho's "Access Denied")."""


class NotAuthorised(ProviderError):
    """The integration has never been connected: there is no token to use."""

    retryable = False


class ReconnectNeeded(ProviderError):
    """The platform refused the stored authorisation; only a new consent can fix it."""

    retryable = False


class AuthorisationFailed(IntdashError):
    """A connect flow failed: wrong state, consent denied, or the code exchange refused."""
