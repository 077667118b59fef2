"""mongosim --members 3 under network partitions: the majority elects a new primary on
another host, a primary cut off from the majority steps down, and the w:1 writes a
deposed primary took while cut off are rolled back when it rejoins (gone from its data
and oplog, one log line per document, replSetGetRBID bumped), while what the majority
had is kept.

Every election here is triggered (``timeout_now``, ``elect``) or waited for
(``wait_for_primary``) rather than timed, except the one test that shows the timeout
itself. They control the network, so they run against a private mongosim only
(skipped against MONGODB_URI: a real set's network is not the test's to cut).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

import pytest
from mongosim.replset import ReplicaSet
from mongosim.threaded import ThreadedMongoSim
from motor.motor_asyncio import AsyncIOMotorClient
from pymongo import ReadPreference, WriteConcern
from pymongo.errors import ConnectionFailure, OperationFailure, WriteConcernError
from pymongo.monitoring import (
    CommandFailedEvent,
    CommandListener,
    CommandStartedEvent,
    CommandSucceededEvent,
)

from tests.support.polling import eventually

Start = Callable[..., AbstractAsyncContextManager[ThreadedMongoSim]]
T = TypeVar("T")
# No wtimeout: before mongosim interrupted the waiters of a primary that steps down, such a
# write on a cut-off primary waited for ever (or until the client's socket timeout).
MAJORITY_NO_WTIMEOUT = WriteConcern("majority")
# A guard against that hang, never the assertion: the error decides. The step-down is
# triggered at once (timeout_now, heal), so the reply comes within milliseconds.
HANG_GUARD_S = 60.0
# After a state-change error the driver marks the member Unknown while its monitor may sit
# in an awaitable hello for heartbeatFrequencyMS (10 s by default), as against mongod;
# closing the client (endSessions) then waits that long. 500 ms is the drivers' minimum.
FAST_MONITOR = {"heartbeatFrequencyMS": 500}


@pytest.fixture
async def rs_sim(private_mongosim: Start) -> AsyncIterator[ThreadedMongoSim]:
    async with private_mongosim(members=3, replication_delay_ms=5) as sim:
        yield sim


def _direct(rs: ReplicaSet, index: int, **options: Any) -> AsyncIOMotorClient[Any]:
    return AsyncIOMotorClient(rs.uri_of(index), **options)


async def _replicated(client: AsyncIOMotorClient[Any]) -> bool:
    """Every member the primary reaches has applied its newest optime."""
    status = await client.admin.command("replSetGetStatus")
    live = [m for m in status["members"] if m["health"] == 1.0]
    return len({(m["optime"]["ts"], m["optime"]["t"]) for m in live}) == 1


async def _is_secondary(client: AsyncIOMotorClient[Any]) -> bool:
    hello = await client.admin.command("hello")
    return hello["secondary"] is True and hello["isWritablePrimary"] is False


async def test_partitioned_primary_steps_down_and_the_majority_elects_another_host(
    rs_sim: ThreadedMongoSim,
) -> None:
    rs = rs_sim.replset
    old_direct = _direct(rs, 0)
    client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(rs.uri, serverSelectionTimeoutMS=20_000)
    try:
        await client.app.orders.insert_one({"_id": 1})
        await eventually(lambda: _replicated(client), what="all members caught up")
        await rs_sim.acall(rs.partition([0], [1, 2]))
        assert rs.primary == 0  # nothing happens before the election timeout
        await rs_sim.acall(rs.timeout_now())  # as if the election timeout passed
        new = await rs_sim.acall(rs.wait_for_primary(other_than=0))
        assert new in (1, 2)
        assert await _is_secondary(old_direct)  # stepped down: it cannot see a majority
        await client.app.orders.insert_one({"_id": 2})  # the drivers follow the new host
        host, port = rs.members[new].host.rsplit(":", 1)
        assert client.primary == (host, int(port))
    finally:
        client.close()
        old_direct.close()


async def test_election_timeout_alone_replaces_a_partitioned_primary(
    private_mongosim: Start,
) -> None:
    # No trigger: the timers do it. 300 ms is safe here because contact is the network
    # graph, not timed heartbeats: a late event loop only makes the election later.
    async with private_mongosim(members=3, election_timeout_ms=300) as sim:
        rs = sim.replset
        old_direct = _direct(rs, 0)
        try:
            await sim.acall(rs.isolate(0))
            assert await sim.acall(rs.wait_for_primary(other_than=0)) in (1, 2)
            await eventually(lambda: _is_secondary(old_direct), what="member 0 stepped down")
        finally:
            old_direct.close()


async def test_replica_set_status_shows_members_across_a_partition_unreachable(
    rs_sim: ThreadedMongoSim,
) -> None:
    rs = rs_sim.replset
    direct = [_direct(rs, i) for i in range(3)]
    try:
        await rs_sim.acall(rs.isolate(0))
        inside = await direct[1].admin.command("replSetGetStatus")
        states = {m["_id"]: (m["health"], m["state"]) for m in inside["members"]}
        assert states[0] == (0.0, 8)
        assert inside["members"][0]["stateStr"] == "(not reachable/healthy)"
        assert states[1][0] == states[2][0] == 1.0
        cut_off = await direct[0].admin.command("replSetGetStatus")
        assert {m["_id"]: m["health"] for m in cut_off["members"]} == {0: 1.0, 1: 0.0, 2: 0.0}
        await rs_sim.acall(rs.heal())
        healed = await direct[1].admin.command("replSetGetStatus")
        assert all(m["health"] == 1.0 for m in healed["members"])
    finally:
        for c in direct:
            c.close()


async def test_member_isolated_from_clients_refuses_connections_until_healed(
    rs_sim: ThreadedMongoSim,
) -> None:
    rs = rs_sim.replset
    direct = _direct(rs, 2, serverSelectionTimeoutMS=500)
    try:
        await direct.admin.command("ping")
        await rs_sim.acall(rs.isolate(2, from_clients=True))
        with pytest.raises(ConnectionFailure):
            await direct.admin.command("ping")
        await rs_sim.acall(rs.heal())
        await eventually(lambda: _answers(direct), what="member 2 reachable again")
    finally:
        direct.close()


async def test_deposed_primary_w1_writes_are_rolled_back_when_it_rejoins(
    rs_sim: ThreadedMongoSim, caplog: pytest.LogCaptureFixture
) -> None:
    rs = rs_sim.replset
    client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(rs.uri, serverSelectionTimeoutMS=20_000)
    old = _direct(rs, 0)
    try:
        orders = client.app.orders
        await orders.insert_many([{"_id": i, "n": i} for i in range(5)])
        await eventually(lambda: _replicated(client), what="the majority has the seed")
        assert (await old.admin.command("replSetGetRBID"))["rbid"] == 1

        await rs_sim.acall(rs.isolate(0))
        new = await rs_sim.acall(rs.elect())  # the majority elects; 0 has not stepped down
        assert new in (1, 2)
        # The deposed primary still takes w:1 writes: three kinds, four documents.
        cut_off = old.app.orders
        await cut_off.insert_many([{"_id": "lost-a"}, {"_id": "lost-b"}])
        await cut_off.update_one({"_id": 1}, {"$set": {"n": 100}})
        await cut_off.delete_one({"_id": 2})
        assert await cut_off.count_documents({}) == 6
        await orders.insert_one({"_id": "kept"})  # on the new primary meanwhile

        with caplog.at_level(logging.WARNING, logger="mongosim"):
            await rs_sim.acall(rs.heal())
            await eventually(lambda: _rbid_is(old, 2), what="member 0 rolled back (rbid bumped)")
        on_old = old.app.get_collection(
            "orders", read_preference=ReadPreference.SECONDARY_PREFERRED
        )
        await eventually(
            lambda: on_old.find_one({"_id": "kept"}), what="member 0 caught up afterwards"
        )
        docs = {d["_id"]: d.get("n") for d in await on_old.find().to_list(None)}
        # Everything the majority had survives; every w:1 write of the cut-off primary
        # is undone: inserts gone, the update and the delete reverted.
        assert docs == {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, "kept": None}
        oplog = old.local.get_collection(
            "oplog.rs", read_preference=ReadPreference.SECONDARY_PREFERRED
        )
        lost = {"$or": [{"o._id": {"$in": ["lost-a", "lost-b"]}}, {"op": {"$in": ["u", "d"]}}]}
        assert await oplog.count_documents({"ns": "app.orders", **lost}) == 0
        assert await oplog.count_documents({"ns": "app.orders", "op": "i"}) == 6
        lines = [r.getMessage() for r in caplog.records if "rollback on member 0" in r.getMessage()]
        assert len(lines) == 4, lines  # one per document: lost-a, lost-b, 1, 2
        assert await client.app.orders.count_documents({}) == 6  # the new primary's view
    finally:
        client.close()
        old.close()


class _CommitReplies(CommandListener):
    """Each commitTransaction the driver sent (a retry included): its reply, or for one
    that failed (a writeConcernError included), its error document."""

    def __init__(self) -> None:
        self.replies: list[dict[str, Any]] = []

    def started(self, event: CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: CommandSucceededEvent) -> None:
        if event.command_name == "commitTransaction":
            self.replies.append(dict(event.reply))

    def failed(self, event: CommandFailedEvent) -> None:
        if event.command_name == "commitTransaction":
            self.replies.append(dict(event.failure))


async def _while_waiting(
    sim: ThreadedMongoSim, operation: Awaitable[T], fault: Callable[[], Awaitable[Any]]
) -> asyncio.Future[T]:
    """Start ``operation`` (a w:"majority" command to member 0), wait until it waits for
    its write concern there, then make ``fault``; the operation, to await."""
    rs = sim.replset
    pending = asyncio.ensure_future(operation)
    await eventually(
        lambda: pending.done() or rs.write_concern_waiters(0) == 1,
        what="the command waits for its write concern on member 0",
    )
    assert not pending.done(), "the write concern was satisfied with no majority reachable"
    await sim.acall(fault())
    return pending


async def _lose_majority(sim: ThreadedMongoSim) -> None:
    """The liveness check: member 0, cut off, steps down as the election timeout passes."""
    await sim.replset.timeout_now()


async def _see_higher_term(sim: ThreadedMongoSim) -> None:
    """Member 0 (deposed by an election it did not see) steps down on rejoining."""
    await sim.replset.heal()


@pytest.mark.parametrize("heal_after_election", [False, True], ids=["lost-majority", "heal"])
async def test_w_majority_write_waiting_on_a_primary_that_steps_down_fails_interrupted(
    rs_sim: ThreadedMongoSim, heal_after_election: bool
) -> None:
    rs = rs_sim.replset
    # No retry, so the client sees the member's own reply (a retry would run the insert
    # again on the new primary).
    direct = _direct(rs, 0, retryWrites=False, **FAST_MONITOR)
    try:
        await direct.admin.command("ping")
        await rs_sim.acall(rs.isolate(0))
        if heal_after_election:
            assert await rs_sim.acall(rs.elect()) in (1, 2)  # 0 has not stepped down yet
        coll = direct.app.orders.with_options(write_concern=MAJORITY_NO_WTIMEOUT)
        fault = _see_higher_term if heal_after_election else _lose_majority
        pending = await _while_waiting(
            rs_sim, coll.insert_one({"_id": "waits"}), lambda: fault(rs_sim)
        )
        with pytest.raises(WriteConcernError) as failed:
            await asyncio.wait_for(pending, HANG_GUARD_S)
        # mongod's step-down kills the operations that wrote (the RSTL kill-op thread):
        # the write stands (ok 1) and its write concern fails InterruptedDueToReplStateChange.
        error = failed.value.details  # the reply's writeConcernError
        assert error is not None
        assert error["code"] == 11602, error
        assert error["codeName"] == "InterruptedDueToReplStateChange"
        assert await _is_secondary(direct)
        assert rs.write_concern_waiters(0) == 0
    finally:
        direct.close()


async def test_w_majority_commit_waiting_on_a_primary_that_steps_down_has_an_unknown_result(
    rs_sim: ThreadedMongoSim,
) -> None:
    rs = rs_sim.replset
    commits = _CommitReplies()
    direct = _direct(rs, 0, event_listeners=[commits], **FAST_MONITOR)
    try:
        orders = direct.app.orders
        await orders.insert_one({"_id": 0})
        await rs_sim.acall(rs.isolate(0))
        async with await direct.start_session() as session:
            session.start_transaction(write_concern=MAJORITY_NO_WTIMEOUT)
            await orders.insert_one({"_id": "in-txn"}, session=session)
            pending = await _while_waiting(
                rs_sim, session.commit_transaction(), lambda: _lose_majority(rs_sim)
            )
            with pytest.raises(OperationFailure) as failed:
                await asyncio.wait_for(pending, HANG_GUARD_S)
        # The commit's reply: committed on member 0 (ok 1), its write concern interrupted
        # as mongod's step-down kills it, RetryableWriteError from the server; the
        # driver does not retry it on a member now Unknown and labels the result unknown
        # (transactions spec), so a caller retries the commit on the new primary.
        assert [r["code"] for r in commits.replies] == [11602], commits.replies
        assert commits.replies[0]["codeName"] == "InterruptedDueToReplStateChange"
        assert "RetryableWriteError" in commits.replies[0]["errorLabels"]
        assert isinstance(failed.value, WriteConcernError)
        assert failed.value.has_error_label("UnknownTransactionCommitResult"), failed.value
        assert rs.write_concern_waiters(0) == 0
    finally:
        direct.close()


async def _answers(client: AsyncIOMotorClient[Any]) -> bool:
    try:
        await client.admin.command("ping")
    except ConnectionFailure:
        return False
    return True


async def _rbid_is(client: AsyncIOMotorClient[Any], rbid: int) -> bool:
    reply = await client.admin.command("replSetGetRBID")
    return bool(reply["rbid"] == rbid and reply["ok"] == 1.0)
