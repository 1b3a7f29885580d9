"""Randomness enters through a token source so that tests can control it, as time enters
through a clock.

The workspace holds one (``ws.tokens``): the real one draws from :mod:`secrets`; a seeded one
(:meth:`TokenSource.seeded`) draws the same values on every run, for tests and screenshots only.
"""

from __future__ import annotations

import base64
import random
import secrets
from collections.abc import Callable


class TokenSource:
    """Random tokens for identifiers and secrets, from one source of random bytes and choices."""

    def __init__(
        self, randbytes: Callable[[int], bytes], pick: Callable[[str], str], *, seeded: bool
    ) -> None:
        self._randbytes = randbytes
        self._pick = pick
        self.is_seeded = seeded

    @classmethod
    def system(cls) -> TokenSource:
        """The real source: :mod:`secrets`, the operating system's randomness."""
        return cls(secrets.token_bytes, secrets.choice, seeded=False)

    @classmethod
    def seeded(cls, seed: int) -> TokenSource:
        """A deterministic source for tests and screenshots: the same values for the same seed.

        Not for production: everything it makes is predictable from the seed.
        """
        rng = random.Random(seed)  # noqa: S311 - predictable by design, never used for real secrets
        return cls(rng.randbytes, rng.choice, seeded=True)

    def token_bytes(self, nbytes: int = 32) -> bytes:
        return self._randbytes(nbytes)

    def token_hex(self, nbytes: int = 32) -> str:
        return self._randbytes(nbytes).hex()

    def token_urlsafe(self, nbytes: int = 32) -> str:
        """As :func:`secrets.token_urlsafe`: ``nbytes`` random bytes in unpadded URL-safe base64."""
        return base64.urlsafe_b64encode(self._randbytes(nbytes)).rstrip(b"=").decode()

    def choice(self, alphabet: str, length: int = 1) -> str:
        """``length`` characters, each chosen independently from ``alphabet``."""
        return "".join(self._pick(alphabet) for _ in range(length))


system_tokens = TokenSource.system()
"""The real token source, shared: it holds no state of its own."""
