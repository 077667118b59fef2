"""Aggregation through Motor: the seed guide's pipelines and the stages the service uses."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from bson import Decimal128, Int64
from pymongo.errors import OperationFailure

UTC = dt.UTC


async def _seed(db: Any) -> None:
    await db.users.insert_many([{"_id": 1, "name": "ada"}, {"_id": 2, "name": "bob"}])
    await db.orders.insert_many(
        [
            {
                "user_id": 1,
                "amount": 10.0,
                "status": "completed",
                "created_at": dt.datetime(2026, 1, 5, tzinfo=UTC),
            },
            {
                "user_id": 1,
                "amount": 20.5,
                "status": "completed",
                "created_at": dt.datetime(2026, 2, 7, tzinfo=UTC),
            },
            {
                "user_id": 2,
                "amount": 5.125,
                "status": "completed",
                "created_at": dt.datetime(2026, 2, 9, tzinfo=UTC),
            },
            {
                "user_id": 2,
                "amount": 99.0,
                "status": "pending",
                "created_at": dt.datetime(2026, 2, 10, tzinfo=UTC),
            },
        ]
    )


async def test_the_guides_order_stats_pipeline(db: Any) -> None:
    await _seed(db)
    pipeline = [
        {"$match": {"status": "completed"}},
        {
            "$group": {
                "_id": "$user_id",
                "total": {"$sum": "$amount"},
                "count": {"$sum": 1},
                "avg": {"$avg": "$amount"},
            }
        },
        {"$sort": {"total": -1}},
        {"$limit": 10},
        {"$lookup": {"from": "users", "localField": "_id", "foreignField": "_id", "as": "user"}},
        {"$unwind": "$user"},
        {
            "$project": {
                "user_name": "$user.name",
                "total": 1,
                "count": 1,
                "avg": {"$round": ["$avg", 2]},
            }
        },
    ]
    rows = await db.orders.aggregate(pipeline).to_list(10)
    assert rows == [
        {"_id": 1, "total": 30.5, "count": 2, "user_name": "ada", "avg": 15.25},
        {"_id": 2, "total": 5.125, "count": 1, "user_name": "bob", "avg": 5.12},
    ]


async def test_the_guides_monthly_revenue_pipeline(db: Any) -> None:
    await _seed(db)
    pipeline = [
        {
            "$match": {
                "status": "completed",
                "created_at": {"$gte": dt.datetime(2026, 1, 1, tzinfo=UTC)},
            }
        },
        {
            "$group": {
                "_id": {"year": {"$year": "$created_at"}, "month": {"$month": "$created_at"}},
                "revenue": {"$sum": "$amount"},
                "orders": {"$sum": 1},
            }
        },
        {"$sort": {"_id.year": 1, "_id.month": 1}},
    ]
    rows = await db.orders.aggregate(pipeline).to_list(None)
    assert rows == [
        {"_id": {"year": 2026, "month": 1}, "revenue": 10.0, "orders": 1},
        {"_id": {"year": 2026, "month": 2}, "revenue": 25.625, "orders": 2},
    ]


async def test_decimal_sums_stay_decimal(db: Any) -> None:
    await db.c.insert_many([{"v": Decimal128("0.1")}, {"v": Decimal128("0.2")}, {"v": 1}])
    [row] = await db.c.aggregate([{"$group": {"_id": None, "t": {"$sum": "$v"}}}]).to_list(1)
    assert row["t"] == Decimal128("1.3")


async def test_facet_bucket_and_count(db: Any) -> None:
    await db.c.insert_many([{"v": v} for v in (1, 5, 12, 30, 31)])
    [row] = await db.c.aggregate(
        [
            {
                "$facet": {
                    "n": [{"$count": "n"}],
                    "buckets": [
                        {
                            "$bucket": {
                                "groupBy": "$v",
                                "boundaries": [0, 10, 20],
                                "default": "other",
                            }
                        }
                    ],
                }
            }
        ]
    ).to_list(1)
    assert row["n"] == [{"n": 5}]
    assert row["buckets"] == [
        {"_id": 0, "count": 2},
        {"_id": 10, "count": 1},
        {"_id": "other", "count": 2},
    ]


async def test_merge_upserts_into_another_collection_idempotently(db: Any) -> None:
    await _seed(db)
    pipeline = [
        {"$match": {"status": "completed"}},
        {"$group": {"_id": "$user_id", "total": {"$sum": "$amount"}}},
        {"$merge": {"into": "totals", "whenMatched": "replace", "whenNotMatched": "insert"}},
    ]
    await db.orders.aggregate(pipeline).to_list(None)
    await db.orders.aggregate(pipeline).to_list(None)
    totals = {d["_id"]: d["total"] async for d in db.totals.find()}
    assert totals == {1: 30.5, 2: 5.125}


async def test_unwind_with_index_and_add_fields(db: Any) -> None:
    await db.c.insert_one({"_id": 1, "tags": ["a", "b"]})
    rows = await db.c.aggregate(
        [
            {"$unwind": {"path": "$tags", "includeArrayIndex": "i"}},
            {"$set": {"label": {"$concat": ["$tags", "-", {"$toString": "$i"}]}}},
            {"$unset": "tags"},
        ]
    ).to_list(None)
    assert rows == [{"_id": 1, "i": 0, "label": "a-0"}, {"_id": 1, "i": 1, "label": "b-1"}]


async def test_date_to_string_and_arithmetic(db: Any) -> None:
    await db.c.insert_one(
        {"_id": 1, "at": dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC), "a": 7, "b": 2}
    )
    [row] = await db.c.aggregate(
        [
            {
                "$project": {
                    "_id": 0,
                    "day": {"$dateToString": {"format": "%Y-%m-%d", "date": "$at"}},
                    "sum": {"$add": ["$a", "$b"]},
                    "diff": {"$subtract": ["$a", "$b"]},
                    "product": {"$multiply": ["$a", "$b"]},
                    "ratio": {"$divide": ["$a", "$b"]},
                    "even_down": {"$round": [2.5, 0]},
                    "even_up": {"$round": [3.5, 0]},
                }
            }
        ]
    ).to_list(1)
    assert row == {
        "day": "2026-03-04",
        "sum": 9,
        "diff": 5,
        "product": 14,
        "ratio": 3.5,
        "even_down": 2.0,
        "even_up": 4.0,
    }


async def test_an_unknown_stage_fails_with_40324(db: Any) -> None:
    with pytest.raises(OperationFailure) as info:
        await db.c.aggregate([{"$nope": {}}]).to_list(None)
    assert info.value.code == 40324


# --- the guide's pipeline, edge cases ---------------------------------------------------------


def _order_stats_pipeline() -> list[dict[str, Any]]:
    return [
        {"$match": {"status": "completed"}},
        {
            "$group": {
                "_id": "$user_id",
                "total": {"$sum": "$amount"},
                "count": {"$sum": 1},
                "avg": {"$avg": "$amount"},
            }
        },
        {"$sort": {"total": -1}},
        {"$limit": 10},
        {"$lookup": {"from": "users", "localField": "_id", "foreignField": "_id", "as": "user"}},
        {"$unwind": "$user"},
        {
            "$project": {
                "user_name": "$user.name",
                "total": 1,
                "count": 1,
                "avg": {"$round": ["$avg", 2]},
            }
        },
    ]


async def test_order_stats_drop_groups_whose_user_is_not_found(db: Any) -> None:
    await _seed(db)
    await db.orders.insert_one({"user_id": 3, "amount": 100.0, "status": "completed"})
    rows = await db.orders.aggregate(_order_stats_pipeline()).to_list(None)
    assert [row["_id"] for row in rows] == [1, 2]


async def test_order_stats_counts_are_ints_and_averages_doubles(db: Any) -> None:
    await _seed(db)
    rows = await db.orders.aggregate(_order_stats_pipeline()).to_list(None)
    assert all(type(row["count"]) is int for row in rows)
    assert all(type(row["avg"]) is float and type(row["total"]) is float for row in rows)


# --- $group accumulators -------------------------------------------------------------------


async def test_group_accumulators(db: Any) -> None:
    await db.c.insert_many(
        [
            {"_id": 1, "k": "a", "v": 3, "t": "x"},
            {"_id": 2, "k": "a", "v": 1, "t": "y"},
            {"_id": 3, "k": "a", "v": 2, "t": "x"},
            {"_id": 4, "k": "b", "v": 5, "t": "z"},
            {"_id": 5, "k": "b", "v": None},
        ]
    )
    rows = await db.c.aggregate(
        [
            {"$sort": {"_id": 1}},
            {
                "$group": {
                    "_id": "$k",
                    "min": {"$min": "$v"},
                    "max": {"$max": "$v"},
                    "first": {"$first": "$v"},
                    "last": {"$last": "$v"},
                    "all": {"$push": "$v"},
                    "tags": {"$addToSet": "$t"},
                    "sum": {"$sum": "$v"},
                    "avg": {"$avg": "$v"},
                    "n": {"$count": {}},
                }
            },
            {"$sort": {"_id": 1}},
        ]
    ).to_list(None)
    for row in rows:
        row["tags"] = sorted(row["tags"])
    assert rows == [
        {
            "_id": "a",
            "min": 1,
            "max": 3,
            "first": 3,
            "last": 2,
            "all": [3, 1, 2],
            "tags": ["x", "y"],
            "sum": 6,
            "avg": 2.0,
            "n": 3,
        },
        {
            # $min/$max/$sum/$avg skip the null; $push keeps it; $addToSet skips the missing t.
            "_id": "b",
            "min": 5,
            "max": 5,
            "first": 5,
            "last": None,
            "all": [5, None],
            "tags": ["z"],
            "sum": 5,
            "avg": 5.0,
            "n": 2,
        },
    ]


async def test_group_by_null_gathers_every_document(db: Any) -> None:
    await db.c.insert_many([{"v": 1}, {"v": 2.5}, {"w": 1}])
    rows = await db.c.aggregate(
        [{"$group": {"_id": None, "sum": {"$sum": "$v"}, "n": {"$sum": 1}}}]
    ).to_list(None)
    assert rows == [{"_id": None, "sum": 3.5, "n": 3}]


async def test_decimal_arithmetic_and_accumulators_stay_decimal(db: Any) -> None:
    await db.c.insert_many(
        [{"price": Decimal128("19.99"), "qty": 3}, {"price": Decimal128("0.01"), "qty": 1}]
    )
    [row] = await db.c.aggregate(
        [
            {
                "$group": {
                    "_id": None,
                    "total": {"$sum": {"$multiply": ["$price", "$qty"]}},
                    "avg": {"$avg": "$price"},
                    "max": {"$max": "$price"},
                }
            }
        ]
    ).to_list(1)
    assert all(isinstance(row[k], Decimal128) for k in ("total", "avg", "max"))
    assert row["total"].to_decimal() == Decimal("59.98")
    assert row["avg"].to_decimal() == Decimal("10")
    assert row["max"].to_decimal() == Decimal("19.99")


# --- $bucket, $count, $facet ---------------------------------------------------------------


async def test_bucket_with_output_accumulators(db: Any) -> None:
    await db.c.insert_many([{"v": v} for v in (31, 5, 12, 1, 30)])
    rows = await db.c.aggregate(
        [
            {"$sort": {"v": 1}},
            {
                "$bucket": {
                    "groupBy": "$v",
                    "boundaries": [0, 10, 20],
                    "default": "other",
                    "output": {"n": {"$sum": 1}, "vs": {"$push": "$v"}},
                }
            },
        ]
    ).to_list(None)
    assert rows == [
        {"_id": 0, "n": 2, "vs": [1, 5]},
        {"_id": 10, "n": 1, "vs": [12]},
        {"_id": "other", "n": 2, "vs": [30, 31]},
    ]


async def test_count_of_no_documents_outputs_no_document(db: Any) -> None:
    await db.c.insert_many([{"v": 1}, {"v": 2}])
    assert (
        await db.c.aggregate([{"$match": {"v": {"$gt": 5}}}, {"$count": "n"}]).to_list(None) == []
    )
    assert await db.c.aggregate([{"$match": {"v": {"$gt": 1}}}, {"$count": "n"}]).to_list(None) == [
        {"n": 1}
    ]


async def test_facet_runs_each_sub_pipeline_over_the_same_input(db: Any) -> None:
    await _seed(db)
    [row] = await db.orders.aggregate(
        [
            {
                "$facet": {
                    "by_status": [{"$sortByCount": "$status"}],
                    "top": [
                        {"$sort": {"amount": -1}},
                        {"$limit": 1},
                        {"$project": {"_id": 0, "amount": 1}},
                    ],
                    "none": [{"$match": {"status": "cancelled"}}],
                }
            }
        ]
    ).to_list(1)
    assert row == {
        "by_status": [{"_id": "completed", "count": 3}, {"_id": "pending", "count": 1}],
        "top": [{"amount": 99.0}],
        "none": [],
    }


# --- reshaping stages ----------------------------------------------------------------------


async def test_replace_root_and_replace_with_promote_a_subdocument(db: Any) -> None:
    await db.c.insert_many(
        [{"_id": 1, "profile": {"name": "ada", "age": 36}}, {"_id": 2, "profile": {"name": "bob"}}]
    )
    rows = await db.c.aggregate(
        [{"$sort": {"_id": 1}}, {"$replaceRoot": {"newRoot": "$profile"}}]
    ).to_list(None)
    assert rows == [{"name": "ada", "age": 36}, {"name": "bob"}]
    rows = await db.c.aggregate(
        [
            {"$sort": {"_id": 1}},
            {
                "$replaceWith": {
                    "$mergeObjects": [{"age": 0, "role": "user"}, "$profile", {"id": "$_id"}]
                }
            },
        ]
    ).to_list(None)
    assert rows == [
        {"age": 36, "role": "user", "name": "ada", "id": 1},
        {"age": 0, "role": "user", "name": "bob", "id": 2},
    ]


async def test_add_fields_set_unset_and_exclusion_project(db: Any) -> None:
    await db.c.insert_one({"_id": 1, "a": 1, "profile": {"name": "ada", "age": 36}})
    [row] = await db.c.aggregate(
        [
            {
                "$addFields": {
                    "b": {"$add": ["$a", 1]},
                    "profile.senior": {"$gte": ["$profile.age", 30]},
                }
            },
            {"$set": {"a": 10, "c": {"$literal": "$notAField"}}},
            {"$unset": ["profile.age", "b"]},
        ]
    ).to_list(1)
    assert row == {"_id": 1, "a": 10, "profile": {"name": "ada", "senior": True}, "c": "$notAField"}
    assert list(row) == ["_id", "a", "profile", "c"]
    [row] = await db.c.aggregate([{"$project": {"profile": 0}}]).to_list(1)
    assert row == {"_id": 1, "a": 1}


async def test_unwind_keeps_null_missing_and_empty_when_asked_and_indexes_as_longs(
    db: Any,
) -> None:
    await db.c.insert_many(
        [
            {"_id": 1, "sizes": ["S", "M"]},
            {"_id": 2, "sizes": []},
            {"_id": 3, "sizes": "M"},
            {"_id": 4},
            {"_id": 5, "sizes": None},
        ]
    )
    plain = await db.c.aggregate([{"$sort": {"_id": 1}}, {"$unwind": "$sizes"}]).to_list(None)
    assert plain == [
        {"_id": 1, "sizes": "S"},
        {"_id": 1, "sizes": "M"},
        {"_id": 3, "sizes": "M"},
    ]
    rows = await db.c.aggregate(
        [
            {"$sort": {"_id": 1}},
            {
                "$unwind": {
                    "path": "$sizes",
                    "includeArrayIndex": "i",
                    "preserveNullAndEmptyArrays": True,
                }
            },
        ]
    ).to_list(None)
    assert rows == [
        {"_id": 1, "sizes": "S", "i": 0},
        {"_id": 1, "sizes": "M", "i": 1},
        {"_id": 2, "i": None},
        {"_id": 3, "sizes": "M", "i": None},
        {"_id": 4, "i": None},
        {"_id": 5, "sizes": None, "i": None},
    ]
    assert isinstance(rows[0]["i"], Int64) and isinstance(rows[1]["i"], Int64)


# --- $merge and $out -----------------------------------------------------------------------


async def test_merge_when_matched_merge_keeps_the_targets_other_fields_idempotently(
    db: Any,
) -> None:
    await _seed(db)
    await db.totals.insert_one({"_id": 1, "note": "keep", "total": 0})
    pipeline = [
        {"$match": {"status": "completed"}},
        {"$group": {"_id": "$user_id", "total": {"$sum": "$amount"}}},
        {
            "$merge": {
                "into": "totals",
                "on": "_id",
                "whenMatched": "merge",
                "whenNotMatched": "insert",
            }
        },
    ]
    for _ in range(2):
        assert await db.orders.aggregate(pipeline).to_list(None) == []
        assert await db.totals.find().sort("_id", 1).to_list(None) == [
            {"_id": 1, "note": "keep", "total": 30.5},
            {"_id": 2, "total": 5.125},
        ]


async def test_merge_when_matched_replace_drops_the_targets_other_fields(db: Any) -> None:
    await _seed(db)
    await db.totals.insert_one({"_id": 1, "note": "gone", "total": 0})
    pipeline = [
        {"$match": {"status": "completed"}},
        {"$group": {"_id": "$user_id", "total": {"$sum": "$amount"}}},
        {"$merge": {"into": "totals", "whenMatched": "replace", "whenNotMatched": "insert"}},
    ]
    for _ in range(2):
        await db.orders.aggregate(pipeline).to_list(None)
        assert await db.totals.find().sort("_id", 1).to_list(None) == [
            {"_id": 1, "total": 30.5},
            {"_id": 2, "total": 5.125},
        ]


async def test_out_replaces_the_target_collection(db: Any) -> None:
    await _seed(db)
    await db.completed.insert_one({"_id": "stale"})
    result = await db.orders.aggregate(
        [
            {"$match": {"status": "completed"}},
            {"$project": {"_id": 0, "user_id": 1, "amount": 1}},
            {"$out": "completed"},
        ]
    ).to_list(None)
    assert result == []
    docs = await db.completed.find({}, {"_id": 0}).sort("amount", 1).to_list(None)
    assert docs == [
        {"user_id": 2, "amount": 5.125},
        {"user_id": 1, "amount": 10.0},
        {"user_id": 1, "amount": 20.5},
    ]
    assert await db.completed.count_documents({"_id": "stale"}) == 0


async def test_count_documents_counts_through_an_aggregation(db: Any) -> None:
    await _seed(db)
    assert await db.orders.count_documents({"status": "completed"}) == 3
    assert await db.orders.count_documents({"status": "completed", "amount": {"$gt": 6}}) == 2
    assert await db.orders.count_documents({"status": "completed"}, skip=1, limit=1) == 1
    assert await db.nothing_here.count_documents({}) == 0


# --- expressions ---------------------------------------------------------------------------


async def test_date_operators(db: Any) -> None:
    await db.c.insert_one(
        {
            "_id": 1,
            "at": dt.datetime(2026, 3, 4, 5, 6, 7, 89000, tzinfo=UTC),
            "start": dt.datetime(2026, 3, 4, 5, 6, 0, tzinfo=UTC),
        }
    )
    [row] = await db.c.aggregate(
        [
            {
                "$project": {
                    "_id": 0,
                    "iso": {"$dateToString": {"format": "%Y-%m-%dT%H:%M:%S.%LZ", "date": "$at"}},
                    "default": {"$dateToString": {"date": "$at"}},
                    "day_of_year": {"$dateToString": {"format": "%d/%m/%Y %j", "date": "$at"}},
                    "offset": {
                        "$dateToString": {"format": "%H:%M", "date": "$at", "timezone": "+02:00"}
                    },
                    "new_york": {
                        "$dateToString": {
                            "format": "%Y-%m-%d %H:%M",
                            "date": "$at",
                            "timezone": "America/New_York",
                        }
                    },
                    "missing": {"$dateToString": {"date": "$nope"}},
                    "parts": [
                        {"$year": "$at"},
                        {"$month": "$at"},
                        {"$dayOfMonth": "$at"},
                        {"$hour": "$at"},
                        {"$minute": "$at"},
                        {"$second": "$at"},
                        {"$millisecond": "$at"},
                        {"$dayOfWeek": "$at"},
                    ],
                    "plus_a_second": {"$add": ["$at", 1000]},
                    "minus_millis": {"$subtract": ["$at", 89]},
                    "elapsed_ms": {"$subtract": ["$at", "$start"]},
                }
            }
        ]
    ).to_list(1)
    assert row == {
        "iso": "2026-03-04T05:06:07.089Z",
        "default": "2026-03-04T05:06:07.089Z",
        "day_of_year": "04/03/2026 063",
        "offset": "07:06",
        "new_york": "2026-03-04 00:06",
        "missing": None,
        "parts": [2026, 3, 4, 5, 6, 7, 89, 4],
        # The client decodes dates as naive UTC (tz_aware=False).
        "plus_a_second": dt.datetime(2026, 3, 4, 5, 6, 8, 89000),
        "minus_millis": dt.datetime(2026, 3, 4, 5, 6, 7),
        "elapsed_ms": 7089,
    }


async def test_round_to_places_rounds_half_to_even(db: Any) -> None:
    await db.c.insert_one({"_id": 1})
    [row] = await db.c.aggregate(
        [
            {
                "$project": {
                    "_id": 0,
                    "a": {"$round": [19.25, 1]},
                    "b": {"$round": [0.125, 2]},
                    "c": {"$round": [0.375, 2]},
                    "d": {"$round": [1234.5678, 2]},
                    "e": {"$round": [1234.5678, -2]},
                    "f": {"$round": [25, -1]},
                    "g": {"$round": ["$missing", 2]},
                    "h": {"$round": [Decimal128("2.345"), 2]},
                    "i": {"$round": [Decimal128("2.355"), 2]},
                }
            }
        ]
    ).to_list(1)
    assert {k: row[k] for k in "abcdefg"} == {
        "a": 19.2,
        "b": 0.12,
        "c": 0.38,
        "d": 1234.57,
        "e": 1200,
        "f": 20,
        "g": None,
    }
    assert isinstance(row["h"], Decimal128) and row["h"].to_decimal() == Decimal("2.34")
    assert isinstance(row["i"], Decimal128) and row["i"].to_decimal() == Decimal("2.36")


async def test_arithmetic_keeps_integer_types_and_divide_gives_doubles(db: Any) -> None:
    await db.c.insert_one({"_id": 1, "a": 8, "b": 2, "l": Int64(3), "x": 0.5})
    [row] = await db.c.aggregate(
        [
            {
                "$project": {
                    "_id": 0,
                    "add": {"$add": ["$a", "$b", 1]},
                    "sub": {"$subtract": ["$a", "$b"]},
                    "mul": {"$multiply": ["$a", "$b"]},
                    "mul_long": {"$multiply": ["$a", "$l"]},
                    "mul_double": {"$multiply": ["$a", "$x"]},
                    "div": {"$divide": ["$a", "$b"]},
                    "div_frac": {"$divide": [1, 4]},
                    "null_propagates": {"$add": ["$a", "$missing"]},
                }
            }
        ]
    ).to_list(1)
    assert row == {
        "add": 11,
        "sub": 6,
        "mul": 16,
        "mul_long": 24,
        "mul_double": 4.0,
        "div": 4.0,
        "div_frac": 0.25,
        "null_propagates": None,
    }
    assert type(row["add"]) is int and type(row["sub"]) is int and type(row["mul"]) is int
    assert isinstance(row["mul_long"], Int64)
    assert type(row["mul_double"]) is float and type(row["div"]) is float


async def test_reshaping_stages_never_change_the_stored_documents(db: Any) -> None:
    stored = {"_id": 1, "a": {"b": [1, 2], "c": {"d": 1}}, "xs": [{"k": 1}, {"k": 2}]}
    await db.c.insert_one(stored)
    await db.c.aggregate(
        [
            {"$unwind": "$a.b"},
            {"$unwind": "$xs"},
            {"$set": {"a.c.d": 99, "xs.k": 0}},
            {"$unset": "a.c"},
            {"$project": {"a.b": 0}},
        ]
    ).to_list(None)
    assert await db.c.find_one({"_id": 1}) == stored


async def test_merge_fail_on_a_match_reports_the_duplicate_key(db: Any) -> None:
    """whenMatched 'fail': E11000 with keyPattern and keyValue, as a unique index reports."""
    await db.target.insert_one({"_id": 1})
    await db.source.insert_one({"_id": 1, "x": 1})
    with pytest.raises(OperationFailure) as info:
        await db.source.aggregate([{"$merge": {"into": "target", "whenMatched": "fail"}}]).to_list()
    assert info.value.code == 11000
    assert info.value.details["keyPattern"] == {"_id": 1}
    assert info.value.details["keyValue"] == {"_id": 1}


async def test_rand_gives_a_double_in_zero_one(db: Any) -> None:
    await db.c.insert_one({"_id": 1})
    found = await db.c.aggregate([{"$project": {"r": {"$rand": {}}}}]).to_list()
    assert 0 <= found[0]["r"] < 1


async def test_out_refuses_a_linearizable_read_concern(db: Any) -> None:
    await db.c.insert_one({"_id": 1})
    with pytest.raises(OperationFailure) as info:
        await db.command(
            {
                "aggregate": "c",
                "pipeline": [{"$out": "d"}],
                "cursor": {},
                "readConcern": {"level": "linearizable"},
            }
        )
    assert info.value.code == 72
