"""Work done in rounds until a round finds nothing: the outboxes' senders drain this way."""

from __future__ import annotations

from collections.abc import Awaitable, Callable


async def drain(run_once: Callable[[], Awaitable[int]], rounds: int) -> int:
    """Call ``run_once`` until it reports nothing done (or ``rounds`` times): the total done."""
    total = 0
    for _ in range(rounds):
        done = await run_once()
        if not done:
            break
        total += done
    return total
