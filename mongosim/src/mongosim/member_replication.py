"""A member of a multi-member set (``Member``), and what it asks its set: the
``majority.MemberReplication`` of each member of a ``replset.ReplicaSet``.

Its write concerns wait until the members hold a write, its majority reads and change
streams see only up to the commit point on its own branch, and ``afterClusterTime`` waits
until it has applied up to a time. Every wait re-checks on the set's ``Progress`` event,
never on a timer.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bson.timestamp import Timestamp

from . import rollback
from .majority import Replicated
from .oplog import Progress
from .server import MongoSim


@dataclass
class Member:
    """One member of a ``replset.ReplicaSet``: its address, its running MongoSim (None
    while down) and what the set remembers of it across restarts."""

    index: int
    port: int
    data_dir: Path
    sim: MongoSim | None = None  # None while the member is down
    puller: asyncio.Task[None] | None = None
    optime: tuple[Timestamp, int] = (Timestamp(0, 0), -1)  # last seen (kept while down)
    rbid: int = 1  # replSetGetRBID's rollback id, kept across restarts
    clients_cut: bool = False  # isolated from clients as well (isolate(from_clients=True))
    waiters: int = 0  # commands waiting for their write concern on it (tests watch this)
    host: str = field(default="")

    @property
    def up(self) -> bool:
        return self.sim is not None


class SetState(Protocol):
    """What a member's replication reads of its set (``replset.ReplicaSet``)."""

    members: list[Member]
    progress: Progress
    unsafe_uncommitted_change_streams: bool

    @property
    def primary(self) -> int | None: ...

    @property
    def majority(self) -> int: ...

    def commit_point(self) -> tuple[Timestamp, int]: ...

    def holds(self, member: Member, ts: Timestamp, term: int) -> bool: ...


