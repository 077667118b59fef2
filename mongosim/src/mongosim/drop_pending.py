"""Drop-pending collections: a dropped collection a member keeps until the drop is
majority-committed, so that a rollback of the drop can put it back.

mongod drops a replicated collection in two phases: the drop renames it to a
drop-pending namespace (``system.drop.<optime>.<name>``) keyed by the drop's optime, and
``DropPendingCollectionReaper`` drops it for good only once the member's majority commit
point has passed that optime (``src/mongo/db/repl/drop_pending_collection_reaper.cpp``;
4.2+ keeps the ident instead, reaped the same way). Until then a rollback of the drop
(``rollback.py``) restores the collection whole: documents, indexes, options, validator.

A lone mongosim is never rolled back, so it keeps nothing (``enabled`` is False); a
member of a multi-member set (``replset.py``) keeps. Kept collections live in memory
only: a member restarted with a drop after its commit point cannot undo that drop, and
resyncs instead (``initial_sync.py``).
"""

from __future__ import annotations

from bson.timestamp import Timestamp

from .storage import Collection


def _key(ts: Timestamp) -> tuple[int, int]:
    return (ts.time, ts.inc)


class DropPending:
    """The collections this member dropped, keyed by each drop's oplog timestamp."""

    __slots__ = ("_kept", "enabled")

    def __init__(self) -> None:
        self.enabled = False
        self._kept: dict[tuple[int, int], Collection] = {}

    def __len__(self) -> int:
        return len(self._kept)

    def keep(self, ts: Timestamp, coll: Collection) -> None:
        """Keep ``coll``, dropped by the oplog entry at ``ts``, until ``reap`` passes it."""
        if self.enabled:
            self._kept[_key(ts)] = coll

    def holds(self, ts: Timestamp) -> bool:
        return _key(ts) in self._kept

    def take(self, ts: Timestamp) -> Collection | None:
        """The collection the drop at ``ts`` dropped, no longer kept (a rollback restores it)."""
        return self._kept.pop(_key(ts), None)

    def reap(self, committed: Timestamp) -> None:
        """Forget every collection whose drop is at or before ``committed``, the member's
        majority commit point on its own branch: such a drop is never rolled back."""
        if not self._kept:
            return
        limit = _key(committed)
        for key in [k for k in self._kept if k <= limit]:
            del self._kept[key]

    def clear(self) -> None:
        self._kept.clear()
