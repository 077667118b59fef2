"""Two instances: one owns each stream, the other stands by and takes over when it dies."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from motor.motor_asyncio import AsyncIOMotorDatabase

from streamer.mongo import Mongo
from streamer.runtime.verify import verify
from tests.support.cli import free_port
from tests.support.model import Traffic, drive, expected_totals, totals_differences
from tests.support.service import caught_up
from tests.support.service_process import ServiceProcess, until_owned_by

TTL_S = 2.0


async def test_killing_the_owner_hands_the_streams_to_the_standby_without_loss(
    db: AsyncIOMotorDatabase[Any], mongo_uri: str, mongo: Mongo
) -> None:
    """SIGKILL the owner mid-traffic: the standby owns both streams within the TTL, exactly."""
    make = lambda name: ServiceProcess(  # noqa: E731 - three instances alike
        mongo_uri,
        db.name,
        instance_id=name,
        lease_ttl_s=TTL_S,
        driver=mongo.options.driver,
        http_port=free_port(),
    )
    a, b, c = make("a"), make("b"), make("c")
    traffic = Traffic(db, random.Random(7))
    await a.start()
    await until_owned_by(db, "a", within_s=30)
    await caught_up(db, within_s=60)  # a's first-start resync done before any traffic
    await b.start()
    await drive(traffic, 500)
    await b.until_standing_by()  # else b's start-up would count as takeover time
    await a.kill()
    takeover = asyncio.create_task(until_owned_by(db, "b", within_s=3 * TTL_S))
    await drive(traffic, 500)
    took = await takeover
    # A rolling replacement: c starts, b is stopped gracefully and hands over at once.
    await c.start()
    await drive(traffic, 300)
    await c.until_standing_by()
    code, err = await b.stop()
    assert code == 0, err[-3000:]
    handover = await until_owned_by(db, "c", within_s=3 * TTL_S)
    await drive(traffic, 300)
    await caught_up(db, within_s=60)
    code, err = await c.stop()
    assert code == 0, err[-3000:]
    final = await db.orders.find().to_list(None)
    problems = totals_differences(expected_totals(final), await db.user_totals.find().to_list(None))
    problems += await traffic.alert_differences()
    print(
        f"ha: takeover after SIGKILL {took:.2f}s, graceful handover {handover:.2f}s, "
        f"{traffic.events} events, {len(problems)} differences"
    )
    # The design's worst: the lease runs out one TTL after its last renewal (at most
    # TTL/3 before the kill), and the standby's next try comes within TTL/3: 1.33 TTL.
    # Measured 2.00-2.15 s with TTL 2 s and two busy loops beside it. 1.5 TTL leaves the
    # loaded machine 0.33 TTL; a takeover that waited for a second expiry would be 2 TTL.
    assert took <= 1.5 * TTL_S
    assert not problems, problems[:20]
    assert not (await verify(mongo, default_threshold=10)).drift
