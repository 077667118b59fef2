"""``streamer verify`` of streams split into partitions: each partition's slice of the
sources read at that partition's own position, exact while the service runs."""

from __future__ import annotations

import random
from typing import Any

import structlog
from bson import Decimal128
from mongosim.hashing import hash64
from motor.motor_asyncio import AsyncIOMotorDatabase

from streamer.commands.status import lines, read_status
from streamer.commands.verify import (
    Options,
    Prepared,
    comparable_report,
    repair_totals,
    repair_under,
    verify_and_repair,
)
from streamer.core.partitions import and_filters, owner_of, partitions_of
from streamer.mongo import Mongo
from streamer.runtime.checkpoints import CheckpointStore
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
    split = 0  # verifications that read the partitions at more than one position
    async with service(settings):
        async with continuous(traffic):
            await caught_up(db)
            for run in range(VERIFY_RUNS):
                report = await comparable_report(mongo, settings, wait_s=10)
                assert not report.drift, (run, report.lines())
                assert report.totals.checked > 0 and report.alerts.checked > 0
                assert set(report.totals.partition_at) == set(range(PARTITIONS))
                assert set(report.alerts.partition_at) == set(range(PARTITIONS))
                split += len(set(report.totals.partition_at.values())) > 1
        # The traffic stopped, so nothing rewrites or deletes the edited document.
        await caught_up(db)
        edited = await db.user_totals.find_one({})
        assert edited is not None
        user = edited["_id"]
        await db.user_totals.update_one({"_id": user}, {"$set": {"total": Decimal128("-1")}})
        drifted = await comparable_report(mongo, settings, wait_s=10)
    assert [d.key for d in drifted.totals.drifts] == [user], drifted.lines()
    print(
        f"\n{VERIFY_RUNS} verifications of {PARTITIONS} partitions, 0 false drifts, "
        f"{split} read at several positions, {traffic.events} events of traffic"
    )


async def partitions_holding(db: AsyncIOMotorDatabase[Any], user: str) -> list[int]:
    """The partitions of orders holding one of ``user``'s orders."""
    return [
        unit.index
        for unit in partitions_of("orders", PARTITIONS)
        if await db.orders.count_documents(and_filters({"user_id": user}, unit.source_filter()))
    ]


async def spread_orders(db: AsyncIOMotorDatabase[Any], user: str) -> None:
    """Eight completed orders of ``user`` (amount 1 each), fixed ids spread over the
    partitions: the user's totals are written by several of them."""
    await db.orders.insert_many(
        [
            {"_id": f"{user}-{i}", "user_id": user, "amount": 1, "status": "completed"}
            for i in range(8)
        ]
    )
    assert len(await partitions_holding(db, user)) >= 2


async def test_a_repair_of_a_split_stream_holds_every_partition_and_fixes_the_total_under_traffic(
    db: AsyncIOMotorDatabase[Any], mongo: Mongo, service: RunService
) -> None:
    """partitions=4 under steady traffic: a hand-edited total of a user whose orders lie
    in several partitions is found, every orders partition's owner is held still once
    and let go, the total is rewritten from all the slices, and verify is clean after."""
    settings = test_settings(mongo.options.uri, db.name, partitions=PARTITIONS)
    await spread_orders(db, "hal")
    traffic = Traffic(db, random.Random(20))
    with structlog.testing.capture_logs() as logs:
        async with service(settings):
            await caught_up(db)
            await db.user_totals.update_one({"_id": "hal"}, {"$set": {"count": 3}})
            async with continuous(traffic):
                first, changed, after = await verify_and_repair(
                    mongo, settings, Options(repair=True, wait_s=10)
                )
                assert [d.key for d in first.totals.drifts] == ["hal"], first.lines()
                assert changed == ["user_totals 'hal': rewritten (count 8, total 8)"]
                assert after is not None
                assert not after.drift, after.lines()
            await caught_up(db)
            clean = await comparable_report(mongo, settings, wait_s=10)
            assert not clean.drift, clean.lines()
    orders_keys = {p.key for p in partitions_of("orders", PARTITIONS)}
    held = sorted(e["stream"] for e in logs if e["event"] == "stream.held")
    ended = [e for e in logs if e["event"] == "stream.hold_ended"]
    assert held == sorted(orders_keys), held
    assert {e["stream"] for e in ended} == orders_keys and {e["how"] for e in ended} == {
        "withdrawn"
    }, ended
    doc = await db.user_totals.find_one({"_id": "hal"})
    assert doc is not None and doc["count"] == 8 and doc["total"] == Decimal128("8")


