"""TTL deletions, the oplog as local.oplog.rs, and history that rolls over."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from bson import Timestamp
from motor.motor_asyncio import AsyncIOMotorClient
from pymongo.errors import OperationFailure


async def test_expired_documents_are_deleted_and_streamed_as_delete_events(db: Any) -> None:
    await db.sessions.create_index("expires_at", expireAfterSeconds=0)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    future = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    async with db.sessions.watch() as stream:
        await db.sessions.insert_many(
            [{"_id": "old", "expires_at": past}, {"_id": "new", "expires_at": future}]
        )
        kinds = []
        async for event in stream:
            kinds.append((event["operationType"], event["documentKey"]["_id"]))
            if event["operationType"] == "delete":
                break
    assert kinds == [("insert", "old"), ("insert", "new"), ("delete", "old")]
    assert [d["_id"] async for d in db.sessions.find()] == ["new"]


async def test_the_oplog_can_be_read_oldest_and_newest_first(client: Any, db: Any) -> None:
    await db.c.insert_one({"_id": 1})
    oplog = client.local["oplog.rs"]
    oldest = await oplog.find({}, {"ts": 1}).sort("$natural", 1).limit(1).to_list(1)
    newest = await oplog.find({}, {"ts": 1}).sort("$natural", -1).limit(1).to_list(1)
    assert isinstance(oldest[0]["ts"], Timestamp) and isinstance(newest[0]["ts"], Timestamp)
    assert oldest[0]["ts"] <= newest[0]["ts"]
    entry = await oplog.find_one({"ns": f"{db.name}.c", "op": "i"})
    assert entry is not None and entry["o"] == {"_id": 1}


async def test_resuming_after_the_oplog_wrapped_fails_with_history_lost(
    private_mongosim: Any,
) -> None:
    async with private_mongosim(oplog_size=50) as sim:
        client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(sim.uri)
        try:
            coll = client.db.c
            async with coll.watch() as stream:
                await coll.insert_one({"_id": 0})
                first = await stream.next()
                token = stream.resume_token
            assert first["documentKey"] == {"_id": 0}
            await coll.insert_many([{"_id": i} for i in range(1, 200)])
            with pytest.raises(OperationFailure) as info:
                async with coll.watch(resume_after=token) as stream:
                    await stream.try_next()
            assert info.value.code == 286
            assert info.value.details["codeName"] == "ChangeStreamHistoryLost"
        finally:
            client.close()
