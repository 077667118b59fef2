"""A change stream's ``documentKey`` predicates, applied to oplog entries before events are built.

mongod (5.1+, ``change_stream_rewrite_helpers.cpp``) rewrites the predicates of a user's
``$match`` on event fields into its oplog scan, so an event that cannot match is never
built. mongosim does the same for predicates on ``documentKey``, the one field that
partitioned readers filter on (``{$expr: {$eq: [{$mod: [{$abs: {$toHashedIndexKey:
"$documentKey._id"}}, P]}, i]}}`` OR'd with ``{documentKey: {$exists: false}}``):

- The leading ``$match`` stages of the user's pipeline are split into their top-level
  conjuncts. A conjunct that reads nothing but ``documentKey`` is *pushed*: it is matched
  against ``{documentKey: entry.key}`` (``{}`` for a command entry, whose event has no
  ``documentKey``), which is exactly what it would see in the built event. The other
  conjuncts stay in the pipeline, which runs on the built events as before.
- ``{$toHashedIndexKey: "$documentKey._id"}`` inside a pushed ``$expr`` reads the entry's
  hash, computed once per entry and kept on it (``OplogEntry.key_hash``), so P partitioned
  cursors over one oplog hash each document key once, not P times.

The result equals running the whole ``$match`` on built events; the one difference is
order: a pushed conjunct is evaluated before the others, so when two conjuncts of one
``$match`` would both fail with an error, the error reported may be the pushed one's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from bson.int64 import Int64

from .bsonutil import MISSING
from .hashing import hash64
from .matching import Matcher, compile_filter
from .oplog import OplogEntry

_KEY: Final = "documentKey"
# Where a pushed $expr reads the cached hash. The stub document holds it beside
# documentKey; no pushed predicate can name it, since pushed ones name only documentKey.
_HASH_FIELD: Final = "_mongosim_hashedDocumentKeyId"
_HASHED_ID: Final = "$documentKey._id"
_LOGICAL: Final = frozenset({"$and", "$or", "$nor"})
# Expressions that read the current document without naming a field path.
_IMPLICIT_ROOT: Final = frozenset({"$getField", "$setField", "$unsetField"})
_CRUD: Final = frozenset({"i", "u", "r", "d"})


@dataclass(frozen=True, slots=True)
class Pushdown:
    """The predicate pushed to the oplog scan (None: none), whether it reads the cached
    hash, and the stages left to run on built events."""

    matcher: Matcher | None
    uses_hash: bool
    stages: list[Mapping[str, Any]]

    def admits(self, entry: OplogEntry) -> bool:
        """Would the event built from ``entry`` pass the pushed predicates?"""
        if self.matcher is None:
            return True
        if entry.op not in _CRUD:
            return self.matcher({})
        if not self.uses_hash:
            return self.matcher({_KEY: entry.key})
        return self.matcher({_KEY: entry.key, _HASH_FIELD: key_hash(entry)})


def key_hash(entry: OplogEntry) -> Int64:
    """``$toHashedIndexKey`` of the entry's ``documentKey._id``, computed once per entry."""
    cached = entry.key_hash
    if cached is None:
        key = entry.key if isinstance(entry.key, Mapping) else {}
        cached = entry.key_hash = hash64(key.get("_id", MISSING))
    return cached


def split(stages: list[Mapping[str, Any]]) -> Pushdown:
    """Push the ``documentKey`` conjuncts of the pipeline's leading ``$match`` stages."""
    pushed: list[Mapping[str, Any]] = []
    rest: list[Mapping[str, Any]] = []
    for n, stage in enumerate(stages):
        spec = stage.get("$match") if len(stage) == 1 else None
        if not isinstance(spec, Mapping):
            rest.extend(stages[n:])
            break
        kept: list[Mapping[str, Any]] = []
        for conjunct in _conjuncts(spec):
            (pushed if _reads_only_key(conjunct) else kept).append(conjunct)
        if kept:
            rest.append({"$match": kept[0] if len(kept) == 1 else {"$and": kept}})
    if not pushed:
        return Pushdown(None, False, list(stages))
    with_cache = [_cached_hash_filter(c) for c in pushed]
    uses_hash = with_cache != pushed
    return Pushdown(compile_filter({"$and": with_cache}), uses_hash, rest)


def _conjuncts(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A filter's top-level clauses, each a filter of its own; ``$and`` lists flattened."""
    out: list[Mapping[str, Any]] = []
    for key, value in spec.items():
        if key == "$and" and _all_documents(value):
            out.extend(c for branch in value for c in _conjuncts(branch))
            continue
        out.append({key: value})
    return out


def _all_documents(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(b, Mapping) for b in value)


def _reads_only_key(clause: Mapping[str, Any]) -> bool:
    for key, value in clause.items():
        if key in _LOGICAL:
            # A malformed one is left in place, to fail as it would there.
            if not _all_documents(value) or not all(_reads_only_key(b) for b in value):
                return False
        elif key == "$expr":
            if not _expr_reads_only_key(value):
                return False
        elif key != "$comment" and not _is_key_path(key):
            return False  # another field, or $jsonSchema, $where, $text, ...
    return True


def _is_key_path(path: str) -> bool:
    return path == _KEY or path.startswith(_KEY + ".")


def _expr_reads_only_key(expr: Any) -> bool:
    if isinstance(expr, str):
        if expr.startswith("$$"):
            return False  # $$ROOT, $$CURRENT, $$NOW, a variable: not worth telling apart
        return not expr.startswith("$") or _is_key_path(expr[1:])
    if isinstance(expr, list):
        return all(_expr_reads_only_key(e) for e in expr)
    if isinstance(expr, Mapping):
        if len(expr) == 1 and "$literal" in expr:
            return True
        if any(name in _IMPLICIT_ROOT for name in expr):
            return False
        return all(_expr_reads_only_key(e) for e in expr.values())
    return True


def _cached_hash_filter(clause: Mapping[str, Any]) -> Mapping[str, Any]:
    """``clause`` with each ``$toHashedIndexKey`` of ``$documentKey._id`` in its ``$expr``
    reading the entry's cached hash instead."""
    out: dict[str, Any] = {}
    for key, value in clause.items():
        if key in _LOGICAL:
            out[key] = [_cached_hash_filter(branch) for branch in value]
        elif key == "$expr":
            out[key] = _cached_hash_expr(value)
        else:
            out[key] = value
    return out


def _cached_hash_expr(expr: Any) -> Any:
    if isinstance(expr, list):
        return [_cached_hash_expr(e) for e in expr]
    if not isinstance(expr, Mapping):
        return expr
    if len(expr) == 1:
        ((name, arg),) = expr.items()
        if name == "$literal":
            return expr
        if name == "$toHashedIndexKey" and arg == _HASHED_ID:
            return "$" + _HASH_FIELD
    return {name: _cached_hash_expr(arg) for name, arg in expr.items()}
