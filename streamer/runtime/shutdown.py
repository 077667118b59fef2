"""The one shutdown path: SIGTERM and SIGINT, whatever the process is doing.

The first signal calls ``on_stop``: the service sets its ``stopping`` event (it stops
taking new batches, lets the batch in flight commit or abort within
``shutdown_grace_s``, releases its leases and exits 0); a one-shot command cancels its
work and exits :data:`INTERRUPTED`. Every wait of the service races ``stopping``
(:func:`unless_stopped`), so in phases without a batch in flight (connecting,
bootstrap, standing by) the stop takes effect at once.

A second signal means "now": one line, ``forced stop``, and exit :data:`FORCED_STOP`
without running anything else. ``os._exit`` is deliberate: whatever did not stop after
the first signal (a driver call stuck on a dead socket, say) must not hold the process,
and the database is safe either way, since every batch commits atomically with its
checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from .lifecycle import first_of

T = TypeVar("T")

FORCED_STOP = 3  # exit code of a second signal
INTERRUPTED = 130  # exit code of a one-shot command stopped by a signal (128 + SIGINT)
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Signals:
    """Route SIGTERM/SIGINT: the first to ``on_stop``, the second to a forced exit."""

    def __init__(
        self,
        on_stop: Callable[[], None],
        *,
        name: str = "streamer",
        on_force: Callable[[], None] | None = None,
    ) -> None:
        self.on_stop = on_stop
        self.name = name
        # What must not outlive even a forced stop (the demo's keys and passwords): quick,
        # synchronous, and never in the way of the exit.
        self.on_force = on_force
        self.received = 0

    def install(self) -> Signals:
        loop = asyncio.get_running_loop()
        for signum in SIGNALS:
            loop.add_signal_handler(signum, self._on_signal)
        return self

    def uninstall(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in SIGNALS:
            loop.remove_signal_handler(signum)

    def _on_signal(self) -> None:
        self.received += 1
        if self.received == 1:
            self.on_stop()
            return
        if self.on_force is not None:
            with contextlib.suppress(Exception):
                self.on_force()
        force_exit(self.name)


def force_exit(name: str) -> None:
    """The second signal: one line, no cleanup, no traceback."""
    sys.stdout.flush()
    sys.stderr.write(f"\n{name}: forced stop\n")
    sys.stderr.flush()
    os._exit(FORCED_STOP)


async def unless_stopped(operation: Awaitable[T], stopping: asyncio.Event) -> T | None:
    """``operation``'s result, or None if ``stopping`` is set first (it is then cancelled).

    The cancelled operation is awaited before returning, so nothing it started outlives
    the call. A cancellation of the caller itself propagates, as it must.
    """
    if stopping.is_set():
        if asyncio.iscoroutine(operation):
            operation.close()
        return None
    task, _ = await first_of(operation, stopping.wait())
    return None if task.cancelled() else task.result()
