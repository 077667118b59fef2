"""explain, index hints, min/max, validate and $listLocalSessions, as mongod answers them."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import ASCENDING, DESCENDING
from pymongo.errors import OperationFailure


async def test_explain_reports_the_plan_and_the_executed_count(db: Any) -> None:
    await db.c.insert_many([{"_id": i, "x": i % 3} for i in range(9)])
    await db.c.create_index("x")
    explained = await db.c.find({"x": 1}).explain()
    winning = explained["queryPlanner"]["winningPlan"]
    assert winning["stage"] == "FETCH"
    assert winning["inputStage"]["indexName"] == "x_1"
    assert explained["executionStats"]["nReturned"] == 3
    scan = await db.command(
        {"explain": {"find": "c", "filter": {"y": 1}}, "verbosity": "queryPlanner"}
    )
    assert scan["queryPlanner"]["winningPlan"]["stage"] == "COLLSCAN"
    assert "executionStats" not in scan


async def test_a_hint_orders_by_its_index_and_must_name_one(db: Any) -> None:
    await db.c.insert_many([{"num": i} for i in range(5)])
    await db.c.create_index([("num", DESCENDING)])
    first = await db.c.find().hint([("num", DESCENDING)]).to_list(1)
    assert first[0]["num"] == 4
    with pytest.raises(OperationFailure) as info:
        await db.c.find().hint([("foo", ASCENDING)]).to_list()
    assert info.value.code == 2


async def test_min_and_max_bound_the_hinted_index(db: Any) -> None:
    await db.c.insert_many([{"j": j} for j in range(10)])
    await db.c.create_index("j")
    found = await db.c.find().min([("j", 3)]).max([("j", 6)]).hint([("j", 1)]).to_list()
    assert [d["j"] for d in found] == [3, 4, 5]
    with pytest.raises(OperationFailure) as info:
        await db.c.find().min([("k", 3)]).hint([("j", 1)]).to_list()
    assert info.value.code == 51174


async def test_index_options_such_as_background_are_kept(db: Any) -> None:
    await db.c.create_index("a", background=True)
    assert (await db.c.index_information())["a_1"]["background"] is True


async def test_validate_reports_an_existing_collection_valid(db: Any) -> None:
    await db.c.insert_one({"_id": 1})
    reply = await db.validate_collection("c")
    assert reply["valid"] is True
    assert reply["nrecords"] == 1
    with pytest.raises(OperationFailure) as info:
        await db.validate_collection("missing")
    assert info.value.code == 26


async def test_list_local_sessions_shows_the_sessions_in_use(client: Any) -> None:
    async with await client.start_session() as session:
        await client.admin.command("ping", session=session)
        listed = await client.admin.aggregate([{"$listLocalSessions": {}}]).to_list()
        ids = [doc["_id"]["id"] for doc in listed]
        assert session.session_id["id"] in ids


async def test_a_snapshot_distinct_reports_its_cluster_time(db: Any) -> None:
    await db.c.insert_many([{"x": 1}, {"x": 2}])
    reply = await db.command({"distinct": "c", "key": "x", "readConcern": {"level": "snapshot"}})
    assert reply["values"] == [1, 2]
    assert "atClusterTime" in reply
