"""Checkpoints: resuming after a restart, quiet streams, lost history, overlapping instances."""

from __future__ import annotations

import asyncio
from typing import Any

from bson import Decimal128
from motor.motor_asyncio import AsyncIOMotorClient, AsyncIOMotorDatabase
from pydantic import SecretStr
from structlog.testing import capture_logs

from streamer.mongo import Mongo
from streamer.runtime.verify import verify
from streamer.settings import Settings
from tests.support.service import RunService, caught_up


async def checkpoint(db: AsyncIOMotorDatabase[Any], stream: str) -> dict[str, Any]:
    doc = await db.streamer_checkpoints.find_one({"_id": stream})
    assert doc is not None
    return doc


async def test_a_restarted_service_resumes_from_its_checkpoint_without_resyncing(
    db: AsyncIOMotorDatabase[Any], settings: Settings, mongo: Mongo, service: RunService
) -> None:
    """Writes made while the service was down are applied once it is back."""
    async with service(settings):
        await db.orders.insert_one({"user_id": "r", "amount": 1, "status": "completed"})
        await caught_up(db)
    await db.orders.insert_one({"user_id": "r", "amount": 2, "status": "completed"})
    with capture_logs() as logs:
        async with service(settings):
            await caught_up(db)
    resumed = [e for e in logs if e["event"] == "stream.resumed" and e["stream"] == "orders"]
    assert resumed and resumed[0]["from_token"] is True
    assert not [e for e in logs if e["event"] == "resync.started"]
    assert (await checkpoint(db, "orders"))["gen"] == 1
    totals = await db.user_totals.find_one({"_id": "r"})
    assert totals is not None and totals["total"] == Decimal128("3")
    assert not (await verify(mongo, default_threshold=10)).drift


async def test_a_quiet_stream_keeps_moving_its_stored_position(
    db: AsyncIOMotorDatabase[Any], settings: Settings, service: RunService
) -> None:
    """With no inventory events, the inventory checkpoint still advances (postBatchResumeToken)."""
    async with service(settings):
        await caught_up(db)
        before = await checkpoint(db, "inventory")
        for i in range(3):
            await db.orders.insert_one({"user_id": i, "amount": 1, "status": "completed"})
        await caught_up(db)
        after = await checkpoint(db, "inventory")
    assert after["token"] is not None
    assert after["position"] > before["position"]
    assert after["cluster_time"] == before["cluster_time"]  # nothing was applied


async def test_lost_history_triggers_an_automatic_resync_that_ends_exact(
    private_mongosim: Any, service: RunService
) -> None:
    """The oplog rolls past the checkpoint while the service is down: 286, resync, exact."""
    async with private_mongosim(oplog_size=30) as sim:
        settings = Settings(
            mongodb_uri=SecretStr(sim.uri),
            database="shop",
            max_batch_wait_ms=50,
            idle_checkpoint_interval_s=0.2,
        )
        client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(sim.uri)
        db = client.shop
        try:
            async with service(settings):
                await db.orders.insert_one(
                    {"_id": 0, "user_id": "h", "amount": 1, "status": "completed"}
                )
                await db.inventory.insert_one({"_id": "p", "sku": "P", "name": "P", "stock": 1})
                await caught_up(db)
            await db.inventory.delete_one({"_id": "p"})
            for i in range(1, 61):
                await db.orders.insert_one(
                    {"_id": i, "user_id": "h", "amount": 1, "status": "completed"}
                )
            await db.orders.delete_one({"_id": 0})
            with capture_logs() as logs:
                async with service(settings):
                    await caught_up(db)
            lost = [e for e in logs if e["event"] == "stream.history_lost"]
            assert {e["stream"] for e in lost} == {"orders", "inventory"}
            assert all("286" in e["reason"] for e in lost)
            totals = await db.user_totals.find_one({"_id": "h"})
            assert totals is not None and (totals["total"], totals["count"]) == (
                Decimal128("60"),
                60,
            )
            [alert] = await db.stock_alerts.find({"product_id": "p"}).to_list(None)
            assert (alert["state"], alert["resolution"]) == ("resolved", "deleted")
            async with Mongo(settings.mongo_options()) as mongo:
                assert not (await verify(mongo, default_threshold=10)).drift
        finally:
            client.close()


async def test_dropping_the_orders_collection_empties_the_totals(
    db: AsyncIOMotorDatabase[Any], settings: Settings, service: RunService
) -> None:
    """A drop ends the collection's stream; the resync that follows finds no orders."""
    async with service(settings):
        await db.orders.insert_one({"user_id": "d", "amount": 1, "status": "completed"})
        await caught_up(db)
        await db.orders.drop()
        await db.orders.insert_one({"user_id": "e", "amount": 2, "status": "completed"})
        await caught_up(db)
        assert await db.user_totals.find_one({"_id": "d"}) is None
        totals = await db.user_totals.find_one({"_id": "e"})
        assert totals is not None and totals["total"] == Decimal128("2")


async def test_two_instances_on_the_same_streams_never_double_count(
    db: AsyncIOMotorDatabase[Any], settings: Settings, mongo: Mongo, service: RunService
) -> None:
    """Both read every event; the checkpoint compare-and-set lets each batch land once."""
    async with service(settings, instance_id="a"), service(settings, instance_id="b"):
        for burst in range(10):
            await db.orders.insert_many(
                [{"user_id": u, "amount": 1, "status": "completed"} for u in range(5)]
            )
            await db.inventory.insert_one(
                {"_id": burst, "sku": f"S{burst}", "name": "n", "stock": burst}
            )
            await asyncio.sleep(0)  # one loop step, no time: watchers interleave with writes
        await caught_up(db)
    for u in range(5):
        totals = await db.user_totals.find_one({"_id": u})
        assert totals is not None and (totals["total"], totals["count"]) == (Decimal128("10"), 10)
    assert await db.stock_alerts.count_documents({"state": "open"}) == 10
    assert not (await verify(mongo, default_threshold=10)).drift
