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
- A computed operand of a comparison in a pushed ``$expr`` (the partition filter's
  ``{$mod: [{$abs: {$toHashedIndexKey: "$documentKey._id"}}, P]}``) is evaluated once per
  oplog entry and kept on it (``OplogEntry.pushdown_doc``, under a name derived from the
  operand's spelling), so P partitioned cursors over one oplog hash each document key
  once, and each cursor's own check is a comparison with its constant.

The result equals running the whole ``$match`` on built events; the one difference is
order: a pushed conjunct is evaluated before the others, so when two conjuncts of one
``$match`` would both fail with an error, the error reported may be the pushed one's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from .compiled import Compiled, compile_expression
from .expressions import truthy
from .matching import Matcher, compile_filter
from .oplog import OplogEntry

_KEY: Final = "documentKey"
_COMPARISONS: Final = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$cmp"})
_NO_VARIABLES: Final[Mapping[str, Any]] = MappingProxyType({})
_LOGICAL: Final = frozenset({"$and", "$or", "$nor"})
# Expressions that read the current document without naming a field path.
_IMPLICIT_ROOT: Final = frozenset({"$getField", "$setField", "$unsetField"})
_CRUD: Final = frozenset({"i", "u", "r", "d"})


@dataclass(frozen=True, slots=True)
class Pushdown:
    """The predicate pushed to the oplog scan (None: none), the operands it reads from the
    entry's memo, and the stages left to run on built events."""

    matcher: Matcher | None
    memos: tuple[tuple[str, Compiled], ...]
    stages: list[Mapping[str, Any]]

    def admits(self, entry: OplogEntry) -> bool:
        """Would the event built from ``entry`` pass the pushed predicates?"""
        if self.matcher is None:
            return True
        stub = entry.pushdown_doc
        if stub is None:
            # What the pushed predicates can see of the event: a command's has no documentKey.
            stub = entry.pushdown_doc = {_KEY: entry.key} if entry.op in _CRUD else {}
        for name, operand in self.memos:
            if name not in stub:
                stub[name] = operand(stub, _NO_VARIABLES)
        return self.matcher(stub)


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
        return Pushdown(None, (), list(stages))
    memos: dict[str, Compiled] = {}
    matcher = _all([_compile(_memoized_filter(c, memos)) for c in pushed])
    return Pushdown(matcher, tuple(memos.items()), rest)


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


def _memoized_filter(clause: Mapping[str, Any], memos: dict[str, Compiled]) -> dict[str, Any]:
    """``clause`` with each computed operand of a comparison in its ``$expr`` read from the
    entry's memo instead: ``{$eq: [{$mod: [...]}, 3]}`` becomes ``{$eq: ["$_m…", 3]}``."""
    out: dict[str, Any] = {}
    for key, value in clause.items():
        if key in _LOGICAL:
            out[key] = [_memoized_filter(branch, memos) for branch in value]
        elif key == "$expr":
            out[key] = _memoized_expr(value, memos)
        else:
            out[key] = value
    return out


def _memoized_expr(expr: Any, memos: dict[str, Compiled]) -> Any:
    if isinstance(expr, list):
        return [_memoized_expr(e, memos) for e in expr]
    if not isinstance(expr, Mapping):
        return expr
    if len(expr) == 1:
        ((name, arg),) = expr.items()
        if name == "$literal":
            return expr
        if name in _COMPARISONS and isinstance(arg, list):
            return {name: [_memo_operand(a, memos) for a in arg]}
    return {name: _memoized_expr(arg, memos) for name, arg in expr.items()}


def _memo_operand(operand: Any, memos: dict[str, Compiled]) -> Any:
    """An operator expression becomes a read of its memo field, named by its spelling (so
    equal spellings in any stream share one value per entry); anything else stays."""
    if not (isinstance(operand, Mapping) and len(operand) == 1):
        return _memoized_expr(operand, memos)
    name = next(iter(operand))
    if not name.startswith("$") or name == "$literal":
        return _memoized_expr(operand, memos)
    spelling = repr(operand).encode()
    field = "_m" + hashlib.blake2b(spelling, digest_size=8).hexdigest()
    memos[field] = compile_expression(operand)
    return "$" + field


def _compile(clause: Mapping[str, Any]) -> Matcher:
    """A pushed clause as a matcher: its logic here, ``$expr`` through compiled closures
    (the interpreter's per-node dispatch costs more than the rest of a cursor's check),
    field clauses through ``matching``. Pushed clauses read no variables."""
    parts: list[Matcher] = []
    for key, value in clause.items():
        if key == "$and":
            parts.append(_all([_compile(b) for b in value]))
        elif key in ("$or", "$nor"):
            branches = [_compile(b) for b in value]
            either = branches[0] if len(branches) == 1 else _any(branches)
            parts.append(either if key == "$or" else _not(either))
        elif key == "$expr":
            parts.append(_expr(compile_expression(value)))
        elif key != "$comment":
            parts.append(compile_filter({key: value}))
    return _all(parts)


def _not(matcher: Matcher) -> Matcher:
    return lambda doc: not matcher(doc)


def _expr(compiled: Compiled) -> Matcher:
    return lambda doc: truthy(compiled(doc, _NO_VARIABLES))


def _all(parts: list[Matcher]) -> Matcher:
    if len(parts) == 1:
        return parts[0]
    return lambda doc: all(m(doc) for m in parts)


def _any(parts: list[Matcher]) -> Matcher:
    if len(parts) == 2:
        first, second = parts
        return lambda doc: first(doc) or second(doc)
    return lambda doc: any(m(doc) for m in parts)
