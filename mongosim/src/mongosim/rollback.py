"""Rollback: undo a member's oplog slots after the common point with its sync source.

A primary cut off from the majority keeps taking ``w:1`` writes until it steps down; a
new primary elected meanwhile never saw them. When the old primary rejoins, its newest
slots are not in its sync source's oplog: it finds the newest slot both oplogs hold (same
``ts`` and term: the common point), undoes its own slots after it, newest first, and then
replicates from there (mongod's "Recover To A Timestamp" rollback reaches the same state
from a stable checkpoint; ``src/mongo/db/repl/rollback_impl.cpp``).

Undoing needs only what every entry keeps: an insert is removed, an update, replacement
or delete puts its pre-image (``OplogEntry.pre``) back, a ``create`` drops the collection.
Other commands (drop, rename, dropDatabase, index and option changes) are not undone:
``check`` refuses them first, so nothing is half undone, and the member needs a resync.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from bson.timestamp import Timestamp

from .bsonutil import canonical
from .oplog import Oplog, OplogEntry, OplogSlot
from .persistence import DataHost
from .sessions import TxnState, lsid_key

_UNDOABLE_COMMANDS = ("create",)


@dataclass(frozen=True, slots=True)
class RolledBack:
    """One document a rollback changed: gone (its oldest undone write inserted it) or
    restored to what it was at the common point."""

    ns: str
    id: Any
    removed: bool


def common_point(mine: Oplog, theirs: Oplog) -> OplogSlot | None:
    """The newest of ``mine``'s slots that ``theirs`` holds too (same ts and term)."""
    for slot in mine.slots_reversed():
        at = next(theirs.slots_after(slot.ts, inclusive=True), None)
        if at is not None and at.ts == slot.ts and at.term == slot.term:
            return slot
    return None


def check(oplog: Oplog, after: Timestamp) -> str | None:
    """Why the slots after ``after`` cannot be undone, or None when they can."""
    for slot in oplog.slots_after(after):
        for entry in slot.entries:
            if entry.op == "c" and next(iter(entry.cmd or {}), "") not in _UNDOABLE_COMMANDS:
                return f"cannot roll back command {entry.cmd} on {entry.ns}"
            if entry.op in ("u", "r", "d") and entry.pre is None:
                return f"no pre-image for {entry.op} on {entry.ns} {entry.key}"
    return None


def undo_after(host: DataHost, after: Timestamp) -> list[RolledBack]:
    """Undo the slots after ``after`` newest first, drop them from the oplog, and return
    the documents changed, one each, newest write's document first. ``check`` first."""
    undone: dict[tuple[str, Hashable], RolledBack] = {}
    slots = list(host.oplog.slots_after(after))
    lsids = {lsid_key(e.lsid): e.lsid for slot in slots for e in slot.entries if e.lsid is not None}
    for slot in reversed(slots):
        for entry in reversed(slot.entries):
            doc = _undo(host, entry)
            if doc is not None:
                # The oldest undone write decides: an insert means the document is gone.
                undone[(entry.ns, canonical(doc.id))] = doc
    host.oplog.truncate_after(after)
    _restore_sessions(host, lsids)
    return list(undone.values())


def _restore_sessions(host: DataHost, lsids: Mapping[Hashable, Mapping[str, Any]]) -> None:
    """The transaction table as of the common point for each session whose transaction
    commits were undone: its newest commit the oplog still holds, or none. A retried
    commitTransaction of an undone commit is then NoSuchTransaction, never "committed"
    (mongod invalidates the sessions and reloads config.transactions, which recovered to
    the stable timestamp with the data: ``rollback_impl.cpp``)."""
    for key, lsid in lsids.items():
        if key not in host.sessions.sessions:
            continue
        host.sessions.end(lsid)  # a transaction still open on it is aborted
        restored = host.sessions.get(lsid)
        for slot in host.oplog.slots_reversed():
            first = slot.entries[0] if slot.entries else None
            if (
                first is not None
                and first.in_txn
                and first.lsid is not None
                and first.txn_number is not None
                and lsid_key(first.lsid) == key
            ):
                restored.txn_number = first.txn_number
                restored.state = TxnState.COMMITTED
                break


def _undo(host: DataHost, entry: OplogEntry) -> RolledBack | None:
    db, _, name = entry.ns.partition(".")
    if entry.op == "c":
        cmd = entry.cmd or {}
        if "create" in cmd:
            host.databases.get(db, {}).pop(cmd["create"], None)
        return None
    if entry.op not in ("i", "u", "r", "d") or entry.key is None:
        return None
    idk = canonical(entry.key["_id"])
    coll = host.get_collection(db, name)
    if coll is not None:
        if entry.op == "i":
            coll.remove(idk)
        else:
            assert entry.pre is not None
            coll.put(idk, entry.pre)
    return RolledBack(entry.ns, entry.key["_id"], removed=entry.op == "i")
