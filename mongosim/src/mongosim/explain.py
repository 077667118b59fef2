"""``explain``, and the index hints it and the reads it explains must agree on.

mongosim has no query planner: a read uses the ``_id`` or equality maps of its indexes
where it can, else scans. ``explain`` reports that honestly in mongod's shape
(src/mongo/db/query/explain.cpp: ``explainVersion``, ``queryPlanner`` with
``winningPlan``/``rejectedPlans``, ``executionStats`` for the executing verbosities,
``command``, ``serverInfo``): a ``FETCH`` over an ``IXSCAN`` of the hinted index, or of the
first index whose leading field the filter constrains, else a ``COLLSCAN``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .errors import MongoError
from .sorting import compile_sort
from .storage import Collection, Index
from .topology import VERSION

if TYPE_CHECKING:
    from .engine import Engine, Op, Reply

EXPLAINABLE = frozenset(
    {"find", "aggregate", "count", "distinct", "update", "delete", "findAndModify"}
)
EXECUTED = frozenset({"find", "count", "distinct"})  # read-only: run for executionStats
VERBOSITIES = frozenset({"queryPlanner", "executionStats", "allPlansExecution"})


def hinted_index(coll: Collection | None, hint: Any) -> Index | None:
    """The index a hint names (by name or key pattern), or BadValue (2) as mongod's planner:
    "hint provided does not correspond to an existing index"."""
    if hint is None or hint == {} or hint == "":
        return None
    if (isinstance(hint, Mapping) and "$natural" in hint) or coll is None:
        return None  # mongod plans EOF for a collection that does not exist
    for index in coll.indexes.values():
        if index.name == hint or (isinstance(hint, Mapping) and index.key_pattern == dict(hint)):
            return index
    raise MongoError(
        2,
        "error processing query: planner returned error :: caused by :: "
        "hint provided does not correspond to an existing index",
    )


def index_bounds(
    coll: Collection | None, cmd: Mapping[str, Any]
) -> Callable[[dict[str, Any]], bool] | None:
    """find's ``min``/``max``: a predicate over the hinted index's key order, or None.
    query_planner.cpp: min/max need a hint (51173) naming an index whose key pattern they
    follow field by field (51174)."""
    low, high = cmd.get("min"), cmd.get("max")
    if not low and not high:
        return None
    index = hinted_index(coll, cmd.get("hint"))
    if coll is None:
        return lambda doc: False
    if index is None:
        raise MongoError(
            51173, "When using min()/max() a hint of which index to use must be provided"
        )
    for bound in (low, high):
        if bound and list(bound) != list(index.key_pattern):
            raise MongoError(51174, "The index chosen is not consistent with min/max")
    key = compile_sort(index.key_pattern)
    low_key = key(dict(low)) if low else None
    high_key = key(dict(high)) if high else None

    def within(doc: dict[str, Any]) -> bool:
        k = key(doc)
        return (low_key is None or not k < low_key) and (high_key is None or k < high_key)

    return within


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
    from .commands_read import HANDLERS

    name = next(iter(inner))
    reply = await HANDLERS[name](engine, db, inner, op)
    if name == "count":
        return int(reply.get("n", 0))
    if name == "distinct":
        return len(reply.get("values", []))
    returned = len(reply["cursor"]["firstBatch"])
    cursor_id = reply["cursor"]["id"]
    while cursor_id:
        more = await HANDLERS["getMore"](
            engine, db, {"getMore": cursor_id, "collection": inner[name]}, op
        )
        returned += len(more["cursor"]["nextBatch"])
        cursor_id = more["cursor"]["id"]
    return returned


HANDLERS = {"explain": cmd_explain}
