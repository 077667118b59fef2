"""SIGKILL the running service at random instants: totals and alerts stay exact."""

from __future__ import annotations

import os
import random
from typing import Any

from motor.motor_asyncio import AsyncIOMotorDatabase

from streamer.mongo import Mongo
from streamer.runtime.verify import verify
from tests.support.model import Traffic, expected_totals, totals_differences
from tests.support.polling import eventually
from tests.support.service import caught_up
from tests.support.service_process import ServiceProcess, sigkills_under_traffic

EVENTS = int(os.environ.get("CRASH_EVENTS", "4000"))
KILLS = 5  # mid-stream SIGKILLs, at the least: traffic goes on until both counts are met


async def streaming(db: AsyncIOMotorDatabase[Any], within_s: float = 30.0) -> None:
    async def both_streaming() -> bool:
        return await db.streamer_checkpoints.count_documents({"phase": "stream"}) >= 2

    await eventually(both_streaming, what="the service streaming", within_s=within_s)


async def test_sigkill_at_random_instants_loses_and_doubles_nothing(
    db: AsyncIOMotorDatabase[Any], mongo_uri: str, mongo: Mongo
) -> None:
    """Thousands of events, SIGKILLs mid-stream and mid-start-up, then exact results."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    service = ServiceProcess(mongo_uri, db.name, driver=mongo.options.driver)
    traffic = Traffic(db, rng)
    await service.start()
    await streaming(db)
    kills = await sigkills_under_traffic(service, traffic, rng, events=EVENTS, kills=KILLS)
    try:
        await caught_up(db, within_s=60)
    except AssertionError:
        _, err = await service.stop()
        print(err[-20000:])  # the last service's log, to see why it stalled
        raise
    code, err = await service.stop()
    assert code == 0, err[-5000:]
    final = await db.orders.find().to_list(None)
    problems = totals_differences(expected_totals(final), await db.user_totals.find().to_list(None))
    problems += await traffic.alert_differences()
    report = await verify(mongo, default_threshold=10)
    print(
        f"crash: seed {seed}, {traffic.events} events, {kills.total} SIGKILLs "
        f"({kills.working} mid-stream, {kills.starting} in start-up), "
        f"{len(problems) + len(report.differences)} differences"
    )
    assert kills.working >= KILLS and service.kills == kills.total
    assert not problems, problems[:20]
    assert not report.drift, report.lines()[:20]
