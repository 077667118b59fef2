"""Change streams through Motor: event documents, resume, transactions, pre-images, errors."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from bson import Timestamp
from pymongo.errors import OperationFailure


async def _next(stream: Any) -> dict[str, Any]:
    event: dict[str, Any] = await stream.next()
    return event


async def test_insert_event_has_mongods_fields_in_order(db: Any) -> None:
    async with db.c.watch() as stream:
        await db.c.insert_one({"_id": 1, "a": "x"})
        event = await _next(stream)
    assert list(event) == [
        "_id",
        "operationType",
        "clusterTime",
        "wallTime",
        "fullDocument",
        "ns",
        "documentKey",
    ]
    assert set(event["_id"]) == {"_data"} and isinstance(event["_id"]["_data"], str)
    assert event["operationType"] == "insert"
    assert isinstance(event["clusterTime"], Timestamp)
    assert isinstance(event["wallTime"], dt.datetime)
    assert event["fullDocument"] == {"_id": 1, "a": "x"}
    assert event["ns"] == {"db": db.name, "coll": "c"}
    assert event["documentKey"] == {"_id": 1}


async def test_update_event_reports_dotted_updated_fields_and_removed_fields(db: Any) -> None:
    await db.c.insert_one({"_id": 1, "a": {"b": 1, "c": 2}, "gone": True, "arr": [1, 2]})
    async with db.c.watch() as stream:
        await db.c.update_one(
            {"_id": 1}, {"$set": {"a.b": 5}, "$unset": {"gone": ""}, "$push": {"arr": 3}}
        )
        event = await _next(stream)
    assert event["operationType"] == "update"
    assert "fullDocument" not in event
    description = event["updateDescription"]
    assert description["updatedFields"] == {"a.b": 5, "arr.2": 3}
    assert description["removedFields"] == ["gone"]
    assert description["truncatedArrays"] == []


async def test_update_lookup_returns_the_current_document(db: Any) -> None:
    await db.c.insert_one({"_id": 1, "n": 0})
    async with db.c.watch(full_document="updateLookup") as stream:
        await db.c.update_one({"_id": 1}, {"$inc": {"n": 1}})
        event = await _next(stream)
    assert event["fullDocument"] == {"_id": 1, "n": 1}


async def test_replace_and_delete_events(db: Any) -> None:
    await db.c.insert_one({"_id": 1, "a": 1})
    async with db.c.watch() as stream:
        await db.c.replace_one({"_id": 1}, {"b": 2})
        await db.c.delete_one({"_id": 1})
        replace, delete = await _next(stream), await _next(stream)
    assert replace["operationType"] == "replace"
    assert replace["fullDocument"] == {"_id": 1, "b": 2}
    assert delete["operationType"] == "delete"
    assert delete["documentKey"] == {"_id": 1} and "fullDocument" not in delete


async def test_pre_images_are_delivered_when_the_collection_enables_them(db: Any) -> None:
    await db.create_collection("c", changeStreamPreAndPostImages={"enabled": True})
    await db.c.insert_one({"_id": 1, "n": 0})
    async with db.c.watch(
        full_document_before_change="required", full_document="whenAvailable"
    ) as stream:
        await db.c.update_one({"_id": 1}, {"$inc": {"n": 1}})
        await db.c.delete_one({"_id": 1})
        update, delete = await _next(stream), await _next(stream)
    assert update["fullDocumentBeforeChange"] == {"_id": 1, "n": 0}
    assert update["fullDocument"] == {"_id": 1, "n": 1}
    assert delete["fullDocumentBeforeChange"] == {"_id": 1, "n": 1}


async def test_a_transaction_arrives_together_with_lsid_and_txn_number(
    client: Any, db: Any
) -> None:
    await db.create_collection("c")
    async with db.watch() as stream:
        async with await client.start_session() as session, session.start_transaction():
            await db.c.insert_one({"_id": 1}, session=session)
            await db.c.update_one({"_id": 1}, {"$set": {"x": 1}}, session=session)
            await db.d.insert_one({"_id": 2}, session=session)
        events = [await _next(stream) for _ in range(3)]
    assert [e["operationType"] for e in events] == ["insert", "update", "insert"]
    assert len({e["clusterTime"] for e in events}) == 1
    assert len({e["_id"]["_data"] for e in events}) == 3
    assert all(e["lsid"] == events[0]["lsid"] for e in events)
    assert len({e["txnNumber"] for e in events}) == 1


async def test_an_aborted_transaction_emits_nothing(client: Any, db: Any) -> None:
    await db.create_collection("c")
    async with db.c.watch() as stream:
        async with await client.start_session() as session:
            session.start_transaction()
            await db.c.insert_one({"_id": "aborted"}, session=session)
            await session.abort_transaction()
        await db.c.insert_one({"_id": "after"})
        event = await _next(stream)
    assert event["documentKey"] == {"_id": "after"}


async def test_a_restarted_watcher_resumes_from_its_stored_token(db: Any) -> None:
    async with db.c.watch() as stream:
        await db.c.insert_many([{"_id": i} for i in range(3)])
        await _next(stream)
        token = stream.resume_token
    await db.c.insert_one({"_id": 3})
    async with db.c.watch(resume_after=token) as stream:
        seen = [(await _next(stream))["documentKey"]["_id"] for _ in range(3)]
    assert seen == [1, 2, 3]


async def test_start_at_operation_time_includes_that_time(db: Any) -> None:
    result = await db.c.insert_one({"_id": 1})
    assert result.acknowledged
    reply = await db.command({"find": "c", "filter": {"_id": 1}})
    start = reply["operationTime"]
    await db.c.insert_one({"_id": 2})
    async with db.c.watch(start_at_operation_time=start) as stream:
        event = await _next(stream)
    assert event["clusterTime"] >= start


async def test_post_batch_resume_token_advances_on_a_quiet_collection(db: Any) -> None:
    await db.create_collection("quiet")
    async with db.quiet.watch(max_await_time_ms=50) as stream:
        assert await stream.try_next() is None
        first = stream.resume_token
        await db.busy.insert_one({"_id": 1})
        assert await stream.try_next() is None
        second = stream.resume_token
    assert first is not None and second is not None and first != second


async def test_drop_invalidates_a_collection_stream_and_start_after_passes_it(db: Any) -> None:
    await db.c.insert_one({"_id": 1})
    async with db.c.watch() as stream:
        await db.c.drop()
        drop, invalidate = await _next(stream), await _next(stream)
        assert drop["operationType"] == "drop"
        assert invalidate["operationType"] == "invalidate"
        assert not stream.alive
    await db.c.insert_one({"_id": 2})
    async with db.c.watch(start_after=invalidate["_id"]) as stream:
        event = await _next(stream)
    assert event["operationType"] == "insert" and event["documentKey"] == {"_id": 2}
    with pytest.raises(OperationFailure) as info:
        async with db.c.watch(resume_after=invalidate["_id"]) as stream:
            await stream.try_next()
    assert info.value.code == 260


async def test_rename_is_reported_and_invalidates_the_source_stream(db: Any) -> None:
    await db.a.insert_one({"_id": 1})
    async with db.a.watch() as stream:
        await db.a.rename("b")
        rename, invalidate = await _next(stream), await _next(stream)
    assert rename["operationType"] == "rename"
    assert rename["to"] == {"db": db.name, "coll": "b"}
    assert invalidate["operationType"] == "invalidate"


async def test_a_database_stream_sees_every_collection(db: Any) -> None:
    async with db.watch() as stream:
        await db.a.insert_one({"_id": 1})
        await db.b.insert_one({"_id": 2})
        events = [await _next(stream), await _next(stream)]
    assert [e["ns"]["coll"] for e in events] == ["a", "b"]


async def test_a_cluster_stream_sees_every_database(client: Any, db: Any) -> None:
    other = client[f"{db.name}_other"]
    try:
        async with client.watch() as stream:
            await db.a.insert_one({"_id": 1})
            await other.b.insert_one({"_id": 2})
            events = [await _next(stream), await _next(stream)]
        assert [e["ns"] for e in events] == [
            {"db": db.name, "coll": "a"},
            {"db": other.name, "coll": "b"},
        ]
    finally:
        await client.drop_database(other.name)


async def test_pipeline_stages_filter_and_project_events(db: Any) -> None:
    pipeline = [
        {"$match": {"fullDocument.keep": True}},
        {"$project": {"fullDocument.keep": 1, "operationType": 1}},
    ]
    async with db.c.watch(pipeline) as stream:
        await db.c.insert_many([{"_id": 1, "keep": False}, {"_id": 2, "keep": True, "x": 1}])
        event = await _next(stream)
    assert event["fullDocument"] == {"keep": True}
    assert set(event) == {"_id", "operationType", "fullDocument"}


async def test_modifying_the_event_id_in_the_pipeline_is_refused(db: Any) -> None:
    with pytest.raises(OperationFailure) as info:
        async with db.c.watch([{"$project": {"_id": 0}}]) as stream:
            await db.c.insert_one({"_id": 1})
            await stream.next()
    assert info.value.code == 280
    assert info.value.details["codeName"] == "ChangeStreamFatalError"
    assert info.value.has_error_label("NonResumableChangeStreamError")


async def test_an_unknown_stage_after_change_stream_is_unrecognized(db: Any) -> None:
    """40324 for a stage no pipeline knows; 20 only for a known stage not allowed here."""
    with pytest.raises(OperationFailure) as unknown:
        await db.c.watch([{"$unsupported": "foo"}]).next()
    assert unknown.value.code == 40324
    assert unknown.value.details["codeName"] == "Location40324"
    with pytest.raises(OperationFailure) as illegal:
        await db.c.watch([{"$lookup": {"from": "x", "as": "y"}}]).next()
    assert illegal.value.code == 20


async def test_a_change_stream_refuses_a_read_concern_other_than_majority(db: Any) -> None:
    with pytest.raises(OperationFailure) as info:
        await db.command({"aggregate": "c", "pipeline": [{"$changeStream": {}}], "cursor": {},
                          "readConcern": {"level": "local"}})  # fmt: skip
    assert info.value.code == 72
    async with db.c.watch() as stream:  # no readConcern: majority is implied
        assert stream.alive


async def test_expanded_events_describe_catalog_changes(db: Any) -> None:
    async with db.watch(show_expanded_events=True) as stream:
        await db.create_collection("c")
        await db.c.create_index("a")
        await db.command({"collMod": "c", "validator": {"a": {"$exists": True}}})
        await db.c.drop_index("a_1")
        events = [await _next(stream) for _ in range(4)]
    assert [e["operationType"] for e in events] == [
        "create",
        "createIndexes",
        "modify",
        "dropIndexes",
    ]
    assert all("operationDescription" in e and "collectionUUID" in e for e in events)


async def test_a_malformed_resume_token_fails_with_260(db: Any) -> None:
    with pytest.raises(OperationFailure) as info:
        async with db.c.watch(resume_after={"_data": "zz-not-hex"}) as stream:
            await stream.try_next()
    assert info.value.code == 260


async def test_no_event_is_lost_when_getmore_drops_the_connection(db: Any, fail_point: Any) -> None:
    async with db.c.watch(max_await_time_ms=100) as stream:
        await db.c.insert_one({"_id": 0})
        assert (await _next(stream))["documentKey"] == {"_id": 0}
        async with fail_point(
            {"mode": {"times": 1}, "data": {"failCommands": ["getMore"], "closeConnection": True}}
        ):
            await db.c.insert_many([{"_id": i} for i in range(1, 6)])
            seen = [(await _next(stream))["documentKey"]["_id"] for _ in range(5)]
    assert seen == [1, 2, 3, 4, 5]


async def test_getmore_failures_after_checkout_are_labelled_resumable(
    db: Any, fail_point: Any
) -> None:
    async with (
        db.c.watch(max_await_time_ms=100) as stream,
        fail_point(
            {
                "configureFailPoint": "failGetMoreAfterCursorCheckout",
                "mode": {"times": 1},
                "data": {"errorCode": 10107},
            }
        ),
    ):
        await db.c.insert_one({"_id": 1})
        event = await _next(stream)
    assert event["documentKey"] == {"_id": 1}


async def test_resuming_inside_a_transaction_delivers_only_its_remaining_events(
    client: Any, db: Any
) -> None:
    await db.create_collection("c")
    async with db.c.watch() as stream:
        async with await client.start_session() as session, session.start_transaction():
            await db.c.insert_many([{"_id": i} for i in range(3)], session=session)
        await _next(stream)
        second = await _next(stream)
    async with db.c.watch(resume_after=second["_id"]) as stream:
        third = await _next(stream)
    assert third["documentKey"] == {"_id": 2}
    assert third["clusterTime"] == second["clusterTime"]


async def test_small_batches_split_a_transaction_without_losing_events(
    client: Any, db: Any
) -> None:
    await db.create_collection("c")
    async with db.c.watch(batch_size=2) as stream:
        async with await client.start_session() as session, session.start_transaction():
            await db.c.insert_many([{"_id": i} for i in range(5)], session=session)
        seen = [(await _next(stream))["documentKey"]["_id"] for _ in range(5)]
    assert seen == [0, 1, 2, 3, 4]


async def test_update_descriptions_for_array_changes(db: Any) -> None:
    await db.c.insert_one({"_id": 1, "xs": [1, 2, 3, 4], "ys": [1]})
    async with db.c.watch() as stream:
        await db.c.update_one({"_id": 1}, {"$pop": {"xs": 1}})
        await db.c.update_one({"_id": 1}, {"$set": {"ys.0": 9}})
        pop, set_element = await _next(stream), await _next(stream)
    assert pop["updateDescription"]["truncatedArrays"] == [{"field": "xs", "newSize": 3}]
    assert pop["updateDescription"]["updatedFields"] == {}
    assert set_element["updateDescription"]["updatedFields"] == {"ys.0": 9}


async def test_drop_database_ends_a_database_stream_after_every_collection_drop(
    client: Any, db: Any
) -> None:
    await db.a.insert_one({"_id": 1})
    await db.b.insert_one({"_id": 1})
    async with db.watch() as stream:
        await client.drop_database(db.name)
        events = [await _next(stream) for _ in range(4)]
    assert [e["operationType"] for e in events] == ["drop", "drop", "dropDatabase", "invalidate"]
    assert {e["ns"].get("coll") for e in events[:2]} == {"a", "b"}


async def test_expanded_update_events_disambiguate_numeric_paths(db: Any) -> None:
    """disambiguatedPaths (showExpandedEvents only): array indexes as ints, names as str."""
    await db.c.insert_many([{"_id": 1, "a": {"1": 1}}, {"_id": 2, "a": [{"1": 1}]}])
    async with db.c.watch(show_expanded_events=True) as expanded, db.c.watch() as plain:
        await db.c.update_one({"_id": 1}, {"$set": {"a.1": 2}})
        await db.c.update_one({"_id": 2}, {"$set": {"a.0.1": 2}})
        first, second = await _next(expanded), await _next(expanded)
        assert "disambiguatedPaths" not in (await _next(plain))["updateDescription"]
    assert first["updateDescription"]["disambiguatedPaths"] == {"a.1": ["a", "1"]}
    assert second["updateDescription"]["disambiguatedPaths"] == {"a.0.1": ["a", 0, "1"]}


async def test_an_event_over_16_mib_is_split_or_refused(db: Any) -> None:
    """$changeStreamSplitLargeEvent splits it into fragments; without it, 10334."""
    await db.create_collection("c", changeStreamPreAndPostImages={"enabled": True})
    await db.c.insert_one({"_id": 1, "v": "q" * 10 * 1024 * 1024})
    options = {"full_document_before_change": "required"}
    async with db.c.watch([{"$changeStreamSplitLargeEvent": {}}], **options) as stream:
        await db.c.update_one({"_id": 1}, {"$set": {"v": "z" * 10 * 1024 * 1024}})
        fragments = [await _next(stream), await _next(stream)]
    assert [f["splitEvent"] for f in fragments] == [
        {"fragment": 1, "of": 2},
        {"fragment": 2, "of": 2},
    ]
    assert {"updateDescription", "fullDocumentBeforeChange"} <= {*fragments[0], *fragments[1]}
    with pytest.raises(OperationFailure) as info:
        async with db.c.watch(**options) as stream:
            await db.c.update_one({"_id": 1}, {"$set": {"v": "y" * 10 * 1024 * 1024}})
            await stream.next()
    assert info.value.code == 10334
