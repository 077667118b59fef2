"""Snapshot reads at a past cluster time (``atClusterTime``) within the history window."""

from __future__ import annotations

from typing import Any

import pytest
from bson import Timestamp
from motor.motor_asyncio import AsyncIOMotorClient, AsyncIOMotorDatabase
from pymongo.errors import OperationFailure

from tests.support.polling import eventually

WINDOW = "minSnapshotHistoryWindowInSeconds"


async def at(db: AsyncIOMotorDatabase[Any], coll: str, ts: Timestamp) -> dict[Any, Any]:
    """The documents of ``coll`` at ``ts``, by _id; the reply must name ``ts``."""
    reply = await db.command(
        {
            "find": coll,
            "filter": {},
            "readConcern": {"level": "snapshot", "atClusterTime": ts},
            "batchSize": 1000,
        }
    )
    assert reply["cursor"]["atClusterTime"] == ts
    assert reply["cursor"]["id"] == 0
    return {d["_id"]: d for d in reply["cursor"]["firstBatch"]}


async def now(db: AsyncIOMotorDatabase[Any]) -> Timestamp:
    ts: Timestamp = (await db.command("ping"))["operationTime"]
    return ts


async def test_a_read_at_a_past_cluster_time_sees_the_documents_as_they_were(
    client: AsyncIOMotorClient[Any], db: AsyncIOMotorDatabase[Any]
) -> None:
    """Inserts, updates, replaces, deletes and a transaction after T are all undone at T."""
    await db.c.insert_many([{"_id": 1, "v": 1}, {"_id": 2, "v": 2}, {"_id": 3, "v": 3}])
    t1 = await now(db)
    await db.c.update_one({"_id": 1}, {"$set": {"v": 10}})
    await db.c.replace_one({"_id": 2}, {"w": 20})
    await db.c.delete_one({"_id": 3})
    await db.c.insert_one({"_id": 4, "v": 4})
    t2 = await now(db)
    async with await client.start_session() as s, s.start_transaction():
        await db.c.update_one({"_id": 1}, {"$inc": {"v": 1}}, session=s)
        await db.c.delete_one({"_id": 4}, session=s)
    assert await at(db, "c", t1) == {
        1: {"_id": 1, "v": 1},
        2: {"_id": 2, "v": 2},
        3: {"_id": 3, "v": 3},
    }
    assert await at(db, "c", t2) == {
        1: {"_id": 1, "v": 10},
        2: {"_id": 2, "w": 20},
        4: {"_id": 4, "v": 4},
    }
    assert await at(db, "c", await now(db)) == {1: {"_id": 1, "v": 11}, 2: {"_id": 2, "w": 20}}
    # The same point through aggregate, and a filter applied to the past documents.
    reply = await db.command(
        {
            "aggregate": "c",
            "pipeline": [{"$match": {"v": {"$gte": 2}}}, {"$sort": {"_id": 1}}],
            "cursor": {},
            "readConcern": {"level": "snapshot", "atClusterTime": t1},
        }
    )
    assert [d["_id"] for d in reply["cursor"]["firstBatch"]] == [2, 3]


async def test_the_history_window_is_a_server_parameter(client: AsyncIOMotorClient[Any]) -> None:
    """getParameter reports minSnapshotHistoryWindowInSeconds (300 s unless configured)."""
    reply = await client.admin.command({"getParameter": 1, WINDOW: 1})
    assert isinstance(reply[WINDOW], int) and reply[WINDOW] >= 0


async def test_a_read_older_than_the_window_fails_with_snapshot_too_old(
    private_mongosim: Any,
) -> None:
    """setParameter shrinks the window at run time; a point outside it fails with 239."""
    async with private_mongosim(snapshot_history_window_s=300) as sim:
        client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(sim.uri)
        try:
            db = client.db
            await db.c.insert_one({"_id": 1})
            t1 = await now(db)
            assert await at(db, "c", t1) == {1: {"_id": 1}}
            reply = await client.admin.command({"setParameter": 1, WINDOW: 0})
            assert reply["was"] == 300
            assert (await client.admin.command({"getParameter": 1, WINDOW: 1}))[WINDOW] == 0

            async def moved_on() -> bool:  # the clock moves on within a second
                await db.c.insert_one({})
                return (await now(db)).time > t1.time

            await eventually(moved_on, what="a cluster time past t1's second", within_s=5)
            with pytest.raises(OperationFailure) as info:
                await at(db, "c", t1)
            assert info.value.code == 239
            assert info.value.details["codeName"] == "SnapshotTooOld"
        finally:
            client.close()


async def test_a_read_before_the_retained_oplog_or_a_drop_fails_with_snapshot_too_old(
    private_mongosim: Any,
) -> None:
    """History goes with the oplog entries it is built from, and with a dropped collection."""
    async with private_mongosim(oplog_size=20) as sim:
        client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(sim.uri)
        try:
            db = client.db
            await db.c.insert_one({"_id": 0})
            await db.d.insert_one({"_id": 0})
            t1 = await now(db)
            await db.d.drop()
            with pytest.raises(OperationFailure) as info:
                await at(db, "d", t1)
            assert info.value.code == 239
            assert await at(db, "c", t1) == {0: {"_id": 0}}
            for i in range(1, 40):
                await db.c.insert_one({"_id": i})
            with pytest.raises(OperationFailure) as info:
                await at(db, "c", t1)
            assert info.value.code == 239
        finally:
            client.close()
