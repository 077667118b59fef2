"""mongosim --members 3: an aggregate with ``$out`` or ``$merge`` sent to a secondary runs
there, as on mongod 5.0+: its reads happen on the secondary, its writes on the primary
(MongoDB manual, ``$out``: "$out Read Operations Run on Secondary Replica Set Members").

A secondary held back by the ``stopReplProducer`` fail point lacks the primary's newest
document, so what the output collection holds shows where the pipeline read, and which
member holds it shows where it wrote. Outcomes are decided by documents, not the clock.

These need a private three-member set (skipped against MONGODB_URI).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from mongosim.replset import ReplicaSet
from mongosim.threaded import ThreadedMongoSim
from pymongo import ReadPreference, WriteConcern
from pymongo.errors import NotPrimaryError, OperationFailure

from tests.support.members import Start, fail_point, member, motor, three_members

ALL = WriteConcern(3)  # no wtimeout: returns once every member holds the write


@pytest.fixture
async def rs_sim(private_mongosim: Start) -> AsyncIterator[ThreadedMongoSim]:
    async with three_members(private_mongosim) as sim:
        yield sim


def _ids(rs: ReplicaSet, index: int, coll: str) -> list[Any] | None:
    found = rs.sim(index).engine.get_collection("app", coll)
    return None if found is None else sorted(d["_id"] for d in found.docs.values())


@pytest.mark.parametrize(
    "stage",
    [{"$out": "copy"}, {"$merge": {"into": "copy"}}],
    ids=["out", "merge"],
)
async def test_aggregate_writing_stage_on_a_secondary_reads_there_and_writes_through_the_primary(
    rs_sim: ThreadedMongoSim, stage: dict[str, Any]
) -> None:
    rs = rs_sim.replset
    async with motor(rs.uri) as client, member(rs, 1, readPreference="secondary") as secondary:
        orders = client.app.orders
        await orders.with_options(write_concern=ALL).insert_many([{"_id": 1}, {"_id": 2}])
        await fail_point(rs, 1, "stopReplProducer", "alwaysOn")
        await orders.with_options(write_concern=WriteConcern(2)).insert_one({"_id": 3})
        assert _ids(rs, 1, "orders") == [1, 2]  # member 1 lacks the newest order

        cursor = secondary.app.orders.aggregate([{"$match": {}}, stage])
        assert await cursor.to_list(None) == []

        # Read on member 1 (no order 3), written on the primary, which member 1 was
        # kept from replicating: the output exists on the primary only.
        assert _ids(rs, 0, "copy") == [1, 2]
        assert _ids(rs, 1, "copy") is None
        await fail_point(rs, 1, "stopReplProducer", "off")
        await orders.with_options(write_concern=ALL).insert_one({"_id": 4})
        assert _ids(rs, 1, "copy") == [1, 2]


async def test_aggregate_with_out_through_the_replica_set_uri_honours_a_secondary_read_preference(
    rs_sim: ThreadedMongoSim,
) -> None:
    rs = rs_sim.replset
    async with motor(rs.uri) as client:
        orders = client.app.orders
        await orders.with_options(write_concern=ALL).insert_many([{"_id": 1}, {"_id": 2}])
        on_secondary = orders.with_options(read_preference=ReadPreference.SECONDARY)
        await on_secondary.aggregate([{"$out": "copy"}]).to_list(None)
        copy = client.app.copy.with_options(read_preference=ReadPreference.PRIMARY)
        assert sorted(d["_id"] for d in await copy.find().to_list(None)) == [1, 2]


async def test_aggregate_with_merge_on_a_secondary_cut_off_from_the_primary_fails_not_primary(
    rs_sim: ThreadedMongoSim,
) -> None:
    rs = rs_sim.replset
    async with motor(rs.uri) as client, member(rs, 1, readPreference="secondary") as secondary:
        await client.app.orders.with_options(write_concern=ALL).insert_one({"_id": 1})
        await rs_sim.acall(rs.partition([0], [1, 2]))  # no elections: 0 stays primary
        with pytest.raises((NotPrimaryError, OperationFailure)) as refused:
            await secondary.app.orders.aggregate([{"$merge": {"into": "copy"}}]).to_list(None)
        details = refused.value.details
        assert details is not None and details["code"] == 10107  # NotWritablePrimary
        assert _ids(rs, 0, "copy") is None
