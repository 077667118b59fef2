"""The query language through Motor: filters, projections, sort, skip/limit, counts, distinct.

Every expectation here is MongoDB 7.0 behaviour (the manual's query, projection and
comparison/sort-order pages); the suite runs unchanged against a real replica set.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from bson import Binary, Decimal128, Int64, MaxKey, MinKey, ObjectId, Timestamp
from pymongo.errors import OperationFailure

UTC = dt.UTC


async def _ids(coll: Any, query: dict[str, Any]) -> list[Any]:
    """The ``_id`` of every document ``query`` matches, in ``_id`` order."""
    return [doc["_id"] async for doc in coll.find(query, {"_id": 1}).sort("_id", 1)]


# --- comparison operators -------------------------------------------------------------------

NUMBERS_AND_OTHERS: list[dict[str, Any]] = [
    {"_id": 1, "v": 1},
    {"_id": 2, "v": 2.5},
    {"_id": 3, "v": Int64(3)},
    {"_id": 4, "v": Decimal128("4")},
    {"_id": 5, "v": "5"},
    {"_id": 6, "v": None},
    {"_id": 7},
    {"_id": 8, "v": [0, 9]},
]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param(
            {"v": {"$gt": 2}}, [2, 3, 4, 8], id="gt-compares-all-numeric-types-not-strings"
        ),
        pytest.param({"v": {"$lte": 2.5}}, [1, 2, 8], id="lte-matches-any-array-element"),
        pytest.param({"v": {"$lt": 1}}, [8], id="lt-matches-an-array-with-a-smaller-element"),
        pytest.param({"v": {"$gt": "4"}}, [5], id="gt-on-a-string-only-matches-strings"),
        pytest.param({"v": {"$eq": 3}}, [3], id="eq-int-matches-int64"),
        pytest.param({"v": 4.0}, [4], id="double-equals-decimal"),
        pytest.param({"v": {"$ne": 1}}, [2, 3, 4, 5, 6, 7, 8], id="ne-matches-missing-and-null"),
        pytest.param(
            {"v": {"$gte": 2, "$lt": 4}}, [2, 3, 8], id="range-on-an-array-may-use-two-elements"
        ),
    ],
)
async def test_comparison_operators_follow_bson_type_bracketing(
    db: Any, query: dict[str, Any], expected: list[int]
) -> None:
    await db.c.insert_many(NUMBERS_AND_OTHERS)
    assert await _ids(db.c, query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param({"v": {"$in": [1, "5"]}}, [1, 5], id="in-mixed-types"),
        pytest.param(
            {"v": {"$in": [3.0, Decimal128("4.0")]}}, [3, 4], id="in-compares-numerically"
        ),
        pytest.param({"v": {"$in": [None]}}, [6, 7], id="in-null-matches-null-and-missing"),
        pytest.param({"v": {"$in": [9]}}, [8], id="in-matches-an-array-element"),
        pytest.param({"v": {"$in": [re.compile("^5")]}}, [5], id="in-accepts-regexes"),
        pytest.param({"v": {"$in": []}}, [], id="in-empty-matches-nothing"),
        pytest.param(
            {"v": {"$nin": [1, 9]}}, [2, 3, 4, 5, 6, 7], id="nin-excludes-arrays-holding-a-value"
        ),
        pytest.param({"v": {"$nin": [None]}}, [1, 2, 3, 4, 5, 8], id="nin-null-excludes-missing"),
    ],
)
async def test_in_and_nin(db: Any, query: dict[str, Any], expected: list[int]) -> None:
    await db.c.insert_many(NUMBERS_AND_OTHERS)
    assert await _ids(db.c, query) == expected


# --- logical operators ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param({"$or": [{"a": 2}, {"b": 1}]}, [1, 3], id="or"),
        pytest.param({"$and": [{"a": 1}, {"b": {"$gt": 1}}]}, [2], id="and"),
        pytest.param({"$nor": [{"a": 1}, {"b": 2}]}, [4], id="nor-matches-missing-fields"),
        pytest.param({"a": {"$not": {"$gt": 1}}}, [1, 2], id="not"),
        pytest.param({"b": {"$not": {"$gt": 1}}}, [1, 4], id="not-matches-missing-fields"),
        pytest.param(
            {"$or": [{"$and": [{"a": 1}, {"b": 2}]}, {"a": 3}]}, [2, 4], id="nested-and-inside-or"
        ),
    ],
)
async def test_logical_operators(db: Any, query: dict[str, Any], expected: list[int]) -> None:
    await db.c.insert_many(
        [
            {"_id": 1, "a": 1, "b": 1},
            {"_id": 2, "a": 1, "b": 2},
            {"_id": 3, "a": 2, "b": 2},
            {"_id": 4, "a": 3},
        ]
    )
    assert await _ids(db.c, query) == expected


# --- element operators, null vs missing -----------------------------------------------------


async def test_null_matches_null_and_missing_but_exists_and_type_tell_them_apart(db: Any) -> None:
    await db.c.insert_many(
        [{"_id": 1, "a": None}, {"_id": 2}, {"_id": 3, "a": 0}, {"_id": 4, "a": False}]
    )
    assert await _ids(db.c, {"a": None}) == [1, 2]
    assert await _ids(db.c, {"a": {"$eq": None}}) == [1, 2]
    assert await _ids(db.c, {"a": {"$ne": None}}) == [3, 4]
    assert await _ids(db.c, {"a": {"$exists": False}}) == [2]
    assert await _ids(db.c, {"a": {"$exists": True}}) == [1, 3, 4]
    assert await _ids(db.c, {"a": {"$type": "null"}}) == [1]
    assert await _ids(db.c, {"a": {"$type": 10}}) == [1]


async def test_null_equality_matches_an_array_holding_null(db: Any) -> None:
    await db.c.insert_many([{"_id": 1, "a": [1, None]}, {"_id": 2, "a": [1, 2]}])
    assert await _ids(db.c, {"a": None}) == [1]
    assert await _ids(db.c, {"a": {"$ne": None}}) == [2]


TYPED: list[dict[str, Any]] = [
    {"_id": 1, "v": 1},
    {"_id": 2, "v": Int64(1)},
    {"_id": 3, "v": 1.5},
    {"_id": 4, "v": Decimal128("1")},
    {"_id": 5, "v": "s"},
    {"_id": 6, "v": True},
    {"_id": 7, "v": [1, "x"]},
    {"_id": 8, "v": {"k": 1}},
    {"_id": 9, "v": dt.datetime(2026, 1, 1, tzinfo=UTC)},
    {"_id": 10, "v": ObjectId("5f0000000000000000000000")},
]


@pytest.mark.parametrize(
    ("type_", "expected"),
    [
        pytest.param("int", [1, 7], id="int-also-matches-an-array-element"),
        pytest.param("long", [2], id="long"),
        pytest.param("double", [3], id="double"),
        pytest.param("decimal", [4], id="decimal"),
        pytest.param("number", [1, 2, 3, 4, 7], id="number-alias"),
        pytest.param("string", [5, 7], id="string"),
        pytest.param(2, [5, 7], id="numeric-code-2-is-string"),
        pytest.param("bool", [6], id="bool"),
        pytest.param("array", [7], id="array"),
        pytest.param("object", [8], id="object"),
        pytest.param("date", [9], id="date"),
        pytest.param("objectId", [10], id="objectId"),
        pytest.param(["bool", "date"], [6, 9], id="a-list-of-types"),
    ],
)
async def test_type_selects_by_bson_type(db: Any, type_: Any, expected: list[int]) -> None:
    await db.c.insert_many(TYPED)
    assert await _ids(db.c, {"v": {"$type": type_}}) == expected


# --- $regex ---------------------------------------------------------------------------------

NAMES: list[dict[str, Any]] = [
    {"_id": 1, "name": "Ada"},
    {"_id": 2, "name": "adam"},
    {"_id": 3, "name": "bob"},
    {"_id": 4, "name": 5},
    {"_id": 5, "name": ["x", "ada b"]},
    {"_id": 6, "name": "line1\nada"},
]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param(
            {"name": {"$regex": "^ad"}},
            [2, 5],
            id="regex-is-case-sensitive-and-sees-array-elements",
        ),
        pytest.param({"name": {"$regex": "^ad", "$options": "i"}}, [1, 2, 5], id="option-i"),
        pytest.param(
            {"name": {"$regex": "^ada", "$options": "m"}}, [2, 5, 6], id="option-m-anchors-lines"
        ),
        pytest.param({"name": re.compile("b$")}, [3, 5], id="a-bson-regex-value"),
        pytest.param(
            {"name": re.compile("^A", re.IGNORECASE)}, [1, 2, 5], id="a-bson-regex-with-flags"
        ),
        pytest.param(
            {"name": {"$not": re.compile("^a", re.IGNORECASE)}},
            [3, 4, 6],
            id="not-regex-matches-non-strings",
        ),
    ],
)
async def test_regex_matches_strings_only(
    db: Any, query: dict[str, Any], expected: list[int]
) -> None:
    await db.c.insert_many(NAMES)
    assert await _ids(db.c, query) == expected


# --- array operators ------------------------------------------------------------------------


async def test_elem_match_needs_one_element_to_satisfy_every_condition(db: Any) -> None:
    await db.c.insert_many(
        [
            {"_id": 1, "results": [82, 85, 88]},
            {"_id": 2, "results": [75, 88, 89]},
            {"_id": 3, "results": [70, 90]},
        ]
    )
    assert await _ids(db.c, {"results": {"$elemMatch": {"$gte": 80, "$lt": 85}}}) == [1]
    assert await _ids(db.c, {"results": {"$gte": 80, "$lt": 85}}) == [1, 2, 3]


async def test_elem_match_on_subdocuments_differs_from_dotted_conditions(db: Any) -> None:
    await db.c.insert_many(
        [
            {"_id": 1, "items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 10}]},
            {"_id": 2, "items": [{"sku": "a", "qty": 10}]},
        ]
    )
    assert await _ids(db.c, {"items": {"$elemMatch": {"sku": "a", "qty": {"$gt": 5}}}}) == [2]
    assert await _ids(db.c, {"items.sku": "a", "items.qty": {"$gt": 5}}) == [1, 2]


TAGS: list[dict[str, Any]] = [
    {"_id": 1, "tags": ["a", "b", "c"]},
    {"_id": 2, "tags": ["b", "a"]},
    {"_id": 3, "tags": ["a"]},
    {"_id": 4, "tags": "a"},
    {"_id": 5},
]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param({"tags": {"$size": 2}}, [2], id="size"),
        pytest.param({"tags": {"$size": 1}}, [3], id="size-never-matches-a-scalar"),
        pytest.param({"tags": {"$size": 0}}, [], id="size-never-matches-missing"),
        pytest.param({"tags": {"$all": ["a", "b"]}}, [1, 2], id="all-ignores-order"),
        pytest.param(
            {"tags": {"$all": ["a"]}}, [1, 2, 3, 4], id="all-of-one-value-matches-a-scalar"
        ),
        pytest.param({"tags": "a"}, [1, 2, 3, 4], id="equality-matches-an-element"),
        pytest.param({"tags": ["b", "a"]}, [2], id="array-equality-is-exact-and-ordered"),
        pytest.param({"tags": ["a", "b"]}, [], id="array-equality-in-another-order-fails"),
    ],
)
async def test_size_all_and_array_equality(
    db: Any, query: dict[str, Any], expected: list[int]
) -> None:
    await db.c.insert_many(TAGS)
    assert await _ids(db.c, query) == expected


async def test_all_with_elem_match_clauses(db: Any) -> None:
    await db.c.insert_many(
        [
            {"_id": 1, "items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 10}]},
            {"_id": 2, "items": [{"sku": "a", "qty": 10}]},
            {"_id": 3, "items": [{"sku": "b", "qty": 1}]},
        ]
    )
    query = {"items": {"$all": [{"$elemMatch": {"qty": {"$gt": 5}}}, {"$elemMatch": {"sku": "a"}}]}}
    assert await _ids(db.c, query) == [1, 2]


# --- $expr ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param({"$expr": {"$gt": ["$spent", "$budget"]}}, [1], id="compares-two-fields"),
        pytest.param({"$expr": {"$eq": ["$spent", "$budget"]}}, [3], id="eq"),
        pytest.param(
            {"$expr": {"$lt": [{"$multiply": ["$spent", 2]}, "$budget"]}}, [2], id="computed-values"
        ),
        pytest.param(
            {"budget": {"$gte": 10}, "$expr": {"$lte": ["$spent", "$budget"]}},
            [2],
            id="combined-with-ordinary-conditions",
        ),
    ],
)
async def test_expr_evaluates_aggregation_expressions(
    db: Any, query: dict[str, Any], expected: list[int]
) -> None:
    await db.c.insert_many(
        [
            {"_id": 1, "budget": 10, "spent": 20},
            {"_id": 2, "budget": 50, "spent": 5},
            {"_id": 3, "budget": 5, "spent": 5},
        ]
    )
    assert await _ids(db.c, query) == expected


# --- dotted paths ---------------------------------------------------------------------------

ORDERS: list[dict[str, Any]] = [
    {
        "_id": 1,
        "items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}],
        "meta": {"owner": {"name": "ada"}},
    },
    {"_id": 2, "items": [{"sku": "c", "qty": 5}], "meta": {"owner": {"name": "bob"}}},
    {"_id": 3, "items": {"sku": "b", "qty": 9}},
]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param(
            {"items.sku": "b"}, [1, 3], id="into-an-array-of-subdocuments-or-a-subdocument"
        ),
        pytest.param({"items.qty": {"$gt": 4}}, [2, 3], id="comparison-through-an-array"),
        pytest.param({"items.0.sku": "a"}, [1], id="numeric-index"),
        pytest.param({"items.1.qty": {"$gte": 2}}, [1], id="numeric-index-comparison"),
        pytest.param({"meta.owner.name": "bob"}, [2], id="nested-subdocuments"),
        pytest.param({"items.sku": {"$exists": True}}, [1, 2, 3], id="exists-through-an-array"),
        pytest.param(
            {"meta.owner": {"$exists": False}}, [3], id="exists-false-on-a-missing-parent"
        ),
        pytest.param({"items": {"sku": "a", "qty": 1}}, [1], id="whole-element-equality"),
        pytest.param(
            {"items": {"qty": 1, "sku": "a"}}, [], id="subdocument-equality-is-field-ordered"
        ),
    ],
)
async def test_dotted_paths(db: Any, query: dict[str, Any], expected: list[int]) -> None:
    await db.c.insert_many(ORDERS)
    assert await _ids(db.c, query) == expected


# --- projections ----------------------------------------------------------------------------

PERSON: dict[str, Any] = {
    "_id": 1,
    "name": "ada",
    "age": 36,
    "address": {"city": "London", "zip": "N1"},
    "scores": [10, 20, 30, 40],
    "items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 7}, {"sku": "c", "qty": 9}],
}


@pytest.mark.parametrize(
    ("projection", "expected"),
    [
        pytest.param({"name": 1}, {"_id": 1, "name": "ada"}, id="inclusion-keeps-id"),
        pytest.param({"name": 1, "_id": 0}, {"name": "ada"}, id="inclusion-without-id"),
        pytest.param(
            {"name": 1, "nope": 1}, {"_id": 1, "name": "ada"}, id="inclusion-of-a-missing-field"
        ),
        pytest.param(
            {"address.city": 1}, {"_id": 1, "address": {"city": "London"}}, id="dotted-inclusion"
        ),
        pytest.param(
            {"items.sku": 1, "_id": 0},
            {"items": [{"sku": "a"}, {"sku": "b"}, {"sku": "c"}]},
            id="dotted-inclusion-through-an-array",
        ),
        pytest.param(
            {"address": 0, "scores": 0, "items": 0},
            {"_id": 1, "name": "ada", "age": 36},
            id="exclusion",
        ),
        pytest.param(
            {"address.zip": 0, "scores": 0, "items": 0},
            {"_id": 1, "name": "ada", "age": 36, "address": {"city": "London"}},
            id="dotted-exclusion",
        ),
        pytest.param(
            {"_id": 0, "address": 0, "items": 0, "scores": 0},
            {"name": "ada", "age": 36},
            id="exclusion-of-id",
        ),
        pytest.param(
            {"scores": {"$slice": 2}, "items": 0},
            {
                "_id": 1,
                "name": "ada",
                "age": 36,
                "address": {"city": "London", "zip": "N1"},
                "scores": [10, 20],
            },
            id="slice-first-n-keeps-the-other-fields",
        ),
        pytest.param(
            {"name": 1, "scores": {"$slice": -1}},
            {"_id": 1, "name": "ada", "scores": [40]},
            id="slice-last-n-with-inclusion",
        ),
        pytest.param(
            {"_id": 0, "scores": {"$slice": [1, 2]}, "name": 1},
            {"name": "ada", "scores": [20, 30]},
            id="slice-skip-and-limit",
        ),
        pytest.param(
            {"items": {"$elemMatch": {"qty": {"$gt": 5}}}},
            {"_id": 1, "items": [{"sku": "b", "qty": 7}]},
            id="elem-match-returns-the-first-matching-element",
        ),
        pytest.param(
            {"items": {"$elemMatch": {"qty": {"$gt": 100}}}},
            {"_id": 1},
            id="elem-match-without-a-match-omits-the-field",
        ),
    ],
)
async def test_projection(db: Any, projection: dict[str, Any], expected: dict[str, Any]) -> None:
    await db.c.insert_one(PERSON)
    assert await db.c.find_one({"_id": 1}, projection) == expected


async def test_positional_projection_returns_the_element_the_query_matched(db: Any) -> None:
    await db.c.insert_one(PERSON)
    assert await db.c.find_one({"items.sku": "c"}, {"items.$": 1}) == {
        "_id": 1,
        "items": [{"sku": "c", "qty": 9}],
    }
    assert await db.c.find_one({"scores": {"$gte": 25}}, {"scores.$": 1, "_id": 0}) == {
        "scores": [30]
    }


async def test_projection_keeps_the_documents_field_order(db: Any) -> None:
    await db.c.insert_one(PERSON)
    doc = await db.c.find_one({}, {"scores": 1, "name": 1, "age": 1})
    assert list(doc) == ["_id", "name", "age", "scores"]


async def test_mixing_inclusion_and_exclusion_is_refused(db: Any) -> None:
    await db.c.insert_one(PERSON)
    with pytest.raises(OperationFailure) as info:
        await db.c.find_one({}, {"name": 1, "age": 0})
    assert info.value.code == 31254


# --- sort, skip, limit ----------------------------------------------------------------------


async def test_sort_orders_mixed_types_by_the_bson_comparison_order(db: Any) -> None:
    await db.c.insert_many(
        [
            {"_id": 1},
            {"_id": 2, "v": None},
            {"_id": 3, "v": 10},
            {"_id": 4, "v": 2.5},
            {"_id": 5, "v": "b"},
            {"_id": 6, "v": "a"},
            {"_id": 7, "v": {"x": 1}},
            {"_id": 8, "v": ObjectId("5f0000000000000000000000")},
            {"_id": 9, "v": True},
            {"_id": 10, "v": False},
            {"_id": 11, "v": dt.datetime(2026, 1, 1, tzinfo=UTC)},
            {"_id": 12, "v": Decimal128("3")},
            {"_id": 13, "v": MinKey()},
            {"_id": 14, "v": MaxKey()},
            {"_id": 15, "v": Binary(b"\x01")},
            {"_id": 16, "v": Timestamp(5, 1)},
        ]
    )
    ascending = [d["_id"] async for d in db.c.find().sort([("v", 1), ("_id", 1)])]
    # MinKey, null/missing (equal), numbers, strings, objects, binData, ObjectId, bool, date,
    # timestamp, MaxKey.
    assert ascending == [13, 1, 2, 4, 12, 3, 6, 5, 7, 15, 8, 10, 9, 11, 16, 14]
    descending = [d["_id"] async for d in db.c.find().sort([("v", -1), ("_id", 1)])]
    assert descending == [14, 16, 11, 9, 10, 8, 15, 7, 5, 6, 3, 12, 4, 1, 2, 13]


async def test_sort_on_an_array_uses_its_smallest_element_ascending_and_largest_descending(
    db: Any,
) -> None:
    await db.c.insert_many([{"_id": 1, "a": [1, 5]}, {"_id": 2, "a": [2, 3]}, {"_id": 3, "a": 4}])
    assert [d["_id"] async for d in db.c.find().sort("a", 1)] == [1, 2, 3]
    assert [d["_id"] async for d in db.c.find().sort("a", -1)] == [1, 3, 2]


async def test_sort_on_a_dotted_path_into_an_array_of_subdocuments(db: Any) -> None:
    await db.c.insert_many(
        [
            {"_id": 1, "items": [{"q": 5}, {"q": 1}]},
            {"_id": 2, "items": [{"q": 3}]},
            {"_id": 3, "items": [{"q": 2}, {"q": 6}]},
        ]
    )
    assert [d["_id"] async for d in db.c.find().sort("items.q", 1)] == [1, 3, 2]
    assert [d["_id"] async for d in db.c.find().sort("items.q", -1)] == [3, 1, 2]


async def test_skip_and_limit_apply_after_the_sort(db: Any) -> None:
    await db.c.insert_many([{"_id": i} for i in range(10)])
    page = db.c.find().sort("_id", -1).skip(2).limit(3)
    assert [d["_id"] async for d in page] == [7, 6, 5]
    assert [d["_id"] async for d in db.c.find().sort("_id", 1).skip(8).limit(5)] == [8, 9]
    assert len([d async for d in db.c.find().limit(0)]) == 10
    assert [d async for d in db.c.find().skip(20)] == []


# --- count_documents and distinct -----------------------------------------------------------


async def test_count_documents_honours_the_filter_skip_and_limit(db: Any) -> None:
    await db.c.insert_many([{"_id": i, "even": i % 2 == 0} for i in range(10)])
    assert await db.c.count_documents({}) == 10
    assert await db.c.count_documents({"even": True}) == 5
    assert await db.c.count_documents({}, skip=8) == 2
    assert await db.c.count_documents({}, limit=3) == 3
    assert await db.c.count_documents({"_id": {"$gte": 5}}, skip=1, limit=10) == 4
    assert await db.c.count_documents({}, skip=20) == 0
    assert await db.missing.count_documents({}) == 0


async def test_distinct_with_a_query_unwinds_arrays_and_skips_missing_values(db: Any) -> None:
    await db.c.insert_many(
        [
            {"s": "a", "n": 1},
            {"s": "b", "n": 2},
            {"s": "c", "n": 3},
            {"s": "b", "n": 4},
            {"s": ["x", "c"], "n": 5},
            {"n": 6},
        ]
    )
    assert sorted(await db.c.distinct("s", {"n": {"$gte": 2}})) == ["b", "c", "x"]
    assert sorted(await db.c.distinct("s", {"n": {"$lt": 3}})) == ["a", "b"]
    assert await db.c.distinct("s", {"n": 6}) == []
    assert await db.missing.distinct("s") == []


async def test_distinct_on_a_dotted_path_into_an_array_of_subdocuments(db: Any) -> None:
    await db.c.insert_many(
        [
            {"k": 1, "items": [{"sku": "a"}, {"sku": "b"}]},
            {"k": 2, "items": [{"sku": "b"}, {"sku": "c"}]},
            {"k": 3, "items": [{"sku": "d"}]},
        ]
    )
    assert sorted(await db.c.distinct("items.sku", {"k": {"$lte": 2}})) == ["a", "b", "c"]


async def test_a_snapshot_find_names_its_point_in_time_and_later_batches_ignore_newer_writes(
    db: Any,
) -> None:
    """readConcern "snapshot" outside a transaction: the cursor reads one point in time."""
    await db.items.insert_many([{"_id": i, "v": 0} for i in range(10)])
    # A cursor belongs to the session that opened it, so getMore must use the same one.
    session = await db.client.start_session()
    first = await db.command(
        {"find": "items", "batchSize": 3, "sort": {"_id": 1}, "readConcern": {"level": "snapshot"}},
        session=session,
    )
    cursor = first["cursor"]
    assert isinstance(cursor["atClusterTime"], Timestamp)
    await db.items.update_many({}, {"$set": {"v": 1}})
    await db.items.insert_one({"_id": 99, "v": 1})
    seen = list(cursor["firstBatch"])
    cursor_id = cursor["id"]
    while cursor_id:
        more = await db.command(
            {"getMore": cursor_id, "collection": "items", "batchSize": 3}, session=session
        )
        seen += more["cursor"]["nextBatch"]
        cursor_id = more["cursor"]["id"]
    await session.end_session()
    assert [d["_id"] for d in seen] == list(range(10))
    assert {d["v"] for d in seen} == {0}


async def test_command_level_let_variables_reach_filters_pipelines_and_updates(db: Any) -> None:
    """let (5.0+) on find, aggregate, update and delete: $$name in $expr and pipelines."""
    await db.c.insert_many([{"_id": i, "name": f"n{i}"} for i in range(1, 6)])
    found = await db.c.find({"$expr": {"$eq": ["$_id", "$$id"]}}, let={"id": 2}).to_list()
    assert [d["_id"] for d in found] == [2]
    many = db.c.find({"$expr": {"$lt": ["$_id", "$$top"]}}, let={"top": 5}, batch_size=1)
    assert len(await many.to_list()) == 4  # the getMores keep the find's variables
    pipeline = [{"$match": {"$expr": {"$eq": ["$_id", "$$id"]}}}, {"$project": {"x": "$$x"}}]
    assert await db.c.aggregate(pipeline, let={"id": 3, "x": "y"}).to_list() == [
        {"_id": 3, "x": "y"}
    ]
    await db.c.update_one(
        {"$expr": {"$eq": ["$name", "$$name"]}},
        [{"$set": {"x": "$$x"}}],
        let={"name": "n4", "x": 1},
    )
    assert (await db.c.find_one({"_id": 4}))["x"] == 1
    deleted = await db.c.delete_many({"$expr": {"$eq": ["$name", "$$name"]}}, let={"name": "n5"})
    assert deleted.deleted_count == 1


async def test_collation_strength_2_compares_strings_without_case(db: Any) -> None:
    """strength 1 and 2 ignore case (1 accents too); 'simple' and 3 compare exactly."""
    await db.c.insert_many(
        [{"_id": 1, "x": "ping"}, {"_id": 2, "x": "PING"}, {"_id": 3, "x": "pong"}]
    )
    await db.c.create_index("x")
    ci = {"locale": "en_US", "strength": 2}
    assert len(await db.c.find({"x": "Ping"}, collation=ci).to_list()) == 2
    assert await db.c.count_documents({"x": "Ping"}, collation=ci) == 2
    assert await db.c.count_documents({"x": "Ping"}, collation={"locale": "simple"}) == 0
    result = await db.c.update_many({"x": "PiNg"}, {"$set": {"hit": True}}, collation=ci)
    assert result.modified_count == 2
    deleted = await db.c.delete_one({"x": "PONG"}, collation={"locale": "fr", "strength": 1})
    assert deleted.deleted_count == 1
