"""Bad input is quarantined and skipped; it never stalls a stream."""

from __future__ import annotations

import math
from typing import Any

from bson import Decimal128
from motor.motor_asyncio import AsyncIOMotorDatabase

from streamer.mongo import Mongo
from streamer.runtime.verify import verify
from streamer.settings import Settings
from tests.support.service import RunService, caught_up

BAD_ORDERS = [
    ({"amount": 5, "status": "completed"}, "user_id is missing"),
    ({"user_id": "u", "amount": "abc", "status": "completed"}, "amount is a str, not a number"),
    ({"user_id": "u", "amount": math.nan, "status": "completed"}, "amount is not finite"),
    ({"user_id": "u", "amount": -1, "status": "completed"}, "amount is negative"),
    ({"user_id": "u", "amount": True, "status": "completed"}, "amount is a boolean, not a number"),
    ({"user_id": "u", "amount": 3}, "status is missing"),
]


async def test_invalid_orders_are_quarantined_and_valid_ones_in_the_same_batch_applied(
    db: AsyncIOMotorDatabase[Any], settings: Settings, mongo: Mongo, service: RunService
) -> None:
    """Each invalid order gets a quarantine record with its reason; the rest count."""
    async with service(settings):
        await caught_up(db)
        docs = [{"_id": i, **doc} for i, (doc, _) in enumerate(BAD_ORDERS)]
        docs.append({"_id": 100, "user_id": "u", "amount": 7, "status": "completed"})
        await db.orders.insert_many(docs, bypass_document_validation=True)
        await caught_up(db)
    records = {r["key"]: r async for r in db.streamer_quarantine.find({"stream": "orders"})}
    assert {k: r["reason"] for k, r in records.items()} == {
        i: reason for i, (_, reason) in enumerate(BAD_ORDERS)
    }
    assert all(r["cluster_time"] is not None for r in records.values())
    totals = await db.user_totals.find_one({"_id": "u"})
    assert totals is not None and totals["total"] == Decimal128("7")
    assert not (await verify(mongo, default_threshold=10)).drift


async def test_an_order_that_turns_invalid_stops_counting_and_counts_again_once_fixed(
    db: AsyncIOMotorDatabase[Any], settings: Settings, service: RunService
) -> None:
    """Validity is per state: the same order leaves and rejoins the totals."""
    async with service(settings):
        await db.orders.insert_one({"_id": 1, "user_id": "v", "amount": 4, "status": "completed"})
        await caught_up(db)
        await db.orders.update_one(
            {"_id": 1}, {"$set": {"amount": "oops"}}, bypass_document_validation=True
        )
        await caught_up(db)
        assert await db.user_totals.find_one({"_id": "v"}) is None
        await db.orders.update_one({"_id": 1}, {"$set": {"amount": 6}})
        await caught_up(db)
    totals = await db.user_totals.find_one({"_id": "v"})
    assert totals is not None and (totals["total"], totals["count"]) == (Decimal128("6"), 1)
    assert await db.streamer_quarantine.count_documents({"key": 1}) == 1


async def test_invalid_inventory_is_quarantined_and_the_stream_moves_on(
    db: AsyncIOMotorDatabase[Any], settings: Settings, service: RunService
) -> None:
    """stock 3.5, a missing sku or a text stock are recorded; later valid events apply."""
    async with service(settings):
        await caught_up(db)
        await db.inventory.insert_many(
            [
                {"_id": "a", "sku": "A", "name": "A", "stock": 3.5},
                {"_id": "b", "name": "B", "stock": 1},
                {"_id": "c", "sku": "C", "name": "C", "stock": "many"},
                {"_id": "d", "sku": "D", "name": "D", "stock": 2},
            ],
            bypass_document_validation=True,
        )
        await caught_up(db)
    reasons = {r["key"]: r["reason"] async for r in db.streamer_quarantine.find()}
    assert reasons == {
        "a": "stock is not an integer",
        "b": "sku is missing or not a string",
        "c": "stock is not an integer",
    }
    assert await db.stock_alerts.count_documents({"product_id": "d", "state": "open"}) == 1
