"""Fail points the drivers' specification suites configure, as mongod offers them."""

from __future__ import annotations

import os
from typing import Any

import pytest
from pymongo.errors import AutoReconnect, ExecutionTimeout


async def test_a_write_whose_connection_closes_after_commit_is_retried_once(
    db: Any, fail_point: Any
) -> None:
    """onPrimaryTransactionalWrite closes the connection after a statement commits; the
    driver's retry runs only the statements left, so each document lands once."""
    await db.c.insert_one({"_id": 1})
    async with fail_point(
        {"configureFailPoint": "onPrimaryTransactionalWrite", "mode": {"times": 1}}
    ):
        await db.c.insert_many([{"_id": 2}, {"_id": 3}, {"_id": 4}])
    assert [d["_id"] async for d in db.c.find().sort("_id")] == [1, 2, 3, 4]


async def test_a_write_failed_before_commit_is_not_reflected(db: Any, fail_point: Any) -> None:
    """failBeforeCommitExceptionCode: the statement fails uncommitted, on every retry."""
    await db.c.insert_one({"_id": 1})
    spec = {
        "configureFailPoint": "onPrimaryTransactionalWrite",
        "mode": "alwaysOn",
        "data": {"failBeforeCommitExceptionCode": 1},
    }
    async with fail_point(spec):
        with pytest.raises(AutoReconnect):
            await db.c.insert_one({"_id": 2})
        with pytest.raises(AutoReconnect):
            await db.c.find_one_and_update({"_id": 1}, {"$set": {"x": 1}})
    assert await db.c.find().to_list() == [{"_id": 1}]


async def test_max_time_always_time_out_fails_commands_with_max_time_ms(
    db: Any, fail_point: Any
) -> None:
    await db.c.insert_many([{"_id": i} for i in range(5)])
    cursor = db.c.find(batch_size=2).max_time_ms(10_000)
    await cursor.next()
    async with fail_point({"configureFailPoint": "maxTimeAlwaysTimeOut", "mode": "alwaysOn"}):
        with pytest.raises(ExecutionTimeout):
            await db.c.find_one({}, max_time_ms=10_000)
        with pytest.raises(ExecutionTimeout):
            await cursor.to_list()  # its getMore inherits the find's maxTimeMS
        assert await db.c.find_one({"_id": 1}) == {"_id": 1}  # no maxTimeMS: unaffected


async def test_a_retried_write_gets_its_result_without_the_first_write_concern_error(
    db: Any, fail_point: Any
) -> None:
    """The retry of a write answered with a retryable writeConcernError is answered from
    the write's own result, not from the reply the fail point decorated."""
    spec = {
        "configureFailPoint": "failCommand",
        "mode": {"times": 1},
        "data": {
            "failCommands": ["insert"],
            "writeConcernError": {"code": 6, "errmsg": "host unreachable"},
        },
    }
    async with fail_point(spec):
        result = await db.c.insert_one({"_id": 1})
    assert result.inserted_id == 1
    assert await db.c.count_documents({}) == 1


@pytest.mark.skipif(
    bool(os.environ.get("MONGODB_URI")),
    reason="mongosimAfterRun is mongosim's own failCommand option; mongod's acts before running",
)
async def test_mongosim_after_run_option_drops_the_reply_of_a_command_that_ran(
    db: Any, fail_point: Any
) -> None:
    """failCommand with ``mongosimAfterRun``: the command runs, then its connection closes
    without the reply (a reply lost after the work was done)."""
    spec = {
        "configureFailPoint": "failCommand",
        "mode": "alwaysOn",
        "data": {"failCommands": ["insert"], "closeConnection": True, "mongosimAfterRun": True},
    }
    async with fail_point(spec):
        with pytest.raises(AutoReconnect):
            await db.c.insert_one({"_id": 1})  # the driver's retry: answered, reply lost too
    assert await db.c.find().to_list() == [{"_id": 1}]  # it ran, once
