"""The database engine: catalog, document writes, the oplog, sessions and running commands.

The commands themselves live above it, by concern (``commands_read``, ``commands_write``,
``commands_catalog``, ``commands_txn``, ``explain``), and declare themselves in the
command registry (:mod:`.registry`); the server hands that registry to the engine, which
imports no command module. This module owns the state the commands share and the one
write path every change goes through, so that a write reaches storage, open
transactions' snapshots, the oplog and the data dir together or not at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import logging
from collections.abc import Callable, Hashable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bson
from bson.timestamp import Timestamp

from .bsonutil import canonical
from .catalog import create_collection
from .cursors import CursorManager
from .drop_pending import DropPending
from .errors import MongoError
from .expressions import COMMAND_VARIABLES, command_variables
from .history import DEFAULT_WINDOW_S, SnapshotHistory
from .operation import CommandContext, Op, Reply, prepare_op
from .oplog import OpKind, Oplog, OplogEntry
from .persistence import DataDir, apply_slot
from .registry import Command, Registry, Runs
from .rollback import Undone, undo_after
from .sessions import PendingWrite, Session, SessionCatalog, Transaction
from .storage import Collection, TxnVersions
from .ttl import ttl_monitor

if TYPE_CHECKING:
    from .majority import MemberReplication

log = logging.getLogger("mongosim")


class Engine:
    def __init__(
        self,
        registry: Registry,
        *,
        oplog_size: int = 100_000,
        data_dir: str | Path | None = None,
        ttl_monitor_interval: float = 60.0,
        noop_interval: float = 10.0,
        snapshot_history_window_s: int = DEFAULT_WINDOW_S,
    ) -> None:
        self.registry = registry  # the commands run_command runs (the server's, registered)
        self.oplog = Oplog(oplog_size)
        self.history = SnapshotHistory(snapshot_history_window_s)  # atClusterTime reads
        self.data_dir_path = Path(data_dir) if data_dir else None
        self.ttl_monitor_interval = ttl_monitor_interval
        self.noop_interval = noop_interval
        self.databases: dict[str, dict[str, Collection]] = {}
        self.sessions = SessionCatalog()
        # Collections dropped here, kept until their drop is majority-committed (a member
        # of a multi-member set turns it on; drop_pending.py).
        self.drop_pending = DropPending()
        self.cursors: CursorManager = CursorManager()
        self.lock_released = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._data_dir: DataDir | None = None
        self._closed = False
        # False on a secondary of a replica set (replset.py): it writes nothing of its own
        # (no no-op, no TTL deletion: mongod's TTL monitor runs on the primary and its
        # deletes replicate), and takes its oplog from its primary through apply_replicated.
        self.writable = True
        # A member of a multi-member set: its set's commit point, for write concerns,
        # majority reads, change streams and afterClusterTime (majority.py). None for a
        # lone mongosim, whose last write is majority-committed once written.
        self.replication: MemberReplication | None = None
        # A member of a multi-member set: the engine an aggregate's $out/$merge writes
        # into when this member is a secondary, the primary's as its set sees it (None
        # when it reaches none). mongod 5.0+ runs such an aggregate on a secondary, reading
        # there and writing through the primary.
        self.primary_engine: Callable[[], Engine | None] | None = None

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        """Load the data dir (if any) and start the TTL monitor and the no-op writer."""
        if self.data_dir_path is not None:
            self._data_dir = DataDir(self.data_dir_path)
            self._data_dir.load_into(self)
        if not len(self.oplog) and self.writable:
            self.append_noop("initiating set")
        self._tasks.append(asyncio.create_task(ttl_monitor(self), name="mongosim-ttl"))
        self._tasks.append(asyncio.create_task(self._noop_writer(), name="mongosim-noop"))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.cursors.close_all()
        if self._data_dir is not None:
            self._data_dir.close()

    async def _noop_writer(self) -> None:
        """mongod writes a no-op every periodicNoopIntervalSecs (10 s) so cluster time moves."""
        while True:
            await asyncio.sleep(self.noop_interval)
            if not self.writable:
                continue
            newest = self.oplog.newest
            idle_for = _dt.datetime.now(_dt.UTC) - newest.entries[0].wall if newest else None
            if idle_for is None or idle_for.total_seconds() >= self.noop_interval:
                self.append_noop("periodic noop")

    def cluster_time(self) -> Timestamp:
        return self.oplog.last_ts

    # -- catalog ---------------------------------------------------------------------
    def get_collection(self, db: str, name: str) -> Collection | None:
        return self.databases.get(db, {}).get(name)

    def collection_or_create(self, db: str, name: str) -> Collection:
        coll = self.get_collection(db, name)
        if coll is None:
            coll = create_collection(self, db, name, {})
        return coll

    def iter_collections(self) -> Iterator[Collection]:
        for colls in list(self.databases.values()):
            yield from list(colls.values())

    # -- the write path --------------------------------------------------------------
    def append(self, entries: list[OplogEntry]) -> Timestamp:
        """Give entries one fresh cluster time, append them as one slot and journal them."""
        ts = self.oplog.next_ts()
        wall = _dt.datetime.now(_dt.UTC)
        for i, entry in enumerate(entries):
            entry.ts = ts
            entry.wall = wall
            if entry.in_txn:
                entry.txn_index = i
        self.oplog.append(ts, entries)
        if self._data_dir is not None:
            self._data_dir.journal(ts, entries, self.oplog.term)
        if self.replication is not None:
            self.replication.note_write()
        return ts

    def apply_replicated(self, ts: Timestamp, entries: list[OplogEntry], term: int) -> None:
        """A secondary applies one slot of its primary's oplog: the same apply path as
        recovery from the journal (persistence.apply_slot), then journals it."""
        apply_slot(self, ts, entries, term)
        if self._data_dir is not None:
            self._data_dir.journal(ts, entries, term)

    def roll_back_to(self, common: Timestamp) -> Undone:
        """Undo this member's slots after ``common`` (``rollback.undo_after``; the caller
        ran ``rollback.check``), then rewrite the data dir from the state rolled back to,
        so that a restart does not replay the undone slots from the journal.

        As mongod's: the open cursors die (recovering to the stable timestamp closes and
        reopens the catalog, so each fails its next getMore with QueryPlanKilled,
        src/mongo/db/exec/requires_collection_stage.cpp; a getMore running now is killed
        with InterruptedDueToReplStateChange, rollback_impl.cpp _killAllUserOperations),
        and the transaction table forgets the commits undone (rollback_impl.cpp
        invalidates the sessions and reloads config.transactions as of the common point)."""
        self.cursors.invalidate_all("the catalog was closed and reopened (rollback)")
        undone = undo_after(self, common)
        self.checkpoint()
        return undone

    def append_noop(self, msg: str) -> Timestamp:
        return self.append([OplogEntry(op="n", ns="", cmd={"msg": msg})])

    def append_command(
        self,
        ns: str,
        cmd: dict[str, Any],
        coll: Collection | None,
        *,
        pre: dict[str, Any] | None = None,
    ) -> Timestamp:
        """Log a catalog command; ``pre`` is the state it changed, which a rollback puts
        back (collMod's old options, a dropped index's place: ``OplogEntry.pre``)."""
        entry = OplogEntry(
            op="c",
            ns=ns,
            cmd=cmd,
            pre=pre,
            collection_uuid=coll.uuid if coll is not None else None,
        )
        return self.append([entry])

    def checkpoint(self) -> None:
        """Rewrite the data dir from the state now (after a rollback or an initial sync),
        so that a restart does not replay what the journal held before."""
        if self._data_dir is not None:
            self._data_dir.compact(self)

    def read(
        self, coll: Collection, idk: Hashable, txn: Transaction | None
    ) -> dict[str, Any] | None:
        """A document as the caller's snapshot sees it."""
        if txn is not None:
            key = (coll.ns, idk)
            if key in txn.overlay:
                return txn.overlay[key]
            if key in txn.snapshot:
                return txn.snapshot[key]
        return coll.get(idk)

    def candidates(
        self, coll: Collection, equalities: Mapping[str, list[Any]], txn: Transaction | None
    ) -> list[dict[str, Any]]:
        """Documents that may match, as the caller's snapshot sees them.

        Costs what the index lookup returns, plus (for a transaction) a look-up per
        candidate in its own versions; only a query without an ``_id`` equality also
        scans the transaction's versions of this collection.
        """
        docs = list(coll.iter_candidates(equalities))
        if txn is None or (not txn.overlay and not txn.snapshot):
            return docs
        ns = coll.ns
        # A document the transaction wrote is never also in its snapshot (lock_for).
        own = (txn.snapshot, txn.overlay)
        out = [d for d in docs if not any((ns, canonical(d["_id"])) in v for v in own)]
        ids = equalities.get("_id")
        if ids is not None:
            for key in {(ns, canonical(v)) for v in ids}:
                for versions in own:
                    doc = versions.get(key)
                    if doc is not None:
                        out.append(doc)
        else:
            out += [doc for key, doc in txn.snapshot.items() if key[0] == ns and doc is not None]
            out += [d for d in txn.overlay_by_ns.get(ns, {}).values() if d is not None]
        return out

    async def wait_unlocked(self, coll: Collection, idk: Hashable, op: Op) -> bool:
        """Before writing a document: True if we had to wait for a transaction's lock.

        A transaction writing a document another holds fails with WriteConflict at once;
        a plain write waits for the holder to commit or abort, as mongod's does.
        """
        key = (coll.ns, idk)
        holder = self.sessions.locked_by_other(key, op.txn)
        if holder is None:
            return False
        if op.txn is not None:
            self.sessions.lock_for(op.txn, key)  # raises WriteConflict
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60.0
        while self.sessions.locked_by_other(key, None) is not None:
            self.sessions.reap_expired()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise MongoError(50, "operation exceeded time limit")
            event = self.lock_released
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(remaining, 1.0))
        return True

    def notify_locks_released(self) -> None:
        self.lock_released.set()
        self.lock_released = asyncio.Event()

    def write(
        self,
        coll: Collection,
        op_kind: OpKind,
        idk: Hashable,
        doc: dict[str, Any] | None,
        pre: dict[str, Any] | None,
        op: Op,
        update_description: dict[str, Any] | None = None,
    ) -> None:
        """Apply one document write: buffered in a transaction, else committed at once.

        Callers have already validated the document and checked unique indexes.
        """
        if doc is not None:
            check_size(op_kind, doc)
        key = (coll.ns, idk)
        if op.txn is not None:
            self.sessions.lock_for(op.txn, key)
            op.txn.overlay[key] = doc
            versions = op.txn.overlay_by_ns.get(coll.ns)
            if versions is None:
                versions = op.txn.overlay_by_ns[coll.ns] = TxnVersions()
            versions[idk] = doc
            op.txn.writes.append(PendingWrite(coll.ns, idk, op_kind, doc, pre, update_description))
            return
        self.sessions.before_commit_write(key, coll.get(idk), None)
        if op_kind == "d":
            coll.remove(idk)
        else:
            assert doc is not None
            coll.put(idk, doc)
        source = doc if doc is not None else pre
        assert source is not None
        entry = OplogEntry(
            op=op_kind,
            ns=coll.ns,
            key={"_id": source["_id"]},
            doc=doc,
            pre=pre,
            pre_images=coll.pre_images_enabled,
            update_description=update_description,
            collection_uuid=coll.uuid,
        )
        op.ctx.operation_time = self.append([entry])

    def unique_overlay(self, coll: Collection, txn: Transaction | None) -> TxnVersions | None:
        """The transaction's own versions of ``coll``'s documents, for unique checks.

        None when there is no transaction, no unique secondary index to check, or no
        version yet (nothing of the transaction's own to check against).
        """
        if txn is None or not any(ix.unique for ix in coll.indexes.values()):
            return None
        return txn.overlay_by_ns.get(coll.ns)

    def commit_transaction(self, session: Session, op: Op) -> None:
        txn = session.txn
        assert txn is not None
        entries: list[OplogEntry] = []
        # Hot path (a commit holds a batch's writes): each namespace is resolved once.
        colls: dict[str, Collection] = {}
        try:
            # Unique keys again, against what others committed since each write's own
            # check: each document's final version only, once (an earlier version the
            # transaction replaced holds nothing at commit).
            for ns, versions in txn.overlay_by_ns.items():
                target = colls[ns] = self._collection_by_ns(ns)
                overlay = self.unique_overlay(target, txn)
                if overlay is None:
                    continue
                for idk, doc in versions.items():
                    if doc is not None:
                        target.check_unique(idk, doc, is_insert=False, overlay=overlay)
        except MongoError as exc:
            self.sessions.abort(session)
            self.notify_locks_released()
            raise MongoError(
                112,
                f"Write conflict at commit: {exc.message}",
                labels=["TransientTransactionError"],
            ) from exc
        for w in txn.writes:
            coll = colls.get(w.ns)
            if coll is None:
                coll = colls[w.ns] = self._collection_by_ns(w.ns)
            key = (w.ns, w.idk)
            self.sessions.before_commit_write(key, coll.get(w.idk), txn)
            if w.op == "d":
                coll.remove(w.idk)
            else:
                assert w.doc is not None
                coll.put(w.idk, w.doc)
            source = w.doc if w.doc is not None else w.pre
            assert source is not None
            entries.append(
                OplogEntry(
                    op=w.op,
                    ns=w.ns,
                    key={"_id": source["_id"]},
                    doc=w.doc,
                    pre=w.pre,
                    pre_images=coll.pre_images_enabled,
                    update_description=w.update_description,
                    collection_uuid=coll.uuid,
                    lsid=session.lsid,
                    txn_number=txn.txn_number,
                    in_txn=True,
                )
            )
        self.sessions.finish_commit(session)
        self.notify_locks_released()
        if entries:
            op.ctx.operation_time = self.append(entries)

    def _collection_by_ns(self, ns: str) -> Collection:
        db, name = ns.split(".", 1)
        return self.collection_or_create(db, name)

    # -- change-stream host ------------------------------------------------------------
    def lookup_document(self, ns: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
        """The current committed version of a document (fullDocument: updateLookup)."""
        db, _, name = ns.partition(".")
        coll = self.get_collection(db, name)
        if coll is None or "_id" not in key:
            return None
        return coll.get(canonical(key["_id"]))

    # -- dispatch --------------------------------------------------------------------
    async def run_command(
        self, db: str, cmd: dict[str, Any], ctx: CommandContext, command: Command | None = None
    ) -> Reply:
        """Run one of the registry's engine commands (``command``, when the caller has
        already looked it up) in its session and transaction."""
        name = next(iter(cmd), "")
        if command is None:
            command = self.registry.get(name)
        if command is None or command.runs is not Runs.ENGINE:
            raise MongoError(59, f"no such command: '{name}'")
        op, replay = prepare_op(self, command, cmd, ctx)
        if replay is not None:
            return replay
        let = COMMAND_VARIABLES.set(command_variables(cmd.get("let")))
        try:
            reply: Reply = await command.handler(self, db, cmd, op)
        except MongoError:
            if (
                op.txn is not None
                and op.session is not None
                and command.name not in ("commitTransaction", "abortTransaction")
            ):
                # mongod aborts a transaction when any of its statements fails.
                self.sessions.abort(op.session)
                self.notify_locks_released()
            raise
        finally:
            COMMAND_VARIABLES.reset(let)
        if op.session is not None and op.txn is None and op.txn_number is not None:
            # A copy: the server adds fields (an injected writeConcernError, labels) to the
            # reply it sends, and a retry must get the write's own result, not those.
            op.session.retry_replies = {op.txn_number: dict(reply)}
        return reply


MAX_DOCUMENT_BYTES = 16 * 1024 * 1024  # BSONObjMaxUserSize, hello's maxBsonObjectSize


def check_size(op_kind: OpKind, doc: dict[str, Any]) -> None:
    """mongod's 16 MiB document limit: an insert too large is BadValue (2,
    write_ops_exec.cpp fixDocumentForInsert); an update's result, 17419 (update_stage.cpp)."""
    size = len(bson.encode(doc))
    if size <= MAX_DOCUMENT_BYTES:
        return
    if op_kind == "i":
        raise MongoError(
            2, f"object to insert too large. size in bytes: {size}, max size: {MAX_DOCUMENT_BYTES}"
        )
    raise MongoError(17419, f"Resulting document after update is larger than {MAX_DOCUMENT_BYTES}")
