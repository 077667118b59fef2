"""Who processes a stream, or one partition of a split stream: hold its lease and run
its watcher, stand by, or hand it over.

Each instance runs one :class:`StreamOwner` per stream, or per partition of a split
stream (:mod:`streamer.core.partitions`); everything below holds per partition.

An owner acquires its lease (see :mod:`streamer.runtime.leases`); while it holds it, a
watcher runs and a renewal loop extends the lease every third of its TTL. Losing the
lease (a renewal finds another owner, or cannot reach the database before the lease
would expire) ends the watcher's term: it stops reading, and its in-flight batch either
commits (its checkpoint compare-and-set still holds) or aborts. A standby retries the
lease every third of the TTL, so it takes over within one TTL of the owner's death,
kills the dead owner's writer session (an orphaned transaction would otherwise block it
for 60 s; not after a clean release) and resumes from the checkpoint.

For a split stream the owner does not poll: the instance's
:class:`~streamer.runtime.assignment.Assigner` permits a try at a lease that looked free,
and asks for a held one back when this instance holds more than its fair share (the
term ends after the batch in hand and the lease is released at once).

A lease belongs to an instance id and a process (see :mod:`streamer.runtime.leases`). A process
that finds its own id holding the lease under another process takes it at once if that
process ran on this machine and no longer runs (:mod:`streamer.runtime.processes`). Otherwise it
stands by too, and says so once at warning level: either two live processes share the id
(a mistake to fix), or the id's previous process died (a restarted pod), whose lease it
takes over once it has gone unrenewed for half the TTL, polling every sixth of the TTL
meanwhile. Its watcher then kills the writer session the previous process left under
this id.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import structlog

from ..core.errors import DatabaseUnavailable, StreamerError
from ..mongo.retries import retry_transient
from .leases import Held, Lease, Leases, renew_every_s, renew_until_lost, unrenewed_after_s
from .lifecycle import any_done, first_of, sleep_unless_stopped
from .processes import THIS_PROCESS, ProcessId, gone
from .sessions import WriterSessions
from .watchers import StreamWork, Watcher

log = structlog.get_logger("streamer.ownership")

# Handovers from a holder that stopped renewing, whose writer session may hold an open
# transaction (leases.Handover).
TAKEN_OVER = frozenset({"expired", "gone", "unrenewed"})


class StreamOwner:
    def __init__(
        self,
        work: StreamWork,
        stopping: asyncio.Event,
        *,
        lease_ttl_s: float,
        process: ProcessId = THIS_PROCESS,
        assigned: bool = False,
    ) -> None:
        self.work = work
        self.stopping = stopping
        self.ttl_s = lease_ttl_s
        self.policy = work.options.retry
        self.leases = Leases(work.mongo, work.store.owner, lease_ttl_s, process=process)
        self.sessions = WriterSessions(work.mongo, work.store.owner)
        self.watcher: Watcher | None = None
        self.owned = False
        self.alive = False
        self.standing_by: Held | None = None  # whose lease this one last stood by for
        # The partition this owner works, and its lease's id (the stream's when unsplit).
        self.unit = work.handler.partition
        self.key = self.unit.key
        # Split streams: an Assigner decides when this owner tries the lease (permit)
        # and when it hands a held one over; unsplit, it polls as a standby does.
        self.assigned = assigned
        self._permit = asyncio.Event()
        self._hand_over = asyncio.Event()
        self.log = log.bind(stream=self.key, instance=work.store.owner)

    @property
    def name(self) -> str:
        return self.work.handler.name

    def permit(self) -> None:
        """The assigner's word: try the lease once (it looked free)."""
        self._permit.set()

    def hand_over(self) -> None:
        """The assigner's word: finish the batch in hand, then release the lease."""
        if self.owned:
            self._hand_over.set()

    async def run(self) -> None:
        self.alive = True
        try:
            while not self.stopping.is_set():
                if self.assigned and not await self._permitted():
                    break
                lease = await self._acquire()
                if not isinstance(lease, Lease):
                    self._standby(lease)
                    if not self.assigned:
                        await self._wait(poll_every_s(lease, self.ttl_s))
                    continue
                self.standing_by = None
                level, event, fields = acquired_line(lease, self.ttl_s)
                self.log.log(level, event, **fields)
                if lease.previous_owner is not None and lease.handover in TAKEN_OVER:
                    # Only from a holder that stopped renewing: one that released its
                    # lease ended its transactions first.
                    await self._kill_previous(lease.previous_owner)
                await self._term()
        finally:
            self.alive = False

    def _standby(self, held: Held | None) -> None:
        """Say why this one stands by, once per holder (not on every poll)."""
        if held is None or held == self.standing_by:
            return
        self.standing_by = held
        level = logging.WARNING if held.same_id else logging.INFO
        self.log.log(level, "lease.standby", holder=held.owner, reason=standby_reason(held))

    async def _acquire(self) -> Lease | Held | None:
        """The lease, or who holds it, or None when the database is away.

        Retried for at most a third of the TTL (the poll interval), so a standby never
        falls more than one poll behind.
        """
        try:
            claim = await self._try_acquire(None)
            if (
                isinstance(claim, Held)
                and claim.same_id
                and gone(claim.process, self.leases.process)
            ):
                # Our id, under a process of this machine that no longer runs: ours now.
                claim = await self._try_acquire(claim.nonce)
            return claim
        except DatabaseUnavailable as exc:
            self.log.warning("lease.unreachable", error=str(exc))
            return None

    async def _try_acquire(self, gone_nonce: str | None) -> Lease | Held | None:
        return await retry_transient(
            lambda: self.leases.acquire(self.key, gone=gone_nonce),
            what=f"lease.{self.key}",
            max_delay_s=self.ttl_s / 3,
            policy=self.policy,
        )

    async def _wait(self, seconds: float) -> None:
        await sleep_unless_stopped(self.stopping, seconds)

    async def _permitted(self) -> bool:
        """Wait for the assigner's permit; False once stopping."""
        await first_of(self._permit.wait(), self.stopping.wait())
        self._permit.clear()  # used up by this try; a permit given before it waits counts
        return not self.stopping.is_set()

    async def _kill_previous(self, owner: str) -> None:
        """Best effort: an orphaned transaction the kill misses times out on the server."""
        try:
            await self.sessions.kill_owner(self.key, owner)
        except StreamerError as exc:
            self.log.warning("session.kill_failed", owner=owner, error=_describe(exc))

    async def _term(self) -> None:
        """Process the stream while the lease holds."""
        term_stop = asyncio.Event()
        watcher = Watcher(self.work, term_stop)
        self.watcher, self.owned = watcher, True
        watch = asyncio.create_task(watcher.run(), name=f"watch-{self.key}")
        renew = asyncio.create_task(self._renew_until_lost(), name=f"lease-{self.key}")
        self._hand_over.clear()
        handing_over = False
        try:
            # The term ends when the watcher fails, the lease is lost, the assigner asks
            # for the partition, or the service stops.
            await first_of(
                any_done(watch, renew), first_of(self.stopping.wait(), self._hand_over.wait())
            )
            handing_over = self._hand_over.is_set() and not renew.done()
            term_stop.set()
            await watch  # finishes its batch; re-raises a watcher failure
            failure = renew.exception() if renew.done() and not renew.cancelled() else None
            if failure is not None:
                raise failure  # a bug in the renewal loop, not an outage: surface it
        finally:
            # Every task started here is cancelled, then awaited. Their own
            # CancelledErrors come back as results; a cancellation of this task
            # propagates out of gather() untouched.
            for task in (renew, watch):
                task.cancel()
            await asyncio.gather(renew, watch, return_exceptions=True)
            self.owned = False
            if self.stopping.is_set() or handing_over:
                await self._release()
            if handing_over and self.work.metrics is not None:
                self.work.metrics.rebalances.labels(self.name).inc()

    async def _release(self) -> None:
        """Hand the lease over at once; if that fails, a standby waits out the TTL."""
        try:
            await self.leases.release(self.key)
        except StreamerError as exc:
            self.log.warning("lease.release_failed", error=_describe(exc))
            return
        self.log.info("lease.released")

    async def _renew_until_lost(self) -> None:
        await renew_until_lost(self.leases, self.key, self.ttl_s, self.log)


