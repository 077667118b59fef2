"""find, getMore, killCursors, count, distinct and aggregate (change streams included)."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from bson import Timestamp

from . import privileges
from .aggregation import run_pipeline
from .bsonutil import MISSING, SortKey, canonical
from .changestreams import ChangeStream, render_oplog_documents
from .collation import collated, folder
from .cursors import DEFAULT_FIRST_BATCH, Cursor, take_batch
from .engine import Engine
from .errors import MongoError
from .hints import hinted_index, index_bounds
from .history import documents_at
from .matching import compile_filter, equality_constraints
from .operation import Op, Reply
from .pipelines import PipelineContext, StreamHost
from .privileges import on_collection
from .projection import compile_projection
from .registry import Access, command
from .sorting import compile_sort

OPLOG_NS = ("local", "oplog.rs")


def _source(
    engine: Engine,
    db: str,
    coll_name: str,
    query: Mapping[str, Any],
    op: Op,
    reverse: bool = False,
    at: Timestamp | None = None,
) -> Iterable[dict[str, Any]]:
    if (db, coll_name) == OPLOG_NS:
        return render_oplog_documents(engine.oplog, reverse=reverse)
    coll = engine.get_collection(db, coll_name)
    if at is not None and at < engine.cluster_time():
        return documents_at(engine, db, coll_name, coll, at)  # a point in the past
    if coll is None:
        return []
    return engine.candidates(coll, equality_constraints(query), op.txn)


def _snapshot_read_time(engine: Engine, cmd: Mapping[str, Any], op: Op) -> Timestamp | None:
    """The atClusterTime of a snapshot read outside a transaction, else None.

    A find or aggregate with readConcern "snapshot" reads one point in time and its
    cursor reply names it in ``atClusterTime`` (MongoDB 5.0+; "Read Concern
    'snapshot'" in the manual). mongosim materializes a cursor's documents when it
    opens, so every batch comes from that point. An older ``atClusterTime`` is read
    from the snapshot history (:mod:`mongosim.history`), SnapshotTooOld (239) beyond it.
    """
    read_concern = cmd.get("readConcern") or {}
    if op.txn is not None or read_concern.get("level") != "snapshot":
        return None
    now = engine.cluster_time()
    wanted = read_concern.get("atClusterTime")
    if wanted is not None and wanted < now:
        engine.history.check(engine, wanted)
        return wanted  # type: ignore[no-any-return]
    # Without atClusterTime mongod reads the majority-committed snapshot: a member of a
    # multi-member set reads at its commit point (a lone mongosim's is its last write).
    return now if engine.replication is None else engine.replication.committed_ts()


def _read_time(engine: Engine, cmd: Mapping[str, Any], op: Op) -> tuple[Timestamp | None, bool]:
    """When a read outside a transaction reads (None: the current data), and whether its
    reply names it (atClusterTime, for snapshot reads). readConcern "majority" on a
    member of a multi-member set reads at its commit point, through the snapshot history,
    so it never sees a write the majority does not have yet."""
    snapshot = _snapshot_read_time(engine, cmd, op)
    if snapshot is not None:
        return snapshot, True
    if engine.replication is None or op.txn is not None:
        return None, False
    if (cmd.get("readConcern") or {}).get("level") != "majority":
        return None, False
    return engine.replication.committed_ts(), False


def _collated(query: Mapping[str, Any], collation: Any) -> tuple[Any, Mapping[str, Any]]:
    """The filter's matcher under ``collation``, and the filter to look documents up by
    (none when strings compare folded: the equality maps hold exact values)."""
    if folder(collation) is None:
        return compile_filter(query), query
    return collated(compile_filter, query, collation), {}


def _open_cursor(
    engine: Engine,
    ns: str,
    docs: Iterator[dict[str, Any]],
    batch_size: int | None,
    *,
    transform: Any = None,
    remaining: int | None = None,
    single_batch: bool = False,
    at_cluster_time: Timestamp | None = None,
    max_time_ms: int | None = None,
) -> Reply:
    cursor = Cursor(
        id=engine.cursors.new_id(), ns=ns, docs=docs, transform=transform, remaining=remaining
    )
    cursor.max_time_ms = max_time_ms
    first = DEFAULT_FIRST_BATCH if batch_size is None else batch_size
    batch, exhausted = take_batch(cursor, first) if first or single_batch else ([], False)
    cursor_id = 0 if exhausted or single_batch else engine.cursors.register(cursor)
    reply: Reply = {"cursor": {"firstBatch": batch, "id": cursor_id, "ns": ns}}
    if at_cluster_time is not None:
        reply["cursor"]["atClusterTime"] = at_cluster_time
    return reply


@command("find", in_txn=True, reads_data=True, needs=on_collection("find"))
async def cmd_find(engine: Engine, db: str, cmd: dict[str, Any], op: Op) -> Reply:

    coll_name = cmd["find"]
    read_at, reported = _read_time(engine, cmd, op)
    query = cmd.get("filter") or {}
    sort = cmd.get("sort") or {}
    coll = engine.get_collection(db, coll_name)
    hinted = hinted_index(coll, cmd.get("hint"))
    if hinted is not None and not sort:
        sort = hinted.key_pattern  # a hinted scan returns documents in index order
    matcher, lookup = _collated(query, cmd.get("collation"))
    within = index_bounds(coll, cmd)
    natural = sort.get("$natural") if sort else None
    docs: Iterator[dict[str, Any]] = (
        d
        for d in _source(engine, db, coll_name, lookup, op, reverse=natural == -1, at=read_at)
        if matcher(d) and (within is None or within(d))
    )
    skip = int(cmd.get("skip") or 0)
    limit = int(cmd.get("limit") or 0)
    single_batch = bool(cmd.get("singleBatch")) or limit < 0
    limit = abs(limit)
    if sort and natural is None:
        key = compile_sort(sort)
        if limit and limit + skip < 1000:
            ordered = heapq.nsmallest(limit + skip, docs, key=key)
        else:
            ordered = sorted(docs, key=key)
        docs = iter(ordered)
    if skip:
        docs = itertools.islice(docs, skip, None)
    projection = cmd.get("projection")
    transform = compile_projection(projection, query=query) if projection else None
    batch_size = cmd.get("batchSize")
    return _open_cursor(
        engine,
        f"{db}.{coll_name}",
        docs,
        batch_size,
        transform=transform,
        remaining=limit or None,
        single_batch=single_batch,
        at_cluster_time=read_at if reported else None,
        max_time_ms=cmd.get("maxTimeMS"),
    )


@command("getMore", access=Access.USER, in_txn=True)
async def cmd_get_more(engine: Engine, db: str, cmd: dict[str, Any], op: Op) -> Reply:
    cursor = engine.cursors.get(int(cmd["getMore"]))
    batch_size = cmd.get("batchSize")
    if cursor.stream is not None:
        op.ctx.is_change_stream = True
    failpoints = op.ctx.failpoints
    if failpoints is not None:
        failpoints.after_cursor_checkout("getMore")
        if cursor.stream is None:
            failpoints.check_max_time({"maxTimeMS": cursor.max_time_ms})
    if cursor.stream is not None:
        return await _stream_batch(engine, cursor, batch_size, cmd.get("maxTimeMS"), "nextBatch")
    batch, exhausted = take_batch(cursor, batch_size)
    if exhausted:
        engine.cursors.kill(cursor.id)
    return {"cursor": {"nextBatch": batch, "id": 0 if exhausted else cursor.id, "ns": cursor.ns}}


async def _stream_batch(
    engine: Engine, cursor: Cursor, batch_size: int | None, max_await_ms: int | None, key: str
) -> Reply:
    stream = cursor.stream
    assert stream is not None
    cursor.waiting = True
    try:
        events = await stream.next_batch(batch_size=batch_size, max_await_ms=max_await_ms)
    except MongoError:
        engine.cursors.kill(cursor.id)
        raise
    finally:
        cursor.waiting = False
    if cursor.invalidated is not None:
        # Invalidated while this getMore waited (a rollback): mongod's rollback kills the
        # operations running then with InterruptedDueToReplStateChange
        # (RollbackImpl::_killAllUserOperations, src/mongo/db/repl/rollback_impl.cpp).
        engine.cursors.kill(cursor.id)
        raise MongoError(11602, "operation was interrupted: rollback")
    cursor_id = cursor.id
    if stream.closed:
        engine.cursors.kill(cursor.id)
        cursor_id = 0
    return {
        "cursor": {
            key: events,
            "postBatchResumeToken": stream.post_batch_resume_token,
            "id": cursor_id,
            "ns": cursor.ns,
        }
    }


@command("killCursors", access=Access.USER, in_txn=True)
async def cmd_kill_cursors(engine: Engine, db: str, cmd: dict[str, Any], op: Op) -> Reply:
    killed: list[Any] = []
    missing: list[Any] = []
    for cid in cmd.get("cursors") or []:
        (killed if engine.cursors.kill(int(cid)) else missing).append(cid)
    return {
        "cursorsKilled": killed,
        "cursorsNotFound": missing,
        "cursorsAlive": [],
        "cursorsUnknown": [],
    }


@command("count", in_txn=True, reads_data=True, needs=on_collection("find"))
async def cmd_count(engine: Engine, db: str, cmd: dict[str, Any], op: Op) -> Reply:
    hinted_index(engine.get_collection(db, cmd["count"]), cmd.get("hint"))

    query = cmd.get("query") or {}
    matcher, lookup = _collated(query, cmd.get("collation"))
    coll = engine.get_collection(db, cmd["count"])
    if coll is None:
        return {"n": 0}
    read_at, _ = _read_time(engine, cmd, op)
    if not query and op.txn is None and read_at is None:
        n = len(coll)
    else:
        source = _source(engine, db, cmd["count"], lookup, op, at=read_at)
        n = sum(1 for d in source if matcher(d))
    n = max(0, n - int(cmd.get("skip") or 0))
    limit = abs(int(cmd.get("limit") or 0))
    return {"n": min(n, limit) if limit else n}


def _distinct_values(value: Any, parts: list[str]) -> Iterator[Any]:
    """The values distinct sees at a path: arrays fan out on the way and one level at the end."""
    if not parts:
        if isinstance(value, list):
            yield from value
        elif value is not MISSING:
            yield value
        return
    if isinstance(value, list):
        for element in value:
            if isinstance(element, Mapping):
                yield from _distinct_values(element, parts)
        return
    if isinstance(value, Mapping):
        yield from _distinct_values(value.get(parts[0], MISSING), parts[1:])


@command("distinct", in_txn=True, reads_data=True, needs=on_collection("find"))
async def cmd_distinct(engine: Engine, db: str, cmd: dict[str, Any], op: Op) -> Reply:
    query = cmd.get("query") or {}
    matcher, lookup = _collated(query, cmd.get("collation"))
    parts = str(cmd["key"]).split(".")
    seen: dict[Any, Any] = {}
    read_at, reported = _read_time(engine, cmd, op)
    for doc in _source(engine, db, cmd["distinct"], lookup, op, at=read_at):
        if matcher(doc):
            for v in _distinct_values(doc, parts):
                seen.setdefault(canonical(v), v)
    reply: Reply = {"values": sorted(seen.values(), key=SortKey)}
    if reported:
        reply["atClusterTime"] = read_at  # drivers take the snapshot time from it
    return reply


@command("aggregate", in_txn=True, reads_data=True, needs=privileges.aggregate)
async def cmd_aggregate(engine: Engine, db: str, cmd: dict[str, Any], op: Op) -> Reply:
    pipeline = list(cmd.get("pipeline") or [])
    target = cmd["aggregate"]
    cursor_opts = cmd.get("cursor")
    if cursor_opts is None and not cmd.get("explain"):
        raise MongoError(
            9, "The 'cursor' option is required, except for aggregate with the explain argument"
        )
    batch_size = (cursor_opts or {}).get("batchSize")
    if pipeline and "$changeStream" in pipeline[0]:
        return await _open_change_stream(
            engine, db, target, pipeline, batch_size, op, cmd.get("readConcern")
        )

    level = (cmd.get("readConcern") or {}).get("level")
    writer = next((n for st in pipeline for n in st if n in ("$out", "$merge")), None)
    if level == "linearizable" and writer is not None:
        # document_source_out.cpp / document_source_merge.cpp: InvalidOptions.
        raise MongoError(72, f"{writer} cannot be used with a 'linearizable' read concern level")
    read_at, reported = _read_time(engine, cmd, op)
    if target == 1:
        source: Iterable[dict[str, Any]] = []
        ns = f"{db}.$cmd.aggregate"
    else:
        first_match = pipeline[0].get("$match") if pipeline else None
        _, lookup = _collated(first_match or {}, cmd.get("collation"))
        source = _source(engine, db, target, lookup, op, at=read_at)
        ns = f"{db}.{target}"
    ctx = PipelineContext(engine, db, op, _writes_to(engine) if writer is not None else None)
    ctx.collation = cmd.get("collation")
    results = run_pipeline(source, pipeline, ctx)
    at_cluster_time = read_at if reported else None
    return _open_cursor(engine, ns, iter(results), batch_size, at_cluster_time=at_cluster_time)


def _writes_to(engine: Engine) -> Engine:
    """Where an aggregate's $out/$merge writes: this engine on a primary; on a secondary
    (the read preference let it run there, topology.check_writable) the primary's, as
    mongod 5.0+ does ("$out Read Operations Run on Secondary Replica Set Members")."""
    if engine.writable:
        return engine
    primary = engine.primary_engine() if engine.primary_engine is not None else None
    if primary is None or not primary.writable:
        raise MongoError(10107, "not primary")
    return primary


async def _open_change_stream(
    engine: Engine,
    db: str,
    target: Any,
    pipeline: list[Any],
    batch_size: int | None,
    op: Op,
    read_concern: Any = None,
) -> Reply:
    op.ctx.is_change_stream = True
    level = (read_concern or {}).get("level")
    if level is not None and level != "majority":
        # DocumentSourceChangeStream::LiteParsed::supportsReadConcern: an explicit
        # readConcern other than "majority" is refused.
        raise MongoError(72, "Change stream must use majority read concern")
    if op.txn is not None:
        raise MongoError(
            263,
            "Operation not permitted in transaction :: caused by :: "
            "$changeStream is not permitted in a multi-document transaction",
        )
    spec = pipeline[0]["$changeStream"]
    coll = None if target == 1 else str(target)
    stream = ChangeStream(StreamHost(engine), db=db, coll=coll, spec=spec, stages=pipeline[1:])
    ns = f"{db}.{coll}" if coll is not None else f"{db}.$cmd.aggregate"
    cursor = Cursor(id=engine.cursors.new_id(), ns=ns, stream=stream)
    engine.cursors.register(cursor)
    return await _stream_batch(engine, cursor, batch_size, 0, "firstBatch")
