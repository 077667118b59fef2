"""``explain``: the plan a read would use, and for the read-only ones their result count.

mongosim has no query planner: a read uses the ``_id`` or equality maps of its indexes
where it can, else scans. ``explain`` reports that honestly in mongod's shape
(src/mongo/db/query/explain.cpp: ``explainVersion``, ``queryPlanner`` with
``winningPlan``/``rejectedPlans``, ``executionStats`` for the executing verbosities,
``command``, ``serverInfo``): a ``FETCH`` over an ``IXSCAN`` of the hinted index, or of the
first index whose leading field the filter constrains, else a ``COLLSCAN``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import privileges
from .engine import Engine
from .errors import MongoError
from .hints import hinted_index
from .operation import Op, Reply
from .registry import command
from .storage import Collection
from .topology import VERSION

EXPLAINABLE = frozenset(
    {"find", "aggregate", "count", "distinct", "update", "delete", "findAndModify"}
)
EXECUTED = frozenset({"find", "count", "distinct"})  # read-only: run for executionStats
VERBOSITIES = frozenset({"queryPlanner", "executionStats", "allPlansExecution"})


def _plan(coll: Collection | None, inner: Mapping[str, Any]) -> dict[str, Any]:
    query = inner.get("filter") or inner.get("query") or inner.get("q") or {}
    index = hinted_index(coll, inner.get("hint"))
    if index is None and coll is not None and isinstance(query, Mapping):
        index = next((i for i in coll.indexes.values() if i.fields and i.fields[0] in query), None)
    if index is None:
        return {"stage": "COLLSCAN", "filter": query, "direction": "forward"}
    return {
        "stage": "FETCH",
        "inputStage": {
            "stage": "IXSCAN",
            "keyPattern": index.key_pattern,
            "indexName": index.name,
            "isMultiKey": False,
            "isUnique": index.unique or index.name == "_id_",
            "isSparse": index.sparse,
            "isPartial": index.partial is not None,
            "direction": "forward",
        },
    }


# mongod asks the privileges of the command explained; mongosim, root.
@command("explain", needs=privileges.root)
async def cmd_explain(engine: Engine, db: str, cmd: dict[str, Any], op: Op) -> Reply:
    inner = cmd.get("explain")
    if not isinstance(inner, Mapping) or not inner:
        raise MongoError(9, "explain command requires a nested object")
    name = next(iter(inner))
    if name not in EXPLAINABLE:
        raise MongoError(59, f"Explain failed due to unknown command: {name}")
    verbosity = cmd.get("verbosity", "allPlansExecution")
    if verbosity not in VERBOSITIES:
        raise MongoError(2, f"verbosity string must be one of {sorted(VERBOSITIES)}")
    target = inner[name]
    coll = engine.get_collection(db, target) if isinstance(target, str) else None
    reply: Reply = {
        "explainVersion": "1",
        "queryPlanner": {
            "namespace": f"{db}.{target}",
            "indexFilterSet": False,
            "parsedQuery": inner.get("filter") or inner.get("query") or {},
            "winningPlan": _plan(coll, inner),
            "rejectedPlans": [],
        },
        "command": {**inner, "$db": db},
        "serverInfo": {"host": "mongosim", "port": 0, "version": VERSION},
    }
    if verbosity != "queryPlanner":
        returned = await _execute(engine, db, dict(inner), op) if name in EXECUTED else 0
        reply["executionStats"] = {
            "executionSuccess": True,
            "nReturned": returned,
            "executionTimeMillis": 0,
            "totalKeysExamined": 0,
            "totalDocsExamined": len(coll) if coll is not None else 0,
        }
    return reply


async def _execute(engine: Engine, db: str, inner: dict[str, Any], op: Op) -> int:
    """Run a read-only command for its result count (errors, a bad hint say, surface)."""
    name = next(iter(inner))
    reply = await _run(engine, name, db, inner, op)
    if name == "count":
        return int(reply.get("n", 0))
    if name == "distinct":
        return len(reply.get("values", []))
    returned = len(reply["cursor"]["firstBatch"])
    cursor_id = reply["cursor"]["id"]
    while cursor_id:
        more = await _run(
            engine, "getMore", db, {"getMore": cursor_id, "collection": inner[name]}, op
        )
        returned += len(more["cursor"]["nextBatch"])
        cursor_id = more["cursor"]["id"]
    return returned


async def _run(engine: Engine, name: str, db: str, cmd: dict[str, Any], op: Op) -> Reply:
    """A read's own handler, from the registry the engine was given, in the explain's op."""
    found = engine.registry.get(name)
    assert found is not None  # EXECUTED names registered read commands
    reply: Reply = await found.handler(engine, db, cmd, op)
    return reply
