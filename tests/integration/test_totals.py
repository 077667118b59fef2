"""Per-user totals, kept by the running service, through Motor against the server."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from bson import Decimal128, ObjectId
from motor.motor_asyncio import AsyncIOMotorDatabase

from streamer.mongo import Mongo
from streamer.runtime.verify import verify
from streamer.settings import Settings
from tests.support.service import RunService, caught_up

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


async def totals(db: AsyncIOMotorDatabase[Any], user: Any) -> dict[str, Any] | None:
    doc: dict[str, Any] | None = await db.user_totals.find_one({"_id": user})
    return doc


async def assert_no_drift(mongo: Mongo) -> None:
    report = await verify(mongo, default_threshold=10)
    assert not report.drift, report.lines()


async def test_completed_orders_sum_exactly_as_decimals(
    db: AsyncIOMotorDatabase[Any], settings: Settings, mongo: Mongo, service: RunService
) -> None:
    """0.1 + 0.2 is 0.3: doubles count as their shortest repr, summed as Decimal128."""
    async with service(settings):
        await db.orders.insert_many(
            [
                {"user_id": "u1", "amount": 0.1, "status": "completed", "created_at": T0},
                {"user_id": "u1", "amount": 0.2, "status": "completed", "created_at": T0},
                {"user_id": "u1", "amount": 5, "status": "pending", "created_at": T0},
            ]
        )
        await caught_up(db)
    doc = await totals(db, "u1")
    assert doc is not None
    assert doc["total"] == Decimal128("0.3")
    assert doc["count"] == 2
    assert doc["avg"].to_decimal() == Decimal("0.15")
    assert doc["by_status"] == {"completed": 2, "pending": 1}
    assert doc["last_order_at"].replace(tzinfo=dt.UTC) == T0
    await assert_no_drift(mongo)


async def test_status_amount_and_user_changes_move_totals(
    db: AsyncIOMotorDatabase[Any], settings: Settings, mongo: Mongo, service: RunService
) -> None:
    """Updates, replaces, reassignment and deletes each move the totals they touch."""
    alice, bob = ObjectId(), ObjectId()
    async with service(settings):
        result = await db.orders.insert_many(
            [
                {"user_id": alice, "amount": 10, "status": "pending", "created_at": T0},
                {"user_id": alice, "amount": 20, "status": "completed", "created_at": T0},
            ]
        )
        first, second = result.inserted_ids
        await db.orders.update_one({"_id": first}, {"$set": {"status": "completed"}})
        await db.orders.update_one({"_id": second}, {"$inc": {"amount": 5}})
        await db.orders.update_one({"_id": first}, {"$set": {"user_id": bob}})
        await caught_up(db)
        a, b = await totals(db, alice), await totals(db, bob)
        assert a is not None and b is not None
        assert (a["total"], a["count"]) == (Decimal128("25"), 1)
        assert (b["total"], b["count"]) == (Decimal128("10"), 1)
        await db.orders.replace_one(
            {"_id": second}, {"user_id": alice, "amount": 1, "status": "refunded"}
        )
        await db.orders.delete_one({"_id": first})
        await caught_up(db)
    a = await totals(db, alice)
    assert a is not None
    assert a["total"] == Decimal128("0") and a["count"] == 0 and a["avg"] is None
    assert a["by_status"] == {"refunded": 1}
    assert await totals(db, bob) is None
    await assert_no_drift(mongo)
