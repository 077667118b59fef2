"""Sort specifications, checked against the manual's Comparison/Sort Order rules."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from mongosim.errors import MongoError
from mongosim.sorting import compile_sort, top_k


def _order(spec: dict[str, Any], docs: list[dict[str, Any]]) -> list[Any]:
    return [d["_id"] for d in sorted(docs, key=compile_sort(spec))]


# (spec, documents in insertion order, expected _id order)
CASES: list[tuple[dict[str, Any], list[dict[str, Any]], list[Any]]] = [
    ({"a": 1}, [{"_id": 1, "a": 3}, {"_id": 2, "a": 1}, {"_id": 3, "a": 2}], [2, 3, 1]),
    ({"a": -1}, [{"_id": 1, "a": 3}, {"_id": 2, "a": 1}, {"_id": 3, "a": 2}], [1, 3, 2]),
    # numbers of every type compare by value
    ({"a": 1}, [{"_id": 1, "a": 2.5}, {"_id": 2, "a": 1}, {"_id": 3, "a": 2}], [2, 3, 1]),
    # BSON type order: MinKey < null < numbers < strings < objects < arrays ... < MaxKey
    (
        {"a": 1},
        [
            {"_id": "max", "a": MaxKey()},
            {"_id": "str", "a": "x"},
            {"_id": "obj", "a": {"k": 1}},
            {"_id": "num", "a": 5},
            {"_id": "null", "a": None},
            {"_id": "min", "a": MinKey()},
            {"_id": "oid", "a": ObjectId("5f0000000000000000000001")},
            {"_id": "bool", "a": False},
            {"_id": "date", "a": dt.datetime(2020, 1, 1, tzinfo=dt.UTC)},
        ],
        ["min", "null", "num", "str", "obj", "oid", "bool", "date", "max"],
    ),
    # missing sorts as null; ties keep their input order
    ({"a": 1}, [{"_id": 1, "a": 1}, {"_id": 2}, {"_id": 3, "a": None}, {"_id": 4}], [2, 3, 4, 1]),
    ({"a": -1}, [{"_id": 1, "a": 1}, {"_id": 2}, {"_id": 3, "a": None}], [1, 2, 3]),
    # arrays: ascending by smallest element, descending by largest
    ({"a": 1}, [{"_id": 1, "a": [5, 0]}, {"_id": 2, "a": 1}, {"_id": 3, "a": [2, 3]}], [1, 2, 3]),
    ({"a": -1}, [{"_id": 1, "a": [5, 0]}, {"_id": 2, "a": 6}, {"_id": 3, "a": [2, 3]}], [2, 1, 3]),
    # an empty array sorts below null (and missing)
    ({"a": 1}, [{"_id": 1, "a": None}, {"_id": 2, "a": []}, {"_id": 3, "a": 0}], [2, 1, 3]),
    ({"a": -1}, [{"_id": 1, "a": None}, {"_id": 2, "a": []}, {"_id": 3, "a": 0}], [3, 1, 2]),
    ({"a": 1}, [{"_id": 1, "a": MinKey()}, {"_id": 2, "a": []}], [1, 2]),
    # compound keys with mixed directions
    (
        {"a": 1, "b": -1},
        [{"_id": 1, "a": 1, "b": 1}, {"_id": 2, "a": 1, "b": 2}, {"_id": 3, "a": 0, "b": 0}],
        [3, 2, 1],
    ),
    (
        {"a": -1, "b": 1},
        [{"_id": 1, "a": 1, "b": 2}, {"_id": 2, "a": 1, "b": 1}, {"_id": 3, "a": 2, "b": 9}],
        [3, 2, 1],
    ),
    # dotted paths, through sub-documents and arrays of sub-documents
    ({"a.b": 1}, [{"_id": 1, "a": {"b": 2}}, {"_id": 2, "a": {"b": 1}}, {"_id": 3}], [3, 2, 1]),
    ({"a.b": 1}, [{"_id": 1, "a": [{"b": 5}, {"b": 3}]}, {"_id": 2, "a": [{"b": 4}]}], [1, 2]),
    ({"a.b": -1}, [{"_id": 1, "a": [{"b": 5}, {"b": 3}]}, {"_id": 2, "a": [{"b": 4}]}], [1, 2]),
    ({"a.b": 1}, [{"_id": 1, "a": [{"b": 5}, {"c": 3}]}, {"_id": 2, "a": [{"b": 4}]}], [1, 2]),
    ({"a.1": 1}, [{"_id": 1, "a": [9, 2]}, {"_id": 2, "a": [0, 1]}], [2, 1]),
    # strings sort by code point (mongod's binary comparison of UTF-8)
    (
        {"s": 1},
        [{"_id": 1, "s": "b"}, {"_id": 2, "s": "B"}, {"_id": 3, "s": "é"}, {"_id": 4, "s": "a"}],
        [2, 4, 1, 3],
    ),
    # documents compare field by field
    (
        {"d": 1},
        [{"_id": 1, "d": {"x": 2}}, {"_id": 2, "d": {"x": 1, "y": 1}}, {"_id": 3, "d": {"x": 1}}],
        [3, 2, 1],
    ),
    # $meta and $natural contribute nothing to the key
    ({"score": {"$meta": "textScore"}, "a": 1}, [{"_id": 1, "a": 2}, {"_id": 2, "a": 1}], [2, 1]),
    ({"$natural": 1}, [{"_id": 2}, {"_id": 1}], [2, 1]),
    ({"a": 1.0}, [{"_id": 1, "a": 2}, {"_id": 2, "a": 1}], [2, 1]),
]


@pytest.mark.parametrize(("spec", "docs", "expected"), CASES)
def test_sort_orders_documents_as_mongod(
    spec: dict[str, Any], docs: list[dict[str, Any]], expected: list[Any]
) -> None:
    assert _order(spec, docs) == expected


@pytest.mark.parametrize(
    ("spec", "code"),
    [
        ({"a": 2}, 15975),
        ({"a": "asc"}, 15975),
        ({"a": True}, 15975),
        ({"a": {"$foo": 1}}, 17312),
        ({"": 1}, 40352),
        ({"a..b": 1}, 15998),
        ({"$a": 1}, 16410),
    ],
)
def test_invalid_sort_specs_raise(spec: dict[str, Any], code: int) -> None:
    with pytest.raises(MongoError) as info:
        compile_sort(spec)
    assert info.value.code == code


def test_top_k_matches_sorted_prefix_and_is_stable() -> None:
    """top_k (sort + limit) returns what sorted(...)[:k] would, ties in input order."""
    docs = [{"_id": i, "a": (i * 7) % 5} for i in range(50)]
    key = compile_sort({"a": -1})
    assert top_k(docs, key, 7) == sorted(docs, key=key)[:7]


def test_sort_key_does_not_mutate_documents() -> None:
    doc = {"_id": 1, "a": [{"b": [3, 1]}, {"b": []}]}
    before = repr(doc)
    compile_sort({"a.b": 1})(doc)
    assert repr(doc) == before
