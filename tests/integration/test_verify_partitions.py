"""``streamer verify`` of streams split into partitions: each partition's slice of the
sources read at that partition's own position, exact while the service runs."""

from __future__ import annotations

import random
from typing import Any

from bson import Decimal128
from motor.motor_asyncio import AsyncIOMotorDatabase

from streamer.commands.verify import comparable_report
from streamer.mongo import Mongo
from tests.support.model import Traffic, continuous
from tests.support.service import RunService, caught_up, test_settings

PARTITIONS = 4
VERIFY_RUNS = 10


async def test_verify_of_a_split_service_under_mixed_traffic_never_reports_false_drift(
    db: AsyncIOMotorDatabase[Any], mongo: Mongo, service: RunService
) -> None:
    """partitions=4, the traffic running throughout (orders moving between users, so a
    user's totals are written by several partitions at their own positions): 10
    verifications in a row find no drift; then a hand-edited total is found."""
    settings = test_settings(mongo.options.uri, db.name, partitions=PARTITIONS)
    traffic = Traffic(db, random.Random(19))
    async with service(settings), continuous(traffic):
        await caught_up(db)
        split = 0
        for run in range(VERIFY_RUNS):
            report = await comparable_report(mongo, settings, wait_s=10)
            assert not report.drift, (run, report.lines())
            assert report.totals.checked > 0 and report.alerts.checked > 0
            assert set(report.totals.partition_at) == set(range(PARTITIONS))
            assert set(report.alerts.partition_at) == set(range(PARTITIONS))
            # Read at more than one position: the partitions did not all stand still.
            split += len(set(report.totals.partition_at.values())) > 1
        user = next(iter(report.expected_totals.values())).user_id
        await db.user_totals.update_one({"_id": user}, {"$set": {"total": Decimal128("-1")}})
        drifted = await comparable_report(mongo, settings, wait_s=10)
    assert [d.key for d in drifted.totals.drifts] == [user], drifted.lines()
    print(
        f"\n{VERIFY_RUNS} verifications of {PARTITIONS} partitions, 0 false drifts, "
        f"{split} read at several positions, {traffic.events} events of traffic"
    )
