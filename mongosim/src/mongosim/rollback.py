"""Rollback: undo a member's oplog slots after the common point with its sync source.

A primary cut off from the majority keeps taking ``w:1`` writes until it steps down; a
new primary elected meanwhile never saw them. When the old primary rejoins, its newest
slots are not in its sync source's oplog: it finds the newest slot both oplogs hold (same
``ts`` and term: the common point), undoes its own slots after it, newest first, and then
replicates from there (mongod's "Recover To A Timestamp" rollback reaches the same state
from a stable checkpoint; ``src/mongo/db/repl/rollback_impl.cpp``).

Undoing needs only what the member keeps, entry by entry, newest first, documents and
commands interleaved as they were written (an insert into a collection dropped later is
undone after the drop is):

- an insert is removed; an update, replacement or delete puts its pre-image
  (``OplogEntry.pre``) back;
- ``create`` drops the collection; ``createIndexes`` drops the index;
- ``drop`` puts back the collection the member kept drop-pending (``drop_pending.py``:
  documents, indexes, options, validator, UUID), as mongod's rollback does for a
  drop-pending collection; a rename with ``dropTarget`` and ``dropDatabase`` log a
  ``drop`` per collection first, so they are undone the same way;
- ``renameCollection`` renames back;
- ``dropIndexes`` rebuilds the index from the spec its entry holds, where it was;
- ``collMod`` puts back the options and index options it replaced (the entry's ``pre``,
  mongod's o2 ``collectionOptions_old``/``indexOptions_old``).

``check`` refuses first, so nothing is half undone, whatever is still not undoable: an
unknown command, a drop whose collection is no longer kept (the member restarted since)
or an entry without its pre-state; such a member resyncs instead (``initial_sync.py``).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bson.timestamp import Timestamp

from .bsonutil import canonical
from .catalog import build_index, compile_validator
from .oplog import Oplog, OplogEntry, OplogSlot
from .persistence import DataHost
from .sessions import TxnState, lsid_key
from .storage import Collection

_UNDOABLE_COMMANDS = (
    "create",
    "drop",
    "dropDatabase",
    "renameCollection",
    "createIndexes",
    "dropIndexes",
    "collMod",
)


@dataclass(frozen=True, slots=True)
class RolledBack:
    """One document a rollback changed: gone (its oldest undone write inserted it) or
    restored to what it was at the common point."""

    ns: str
    id: Any
    removed: bool


@dataclass(slots=True)
class Undone:
    """What a rollback undid: each document changed (newest write's first), and each
    command undone, newest first, in words (one log line each)."""

    documents: list[RolledBack] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)


def common_point(mine: Oplog, theirs: Oplog) -> OplogSlot | None:
    """The newest of ``mine``'s slots that ``theirs`` holds too (same ts and term)."""
    for slot in mine.slots_reversed():
        at = next(theirs.slots_after(slot.ts, inclusive=True), None)
        if at is not None and at.ts == slot.ts and at.term == slot.term:
            return slot
    return None


def check(host: DataHost, after: Timestamp) -> str | None:
    """Why the slots after ``after`` cannot be undone, or None when they can."""
    for slot in host.oplog.slots_after(after):
        for entry in slot.entries:
            why = _why_not(host, entry)
            if why is not None:
                return why
    return None


def _why_not(host: DataHost, entry: OplogEntry) -> str | None:
    if entry.op in ("u", "r", "d") and entry.pre is None:
        return f"no pre-image for {entry.op} on {entry.ns} {entry.key}"
    if entry.op != "c":
        return None
    cmd = entry.cmd or {}
    name = next(iter(cmd), "")
    if name not in _UNDOABLE_COMMANDS:
        return f"cannot roll back command {cmd} on {entry.ns}"
    if name == "drop" and not host.drop_pending.holds(entry.ts):
        return f"the collection {entry.db}.{cmd['drop']} dropped at {entry.ts} is no longer kept"
    if name == "collMod" and (entry.pre is None or "collectionOptions_old" not in entry.pre):
        return f"no previous options for collMod of {entry.db}.{cmd['collMod']}"
    if name == "dropIndexes" and "spec" not in cmd:
        return f"no spec for the index {cmd.get('index')} dropped on {entry.db}"
    return None


def undo_after(host: DataHost, after: Timestamp) -> Undone:
    """Undo the slots after ``after`` newest first, drop them from the oplog, and return
    what was undone: the documents changed, one each, newest write's document first, and
    the commands, newest first. ``check`` first."""
    documents: dict[tuple[str, Hashable], RolledBack] = {}
    commands: list[str] = []
    slots = list(host.oplog.slots_after(after))
    lsids = {lsid_key(e.lsid): e.lsid for slot in slots for e in slot.entries if e.lsid is not None}
    for slot in reversed(slots):
        for entry in reversed(slot.entries):
            if entry.op == "c":
                commands.append(_undo_command(host, entry))
                continue
            doc = _undo(host, entry)
            if doc is not None:
                # The oldest undone write decides: an insert means the document is gone.
                documents[(entry.ns, canonical(doc.id))] = doc
    host.oplog.truncate_after(after)
    _restore_sessions(host, lsids)
    return Undone(list(documents.values()), commands)


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


def _undo_command(host: DataHost, entry: OplogEntry) -> str:
    """Undo one command entry (``check`` passed); what it did, in words."""
    cmd = entry.cmd or {}
    name = next(iter(cmd), "")
    db = entry.db
    if name == "renameCollection":
        return _undo_rename(host, cmd)
    if name == "dropDatabase":
        # Its collections come back with the undo of each one's drop entry, just before it.
        host.databases.setdefault(db, {})
        return f"undid dropDatabase {db}"
    target = str(cmd[name])
    ns = f"{db}.{target}"
    if name == "create":
        host.databases.get(db, {}).pop(target, None)
        return f"undid create {ns} (dropped it)"
    if name == "drop":
        kept = host.drop_pending.take(entry.ts)
        assert kept is not None  # check() saw it held
        kept.db, kept.name = db, target
        host.databases.setdefault(db, {})[target] = kept
        return f"undid drop {ns} ({len(kept)} documents, {len(kept.indexes)} indexes restored)"
    coll = host.get_collection(db, target)
    if coll is None:  # gone with a later entry's undo (a create): nothing left to change
        return f"undid {name} {ns} (collection gone)"
    if name == "createIndexes":
        coll.indexes.pop(cmd["spec"]["name"], None)
        return f"undid createIndexes {ns} {cmd['spec']['name']} (dropped it)"
    if name == "dropIndexes":
        _restore_index(coll, cmd["spec"], (entry.pre or {}).get("position"))
        return f"undid dropIndexes {ns} {cmd['spec']['name']} (rebuilt it)"
    assert name == "collMod" and entry.pre is not None
    _restore_options(coll, entry.pre)
    return f"undid collMod {ns} (previous options restored)"


def _undo_rename(host: DataHost, cmd: Mapping[str, Any]) -> str:
    """Rename back; a target it dropped comes back with the undo of that drop entry,
    logged just before this one (commands_catalog.cmd_rename)."""
    src_db, src = str(cmd["renameCollection"]).split(".", 1)
    dst_db, dst = str(cmd["to"]).split(".", 1)
    moved = host.databases.get(dst_db, {}).pop(dst, None)
    if moved is not None:
        moved.db, moved.name = src_db, src
        host.databases.setdefault(src_db, {})[src] = moved
    return f"undid renameCollection {src_db}.{src} to {dst_db}.{dst} (renamed back)"


def _restore_index(coll: Collection, spec: Mapping[str, Any], position: Any) -> None:
    """Rebuild a dropped index over the documents as of its drop (every later write is
    undone already), at its old place in listIndexes' order."""
    coll.add_index(build_index(dict(spec)))
    if isinstance(position, int):
        order = [n for n in coll.indexes if n != spec["name"]]
        order.insert(min(position, len(order)), spec["name"])
        reordered = {n: coll.indexes[n] for n in order}
        coll.indexes.clear()
        coll.indexes.update(reordered)


def _restore_options(coll: Collection, pre: Mapping[str, Any]) -> None:
    coll.options.clear()
    coll.options.update(pre["collectionOptions_old"])
    compile_validator(coll)
    old_index = pre.get("indexOptions_old")
    if old_index is None:
        return
    index = coll.indexes.get(old_index["name"])
    if index is None:
        return
    for key in ("expireAfterSeconds", "hidden"):
        if key in old_index:
            index.spec[key] = old_index[key]
        else:
            index.spec.pop(key, None)
    exp = index.spec.get("expireAfterSeconds")
    index.expire_after = float(exp) if exp is not None else None
