"""Waiting in a service that can be asked to stop: the two shapes every loop needs.

- :func:`sleep_unless_stopped`: a loop's pause that ends early when the service stops.
- :func:`first_of`: run two awaitables until the first finishes; the other is
  cancelled, and both are awaited before it returns, so nothing it started outlives it.
  :func:`any_done` lets a long-lived task take part without being cancelled.
- :func:`every_until_stopped`: a round of work at an interval until the service stops,
  riding out a failed round (an outage) and raising a refusal.

Pure asyncio and the error tree: no driver, no settings. Every helper lets a
cancellation of its caller propagate, as asyncio code must (STYLE: always re-raise
``CancelledError``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any, TypeVar

from ..core.errors import DatabaseError, FatalDatabaseError

A = TypeVar("A")
B = TypeVar("B")


async def sleep_unless_stopped(stopping: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds``, or less if ``stopping`` is set meanwhile; True if it is set."""
    with suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
    return stopping.is_set()


async def any_done(*tasks: asyncio.Future[Any]) -> None:
    """Return once any of ``tasks`` is done, without touching them.

    Cancelling this wait leaves the tasks running: for a long-lived task (a service, a
    watcher) that :func:`first_of` must not cancel when the other side wins.
    """
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)


async def first_of(a: Awaitable[A], b: Awaitable[B]) -> tuple[asyncio.Future[A], asyncio.Future[B]]:
    """Run ``a`` and ``b`` until the first finishes.

    The other is cancelled, and both are awaited before this returns: the two futures
    come back done, the loser cancelled (both finished, if they did in the same step).
    For a bound on the wait, make one side :func:`sleep_unless_stopped`. An error raised by
    either is raised here (both: an ExceptionGroup), so a failure is never lost in a
    task nobody reads. A cancellation of the caller cancels and awaits both, then
    propagates.
    """
    fa, fb = asyncio.ensure_future(a), asyncio.ensure_future(b)
    try:
        await asyncio.wait({fa, fb}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future in (fa, fb):
            future.cancel()  # a no-op on the one already done
        # asyncio.wait raises only our own cancellation, never the futures' outcomes.
        await asyncio.wait({fa, fb})
    failures = [f.exception() for f in (fa, fb) if not f.cancelled()]
    errors = [e for e in failures if e is not None]
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise BaseExceptionGroup("both awaitables failed", errors)
    return fa, fb


async def every_until_stopped(
    stopping: asyncio.Event,
    every_s: float,
    round_: Callable[[], Awaitable[None]],
    on_failure: Callable[[DatabaseError], None],
) -> None:
    """Run ``round_`` every ``every_s`` seconds until ``stopping`` is set.

    A round that fails with a database error is reported (``on_failure``) and the next
    one tries again: an outage is ridden out. A refusal (FatalDatabaseError: a privilege
    revoked) is raised, since retrying cannot fix it.
    """
    while not stopping.is_set():
        try:
            await round_()
        except FatalDatabaseError:
            raise
        except DatabaseError as exc:
            on_failure(exc)
        await sleep_unless_stopped(stopping, every_s)
