"""The majority commit point as a member sees it: write concerns, majority reads, change
streams and ``afterClusterTime`` waits.

A lone mongosim has none of this (``Engine.replication`` is None): its last write is
majority-committed as soon as it is written, so every wait here returns at once and no
code of this module runs on its path. A member of a multi-member set
(``replset.ReplicaSet``) gets a :class:`MemberReplication` from its set.

Waits are driven by ``oplog.Progress``, an event the set fires whenever a member applies
a slot, the commit point moves or the set changes (a kill, a restart, an election); a
waiter re-checks its condition then, never on a timer.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Protocol

from bson.timestamp import Timestamp

WRITE_CONCERN_FAILED = 64
INTERRUPTED_DUE_TO_REPL_STATE_CHANGE = 11602
PRIMARY_STEPPED_DOWN = 189


class Replicated(enum.Enum):
    """How a write-concern wait ended."""

    SATISFIED = "satisfied"
    TIMED_OUT = "timed out"  # wtimeout passed first
    INTERRUPTED = "interrupted"  # the primary stepped down while it waited
    NOT_PRIMARY = "not primary"  # the member was no longer primary when the wait began


class MemberReplication(Protocol):
    """What one member of a multi-member set asks its set (``replset.ReplicaSet``)."""

    @property
    def unsafe_uncommitted_change_streams(self) -> bool: ...

    def committed_ts(self) -> Timestamp: ...  # what majority reads and change streams see

    def note_write(self) -> None: ...  # this member (the primary) wrote a slot

    async def wait_for_news(self, seconds: float) -> bool: ...

    async def await_replication(
        self, ts: Timestamp, w: int | str, timeout_s: float | None, *, wrote: bool
    ) -> Replicated: ...

    async def await_applied(
        self, ts: Timestamp, *, committed: bool, timeout_s: float | None
    ) -> bool: ...


def requested_w(write_concern: Any) -> tuple[int | str, float | None] | None:
    """The ``w`` a write concern waits for and its ``wtimeout`` in seconds (None: wait
    without limit, as ``wtimeout`` 0 or absent means to mongod); None when it waits for
    nothing beyond the primary (``w`` 0 or 1, or no write concern)."""
    if not isinstance(write_concern, Mapping):
        return None
    w = write_concern.get("w")
    if isinstance(w, bool) or w is None:
        return None
    if isinstance(w, int | float) and w <= 1:
        return None
    if isinstance(w, int | float):
        w = int(w)
    elif w != "majority":
        return None  # a tag set: refused before any wait (UnknownReplWriteConcern)
    wtimeout = write_concern.get("wtimeout") or write_concern.get("wtimeoutMS") or 0
    return w, (float(wtimeout) / 1000 if wtimeout else None)


def timed_out_error(write_concern: Mapping[str, Any]) -> dict[str, Any]:
    """The writeConcernError of a write that succeeded but whose write concern was not
    satisfied within ``wtimeout``: mongod's ``waitForWriteConcern``
    (src/mongo/db/write_concern.cpp) fails with WriteConcernFailed, "waiting for
    replication timed out" (replication_coordinator_impl.cpp), and the reply's errInfo
    carries ``wtimeout: true`` and, since 4.4, the write concern it waited for with its
    provenance (the manual's "Write Concern" page, "wtimeout", and its example of a
    timed-out write)."""
    applied = {k: v for k, v in write_concern.items() if k in ("w", "wtimeout", "j")}
    applied["provenance"] = "clientSupplied"
    return {
        "code": WRITE_CONCERN_FAILED,
        "codeName": "WriteConcernFailed",
        "errmsg": "waiting for replication timed out",
        "errInfo": {"wtimeout": True, "writeConcern": applied},
    }


def stepped_down_error(outcome: Replicated) -> dict[str, Any]:
    """The writeConcernError of a write whose primary stepped down while it waited for
    its write concern. The write itself stands (ok: 1): mongod appends the status of
    ``waitForWriteConcern`` to the reply as writeConcernError
    (``CommandHelpers::appendCommandWCStatus``), and the server adds RetryableWriteError
    to a retryable write or a commit (labels.py), which the drivers turn into
    UnknownTransactionCommitResult for commitTransaction (transactions spec).

    Which code: a step-down (replSetStepDown, the liveness check of a primary that lost
    the majority, a higher term seen) first takes the RSTL in mode X and kills every
    operation that took the global lock in a mode conflicting with writes, as each write
    did before it began to wait (replication_coordinator_impl.cpp,
    ``_killConflictingOpsOnStepUpAndStepDown`` with InterruptedDueToReplStateChange):
    its wait is interrupted with 11602, "operation was interrupted". A wait that begins
    on a member that is no longer primary fails at once with PrimarySteppedDown (189),
    as ``awaitReplication``'s ``checkForStepDown`` answers, the same status
    ``_updateMemberStateFromTopologyCoordinator`` sets on every waiter left."""
    if outcome is Replicated.INTERRUPTED:
        return {
            "code": INTERRUPTED_DUE_TO_REPL_STATE_CHANGE,
            "codeName": "InterruptedDueToReplStateChange",
            "errmsg": "operation was interrupted",
        }
    return {
        "code": PRIMARY_STEPPED_DOWN,
        "codeName": "PrimarySteppedDown",
        "errmsg": "Primary stepped down while waiting for replication",
    }


async def wait_for_write_concern(
    replication: MemberReplication, write_concern: Any, ts: Timestamp, *, wrote: bool
) -> dict[str, Any] | None:
    """After a command at ``ts`` (``wrote``: its write's): wait until the members its
    write concern names have it; the writeConcernError when ``wtimeout`` passes first or
    the primary steps down before or while it waits, else None."""
    wanted = requested_w(write_concern)
    if wanted is None:
        return None
    w, timeout_s = wanted
    outcome = await replication.await_replication(ts, w, timeout_s, wrote=wrote)
    if outcome is Replicated.SATISFIED:
        return None
    if outcome is Replicated.TIMED_OUT:
        assert isinstance(write_concern, Mapping)
        return timed_out_error(write_concern)
    return stepped_down_error(outcome)


async def wait_after_cluster_time(
    replication: MemberReplication, read_concern: Any, max_time_ms: Any
) -> bool:
    """readConcern ``afterClusterTime``: wait until this member has applied up to it (its
    commit point has, for ``majority`` and ``snapshot``), at most ``maxTimeMS`` when
    given. False when the time limit passed first."""
    if not isinstance(read_concern, Mapping):
        return True
    after = read_concern.get("afterClusterTime")
    if not isinstance(after, Timestamp):
        return True
    committed = read_concern.get("level") in ("majority", "snapshot")
    timeout_s = float(max_time_ms) / 1000 if max_time_ms else None
    return await replication.await_applied(after, committed=committed, timeout_s=timeout_s)
