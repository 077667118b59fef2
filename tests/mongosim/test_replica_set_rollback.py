"""What a rollback does besides undoing documents, as mongod's: the cursors open on the
member that rolls back die (a getMore waiting then is interrupted, InterruptedDueToRepl-
StateChange; an idle cursor's next getMore is QueryPlanKilled), the member's
transaction table forgets the commits it undid (a retried commitTransaction of one is
NoSuchTransaction, never "committed"), catalog commands are undone too (drop, rename,
dropDatabase, index builds and drops, collMod) and a member that cannot roll back
resyncs from its sync source instead of staying diverged.

Each rollback is made as in test_replica_set_partitions.py: member 0 is isolated, the
others elect (triggered), member 0 takes w:1 writes, steps down (triggered), and rolls
back when the network heals. They control the network, so they run against a private
mongosim only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from bson.timestamp import Timestamp
from mongosim.replset import ReplicaSet
from mongosim.threaded import ThreadedMongoSim
from motor.motor_asyncio import AsyncIOMotorClient
from pymongo import ReadPreference
from pymongo.errors import NotPrimaryError, OperationFailure, PyMongoError

from tests.support.members import fail_point, member, motor, three_members
from tests.support.polling import eventually

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("MONGODB_URI")),
    reason="cuts a private mongosim set's network to make a rollback; a real set's is not ours",
)

Start = Callable[..., AbstractAsyncContextManager[ThreadedMongoSim]]
QUERY_PLAN_KILLED = 175
INTERRUPTED_DUE_TO_REPL_STATE_CHANGE = 11602
NO_SUCH_TRANSACTION = 251
# A guard against a hang, never the assertion: the rollback ends the getMore at once.
HANG_GUARD_S = 60.0


@pytest.fixture
async def rs_sim(private_mongosim: Start) -> AsyncIterator[ThreadedMongoSim]:
    async with private_mongosim(members=3, replication_delay_ms=5) as sim:
        yield sim


def _direct(rs: ReplicaSet, index: int) -> AbstractAsyncContextManager[AsyncIOMotorClient[Any]]:
    return member(rs, index, heartbeatFrequencyMS=500)


async def _rbid(client: AsyncIOMotorClient[Any]) -> int:
    return int((await client.admin.command("replSetGetRBID"))["rbid"])


async def _depose_member_0(sim: ThreadedMongoSim, client: AsyncIOMotorClient[Any]) -> int:
    """Seed five orders on the majority, cut member 0 off, elect another member; member 0
    is still primary on its side (w:1 writes to it will be rolled back). The new primary."""
    rs = sim.replset
    await client.app.orders.insert_many([{"_id": i} for i in range(5)])

    async def replicated() -> bool:
        status = await client.admin.command("replSetGetStatus")
        return len({(m["optime"]["ts"], m["optime"]["t"]) for m in status["members"]}) == 1

    await eventually(replicated, what="the majority has the seed")
    await sim.acall(rs.isolate(0))
    new: int = await sim.acall(rs.elect())
    assert new in (1, 2)
    return new


async def _roll_back_member_0(sim: ThreadedMongoSim, old: AsyncIOMotorClient[Any]) -> None:
    rs = sim.replset
    before = await _rbid(old)
    await sim.acall(rs.heal())

    async def rolled_back() -> bool:
        return await _rbid(old) > before

    await eventually(rolled_back, what="member 0 rolled back (rbid bumped)")


async def test_rollback_kills_the_cursors_open_on_the_member(rs_sim: ThreadedMongoSim) -> None:
    rs = rs_sim.replset
    async with (
        motor(rs.uri, serverSelectionTimeoutMS=20_000) as client,
        _direct(rs, 0) as old,
    ):
        await _depose_member_0(rs_sim, client)
        await old.app.orders.insert_one({"_id": "lost"})  # w:1, rolled back later
        await rs_sim.acall(rs.timeout_now())  # member 0 steps down: a secondary now
        db = old.get_database("app", read_preference=ReadPreference.SECONDARY_PREFERRED)
        # An idle find cursor (first batch taken, more to come) ...
        found = await db.command({"find": "orders", "batchSize": 2})
        assert len(found["cursor"]["firstBatch"]) == 2 and found["cursor"]["id"] != 0
        # ... and a change stream whose getMore waits for events when the rollback starts.
        stream = await db.command({"aggregate": "orders", "pipeline": [{"$changeStream": {}}],
                                   "cursor": {}})  # fmt: skip
        stream_id = stream["cursor"]["id"]
        waiting = asyncio.ensure_future(
            db.command({"getMore": stream_id, "collection": "orders", "maxTimeMS": 60_000})
        )
        cursors = rs.sim(0).engine.cursors
        await eventually(
            lambda: waiting.done() or cursors.get(int(stream_id)).waiting,
            what="the change stream's getMore waits on member 0",
        )
        assert not waiting.done()

        await _roll_back_member_0(rs_sim, old)

        # A state-change code: the driver raises it as NotPrimaryError (and marks the
        # member Unknown, as after mongod's).
        with pytest.raises(NotPrimaryError) as interrupted:
            await asyncio.wait_for(waiting, HANG_GUARD_S)
        assert isinstance(interrupted.value.details, dict)
        assert interrupted.value.details["code"] == INTERRUPTED_DUE_TO_REPL_STATE_CHANGE
        with pytest.raises(OperationFailure) as killed:
            await db.command({"getMore": found["cursor"]["id"], "collection": "orders"})
        assert killed.value.code == QUERY_PLAN_KILLED
        with pytest.raises(OperationFailure) as gone:  # and it is gone for good
            await db.command({"getMore": found["cursor"]["id"], "collection": "orders"})
        assert gone.value.code == 43  # CursorNotFound
        assert len(cursors) == 0
        # A cursor opened after the rollback reads the rolled-back state.
        after = await db.orders.find().to_list(None)
        assert sorted(str(d["_id"]) for d in after) == [str(i) for i in range(5)]


async def test_a_rolled_back_transaction_commit_is_no_longer_answered_as_committed(
    rs_sim: ThreadedMongoSim,
) -> None:
    rs = rs_sim.replset
    async with (
        motor(rs.uri, serverSelectionTimeoutMS=20_000) as client,
        _direct(rs, 0) as old,
    ):
        await _depose_member_0(rs_sim, client)
        async with await old.start_session() as session:
            # Committed w:1 on the cut-off primary: acknowledged, never on the majority.
            session.start_transaction()
            await old.app.orders.insert_one({"_id": "in-txn"}, session=session)
            await session.commit_transaction()
            await rs_sim.acall(rs.timeout_now())
            await _roll_back_member_0(rs_sim, old)
            await rs_sim.acall(rs.step_up(0))  # member 0 primary again: retries reach it
            await eventually(lambda: _is_primary(old), what="member 0 answers as the primary again")
            assert await old.app.orders.find_one({"_id": "in-txn"}) is None
            # The driver sends commitTransaction again, same txnNumber; before the fix
            # member 0's table still had it as committed and answered ok.
            with pytest.raises(OperationFailure) as failed:
                await session.commit_transaction()
            assert failed.value.code == NO_SUCH_TRANSACTION, failed.value.details


async def _is_primary(client: AsyncIOMotorClient[Any]) -> bool:
    return bool((await client.admin.command("hello"))["isWritablePrimary"])


# -- catalog commands and resync ---------------------------------------------------------


@pytest.fixture
async def quiet_set(private_mongosim: Start) -> AsyncIterator[ThreadedMongoSim]:
    """A set whose only elections are those the test triggers: the cut-off primary keeps
    taking w:1 writes however loaded the machine is."""
    async with three_members(private_mongosim) as sim:
        yield sim


SECONDARY_OK = ReadPreference.SECONDARY_PREFERRED


async def _catalog(client: AsyncIOMotorClient[Any]) -> dict[str, Any]:
    """Everything a member holds in ``app`` and ``scratch``, read through the driver:
    each collection's options and UUID, its indexes in listIndexes' order and its
    documents."""
    state: dict[str, Any] = {}
    for name in ("app", "scratch"):
        db = client.get_database(name, read_preference=SECONDARY_OK)
        infos = (await db.command("listCollections", read_preference=SECONDARY_OK))["cursor"]
        for info in infos["firstBatch"]:
            coll = info["name"]
            indexes = await db.command("listIndexes", coll, read_preference=SECONDARY_OK)
            docs = await db[coll].find().to_list(None)
            state[f"{name}.{coll}"] = {
                "options": info["options"],
                "uuid": info["info"]["uuid"],
                "indexes": indexes["cursor"]["firstBatch"],
                "docs": sorted(docs, key=lambda d: str(d["_id"])),
            }
    return state


async def _seed_catalog(client: AsyncIOMotorClient[Any]) -> None:
    """On the majority, before the split: what the deposed primary's commands change."""
    app = client.app
    await app.create_collection("gone", validator={"$jsonSchema": {"required": ["sku"]}})
    await app.gone.insert_many([{"_id": 1, "sku": "a"}, {"_id": 2, "sku": "b"}])
    await app.gone.create_index("sku", unique=True)
    await app.old_name.insert_many([{"_id": "renamed"}])
    await app.target.insert_many([{"_id": "overwritten"}])
    await app.orders.create_index("n")
    await app.orders.create_index("m")
    await client.scratch.tmp.insert_one({"_id": "in-dropped-db"})


