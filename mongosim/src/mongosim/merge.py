"""$merge and $out: the aggregation stages that write (manual: "$merge", "$out")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .aggregation import transform_document
from .bsonutil import canonical, get_path
from .documents import prepare_insert
from .errors import MongoError

if TYPE_CHECKING:
    from .engine import Engine
    from .operation import Op
    from .storage import Collection


def _target(db: str, into: str | Mapping[str, Any]) -> tuple[str, str]:
    if isinstance(into, str):
        return db, into
    return into.get("db", db), into["coll"]


def _find_match(
    engine: Engine, coll: Collection, on: list[str], doc: Mapping[str, Any], op: Op
) -> dict[str, Any] | None:
    if on == ["_id"]:
        return engine.read(coll, canonical(doc.get("_id")), op.txn)
    wanted = [canonical(get_path(doc, f)) for f in on]
    for candidate in engine.candidates(coll, {on[0]: [get_path(doc, on[0])]}, op.txn):
        if [canonical(get_path(candidate, f)) for f in on] == wanted:
            return candidate
    return None


def _merged(existing: dict[str, Any], new: Mapping[str, Any], mode: Any) -> dict[str, Any] | None:
    if mode == "replace":
        return {"_id": existing["_id"], **{k: v for k, v in new.items() if k != "_id"}}
    if mode == "merge":
        return {**existing, **{k: v for k, v in new.items() if k != "_id"}}
    if mode == "keepExisting":
        return None
    if mode == "fail":
        raise MongoError(
            11000,
            "E11000 duplicate key error: $merge found a matching document "
            "and whenMatched is 'fail'",
        )
    if isinstance(mode, list):
        return transform_document(existing, mode)
    raise MongoError(2, f"Enumeration value '{mode}' for field 'whenMatched' is not a valid value.")


def merge_documents(
    engine: Engine, db: str, spec: Mapping[str, Any], docs: list[dict[str, Any]], op: Op
) -> None:
    tdb, tname = _target(db, spec["into"])
    coll = engine.collection_or_create(tdb, tname)
    on_spec = spec.get("on", "_id")
    on = [on_spec] if isinstance(on_spec, str) else list(on_spec)
    when_matched = spec.get("whenMatched", "merge")
    when_not_matched = spec.get("whenNotMatched", "insert")
    for doc in docs:
        existing = _find_match(engine, coll, on, doc, op)
        if existing is None:
            if when_not_matched == "discard":
                continue
            if when_not_matched == "fail":
                raise MongoError(
                    13113,
                    "$merge could not find a matching document in the target "
                    "collection for at least one document in the source "
                    "collection",
                )
            new = prepare_insert(doc)
            idk = canonical(new["_id"])
            coll.check_unique(idk, new, is_insert=True)
            engine.write(coll, "i", idk, new, None, op)
            continue
        try:
            merged = _merged(existing, doc, when_matched)
        except MongoError as exc:
            if exc.code == 11000:  # whenMatched 'fail': the 'on' fields, as a unique index
                exc.extra["keyPattern"] = dict.fromkeys(on, 1)
                exc.extra["keyValue"] = {f: get_path(doc, f) for f in on}
            raise
        if merged is None or canonical(merged) == canonical(existing):
            continue
        idk = canonical(existing["_id"])
        coll.check_unique(idk, merged, is_insert=False)
        engine.write(coll, "r", idk, merged, existing, op)


def out_documents(
    engine: Engine, db: str, target: str | Mapping[str, Any], docs: list[dict[str, Any]], op: Op
) -> None:
    """$out replaces the target's contents (keeping its indexes), as mongod does."""
    tdb, tname = _target(db, target)
    coll = engine.collection_or_create(tdb, tname)
    for old in list(coll.docs.values()):
        engine.write(coll, "d", canonical(old["_id"]), None, old, op)
    for doc in docs:
        new = prepare_insert(doc)
        idk = canonical(new["_id"])
        coll.check_unique(idk, new, is_insert=True)
        engine.write(coll, "i", idk, new, None, op)
