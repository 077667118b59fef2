"""insert, update, delete and findAndModify, with mongod's reply shapes.

Per-document failures of a batch are reported in ``writeErrors`` (ordered batches stop at
the first); inside a transaction the first failure aborts the transaction instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Any

import bson
from bson.objectid import ObjectId

from . import privileges
from .bsonutil import canonical
from .collation import collated, folder
from .documents import check_document, prepare_insert
from .engine import Engine
from .errors import CloseConnection, MongoError
from .matching import compile_filter, equality_constraints
from .operation import Op, Reply
from .privileges import on_collection
from .projection import compile_projection
from .registry import command
from .sorting import compile_sort
from .storage import Collection, duplicate_key_error
from .updates import (
    apply_update,
    is_operator_update,
    upsert_seed,
    validate_replacement,
    validate_update,
)


def _transactional_write_fired(
    data: Mapping[str, Any], i: int, op: Op, reply: dict[str, Any]
) -> None:
    """onPrimaryTransactionalWrite fired for statement ``i``: fail it before commit (and
    close the connection unless ``closeConnection: false``) if asked to."""
    code = data.get("failBeforeCommitExceptionCode")
    if code is None:
        return
    if data.get("closeConnection", True):
        _cut_short(op, i, reply)
    raise MongoError(int(code), "Failing write due to failpoint. The write must not be reflected.")


def _cut_short(op: Op, executed: int, reply: dict[str, Any]) -> None:
    """Remember how far a retryable write got, then close its connection."""
    assert op.session is not None and op.txn_number is not None
    op.session.partial[op.txn_number] = (executed, _copy_reply(reply))
    raise CloseConnection


def _copy_reply(reply: Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, list) else v for k, v in reply.items()}


def write_error(index: int, exc: MongoError) -> dict[str, Any]:
    return {"index": index, "code": exc.code, "errmsg": exc.message, **exc.extra}


async def run_statements(
    statements: list[Any],
    cmd: Mapping[str, Any],
    op: Op,
    run: Callable[[int, Any], Awaitable[None]],
    reply: dict[str, Any],
) -> dict[str, Any]:
    """Run a write command's statements; failures go to ``writeErrors`` (ordered stops at
    the first), except inside a transaction, which the first failure aborts.

    A retryable write resumes after the statements a closed connection cut it short of."""
    errors: list[dict[str, Any]] = []
    start = 0
    retryable = op.session is not None and op.txn is None and op.txn_number is not None
    if retryable:
        assert op.session is not None and op.txn_number is not None
        start, before = op.session.partial.pop(op.txn_number, (0, {}))
        reply.update(before)
    for i, statement in enumerate(statements):
        if i < start:
            continue
        try:
            fired = (
                op.ctx.failpoints.transactional_write() if retryable and op.ctx.failpoints else None
            )
            if fired is not None:
                _transactional_write_fired(fired, i, op, reply)
            await run(i, statement)
            if fired is not None and fired.get("closeConnection", True):
                _cut_short(op, i + 1, reply)
        except MongoError as exc:
            if op.in_txn:
                raise
            errors.append(write_error(i, exc))
            if cmd.get("ordered", True):
                break
    if errors:
        reply["writeErrors"] = errors
    return reply


async def _insert_one(
    engine: Engine, coll: Collection, doc: Mapping[str, Any], cmd: Mapping[str, Any], op: Op
) -> None:
    new = prepare_insert(doc)
    check_document(coll, new, None, cmd)
    idk = canonical(new["_id"])
    await engine.wait_unlocked(coll, idk, op)
    if op.txn is not None and engine.read(coll, idk, op.txn) is not None:
        raise duplicate_key_error(coll.ns, coll.indexes["_id_"], (new["_id"],))
    coll.check_unique(
        idk, new, is_insert=op.txn is None, overlay=engine.unique_overlay(coll, op.txn)
    )
    engine.write(coll, "i", idk, new, None, op)


@command("insert", in_txn=True, writes=True, retryable=True, needs=privileges.insert)
async def cmd_insert(engine: Engine, db: str, cmd: dict[str, Any], op: Op) -> Reply:
    coll = engine.collection_or_create(db, cmd["insert"])
    reply: dict[str, Any] = {"n": 0}

    async def insert(i: int, doc: Any) -> None:
        await _insert_one(engine, coll, doc, cmd, op)
        reply["n"] += 1

    return await run_statements(cmd.get("documents") or [], cmd, op, insert, reply)


def _replacement(doc: Mapping[str, Any], replacement: Mapping[str, Any]) -> dict[str, Any]:

    validate_replacement(replacement)
    if "_id" in replacement and canonical(replacement["_id"]) != canonical(doc["_id"]):
        raise MongoError(
            66,
            "After applying the update, the (immutable) field '_id' was found to have been "
            f"altered to _id: {replacement['_id']!r}",
        )
    return {"_id": doc["_id"], **{k: v for k, v in replacement.items() if k != "_id"}}


class _Updated:
    __slots__ = ("description", "doc", "kind", "modified")

    def __init__(
        self, doc: dict[str, Any], modified: bool, kind: str, description: dict[str, Any] | None
    ) -> None:
        self.doc, self.modified, self.kind, self.description = doc, modified, kind, description


def compute_update(
    doc: dict[str, Any], u: Any, spec: Mapping[str, Any], query: Mapping[str, Any]
) -> _Updated:

    if isinstance(u, list) or is_operator_update(u):
        res = apply_update(doc, u, array_filters=spec.get("arrayFilters"), matched_query=query)
        return _Updated(res.doc, res.modified, "u", res.description)
    new = _replacement(doc, u)
    # A replacement is a no-op only when it is binary-equal to the stored document
    # (src/mongo/db/update/object_replace_executor.cpp, "Check for noop": binaryEqual):
    # replacing {a: 1} with {a: 1.0} changes the stored type, so it modifies.
    return _Updated(new, bson.encode(new) != bson.encode(doc), "r", None)


def build_upsert(u: Any, spec: Mapping[str, Any], query: Mapping[str, Any]) -> dict[str, Any]:

    seed = upsert_seed(query)
    if isinstance(u, list) or is_operator_update(u):
        doc = apply_update(
            seed, u, array_filters=spec.get("arrayFilters"), upsert_insert=True, matched_query=query
        ).doc
    else:
        validate_replacement(u)
        doc = dict(u)
        if "_id" in seed and "_id" not in doc:
            doc = {"_id": seed["_id"], **doc}
    return prepare_insert(doc)


_PLAIN_IDS = (int, str, ObjectId)


async def find_targets(
    engine: Engine,
    coll: Collection | None,
    query: Mapping[str, Any],
    op: Op,
    *,
    multi: bool,
    sort: Mapping[str, Any] | None = None,
    collation: Any = None,
) -> list[dict[str, Any]]:

    if coll is None:
        return []
    plain = query.get("_id") if len(query) == 1 else None
    if type(plain) in _PLAIN_IDS and folder(collation) is None:
        # Hot path (a bulk write's statements by _id): the _id lookup is the match, so
        # no filter is compiled per statement. Only a value that matches by equality
        # alone qualifies: not an operator document, a regex, an array or null.
        key = canonical(plain)
        found = engine.candidates(coll, {"_id": [plain]}, op.txn)
        docs = [d for d in found if canonical(d["_id"]) == key]
        return docs if multi else docs[:1]
    if folder(collation) is None:
        matcher, constraints = compile_filter(query), equality_constraints(query)
    else:  # the equality maps hold exact values: scan
        matcher, constraints = collated(compile_filter, query, collation), {}
    docs = [d for d in engine.candidates(coll, constraints, op.txn) if matcher(d)]
    if sort:
        docs.sort(key=compile_sort(sort))
    return docs if multi else docs[:1]


async def lock_current(
    engine: Engine, coll: Collection, doc: dict[str, Any], query: Mapping[str, Any], op: Op
) -> dict[str, Any] | None:
    """Wait for a transaction holding the document; return its version now, if it still matches."""
    idk: Hashable = canonical(doc["_id"])
    if not await engine.wait_unlocked(coll, idk, op):
        return doc

    current = engine.read(coll, idk, op.txn)
    return current if current is not None and compile_filter(query)(current) else None


async def update_one_doc(
    engine: Engine,
    coll: Collection,
    doc: dict[str, Any],
    u: Any,
    spec: Mapping[str, Any],
    query: Mapping[str, Any],
    cmd: Mapping[str, Any],
    op: Op,
) -> tuple[dict[str, Any], bool] | None:
    """Apply ``u`` to one matched document; (new doc, modified) or None if it vanished."""
    current = await lock_current(engine, coll, doc, query, op)
    if current is None:
        return None
    result = compute_update(current, u, spec, query)
    if not result.modified:
        return current, False
    check_document(coll, result.doc, current, cmd)
    idk = canonical(current["_id"])
    coll.check_unique(idk, result.doc, is_insert=False, overlay=engine.unique_overlay(coll, op.txn))
    kind = "u" if result.kind == "u" else "r"
    engine.write(coll, kind, idk, result.doc, current, op, result.description)  # type: ignore[arg-type]
    return result.doc, True


async def _update_statement(
    engine: Engine,
    coll: Collection,
    i: int,
    spec: Mapping[str, Any],
    cmd: Mapping[str, Any],
    op: Op,
    reply: dict[str, Any],
) -> None:
    query = spec.get("q") or {}
    u = spec.get("u")
    if u is None:
        raise MongoError(9, "BSON field 'update.updates.u' is missing but a required field")
    validate_update(u)
    multi = bool(spec.get("multi"))
    if multi and not isinstance(u, list) and not is_operator_update(u):
        raise MongoError(9, "multi update is not supported for replacement-style update")
    targets = await find_targets(
        engine, coll, query, op, multi=multi, collation=spec.get("collation")
    )
    for doc in targets:
        outcome = await update_one_doc(engine, coll, doc, u, spec, query, cmd, op)
        if outcome is None:
            continue
        reply["n"] += 1
        reply["nModified"] += int(outcome[1])
    if not targets and spec.get("upsert"):
        new = build_upsert(u, spec, query)
        await _insert_checked(engine, coll, new, cmd, op)
        reply["n"] += 1
        reply.setdefault("upserted", []).append({"index": i, "_id": new["_id"]})


async def _insert_checked(
    engine: Engine, coll: Collection, new: dict[str, Any], cmd: Mapping[str, Any], op: Op
) -> None:
    check_document(coll, new, None, cmd)
    idk = canonical(new["_id"])
    await engine.wait_unlocked(coll, idk, op)
    coll.check_unique(
        idk, new, is_insert=op.txn is None, overlay=engine.unique_overlay(coll, op.txn)
    )
    engine.write(coll, "i", idk, new, None, op)


@command("update", in_txn=True, writes=True, retryable=True, needs=privileges.update)
async def cmd_update(engine: Engine, db: str, cmd: dict[str, Any], op: Op) -> Reply:
    statements = cmd.get("updates") or []
    for st in statements:
        if "sort" in st:
            # mongosim reports 7.0, whose update command has no 'sort' (added in 8.0); its
            # IDL parser refuses an unknown field with IDLUnknownField (error_codes.yml).
            raise MongoError(40415, "BSON field 'update.updates.sort' is an unknown field.")
    # mongod creates the collection only when an upsert inserts into it.
    if engine.get_collection(db, cmd["update"]) is None and not any(
        st.get("upsert") for st in statements
    ):

        async def parse_only(i: int, spec: Any) -> None:
            validate_update(spec.get("u"))

        return await run_statements(statements, cmd, op, parse_only, {"n": 0, "nModified": 0})
    coll = engine.collection_or_create(db, cmd["update"])
    reply: dict[str, Any] = {"n": 0, "nModified": 0}

    async def update(i: int, spec: Any) -> None:
        await _update_statement(engine, coll, i, spec, cmd, op, reply)

    return await run_statements(statements, cmd, op, update, reply)


@command("delete", in_txn=True, writes=True, retryable=True, needs=on_collection("remove"))
async def cmd_delete(engine: Engine, db: str, cmd: dict[str, Any], op: Op) -> Reply:
    coll = engine.get_collection(db, cmd["delete"])
    reply: dict[str, Any] = {"n": 0}

    async def delete(i: int, spec: Any) -> None:
        query = spec.get("q") or {}
        targets = await find_targets(
            engine,
            coll,
            query,
            op,
            multi=spec.get("limit", 0) == 0,
            collation=spec.get("collation"),
        )
        for doc in targets:
            assert coll is not None
            current = await lock_current(engine, coll, doc, query, op)
            if current is not None:
                engine.write(coll, "d", canonical(current["_id"]), None, current, op)
                reply["n"] += 1

    return await run_statements(cmd.get("deletes") or [], cmd, op, delete, reply)


@command(
    "findAndModify", in_txn=True, writes=True, retryable=True, needs=privileges.find_and_modify
)
async def cmd_find_and_modify(engine: Engine, db: str, cmd: dict[str, Any], op: Op) -> Reply:
    """findAndModify, one statement: onPrimaryTransactionalWrite fires around all of it."""
    retryable = op.session is not None and op.txn is None and op.txn_number is not None
    fired = op.ctx.failpoints.transactional_write() if retryable and op.ctx.failpoints else None
    if fired is None:
        return await _find_and_modify(engine, db, cmd, op)
    if fired.get("failBeforeCommitExceptionCode") is not None:
        if fired.get("closeConnection", True):
            raise CloseConnection
        raise MongoError(
            int(fired["failBeforeCommitExceptionCode"]),
            "Failing write due to failpoint. The write must not be reflected.",
        )
    reply = await _find_and_modify(engine, db, cmd, op)
    if fired.get("closeConnection", True):
        assert op.session is not None and op.txn_number is not None
        op.session.retry_replies = {op.txn_number: reply}
        raise CloseConnection
    return reply


async def _find_and_modify(engine: Engine, db: str, cmd: dict[str, Any], op: Op) -> Reply:
    name = next(iter(cmd))
    if engine.get_collection(db, cmd[name]) is None and not cmd.get("upsert"):
        return {"lastErrorObject": {"n": 0, "updatedExisting": False}, "value": None}
    coll = engine.collection_or_create(db, cmd[name])
    query = cmd.get("query") or {}
    project = compile_projection(cmd.get("fields"), query=query)
    if cmd.get("remove") and cmd.get("update") is not None:
        raise MongoError(9, "Cannot specify both an update and remove=true")
    targets = await find_targets(
        engine, coll, query, op, multi=False, sort=cmd.get("sort"), collation=cmd.get("collation")
    )
    doc = await lock_current(engine, coll, targets[0], query, op) if targets else None
    if cmd.get("remove"):
        if doc is None:
            return {"lastErrorObject": {"n": 0}, "value": None}
        engine.write(coll, "d", canonical(doc["_id"]), None, doc, op)
        return {"lastErrorObject": {"n": 1}, "value": project(doc)}
    u = cmd.get("update")
    if u is None:
        raise MongoError(9, "Either an update or remove=true must be specified")
    spec = {"arrayFilters": cmd.get("arrayFilters")}
    if doc is not None:
        outcome = await update_one_doc(engine, coll, doc, u, spec, query, cmd, op)
        new_doc = outcome[0] if outcome else doc
        value = new_doc if cmd.get("new") else doc
        return {"lastErrorObject": {"n": 1, "updatedExisting": True}, "value": project(value)}
    if not cmd.get("upsert"):
        return {"lastErrorObject": {"n": 0, "updatedExisting": False}, "value": None}
    new = build_upsert(u, spec, query)
    await _insert_checked(engine, coll, new, cmd, op)
    return {
        "lastErrorObject": {"n": 1, "updatedExisting": False, "upserted": new["_id"]},
        "value": project(new) if cmd.get("new") else None,
    }
