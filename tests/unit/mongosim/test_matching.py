"""The query filter language, checked against mongod's documented semantics."""

from __future__ import annotations

import datetime as dt
import re
import timeit
from collections.abc import Mapping
from typing import Any

import pytest
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.regex import Regex
from mongosim.bsonutil import MISSING
from mongosim.errors import MongoError
from mongosim.matching import compile_filter, equality_constraints, matches

from mongosim import matching

OID = ObjectId("5f0000000000000000000001")
DATE = dt.datetime(2024, 1, 2, tzinfo=dt.UTC)

# (filter, document, expected)
CASES: list[tuple[dict[str, Any], dict[str, Any], bool]] = [
    # implicit AND and plain equality
    ({}, {"a": 1}, True),
    ({"a": 1}, {"a": 1}, True),
    ({"a": 1}, {"a": 1.0}, True),
    ({"a": 1}, {"a": Int64(1)}, True),
    ({"a": 1}, {"a": Decimal128("1.00")}, True),
    ({"a": 1}, {"a": True}, False),
    ({"a": True}, {"a": 1}, False),
    ({"a": "x"}, {"a": "x"}, True),
    ({"a": "x"}, {"a": "y"}, False),
    ({"_id": OID}, {"_id": OID}, True),
    ({"_id": OID}, {"_id": str(OID)}, False),
    ({"a": 1, "b": 2}, {"a": 1, "b": 2}, True),
    ({"a": 1, "b": 2}, {"a": 1, "b": 3}, False),
    ({"a": DATE}, {"a": DATE}, True),
    # documents compare whole and in field order
    ({"a": {"x": 1, "y": 2}}, {"a": {"x": 1, "y": 2}}, True),
    ({"a": {"x": 1, "y": 2}}, {"a": {"y": 2, "x": 1}}, False),
    ({"a": {"x": 1}}, {"a": {"x": 1, "y": 2}}, False),
    # arrays: whole-array equality or any element
    ({"a": 2}, {"a": [1, 2, 3]}, True),
    ({"a": 5}, {"a": [1, 2, 3]}, False),
    ({"a": [1, 2]}, {"a": [1, 2]}, True),
    ({"a": [1, 2]}, {"a": [2, 1]}, False),
    ({"a": [1, 2]}, {"a": [[1, 2], 3]}, True),
    ({"a": 1}, {"a": [[1]]}, False),
    # null matches null and missing, not other values
    ({"a": None}, {"a": None}, True),
    ({"a": None}, {}, True),
    ({"a": None}, {"a": 0}, False),
    ({"a": None}, {"a": [1, None]}, True),
    ({"a": None}, {"a": [1]}, False),
    ({"a": {"$ne": None}}, {}, False),
    ({"a": {"$ne": None}}, {"a": []}, True),
    # dotted paths
    ({"a.b": 1}, {"a": {"b": 1}}, True),
    ({"a.b": 1}, {"a": {"b": 2}}, False),
    ({"a.b.c": 1}, {"a": {"b": {"c": 1}}}, True),
    ({"a.b": 1}, {"a": [{"b": 2}, {"b": 1}]}, True),
    ({"a.b": 1}, {"a": [{"b": [0, 1]}]}, True),
    ({"a.b": 1}, {"a": [[{"b": 1}]]}, False),
    ({"a.1": 5}, {"a": [4, 5]}, True),
    ({"a.0": 5}, {"a": [4, 5]}, False),
    ({"a.0.b": 1}, {"a": [{"b": 1}]}, True),
    ({"a.0": 1}, {"a": {"0": 1}}, True),
    # null semantics of dotted paths (jstests/core/query/null_query_semantics.js)
    ({"a.b": None}, {"a": 4}, True),
    ({"a.b": None}, {"a": {}}, True),
    ({"a.b": None}, {"a": {"b": "hi"}}, False),
    ({"a.b": None}, {"a": []}, True),
    ({"a.b": None}, {"a": [[]]}, True),
    ({"a.b": None}, {"a": [1, "s"]}, True),
    ({"a.b": None}, {"a": [{"b": 1}, {"b": 3}]}, False),
    ({"a.b": None}, {"a": [{"b": 3}, {}]}, True),
    ({"a.b": {"$ne": None}}, {"a": [{"b": 1}, {"b": 3}]}, True),
    ({"a.b": {"$ne": None}}, {"a": [{"b": 3}, {}]}, False),
    ({"a.0": None}, {"a": []}, False),
    # comparisons are type-bracketed
    ({"a": {"$gt": 5}}, {"a": 6}, True),
    ({"a": {"$gt": 5}}, {"a": 5}, False),
    ({"a": {"$gte": 5}}, {"a": 5.0}, True),
    ({"a": {"$lt": 5}}, {"a": "4"}, False),
    ({"a": {"$gt": 5}}, {"a": "6"}, False),
    ({"a": {"$lt": 5}}, {}, False),
    ({"a": {"$lt": 5}}, {"a": None}, False),
    ({"a": {"$gt": "a"}}, {"a": "b"}, True),
    ({"a": {"$lt": DATE}}, {"a": DATE - dt.timedelta(days=1)}, True),
    ({"a": {"$gt": 1}}, {"a": Decimal128("1.5")}, True),
    ({"a": {"$lt": Decimal128("2")}}, {"a": 1}, True),
    ({"a": {"$gt": 5, "$lt": 10}}, {"a": 7}, True),
    ({"a": {"$gt": 5, "$lt": 10}}, {"a": [1, 20]}, True),
    ({"a": {"$gt": 5, "$lt": 10}}, {"a": [1, 2]}, False),
    ({"a": {"$gte": None}}, {}, True),
    ({"a": {"$lte": None}}, {"a": None}, True),
    ({"a": {"$lt": None}}, {}, False),
    ({"a": {"$gte": None}}, {"a": []}, False),
    ({"a": {"$gt": MinKey()}}, {"a": "anything"}, True),
    ({"a": {"$lt": MaxKey()}}, {"a": {"x": 1}}, True),
    ({"a": {"$gt": MaxKey()}}, {"a": 1}, False),
    ({"a": {"$gt": 1}}, {"a": float("nan")}, False),
    ({"a": {"$lt": 1}}, {"a": float("nan")}, False),
    ({"a": {"$gte": float("nan")}}, {"a": float("nan")}, True),
    ({"a": float("nan")}, {"a": float("nan")}, True),
    ({"a": {"$gt": [1]}}, {"a": [2]}, True),
    # $eq / $ne
    ({"a": {"$eq": 1}}, {"a": [1, 2]}, True),
    ({"a": {"$ne": 1}}, {"a": [1, 2]}, False),
    ({"a": {"$ne": 1}}, {"a": 2}, True),
    ({"a": {"$ne": 1}}, {}, True),
    ({"a": {"$eq": Regex("^x")}}, {"a": "xyz"}, False),
    ({"a": {"$eq": {"$gt": 1}}}, {"a": {"$gt": 1}}, True),
    # $in / $nin
    ({"a": {"$in": [1, 2]}}, {"a": 2}, True),
    ({"a": {"$in": [1, 2]}}, {"a": 3}, False),
    ({"a": {"$in": [1, 2]}}, {"a": [3, 2]}, True),
    ({"a": {"$in": [None]}}, {}, True),
    ({"a": {"$in": []}}, {"a": 1}, False),
    ({"a": {"$in": [re.compile("^ab")]}}, {"a": "abc"}, True),
    ({"a": {"$in": [[1, 2]]}}, {"a": [1, 2]}, True),
    ({"a": {"$nin": [1, 2]}}, {"a": 3}, True),
    ({"a": {"$nin": [1, 2]}}, {"a": [3, 1]}, False),
    ({"a": {"$nin": [1]}}, {}, True),
    ({"a": {"$nin": [None, 4]}}, {}, False),
    # $exists
    ({"a": {"$exists": True}}, {"a": None}, True),
    ({"a": {"$exists": True}}, {}, False),
    ({"a": {"$exists": False}}, {}, True),
    ({"a": {"$exists": 0}}, {"a": 1}, False),
    ({"a.b": {"$exists": True}}, {"a": [{"c": 1}, {"b": 1}]}, True),
    ({"a.b": {"$exists": False}}, {"a": [1, 2]}, True),
    ({"a": {"$exists": True}}, {"a": []}, True),
    # $type
    ({"a": {"$type": "string"}}, {"a": "x"}, True),
    ({"a": {"$type": 2}}, {"a": "x"}, True),
    ({"a": {"$type": "number"}}, {"a": 1.5}, True),
    ({"a": {"$type": "number"}}, {"a": True}, False),
    ({"a": {"$type": "int"}}, {"a": 1}, True),
    ({"a": {"$type": "long"}}, {"a": Int64(1)}, True),
    ({"a": {"$type": "long"}}, {"a": 2**40}, True),
    ({"a": {"$type": "null"}}, {"a": None}, True),
    ({"a": {"$type": "null"}}, {}, False),
    ({"a": {"$type": "array"}}, {"a": [1]}, True),
    ({"a": {"$type": "array"}}, {"a": []}, True),
    ({"a": {"$type": "string"}}, {"a": [1, "x"]}, True),
    ({"a": {"$type": ["int", "string"]}}, {"a": "x"}, True),
    ({"a": {"$type": "objectId"}}, {"a": OID}, True),
    ({"a": {"$type": "date"}}, {"a": DATE}, True),
    ({"a": {"$type": "object"}}, {"a": {}}, True),
    ({"a": {"$type": "decimal"}}, {"a": Decimal128("1")}, True),
    ({"a": {"$type": "bool"}}, {"a": False}, True),
    ({"a": {"$type": "binData"}}, {"a": b"\x00"}, True),
    # regular expressions
    ({"a": re.compile("^ab")}, {"a": "abc"}, True),
    ({"a": re.compile("^ab")}, {"a": "cab"}, False),
    ({"a": Regex("^AB", "i")}, {"a": "abc"}, True),
    ({"a": {"$regex": "^ab"}}, {"a": "abc"}, True),
    ({"a": {"$regex": "b"}}, {"a": "abc"}, True),
    ({"a": {"$regex": "^AB", "$options": "i"}}, {"a": "abc"}, True),
    ({"a": {"$regex": "^b", "$options": "m"}}, {"a": "a\nb"}, True),
    ({"a": {"$regex": "^b"}}, {"a": "a\nb"}, False),
    ({"a": {"$regex": re.compile("^x"), "$options": "i"}}, {"a": "X"}, True),
    ({"a": {"$regex": "^ab"}}, {"a": ["x", "abc"]}, True),
    ({"a": {"$regex": "1"}}, {"a": 1}, False),
    ({"a": re.compile("^ab")}, {"a": Regex("^ab")}, True),
    ({"a": {"$not": re.compile("^ab")}}, {"a": "abc"}, False),
    ({"a": {"$not": {"$regex": "^ab"}}}, {"a": "xyz"}, True),
    # $not negates the whole operator set over the path
    ({"a": {"$not": {"$gt": 5}}}, {"a": 3}, True),
    ({"a": {"$not": {"$gt": 5}}}, {"a": 6}, False),
    ({"a": {"$not": {"$gt": 5}}}, {}, True),
    ({"a": {"$not": {"$gt": 5}}}, {"a": "x"}, True),
    ({"a": {"$not": {"$gt": 5, "$lt": 10}}}, {"a": 7}, False),
    ({"a": {"$not": {"$gte": None}}}, {"a": []}, True),
    # $mod
    ({"a": {"$mod": [4, 0]}}, {"a": 8}, True),
    ({"a": {"$mod": [4, 1]}}, {"a": 8}, False),
    ({"a": {"$mod": [4, 1]}}, {"a": 5.7}, True),
    ({"a": {"$mod": [4, -1]}}, {"a": -5}, True),
    ({"a": {"$mod": [4, 3]}}, {"a": -5}, False),
    ({"a": {"$mod": [2, 0]}}, {"a": "4"}, False),
    ({"a": {"$mod": [2, 0]}}, {"a": [1, 3, 4]}, True),
    # $size
    ({"a": {"$size": 2}}, {"a": [1, 2]}, True),
    ({"a": {"$size": 2}}, {"a": [1]}, False),
    ({"a": {"$size": 0}}, {"a": []}, True),
    ({"a": {"$size": 0}}, {}, False),
    ({"a": {"$size": 1}}, {"a": [[1, 2]]}, True),
    ({"a": {"$size": 2}}, {"a": [[1, 2]]}, False),
    ({"a.b": {"$size": 2}}, {"a": [{"b": [1]}, {"b": [1, 2]}]}, True),
    ({"a": {"$not": {"$size": 2}}}, {"a": [1]}, True),
    # $all
    ({"a": {"$all": [1, 2]}}, {"a": [2, 3, 1]}, True),
    ({"a": {"$all": [1, 2]}}, {"a": [1, 3]}, False),
    ({"a": {"$all": [1]}}, {"a": 1}, True),
    ({"a": {"$all": []}}, {"a": [1]}, False),
    ({"a": {"$all": [[1, 2]]}}, {"a": [1, 2]}, True),
    ({"a": {"$all": [re.compile("^a"), "bc"]}}, {"a": ["ax", "bc"]}, True),
    (
        {"a": {"$all": [{"$elemMatch": {"b": 1}}, {"$elemMatch": {"b": 2}}]}},
        {"a": [{"b": 1}, {"b": 2}]},
        True,
    ),
    (
        {"a": {"$all": [{"$elemMatch": {"b": 1}}, {"$elemMatch": {"b": 3}}]}},
        {"a": [{"b": 1}, {"b": 2}]},
        False,
    ),
    # $elemMatch, query style and operator style
    ({"a": {"$elemMatch": {"b": 1, "c": 2}}}, {"a": [{"b": 1, "c": 2}]}, True),
    ({"a": {"$elemMatch": {"b": 1, "c": 2}}}, {"a": [{"b": 1}, {"c": 2}]}, False),
    ({"a.b": 1, "a.c": 2}, {"a": [{"b": 1}, {"c": 2}]}, True),
    ({"a": {"$elemMatch": {"$gt": 5, "$lt": 10}}}, {"a": [1, 7]}, True),
    ({"a": {"$elemMatch": {"$gt": 5, "$lt": 10}}}, {"a": [1, 20]}, False),
    ({"a": {"$elemMatch": {"$gt": 5}}}, {"a": 7}, False),
    ({"a": {"$elemMatch": {"$eq": None}}}, {"a": [1, None]}, True),
    ({"a": {"$elemMatch": {"$ne": None}}}, {"a": [None, None]}, False),
    ({"a": {"$elemMatch": {"$ne": None}}}, {"a": [[]]}, True),
    ({"a": {"$elemMatch": {"$or": [{"b": 1}, {"c": 1}]}}}, {"a": [{"c": 1}]}, True),
    ({"a": {"$elemMatch": {}}}, {"a": [1, {"x": 1}]}, True),
    ({"a": {"$elemMatch": {}}}, {"a": [1, 2]}, False),
    ({"a.b": {"$elemMatch": {"c": 1}}}, {"a": [{"b": [{"c": 1}]}]}, True),
    ({"a": {"$elemMatch": {"b": {"$elemMatch": {"$gt": 1}}}}}, {"a": [{"b": [0, 2]}]}, True),
    # logical operators
    ({"$and": [{"a": 1}, {"b": 2}]}, {"a": 1, "b": 2}, True),
    ({"$and": [{"a": 1}, {"b": 2}]}, {"a": 1}, False),
    ({"$or": [{"a": 1}, {"b": 2}]}, {"b": 2}, True),
    ({"$or": [{"a": 1}, {"b": 2}]}, {"b": 3}, False),
    ({"$nor": [{"a": 1}, {"b": 2}]}, {"b": 3}, True),
    ({"$nor": [{"a": 1}, {"b": 2}]}, {"a": 1}, False),
    ({"$or": [{"a": 1}], "b": 2}, {"a": 1, "b": 2}, True),
    ({"$or": [{"a": {"$exists": False}}, {"a": None}]}, {}, True),
    # $comment is ignored
    ({"a": 1, "$comment": "why"}, {"a": 1}, True),
    ({"$alwaysFalse": 1}, {"a": 1}, False),
]


