"""Initial sync: a member that cannot roll back, or whose oplog cannot reach its sync
source's, copies the source whole and replicates from there.

mongod's initial syncer (``src/mongo/db/repl/initial_syncer.cpp``) clones every
database (collections with their options, indexes and documents; ``admin`` with its
users and roles), the transaction table (``config.transactions``) and then the oplog
written meanwhile, and the member becomes a secondary at the copy's optime. mongod runs
it on a member whose data dir is empty; a member whose rollback fails stops
(``fassert``) and is resynced by its operator. mongosim resyncs such a member itself so
that a set never stays broken.

The members of a mongosim set share one event loop, so the copy runs between two of its
steps: no write lands on the source while it is taken, and the copy is consistent at the
source's newest optime without the cloning phases mongod needs to catch up.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

from .catalog import build_index, compile_validator
from .engine import Engine
from .oplog import OplogSlot
from .sessions import TxnState
from .storage import Collection


@dataclass(frozen=True, slots=True)
class Copied:
    """What an initial sync copied."""

    collections: int
    documents: int
    slots: int


def copy_from(target: Engine, source: Engine) -> Copied:
    """Make ``target``'s data, transaction table and oplog ``source``'s as of now; the
    cursors open on ``target`` die (its catalog was replaced) and its data dir is
    rewritten from the copy."""
    target.cursors.invalidate_all("the member was resynced (initial sync)")
    target.drop_pending.clear()  # its drops are gone with the rest of its data
    target.databases.clear()
    documents = 0
    for db, colls in source.databases.items():
        into = target.databases.setdefault(db, {})
        for coll in colls.values():
            into[coll.name] = _clone(coll)
            documents += len(coll)
    _copy_transaction_table(target, source)
    slots = [
        OplogSlot(
            slot.ts, [dataclasses.replace(e, pushdown_doc=None) for e in slot.entries], slot.term
        )
        for slot in source.oplog.slots()
    ]
    target.oplog.reset(slots, source.oplog.history_start)
    target.checkpoint()
    return Copied(sum(len(c) for c in target.databases.values()), documents, len(slots))


def _clone(coll: Collection) -> Collection:
    """A collection of its own with the same UUID, options, validator, indexes and
    documents (stored documents are never changed in place, so they are shared, as a
    secondary shares its primary's replicated ones)."""
    clone = Collection(coll.db, coll.name, copy.deepcopy(coll.options), coll.uuid)
    compile_validator(clone)
    clone.docs.update(coll.docs)
    for spec in coll.index_specs():
        if spec["name"] != "_id_":
            clone.add_index(build_index(copy.deepcopy(spec)))
    return clone


def _copy_transaction_table(target: Engine, source: Engine) -> None:
    """The source's committed transactions, as its config.transactions holds them; every
    session of the target's own is forgotten first (an open transaction is aborted)."""
    for session in list(target.sessions.sessions.values()):
        target.sessions.end(session.lsid)
    for session in source.sessions.sessions.values():
        if session.state is TxnState.COMMITTED:
            copied = target.sessions.get(session.lsid)
            copied.txn_number = session.txn_number
            copied.state = TxnState.COMMITTED
