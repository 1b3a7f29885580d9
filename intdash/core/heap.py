"""Keep the cyclic garbage collector from pausing a long-running process.

A full collection walks every object alive: in the dashboard that is all of Textual, SQLAlchemy's
mappers and the app's widgets, and a sync's allocations trigger one every few seconds, each
freezing the UI for up to 100 ms. Objects alive once start-up is over live as long as the
process, so they are moved out of the collector's reach; what is made later is collected as usual.

A page of a thousand invoices is tens of thousands of containers (the answer's JSON, then the
invoices made of it, then their rows): made and dropped within one step, and none of them part
of a cycle. Collections during that step walk every one of them, once or twice in the young
generations, and promote the survivors until a full collection walks them again: a fifth to a
third of a sync's CPU, and the longest pauses of the event loop. So collections wait while such
a step runs (:func:`collections_paused`); what it leaves alive is collected as usual afterwards,
and so is any cyclic garbage made meanwhile, by any thread.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable


def freeze_long_lived() -> None:
    """Exempt every object alive now from later collections. (No collection first: a full
    one is the very pause this avoids; what start-up left as garbage stays, a little memory.)"""
    gc.freeze()


LONGEST_OFF = 1.0  # seconds the collector may stay off while pauses overlap without a gap


class CollectorPause:
    """Steps during which no automatic collection runs (in any thread: the collector is the
    process's). Steps may overlap across threads: the collector is back on when the last one
    ends, and only if it was on when the first began. Where they overlap without a gap for
    longer than ``longest_off`` (``clock``'s seconds), the young generations are collected as a
    step begins or ends, so that cyclic garbage never waits long. Only for steps that wait on
    nothing (no lock, no other process, no network): one that waited would hold the collector
    off as long as it did."""

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, longest_off: float = LONGEST_OFF
    ) -> None:
        self._clock, self._longest_off = clock, longest_off
        self._lock = threading.Lock()
        self._steps = 0  # steps running now, in every thread
        self._resume = False  # whether the collector was on when the first of them began
        self._off_since = 0.0

    def __enter__(self) -> None:
        with self._lock:
            if self._steps == 0:
                self._resume = gc.isenabled()
                gc.disable()
                self._off_since = self._clock()
                due = False
            else:
                due = self._due()
            self._steps += 1
        if due:  # (outside the lock: a finalizer the collection runs may pause a step)
            gc.collect(1)

    def __exit__(self, *_exc: object) -> None:
        with self._lock:
            self._steps -= 1
            if self._steps == 0:
                if self._resume:
                    gc.enable()  # (the next allocation collects, if one is due)
                due = False
            else:
                due = self._due()
        if due:
            gc.collect(1)

    def _due(self) -> bool:
        """Whether the collector, on before these steps, has been off too long (then it is
        taken as collected from now on)."""
        now = self._clock()
        if self._resume and now - self._off_since > self._longest_off:
            self._off_since = now
            return True
        return False


_PAUSE = CollectorPause()


def collections_paused() -> CollectorPause:
    """The process's :class:`CollectorPause`: ``with collections_paused(): ...`` runs a step
    that makes and drops many objects, and waits on nothing, with the collector off."""
    return _PAUSE