@pytest.mark.parametrize(("query", "doc", "expected"), CASES)
def test_filter_matches_as_mongod(
    query: dict[str, Any], doc: dict[str, Any], expected: bool
) -> None:
    """Each filter matches (or not) the document as mongod's matcher does."""
    assert compile_filter(query)(doc) is expected
    assert matches(doc, query) is expected


# (filter, code)
ERRORS: list[tuple[dict[str, Any], int]] = [
    ({"a": {"$foo": 1}}, 2),
    ({"$foo": 1}, 2),
    ({"a": {"$gt": 1, "b": 2}}, 2),
    ({"$where": "this.a == 1"}, 2),
    ({"$text": {"$search": "x"}}, 27),
    ({"$and": []}, 2),
    ({"$or": {}}, 2),
    ({"$nor": [1]}, 2),
    ({"a": {"$in": 1}}, 2),
    ({"a": {"$nin": "x"}}, 2),
    ({"a": {"$in": [{"$gt": 1}]}}, 2),
    ({"a": {"$all": 1}}, 2),
    ({"a": {"$all": [{"$elemMatch": {"b": 1}}, 2]}}, 2),
    ({"a": {"$size": "2"}}, 2),
    ({"a": {"$size": -1}}, 2),
    ({"a": {"$size": 1.5}}, 2),
    ({"a": {"$mod": 4}}, 2),
    ({"a": {"$mod": [4]}}, 2),
    ({"a": {"$mod": [4, 1, 2]}}, 2),
    ({"a": {"$mod": [0, 1]}}, 2),
    ({"a": {"$mod": ["4", 1]}}, 2),
    ({"a": {"$type": "nonsense"}}, 2),
    ({"a": {"$type": 100}}, 2),
    ({"a": {"$type": {}}}, 14),
    ({"a": {"$regex": 1}}, 2),
    ({"a": {"$options": "i"}}, 2),
    ({"a": {"$regex": "x", "$options": "z"}}, 51108),
    ({"a": {"$regex": "("}}, 51091),
    ({"a": {"$not": 5}}, 2),
    ({"a": {"$not": {}}}, 2),
    ({"a": {"$elemMatch": 1}}, 2),
    ({"a": {"$ne": re.compile("x")}}, 2),
]


