"""Snapshot history: reads at a past cluster time (readConcern ``atClusterTime``).

mongod keeps the history of its storage engine for ``minSnapshotHistoryWindowInSeconds``
(300 s by default; a server parameter settable at run time with ``setParameter``), so a
snapshot read may name any ``atClusterTime`` within that window; an older one fails
with SnapshotTooOld (239): "Read Concern 'snapshot'" and the parameter's entry in the
manual's "MongoDB Server Parameters", and WiredTiger's oldest timestamp in
``src/mongo/db/storage/wiredtiger/wiredtiger_snapshot_manager.cpp``.

mongosim keeps only the current documents, but its oplog keeps every write's post-image
(``doc``) and pre-image (``pre``). A collection as of time ``T`` is the current
documents with the oplog entries after ``T`` undone, newest first: an insert is
removed, an update, a replace or a delete puts its pre-image back. A drop, rename or
dropDatabase of the namespace after ``T`` cannot be undone this way (the documents are
gone with the collection), so such a read fails with 239 too, as does a time before the
oldest retained oplog entry or outside the window. Current reads never come here.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from bson.timestamp import Timestamp

from .bsonutil import canonical
from .errors import MongoError
from .oplog import Oplog
from .storage import Collection

PARAMETER = "minSnapshotHistoryWindowInSeconds"
DEFAULT_WINDOW_S = 300
SNAPSHOT_TOO_OLD = 239
_GENERIC_FIELDS = frozenset({"setParameter", "lsid", "txnNumber", "comment", "apiVersion"})
_NAMESPACE_COMMANDS = ("drop", "renameCollection", "dropDatabase")


class HistoryHost(Protocol):
    """What a read in the past needs of the engine: its clock, oplog and window."""

    @property
    def oplog(self) -> Oplog: ...

    @property
    def history(self) -> SnapshotHistory: ...

    def cluster_time(self) -> Timestamp: ...


def _key(ts: Timestamp) -> tuple[int, int]:
    return (ts.time, ts.inc)


def too_old(at: Timestamp) -> MongoError:
    # mongod's message for a read below the oldest timestamp it keeps.
    return MongoError(
        SNAPSHOT_TOO_OLD,
        f"Read timestamp {at} is older than the oldest available timestamp.",
        code_name="SnapshotTooOld",
    )


@dataclass(slots=True)
class SnapshotHistory:
    """How far back snapshot reads reach (``minSnapshotHistoryWindowInSeconds``)."""

    window_s: int = DEFAULT_WINDOW_S

    def set_parameter(self, value: Any) -> int:
        """Set the window from ``setParameter``; returns the previous value ("was")."""
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise MongoError(2, f"{PARAMETER} must be a non-negative integer, not {value!r}")
        was, self.window_s = self.window_s, int(value)
        return was

    def check(self, engine: HistoryHost, at: Timestamp) -> None:
        """Raise SnapshotTooOld unless a read at ``at`` is within the history kept."""
        newest = engine.cluster_time()
        if at.time < newest.time - self.window_s:
            raise too_old(at)
        oldest = engine.oplog.oldest
        if engine.oplog.history_lost_before(at) or oldest is None or _key(at) < _key(oldest.ts):
            raise too_old(at)


def set_parameter(engine: HistoryHost, cmd: Mapping[str, Any]) -> dict[str, Any]:
    """``setParameter``: only the history window is settable here (mongod's reply: "was")."""
    if PARAMETER not in cmd:
        # mongod: InvalidOptions (72) for a parameter it does not know or cannot set.
        names = [k for k in cmd if k not in _GENERIC_FIELDS and not k.startswith("$")]
        raise MongoError(72, f"attempted to set unrecognized parameter [{','.join(names)}]")
    return {"was": engine.history.set_parameter(cmd[PARAMETER])}


def _touches(entry_ns: str, cmd: Mapping[str, Any] | None, db: str, ns: str) -> bool:
    """Whether a command entry removed or replaced namespace ``ns`` (of database ``db``)."""
    if not cmd or not any(name in cmd for name in _NAMESPACE_COMMANDS):
        return False
    if "dropDatabase" in cmd:
        return entry_ns.split(".", 1)[0] == db
    if "renameCollection" in cmd:
        return ns in (cmd.get("renameCollection"), cmd.get("to"))
    return f"{entry_ns.split('.', 1)[0]}.{cmd.get('drop')}" == ns


def documents_at(
    engine: HistoryHost, db: str, name: str, coll: Collection | None, at: Timestamp
) -> list[dict[str, Any]]:
    """The documents of ``db.name`` as of cluster time ``at`` (SnapshotTooOld if unknown)."""
    engine.history.check(engine, at)
    ns = f"{db}.{name}"
    docs: dict[Hashable, dict[str, Any]] = dict(coll.docs) if coll is not None else {}
    limit = _key(at)
    for slot in engine.oplog.slots_reversed():
        if _key(slot.ts) <= limit:
            break
        for entry in reversed(slot.entries):
            if entry.op == "c" and _touches(entry.ns, entry.cmd, db, ns):
                raise too_old(at)
            if entry.ns != ns or entry.key is None or entry.op not in ("i", "u", "r", "d"):
                continue
            idk = canonical(entry.key["_id"])
            if entry.op == "i" or entry.pre is None:
                docs.pop(idk, None)
            else:
                docs[idk] = entry.pre
    return list(docs.values())