class SetMemberReplication:
    """One member's view of its set's replication (``majority.MemberReplication``): what
    its write concerns, majority reads, change streams and afterClusterTime wait for."""

    def __init__(self, rs: SetState, member: Member) -> None:
        self.rs, self.member = rs, member

    @property
    def unsafe_uncommitted_change_streams(self) -> bool:
        return self.rs.unsafe_uncommitted_change_streams

    def _newest(self) -> Timestamp:
        sim = self.member.sim
        newest = sim.engine.oplog.newest if sim is not None else None
        return newest.ts if newest is not None else Timestamp(0, 0)

    def committed_ts(self) -> Timestamp:
        """The commit point as of this member: never past what it has applied itself
        (a lagging secondary reads, and streams, only what it holds)."""
        committed, term = self.rs.commit_point()
        newest = self._newest()
        behind = (committed.time, committed.inc) <= (newest.time, newest.inc)
        point = committed if behind else newest
        member, rs = self.member, self.rs
        if rs.holds(member, committed, term) or rs.primary in (None, member.index):
            return point
        # Its log may have diverged from the majority's (a deposed primary cut off, its
        # w:1 writes past the common point): a timestamp alone would cover them once the
        # other side's commit point passes it. Never past the newest entry of its own
        # that the primary's log holds too (mongod's member knows the commit point only
        # on its own branch, and learns it from its sync source).
        primary = rs.members[rs.primary].sim
        if member.sim is None or primary is None:
            return point
        newest_slot = member.sim.engine.oplog.newest
        if newest_slot is not None and rs.holds(
            rs.members[rs.primary], newest_slot.ts, newest_slot.term
        ):
            return point  # a lagging member on the primary's branch
        common = rollback.common_point(member.sim.engine.oplog, primary.engine.oplog)
        if common is None:
            return Timestamp(0, 0)
        return common.ts if (common.ts.time, common.ts.inc) < (point.time, point.inc) else point

    def note_write(self) -> None:
        # Only a set of one is a majority by its primary's write alone.
        if self.rs.majority == 1:
            self.rs.commit_point()

    async def wait_for_news(self, seconds: float) -> bool:
        return await self.rs.progress.wait_for_news(seconds)

    def _term_of(self, ts: Timestamp) -> int | None:
        """The term of this member's entry at ``ts``; else the primary's, for a write this
        member sent through it (a secondary's $out/$merge) and has not applied yet."""
        rs = self.rs
        primary = rs.members[rs.primary].sim if rs.primary is not None else None
        for sim in (self.member.sim, primary):
            if sim is None:
                continue
            slot = next(sim.engine.oplog.slots_after(ts, inclusive=True), None)
            if slot is not None and slot.ts == ts:
                return slot.term
        return None

    async def await_replication(
        self, ts: Timestamp, w: int | str, timeout_s: float | None, *, wrote: bool
    ) -> Replicated:
        """Until the write at ``ts`` (this member's) is majority-committed (w "majority":
        the commit point is at or past it, on the primary's log) or ``w`` members that are
        up hold it; TIMED_OUT when ``timeout_s`` passes first. A primary that steps down
        while the write waits (replSetStepDown, another member elected, the majority
        lost, a higher term seen on heal, killed) ends the wait at once, INTERRUPTED, as
        mongod's step-down kills it (majority.stepped_down_error); a write whose member
        was no longer primary when its wait began fails at once, NOT_PRIMARY."""
        rs = self.rs
        sim = self.member.sim
        topology = sim.topology if sim is not None else None
        as_primary = topology is not None and topology.primary
        if wrote and not as_primary:
            return Replicated.NOT_PRIMARY
        primary_term = topology.term if topology is not None else None

        def stepped_down() -> bool:
            # Another MongoSim (killed, restarted) or a new term is a step-down too.
            if not as_primary or self.member.sim is not sim or topology is None:
                return as_primary
            return not topology.primary or topology.term != primary_term

        term = self._term_of(ts)
        if term is None:
            newest = self.member.sim.engine.oplog.newest if self.member.sim else None
            if newest is None:
                return Replicated.SATISFIED
            ts, term = newest.ts, newest.term  # a write that wrote nothing: the last op
        optime = (ts, term)

        def on_majority_log() -> bool:
            primary = rs.members[rs.primary] if rs.primary is not None else None
            return rs.holds(self.member, *optime) and (
                primary is None or rs.holds(primary, *optime)
            )

        def done() -> bool:
            if w == "majority":
                point, _ = rs.commit_point()
                return (point.time, point.inc) >= (ts.time, ts.inc) and on_majority_log()
            assert isinstance(w, int)
            return sum(1 for m in rs.members if rs.holds(m, *optime)) >= w

        self.member.waiters += 1
        try:
            ended = await rs.progress.wait_until(lambda: done() or stepped_down(), timeout_s)
        finally:
            self.member.waiters -= 1
        if ended and done():
            return Replicated.SATISFIED
        return Replicated.INTERRUPTED if ended else Replicated.TIMED_OUT

    async def await_applied(
        self, ts: Timestamp, *, committed: bool, timeout_s: float | None
    ) -> bool:
        """Until this member has applied up to ``ts`` (its commit point has, when
        ``committed``). A cluster time past the primary's newest write is made real by a
        no-op on the primary, as mongod's makeNoopWriteIfNeeded (read_concern_mongod.cpp)."""
        rs = self.rs
        target = (ts.time, ts.inc)
        primary = rs.members[rs.primary].sim if rs.primary is not None else None
        if primary is not None and primary.engine.writable:
            newest = primary.engine.oplog.newest
            if newest is None or (newest.ts.time, newest.ts.inc) < target:
                primary.engine.oplog.advance_clock_to(ts)  # the no-op's time is past ts
                primary.engine.append_noop("advance cluster time for afterClusterTime")

        def done() -> bool:
            at = self.committed_ts() if committed else self._newest()
            return (at.time, at.inc) >= target

        return await rs.progress.wait_until(done, timeout_s)
