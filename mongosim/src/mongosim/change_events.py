"""Oplog entries rendered as change events and as ``local.oplog.rs`` documents.

Event shapes and field order follow the server's change_stream_event_transform.cpp and
the manual's "Change Events" pages: ``_id``, ``operationType``, ``clusterTime``,
``wallTime``, (``collectionUUID`` with showExpandedEvents), ``fullDocument``, ``ns``,
``documentKey``, ``updateDescription``, ``lsid``/``txnNumber`` for transactions, and
``fullDocumentBeforeChange`` added last by the pre-image stage.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from bson.binary import Binary, UuidRepresentation
from bson.int64 import Int64

from .bsonutil import MISSING
from .oplog import Oplog, OplogEntry, OplogSlot

_CRUD_TYPES = {"i": "insert", "u": "update", "r": "replace", "d": "delete"}
# Catalog commands reported only with showExpandedEvents (manual: "Change Events").
_EXPANDED_TYPES = {
    "create": "create",
    "createIndexes": "createIndexes",
    "dropIndexes": "dropIndexes",
    "collMod": "modify",
}


def _uuid(entry: OplogEntry) -> Binary | None:
    if entry.collection_uuid is None:
        return None
    return Binary.from_uuid(entry.collection_uuid, UuidRepresentation.STANDARD)


def event_header(
    entry: OplogEntry, token: dict[str, str], op_type: str, expanded: bool
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "_id": token,
        "operationType": op_type,
        "clusterTime": entry.ts,
        "wallTime": entry.wall,
    }
    if expanded:  # the UUID is built only for the events that show it
        uuid = _uuid(entry)
        if uuid is not None:
            event["collectionUUID"] = uuid
    return event


def crud_event(
    entry: OplogEntry, token: dict[str, str], expanded: bool, update_document: Any = MISSING
) -> dict[str, Any]:
    """insert/update/replace/delete. ``update_document`` is an update's fullDocument, when
    the stream's fullDocument option supplies one; it takes the same slot as an insert's."""
    event = event_header(entry, token, _CRUD_TYPES[entry.op], expanded)
    if entry.op in ("i", "r"):
        event["fullDocument"] = entry.doc
    elif update_document is not MISSING:
        event["fullDocument"] = update_document
    event["ns"] = {"db": entry.db, "coll": entry.coll}
    event["documentKey"] = entry.key
    if entry.op == "u":
        description = dict(
            entry.update_description
            or {"updatedFields": {}, "removedFields": [], "truncatedArrays": []}
        )
        if expanded:
            description["disambiguatedPaths"] = disambiguated_paths(
                description, entry.doc, entry.pre
            )
        event["updateDescription"] = description
    if entry.in_txn:
        event["lsid"] = entry.lsid
        event["txnNumber"] = Int64(entry.txn_number or 0)
    return event


def command_event(
    entry: OplogEntry, token: dict[str, str], expanded: bool
) -> dict[str, Any] | None:
    """drop / rename / dropDatabase, and the expanded catalog events; None if not an event."""
    cmd = entry.cmd or {}
    name = next(iter(cmd), "")
    db = entry.db
    if name == "drop":
        event = event_header(entry, token, "drop", expanded)
        event["ns"] = {"db": db, "coll": cmd["drop"]}
        return event
    if name == "renameCollection":
        src_db, src = cmd["renameCollection"].split(".", 1)
        dst_db, dst = cmd["to"].split(".", 1)
        event = event_header(entry, token, "rename", expanded)
        event["ns"] = {"db": src_db, "coll": src}
        event["to"] = {"db": dst_db, "coll": dst}
        if expanded:
            event["operationDescription"] = {"to": event["to"], "dropTarget": cmd.get("dropTarget")}
        return event
    if name == "dropDatabase":
        event = event_header(entry, token, "dropDatabase", expanded)
        event["ns"] = {"db": db}
        return event
    if expanded and name in _EXPANDED_TYPES:
        event = event_header(entry, token, _EXPANDED_TYPES[name], expanded)
        event["ns"] = {"db": db, "coll": cmd[name]}
        event["operationDescription"] = _operation_description(name, cmd)
        return event
    return None


def _operation_description(name: str, cmd: dict[str, Any]) -> dict[str, Any]:
    if name in ("createIndexes", "dropIndexes"):
        return {"indexes": [cmd["spec"]]}
    rest = {k: v for k, v in cmd.items() if k != name}
    if name == "collMod":
        if "index" in rest:
            return {"index": rest.pop("index"), **rest}
        return rest
    return rest  # create: the collection options


def invalidate_event(entry: OplogEntry, token: dict[str, str]) -> dict[str, Any]:
    return {
        "_id": token,
        "operationType": "invalidate",
        "clusterTime": entry.ts,
        "wallTime": entry.wall,
    }


# -- local.oplog.rs -------------------------------------------------------------------
def _oplog_doc(entry: OplogEntry, *, with_time: bool) -> dict[str, Any]:
    op = {"r": "u"}.get(entry.op, entry.op)
    doc: dict[str, Any] = {"op": op, "ns": entry.ns}
    uuid = _uuid(entry)
    if uuid is not None:
        doc["ui"] = uuid
    if entry.op == "i" or entry.op == "r":
        doc["o"] = entry.doc
        doc["o2"] = entry.key
    elif entry.op == "u":
        desc = entry.update_description or {}
        diff: dict[str, Any] = {}
        if desc.get("updatedFields"):
            diff["u"] = desc["updatedFields"]
        if desc.get("removedFields"):
            diff["d"] = {f: False for f in desc["removedFields"]}
        doc["o"] = {"$v": 2, "diff": diff}
        doc["o2"] = entry.key
    elif entry.op == "d":
        doc["o"] = entry.key
    else:
        doc["o"] = entry.cmd or {}
    if with_time:
        doc.update(ts=entry.ts, t=Int64(1), v=Int64(2), wall=entry.wall)
    return doc


def _slot_doc(slot: OplogSlot) -> dict[str, Any]:
    first = slot.entries[0]
    if not first.in_txn:
        return _oplog_doc(first, with_time=True)
    return {
        "lsid": first.lsid,
        "txnNumber": Int64(first.txn_number or 0),
        "op": "c",
        "ns": "admin.$cmd",
        "o": {"applyOps": [_oplog_doc(e, with_time=False) for e in slot.entries]},
        "ts": slot.ts,
        "t": Int64(1),
        "v": Int64(2),
        "wall": first.wall,
        "prevOpTime": {"ts": slot.ts.__class__(0, 0), "t": Int64(-1)},
    }


def render_oplog_documents(oplog: Oplog, *, reverse: bool = False) -> Iterator[dict[str, Any]]:
    """The oplog as ``local.oplog.rs`` shows it, oldest first (or newest first)."""
    slots = oplog.slots_reversed() if reverse else oplog.slots()
    for slot in slots:
        yield _slot_doc(slot)


def disambiguated_paths(
    description: Mapping[str, Any], post: Any, pre: Any
) -> dict[str, list[Any]]:
    """updateDescription.disambiguatedPaths (6.1+, with showExpandedEvents): each path of
    updatedFields, removedFields and truncatedArrays with a numeric component, spelled out
    as a list in which an array index is an int and a field name a string
    (src/mongo/db/pipeline/change_stream_event_transform.cpp)."""
    paths = [
        *description.get("updatedFields", {}),
        *description.get("removedFields", []),
        *(t["field"] for t in description.get("truncatedArrays", [])),
    ]
    out: dict[str, list[Any]] = {}
    for path in paths:
        parts = path.split(".")
        if not any(p.isdigit() for p in parts):
            continue
        out[path] = _spell(parts, post if post is not None else pre)
    return out


def _spell(parts: list[str], doc: Any) -> list[Any]:
    spelled: list[Any] = []
    node = doc
    for part in parts:
        if isinstance(node, list) and part.isdigit():
            spelled.append(int(part))
            node = node[int(part)] if int(part) < len(node) else None
        else:
            spelled.append(part)
            node = node.get(part) if isinstance(node, Mapping) else None
    return spelled
