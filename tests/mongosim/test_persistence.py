"""--data-dir: data, indexes and the oplog survive a SIGKILL of mongosim."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mongosim.process import MongoSimProcess
from motor.motor_asyncio import AsyncIOMotorClient
from pymongo.errors import DuplicateKeyError


@pytest.fixture
def skip_on_real_server(private_mongosim: Any) -> None:
    """SIGKILLing the server is only possible for our own mongosim."""


async def test_data_indexes_and_history_survive_sigkill(
    tmp_path: Path, skip_on_real_server: None
) -> None:
    proc = MongoSimProcess(data_dir=tmp_path / "data")
    await proc.start()
    try:
        client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(proc.uri)
        coll = client.app.orders
        await coll.create_index("email", unique=True)
        async with coll.watch() as stream:
            await coll.insert_many([{"_id": i, "email": f"{i}@x"} for i in range(100)])
            await stream.next()
            token = stream.resume_token
        await coll.update_one({"_id": 5}, {"$set": {"v": 1}})
        client.close()
        proc.kill()
        await proc.restart()
        client = AsyncIOMotorClient(proc.uri)
        coll = client.app.orders
        assert await coll.count_documents({}) == 100
        assert (await coll.find_one({"_id": 5}))["v"] == 1
        with pytest.raises(DuplicateKeyError):
            await coll.insert_one({"email": "7@x"})
        async with coll.watch(resume_after=token) as stream:
            event = await stream.next()
        assert event["operationType"] == "insert" and event["documentKey"] == {"_id": 1}
        client.close()
    finally:
        await proc.stop()