async def test_a_commit_on_any_one_partition_between_the_read_and_the_repair_aborts_that_attempt(
    db: AsyncIOMotorDatabase[Any], mongo: Mongo, service: RunService
) -> None:
    """The service stopped (nobody to hold): after the first attempt read its slices,
    the last partition's checkpoint moves, as an owner's commit would move it. That
    attempt writes nothing; the next reads again and commits, moving every
    partition's checkpoint by one in its transaction."""
    settings = test_settings(mongo.options.uri, db.name, partitions=PARTITIONS)
    await spread_orders(db, "ida")
    async with service(settings):
        await caught_up(db)
    await db.user_totals.update_one({"_id": "ida"}, {"$set": {"count": 1}})
    report = await comparable_report(mongo, settings, wait_s=10)
    assert [d.key for d in report.totals.drifts] == ["ida"]
    keys = [p.key for p in partitions_of("orders", PARTITIONS)]
    moved = CheckpointStore(mongo, "another-owner")
    attempts: list[str] = []

    async def prepare_then_move_the_last(store: CheckpointStore) -> Prepared:
        """Repair "ida" to count 42; on the first attempt, the last partition commits."""
        cps = [cp for cp in [await store.load(k) for k in keys] if cp is not None]

        async def work(session: Any) -> None:
            await mongo.update_one(
                "user_totals", {"_id": "ida"}, {"$set": {"count": 42}}, session=session
            )

        attempts.append("read")
        if len(attempts) == 1:
            last = await moved.load(keys[-1])
            assert last is not None
            await moved.advance(last, moved.successor(last))
        return cps, work, ["ida"]

    before = {k: await moved.load(k) for k in keys}
    assert await repair_under(mongo, "orders", prepare_then_move_the_last) == ["ida"]
    assert attempts == ["read", "read"]
    after = {k: await moved.load(k) for k in keys}
    for k in keys:
        b, a = before[k], after[k]
        assert b is not None and a is not None
        # Each moved once by the repair; the last once more by "another-owner".
        assert a.version == b.version + (2 if k == keys[-1] else 1), (k, b.version, a.version)
        assert a.owner is not None and ":verify:" in a.owner, (k, a.owner)
    doc = await db.user_totals.find_one({"_id": "ida"})
    assert doc is not None and doc["count"] == 42
    # The real repair then puts the true totals back from the slices.
    assert await repair_totals(mongo, await comparable_report(mongo, settings, wait_s=10)) == [
        "user_totals 'ida': rewritten (count 8, total 8)"
    ]


def orders_outside_the_writer(user: str, n: int = 8) -> list[str]:
    """``n`` order ids of ``user`` none of which falls in the partition that writes the
    user's totals (the server's hash of each id, mongod's exact value in mongosim)."""
    writer = owner_of(user, PARTITIONS)
    ids = (f"{user}-{i}" for i in range(1000))
    return [i for i in ids if abs(int(hash64(i))) % PARTITIONS != writer][:n]


async def test_shares_waiting_to_be_folded_count_in_verify_and_a_repair_takes_them(
    db: AsyncIOMotorDatabase[Any], mongo: Mongo, service: RunService
) -> None:
    """A user's orders, none in the partition that writes its totals, reach the totals
    as shares for that partition to fold; with it idle and its look for them an hour
    away, they wait. Verify counts them (no false drift), finds one edited, and the
    repair rewrites the totals and takes the waiting shares in the same transaction."""
    settings = test_settings(mongo.options.uri, db.name, partitions=PARTITIONS)
    settings = settings.model_copy(update={"fold_poll_s": 3600.0})
    async with service(settings):
        await caught_up(db)
        await db.orders.insert_many(
            [
                {"_id": i, "user_id": "jo", "amount": 1, "status": "completed"}
                for i in orders_outside_the_writer("jo")
            ]
        )
        await caught_up(db, folded=False)
    waiting = await db.streamer_totals_deltas.find({"u": "jo"}).to_list(None)
    assert waiting and sum(d["count"] for d in waiting) == 8
    assert await db.user_totals.find_one({"_id": "jo"}) is None  # all of it still waits
    # `streamer status` shows them on the partition that will fold them.
    status = await read_status(mongo, {"orders": "orders"})
    writer = owner_of("jo", PARTITIONS)
    assert [p.shares_waiting for p in status.streams[0].partitions] == [
        len(waiting) if i == writer else 0 for i in range(PARTITIONS)
    ]
    assert f"orders#{writer}/{PARTITIONS}: " in "\n".join(
        line for line in lines(status) if f"shares_waiting={len(waiting)}" in line
    )
    report = await comparable_report(mongo, settings, wait_s=10)
    assert not report.drift, report.lines()
    await db.streamer_totals_deltas.update_one({"_id": waiting[0]["_id"]}, {"$inc": {"count": 1}})
    drifted = await comparable_report(mongo, settings, wait_s=10)
    assert [d.key for d in drifted.totals.drifts] == ["jo"], drifted.lines()
    assert await repair_totals(mongo, drifted) == ["user_totals 'jo': rewritten (count 8, total 8)"]
    assert not await db.streamer_totals_deltas.find_one({"u": "jo"})
    clean = await comparable_report(mongo, settings, wait_s=10)
    assert not clean.drift, clean.lines()
