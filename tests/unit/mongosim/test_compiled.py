"""Compiled expressions and $project give what the interpreter gives, errors included."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from bson.int64 import Int64
from hypothesis import given
from hypothesis import strategies as st
from mongosim.aggregation import _project_doc
from mongosim.compiled import compile_expression, compile_inclusion
from mongosim.errors import MongoError
from mongosim.expressions import evaluate

from streamer.core.changes import stream_pipeline

UPDATE_EVENT: dict[str, Any] = {
    "_id": {"_data": "8263"},
    "operationType": "update",
    "clusterTime": Int64(7),
    "wallTime": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    "ns": {"db": "shop", "coll": "orders"},
    "documentKey": {"_id": 4},
    "updateDescription": {
        "updatedFields": {"amount": 15, "status.code": "done", "note": "x"},
        "removedFields": ["user_id", "other"],
        "truncatedArrays": [{"field": "items", "newSize": 1}, {"field": "x", "newSize": 0}],
    },
}
INSERT_EVENT: dict[str, Any] = {
    "_id": {"_data": "8264"},
    "operationType": "insert",
    "clusterTime": Int64(8),
    "documentKey": {"_id": 5},
    "fullDocument": {"_id": 5, "user_id": 1, "amount": 10, "status": "paid", "blob": "y" * 50},
}
ARRAYS: dict[str, Any] = {"_id": 1, "a": [{"x": 1, "y": 2}, 3, {"y": 4}], "s": "p.q.r", "n": None}
DOCS = [UPDATE_EVENT, INSERT_EVENT, ARRAYS]

EXPRESSIONS: list[Any] = [
    "$operationType",
    "$documentKey._id",
    "$fullDocument.missing",
    "$$ROOT.ns.db",
    "$$CURRENT",
    "$$REMOVE",
    "constant",
    5,
    [1, "$a", "$missing"],
    {"k": "$operationType", "gone": "$missing"},
    {"$literal": "$not.a.path"},
    {"$eq": ["$operationType", "update"]},
    {"$ne": ["$operationType", "update"]},
    {"$gte": ["$clusterTime", 7]},
    {"$eq": "$operationType"},  # one argument: the interpreter's error
    {"$cond": [{"$eq": ["$operationType", "update"]}, "yes", "$$REMOVE"]},
    {"$cond": {"if": "$missing", "then": 1, "else": 2}},
    {"$cond": {"if": True, "then": 1}},  # no else: the interpreter's error
    {"$split": ["$s", "."]},
    {"$split": ["$n", "."]},
    {"$arrayElemAt": [{"$split": ["$s", "."]}, 0]},
    {"$arrayElemAt": [{"$split": ["$s", "."]}, 9]},
    {"$arrayElemAt": ["$a", -1]},
    {"$in": ["$s", ["p.q.r", "z"]]},
    {"$in": [1, [1.0, Int64(2)]]},
    {"$in": ["$s", "$a"]},
    {"$in": ["$s", "not an array"]},
    {"$objectToArray": "$updateDescription.updatedFields"},
    {"$arrayToObject": [[["k", 1], {"k": "j", "v": 2}]]},
    {"$filter": {"input": "$a", "cond": {"$ne": ["$$this", 3]}}},
    {"$filter": {"input": "$a", "as": "e", "cond": {"$eq": ["$$e.y", 4]}}},
    {"$filter": {"input": "$missing", "cond": True}},
    {"$filter": {"input": "$a", "cond": "$$undefined"}},  # error 17276
    {"$size": "$a"},  # no compiled form: interpreted as before
    {"$nosuchoperator": 1},  # error 168, when evaluated
    *stream_pipeline(("user_id", "amount", "status"))[0]["$project"].values(),
]


def outcome(run: Any) -> Any:
    try:
        return ("value", run())
    except MongoError as exc:
        return ("error", exc.code)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return ("error", type(exc))


@pytest.mark.parametrize("expr", EXPRESSIONS, ids=repr)
@pytest.mark.parametrize("doc", DOCS, ids=["update", "insert", "arrays"])
def test_a_compiled_expression_evaluates_as_the_interpreter(expr: Any, doc: dict[str, Any]) -> None:
    compiled = compile_expression(expr)
    assert outcome(lambda: compiled(doc, {})) == outcome(lambda: evaluate(expr, doc, {}))


PROJECTIONS: list[dict[str, Any]] = [
    stream_pipeline(("user_id", "amount", "status"))[0]["$project"],
    {"operationType": 1, "fullDocument.amount": True, "_id": 0},
    {"fullDocument.user_id": 1, "fullDocument.nope": 1, "documentKey": 1},
    {"_id": 1, "a.x": 1},
    {"a.y": 1, "z": {"$literal": 1}},
    {"missing.deep.path": 1},
    {"renamed": "$documentKey._id", "flag": {"$eq": ["$operationType", "insert"]}},
    {"x": 1.0},  # a double is a computed constant here, as in the interpreter
]


@pytest.mark.parametrize("spec", PROJECTIONS, ids=repr)
@pytest.mark.parametrize("doc", DOCS, ids=["update", "insert", "arrays"])
def test_a_compiled_inclusion_projects_as_the_interpreter(
    spec: dict[str, Any], doc: dict[str, Any]
) -> None:
    project = compile_inclusion(spec)
    assert project is not None
    assert project(doc) == _project_doc(doc, spec, {}, doc)
    assert list(project(doc)) == list(_project_doc(doc, spec, {}, doc))


@pytest.mark.parametrize(
    "spec",
    [
        {"a": 1, "a.x": 1},  # a path collision
        {"a.x": 1, "a": 1},
        {"a": {"x": 1}},  # a nested specification
        {"a.b": "$x"},  # a dotted computed field
        {"a": "$x", "a.b": 1},
    ],
    ids=repr,
)
def test_a_projection_that_does_not_compile_is_left_to_the_interpreter(
    spec: dict[str, Any],
) -> None:
    assert compile_inclusion(spec) is None


def test_sub_paths_of_an_array_keep_those_fields_of_each_embedded_document() -> None:
    """Both paths are kept (the interpreter's merge kept only the last one's)."""
    project = compile_inclusion({"a.x": 1, "a.y": 1, "_id": 0})
    assert project is not None
    assert project(ARRAYS) == {"a": [{"x": 1, "y": 2}, {"y": 4}]}


values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["a", "a.b", "update"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["k", "v", "a", "b", "field"]), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(doc=st.dictionaries(st.sampled_from(["a", "b", "operationType", "s"]), values))
def test_the_stream_projection_agrees_with_the_interpreter_on_any_document(
    doc: dict[str, Any],
) -> None:
    spec = {"a.k": 1, "b": 1, "t": {"$in": ["$operationType", ["update", "a"]]}}
    project = compile_inclusion(spec)
    assert project is not None
    assert outcome(lambda: project(doc)) == outcome(lambda: _project_doc(doc, spec, {}, doc))
