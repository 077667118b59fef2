"""Transient failures are retried or resumed from the checkpoint: nothing lost or doubled."""

from __future__ import annotations

from typing import Any

import pytest
from bson import Decimal128
from motor.motor_asyncio import AsyncIOMotorDatabase
from structlog.testing import capture_logs

from streamer.mongo import Mongo
from streamer.runtime.verify import verify
from streamer.settings import Settings
from tests.support.service import RunService, caught_up


@pytest.mark.parametrize(
    "failure",
    [
        {"errorCode": 112, "errorLabels": ["TransientTransactionError"]},
        {"errorCode": 10107},
        {"errorCode": 189},
        {"errorCode": 91},
        {"closeConnection": True},
    ],
    ids=[
        "WriteConflict",
        "NotWritablePrimary",
        "PrimarySteppedDown",
        "ShutdownInProgress",
        "closed",
    ],
)
async def test_failed_commits_are_retried_and_counted_once(
    db: AsyncIOMotorDatabase[Any],
    settings: Settings,
    mongo: Mongo,
    service: RunService,
    fail_point: Any,
    failure: dict[str, Any],
) -> None:
    """commitTransaction fails twice; the batch commits on a retry, exactly once."""
    async with service(settings):
        with capture_logs() as logs:
            async with fail_point(
                {
                    "mode": {"times": 2},
                    "data": {"failCommands": ["commitTransaction"], **failure},
                }
            ):
                await db.orders.insert_many(
                    [{"user_id": "f", "amount": 2, "status": "completed"} for _ in range(3)]
                )
                await caught_up(db)
    totals = await db.user_totals.find_one({"_id": "f"})
    assert totals is not None and (totals["total"], totals["count"]) == (Decimal128("6"), 3)
    assert [e for e in logs if e["event"] in ("mongo.retry", "mongo.commit_retry")]
    assert not (await verify(mongo, default_threshold=10)).drift


async def test_a_failing_get_more_reopens_the_stream_from_the_checkpoint(
    db: AsyncIOMotorDatabase[Any],
    settings: Settings,
    mongo: Mongo,
    service: RunService,
    fail_point: Any,
) -> None:
    """A resumable getMore error reopens the change stream; no event is lost or repeated."""
    async with (
        service(settings),
        fail_point(
            {
                "mode": {"times": 3},
                "data": {"failCommands": ["getMore"], "errorCode": 10107},
            }
        ),
    ):
        for _i in range(20):
            await db.orders.insert_one({"user_id": "g", "amount": 1, "status": "completed"})
        await caught_up(db)
    totals = await db.user_totals.find_one({"_id": "g"})
    assert totals is not None and totals["count"] == 20
    assert not (await verify(mongo, default_threshold=10)).drift
