"""Keep the cyclic garbage collector from pausing a long-running process.

A full collection walks every object alive: in the dashboard that is all of Textual, SQLAlchemy's
mappers and the app's widgets, and a sync's allocations trigger one every few seconds, each
freezing the UI for up to 100 ms. Objects alive once start-up is over live as long as the
process, so they are moved out of the collector's reach; what is made later is collected as usual.
"""

from __future__ import annotations

import gc


def freeze_long_lived() -> None:
    """Exempt every object alive now from later collections. (No collection first: a full
    one is the very pause this avoids; what start-up left as garbage stays, a little memory.)"""
    gc.freeze()