async def _w1_catalog_writes(old: AsyncIOMotorClient[Any]) -> int:
    """The cut-off primary's w:1 documents and commands, each later rolled back; how many
    command entries they logged."""
    app = old.app
    await app.gone.insert_one({"_id": 3, "sku": "c"})  # insert, then its collection dropped
    await app.gone.drop()  # 1: drop
    await old.admin.command(  # 2, 3: the target's drop and the rename
        "renameCollection", "app.old_name", to="app.target", dropTarget=True
    )
    await app.orders.create_index("sku")  # 4: createIndexes
    await app.orders.drop_index("n_1")  # 5: dropIndexes
    await app.command(  # 6: collMod, collection options and an index's
        "collMod",
        "orders",
        validator={"$jsonSchema": {"required": ["_id"]}},
        index={"name": "m_1", "hidden": True},
    )
    await app.orders.insert_one({"_id": "lost"})
    await old.drop_database("scratch")  # 7, 8: the collection's drop and dropDatabase
    await app.fresh.insert_one({"_id": "in-new-collection"})  # 9: create
    return 9


async def test_a_deposed_primary_s_catalog_commands_are_rolled_back_to_the_new_primary_s(
    quiet_set: ThreadedMongoSim, caplog: pytest.LogCaptureFixture
) -> None:
    rs = quiet_set.replset
    async with (
        motor(rs.uri, serverSelectionTimeoutMS=20_000) as client,
        _direct(rs, 0) as old,
    ):
        await _seed_catalog(client)
        new = await _depose_member_0(quiet_set, client)
        before = await _catalog(old)
        assert "app.gone" in before and "scratch.tmp" in before
        status = await old.admin.command("replSetGetStatus")
        applied = status["optimes"]["appliedOpTime"]["ts"]
        split_at = Timestamp(applied.time, applied.inc + 1)  # startAtOperationTime: inclusive
        async with old.app.watch(show_expanded_events=True, max_await_time_ms=100) as stream:
            commands = await _w1_catalog_writes(old)
            assert "app.gone" not in await _catalog(old)  # the deposed primary's own view
            await client.app.orders.insert_one({"_id": "kept"})  # on the new primary
            # Opened on member 0 while it took them: none is majority-committed, so none
            # is returned (and the rollback then kills the cursor).
            assert await stream.try_next() is None
            await quiet_set.acall(rs.timeout_now())
            with caplog.at_level(logging.WARNING, logger="mongosim"):
                await _roll_back_member_0(quiet_set, old)
            seen = await _drain(stream)

        async def caught_up() -> bool:
            return await old.app.orders.find_one({"_id": "kept"}) is not None

        await eventually(caught_up, what="member 0 replicates from the new primary again")
        # Identical to the new primary: documents, indexes (in order), options, UUIDs.
        async with _direct(rs, new) as primary:
            after = await _catalog(old)
            assert after == await _catalog(primary)
        expected = {**before, "app.orders": after["app.orders"]}
        assert after == expected  # the pre-split catalog, plus the new primary's "kept"
        assert {d["_id"] for d in after["app.orders"]["docs"]} == {0, 1, 2, 3, 4, "kept"}
        undid = [r.getMessage() for r in caplog.records if ": undid " in r.getMessage()]
        assert len(undid) == commands, undid  # one line per undone command
        # A stream on member 0 from the split on shows the new primary's write alone.
        async with old.app.watch(
            start_at_operation_time=split_at, show_expanded_events=True
        ) as resumed:
            first = await asyncio.wait_for(resumed.next(), HANG_GUARD_S)
        assert (first["operationType"], first["documentKey"]) == ("insert", {"_id": "kept"})
        assert all(e["operationType"] == "insert" and e["documentKey"]["_id"] == "kept"
                   for e in seen), seen  # fmt: skip


