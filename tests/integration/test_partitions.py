"""Split streams: partitions that several instances share, exactly once through changes."""

from __future__ import annotations

import random
import time
from dataclasses import replace
from typing import Any

import pytest
from motor.motor_asyncio import AsyncIOMotorDatabase
from structlog.testing import capture_logs

from streamer.commands.repartition import run_repartition
from streamer.commands.resync import run_resync
from streamer.core.errors import SettingsError
from streamer.core.partitions import partitions_of
from streamer.mongo import Mongo
from streamer.runtime import partitionings
from streamer.runtime.processes import THIS_PROCESS
from streamer.runtime.supervisor import Service
from streamer.settings import Settings
from tests.support.cli import free_port
from tests.support.model import Traffic, continuous, drive, expected_totals, totals_differences
from tests.support.polling import eventually
from tests.support.service import RunService, caught_up, partition_keys, test_settings
from tests.support.service_process import ServiceProcess, live_leases

STREAMS = ("orders", "inventory")
TTL_S = 3.0


async def exact(db: AsyncIOMotorDatabase[Any], traffic: Traffic) -> list[Any]:
    final = await db.orders.find().to_list(None)
    problems: list[Any] = totals_differences(
        expected_totals(final), await db.user_totals.find().to_list(None)
    )
    return problems + await traffic.alert_differences()


async def test_one_instance_owns_every_partition_and_applies_each_event_once(
    db: AsyncIOMotorDatabase[Any], mongo_uri: str, service: RunService
) -> None:
    traffic = Traffic(db, random.Random(3), hot_share=0.3)
    # Orders from before the start: the first resync of each partition scans its share.
    # (Not through the traffic model: alerts count transitions, which a resync of
    # inventory written before the start cannot see.)
    await db.orders.insert_many([{"_id": f"early-{i}", **traffic.order()} for i in range(200)])
    settings = test_settings(mongo_uri, db.name, partitions=4)
    async with service(settings) as running:
        assert sorted(running.watchers) == sorted(partition_keys(4))
        await drive(traffic, 600)
        await caught_up(db, partition_keys(4), within_s=60)
        ready = running.health.readiness()
        assert ready.ready, ready.checks
        assert {k: v for k, v in ready.checks.items() if "#" in k} == dict.fromkeys(
            partition_keys(4), "ok"
        )
        registry = running.metrics.registry

        def shares(action: str) -> float:
            value = registry.get_sample_value(
                "streamer_totals_shares_total", {"stream": "orders", "action": action}
            )
            return value or 0.0

        # Each user's totals have one writer: the hot user's orders in every partition
        # reach its totals as shares, all folded by now, and no two transactions
        # wrote one document (no write conflict to retry).
        assert shares("deferred") > 0 and shares("folded") == shares("deferred")
        conflicts = [
            s
            for m in registry.collect()
            if m.name == "streamer_transaction_retries"
            for s in m.samples
            if s.name.endswith("_total") and "112" in s.labels["reason"] and s.value
        ]
        assert not conflicts, conflicts
    assert not await exact(db, traffic)
    mirror = await db.streamer_mirror_orders.find({}, {"p": 1}).to_list(None)
    assert {d["p"] for d in mirror} == {0, 1, 2, 3}  # every entry tagged with its partition


async def test_a_setting_that_disagrees_with_the_stored_split_is_refused_in_one_line(
    db: AsyncIOMotorDatabase[Any], mongo: Mongo
) -> None:
    await partitionings.ensure(mongo, "orders", 4)
    with pytest.raises(SettingsError) as refused:
        await partitionings.ensure(mongo, "orders", 8)
    assert str(refused.value).startswith("orders: stored as 4 partitions (epoch 1), but ")
    assert "partitions is 8 here" in str(refused.value)
    assert "\n" not in str(refused.value)


