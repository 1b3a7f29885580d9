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
from collections.abc import Iterator
from contextlib import contextmanager


def freeze_long_lived() -> None:
    """Exempt every object alive now from later collections. (No collection first: a full
    one is the very pause this avoids; what start-up left as garbage stays, a little memory.)"""
    gc.freeze()


_pausing = threading.Lock()
_paused = 0  # steps within collections_paused(), in every thread
_resume = False  # whether the collector was on when the first of them began


@contextmanager
def collections_paused() -> Iterator[None]:
    """No automatic collection while the block runs (in any thread: the collector is the
    process's). Blocks may overlap across threads: the collector is back on when the last one
    ends, and only if it was on when the first began. For short steps that make and drop many
    objects; garbage made meanwhile waits for the next collection."""
    global _paused, _resume
    with _pausing:
        if _paused == 0:
            _resume = gc.isenabled()
            gc.disable()
        _paused += 1
    try:
        yield
    finally:
        with _pausing:
            _paused -= 1
            if _paused == 0 and _resume:
                gc.enable()
