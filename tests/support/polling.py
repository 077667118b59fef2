"""``eventually``: the one poll with a deadline that tests wait with.

A test waits on state (a count, a document, a log line, a process) rather than on the
clock: it polls a check until the check returns something truthy, and fails with one
line naming what it waited for when the deadline passes first. The sleep between two
checks is the poll interval, the only sleep the tests' waiting uses.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

T = TypeVar("T")

# Polls every 50 ms by default: fast enough that a wait adds little to a test, slow
# enough that twenty waiting tests do not load the shared 2-core machine.
INTERVAL_S = 0.05


async def _value(check: Callable[[], Awaitable[T] | T]) -> T:
    value = check()
    if inspect.isawaitable(value):
        return await value
    return value


Detail = Callable[[], Awaitable[object] | object]


@overload
async def eventually(  # an async check: the value it awaits to
    check: Callable[[], Awaitable[T]],
    *,
    what: str,
    within_s: float = ...,
    interval_s: float = ...,
    detail: Detail | None = ...,
) -> T: ...


@overload
async def eventually(
    check: Callable[[], T],
    *,
    what: str,
    within_s: float = ...,
    interval_s: float = ...,
    detail: Detail | None = ...,
) -> T: ...


async def eventually(
    check: Callable[[], Awaitable[T] | T],
    *,
    what: str,
    within_s: float = 30.0,
    interval_s: float = INTERVAL_S,
    detail: Detail | None = None,
) -> T:
    """Call ``check`` (sync or async) until it returns a truthy value, and return that.

    ``what`` names what is awaited ("both leases owned by b"); past ``within_s`` the
    test fails with it, the last value the check returned and, if given, ``detail()``
    (the state worth seeing, computed only then). An exception from the check is not
    retried: it fails the wait at once, as it would fail the test (a process that
    exited while it was awaited).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        value = await _value(check)
        if value:
            return value
        if loop.time() >= deadline:
            shown = "" if isinstance(value, bool) or value is None else f"; last: {value!r}"
            if detail is not None:
                shown += f"; {await _value(detail)}"
            raise AssertionError(f"not within {within_s:g}s: {what}{shown}")
        await asyncio.sleep(interval_s)
