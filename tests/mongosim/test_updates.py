"""Update operators through Motor, with mongod's results and error codes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from bson import Decimal128, Int64, Timestamp
from pymongo import ReturnDocument
from pymongo.errors import OperationFailure, WriteError


async def _after(db: Any, doc: dict[str, Any], update: Any, **kwargs: Any) -> dict[str, Any]:
    await db.c.insert_one({"_id": 1, **doc})
    await db.c.update_one({"_id": 1}, update, **kwargs)
    found: dict[str, Any] = await db.c.find_one({"_id": 1}, {"_id": 0})
    return found


@pytest.mark.parametrize(
    ("doc", "update", "expected"),
    [
        ({"a": {"b": 1}}, {"$set": {"a.c": 2}}, {"a": {"b": 1, "c": 2}}),
        ({"a": 1, "b": 2}, {"$unset": {"a": ""}}, {"b": 2}),
        ({"n": 2**31 - 1}, {"$inc": {"n": 1}}, {"n": Int64(2**31)}),
        ({"n": Decimal128("1.1")}, {"$inc": {"n": 1}}, {"n": Decimal128("2.1")}),
        ({"n": 3}, {"$mul": {"n": 1.5}}, {"n": 4.5}),
        ({"n": 5}, {"$min": {"n": 3}}, {"n": 3}),
        ({"n": 5}, {"$max": {"n": 3}}, {"n": 5}),
        ({"a": 1}, {"$rename": {"a": "b"}}, {"b": 1}),
        ({"xs": [1, 2]}, {"$push": {"xs": 3}}, {"xs": [1, 2, 3]}),
        (
            {"xs": [5, 1]},
            {"$push": {"xs": {"$each": [3, 9], "$sort": 1, "$slice": 3}}},
            {"xs": [1, 3, 5]},
        ),
        ({"xs": [2]}, {"$push": {"xs": {"$each": [1], "$position": 0}}}, {"xs": [1, 2]}),
        ({"xs": [1, 2]}, {"$addToSet": {"xs": {"$each": [2, 3]}}}, {"xs": [1, 2, 3]}),
        ({"xs": [1, 2, 3]}, {"$pop": {"xs": -1}}, {"xs": [2, 3]}),
        ({"xs": [1, 5, 9]}, {"$pull": {"xs": {"$gte": 5}}}, {"xs": [1]}),
        ({"xs": [{"k": 1}, {"k": 2}]}, {"$pull": {"xs": {"k": 2}}}, {"xs": [{"k": 1}]}),
        ({"xs": [1, 2, 1]}, {"$pullAll": {"xs": [1]}}, {"xs": [2]}),
        ({"xs": [1, 2]}, {"$inc": {"xs.$[]": 10}}, {"xs": [11, 12]}),
        (
            {"xs": [{"v": 1}, {"v": 2}]},
            [{"$set": {"n": {"$size": "$xs"}}}],
            {"xs": [{"v": 1}, {"v": 2}], "n": 2},
        ),
    ],
)
async def test_operator_results_match_mongod(
    db: Any, doc: dict[str, Any], update: Any, expected: dict[str, Any]
) -> None:
    assert await _after(db, doc, update) == expected


async def test_the_positional_operator_updates_the_first_matching_element(db: Any) -> None:
    await db.c.insert_one({"_id": 1, "items": [{"sku": "a", "n": 1}, {"sku": "b", "n": 1}]})
    await db.c.update_one({"_id": 1, "items.sku": "b"}, {"$inc": {"items.$.n": 5}})
    assert (await db.c.find_one({"_id": 1}))["items"] == [
        {"sku": "a", "n": 1},
        {"sku": "b", "n": 6},
    ]


@pytest.mark.parametrize(
    ("update", "code"),
    [
        ({"$inc": {"s": 1}}, 14),
        ({"$set": {"a": 1}, "$inc": {"a": 1}}, 40),
        ({"$set": {}}, 9),
        ({"$set": {"_id": 2}}, 66),
        ({"$bogus": {"a": 1}}, 9),
    ],
)
async def test_invalid_updates_fail_with_mongods_codes(
    db: Any, update: dict[str, Any], code: int
) -> None:
    await db.c.insert_one({"_id": 1, "s": "text", "a": 0})
    with pytest.raises((WriteError, OperationFailure)) as info:
        await db.c.update_one({"_id": 1}, update)
    assert info.value.code == code


# --- $set / $unset ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "update", "expected"),
    [
        pytest.param({}, {"$set": {"a.b.c": 1}}, {"a": {"b": {"c": 1}}}, id="set-creates-parents"),
        pytest.param(
            {"xs": [1, 2, 3]}, {"$set": {"xs.1": 9}}, {"xs": [1, 9, 3]}, id="set-an-array-index"
        ),
        pytest.param(
            {"xs": [1]},
            {"$set": {"xs.3": 9}},
            {"xs": [1, None, None, 9]},
            id="set-past-the-end-pads-with-nulls",
        ),
        pytest.param(
            {"items": [{"q": 1}, {"q": 2}]},
            {"$set": {"items.1.q": 5}},
            {"items": [{"q": 1}, {"q": 5}]},
            id="set-a-field-of-an-array-element",
        ),
        pytest.param(
            {"a": {"b": 1, "c": 2}}, {"$unset": {"a.b": ""}}, {"a": {"c": 2}}, id="unset-dotted"
        ),
        pytest.param(
            {"xs": [1, 2, 3]},
            {"$unset": {"xs.1": ""}},
            {"xs": [1, None, 3]},
            id="unset-an-array-element-leaves-null",
        ),
    ],
)
async def test_set_and_unset(
    db: Any, doc: dict[str, Any], update: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert await _after(db, doc, update) == expected


async def test_an_update_that_changes_nothing_is_not_counted_as_modified(db: Any) -> None:
    await db.c.insert_one({"_id": 1, "a": 1, "xs": [1, 2], "n": 5})
    for update in (
        {"$set": {"a": 1}},
        {"$unset": {"missing": ""}},
        {"$addToSet": {"xs": 2}},
        {"$pull": {"xs": 9}},
        {"$max": {"n": 3}},
        {"$rename": {"missing": "other"}},
        [{"$set": {"a": 1}}],
    ):
        result = await db.c.update_one({"_id": 1}, update)
        assert (result.matched_count, result.modified_count) == (1, 0), update
    assert await db.c.find_one({"_id": 1}) == {"_id": 1, "a": 1, "xs": [1, 2], "n": 5}


# --- $inc / $mul numeric types -------------------------------------------------------------

_ABSENT = object()


def _same_number(actual: Any, expected: Any) -> bool:
    if type(actual) is not type(expected):
        return False
    if isinstance(expected, Decimal128):
        return bool(actual.to_decimal() == expected.to_decimal())
    return bool(actual == expected)


@pytest.mark.parametrize(
    ("start", "update", "expected"),
    [
        pytest.param(2**31 - 1, {"$inc": {"n": 1}}, Int64(2**31), id="int-overflow-becomes-long"),
        pytest.param(1, {"$inc": {"n": Int64(1)}}, Int64(2), id="int-plus-long-is-long"),
        pytest.param(Int64(5), {"$inc": {"n": 1}}, Int64(6), id="long-plus-int-stays-long"),
        pytest.param(1, {"$inc": {"n": 0.5}}, 1.5, id="int-plus-double-is-double"),
        pytest.param(5, {"$inc": {"n": -7}}, -2, id="negative-increment-stays-int"),
        pytest.param(
            1, {"$inc": {"n": Decimal128("0.5")}}, Decimal128("1.5"), id="int-plus-decimal"
        ),
        pytest.param(
            Decimal128("1.1"), {"$inc": {"n": 1}}, Decimal128("2.1"), id="decimal-plus-int"
        ),
        pytest.param(
            _ABSENT, {"$inc": {"n": Int64(5)}}, Int64(5), id="inc-creates-a-missing-field"
        ),
        pytest.param(3, {"$mul": {"n": 4}}, 12, id="mul-int-stays-int"),
        pytest.param(2**30, {"$mul": {"n": 4}}, Int64(2**32), id="mul-int-overflow-becomes-long"),
        pytest.param(3, {"$mul": {"n": 1.5}}, 4.5, id="mul-int-by-double-is-double"),
        pytest.param(
            Decimal128("1.5"), {"$mul": {"n": 2}}, Decimal128("3.0"), id="mul-decimal-stays-decimal"
        ),
        pytest.param(_ABSENT, {"$mul": {"n": 5}}, 0, id="mul-creates-an-int-zero"),
        pytest.param(_ABSENT, {"$mul": {"n": Int64(5)}}, Int64(0), id="mul-creates-a-long-zero"),
        pytest.param(_ABSENT, {"$mul": {"n": 2.5}}, 0.0, id="mul-creates-a-double-zero"),
    ],
)
async def test_inc_and_mul_promote_numeric_types_as_mongod(
    db: Any, start: Any, update: dict[str, Any], expected: Any
) -> None:
    doc = {} if start is _ABSENT else {"n": start}
    after = await _after(db, doc, update)
    assert _same_number(after["n"], expected), (after["n"], expected)


async def test_find_one_and_update_increments_and_returns_the_new_document(db: Any) -> None:
    await db.c.insert_many([{"_id": 1, "n": 1, "tags": []}, {"_id": 2, "n": 5, "tags": []}])
    after = await db.c.find_one_and_update(
        {"n": {"$gt": 0}},
        {"$inc": {"n": 10}, "$push": {"tags": "x"}},
        sort=[("n", -1)],
        projection={"n": 1, "tags": 1},
        return_document=ReturnDocument.AFTER,
    )
    assert after == {"_id": 2, "n": 15, "tags": ["x"]}
    assert await db.c.find_one({"_id": 1}) == {"_id": 1, "n": 1, "tags": []}
    assert await db.c.find_one_and_update({"_id": 9}, {"$inc": {"n": 1}}) is None


# --- $min / $max / $rename / $currentDate --------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "update", "expected"),
    [
        pytest.param({}, {"$min": {"n": 3}}, {"n": 3}, id="min-creates-a-missing-field"),
        pytest.param({"n": 5}, {"$min": {"n": None}}, {"n": None}, id="min-null-is-lowest"),
        pytest.param(
            {"n": 5},
            {"$min": {"n": Decimal128("4.5")}},
            {"n": Decimal128("4.5")},
            id="min-across-types",
        ),
        pytest.param(
            {"at": dt.datetime(2026, 1, 1)},
            {"$max": {"at": dt.datetime(2026, 2, 1)}},
            {"at": dt.datetime(2026, 2, 1)},
            id="max-of-dates",
        ),
        pytest.param({"n": 5}, {"$max": {"n": "a"}}, {"n": "a"}, id="max-strings-above-numbers"),
        pytest.param(
            {"a": {"b": 1, "x": 2}},
            {"$rename": {"a.b": "c"}},
            {"a": {"x": 2}, "c": 1},
            id="rename-out-of-a-subdocument",
        ),
        pytest.param(
            {"a": 1, "b": 2}, {"$rename": {"a": "b"}}, {"b": 1}, id="rename-overwrites-the-target"
        ),
        pytest.param(
            {"a": 1}, {"$rename": {"a": "x.y"}}, {"x": {"y": 1}}, id="rename-into-a-new-subdocument"
        ),
    ],
)
async def test_min_max_and_rename(
    db: Any, doc: dict[str, Any], update: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert await _after(db, doc, update) == expected


async def test_current_date_sets_a_date_or_a_timestamp(db: Any) -> None:
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=60)
    after = await _after(
        db, {}, {"$currentDate": {"at": True, "ts": {"$type": "timestamp"}, "d": {"$type": "date"}}}
    )
    assert isinstance(after["at"], dt.datetime) and isinstance(after["d"], dt.datetime)
    assert after["at"] > before
    assert isinstance(after["ts"], Timestamp) and after["ts"].time > 0


# --- array operators -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "update", "expected"),
    [
        pytest.param({}, {"$push": {"xs": 1}}, {"xs": [1]}, id="push-creates-the-array"),
        pytest.param(
            {"xs": [1]},
            {"$push": {"xs": [2, 3]}},
            {"xs": [1, [2, 3]]},
            id="push-an-array-as-one-element",
        ),
        pytest.param(
            {"scores": [{"s": 5}, {"s": 9}]},
            {"$push": {"scores": {"$each": [{"s": 7}], "$sort": {"s": -1}, "$slice": 2}}},
            {"scores": [{"s": 9}, {"s": 7}]},
            id="push-sort-by-a-field-then-slice",
        ),
        pytest.param(
            {"xs": [1, 2, 3]},
            {"$push": {"xs": {"$each": [4, 5], "$slice": -3}}},
            {"xs": [3, 4, 5]},
            id="push-negative-slice-keeps-the-last",
        ),
        pytest.param(
            {"xs": [3, 1, 2]},
            {"$push": {"xs": {"$each": [], "$sort": -1}}},
            {"xs": [3, 2, 1]},
            id="push-empty-each-just-sorts",
        ),
        pytest.param(
            {"xs": [1, 2, 3]},
            {"$push": {"xs": {"$each": ["a", "b"], "$position": 1}}},
            {"xs": [1, "a", "b", 2, 3]},
            id="push-at-a-position",
        ),
        pytest.param(
            {"xs": [{"a": 1, "b": 2}]},
            {"$addToSet": {"xs": {"b": 2, "a": 1}}},
            {"xs": [{"a": 1, "b": 2}, {"b": 2, "a": 1}]},
            id="add-to-set-compares-subdocuments-field-by-field-in-order",
        ),
        pytest.param(
            {"xs": [1]},
            {"$addToSet": {"xs": [2, 3]}},
            {"xs": [1, [2, 3]]},
            id="add-to-set-an-array",
        ),
        pytest.param(
            {},
            {"$addToSet": {"xs": {"$each": [1, 1, 2]}}},
            {"xs": [1, 2]},
            id="add-to-set-each-dedups",
        ),
        pytest.param({"xs": [1, 2, 3]}, {"$pop": {"xs": 1}}, {"xs": [1, 2]}, id="pop-last"),
        pytest.param(
            {"xs": [1, 2, 3, 2]}, {"$pull": {"xs": {"$in": [2, 3]}}}, {"xs": [1]}, id="pull-in"
        ),
        pytest.param({"xs": [1, 2, 1]}, {"$pull": {"xs": 1}}, {"xs": [2]}, id="pull-a-value"),
        pytest.param(
            {"items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 7}, {"sku": "c", "qty": 2}]},
            {"$pull": {"items": {"qty": {"$lt": 5}}}},
            {"items": [{"sku": "b", "qty": 7}]},
            id="pull-subdocuments-by-condition",
        ),
        pytest.param(
            {"items": [{"sku": "a", "done": False}, {"sku": "b"}]},
            {"$set": {"items.$[].done": True}},
            {"items": [{"sku": "a", "done": True}, {"sku": "b", "done": True}]},
            id="all-positional-sets-a-field-in-every-element",
        ),
    ],
)
async def test_array_operators(
    db: Any, doc: dict[str, Any], update: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert await _after(db, doc, update) == expected


async def test_positional_update_many_changes_the_first_match_in_each_document(db: Any) -> None:
    await db.c.insert_many([{"_id": 1, "scores": [80, 85, 80]}, {"_id": 2, "scores": [85, 80]}])
    result = await db.c.update_many({"scores": 80}, {"$set": {"scores.$": 82}})
    assert (result.matched_count, result.modified_count) == (2, 2)
    assert [d["scores"] async for d in db.c.find().sort("_id", 1)] == [[82, 85, 80], [85, 82]]


async def test_positional_with_elem_match_picks_the_element_matching_every_condition(
    db: Any,
) -> None:
    await db.c.insert_one(
        {
            "_id": 1,
            "items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 1}, {"sku": "b", "qty": 9}],
        }
    )
    await db.c.update_one(
        {"_id": 1, "items": {"$elemMatch": {"sku": "b", "qty": {"$gt": 5}}}},
        {"$set": {"items.$.qty": 0}},
    )
    assert (await db.c.find_one({"_id": 1}))["items"] == [
        {"sku": "a", "qty": 1},
        {"sku": "b", "qty": 1},
        {"sku": "b", "qty": 0},
    ]


async def test_array_filters_select_subdocuments_and_nest(db: Any) -> None:
    await db.c.insert_one(
        {
            "_id": 1,
            "items": [{"sku": "a", "qty": 1, "price": 5}, {"sku": "b", "qty": 3, "price": 5}],
            "classes": [{"name": "a", "scores": [1, 9]}, {"name": "b", "scores": [2, 8]}],
        }
    )
    await db.c.update_one(
        {"_id": 1},
        {"$set": {"items.$[it].price": 0}, "$inc": {"classes.$[c].scores.$[s]": 100}},
        array_filters=[{"it.qty": {"$lt": 2}}, {"c.name": "b"}, {"s": {"$gt": 5}}],
    )
    doc = await db.c.find_one({"_id": 1})
    assert doc["items"] == [{"sku": "a", "qty": 1, "price": 0}, {"sku": "b", "qty": 3, "price": 5}]
    assert doc["classes"] == [{"name": "a", "scores": [1, 9]}, {"name": "b", "scores": [2, 108]}]


async def test_find_one_and_update_with_array_filters(db: Any) -> None:
    await db.c.insert_one({"_id": 1, "grades": [80, 95, 100]})
    after = await db.c.find_one_and_update(
        {"_id": 1},
        {"$inc": {"grades.$[g]": 1}},
        array_filters=[{"g": {"$gte": 95}}],
        return_document=ReturnDocument.AFTER,
    )
    assert after == {"_id": 1, "grades": [80, 96, 101]}


# --- pipeline-style updates ----------------------------------------------------------------


async def test_pipeline_update_computes_from_the_current_document(db: Any) -> None:
    await db.c.insert_one({"_id": 1, "a": 1, "b": 2})
    result = await db.c.update_one(
        {"_id": 1},
        [{"$set": {"total": {"$add": ["$a", "$b"]}, "tags": ["x"]}}, {"$unset": "a"}],
    )
    assert result.modified_count == 1
    assert await db.c.find_one({"_id": 1}) == {"_id": 1, "b": 2, "total": 3, "tags": ["x"]}


async def test_pipeline_update_many_evaluates_per_document(db: Any) -> None:
    await db.c.insert_many([{"_id": 1, "score": 70}, {"_id": 2, "score": 30}])
    result = await db.c.update_many(
        {}, [{"$set": {"grade": {"$cond": [{"$gte": ["$score", 50]}, "pass", "fail"]}}}]
    )
    assert (result.matched_count, result.modified_count) == (2, 2)
    assert [d["grade"] async for d in db.c.find().sort("_id", 1)] == ["pass", "fail"]


async def test_pipeline_update_through_find_one_and_update(db: Any) -> None:
    await db.c.insert_one({"_id": 1, "a": 1})
    after = await db.c.find_one_and_update(
        {"_id": 1},
        [{"$replaceWith": {"$mergeObjects": ["$$ROOT", {"status": "done"}]}}],
        return_document=ReturnDocument.AFTER,
    )
    assert after == {"_id": 1, "a": 1, "status": "done"}


# --- refused updates -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("update", "code"),
    [
        pytest.param({"$inc": {"s": 1}}, 14, id="inc-a-string"),
        pytest.param({"$inc": {"a": "x"}}, 14, id="inc-by-a-non-number"),
        pytest.param({"$mul": {"s": 2}}, 14, id="mul-a-string"),
        pytest.param(
            {"$set": {"a.b": 1}, "$unset": {"a": ""}}, 40, id="conflicting-paths-across-ops"
        ),
        pytest.param({"$set": {"a": 1, "a.b": 2}}, 40, id="conflicting-paths-in-one-op"),
        pytest.param({"$set": {}}, 9, id="empty-set"),
        pytest.param({"$unset": {}}, 9, id="empty-unset"),
        pytest.param({"$set": {"_id": 2}}, 66, id="set-id"),
        pytest.param({"$unset": {"_id": ""}}, 66, id="unset-id"),
        pytest.param({"$inc": {"_id": 1}}, 66, id="inc-id"),
        pytest.param([{"$set": {"_id": 2}}], 66, id="pipeline-sets-id"),
        pytest.param({"$push": {"s": 1}}, 2, id="push-onto-a-non-array"),
        pytest.param({"$set": {"xs.$": 1}}, 2, id="positional-without-an-array-in-the-query"),
        pytest.param({"$set": {"s.x": 1}}, 28, id="set-below-a-string"),
    ],
)
async def test_a_refused_update_reports_mongods_code_and_changes_nothing(
    db: Any, update: Any, code: int
) -> None:
    original = {"_id": 1, "s": "text", "a": 0, "xs": [1, 2]}
    await db.c.insert_one(original)
    with pytest.raises((WriteError, OperationFailure)) as info:
        await db.c.update_one({"_id": 1}, update)
    assert info.value.code == code
    with pytest.raises(OperationFailure) as info:
        await db.c.find_one_and_update({"_id": 1}, update)
    assert info.value.code == code
    assert await db.c.find_one({"_id": 1}) == original


async def test_setting_id_to_its_current_value_is_allowed(db: Any) -> None:
    await db.c.insert_one({"_id": 1, "a": 0})
    result = await db.c.update_one({"_id": 1}, {"$set": {"_id": 1, "a": 5}})
    assert result.modified_count == 1
    assert await db.c.find_one({"_id": 1}) == {"_id": 1, "a": 5}


async def test_an_unknown_modifier_fails_even_when_nothing_matches(db: Any) -> None:
    """mongod parses the update before it looks for documents."""
    for _ in range(2):  # the collection missing, then existing but without a match
        with pytest.raises(WriteError) as info:
            await db.c.update_many({}, {"$thismodifierdoesntexist": 1})
        assert info.value.code == 9
        await db.c.insert_one({"_id": "x", "n": 1})
        await db.c.delete_one({"_id": "x"})


async def test_update_sort_is_refused_as_on_the_reported_7_0(db: Any) -> None:
    """'sort' in an update statement came with 8.0; 7.0 refuses the unknown field."""
    await db.c.insert_many([{"_id": 1}, {"_id": 2}])
    with pytest.raises(OperationFailure) as info:
        await db.command(
            {"update": "c", "updates": [{"q": {}, "u": {"$set": {"x": 1}}, "sort": {"_id": -1}}]}
        )
    assert info.value.code == 40415
    assert info.value.details["codeName"] == "IDLUnknownField"
    assert (await db.command("buildInfo"))["version"].startswith("7.0")
