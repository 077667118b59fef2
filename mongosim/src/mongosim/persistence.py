"""The data dir: data and oplog survive a SIGKILL of the server.

Every oplog slot is appended to ``journal.bson`` with one ``write`` before the command
replies; the kernel keeps it even if the process is killed the next instant (fsync guards
against power loss, which a test server need not survive). Catalog changes are oplog
command entries too, so replaying the journal over the last ``snapshot.bson`` rebuilds
everything. At start-up and shutdown the state is compacted into a new snapshot.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import bson
from bson.binary import Binary, UuidRepresentation
from bson.timestamp import Timestamp

from .bsonutil import CODEC_OPTIONS, canonical
from .catalog import CatalogHost, add_index, compile_validator, create_collection
from .drop_pending import DropPending
from .oplog import Oplog, OplogEntry
from .sessions import SessionCatalog, TxnState
from .storage import Collection


class DataHost(CatalogHost, Protocol):
    """What loading and compacting the data dir needs of the engine."""

    @property
    def oplog(self) -> Oplog: ...

    def get_collection(self, db: str, name: str) -> Collection | None: ...

    def iter_collections(self) -> Iterator[Collection]: ...

    @property
    def sessions(self) -> SessionCatalog: ...

    @property
    def drop_pending(self) -> DropPending: ...


_FIELDS = ("key", "doc", "pre", "update_description", "cmd", "lsid", "txn_number")


def entry_to_doc(entry: OplogEntry) -> dict[str, Any]:
    out: dict[str, Any] = {
        "op": entry.op,
        "ns": entry.ns,
        "wall": entry.wall,
        "txn_index": entry.txn_index,
        "in_txn": entry.in_txn,
        "pre_images": entry.pre_images,
    }
    for name in _FIELDS:
        value = getattr(entry, name)
        if value is not None:
            out[name] = value
    if entry.collection_uuid is not None:
        out["uuid"] = Binary.from_uuid(entry.collection_uuid, UuidRepresentation.STANDARD)
    return out


def doc_to_entry(doc: dict[str, Any], ts: Timestamp) -> OplogEntry:
    uuid = doc.get("uuid")
    return OplogEntry(
        op=doc["op"],
        ns=doc["ns"],
        ts=ts,
        wall=doc["wall"],
        key=doc.get("key"),
        doc=doc.get("doc"),
        pre=doc.get("pre"),
        pre_images=doc.get("pre_images", False),
        update_description=doc.get("update_description"),
        cmd=doc.get("cmd"),
        collection_uuid=uuid.as_uuid(UuidRepresentation.STANDARD) if uuid is not None else None,
        lsid=doc.get("lsid"),
        txn_number=doc.get("txn_number"),
        txn_index=doc.get("txn_index", 0),
        in_txn=doc.get("in_txn", False),
    )


def _read_bson_stream(path: Path) -> Iterator[dict[str, Any]]:
    """Every complete BSON document in a file; a torn tail (killed mid-write) is ignored."""
    if not path.exists():
        return
    data = path.read_bytes()
    pos = 0
    while pos + 4 <= len(data):
        size = int.from_bytes(data[pos : pos + 4], "little")
        if size < 5 or pos + size > len(data):
            break
        try:
            yield bson.decode(data[pos : pos + size], codec_options=CODEC_OPTIONS)
        except bson.errors.InvalidBSON:
            break
        pos += size


class DataDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.journal_path = path / "journal.bson"
        self.snapshot_path = path / "snapshot.bson"
        self._fd: int | None = None

    def load_into(self, engine: DataHost) -> None:
        for record in _read_bson_stream(self.snapshot_path):
            _apply_snapshot_record(engine, record)
        for record in _read_bson_stream(self.journal_path):
            ts = record["ts"]
            entries = [doc_to_entry(d, ts) for d in record["entries"]]
            apply_slot(engine, ts, entries, record.get("t", 1))
        self.compact(engine)

    def journal(self, ts: Timestamp, entries: list[OplogEntry], term: int = 1) -> None:
        if self._fd is None:
            self._fd = os.open(self.journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        record: dict[str, Any] = {"ts": ts, "entries": [entry_to_doc(e) for e in entries]}
        if term != 1:  # a one-member set's records stay as they were
            record["t"] = term
        os.write(self._fd, bson.encode(record))

    def compact(self, engine: DataHost) -> None:
        """Write the whole state as a new snapshot, then start an empty journal."""
        tmp = self.snapshot_path.with_suffix(".tmp")
        with tmp.open("wb") as out:
            out.write(
                bson.encode(
                    {
                        "kind": "clock",
                        "ts": engine.oplog.last_ts,
                        "history_start": engine.oplog.history_start,
                    }
                )
            )
            for coll in engine.iter_collections():
                out.write(
                    bson.encode(
                        {
                            "kind": "collection",
                            "db": coll.db,
                            "name": coll.name,
                            "uuid": Binary.from_uuid(coll.uuid, UuidRepresentation.STANDARD),
                            "options": coll.options,
                            "indexes": coll.index_specs(),
                        }
                    )
                )
                for doc in coll.docs.values():
                    out.write(
                        bson.encode({"kind": "doc", "db": coll.db, "name": coll.name, "doc": doc})
                    )
            for slot in engine.oplog.slots():
                out.write(
                    bson.encode(
                        {
                            "kind": "slot",
                            "ts": slot.ts,
                            "t": slot.term,
                            "entries": [entry_to_doc(e) for e in slot.entries],
                        }
                    )
                )
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.snapshot_path)
        self.close()
        self.journal_path.unlink(missing_ok=True)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _apply_snapshot_record(engine: DataHost, record: dict[str, Any]) -> None:
    kind = record["kind"]
    if kind == "clock":
        engine.oplog.advance_clock_to(record["ts"])
        engine.oplog.history_start = record.get("history_start", Timestamp(0, 0))
    elif kind == "collection":
        coll = create_collection(engine, record["db"], record["name"], record["options"], log=False)
        coll.uuid = record["uuid"].as_uuid(UuidRepresentation.STANDARD)
        for spec in record["indexes"]:
            if spec["name"] != "_id_":
                add_index(engine, coll, spec, log=False)
    elif kind == "doc":
        holder = engine.get_collection(record["db"], record["name"])
        assert holder is not None
        doc = record["doc"]
        holder.put(canonical(doc["_id"]), doc)
    elif kind == "slot":
        ts = record["ts"]
        engine.oplog.append(
            ts, [doc_to_entry(d, ts) for d in record["entries"]], record.get("t", 1)
        )


def apply_slot(engine: DataHost, ts: Timestamp, entries: list[OplogEntry], term: int) -> None:
    """Redo one committed oplog slot and append it to the oplog: the one apply path, for
    recovery from the journal and for a secondary applying its primary's oplog
    (``Engine.apply_replicated``). A transaction's slot also records, in the transaction
    table, its session's txnNumber as committed, as mongod's config.transactions does, so
    a commitTransaction retried after a restart or on a new primary is answered from it."""
    for entry in entries:
        apply_entry(engine, entry)
    first = entries[0] if entries else None
    if (
        first is not None
        and first.in_txn
        and first.lsid is not None
        and first.txn_number is not None
    ):
        session = engine.sessions.get(first.lsid)
        if session.txn_number <= first.txn_number and session.txn is None:
            session.txn_number = first.txn_number
            session.state = TxnState.COMMITTED
    engine.oplog.append(ts, entries, term)


def apply_entry(engine: DataHost, entry: OplogEntry) -> None:
    """Redo one committed oplog entry against the catalog and collections (no logging)."""
    if entry.op == "n":
        return
    if entry.op == "c":
        _apply_command(engine, entry)
        return
    db, _, name = entry.ns.partition(".")
    coll = engine.get_collection(db, name)
    if coll is None:
        coll = create_collection(engine, db, name, {}, log=False)
    source = entry.doc if entry.doc is not None else entry.pre
    assert source is not None or entry.key is not None
    idk = canonical((entry.key or source or {})["_id"])
    if entry.op == "d":
        coll.remove(idk)
    else:
        assert entry.doc is not None
        coll.put(idk, entry.doc)


def _apply_command(engine: DataHost, entry: OplogEntry) -> None:
    cmd = entry.cmd or {}
    db = entry.db
    name = next(iter(cmd), "")
    if name == "create":
        coll = create_collection(
            engine, db, cmd["create"], {k: v for k, v in cmd.items() if k != "create"}, log=False
        )
        if entry.collection_uuid is not None:
            coll.uuid = entry.collection_uuid
    elif name == "drop":
        dropped = engine.databases.get(db, {}).pop(cmd["drop"], None)
        if dropped is not None:
            engine.drop_pending.keep(entry.ts, dropped)
    elif name == "dropDatabase":
        engine.databases.pop(db, None)
    elif name == "renameCollection":
        src_db, src = cmd["renameCollection"].split(".", 1)
        dst_db, dst = cmd["to"].split(".", 1)
        moved = engine.databases.get(src_db, {}).pop(src, None)
        if moved is not None:
            moved.db, moved.name = dst_db, dst
            engine.databases.setdefault(dst_db, {})[dst] = moved
    elif name == "createIndexes":
        c = engine.get_collection(db, cmd["createIndexes"])
        if c is None:
            c = create_collection(engine, db, cmd["createIndexes"], {}, log=False)
        add_index(engine, c, cmd["spec"], log=False)
    elif name == "dropIndexes":
        c = engine.get_collection(db, cmd["dropIndexes"])
        if c is not None:
            c.indexes.pop(cmd["index"], None)
    elif name == "collMod":
        c = engine.get_collection(db, cmd["collMod"])
        if c is not None:
            _redo_coll_mod(c, cmd)
            compile_validator(c)


def _redo_coll_mod(coll: Any, cmd: dict[str, Any]) -> None:
    for key, value in cmd.items():
        if key in ("collMod", "index"):
            continue
        coll.options[key] = value
    change = cmd.get("index")
    if change:
        for index in coll.indexes.values():
            if index.name == change.get("name") or index.spec["key"] == change.get("keyPattern"):
                if "expireAfterSeconds" in change:
                    index.spec["expireAfterSeconds"] = change["expireAfterSeconds"]
                    index.expire_after = float(change["expireAfterSeconds"])
                if "hidden" in change:
                    index.spec["hidden"] = change["hidden"]
