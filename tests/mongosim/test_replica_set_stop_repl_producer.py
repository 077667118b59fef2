"""mongosim --members 3: the ``stopReplProducer`` fail point through the real drivers.

mongod's fail point stops a member replicating from its sync source: its BackgroundSync
producer blocks while the point is on, and its oplog fetcher drops a batch it finds the
point on for (src/mongo/db/repl/bgsync.cpp, oplog_fetcher.cpp). PyMongo's own
``test_bulk`` sets it on a secondary to make a ``w: <all members>`` write time out with
WriteConcernFailed (64); jstests set it the same way to hold a secondary back.

Outcomes are decided by documents and write concern replies. The one time bound is
``wtimeout``, and only for a write that must fail: whatever the machine's load, a member
held back by the fail point never acknowledges it.

These need a private three-member set (skipped against MONGODB_URI).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from mongosim.threaded import ThreadedMongoSim
from pymongo import WriteConcern
from pymongo.errors import WriteConcernError

from tests.support.members import Start, fail_point, has, motor, three_members

# Replication takes ~5 ms here (the delay): a write every member could hold within 2 s
# is held back by nothing but the fail point.
HELD_BACK_WTIMEOUT_MS = 2_000


@pytest.fixture
async def rs_sim(private_mongosim: Start) -> AsyncIterator[ThreadedMongoSim]:
    async with three_members(private_mongosim) as sim:
        yield sim


async def test_stop_repl_producer_holds_a_secondary_back_so_w_all_fails_with_write_concern_failed(
    rs_sim: ThreadedMongoSim,
) -> None:
    rs = rs_sim.replset
    async with motor(rs.uri) as client:
        coll = client.app.orders
        await coll.with_options(write_concern=WriteConcern(3)).insert_one({"_id": "before"})
        await fail_point(rs, 1, "stopReplProducer", "alwaysOn")

        # The primary and member 2 make two: w:2 is satisfied without member 1.
        await coll.with_options(write_concern=WriteConcern(2)).insert_one({"_id": "w2"})
        with pytest.raises(WriteConcernError) as failed:
            await coll.with_options(
                write_concern=WriteConcern(3, wtimeout=HELD_BACK_WTIMEOUT_MS)
            ).insert_one({"_id": "w3"})

        assert failed.value.code == 64  # WriteConcernFailed
        assert failed.value.details is not None
        assert failed.value.details["errInfo"]["wtimeout"] is True
        # The write stands on the primary and member 2; member 1 replicated none of it.
        assert [has(rs, i, "w3") for i in range(3)] == [True, False, True]
        assert [has(rs, i, "w2") for i in range(3)] == [True, False, True]
        assert has(rs, 1, "before")


async def test_turning_stop_repl_producer_off_lets_the_secondary_catch_up(
    rs_sim: ThreadedMongoSim,
) -> None:
    rs = rs_sim.replset
    async with motor(rs.uri) as client:
        coll = client.app.orders
        await fail_point(rs, 1, "stopReplProducer", "alwaysOn")
        await coll.with_options(write_concern=WriteConcern(2)).insert_one({"_id": "held"})
        assert not has(rs, 1, "held")

        # configureFailPoint answers with how often the point fired: at least once, the
        # applier checked it before it would have fetched "held".
        assert (await fail_point(rs, 1, "stopReplProducer", "off"))["count"] >= 1
        # No wtimeout: this returns only once every member, member 1 too, holds it.
        await coll.with_options(write_concern=WriteConcern(3)).insert_one({"_id": "after"})
        assert has(rs, 1, "held") and has(rs, 1, "after")
