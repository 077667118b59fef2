"""Collections, indexes and databases: create, collMod, drop, rename, list, (re)index.

Every catalog change is also an oplog command entry, which is what change streams turn
into drop/rename/dropDatabase (and, with showExpandedEvents, create/modify/createIndexes/
dropIndexes) events, and what the data dir replays after a restart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bson.binary import Binary, UuidRepresentation

from . import privileges
from .catalog import COLL_OPTIONS, add_index, check_name, compile_validator, create_collection
from .engine import Engine
from .errors import MongoError
from .matching import compile_filter
from .operation import Op, Reply
from .privileges import on_cluster, on_collection, on_database
from .registry import command
from .storage import Collection, Index, default_index_name, normalize_index_spec

_VALIDATION_OPTIONS = ("validator", "validationLevel", "validationAction")
_INDEX_MOD_OPTIONS = ("expireAfterSeconds", "hidden")  # what collMod's index change sets


@command("create", in_txn=True, writes=True, needs=on_collection("createCollection"))
async def cmd_create(engine: Engine, db: str, cmd: dict[str, Any], op: Op) -> Reply:
    name = check_name(db, cmd["create"])
    if "viewOn" in cmd:
        raise MongoError(166, "mongosim does not support views")
    existing = engine.get_collection(db, name)
    options = {k: cmd[k] for k in COLL_OPTIONS if k in cmd}
    if existing is not None:
        # 7.0: creating an existing collection with identical options succeeds.
        if existing.options == options:
            return {}
        raise MongoError(48, f"Collection {db}.{name} already exists.")
    create_collection(engine, db, name, options)
    return {}


def _apply_index_change(
    engine: Engine, coll: Collection, change: Mapping[str, Any]
) -> dict[str, Any]:
    index = _find_index(coll, change.get("name") or change.get("keyPattern"))
    reply: dict[str, Any] = {}
    if "expireAfterSeconds" in change:
        old = index.spec.get("expireAfterSeconds")
        new = change["expireAfterSeconds"]
        if old is None:
            raise MongoError(72, "no expireAfterSeconds field to update")
        index.spec["expireAfterSeconds"] = new
        index.expire_after = float(new)
        reply.update(expireAfterSeconds_old=old, expireAfterSeconds_new=new)
    if "hidden" in change:
        reply.update(hidden_old=bool(index.spec.get("hidden", False)), hidden_new=change["hidden"])
        index.spec["hidden"] = change["hidden"]
    return reply


@command("collMod", writes=True, needs=on_collection("collMod"))
async def cmd_coll_mod(engine: Engine, db: str, cmd: dict[str, Any], op: Op) -> Reply:
    name = cmd["collMod"]
    coll = engine.get_collection(db, name)
    if coll is None:
        raise MongoError(26, f"ns does not exist: {db}.{name}")
    # What the change replaces, for a rollback to put back: mongod logs it in the entry's
    # o2 (collectionOptions_old, indexOptions_old: OpObserverImpl::onCollMod,
    # src/mongo/db/op_observer/op_observer_impl.cpp).
    pre: dict[str, Any] = {"collectionOptions_old": dict(coll.options)}
    if "index" in cmd:
        index = _find_index(coll, cmd["index"].get("name") or cmd["index"].get("keyPattern"))
        pre["indexOptions_old"] = {
            "name": index.name,
            **{k: index.spec[k] for k in _INDEX_MOD_OPTIONS if k in index.spec},
        }
    reply: dict[str, Any] = {}
    changed: dict[str, Any] = {}
    for key in (*_VALIDATION_OPTIONS, "changeStreamPreAndPostImages"):
        if key in cmd:
            coll.options[key] = cmd[key]
            changed[key] = cmd[key]
    if "validator" in changed or "validationLevel" in changed or "validationAction" in changed:
        compile_validator(coll)
    if "index" in cmd:
        reply.update(_apply_index_change(engine, coll, cmd["index"]))
        changed["index"] = dict(cmd["index"])
    engine.append_command(f"{db}.$cmd", {"collMod": name, **changed}, coll, pre=pre)
    return reply


def drop_collection(engine: Engine, coll: Collection) -> None:
    engine.databases.get(coll.db, {}).pop(coll.name, None)
    engine.cursors.kill_for_ns(coll.ns)
    ts = engine.append_command(f"{coll.db}.$cmd", {"drop": coll.name}, coll)
    engine.drop_pending.keep(ts, coll)  # until the drop is majority-committed


@command("drop", writes=True, needs=on_collection("dropCollection"))
async def cmd_drop(engine: Engine, db: str, cmd: dict[str, Any], op: Op) -> Reply:
    coll = engine.get_collection(db, cmd["drop"])
    if coll is None:
        return {}  # 7.0: dropping a missing collection succeeds
    n_indexes = len(coll.indexes)
    drop_collection(engine, coll)
    return {"nIndexesWas": n_indexes, "ns": coll.ns}


@command("dropDatabase", writes=True, needs=on_database("dropDatabase"))
async def cmd_drop_database(engine: Engine, db: str, cmd: dict[str, Any], op: Op) -> Reply:
    colls = list(engine.databases.get(db, {}).values())
    for coll in colls:
        drop_collection(engine, coll)
    if db in engine.databases:
        del engine.databases[db]
        engine.append_command(f"{db}.$cmd", {"dropDatabase": 1}, None)
    return {"dropped": db}


@command("renameCollection", writes=True, needs=privileges.rename_collection)
async def cmd_rename(engine: Engine, db: str, cmd: dict[str, Any], op: Op) -> Reply:
    if db != "admin":
        raise MongoError(13, "renameCollection may only be run against the admin database.")
    source, target = cmd["renameCollection"], cmd["to"]
    src_db, src_name = source.split(".", 1)
    dst_db, dst_name = target.split(".", 1)
    check_name(dst_db, dst_name)
    coll = engine.get_collection(src_db, src_name)
    if coll is None:
        raise MongoError(26, "Source collection " + source + " does not exist")
    existing = engine.get_collection(dst_db, dst_name)
    if existing is not None:
        if not cmd.get("dropTarget"):
            raise MongoError(48, "target namespace exists")
        drop_collection(engine, existing)
    engine.databases[src_db].pop(src_name)
    engine.cursors.kill_for_ns(coll.ns)
    coll.db, coll.name = dst_db, dst_name
    engine.databases.setdefault(dst_db, {})[dst_name] = coll
    engine.append_command(
        f"{src_db}.$cmd",
        {"renameCollection": source, "to": target, "dropTarget": bool(cmd.get("dropTarget"))},
        coll,
    )
    return {}


def _collection_info(coll: Collection, name_only: bool) -> dict[str, Any]:
    if name_only:
        return {"name": coll.name, "type": "collection"}
    return {
        "name": coll.name,
        "type": "collection",
        "options": dict(coll.options),
        "info": {
            "readOnly": False,
            "uuid": Binary.from_uuid(coll.uuid, UuidRepresentation.STANDARD),
        },
        "idIndex": {"v": 2, "key": {"_id": 1}, "name": "_id_"},
    }


@command("listCollections", reads_data=True, needs=on_database("listCollections"))
async def cmd_list_collections(engine: Engine, db: str, cmd: dict[str, Any], op: Op) -> Reply:
    matcher = compile_filter(cmd.get("filter") or {})
    name_only = bool(cmd.get("nameOnly"))
    infos = [_collection_info(c, name_only) for c in engine.databases.get(db, {}).values()]
    infos = [i for i in infos if matcher(i)]
    return {"cursor": {"id": 0, "ns": f"{db}.$cmd.listCollections", "firstBatch": infos}}


@command("listDatabases", needs=on_cluster("listDatabases"))
async def cmd_list_databases(engine: Engine, db: str, cmd: dict[str, Any], op: Op) -> Reply:
    matcher = compile_filter(cmd.get("filter") or {})
    dbs: list[dict[str, Any]] = []
    for name, colls in sorted(engine.databases.items()):
        size = sum(len(c) for c in colls.values()) * 100
        info: dict[str, Any] = {"name": name, "sizeOnDisk": size, "empty": size == 0}
        if matcher(info):
            dbs.append({"name": name} if cmd.get("nameOnly") else info)
    total = sum(d.get("sizeOnDisk", 0) for d in dbs)
    return {"databases": dbs, "totalSize": total, "totalSizeMb": total // (1024 * 1024)}


def _parse_index_spec(raw: Mapping[str, Any]) -> dict[str, Any]:
    key = raw.get("key")
    if not isinstance(key, Mapping) or not key:
        raise MongoError(67, "Index key pattern must be a non-empty object")
    named = {**raw, "name": raw.get("name") or default_index_name(key)}
    if "expireAfterSeconds" in raw and len(key) != 1:
        raise MongoError(
            67, "TTL indexes are single-field indexes, compound indexes do not support TTL."
        )
    return normalize_index_spec(named)


@command("createIndexes", in_txn=True, writes=True, needs=on_collection("createIndex"))
async def cmd_create_indexes(engine: Engine, db: str, cmd: dict[str, Any], op: Op) -> Reply:
    name = cmd["createIndexes"]
    coll = engine.get_collection(db, name)
    created_auto = coll is None
    if coll is None:
        coll = create_collection(engine, db, name, {})
    before = len(coll.indexes)
    specs = [_parse_index_spec(raw) for raw in cmd.get("indexes") or []]
    if not specs:
        raise MongoError(2, "Must specify at least one index to create")
    created = [add_index(engine, coll, spec) for spec in specs]
    reply: dict[str, Any] = {
        "numIndexesBefore": before,
        "numIndexesAfter": len(coll.indexes),
        "createdCollectionAutomatically": created_auto,
    }
    if not any(created):
        reply["note"] = "all indexes already exist"
    return reply


def _find_index(coll: Collection, name_or_key: Any) -> Index:
    for index in coll.indexes.values():
        if index.name == name_or_key or (
            isinstance(name_or_key, Mapping) and index.spec["key"] == dict(name_or_key)
        ):
            return index
    raise MongoError(27, f"index not found with name [{name_or_key}]")


@command("listIndexes", reads_data=True, needs=on_collection("listIndexes"))
async def cmd_list_indexes(engine: Engine, db: str, cmd: dict[str, Any], op: Op) -> Reply:
    name = cmd["listIndexes"]
    coll = engine.get_collection(db, name)
    if coll is None:
        raise MongoError(26, f"ns does not exist: {db}.{name}")
    return {"cursor": {"id": 0, "ns": f"{db}.{name}", "firstBatch": coll.index_specs()}}


def drop_index(engine: Engine, coll: Collection, index: Index, *, log: bool = True) -> None:
    if index.name == "_id_":
        raise MongoError(72, "cannot drop _id index")
    position = list(coll.indexes).index(index.name)
    del coll.indexes[index.name]
    if log:
        # The spec (mongod's o2 holds it too) and the index's place let a rollback rebuild
        # it where it was (listIndexes' order).
        engine.append_command(
            f"{coll.db}.$cmd",
            {"dropIndexes": coll.name, "index": index.name, "spec": index.spec},
            coll,
            pre={"position": position},
        )


@command("dropIndexes", "deleteIndexes", writes=True, needs=on_collection("dropIndex"))
async def cmd_drop_indexes(engine: Engine, db: str, cmd: dict[str, Any], op: Op) -> Reply:
    name = str(cmd.get("dropIndexes") or cmd.get("deleteIndexes"))
    coll = engine.get_collection(db, name)
    if coll is None:
        raise MongoError(26, f"ns not found {db}.{name}")
    before = len(coll.indexes)
    target = cmd.get("index")
    if target == "*":
        victims = [ix for ix in coll.indexes.values() if ix.name != "_id_"]
    elif isinstance(target, list):
        victims = [_find_index(coll, t) for t in target]
    else:
        victims = [_find_index(coll, target)]
    for index in victims:
        drop_index(engine, coll, index)
    return {"nIndexesWas": before}


@command("dbStats", needs=on_database("dbStats"))
async def cmd_db_stats(engine: Engine, db: str, cmd: dict[str, Any], op: Op) -> Reply:
    colls = engine.databases.get(db, {})
    objects = sum(len(c) for c in colls.values())
    return {
        "db": db,
        "collections": len(colls),
        "views": 0,
        "objects": objects,
        "indexes": sum(len(c.indexes) for c in colls.values()),
        "dataSize": objects * 100,
        "storageSize": objects * 100,
        "indexSize": 0,
        "totalSize": objects * 100,
        "scaleFactor": 1,
    }


# mongod asks the validate action on the collection (dbAdmin has it); mongosim, root.
@command("validate", needs=privileges.root)
async def cmd_validate(engine: Engine, db: str, cmd: dict[str, Any], op: Op) -> Reply:
    """validate: mongosim's storage has no on-disk structures to get wrong, so a collection
    that exists is valid; the reply has mongod's fields (src/mongo/db/commands/validate.cpp)."""
    name = cmd["validate"]
    coll = engine.get_collection(db, name)
    if coll is None:
        raise MongoError(26, f"Collection '{db}.{name}' does not exist to validate.")
    return {
        "ns": f"{db}.{name}",
        "nInvalidDocuments": 0,
        "nNonCompliantDocuments": 0,
        "nrecords": len(coll),
        "nIndexes": len(coll.indexes),
        "keysPerIndex": {index: len(coll) for index in coll.indexes},
        "valid": True,
        "repaired": False,
        "warnings": [],
        "errors": [],
        "extraIndexEntries": [],
        "missingIndexEntries": [],
        "corruptRecords": [],
    }
