"""Who processes a stream: hold its lease and run its watcher, or stand by.

Each instance runs one :class:`StreamOwner` per stream. It acquires the stream's lease
(see :mod:`streamer.leases`); while it holds it, a watcher runs and a renewal loop
extends the lease every third of its TTL. Losing the lease (a renewal finds another
owner, or cannot reach the database before the lease would expire) ends the watcher's
term: it stops reading, and its in-flight batch either commits (its checkpoint
compare-and-set still holds) or aborts. A standby retries the lease every third of the
TTL, so it takes over within one TTL of the owner's death, kills the dead owner's writer
session (an orphaned transaction would otherwise block it for 60 s) and resumes from the
checkpoint.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import suppress

import structlog

from .checkpoints import CheckpointStore
from .errors import DatabaseError, DatabaseUnavailable, FatalDatabaseError, StreamerError
from .leases import Lease, Leases
from .metrics import Metrics
from .mongo import Mongo
from .mongo.retries import retry_transient
from .sessions import WriterSessions
from .streams import BatchOutcome, StreamHandler
from .watchers import Watcher, WatcherOptions

log = structlog.get_logger("streamer.ownership")


class StreamOwner:
    def __init__(
        self,
        mongo: Mongo,
        store: CheckpointStore,
        handler: StreamHandler,
        options: WatcherOptions,
        stopping: asyncio.Event,
        *,
        lease_ttl_s: float,
        metrics: Metrics | None = None,
        on_batch: Callable[[str, BatchOutcome, float], None] | None = None,
    ) -> None:
        self.mongo = mongo
        self.store = store
        self.handler = handler
        self.options = options
        self.stopping = stopping
        self.ttl_s = lease_ttl_s
        self.metrics = metrics
        self.on_batch = on_batch
        self.policy = options.retry
        self.leases = Leases(mongo, store.owner, lease_ttl_s)
        self.sessions = WriterSessions(mongo, store.owner)
        self.watcher: Watcher | None = None
        self.owned = False
        self.alive = False
        self.log = log.bind(stream=handler.name, instance=store.owner)

    @property
    def name(self) -> str:
        return self.handler.name

    async def run(self) -> None:
        self.alive = True
        try:
            while not self.stopping.is_set():
                lease = await self._acquire()
                if lease is None:
                    await self._wait(self.ttl_s / 3)
                    continue
                if lease.previous_owner is not None:
                    await self._kill_previous(lease.previous_owner)
                await self._term()
        finally:
            self.alive = False

    async def _acquire(self) -> Lease | None:
        """The lease, or None (stand by) when another holds it or the database is away.

        Retried for at most a third of the TTL (the poll interval), so a standby never
        falls more than one poll behind.
        """
        try:
            return await retry_transient(
                lambda: self.leases.acquire(self.name),
                what=f"lease.{self.name}",
                max_delay_s=self.ttl_s / 3,
                policy=self.policy,
            )
        except DatabaseUnavailable as exc:
            self.log.warning("lease.unreachable", error=str(exc))
            return None

    async def _wait(self, seconds: float) -> None:
        with suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    async def _kill_previous(self, owner: str) -> None:
        """Best effort: an orphaned transaction the kill misses times out on the server."""
        try:
            await self.sessions.kill_owner(self.name, owner)
        except StreamerError as exc:
            self.log.warning("session.kill_failed", owner=owner, error=_describe(exc))

    async def _term(self) -> None:
        """Process the stream while the lease holds."""
        term_stop = asyncio.Event()
        watcher = Watcher(
            self.mongo,
            self.store,
            self.handler,
            self.options,
            term_stop,
            self.on_batch,
            metrics=self.metrics,
        )
        self.watcher, self.owned = watcher, True
        self.log.info("lease.acquired")
        watch = asyncio.create_task(watcher.run(), name=f"watch-{self.name}")
        renew = asyncio.create_task(self._renew_until_lost(), name=f"lease-{self.name}")
        stop = asyncio.create_task(self.stopping.wait())
        try:
            await asyncio.wait({watch, renew, stop}, return_when=asyncio.FIRST_COMPLETED)
            term_stop.set()
            await watch  # finishes its batch; re-raises a watcher failure
            failure = renew.exception() if renew.done() and not renew.cancelled() else None
            if failure is not None:
                raise failure  # a bug in the renewal loop, not an outage: surface it
        finally:
            # Every task started here is cancelled, then awaited. Their own
            # CancelledErrors come back as results; a cancellation of this task
            # propagates out of gather() untouched.
            for task in (renew, stop, watch):
                task.cancel()
            await asyncio.gather(renew, stop, watch, return_exceptions=True)
            self.owned = False
            if self.stopping.is_set():
                await self._release()

    async def _release(self) -> None:
        """Hand the lease over at once; if that fails, a standby waits out the TTL."""
        try:
            await self.leases.release(self.name)
        except StreamerError as exc:
            self.log.warning("lease.release_failed", error=_describe(exc))
            return
        self.log.info("lease.released")

    async def _renew_until_lost(self) -> None:
        deadline = time.monotonic() + self.ttl_s
        while True:
            await asyncio.sleep(self.ttl_s / 3)
            try:
                lease = await self.leases.renew(self.name)
            except FatalDatabaseError:
                raise  # refused (a privilege revoked): not an outage to ride out
            except DatabaseError as exc:
                if time.monotonic() < deadline - self.ttl_s / 6:
                    self.log.warning("lease.renew_failed", error=_describe(exc))
                    continue
                self.log.error("lease.expiring_unrenewed")
                return
            if lease is None:
                self.log.warning("lease.lost")
                return
            deadline = time.monotonic() + self.ttl_s


def _describe(exc: BaseException) -> str:
    """One line for a log: the error's type and message."""
    return f"{type(exc).__name__}: {exc}"
