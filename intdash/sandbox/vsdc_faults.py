"""Faults the V-SDC emulator plays on demand, switched from a test (this object) or over
``/_sandbox/vsdc/...``.

- ``down``: every ``/api/v3`` call answers 503 (the handle's ``refuse()`` goes further: nothing
  listens on the port, so connections are refused).
- A gate the test holds shut, never a delay: :meth:`VsdcFaults.hold` lets ``after`` more invoice
  calls through, then each waits (before it is checked or signed) until :meth:`release`.
  :meth:`VsdcFaults.sign_then_hold` lets the next ``count`` invoices be signed and recorded,
  then holds each answer until :meth:`release` or until the client gives up (its connection
  closes): the time-out after the SDC signed. ``waiting`` counts the calls at the gate now.
- :meth:`VsdcFaults.reject`: the next ``count`` invoice calls answer ``status`` with TaxCore's
  error shape and one ``MessageDetails`` entry.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Rejection:
    status: int = 400
    code: str = "2805"
    property: str = "Items"
    message: str = "refused by the sandbox's fault"

    def body(self) -> dict[str, Any]:
        return {
            "Message": "The request is invalid." if self.status < 500 else "An error has occurred.",
            "MessageDetails": [
                {"Code": self.code, "Property": self.property, "Message": self.message}
            ],
        }


class VsdcFaults:
    def __init__(self) -> None:
        self.down = False
        self._lock = threading.Lock()
        self._gate = threading.Event()
        self._gate.set()
        self._hold_after = -1  # -1: no hold; N: N more calls pass, then they wait
        self._hold_signed = 0  # this many more signed answers wait at the gate
        self._rejections: list[Rejection] = []
        self._waiting = 0
        self.held_answers = 0  # answers held after signing, so far
        self.abandoned = 0  # held answers whose client went away before the gate opened

    # -- switches ------------------------------------------------------------------------------

    def hold(self, after: int = 0) -> None:
        """Let ``after`` more invoice calls through, then hold each before it is signed."""
        with self._lock:
            self._gate.clear()
            self._hold_after = after

    def sign_then_hold(self, count: int = 1) -> None:
        """Sign and record the next ``count`` invoices, then hold their answers."""
        with self._lock:
            self._gate.clear()
            self._hold_signed = count

    def release(self) -> None:
        """Open the gate: every held call goes on; no more are held."""
        with self._lock:
            self._hold_after = -1
            self._hold_signed = 0
            self._gate.set()

    def reject(
        self,
        status: int = 400,
        *,
        code: str = "2805",
        property: str = "Items",
        message: str = "refused by the sandbox's fault",
        count: int = 1,
    ) -> None:
        with self._lock:
            self._rejections += [Rejection(status, code, property, message)] * count

    def clear(self) -> None:
        """Every fault off."""
        self.release()
        with self._lock:
            self.down = False
            self._rejections.clear()

    # -- state ---------------------------------------------------------------------------------

    @property
    def waiting(self) -> int:
        """Calls waiting at the gate now (before or after signing)."""
        return self._waiting

    @property
    def holding(self) -> bool:
        return not self._gate.is_set()

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "down": self.down,
                "holding": not self._gate.is_set(),
                "hold_after": self._hold_after,
                "sign_then_hold": self._hold_signed,
                "rejections": len(self._rejections),
                "waiting": self._waiting,
                "held_answers": self.held_answers,
                "abandoned": self.abandoned,
            }

    # -- used by the emulator ------------------------------------------------------------------

    def take_rejection(self) -> Rejection | None:
        with self._lock:
            return self._rejections.pop(0) if self._rejections else None

    def _passes_before(self) -> bool:
        with self._lock:
            if self._hold_after > 0:
                self._hold_after -= 1
                return True
            return self._hold_after != 0 or self._gate.is_set()

    def _holds_after_signing(self) -> bool:
        with self._lock:
            if self._hold_signed > 0 and not self._gate.is_set():
                self._hold_signed -= 1
                self.held_answers += 1
                return True
            return False

    async def before_signing(self, gone: Callable[[], Awaitable[bool]]) -> bool:
        """Wait at the gate if held; False when the client went away meanwhile."""
        if self._passes_before():
            return True
        return await self._wait(gone)

    async def after_signing(self, gone: Callable[[], Awaitable[bool]]) -> bool:
        """Hold a signed answer if asked to; False when the client went away meanwhile."""
        if not self._holds_after_signing():
            return True
        answered = await self._wait(gone)
        if not answered:
            with self._lock:
                self.abandoned += 1
        return answered

    async def _wait(self, gone: Callable[[], Awaitable[bool]]) -> bool:
        with self._lock:
            self._waiting += 1
        try:
            while not self._gate.is_set():
                if await gone():
                    return False
                await asyncio.sleep(0.005)  # the server's own poll of a thread's event
            return True
        finally:
            with self._lock:
                self._waiting -= 1
