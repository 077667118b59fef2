"""find projections, checked against the manual and mongod's projection parser."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from mongosim.bsonutil import get_path
from mongosim.errors import MongoError
from mongosim.projection import compile_projection

from mongosim import projection

DOC: dict[str, Any] = {
    "_id": 1,
    "name": "n",
    "qty": 5,
    "size": {"h": 10, "w": 20, "uom": "cm"},
    "tags": ["a", "b", "c", "d", "e"],
    "items": [{"sku": "x", "n": 1, "p": 9}, {"sku": "y", "n": 2, "p": 8}, 7, [{"sku": "z"}]],
}


# (spec, expected projection of DOC)
CASES: list[tuple[dict[str, Any], dict[str, Any]]] = [
    # inclusion: _id by default, fields in the document's order
    ({"qty": 1, "name": 1}, {"_id": 1, "name": "n", "qty": 5}),
    ({"qty": True}, {"_id": 1, "qty": 5}),
    ({"qty": 1, "_id": 0}, {"qty": 5}),
    ({"_id": 1}, {"_id": 1}),
    ({"missing": 1}, {"_id": 1}),
    # exclusion
    (
        {"tags": 0, "items": 0},
        {"_id": 1, "name": "n", "qty": 5, "size": {"h": 10, "w": 20, "uom": "cm"}},
    ),
    ({"_id": 0, "size": 0, "tags": 0, "items": 0}, {"name": "n", "qty": 5}),
    ({"_id": 0}, {k: v for k, v in DOC.items() if k != "_id"}),
    ({"_id": 1, "tags": 0, "items": 0, "size": 0}, {"_id": 1, "name": "n", "qty": 5}),
    # dotted paths and sub-projections
    ({"size.h": 1, "_id": 0}, {"size": {"h": 10}}),
    ({"size": {"h": 1, "uom": 1}, "_id": 0}, {"size": {"h": 10, "uom": "cm"}}),
    (
        {"size.uom": 0, "tags": 0, "items": 0, "_id": 0},
        {"name": "n", "qty": 5, "size": {"h": 10, "w": 20}},
    ),
    ({"name.x": 1, "_id": 0}, {}),
    # through arrays of sub-documents: scalars drop out of inclusions, stay in exclusions
    ({"items.sku": 1, "_id": 0}, {"items": [{"sku": "x"}, {"sku": "y"}, [{"sku": "z"}]]}),
    (
        {"items.p": 0, "items.n": 0, "_id": 0, "name": 0, "qty": 0, "size": 0, "tags": 0},
        {"items": [{"sku": "x"}, {"sku": "y"}, 7, [{"sku": "z"}]]},
    ),
    # $slice
    ({"tags": {"$slice": 2}}, {**DOC, "tags": ["a", "b"]}),
    (
        {"tags": {"$slice": -2}, "_id": 0, "name": 0, "qty": 0, "size": 0, "items": 0},
        {"tags": ["d", "e"]},
    ),
    ({"tags": {"$slice": [1, 2]}, "qty": 1}, {"_id": 1, "qty": 5, "tags": ["b", "c"]}),
    ({"tags": {"$slice": [-2, 5]}, "qty": 1}, {"_id": 1, "qty": 5, "tags": ["d", "e"]}),
    ({"tags": {"$slice": [-10, 2]}, "qty": 1}, {"_id": 1, "qty": 5, "tags": ["a", "b"]}),
    ({"tags": {"$slice": [10, 2]}, "qty": 1}, {"_id": 1, "qty": 5, "tags": []}),
    ({"tags": {"$slice": 10}, "qty": 1}, {"_id": 1, "qty": 5, "tags": DOC["tags"]}),
    # a $slice of a non-array keeps the value; like other computed fields it comes last
    ({"name": {"$slice": 1}, "qty": 1}, {"_id": 1, "qty": 5, "name": "n"}),
    ({"tags": {"$slice": 1}, "_id": 1}, {"_id": 1, "tags": ["a"]}),
    # $elemMatch: the first matching element, after the other inclusions
    (
        {"items": {"$elemMatch": {"n": {"$gt": 1}}}, "name": 1},
        {"_id": 1, "name": "n", "items": [{"sku": "y", "n": 2, "p": 8}]},
    ),
    ({"items": {"$elemMatch": {"n": 5}}}, {"_id": 1}),
    ({"tags": {"$elemMatch": {"$gte": "c"}}, "_id": 0}, {"tags": ["c"]}),
    (
        {"items": {"$elemMatch": {"n": 1}}, "tags": 0, "size": 0},
        {"_id": 1, "name": "n", "qty": 5, "items": [{"sku": "x", "n": 1, "p": 9}]},
    ),
    # $meta is accepted and produces nothing (no text scores here)
    ({"score": {"$meta": "textScore"}, "qty": 1}, {"_id": 1, "qty": 5}),
]


@pytest.mark.parametrize(("spec", "expected"), CASES)
def test_projection_shapes_documents_as_mongod(
    spec: dict[str, Any], expected: dict[str, Any]
) -> None:
    result = compile_projection(spec)(DOC)
    assert result == expected
    assert list(result) == list(expected)


def test_elem_match_field_comes_after_other_inclusions() -> None:
    """Manual, $elemMatch (projection) Field Order: games comes after joined and lastLogin."""
    doc = {"_id": 1, "games": [{"score": 8}, {"score": 5}], "joined": 1, "lastLogin": 2}
    result = compile_projection(
        {"games": {"$elemMatch": {"score": {"$gt": 5}}}, "joined": 1, "lastLogin": 1}
    )(doc)
    assert list(result) == ["_id", "joined", "lastLogin", "games"]


def test_empty_or_missing_projection_returns_the_document() -> None:
    assert compile_projection(None)(DOC) is DOC
    assert compile_projection({})(DOC) is DOC


def test_projection_does_not_mutate_the_document() -> None:
    before = repr(DOC)
    compile_projection({"items.sku": 1, "tags": {"$slice": 1}})(DOC)
    compile_projection({"items.p": 0, "size.h": 0})(DOC)
    assert repr(DOC) == before


# (query, projection, document, expected)
POSITIONAL: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    (
        {"grades": {"$gte": 85}},
        {"grades.$": 1},
        {"_id": 1, "grades": [80, 85, 90]},
        {"_id": 1, "grades": [85]},
    ),
    (
        {"grades.mean": {"$gt": 70}},
        {"grades.$": 1, "_id": 0},
        {"_id": 1, "grades": [{"mean": 60}, {"mean": 75}, {"mean": 90}]},
        {"grades": [{"mean": 75}]},
    ),
    (
        {"grades": {"$elemMatch": {"mean": {"$gt": 70}, "grade": "B"}}},
        {"grades.$": 1},
        {"_id": 1, "grades": [{"mean": 90, "grade": "A"}, {"mean": 80, "grade": "B"}]},
        {"_id": 1, "grades": [{"mean": 80, "grade": "B"}]},
    ),
    (
        {"$and": [{"x": 1}, {"tags": "b"}]},
        {"tags.$": 1, "x": 1},
        {"_id": 1, "x": 1, "tags": ["a", "b"]},
        {"_id": 1, "x": 1, "tags": ["b"]},
    ),
    ({"a.b": 2}, {"a.b.$": 1, "_id": 0}, {"a": {"b": [1, 2, 3]}}, {"a": {"b": [2]}}),
]


@pytest.mark.parametrize(("query", "spec", "doc", "expected"), POSITIONAL)
def test_positional_projection_returns_first_element_the_query_matched(
    query: dict[str, Any], spec: dict[str, Any], doc: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert compile_projection(spec, query=query)(doc) == expected


def test_positional_projection_without_a_matching_element_fails() -> None:
    project = compile_projection({"tags.$": 1}, query={"other": 1})
    with pytest.raises(MongoError) as info:
        project({"_id": 1, "other": 1, "tags": ["a"]})
    assert info.value.code == 51246


# (spec, code) -- codes from src/mongo/db/query/projection_parser.cpp
ERRORS: list[tuple[dict[str, Any], int]] = [
    ({"a": 1, "b": 0}, 31254),
    ({"a": 0, "b": 1}, 31253),
    ({"a": 0, "b": {"$add": [1, 2]}}, 31252),
    ({"a": 0, "b": "x"}, 31310),
    ({"a": 1, "a.b": 1}, 31249),
    ({"a.b": 1, "a": 1}, 31250),
    ({"a": {}}, 51270),
    ({"a": {"$slice": [1]}}, 31272),
    ({"a": {"$slice": [1, 0]}}, 31259),
    ({"a": {"$slice": [1, "x"]}}, 31258),
    ({"a": {"$slice": "x"}}, 31273),
    ({"a": {"$elemMatch": 1}}, 31274),
    ({"a.b": {"$elemMatch": {"c": 1}}}, 31275),
    ({"a": {"b": {"$elemMatch": {"c": 1}}}}, 31275),
    ({"a.$": 1}, 51050),
    ({"a.$.b": 1}, 31394),
    ({"a.$": 0}, 31395),
    ({"a.$": "x"}, 31308),
    ({"a.$": {"b": 1}}, 31271),
]


@pytest.mark.parametrize(("spec", "code"), ERRORS)
def test_invalid_projections_raise_mongods_code(spec: dict[str, Any], code: int) -> None:
    with pytest.raises(MongoError) as info:
        compile_projection(spec)
    assert info.value.code == code


@pytest.mark.parametrize(
    ("spec", "query", "code"),
    [
        ({"a.$": 1, "b.$": 1}, {"a": 1, "b": 1}, 31276),
        ({"a": {"$elemMatch": {"x": 1}}, "b.$": 1}, {"b": 1}, 31256),
        ({"b.$": 1, "a": {"$elemMatch": {"x": 1}}}, {"b": 1}, 31255),
    ],
)
def test_positional_conflicts_raise(spec: dict[str, Any], query: dict[str, Any], code: int) -> None:
    with pytest.raises(MongoError) as info:
        compile_projection(spec, query=query)
    assert info.value.code == code


@pytest.fixture
def fake_expressions(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in for expressions.evaluate: field paths, $literal and constants."""

    def evaluate(expr: Any, doc: Mapping[str, Any], variables: Any = None) -> Any:
        if isinstance(expr, str) and expr.startswith("$"):
            return get_path(doc, expr[1:])
        if isinstance(expr, Mapping) and "$literal" in expr:
            return expr["$literal"]
        return expr

    monkeypatch.setattr(projection, "evaluate", evaluate)


@pytest.mark.usefixtures("fake_expressions")
@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"q": "$qty", "name": 1}, {"_id": 1, "name": "n", "q": 5}),
        ({"_id": 0, "h": "$size.h", "lit": {"$literal": 1}}, {"h": 10, "lit": 1}),
        ({"_id": 0, "gone": "$nothing"}, {}),
        ({"_id": 0, "size.d": "$qty", "size.h": 1}, {"size": {"h": 10, "d": 5}}),
        ({"_id": 0, "new.sub": "$qty"}, {"new": {"sub": 5}}),
        ({"_id": 0, "flag": None}, {"flag": None}),
        # [non-number, n] is not find's $slice: it goes to the aggregation evaluator
        ({"_id": 0, "tags": {"$slice": ["$tags", 1]}}, {"tags": {"$slice": ["$tags", 1]}}),
    ],
)
def test_inclusion_projections_compute_expressions_against_the_root(
    spec: dict[str, Any], expected: dict[str, Any]
) -> None:
    """Literals and expressions are computed fields, appended after the inclusions."""
    result = compile_projection(spec)(DOC)
    assert result == expected
    assert list(result) == list(expected)