def poll_every_s(held: Held | None, ttl_s: float) -> float:
    """How long a standby waits before its next poll.

    For our own id under another process, twice as often as for another instance: that
    lease is taken over once it has gone unrenewed for half the TTL, not at its expiry,
    and a restarted process should not lose most of a poll interval on top of that.
    """
    every = renew_every_s(ttl_s)
    return every / 2 if held is not None and held.same_id else every


def standby_reason(held: Held) -> str:
    """Why a process stands by, for its one ``lease.standby`` line."""
    if held.same_id:
        return (
            f"held by this instance id under another process (nonce {held.nonce or 'none'}): "
            "either another live process has the same instance id (give each its own "
            "STREAMER_INSTANCE_ID), or this id's previous process died and its lease is "
            "taken over once unrenewed"
        )
    return f"held by instance {held.owner}"


def acquired_line(lease: Lease, ttl_s: float) -> tuple[int, str, dict[str, Any]]:
    """The level, event and fields that say how this process came to own the stream.

    A first lease, our own, or one handed over by a clean stop is routine (info); one
    taken from a holder that stopped renewing means a process died or lost the database,
    which an operator should look at (warning).
    """
    why = {
        "expired": "its lease expired: that instance died or lost the database",
        "gone": "held by this instance id under another process of this machine, "
        "which no longer runs: it died",
        "unrenewed": "held by this instance id under another process that left it "
        f"unrenewed for over {unrenewed_after_s(ttl_s):g}s: that process died",
    }.get(lease.handover)
    if why is not None:
        # An expired lease names the instance before; a same-id one, its process.
        before = (
            {"previous_owner": lease.previous_owner}
            if lease.handover == "expired"
            else {"previous_nonce": lease.previous_nonce}
        )
        return logging.WARNING, "lease.taken_over", {**before, "reason": why}
    fields: dict[str, Any] = {"handover": lease.handover}
    if lease.previous_owner is not None:
        fields["previous_owner"] = lease.previous_owner
    return logging.INFO, "lease.acquired", fields


def _describe(exc: BaseException) -> str:
    """One line for a log: the error's type and message."""
    return f"{type(exc).__name__}: {exc}"
