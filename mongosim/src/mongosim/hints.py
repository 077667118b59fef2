"""Index hints: the index a hint names, and find's ``min``/``max`` bounds over it.

A read and ``explain`` of it must agree on the hinted index, so both use these.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .errors import MongoError
from .sorting import compile_sort
from .storage import Collection, Index


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
