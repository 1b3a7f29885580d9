"""Waiting on a condition, never on a fixed sleep: the one deadline loop of the tests, the scenes
and the benchmarks.

A condition is asked again until it gives something true, which the wait returns; past the
deadline the wait fails with ``message`` (a string, or a function that says what was seen).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

from textual.pilot import Pilot

T = TypeVar("T")

Message = str | Callable[[], object]


def _fail(message: Message) -> AssertionError:
    return AssertionError(message if isinstance(message, str) else message())


def wait_for(
    condition: Callable[[], T | None],
    timeout: float = 30.0,
    message: Message = "timed out waiting",
    *,
    every: float = 0.05,
) -> T:
    """Ask ``condition`` every ``every`` seconds until it is true; returns what it gave."""
    deadline = time.monotonic() + timeout
    while not (seen := condition()):
        if time.monotonic() > deadline:
            raise _fail(message)
        time.sleep(every)
    return seen


@overload
async def wait_for_async(
    condition: Callable[[], Awaitable[T | None]],
    timeout: float = ...,
    message: Message = ...,
    *,
    every: float = ...,
) -> T: ...
@overload
async def wait_for_async(
    condition: Callable[[], T | None],
    timeout: float = ...,
    message: Message = ...,
    *,
    every: float = ...,
) -> T: ...
async def wait_for_async(
    condition: Callable[[], Any],
    timeout: float = 30.0,
    message: Message = "timed out waiting",
    *,
    every: float = 0.05,
) -> Any:
    """:func:`wait_for` on an event loop: the loop runs on between asks, and ``condition`` may
    be a coroutine function."""
    deadline = time.monotonic() + timeout
    while True:
        seen = condition()
        if inspect.isawaitable(seen):
            seen = await seen
        if seen:
            return seen
        if time.monotonic() > deadline:
            raise _fail(message)
        await asyncio.sleep(every)


async def until(
    pilot: Pilot[Any],
    condition: Callable[[], Any],
    timeout: float = 45.0,
    message: Message = "timed out waiting for the dashboard",
) -> None:
    """Wait in a running dashboard (its workers included) until ``condition`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise _fail(message)
        await pilot.pause(0.02)