async def _drain(stream: Any) -> list[dict[str, Any]]:
    """The events a stream opened before a rollback returns after it, until it returns
    the new primary's "kept" or fails (its cursor killed by the rollback)."""
    seen: list[dict[str, Any]] = []

    async def done() -> bool:
        try:
            event = await stream.try_next()
        except PyMongoError:
            return True
        if event is not None:
            seen.append(event)
        return any(e.get("documentKey") == {"_id": "kept"} for e in seen)

    await eventually(done, what="the old stream ends or shows the new primary's write")
    return seen


async def test_a_member_that_cannot_roll_back_resyncs_from_its_sync_source(
    quiet_set: ThreadedMongoSim, caplog: pytest.LogCaptureFixture
) -> None:
    """A drop is undone from the collection kept in memory, so a deposed primary killed and
    restarted after it can no longer undo it: it resyncs instead of staying diverged."""
    rs = quiet_set.replset
    async with motor(rs.uri, serverSelectionTimeoutMS=20_000) as client:
        await client.app.create_collection("audit", validator={"$jsonSchema": {"required": ["a"]}})
        await client.app.audit.create_index("a")
        await client.app.audit.insert_one({"_id": 1, "a": 1})
        new = await _depose_member_0(quiet_set, client)
        async with _direct(rs, 0) as old:
            await old.app.audit.drop()  # w:1, never on the majority
            await old.app.orders.insert_one({"_id": "lost"})
        await client.app.orders.insert_one({"_id": "kept"})
        await quiet_set.acall(rs.kill(0))
        await quiet_set.acall(rs.restart(0))  # still cut off; the kept drop is gone
        async with _direct(rs, 0) as old:
            assert await _rbid(old) == 1
            with caplog.at_level(logging.WARNING, logger="mongosim"):
                await _roll_back_member_0(quiet_set, old)
            assert await _rbid(old) == 2
            await client.app.orders.insert_one({"_id": "after"})  # it replicates again

            async def caught_up() -> bool:
                return await old.app.orders.find_one({"_id": "after"}) is not None

            await eventually(caught_up, what="member 0 replicates after its resync")
            async with _direct(rs, new) as primary:
                assert await _catalog(old) == await _catalog(primary)
            audit = (await _catalog(old))["app.audit"]
            assert [ix["name"] for ix in audit["indexes"]] == ["_id_", "a_1"]
            assert audit["options"]["validator"] == {"$jsonSchema": {"required": ["a"]}}
        lines = [
            r.getMessage() for r in caplog.records if "initial sync from member" in r.getMessage()
        ]
        assert len(lines) == 1, lines
        assert "is no longer kept" in lines[0]


