"""mongosim --members 3: the majority commit point through the real drivers.

``w: "majority"`` and ``w: N`` wait for the members (and fail with WriteConcernFailed
after ``wtimeout``), majority reads and change streams see only what the majority has,
and ``afterClusterTime`` on a secondary waits for it to catch up. Each fault is made by
killing members, and each outcome is decided by documents and events, not the clock
(the one bound on time is ``wtimeout`` itself, with its headroom stated).

These kill members of the set, so they run against a private mongosim only (skipped
against MONGODB_URI).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from mongosim.threaded import ThreadedMongoSim
from pymongo import ReadPreference, WriteConcern
from pymongo.errors import ExecutionTimeout, OperationFailure, WriteConcernError
from pymongo.read_concern import ReadConcern

from tests.support.members import Start, has, member, motor, pymongo, three_members
from tests.support.polling import eventually

MAJORITY = WriteConcern("majority", wtimeout=30_000)


@pytest.fixture
async def rs_sim(private_mongosim: Start) -> AsyncIterator[ThreadedMongoSim]:
    async with three_members(private_mongosim) as sim:
        yield sim


async def _kill_secondaries(sim: ThreadedMongoSim) -> None:
    rs = sim.replset
    for index in (1, 2):
        await sim.acall(rs.kill(index))


async def test_w_majority_waits_on_a_lagging_set_until_a_majority_has_the_write(
    private_mongosim: Start,
) -> None:
    async with private_mongosim(members=3, replication_delay_ms=2000) as sim:
        rs = sim.replset
        async with motor(rs.uri) as client:
            coll = client.app.orders
            await coll.insert_one({"_id": "w1"})
            # 2 s of lag: a w:1 write returns before any secondary has it ...
            assert not has(rs, 1, "w1") and not has(rs, 2, "w1")
            await coll.with_options(write_concern=MAJORITY).insert_one({"_id": "wmaj"})
            # ... a w:"majority" write only once a majority (the primary and one more) has it.
            assert sum(has(rs, i, "wmaj") for i in range(3)) >= 2
            await coll.with_options(write_concern=WriteConcern(3, wtimeout=30_000)).insert_one(
                {"_id": "w3"}
            )
            assert all(has(rs, i, "w3") for i in range(3))


async def test_w_majority_succeeds_with_one_secondary_killed(rs_sim: ThreadedMongoSim) -> None:
    rs = rs_sim.replset
    async with motor(rs.uri) as client:
        await client.admin.command("ping")
        await rs_sim.acall(rs.kill(2))
        coll = client.app.orders.with_options(write_concern=MAJORITY)
        await coll.insert_one({"_id": 1})  # two of three
        assert has(rs, 1, 1)


async def test_w_majority_fails_with_write_concern_failed_after_wtimeout_when_no_majority_is_up(
    rs_sim: ThreadedMongoSim,
) -> None:
    rs = rs_sim.replset
    async with motor(rs.uri) as client, pymongo(rs.uri) as sync:
        await client.admin.command("ping")
        await _kill_secondaries(rs_sim)
        coll = client.app.orders.with_options(write_concern=WriteConcern("majority", wtimeout=500))
        started = time.perf_counter()
        with pytest.raises(WriteConcernError) as failed:
            await coll.insert_one({"_id": "lonely"})
        elapsed = time.perf_counter() - started
        # Measured about 0.51 s; the wait must not end before wtimeout, and 5 s of
        # headroom covers a loaded 2-core machine without letting a wait that never
        # times out pass.
        assert 0.5 <= elapsed < 5.5
        error = failed.value.details
        assert error is not None
        assert error["code"] == 64 and error["codeName"] == "WriteConcernFailed"
        assert error["errmsg"] == "waiting for replication timed out"
        assert error["errInfo"]["wtimeout"] is True
        assert error["errInfo"]["writeConcern"]["w"] == "majority"
        # The write itself succeeded on the primary.
        assert await client.app.orders.find_one({"_id": "lonely"}) == {"_id": "lonely"}
        # w: 2 through PyMongo fails the same way.
        sync_coll = sync.app.orders.with_options(write_concern=WriteConcern(2, wtimeout=300))
        with pytest.raises(WriteConcernError) as failed_sync:
            await asyncio.to_thread(sync_coll.insert_one, {"_id": "lonely-2"})
        assert failed_sync.value.code == 64


async def test_a_transaction_commit_with_w_majority_waits_for_the_majority(
    rs_sim: ThreadedMongoSim,
) -> None:
    rs = rs_sim.replset
    async with motor(rs.uri) as client:
        coll = client.app.orders
        await coll.insert_one({"_id": 0})
        await _kill_secondaries(rs_sim)
        async with await client.start_session() as session:
            session.start_transaction(write_concern=WriteConcern("majority", wtimeout=300))
            await coll.insert_one({"_id": 1}, session=session)
            with pytest.raises(OperationFailure) as failed:
                await session.commit_transaction()
            assert failed.value.code == 64
            assert failed.value.has_error_label("UnknownTransactionCommitResult")
        assert await coll.count_documents({}) == 2  # committed on the primary
        await rs_sim.acall(rs.restart(1))
        async with await client.start_session() as session:
            session.start_transaction(write_concern=MAJORITY)
            await coll.insert_one({"_id": 2}, session=session)
            await session.commit_transaction()  # the restarted secondary makes a majority
        assert has(rs, 1, 2)


async def test_a_read_only_transaction_reads_the_newest_data_and_its_majority_commit_waits_for_it(
    rs_sim: ThreadedMongoSim,
) -> None:
    """mongod runs a transaction's reads speculatively at the newest snapshot, not at the
    commit point; a commit with w: "majority" then waits until what it read is
    majority-committed, even when it wrote nothing (jstests/replsets/
    speculative_read_transaction.js; TransactionParticipant's speculative read optime)."""
    rs = rs_sim.replset
    async with motor(rs.uri) as client:
        coll = client.app.orders
        await coll.with_options(write_concern=MAJORITY).insert_one({"_id": 0, "x": 0})
        await _kill_secondaries(rs_sim)
        await coll.update_one({"_id": 0}, {"$set": {"x": 1}})  # only the primary has it
        async with await client.start_session() as session:
            session.start_transaction(
                read_concern=ReadConcern("snapshot"),
                write_concern=WriteConcern("majority", wtimeout=300),
            )
            assert await coll.find_one({"_id": 0}, session=session) == {"_id": 0, "x": 1}
            with pytest.raises(OperationFailure) as failed:
                await session.commit_transaction()
            assert failed.value.code == 64  # what it read is not majority-committed
        await rs_sim.acall(rs.restart(1))
        async with await client.start_session() as session:
            session.start_transaction(read_concern=ReadConcern("snapshot"), write_concern=MAJORITY)
            assert await coll.find_one({"_id": 0}, session=session) == {"_id": 0, "x": 1}
            await session.commit_transaction()  # the restarted secondary makes a majority


async def test_a_change_stream_returns_an_event_only_once_the_majority_has_it(
    rs_sim: ThreadedMongoSim,
) -> None:
    rs = rs_sim.replset
    async with motor(rs.uri) as client:
        coll = client.app.orders
        await coll.insert_one({"_id": "before"})
        async with coll.watch(max_await_time_ms=200) as stream:
            await _kill_secondaries(rs_sim)
            await coll.insert_one({"_id": "uncommitted"})
            assert has(rs, 0, "uncommitted")
            for _ in range(3):  # three getMores on the primary: nothing past the commit point
                assert await stream.try_next() is None
            await rs_sim.acall(rs.restart(1))
            event = await eventually(stream.try_next, what="the event once a majority has it")
            assert event["documentKey"] == {"_id": "uncommitted"}


async def test_the_unsafe_switch_lets_a_change_stream_return_an_uncommitted_event(
    private_mongosim: Start,
) -> None:
    async with (
        three_members(private_mongosim, unsafe_uncommitted_change_streams=True) as sim,
        motor(sim.replset.uri) as client,
    ):
        coll = client.app.orders
        await coll.insert_one({"_id": "before"})
        async with coll.watch(max_await_time_ms=200) as stream:
            await _kill_secondaries(sim)
            await coll.insert_one({"_id": "uncommitted"})
            event = await eventually(stream.try_next, what="the uncommitted event")
            assert event["documentKey"] == {"_id": "uncommitted"}


async def test_a_majority_read_does_not_see_a_write_only_the_primary_has(
    rs_sim: ThreadedMongoSim,
) -> None:
    rs = rs_sim.replset
    async with motor(rs.uri) as client:
        coll = client.app.orders
        await coll.with_options(write_concern=MAJORITY).insert_one({"_id": "committed"})
        await _kill_secondaries(rs_sim)
        await coll.insert_one({"_id": "primary-only"})
        majority = coll.with_options(read_concern=ReadConcern("majority"))
        assert [d["_id"] async for d in majority.find()] == ["committed"]
        assert await majority.count_documents({}) == 1
        assert await coll.count_documents({}) == 2  # a local read sees it
        snapshot = coll.with_options(read_concern=ReadConcern("snapshot"))
        assert [d["_id"] async for d in snapshot.find()] == ["committed"]
        hello = await client.admin.command("hello")
        assert hello["lastWrite"]["majorityOpTime"]["ts"] < hello["lastWrite"]["opTime"]["ts"]
        status = await client.admin.command("replSetGetStatus")
        assert status["optimes"]["lastCommittedOpTime"] == hello["lastWrite"]["majorityOpTime"]
        await rs_sim.acall(rs.restart(2))
        await eventually(
            lambda: majority.find_one({"_id": "primary-only"}),
            what="the write in a majority read once a majority has it",
        )


async def test_after_cluster_time_on_a_lagging_secondary_waits_for_it_to_catch_up(
    private_mongosim: Start,
) -> None:
    async with three_members(private_mongosim, replication_delay_ms=2000) as sim:
        rs = sim.replset
        async with motor(rs.uri) as client:
            await client.admin.command("ping")
            await eventually(lambda: len(client.secondaries) == 2, what="two secondaries")
            secondary = client.app.get_collection(
                "orders", read_preference=ReadPreference.SECONDARY
            )
            async with await client.start_session(causal_consistency=True) as session:
                await client.app.orders.insert_one({"_id": "mine"}, session=session)
                # 2 s of lag; the causally consistent read sends afterClusterTime, and
                # the secondary answers once it has applied the write.
                assert not has(rs, 1, "mine") and not has(rs, 2, "mine")
                found = await secondary.find_one({"_id": "mine"}, session=session)
                assert found == {"_id": "mine"}
                operation_time = session.operation_time
            # A write that never reaches the secondary: its primary dies before the lag
            # is over. afterClusterTime then waits until maxTimeMS.
            await client.app.orders.insert_one({"_id": "lost"})
            lost_at = rs.sim(0).engine.oplog.last_ts
            await sim.acall(rs.kill(0))
            async with member(rs, 1, read_preference=ReadPreference.SECONDARY_PREFERRED) as direct:
                with pytest.raises(ExecutionTimeout):
                    await direct.app.command(
                        "find",
                        "orders",
                        readConcern={"afterClusterTime": lost_at},
                        maxTimeMS=300,
                    )
                assert operation_time is not None
                reply = await direct.app.command(
                    "find", "orders", readConcern={"afterClusterTime": operation_time}
                )
                assert {"_id": "mine"} in reply["cursor"]["firstBatch"]
