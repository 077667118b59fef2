"""mongosim --members 3: three members discovered and followed by the real drivers, the
primary moving to another host (stepdown, shutdown, kill), replication lag seen by
secondary reads, and the transaction table replicated.

These need a set whose members the test can kill and step down, so they run against a
private mongosim only (skipped against MONGODB_URI).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from mongosim.replset import ReplicaSet
from mongosim.threaded import ThreadedMongoSim
from motor.motor_asyncio import AsyncIOMotorClient
from pymongo import ReadPreference
from pymongo.errors import AutoReconnect, NotPrimaryError

from tests.support.members import member, motor, pymongo, until_member_has
from tests.support.polling import eventually

Start = Callable[..., AbstractAsyncContextManager[ThreadedMongoSim]]


@pytest.fixture
async def rs_sim(private_mongosim: Start) -> AsyncIterator[ThreadedMongoSim]:
    """A fresh three-member set per test (tests kill and step down its members)."""
    async with private_mongosim(members=3, replication_delay_ms=5) as sim:
        yield sim


def _seed(rs: ReplicaSet, index: int) -> str:
    return f"mongodb://{rs.members[index].host}/?replicaSet=rs0"


async def _replicated(client: AsyncIOMotorClient[Any]) -> bool:
    """Every member that is up has applied the primary's newest optime."""
    status = await client.admin.command("replSetGetStatus")
    live = [m for m in status["members"] if m["health"] == 1.0]
    return len({(m["optime"]["ts"], m["optime"]["t"]) for m in live}) == 1


async def _primary_moved(client: AsyncIOMotorClient[Any], old: Any) -> Any:
    await client.admin.command("ping")  # server selection waits for a primary
    return client.primary if client.primary not in (None, old) else None


async def test_one_seed_discovers_three_members_with_motor_and_pymongo(
    rs_sim: ThreadedMongoSim,
) -> None:
    rs = rs_sim.replset
    hosts = {tuple(m.host.rsplit(":", 1)) for m in rs.members}
    expected = {(h, int(p)) for h, p in hosts}
    async with motor(_seed(rs, 2)) as seeded, pymongo(_seed(rs, 1)) as sync:
        await seeded.admin.command("ping")
        await eventually(lambda: seeded.nodes == expected, what="Motor sees three members")
        assert seeded.primary == ("127.0.0.1", rs.sim(0).port)
        await asyncio.to_thread(sync.admin.command, "ping")
        await eventually(lambda: sync.nodes == expected, what="PyMongo sees three members")
        assert sync.primary == ("127.0.0.1", rs.sim(0).port)
        assert len(sync.secondaries) == 2


async def test_hello_on_each_member_answers_as_a_member_of_the_set(
    rs_sim: ThreadedMongoSim,
) -> None:
    rs = rs_sim.replset
    hosts = [m.host for m in rs.members]
    for index, info in enumerate(rs.members):
        async with member(rs, index) as client:
            hello = await client.admin.command("hello")
        assert hello["hosts"] == hosts
        assert hello["me"] == info.host
        assert hello["primary"] == hosts[0]
        assert hello["isWritablePrimary"] is (index == 0)
        assert hello["secondary"] is (index != 0)
        assert hello["setName"] == "rs0" and hello["setVersion"] == 1
        # The set's first term; a secondary's own optime may lag the primary's.
        term = hello["lastWrite"]["opTime"]["t"]
        assert term == 1 if index == 0 else term <= 1
        assert "counter" in hello["topologyVersion"]


async def test_step_down_moves_the_primary_to_another_host_where_writes_succeed(
    rs_sim: ThreadedMongoSim,
) -> None:
    rs = rs_sim.replset
    async with motor(_seed(rs, 1)) as client:
        coll = client.app.orders
        await coll.insert_one({"_id": "before"})
        old = await eventually(lambda: client.primary, what="a primary")
        election = (await client.admin.command("hello"))["electionId"]
        await client.admin.command("replSetStepDown", 60)
        new = await eventually(
            lambda: _primary_moved(client, old), what="the primary on another host"
        )
        assert new != old
        await coll.insert_one({"_id": "after"})
        assert {d["_id"] async for d in coll.find()} == {"before", "after"}
        hello = await client.admin.command("hello")
        assert hello["electionId"] > election
        status = await client.admin.command("replSetGetStatus")
        assert [m["stateStr"] for m in status["members"]].count("PRIMARY") == 1
        assert "lastCommittedOpTime" in status["optimes"]


