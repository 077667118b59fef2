"""A replica set of several members in one process: replication, elections, kill/restart.

Each member is a whole ``MongoSim`` (its own port, Engine, storage, oplog, history and data
dir); the set owns them and is their ``topology.SetView``. All members share one event
loop, so tests control elections (and, later, the network) deterministically through
Python calls, and replication is a direct call rather than a protocol of its own.

Where the state lives (the hooks later work builds on):

- a member's last applied optime: its own oplog's newest slot (``ts``, ``term``),
  ``Topology.optime()``; a member that is down keeps the last one seen (``Member.optime``);
- the term: ``ReplicaSet.term``; each election increments it, each member's
  ``Topology.term`` follows it, new oplog slots carry it (``Oplog.term``);
- the commit point: ``ReplicaSet.commit_point()``, the newest optime a majority has,
  advanced as members apply; ``ReplicaSet.progress`` wakes whoever waits on it (each
  member's ``Engine.replication``, a ``member_replication.SetMemberReplication``: write
  concerns, majority reads, change streams, afterClusterTime);
- who may talk to whom: ``ReplicaSet.connected(a, b)``, the network the tests control
  (``partition``, ``isolate``, ``heal``);
- divergence (a member holding entries its sync source lacks): ``ReplicaSet._diverged``
  rolls it back (``rollback.py``: documents and catalog commands, a dropped collection
  kept drop-pending until the commit point passes its drop, ``drop_pending.py``); a
  member that cannot roll back, or whose oplog its source's no longer reaches (its data
  dir lost, say), resyncs: an initial sync from its source (``initial_sync.py``).

Heartbeats are not timed messages: whether two members hear each other is the network
graph, known to both at the moment it changes. The election timeout runs from that
moment, so a loaded event loop that runs late never makes a member miss heartbeats and
never causes a spurious election; tests skip the wait with ``timeout_now()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as _dt
import logging
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from bson.int64 import Int64
from bson.timestamp import Timestamp

from . import initial_sync, rollback
from .engine import Engine
from .errors import MongoError
from .member_replication import Member, SetMemberReplication
from .oplog import OplogSlot, Progress
from .server import MongoSim
from .user_store import EngineStore
from .users import Catalog

log = logging.getLogger("mongosim")

DEFAULT_REPLICATION_DELAY_MS = 5
# mongod's electionTimeoutMillis is 10 s; a primary that is killed or shut down is
# replaced after this long unless a test elects one at once (ReplicaSet.elect).
DEFAULT_ELECTION_TIMEOUT_MS = 10_000
# mongod's default secondaryCatchUpPeriodSecs for replSetStepDown.
_STEP_DOWN_PERIOD_S = 60.0


def _key(optime: tuple[Timestamp, int]) -> tuple[int, int, int]:
    ts, term = optime
    return (term, ts.time, ts.inc)


class ReplicaSet:
    """``async with ReplicaSet(members=3) as rs: rs.uri`` — members 0..n-1, 0 the first
    primary; ``kill``, ``restart``, ``step_down``, ``step_up``, ``elect``, ``primary``."""

    def __init__(
        self,
        members: int = 3,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        replset: str = "rs0",
        replication_delay_ms: float = DEFAULT_REPLICATION_DELAY_MS,
        election_timeout_ms: float = DEFAULT_ELECTION_TIMEOUT_MS,
        data_dir: str | Path | None = None,
        auth: bool = False,
        unsafe_uncommitted_change_streams: bool = False,
        **member_options: Any,
    ) -> None:
        """``unsafe_uncommitted_change_streams`` is for tests only, the negative control of
        the rollback scenarios: change streams return events the majority does not have
        yet (mongod never does), so a consumer can see writes that are later rolled back."""
        if members < 1:
            raise ValueError("a replica set needs at least one member")
        self.host, self.replset = host, replset
        self.replication_delay_s = replication_delay_ms / 1000
        self.election_timeout_s = election_timeout_ms / 1000
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if data_dir is None:
            # Each member keeps a data dir so that restart() recovers it through the one
            # recovery path (persistence.DataDir), as a restarted mongod reads its disk.
            self._tmp = tempfile.TemporaryDirectory(prefix="mongosim-rs-")
            data_dir = self._tmp.name
        base = Path(data_dir)
        self.members = [
            Member(i, port + i if port else 0, base / f"member{i}") for i in range(members)
        ]
        self.auth = auth
        self.member_options = member_options
        self.term = 1
        self.set_version = 1
        self._primary: int | None = None
        self._committed: tuple[Timestamp, int] = (Timestamp(0, 0), -1)
        self.unsafe_uncommitted_change_streams = unsafe_uncommitted_change_streams
        self.progress = Progress()  # a member applied, the commit point moved, the set changed
        self._changed = asyncio.Event()
        self._election: asyncio.TimerHandle | None = None
        # Per member, the step-down of a primary that cannot see a majority (mongod's
        # liveness check), due an election timeout after it lost contact.
        self._stepdowns: dict[int, asyncio.TimerHandle] = {}
        # The network: each member's group; members in different groups cannot talk.
        self._group_of: dict[int, int] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- lifecycle -------------------------------------------------------------------
    @property
    def uri(self) -> str:
        hosts = ",".join(self.hosts())
        tls = "&tls=true" if self.member_options.get("tls_cert_key_file") else ""
        return f"mongodb://{hosts}/?replicaSet={self.replset}{tls}"

    def uri_of(self, index: int) -> str:
        """A direct connection to one member (a secondary answers reads there)."""
        return f"mongodb://{self.members[index].host}/?directConnection=true"

    async def start(self) -> None:
        try:
            for member in self.members:
                await self._start_member(member, primary=member.index == 0)
        except BaseException:
            await self.close()
            raise
        self._primary = 0
        first = self.members[0].sim
        assert first is not None and first.topology is not None
        first.topology.become_primary(self.term)
        # replSetInitiate: the other members initial-sync from the first before the set
        # serves, so it starts with a commit point (majority reads have one to read at).
        for member in self.members[1:]:
            if member.sim is not None:
                self._apply_from(member, self._missing(member, self.members[0]) or [])
        self._notify()

    async def close(self) -> None:
        if self._election is not None:
            self._election.cancel()
        for handle in self._stepdowns.values():
            handle.cancel()
        for member in self.members:
            await self._stop_member(member)
        for task in list(self._tasks):
            task.cancel()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def __aenter__(self) -> ReplicaSet:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _start_member(self, member: Member, *, primary: bool) -> None:
        sim = MongoSim(
            host=self.host,
            port=member.port,
            replset=self.replset,
            data_dir=member.data_dir,
            auth=self.auth,
            member_of=self,
            members=len(self.members),
            primary=primary,
            on_shutdown=lambda: self._spawn(self.shutdown(member.index)),
            **self.member_options,
        )
        # Users and roles are each member's own, in its admin.system.users/system.roles,
        # replicated, journaled and rolled back with its data, as mongod's (users.py).
        sim.auth.catalog = Catalog(store=EngineStore(sim.engine))
        await sim.start()
        assert sim.topology is not None
        sim.topology.term = self.term
        sim.topology.rbid = member.rbid
        if member.clients_cut:
            sim.cut_clients(True)
        member.port = sim.port
        member.host = f"{self.host}:{sim.port}"
        member.sim = sim
        # It keeps what it drops until the drop is majority-committed, for a rollback.
        sim.engine.drop_pending.enabled = True
        sim.engine.replication = SetMemberReplication(self, member)
        sim.failpoints.on_configure = self._notify  # wakes an applier held by stopReplProducer
        sim.engine.primary_engine = lambda: self._reachable_primary_engine(member)
        self._note_optime(member)
        member.puller = asyncio.get_running_loop().create_task(
            self._replicate(member), name=f"mongosim-replicate-{member.index}"
        )

    async def _stop_member(self, member: Member) -> None:
        sim, member.sim = member.sim, None
        if member.puller is not None:
            member.puller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await member.puller
            member.puller = None
        if sim is not None:
            # MongoSim.close runs no shutdown code of mongod's (no step-down, no
            # compaction): connections are aborted and the journal is what survives.
            await sim.close()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the Python API for tests ------------------------------------------------------
    @property
    def primary(self) -> int | None:
        """The primary's index, or None while the set has none."""
        return self._primary

    def sim(self, index: int) -> MongoSim:
        sim = self.members[index].sim
        if sim is None:
            raise RuntimeError(f"member {index} is down")
        return sim

    async def kill(self, index: int) -> None:
        """As abrupt as SIGKILL: connections aborted, no step-down; what it journaled
        survives for restart(). A killed primary is replaced after the election timeout
        (or at once by elect())."""
        member = self.members[index]
        if not member.up:
            return
        self._note_optime(member)
        if self._primary == index:
            self._primary = None
        handle = self._stepdowns.pop(index, None)
        if handle is not None:
            handle.cancel()
        await self._stop_member(member)
        self._notify()
        self._reconsider()  # a primary gone: the others elect one after the timeout

    async def shutdown(self, index: int) -> None:
        """The shutdown command's stop (its step-down, when not forced, came before)."""
        await self.kill(index)

    async def restart(self, index: int) -> None:
        """Start a member that is down on its port again, from its data dir, as a
        secondary that catches up from the primary."""
        member = self.members[index]
        if member.up:
            return
        await self._start_member(member, primary=False)
        self._refresh_views()
        self._notify()
        self._reconsider()

    async def step_down(self) -> None:
        """replSetStepDown on the primary: another member, caught up, is elected."""
        if self._primary is None:
            raise MongoError(10107, "not primary so can't step down")
        await self.step_down_member(self.members[self._primary].host, {"replSetStepDown": 60})

    async def step_up(self, index: int) -> None:
        """replSetStepUp on member ``index``: it is elected; the old primary steps down."""
        self.step_up_member(self.members[index].host)

    async def elect(self, candidate: int | None = None) -> int:
        """Hold an election now: ``candidate``, or the most up-to-date member that is up
        (the lowest index among equals). Returns the new primary's index."""
        if candidate is None:
            return self._elect_best()
        self._elect(candidate)
        return candidate

    async def wait_for_primary(
        self, *, other_than: int | None = None, timeout_s: float = 30.0
    ) -> int:
        """Until the set has a primary (other than member ``other_than``): its index.
        Woken by each change of the set, never polled; TimeoutError after ``timeout_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            changed = self._changed
            if self._primary is not None and self._primary != other_than:
                return self._primary
            await asyncio.wait_for(changed.wait(), max(0.0, deadline - loop.time()))

    def write_concern_waiters(self, index: int) -> int:
        """How many commands wait for their write concern on member ``index`` now (a test
        knows its write is waiting before it makes the fault)."""
        return self.members[index].waiters

    async def timeout_now(self) -> None:
        """As if the election timeout passed now: each primary that cannot see a majority
        steps down, and a majority with no primary elects one. What the timers do, at
        once, so tests need not wait on the clock."""
        for index in list(self._stepdowns):
            self._stepdowns.pop(index).cancel()
            self._lost_majority(index)
        if self._needs_election():
            self._run_election()

    # -- the network (tests) ----------------------------------------------------------------
    async def partition(self, *groups: Iterable[int]) -> None:
        """Cut the network: members in different groups can no longer talk (replication,
        votes, heartbeats). Every member must be in exactly one group; ``heal`` undoes it.
        Clients still reach every member (``isolate(from_clients=True)`` cuts them too)."""
        group_of: dict[int, int] = {}
        for g, group in enumerate(groups):
            for index in group:
                if index in group_of or not 0 <= index < len(self.members):
                    raise ValueError(f"member {index} named twice or not in the set")
                group_of[index] = g
        if len(group_of) != len(self.members):
            raise ValueError("a partition names every member once")
        self._group_of = group_of
        log.info("network partitioned: %s", [sorted(g) for g in groups])
        self._network_changed()

    async def isolate(self, index: int, *, from_clients: bool = False) -> None:
        """Cut member ``index`` off from the others; with ``from_clients``, from clients
        too: its connections are aborted and new ones aborted as they are accepted."""
        await self.partition([index], [m.index for m in self.members if m.index != index])
        if from_clients:
            member = self.members[index]
            member.clients_cut = True
            if member.sim is not None:
                member.sim.cut_clients(True)

    async def heal(self) -> None:
        """Every member can talk to every other, and clients to every member, again."""
        self._group_of = {}
        for member in self.members:
            if member.clients_cut:
                member.clients_cut = False
                if member.sim is not None:
                    member.sim.cut_clients(False)
        log.info("network healed")
        self._network_changed()

    def _network_changed(self) -> None:
        self._refresh_views()
        self._notify()
        self._reconsider()

    # -- SetView (what each member's Topology asks) --------------------------------------
    def hosts(self) -> list[str]:
        return [m.host for m in self.members]

    def primary_host(self) -> str | None:
        return self.members[self._primary].host if self._primary is not None else None

    def majority_optime(self) -> dict[str, Any]:
        ts, term = self.commit_point()
        return {"ts": ts, "t": Int64(term)}

    def status(self, me: str) -> dict[str, Any]:
        """replSetGetStatus as member ``me`` sees the set: every member, its state and
        optime (one it cannot reach: health 0, state 8), and the commit point."""
        now = _dt.datetime.now(_dt.UTC)
        mine = next(m for m in self.members if m.host == me)
        members = []
        for m in self.members:
            reachable = m is mine or self.connected(mine, m)
            if reachable:
                self._note_optime(m)
            ts, term = m.optime
            optime = {"ts": ts, "t": Int64(term)}
            state, state_str = (1, "PRIMARY") if self._is_primary(m) else (2, "SECONDARY")
            if not reachable:
                state, state_str = 8, "(not reachable/healthy)"
            entry: dict[str, Any] = {
                "_id": m.index,
                "name": m.host,
                "health": 1.0 if reachable else 0.0,
                "state": state,
                "stateStr": state_str,
                "optime": optime,
                "optimeDate": _dt.datetime.fromtimestamp(ts.time, _dt.UTC),
            }
            if m is mine:
                entry["self"] = True
            source = self._sync_source(m) if reachable else None
            if source is not None:
                entry["syncSourceHost"] = source.host
            members.append(entry)
        self._note_optime(mine)
        applied = {"ts": mine.optime[0], "t": Int64(mine.optime[1])}
        committed = self.majority_optime()
        topology = mine.sim.topology if mine.sim is not None else None
        return {
            "set": self.replset,
            "date": now,
            "myState": 1 if self._is_primary(mine) else 2,
            "term": Int64(topology.term if topology is not None else self.term),
            "members": members,
            "optimes": {
                "lastCommittedOpTime": committed,
                "readConcernMajorityOpTime": committed,
                "appliedOpTime": applied,
                "durableOpTime": applied,
            },
        }

    async def step_down_member(self, me: str, cmd: Mapping[str, Any]) -> dict[str, Any]:
        """replSetStepDown: the most up-to-date other member that is up is caught up and
        elected at once; mongod waits up to secondaryCatchUpPeriodSecs for one to catch up,
        and with none fails with ExceededTimeLimit (262) unless ``force``."""
        index = self._index_of(me)
        if not self._is_primary(self.members[index]):
            raise MongoError(10107, "not primary so can't step down")
        others = [
            m for m in self.members if m.index != index and self.connected(m, self.members[index])
        ]
        if not others:
            if not cmd.get("force"):
                raise MongoError(
                    262,
                    f"No electable secondaries caught up as of {_dt.datetime.now(_dt.UTC)}. "
                    "Please use the replSetStepDown command with the argument {force: true} "
                    "to force node to step down.",
                )
            self._step_down_alone(index, float(cmd.get("replSetStepDown") or _STEP_DOWN_PERIOD_S))
            return {}
        for m in others:
            self._note_optime(m)
        target = max(others, key=lambda m: (_key(m.optime), -m.index))
        self._elect(target.index)
        return {}

    def step_up_member(self, me: str) -> dict[str, Any]:
        index = self._index_of(me)
        if index != self._primary:
            self._elect(index)
        return {}

    # -- elections ----------------------------------------------------------------------
    def _index_of(self, host: str) -> int:
        return next(m.index for m in self.members if m.host == host)

    def _elect(self, candidate: int) -> None:
        """Elect ``candidate`` in a new term. The winner first catches up from the most
        up-to-date member it can reach, as mongod's new primary does (its catch-up phase),
        so nothing a reachable member holds is lost; then the others follow it."""
        member = self.members[candidate]
        if member.sim is None:
            raise MongoError(125, "Election failed: the candidate is down")  # CommandFailed
        if not self._sees_majority(member):
            raise MongoError(125, "Election failed: the candidate cannot reach a majority")
        if self._election is not None:
            self._election.cancel()
            self._election = None
        self._catch_up(member)
        self.term += 1
        self._primary = candidate
        for m in self.members:
            if m.sim is not None and m.sim.topology is not None:
                if m.index == candidate:
                    m.sim.topology.become_primary(self.term)
                elif self.connected(m, member):
                    m.sim.topology.become_secondary(self.term)
                # A member it cannot reach (a deposed primary among them) learns of the
                # new term when the network heals (_refresh_views).
        log.info("member %d (%s) elected primary in term %d", candidate, member.host, self.term)
        self._notify()
        self._reconsider()

    def _step_down_alone(self, index: int, seconds: float) -> None:
        """A forced step-down with no other member up: a secondary, re-elected after the
        step-down period unless another member comes up and is elected first."""
        if self._primary == index:
            self._primary = None
        sim = self.members[index].sim
        assert sim is not None and sim.topology is not None
        sim.topology.become_secondary(sim.topology.term)
        handle = self._stepdowns.pop(index, None)
        if handle is not None:
            handle.cancel()
        self._notify()
        if any(m.up for m in self.members if m.index != index):
            self._reconsider()  # members cut off from it elect on their own timeout
        else:
            self._schedule_election(seconds)  # alone: re-elected after the period

    def _schedule_election(self, after_s: float | None = None) -> None:
        """The election timeout: a majority that has no primary elects one after it."""
        if self._election is not None:
            self._election.cancel()
        delay = self.election_timeout_s if after_s is None else after_s

        def fire() -> None:
            self._election = None
            if self._needs_election():
                self._run_election()

        self._election = asyncio.get_running_loop().call_later(delay, fire)

    def _run_election(self) -> None:
        try:
            self._elect_best()
        except MongoError as exc:  # nobody electable after all: the next change retries
            log.warning("election failed: %s", exc)

    def _elect_best(self) -> int:
        live = [m for m in self.members if self._sees_majority(m)]
        if not live:
            # FailedToSatisfyReadPreference: no member can gather a majority's votes.
            raise MongoError(133, "no member that is up can see a majority to elect")
        for m in live:
            self._note_optime(m)
        candidate = max(live, key=lambda m: (_key(m.optime), -m.index)).index
        self._elect(candidate)
        return candidate

    def _is_primary(self, member: Member) -> bool:
        """Whether ``member`` acts as a primary: the set's, or a deposed one that has not
        yet stepped down (cut off, it still takes w:1 writes in its older term)."""
        topology = member.sim.topology if member.sim is not None else None
        return topology is not None and topology.primary

    def _sees_majority(self, member: Member) -> bool:
        if not member.up:
            return False
        reach = sum(1 for m in self.members if m is member or self.connected(member, m))
        return reach >= len(self.members) // 2 + 1

    def _needs_election(self) -> bool:
        """No primary a majority can reach, and a member that could win one."""
        primary = self.members[self._primary] if self._primary is not None else None
        if primary is not None and self._sees_majority(primary):
            return False
        return any(self._sees_majority(m) for m in self.members)

    def _reconsider(self) -> None:
        """After any change: a primary that cannot see a majority steps down an election
        timeout later (mongod's liveness check), and a majority without a primary elects
        one an election timeout later. Contact regained first cancels the step-down."""
        loop = asyncio.get_running_loop()
        for m in self.members:
            if self._is_primary(m) and not self._sees_majority(m):
                if m.index not in self._stepdowns:
                    self._stepdowns[m.index] = loop.call_later(
                        self.election_timeout_s, self._lost_majority, m.index
                    )
            else:
                handle = self._stepdowns.pop(m.index, None)
                if handle is not None:
                    handle.cancel()
        if self._election is None and self._needs_election():
            self._schedule_election()

    def _lost_majority(self, index: int) -> None:
        self._stepdowns.pop(index, None)
        member = self.members[index]
        if not self._is_primary(member) or self._sees_majority(member):
            return
        assert member.sim is not None and member.sim.topology is not None
        log.warning(
            "member %d (%s) steps down: it cannot see a majority of the set",
            index,
            member.host,
        )
        member.sim.topology.become_secondary(member.sim.topology.term)
        if self._primary == index:
            self._primary = None
        self._notify()
        self._reconsider()

    def _refresh_views(self) -> None:
        """Members that can reach the primary learn its term; a deposed primary among
        them steps down (mongod's primary steps down on seeing a higher term)."""
        if self._primary is None:
            return
        primary = self.members[self._primary]
        for m in self.members:
            if m is primary or m.sim is None or m.sim.topology is None:
                continue
            if not self.connected(m, primary):
                continue
            topology = m.sim.topology
            if topology.primary:
                log.warning(
                    "member %d (%s) steps down: member %d is primary in term %d",
                    m.index,
                    m.host,
                    primary.index,
                    self.term,
                )
                topology.become_secondary(self.term)
            elif topology.term < self.term:
                topology.become_secondary(self.term)

    def _catch_up(self, member: Member) -> None:
        assert member.sim is not None
        for m in self.members:
            if m.up:
                self._note_optime(m)
        ahead = [m for m in self.members if m.up and m is not member and self.connected(m, member)]
        if not ahead:
            return
        source = max(ahead, key=lambda m: _key(m.optime))
        if _key(source.optime) > _key(member.optime):
            # A candidate that diverged from it cannot catch up: it wins with its own log,
            # and the member ahead is the one to roll back (_diverged).
            self._apply_from(member, self._missing(member, source) or [])

    # -- replication -----------------------------------------------------------------------
    def connected(self, a: Member, b: Member) -> bool:
        """Whether ``a`` and ``b`` can talk: both up, and on the same side of a partition."""
        if not (a.up and b.up):
            return False
        return self._group_of.get(a.index, 0) == self._group_of.get(b.index, 0)

    def _sync_source(self, member: Member) -> Member | None:
        if self._primary is None or self._primary == member.index:
            return None
        source = self.members[self._primary]
        return source if self.connected(member, source) else None

    def _missing(self, member: Member, source: Member) -> list[OplogSlot] | None:
        """The source's slots after the member's newest; None when the member's newest
        is not in the source's oplog (it diverged: it holds entries the source lacks; or
        the source no longer holds it), or when the member has no oplog and the source's
        no longer starts at the set's beginning (it needs an initial sync)."""
        assert member.sim is not None and source.sim is not None
        mine = member.sim.engine.oplog.newest
        theirs = source.sim.engine.oplog
        if mine is None:
            return list(theirs.slots()) if theirs.history_start == Timestamp(0, 0) else None
        at = next(theirs.slots_after(mine.ts, inclusive=True), None)
        if at is None or at.ts != mine.ts or at.term != mine.term:
            return None
        return list(theirs.slots_after(mine.ts))

    def _diverged(self, member: Member, source: Member) -> None:
        """``member`` holds entries its sync source lacks (a deposed primary's writes that
        never replicated): roll back to the common point, newest first, one log line per
        document and per command, bump the rollback id; the caller then resumes pulling
        from there. One that cannot be rolled back (or whose oplog the source's no longer
        reaches) resyncs from the source instead (``_resync``)."""
        assert member.sim is not None and source.sim is not None
        mine = member.sim.engine.oplog
        common = rollback.common_point(mine, source.sim.engine.oplog)
        why = "no common point" if common is None else rollback.check(member.sim.engine, common.ts)
        if why is not None or common is None:
            self._resync(member, source, why or "no common point")
            return
        log.warning(
            "member %d (%s) rolling back to %s in term %d, its common point with member %d",
            member.index,
            member.host,
            common.ts,
            common.term,
            source.index,
        )
        undone = member.sim.engine.roll_back_to(common.ts)
        for what in undone.commands:
            log.warning("rollback on member %d: %s", member.index, what)
        for doc in undone.documents:
            log.warning(
                "rollback on member %d: %s %s {_id: %r}",
                member.index,
                "removed" if doc.removed else "restored",
                doc.ns,
                doc.id,
            )
        self._data_replaced(member)
        log.warning(
            "member %d rollback complete: %d documents, %d commands, rbid %d",
            member.index,
            len(undone.documents),
            len(undone.commands),
            member.rbid,
        )

    def _resync(self, member: Member, source: Member, why: str) -> None:
        """An initial sync of ``member`` from ``source`` (``initial_sync.copy_from``: data,
        indexes, options, users and roles, the transaction table and the oplog, as of
        now), a new rollback id (its data changed under its clients, as a rollback's
        does), one log line; the caller then replicates from the copy's optime."""
        assert member.sim is not None and source.sim is not None
        copied = initial_sync.copy_from(member.sim.engine, source.sim.engine)
        self._data_replaced(member)
        log.warning(
            "member %d (%s) cannot roll back (%s): initial sync from member %d: "
            "%d collections, %d documents, %d oplog entries, rbid %d",
            member.index,
            member.host,
            why,
            source.index,
            copied.collections,
            copied.documents,
            copied.slots,
            member.rbid,
        )

    def _data_replaced(self, member: Member) -> None:
        """After a rollback or an initial sync: a new rollback id (its data changed under
        its clients), its optime noted, and a getMore waiting on it ends (its cursor died)."""
        assert member.sim is not None and member.sim.topology is not None
        member.rbid += 1
        member.sim.topology.rbid = member.rbid
        self._note_optime(member)
        self.progress.notify()

    def _apply_from(self, member: Member, slots: list[OplogSlot]) -> None:
        assert member.sim is not None
        engine = member.sim.engine
        for slot in slots:
            newest = engine.oplog.newest
            if newest is not None and (slot.ts.time, slot.ts.inc) <= (
                newest.ts.time,
                newest.ts.inc,
            ):
                continue  # applied already (by an election's catch-up, say)
            # Entries are copied: each member's oplog is its own (pushdown caches, rollback).
            entries = [dataclasses.replace(e, pushdown_doc=None) for e in slot.entries]
            engine.apply_replicated(slot.ts, entries, slot.term)
        self._note_optime(member)
        self.commit_point()  # advance it (and wake its waiters) as the member applies
        self._reap(member)
        self.progress.notify()  # w: N counts members

    async def _replicate(self, member: Member) -> None:
        """A secondary's applier: take the primary's new slots, wait the replication delay,
        apply them in order through Engine.apply_replicated."""
        while True:
            source = self._sync_source(member)
            if source is None or self._is_primary(member):
                await self._wait(None)
                continue
            if self._producer_stopped(member):
                await self._wait(None)  # configureFailPoint wakes it (on_configure)
                continue
            slots = self._missing(member, source)
            if slots is None:
                self._diverged(member, source)
                continue
            if not slots:
                assert source.sim is not None
                await self._wait(source)
                continue
            if self.replication_delay_s > 0:
                await asyncio.sleep(self.replication_delay_s)
            if self._sync_source(member) is not source or member.sim is None:
                continue  # an election or a kill while it waited: start over
            if self._producer_stopped(member):
                continue  # mongod's oplog fetcher drops the batch it fetched (fail point)
            self._apply_from(member, slots)

    def _reachable_primary_engine(self, member: Member) -> Engine | None:
        """The primary's engine if ``member`` can reach it (a secondary's $out/$merge)."""
        if self._primary is None:
            return None
        primary = self.members[self._primary]
        if primary.sim is None or not self.connected(member, primary):
            return None
        return primary.sim.engine

    @staticmethod
    def _producer_stopped(member: Member) -> bool:
        """The stopReplProducer fail point is on for ``member`` (failpoints.py)."""
        return member.sim is not None and member.sim.failpoints.stop_repl_producer()

    async def _wait(self, source: Member | None) -> None:
        """Until the set changes, or (with a source) the source's oplog grows."""
        changed = asyncio.ensure_future(self._changed.wait())
        waits: list[asyncio.Future[Any]] = [changed]
        if source is not None and source.sim is not None:
            waits.append(asyncio.ensure_future(source.sim.engine.oplog.wait_for_news(5.0)))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
        self.progress.notify()

    # -- the commit point -----------------------------------------------------------------
    def _note_optime(self, member: Member) -> None:
        if member.sim is not None:
            newest = member.sim.engine.oplog.newest
            if newest is not None:
                member.optime = (newest.ts, newest.term)

    def commit_point(self) -> tuple[Timestamp, int]:
        """The newest optime of the primary's term that a majority of members have on
        the primary's log (Raft's rule, as mongod's), never moving back. Advanced as
        members apply (``_apply_from``) and whenever asked; each advance wakes the waiters
        on ``progress``."""
        if self._primary is None:
            return self._committed
        primary = self.members[self._primary]
        if primary.sim is None:
            return self._committed
        oplog = primary.sim.engine.oplog
        on_log: list[tuple[Timestamp, int]] = []
        for m in self.members:
            if m.up:
                self._note_optime(m)
            ts, term = m.optime
            at = next(oplog.slots_after(ts, inclusive=True), None)
            if at is not None and at.ts == ts and at.term == term:
                on_log.append(m.optime)
        majority = len(self.members) // 2 + 1
        if len(on_log) < majority:
            return self._committed
        point = sorted(on_log, key=_key, reverse=True)[majority - 1]
        if point[1] == self.term and _key(point) > _key(self._committed):
            self._committed = point
            for m in self.members:
                self._reap(m)
            self.progress.notify()
        return self._committed

    def _reap(self, member: Member) -> None:
        """Forget the collections ``member`` dropped at or before the commit point, when
        its log holds the commit point (then every entry of its up to there is on the
        majority's log and is never rolled back): mongod's DropPendingCollectionReaper,
        run as the commit point advances (drop_pending_collection_reaper.cpp)."""
        sim = member.sim
        if sim is None or not len(sim.engine.drop_pending):
            return
        ts, term = self._committed
        if self.holds(member, ts, term):
            sim.engine.drop_pending.reap(ts)

    @property
    def majority(self) -> int:
        return len(self.members) // 2 + 1

    def holds(self, member: Member, ts: Timestamp, term: int) -> bool:
        """Whether ``member`` is up and its oplog has the slot of optime (ts, term)."""
        if member.sim is None:
            return False
        slot = next(member.sim.engine.oplog.slots_after(ts, inclusive=True), None)
        return slot is not None and slot.ts == ts and slot.term == term
