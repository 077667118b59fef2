"""The query filter language: compile a filter once, then match documents fast.

Semantics follow mongod's classic matcher (src/mongo/db/matcher/): implicit AND, dotted
paths that fan out through arrays, leaf arrays matching as a whole or by any element,
null matching missing, type-bracketed comparisons, and negations ($ne, $nin, $not,
$exists: false) that negate the positive predicate over *all* values of the path.

A path resolves to the list of its leaf values (without expanding leaf arrays); each
compiled operator is a ``ValuesPred`` over that list and expands leaf arrays itself when
mongod's operator does ($size, $elemMatch and $exists do not).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bson.int64 import Int64
from bson.objectid import ObjectId

from .bsonutil import MISSING, bson_type_name
from .errors import MongoError
from .expressions import COMMAND_VARIABLES, evaluate
from .jsonschema import compile_json_schema
from .matching_ops import (
    compile_ops,
    eq_value_pred,
    is_operator_doc,
    is_regex,
    literal_pred,
    truthy,
    use_document_filter,
)

Matcher = Callable[[Mapping[str, Any]], bool]
ValuesPred = Callable[[Sequence[Any]], bool]
Resolver = Callable[[Mapping[str, Any]], Sequence[Any]]


def _always_true(doc: Mapping[str, Any]) -> bool:
    return True


def _always_false(doc: Mapping[str, Any]) -> bool:
    return False


def _all_of(matchers: Sequence[Matcher]) -> Matcher:
    if not matchers:
        return _always_true
    if len(matchers) == 1:
        return matchers[0]
    if len(matchers) == 2:
        first, second = matchers
        return lambda doc: first(doc) and second(doc)
    ms = tuple(matchers)

    def all_match(doc: Mapping[str, Any]) -> bool:
        return all(m(doc) for m in ms)

    return all_match


def compile_filter(filter: Mapping[str, Any]) -> Matcher:
    """A predicate over documents implementing the query ``filter``."""
    if not isinstance(filter, Mapping):
        raise MongoError(14, f"Expected a query object, got {bson_type_name(filter)}")
    return _all_of([_compile_clause(k, v) for k, v in filter.items() if k != "$comment"])


def matches(doc: Mapping[str, Any], filter: Mapping[str, Any]) -> bool:
    """One-off convenience: does ``doc`` match ``filter``?"""
    return compile_filter(filter)(doc)


def _compile_clause(key: str, value: Any) -> Matcher:
    if key.startswith("$"):
        builder = _TOP_LEVEL.get(key)
        if builder is None:
            raise MongoError(
                2,
                f"unknown top level operator: {key}. If you have a field name "
                "that starts with a '$' symbol, consider using $getField or "
                "$setField.",
            )
        return builder(value)
    return _compile_path(key, value)


# --- paths ---------------------------------------------------------------------------------


def _walk(value: Any, parts: tuple[str, ...], i: int, out: list[Any]) -> None:
    """Append the leaf values of ``parts[i:]`` under ``value``, fanning out through arrays.

    Like mongod's index key generation, array elements that cannot have the field
    (scalars, nested arrays) and empty arrays yield "missing", so ``{"a.b": null}`` matches
    ``{a: [1]}`` and ``{a: []}`` (jstests/core/query/null_query_semantics.js).
    """
    n = len(parts)
    while i < n:
        if value.__class__ is dict or isinstance(value, Mapping):
            value = value.get(parts[i], MISSING)
            i += 1
        elif value.__class__ is list:
            _walk_array(value, parts, i, out)
            return
        else:
            out.append(MISSING)
            return
    out.append(value)


def _walk_array(array: list[Any], parts: tuple[str, ...], i: int, out: list[Any]) -> None:
    part = parts[i]
    if part.isdigit():
        # A numeric part indexes the array; sub-documents with such a field name count too.
        index = int(part)
        if index < len(array):
            _walk(array[index], parts, i + 1, out)
        for element in array:
            if isinstance(element, Mapping) and part in element:
                _walk(element[part], parts, i + 1, out)
        return
    if not array:
        out.append(MISSING)
    for element in array:
        if isinstance(element, Mapping):
            _walk(element, parts, i, out)
        else:
            out.append(MISSING)


def _resolver(path: str) -> Resolver:
    if "." not in path:
        return lambda doc: (doc.get(path, MISSING),)
    parts = tuple(path.split("."))

    def resolve(doc: Mapping[str, Any]) -> Sequence[Any]:
        out: list[Any] = []
        _walk(doc, parts, 0, out)
        return out

    return resolve


def _compile_path(path: str, value: Any) -> Matcher:
    if not is_operator_doc(value):
        fast = _fast_equality(path, value)
        if fast is not None:
            return fast
        preds = [literal_pred(value, True)]
    else:
        preds = compile_ops(value, True)
    resolve = _resolver(path)
    if len(preds) == 1:
        pred = preds[0]
        return lambda doc: pred(resolve(doc))

    def match_all(doc: Mapping[str, Any]) -> bool:
        values = resolve(doc)
        return all(p(values) for p in preds)

    return match_all


def _fast_equality(path: str, value: Any) -> Matcher | None:
    """``{field: scalar}`` on a top-level field: the hot path of ``{_id: x}`` lookups."""
    cls = value.__class__
    if "." in path or cls not in (str, int, ObjectId, Int64):
        return None
    vp = eq_value_pred(value)

    def match(doc: Mapping[str, Any]) -> bool:
        v = doc.get(path, MISSING)
        if v.__class__ is list:
            return any(vp(x) for x in v)
        return vp(v)

    return match


# --- top-level operators -------------------------------------------------------------------


def _branches(op: str, arg: Any) -> list[Matcher]:
    # Messages from expression_parser.cpp (parseTreeTopLevel).
    if not isinstance(arg, list | tuple) or not arg:
        raise MongoError(2, "$and/$or/$nor must be a nonempty array")
    for branch in arg:
        if not isinstance(branch, Mapping):
            raise MongoError(2, "$or/$and/$nor entries need to be full objects")
    return [compile_filter(branch) for branch in arg]


def _and(arg: Any) -> Matcher:
    return _all_of(_branches("$and", arg))


def _any_of(matchers: Sequence[Matcher]) -> Matcher:
    if len(matchers) == 1:
        return matchers[0]
    if len(matchers) == 2:
        first, second = matchers
        return lambda doc: first(doc) or second(doc)
    ms = tuple(matchers)
    return lambda doc: any(m(doc) for m in ms)


def _or(arg: Any) -> Matcher:
    return _any_of(_branches("$or", arg))


def _nor(arg: Any) -> Matcher:
    either = _any_of(_branches("$nor", arg))
    return lambda doc: not either(doc)


def _expr(arg: Any) -> Matcher:
    variables = dict(COMMAND_VARIABLES.get())  # the command's let, for a lazy cursor
    return lambda doc: truthy(evaluate(arg, doc, variables))


def _json_schema(arg: Any) -> Matcher:
    if not isinstance(arg, Mapping):
        raise MongoError(14, "$jsonSchema must be an object")
    validate = compile_json_schema(arg)
    return lambda doc: validate(doc) is None


def _where(arg: Any) -> Matcher:
    raise MongoError(2, "$where is not supported by mongosim (no JavaScript engine)")


def _text(arg: Any) -> Matcher:
    # mongosim keeps no text index data; mongod answers this way without a text index.
    raise MongoError(27, "text index required for $text query")


def _constant(result: bool) -> Callable[[Any], Matcher]:
    def build(arg: Any) -> Matcher:
        if arg != 1:
            raise MongoError(9, "$alwaysTrue/$alwaysFalse must be an integer value of 1")
        return _always_true if result else _always_false

    return build


_TOP_LEVEL: dict[str, Callable[[Any], Matcher]] = {
    "$and": _and,
    "$or": _or,
    "$nor": _nor,
    "$expr": _expr,
    "$jsonSchema": _json_schema,
    "$where": _where,
    "$text": _text,
    "$alwaysTrue": _constant(True),
    "$alwaysFalse": _constant(False),
}


# --- index selection -----------------------------------------------------------------------


def equality_constraints(filter: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Paths that every match must equal one of a few values (for picking an index).

    Only top-level (or ``$and``-ed) plain equalities, ``$eq`` and regex-free ``$in``
    qualify; null is left out because it also matches missing fields, which an index
    lookup by value would not find.
    """
    out: dict[str, list[Any]] = {}
    _collect_constraints(filter, out)
    return out


def _collect_constraints(filter: Mapping[str, Any], out: dict[str, list[Any]]) -> None:
    for key, value in filter.items():
        if key == "$and" and isinstance(value, list | tuple):
            for branch in value:
                if isinstance(branch, Mapping):
                    _collect_constraints(branch, out)
            continue
        if key.startswith("$"):
            continue
        candidates = _candidate_values(value)
        if candidates is None:
            continue
        previous = out.get(key)
        if previous is None or len(candidates) < len(previous):
            out[key] = candidates


def _usable(value: Any) -> bool:
    return value is not None and not is_regex(value) and not is_operator_doc(value)


def _candidate_values(value: Any) -> list[Any] | None:
    if not is_operator_doc(value):
        return [value] if _usable(value) else None
    if "$eq" in value:
        return [value["$eq"]] if _usable(value["$eq"]) else None
    items = value.get("$in")
    if isinstance(items, list | tuple) and all(_usable(x) for x in items):
        return list(items)
    return None


use_document_filter(compile_filter)  # $elemMatch over documents
