"""Low-stock alerts kept by the running service."""

from __future__ import annotations

from typing import Any

import pytest
from motor.motor_asyncio import AsyncIOMotorDatabase
from pymongo.errors import DuplicateKeyError

from streamer.mongo import Mongo
from streamer.runtime.verify import verify
from streamer.settings import Settings
from tests.support.service import RunService, caught_up


async def alerts(db: AsyncIOMotorDatabase[Any], product: Any) -> list[dict[str, Any]]:
    return [a async for a in db.stock_alerts.find({"product_id": product}).sort("_id", 1)]


async def test_dropping_to_threshold_opens_one_alert_and_restocking_resolves_it(
    db: AsyncIOMotorDatabase[Any], settings: Settings, mongo: Mongo, service: RunService
) -> None:
    """stock <= threshold opens exactly one alert; a rise above it resolves it."""
    await db.inventory.insert_one({"_id": "p1", "sku": "SKU-1", "name": "Widget", "stock": 50})
    async with service(settings):
        await caught_up(db)  # the first-start resync has read stock 50
        await db.inventory.update_one({"_id": "p1"}, {"$set": {"stock": 10}})
        await db.inventory.update_one({"_id": "p1"}, {"$inc": {"stock": -3}})
        await caught_up(db)
        [alert] = await alerts(db, "p1")
        assert alert["state"] == "open"
        assert (alert["sku"], alert["name"], alert["stock"], alert["threshold"]) == (
            "SKU-1",
            "Widget",
            10,
            10,
        )
        assert alert["opened_at"] is not None
        await db.inventory.update_one({"_id": "p1"}, {"$set": {"stock": 11}})
        await caught_up(db)
    [alert] = await alerts(db, "p1")
    assert alert["state"] == "resolved"
    assert alert["resolution"] == "restocked"
    assert alert["resolved_at"] is not None
    assert not (await verify(mongo, default_threshold=10)).drift


async def test_every_transition_inside_one_batch_is_kept(
    db: AsyncIOMotorDatabase[Any], settings: Settings, service: RunService
) -> None:
    """Five changes to one product applied as one transaction still give each transition."""
    await db.inventory.insert_one(
        {"_id": 7, "sku": "S7", "name": "Gadget", "stock": 100, "low_stock_threshold": 5}
    )
    # One transaction: one oplog entry, so the service necessarily sees one batch.
    async with await db.client.start_session() as session, session.start_transaction():
        for stock in (5, 6, 1, 9, 0):
            await db.inventory.update_one({"_id": 7}, {"$set": {"stock": stock}}, session=session)
    async with service(settings):
        await caught_up(db)
        await db.inventory.update_one({"_id": 7}, {"$set": {"stock": 4}})
        async with await db.client.start_session() as session, session.start_transaction():
            for stock in (6, 2, 8, 3):
                await db.inventory.update_one(
                    {"_id": 7}, {"$set": {"stock": stock}}, session=session
                )
        await caught_up(db)
    history = await alerts(db, 7)
    # The resync saw stock 0 (one open); then 4 (still low), 6 resolves, 2 opens,
    # 8 resolves, 3 opens.
    assert [a["state"] for a in history] == ["resolved", "resolved", "open"]
    assert [a["stock"] for a in history] == [0, 2, 3]
    assert [a.get("resolved_stock") for a in history[:2]] == [6, 8]


async def test_deleting_a_product_resolves_its_alert_as_deleted(
    db: AsyncIOMotorDatabase[Any], settings: Settings, service: RunService
) -> None:
    """A delete carries only the key; the alert still resolves, with resolution "deleted"."""
    async with service(settings):
        await db.inventory.insert_one({"_id": "gone", "sku": "G", "name": "Gone", "stock": 1})
        await caught_up(db)
        await db.inventory.delete_one({"_id": "gone"})
        await caught_up(db)
    [alert] = await alerts(db, "gone")
    assert (alert["state"], alert["resolution"]) == ("resolved", "deleted")


async def test_hysteresis_keeps_an_alert_open_until_stock_clears_the_band(
    db: AsyncIOMotorDatabase[Any], settings: Settings, service: RunService
) -> None:
    """With hysteresis 5, threshold 10: 14 keeps the alert open, 16 resolves it."""
    hysteresis = settings.model_copy(update={"alert_hysteresis": 5})
    async with service(hysteresis):
        await db.inventory.insert_one({"_id": "h", "sku": "H", "name": "H", "stock": 3})
        await db.inventory.update_one({"_id": "h"}, {"$set": {"stock": 14}})
        await caught_up(db)
        assert [a["state"] for a in await alerts(db, "h")] == ["open"]
        await db.inventory.update_one({"_id": "h"}, {"$set": {"stock": 16}})
        await caught_up(db)
    assert [a["state"] for a in await alerts(db, "h")] == ["resolved"]


async def test_the_database_refuses_a_second_open_alert_for_a_product(
    db: AsyncIOMotorDatabase[Any], settings: Settings, service: RunService
) -> None:
    """The unique partial index is the last line of defence: one open alert per product."""
    async with service(settings):
        await db.inventory.insert_one({"_id": "x", "sku": "X", "name": "X", "stock": 0})
        await caught_up(db)
    with pytest.raises(DuplicateKeyError):
        await db.stock_alerts.insert_one({"product_id": "x", "state": "open"})
    await db.stock_alerts.insert_one({"product_id": "x", "state": "resolved"})
