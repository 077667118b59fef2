"""Aggregation through Motor: the seed guide's pipelines and the stages the service uses."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from bson import Decimal128
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
