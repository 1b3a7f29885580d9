"""Pacing requests to a platform's published limits, so that a normal sync meets no 429.

One pacer per platform tenant (shared by every task in the process): at most ``per_window``
calls in any ``window`` seconds and ``concurrent`` in flight. The platform's remaining-calls
headers tighten it (another process may share the allowance), and a 429's ``Retry-After`` blocks
it, with jitter so that waiting tasks do not all return at once.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType

Sleep = Callable[[float], Awaitable[None]]
MARGIN = 0.05  # seconds added to a window, so the platform's clock never sees one call too many


@dataclass(frozen=True)
class RateLimits:
    per_window: int
    window: float
    concurrent: int | None = None


class Pacer:
    def __init__(
        self,
        limits: RateLimits,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.limits = limits
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        self._sent: deque[float] = deque()
        self._blocked_until = 0.0
        self._slots = asyncio.Semaphore(limits.concurrent) if limits.concurrent else None
        self._lock = asyncio.Lock()
        self.waited = 0.0

    async def _room(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                window = self.limits.window + MARGIN
                while self._sent and self._sent[0] <= now - window:
                    self._sent.popleft()
                wait = self._blocked_until - now
                if len(self._sent) >= self.limits.per_window:
                    wait = max(wait, self._sent[0] + window - now)
                if wait <= 0:
                    self._sent.append(now)
                    return
                self.waited += wait
                await self._sleep(wait)

    async def __aenter__(self) -> Pacer:
        if self._slots is not None:
            await self._slots.acquire()
        try:
            await self._room()
        except BaseException:
            if self._slots is not None:
                self._slots.release()
            raise
        return self

    async def __aexit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        if self._slots is not None:
            self._slots.release()

    def remaining(self, remaining: int | None, reset: float | None = None) -> None:
        """The platform says how many calls are left in its window: none left means wait until
        a slot frees. When it also says in how many seconds that is (``reset``), until then,
        whoever spent the calls; otherwise when our oldest call leaves the window (the window
        slides), or a whole window when the calls that spent it were not ours."""
        if remaining is None or remaining > 0:
            return
        now = self._clock()
        if reset is not None:
            self._blocked_until = max(self._blocked_until, now + max(reset, 0.0) + MARGIN)
            return
        window = self.limits.window + MARGIN
        while self._sent and self._sent[0] <= now - window:
            self._sent.popleft()
        free_at = self._sent[0] + window if self._sent else now + self.limits.window
        self._blocked_until = max(self._blocked_until, free_at)

    def back_off(self, retry_after: float) -> float:
        """A 429: block for the server's hint plus jitter; returns the wait chosen."""
        wait = max(retry_after, 0.0) + self._jitter() * min(1.0, max(retry_after, 0.1))
        self._blocked_until = max(self._blocked_until, self._clock() + wait)
        return wait