async def test_three_instances_share_the_partitions_and_absorb_a_sigkill_exactly(
    db: AsyncIOMotorDatabase[Any], mongo_uri: str, mongo: Mongo
) -> None:
    """P = 4, three instances: each partition has one owner, each instance at least one
    partition of each stream; after a SIGKILL the two left own all, and nothing is lost
    or counted twice (a hot user's orders land in every partition)."""
    make = lambda name: ServiceProcess(  # noqa: E731 - three instances alike
        mongo_uri,
        db.name,
        instance_id=name,
        lease_ttl_s=TTL_S,
        partitions=4,
        driver=mongo.options.driver,
        http_port=free_port(),
    )
    a, b, c = make("a"), make("b"), make("c")
    traffic = Traffic(db, random.Random(11), hot_share=0.3)
    await a.start()
    await caught_up(db, partition_keys(4), within_s=60)  # a's first-start resyncs done
    await b.start()
    await c.start()
    held: dict[str, str] = {}

    async def shared_by(names: set[str]) -> bool:
        nonlocal held
        await drive(traffic, 20)
        held = await live_leases(db)
        if set(held) != set(partition_keys(4)):
            return False
        return all({held[p.key] for p in partitions_of(stream, 4)} == names for stream in STREAMS)

    await eventually(
        lambda: shared_by({"a", "b", "c"}),
        what="every partition owned, each instance owning one of each stream",
        within_s=60,
        detail=lambda: held,
    )
    await a.kill()
    await eventually(
        lambda: shared_by({"b", "c"}),
        what="the killed instance's partitions absorbed",
        within_s=60,
        detail=lambda: held,
    )
    await drive(traffic, 300)
    await caught_up(db, partition_keys(4), within_s=60)
    for process in (b, c):
        code, err = await process.stop()
        assert code == 0, err[-3000:]
    problems = await exact(db, traffic)
    assert not problems, problems[:20]
    conflicts = await db.user_totals.find_one({"_id": 0})
    assert conflicts is not None and conflicts.get("v", 0) > 1  # the hot user, written by many


async def test_partitions_are_evenly_split_when_an_instance_joins(
    db: AsyncIOMotorDatabase[Any], mongo_uri: str, service: RunService
) -> None:
    """A second instance in the same process (another process id): the first hands over
    half of each stream's partitions, after finishing its batch."""
    traffic = Traffic(db, random.Random(5), hot_share=0.3)
    first = test_settings(mongo_uri, db.name, partitions=4, lease_ttl_s=TTL_S, instance_id="a")
    second = test_settings(mongo_uri, db.name, partitions=4, lease_ttl_s=TTL_S, instance_id="b")
    async with service(first) as a:
        await drive(traffic, 200)
        async with service(second, process=replace(THIS_PROCESS, nonce="second")) as b:
            held: dict[str, str] = {}

            async def halves() -> bool:
                nonlocal held
                await drive(traffic, 10)
                held = await live_leases(db)
                # The leases, and each instance running what it holds: a lease is taken
                # a moment before its watcher starts.
                return (
                    set(held) == set(partition_keys(4))
                    and sorted(held.values()).count("a") == 4
                    and len(a.watchers) == 4
                    and len(b.watchers) == 4
                )

            await eventually(halves, what="2 + 2 of each stream", within_s=30, detail=lambda: held)
            await drive(traffic, 200)
            await caught_up(db, partition_keys(4), within_s=60)
            rebalanced = a.metrics.registry.get_sample_value(
                "streamer_rebalances_total", {"stream": "orders"}
            )
            assert rebalanced == 2
    assert not await exact(db, traffic)


