"""What a rollback does besides undoing documents, as mongod's: the cursors open on the
member that rolls back die (a getMore waiting then is interrupted, InterruptedDueToRepl-
StateChange; an idle cursor's next getMore is QueryPlanKilled), and the member's
transaction table forgets the commits it undid (a retried commitTransaction of one is
NoSuchTransaction, never "committed").

Each rollback is made as in test_replica_set_partitions.py: member 0 is isolated, the
others elect (triggered), member 0 takes w:1 writes, steps down (triggered), and rolls
back when the network heals. They control the network, so they run against a private
mongosim only.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from mongosim.replset import ReplicaSet
from mongosim.threaded import ThreadedMongoSim
from motor.motor_asyncio import AsyncIOMotorClient
from pymongo import ReadPreference
from pymongo.errors import NotPrimaryError, OperationFailure

from tests.support.members import member, motor
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