@pytest.mark.parametrize(("query", "code"), ERRORS)
def test_invalid_filters_raise_mongods_error_code(query: dict[str, Any], code: int) -> None:
    """Malformed filters fail at compile time with mongod's error code."""
    with pytest.raises(MongoError) as info:
        compile_filter(query)
    assert info.value.code == code


def test_unknown_operator_message_names_the_operator() -> None:
    with pytest.raises(MongoError, match=r"unknown operator: \$foo"):
        compile_filter({"a": {"$foo": 1}})


def test_filter_does_not_mutate_document_or_filter() -> None:
    doc = {"a": [{"b": 1}, {"b": [2, 3]}], "c": {"d": None}}
    query = {"a.b": {"$in": [3]}, "c.d": None, "$or": [{"a": {"$size": 2}}]}
    doc_before, query_before = repr(doc), repr(query)
    assert compile_filter(query)(doc)
    assert repr(doc) == doc_before and repr(query) == query_before


@pytest.fixture
def fake_expressions(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Stands in for expressions.evaluate (another module) so $expr can be tested alone."""
    calls: list[Any] = []

    def evaluate(expr: Any, doc: Mapping[str, Any], variables: Any = None) -> Any:
        calls.append(expr)
        return doc.get(expr[1:], MISSING) if isinstance(expr, str) else expr

    monkeypatch.setattr(matching, "evaluate", evaluate)
    return calls


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        (None, False),
        (MISSING, False),
        (0, False),
        (0.0, False),
        (Decimal128("0"), False),
        (1, True),
        ("", True),
        ([], True),
        ({}, True),
    ],
)
def test_expr_uses_aggregation_truthiness(
    fake_expressions: list[Any], value: Any, expected: bool
) -> None:
    """$expr is true unless the expression is false, null, missing or zero."""
    assert compile_filter({"$expr": "$v"})({"v": value} if value is not MISSING else {}) is expected
    assert fake_expressions == ["$v"]


def test_json_schema_matches_documents_the_schema_accepts() -> None:
    matcher = compile_filter({"$jsonSchema": {"required": ["a"]}})
    assert matcher({"a": 1})
    assert not matcher({"b": 1})


# (filter, expected constraints)
CONSTRAINTS: list[tuple[dict[str, Any], dict[str, list[Any]]]] = [
    ({"_id": 1}, {"_id": [1]}),
    ({"a": 1, "b": {"$gt": 2}}, {"a": [1]}),
    ({"a": {"$eq": 3}}, {"a": [3]}),
    ({"a": {"$in": [1, 2]}}, {"a": [1, 2]}),
    ({"a": {"$in": [1, re.compile("x")]}}, {}),
    ({"a": re.compile("x")}, {}),
    ({"a": None}, {}),
    ({"a": {"$in": [None, 1]}}, {}),
    ({"a.b": "x"}, {"a.b": ["x"]}),
    ({"a": {"x": 1}}, {"a": [{"x": 1}]}),
    ({"$and": [{"a": 1}, {"b": {"$in": [2]}}]}, {"a": [1], "b": [2]}),
    ({"$or": [{"a": 1}, {"a": 2}]}, {}),
    ({"a": {"$in": [1, 2, 3]}, "$and": [{"a": 2}]}, {"a": [2]}),
    ({"a": {"$ne": 1}}, {}),
]


@pytest.mark.parametrize(("query", "expected"), CONSTRAINTS)
def test_equality_constraints_lists_indexable_equalities(
    query: dict[str, Any], expected: dict[str, list[Any]]
) -> None:
    """Only AND-ed plain equalities, $eq and regex-free $in narrow an index lookup."""
    assert equality_constraints(query) == expected


@pytest.mark.parametrize("query", [{"_id": 7}, {"a": 1, "b": {"$gt": 2}}])
def test_simple_filters_evaluate_in_microseconds(query: dict[str, Any]) -> None:
    """The hot paths (an _id lookup, a small conjunction) cost a few microseconds."""
    matcher = compile_filter(query)
    doc = {"_id": 7, "a": 1, "b": 3, "c": "x" * 20, "d": [1, 2, 3]}
    assert matcher(doc)
    per_call = min(timeit.repeat(lambda: matcher(doc), number=2000, repeat=3)) / 2000
    assert per_call < 10e-6