async def test_repartition_under_traffic_applies_every_event_once_alerts_included(
    db: AsyncIOMotorDatabase[Any], mongo_uri: str, mongo: Mongo, settings: Settings
) -> None:
    """2 -> 4 partitions while orders and stock change: the instance still set to 2
    stops at its next batch, saying why; the old partitions are drained to one cluster
    time and the new ones stream on from there: every event applied once, every alert
    transition kept, and an instance still set to 2 refused."""
    old = ServiceProcess(
        mongo_uri, db.name, instance_id="old", partitions=2, driver=mongo.options.driver
    )
    traffic = Traffic(db, random.Random(21), hot_share=0.3)
    await old.start()
    await caught_up(db, partition_keys(2), within_s=60)
    await drive(traffic, 300)
    started = time.monotonic()
    lines = await run_repartition(mongo, settings, STREAMS, 4)
    command_s = time.monotonic() - started
    assert lines[0].startswith("orders: 2 partitions -> 4 (epoch 2)")
    await drive(traffic, 100)  # the old instance's next batch meets the barrier
    code, err = await old.wait(within_s=60)
    assert code == 1, err[-3000:]
    assert "the stream was repartitioned into 4 partitions (epoch 2)" in err
    refused = ServiceProcess(mongo_uri, db.name, instance_id="late", partitions=2)
    await refused.start()
    code, err = await refused.wait(within_s=60)
    assert code == 2 and "stored as 4 partitions (epoch 2), but partitions is 2 here" in err
    new = ServiceProcess(
        mongo_uri, db.name, instance_id="new", partitions=4, driver=mongo.options.driver
    )
    restarted = time.monotonic()
    await new.start()
    await caught_up(db, partition_keys(4), within_s=60)  # what was written since the barrier
    print(
        f"repartition 2 -> 4: the command {command_s:.2f}s (barrier, drain, re-tag); a new "
        f"instance's start to caught up {time.monotonic() - restarted:.2f}s"
    )
    await drive(traffic, 300)
    await caught_up(db, partition_keys(4), within_s=60)
    code, err = await new.stop()
    assert code == 0, err[-3000:]
    problems = await exact(db, traffic)
    assert not problems, problems[:20]
    mirror = await db.streamer_mirror_orders.find({}, {"p": 1}).to_list(None)
    assert {d["p"] for d in mirror} == {0, 1, 2, 3}


async def test_a_fresh_resync_of_a_split_stream_clears_at_one_barrier_under_traffic(
    db: AsyncIOMotorDatabase[Any], mongo_uri: str, service: RunService
) -> None:
    """Totals no partition accounts for (a hand-made one) are gone after a fresh resync
    of the whole stream: every partition waits at one barrier while the stream is
    cleared, then scans its share; orders written meanwhile are applied once."""
    traffic = Traffic(db, random.Random(13), hot_share=0.3)
    settings = test_settings(mongo_uri, db.name, partitions=4)
    async with service(settings) as running:
        await drive(traffic, 300)
        await db.user_totals.insert_one({"_id": "ghost", "count": 7, "by_status": {}})
        async with continuous(traffic):
            code = await run_resync(running.settings, ("orders",), fresh=True)
        assert code == 0
        await caught_up(db, partition_keys(4), within_s=60)
        gens = {
            d["gen"] async for d in db.streamer_checkpoints.find({"_id": {"$regex": "^orders#"}})
        }
        assert len(gens) == 1  # one generation for the whole stream
    assert await db.user_totals.find_one({"_id": "ghost"}) is None
    assert not await exact(db, traffic)


async def test_a_newer_format_is_refused_in_one_line(
    db: AsyncIOMotorDatabase[Any], mongo: Mongo, mongo_uri: str
) -> None:
    """A partitioning record or a checkpoint written by a newer version is not misread:
    the record at start (a settings error, exit 2), a checkpoint when its owner loads it
    (the service stops with one error line)."""
    await db.streamer_partitionings.insert_one({"_id": "orders", "count": 1, "format": 99})
    with pytest.raises(SettingsError) as refused:
        await partitionings.ensure(mongo, "orders", 1)
    assert str(refused.value) == (
        "orders: the database holds format 99 of the service's documents; this version "
        "reads format 2 and older: run the newer version"
    )
    await db.streamer_partitionings.delete_many({})
    await db.streamer_checkpoints.insert_one(
        {"_id": "inventory", "version": 1, "phase": "stream", "gen": 1, "format": 99}
    )
    with capture_logs() as logs:
        code = await Service(test_settings(mongo_uri, db.name), http_port=0).run()
    assert code == 1
    errors = [e for e in logs if e["log_level"] == "error"]
    assert len(errors) == 1 and "inventory: the database holds format 99" in errors[0]["error"]