async def test_a_dropped_collection_is_kept_only_until_its_drop_is_majority_committed(
    quiet_set: ThreadedMongoSim,
) -> None:
    """Every member keeps what it dropped for a rollback, and forgets it (the reaper) once
    the commit point passes the drop, so drops cost no memory for long."""
    rs = quiet_set.replset
    async with motor(rs.uri, serverSelectionTimeoutMS=20_000) as client:
        await client.app.temp.insert_many([{"_id": i} for i in range(3)])
        # stopReplProducer on both secondaries: the drop cannot be majority-committed yet.
        for index in (1, 2):
            await fail_point(rs, index, "stopReplProducer", "alwaysOn")
        await client.app.temp.drop()
        assert len(rs.sim(0).engine.drop_pending) == 1  # kept: the drop may be rolled back
        for index in (1, 2):
            await fail_point(rs, index, "stopReplProducer", "off")

        def reaped() -> bool:
            return all(len(rs.sim(i).engine.drop_pending) == 0 for i in range(3))

        await eventually(reaped, what="every member reaped the majority-committed drop")


async def test_a_member_whose_storage_is_gone_resyncs_when_the_oplog_no_longer_reaches_back(
    private_mongosim: Start,
) -> None:
    """Its data dir lost, a member has no oplog, and its source's (20 entries) no longer
    starts at the set's beginning: replaying it would miss the oldest writes, so the
    member copies the source whole (mongod's initial sync of an empty member)."""
    async with three_members(private_mongosim, oplog_size=20) as sim:
        rs = sim.replset
        async with motor(rs.uri, serverSelectionTimeoutMS=20_000) as client:
            await client.app.orders.insert_many([{"_id": i} for i in range(50)], ordered=True)
            for i in range(50, 80):  # one oplog entry each: the first ones leave the oplog
                await client.app.orders.insert_one({"_id": i})
            await sim.acall(rs.kill(2))
            shutil.rmtree(rs.members[2].data_dir)
            await sim.acall(rs.restart(2))
            async with _direct(rs, 2) as lost:
                await eventually(lambda: _rbid_above(lost, 1), what="member 2 resynced")
                orders = lost.app.get_collection("orders", read_preference=SECONDARY_OK)
                assert await orders.count_documents({}) == 80
                await client.app.orders.insert_one({"_id": "after"})

                async def caught_up() -> bool:
                    return await orders.find_one({"_id": "after"}) is not None

                await eventually(caught_up, what="member 2 replicates after its resync")


async def _rbid_above(client: AsyncIOMotorClient[Any], rbid: int) -> bool:
    return await _rbid(client) > rbid