async def test_step_down_on_a_secondary_is_not_writable_primary(
    rs_sim: ThreadedMongoSim,
) -> None:
    async with member(rs_sim.replset, 1) as client:
        with pytest.raises(NotPrimaryError) as step_down:
            await client.admin.command("replSetStepDown", 60)
        assert step_down.value.details is not None and step_down.value.details["code"] == 10107
        with pytest.raises(NotPrimaryError) as write:
            await client.app.orders.insert_one({"_id": 1})
        assert write.value.details is not None and write.value.details["code"] == 10107


async def test_step_up_of_a_secondary_makes_it_the_primary(rs_sim: ThreadedMongoSim) -> None:
    rs = rs_sim.replset
    async with member(rs, 2) as direct:
        await direct.admin.command("replSetStepUp")
        hello = await direct.admin.command("hello")
        assert hello["isWritablePrimary"] is True
        assert rs.primary == 2


async def test_killing_the_primary_elects_another_that_has_the_replicated_data(
    rs_sim: ThreadedMongoSim,
) -> None:
    rs = rs_sim.replset
    async with motor(rs.uri, serverSelectionTimeoutMS=20_000) as client:
        coll = client.app.orders
        await coll.insert_many([{"_id": i} for i in range(50)])
        await eventually(lambda: _replicated(client), what="all members caught up")
        old = client.primary
        await rs_sim.acall(rs.kill(0))
        await rs_sim.acall(rs.elect())
        await eventually(lambda: _primary_moved(client, old), what="a new primary")
        assert await coll.count_documents({}) == 50
        await coll.insert_one({"_id": "after"})
        await rs_sim.acall(rs.restart(0))
        # The old primary rejoins as a secondary and catches up from the new one.
        await until_member_has(
            rs, 0, "after", what="the restarted member has the new primary's write"
        )


async def test_shutdown_force_of_the_primary_stops_it_and_another_is_elected(
    rs_sim: ThreadedMongoSim,
) -> None:
    rs = rs_sim.replset
    async with motor(rs.uri, serverSelectionTimeoutMS=20_000) as client, member(rs, 0) as direct:
        await client.app.orders.insert_one({"_id": 1})
        await eventually(lambda: _replicated(client), what="all members caught up")
        with pytest.raises(AutoReconnect):  # mongod closes the connection, no reply
            await direct.admin.command("shutdown", force=True)
        await eventually(lambda: not rs.members[0].up, what="member 0 down")
        assert rs.primary is None
        await rs_sim.acall(rs.elect())  # instead of waiting the election timeout
        assert rs.primary in (1, 2)
        assert await client.app.orders.find_one({"_id": 1}) == {"_id": 1}


async def test_shutdown_of_the_primary_without_force_steps_down_first(
    rs_sim: ThreadedMongoSim,
) -> None:
    rs = rs_sim.replset
    async with member(rs, 0) as direct:
        with pytest.raises(AutoReconnect):
            await direct.admin.command("shutdown")
        await eventually(lambda: not rs.members[0].up, what="member 0 down")
        assert rs.primary in (1, 2)  # elected by the step-down, not by a timeout


async def test_a_commit_retried_on_the_new_primary_is_answered_from_the_transaction_table(
    rs_sim: ThreadedMongoSim,
) -> None:
    rs = rs_sim.replset
    async with motor(rs.uri) as client:
        coll = client.app.orders
        await coll.insert_one({"_id": 0})
        async with await client.start_session() as session:
            session.start_transaction()
            await coll.insert_one({"_id": 1}, session=session)
            await session.commit_transaction()
            await eventually(lambda: _replicated(client), what="all members caught up")
            old = client.primary
            await client.admin.command("replSetStepDown", 60)
            await eventually(lambda: _primary_moved(client, old), what="a new primary")
            await session.commit_transaction()  # the driver's retry of the commit
        assert await coll.count_documents({}) == 2


async def test_a_secondary_read_sees_a_write_only_after_the_replication_delay(
    private_mongosim: Start,
) -> None:
    async with (
        private_mongosim(members=3, replication_delay_ms=3000) as sim,
        motor(sim.replset.uri) as client,
    ):
        await client.admin.command("ping")
        await eventually(lambda: len(client.secondaries) == 2, what="two secondaries")
        primary = client.app.orders
        secondary = client.app.get_collection("orders", read_preference=ReadPreference.SECONDARY)
        await primary.insert_one({"_id": "fresh"})
        # 3 s of lag: a read straight after the write is served by a secondary's
        # own data, which cannot have it yet.
        assert await secondary.find_one({"_id": "fresh"}) is None
        assert await primary.find_one({"_id": "fresh"}) == {"_id": "fresh"}
        await eventually(
            lambda: secondary.find_one({"_id": "fresh"}), what="the write on a secondary"
        )
