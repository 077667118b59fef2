"""CRUD through Motor: the replies and errors a MongoDB primary gives."""

from __future__ import annotations

from typing import Any

import pytest
from bson import Decimal128, ObjectId
from pymongo import CursorType, DeleteOne, InsertOne, ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure


async def test_insert_one_generates_an_objectid_and_find_one_reads_it_back(db: Any) -> None:
    result = await db.users.insert_one({"name": "ada"})
    assert isinstance(result.inserted_id, ObjectId)
    doc = await db.users.find_one({"_id": result.inserted_id})
    assert doc == {"_id": result.inserted_id, "name": "ada"}
    assert list(doc) == ["_id", "name"]


async def test_insert_many_unordered_reports_each_duplicate_and_inserts_the_rest(db: Any) -> None:
    await db.c.insert_one({"_id": 2})
    with pytest.raises(BulkWriteError) as info:
        await db.c.insert_many([{"_id": 1}, {"_id": 2}, {"_id": 3}], ordered=False)
    details = info.value.details
    assert details["nInserted"] == 2
    [error] = details["writeErrors"]
    assert error["index"] == 1 and error["code"] == 11000
    assert error["keyPattern"] == {"_id": 1} and error["keyValue"] == {"_id": 2}
    assert await db.c.count_documents({}) == 3


async def test_ordered_insert_many_stops_at_the_first_error(db: Any) -> None:
    await db.c.insert_one({"_id": 2})
    with pytest.raises(BulkWriteError) as info:
        await db.c.insert_many([{"_id": 1}, {"_id": 2}, {"_id": 3}])
    assert info.value.details["nInserted"] == 1
    assert await db.c.count_documents({}) == 2


async def test_duplicate_on_a_unique_index_names_the_key_pattern_and_value(db: Any) -> None:
    await db.users.create_index("email", unique=True)
    await db.users.insert_one({"email": "a@example.com"})
    with pytest.raises(DuplicateKeyError) as info:
        await db.users.insert_one({"email": "a@example.com"})
    assert info.value.code == 11000
    assert info.value.details["keyPattern"] == {"email": 1}
    assert info.value.details["keyValue"] == {"email": "a@example.com"}
    assert "E11000 duplicate key error" in str(info.value)


async def test_update_one_reports_matched_and_modified_counts(db: Any) -> None:
    await db.c.insert_many([{"_id": 1, "n": 1}, {"_id": 2, "n": 1}])
    result = await db.c.update_one({"_id": 1}, {"$set": {"n": 1}})
    assert (result.matched_count, result.modified_count) == (1, 0)
    result = await db.c.update_many({}, {"$inc": {"n": 2}})
    assert (result.matched_count, result.modified_count) == (2, 2)
    assert [d["n"] async for d in db.c.find().sort("_id")] == [3, 3]


async def test_upsert_seeds_the_new_document_from_the_query_equalities(db: Any) -> None:
    result = await db.c.update_one(
        {"email": "b@example.com", "age": {"$gt": 3}},
        {"$set": {"name": "b"}, "$setOnInsert": {"created": True}},
        upsert=True,
    )
    assert result.upserted_id is not None and result.matched_count == 0
    doc = await db.c.find_one({"_id": result.upserted_id}, {"_id": 0})
    assert doc == {"email": "b@example.com", "name": "b", "created": True}


async def test_inc_upsert_creates_then_increments(db: Any) -> None:
    for _ in range(3):
        await db.counters.update_one({"_id": "k"}, {"$inc": {"n": 1}}, upsert=True)
    assert await db.counters.find_one({"_id": "k"}) == {"_id": "k", "n": 3}


async def test_array_filters_update_only_the_matching_elements(db: Any) -> None:
    await db.c.insert_one({"_id": 1, "grades": [80, 95, 100, 70]})
    await db.c.update_one(
        {"_id": 1}, {"$set": {"grades.$[g]": 0}}, array_filters=[{"g": {"$gte": 95}}]
    )
    assert (await db.c.find_one({"_id": 1}))["grades"] == [80, 0, 0, 70]


async def test_replace_one_keeps_the_id_and_rejects_changing_it(db: Any) -> None:
    await db.c.insert_one({"_id": 1, "a": 1})
    await db.c.replace_one({"_id": 1}, {"b": 2})
    assert await db.c.find_one({"_id": 1}) == {"_id": 1, "b": 2}
    with pytest.raises(OperationFailure) as info:
        await db.c.replace_one({"_id": 1}, {"_id": 2, "b": 3})
    assert info.value.code == 66


async def test_a_replacement_is_a_no_op_only_when_binary_equal(db: Any) -> None:
    """mongod's ObjectReplaceExecutor compares BSON bytes: 1.0 replacing 1 is a change
    (the stored type becomes double), the same document again is not."""
    await db.r.insert_one({"_id": 1, "a": 1})
    same = await db.r.replace_one({"_id": 1}, {"a": 1})
    retyped = await db.r.replace_one({"_id": 1}, {"a": 1.0})
    assert (same.modified_count, retyped.modified_count) == (0, 1)
    stored = await db.r.find_one({"_id": 1})
    assert type(stored["a"]) is float


async def test_delete_one_and_many_report_counts(db: Any) -> None:
    await db.c.insert_many([{"k": 1}, {"k": 1}, {"k": 2}])
    assert (await db.c.delete_one({"k": 1})).deleted_count == 1
    assert (await db.c.delete_many({})).deleted_count == 2


async def test_find_with_filter_projection_sort_skip_limit_and_small_batches(db: Any) -> None:
    await db.c.insert_many([{"_id": i, "v": i % 7, "pad": "x"} for i in range(300)])
    cursor = db.c.find({"v": {"$gte": 3}}, {"pad": 0}).sort([("v", -1), ("_id", 1)])
    docs = await cursor.skip(5).limit(150).batch_size(7).to_list(None)
    assert len(docs) == 150
    assert all("pad" not in d for d in docs)
    expected = sorted((d for d in range(300) if d % 7 >= 3), key=lambda i: (-(i % 7), i))[5:155]
    assert [d["_id"] for d in docs] == expected


async def test_a_killed_cursor_is_gone_for_getmore(db: Any) -> None:
    await db.c.insert_many([{"i": i} for i in range(20)])
    reply = await db.command({"find": "c", "batchSize": 2})
    cursor_id = reply["cursor"]["id"]
    killed = await db.command({"killCursors": "c", "cursors": [cursor_id]})
    assert killed["cursorsKilled"] == [cursor_id]
    with pytest.raises(OperationFailure) as info:
        await db.command({"getMore": cursor_id, "collection": "c"})
    assert info.value.code == 43 and info.value.details["codeName"] == "CursorNotFound"


async def test_find_one_and_update_returns_the_before_or_after_image(db: Any) -> None:
    await db.c.insert_one({"_id": 1, "n": 1})
    before = await db.c.find_one_and_update({"_id": 1}, {"$inc": {"n": 1}})
    after = await db.c.find_one_and_update(
        {"_id": 1}, {"$inc": {"n": 1}}, return_document=ReturnDocument.AFTER
    )
    assert (before["n"], after["n"]) == (1, 3)
    assert await db.c.find_one_and_delete({"_id": 1}) == {"_id": 1, "n": 3}
    assert await db.c.find_one_and_update(
        {"_id": 9}, {"$set": {"x": 1}}, upsert=True, return_document=ReturnDocument.AFTER
    ) == {"_id": 9, "x": 1}


async def test_count_documents_estimated_count_and_distinct(db: Any) -> None:
    await db.c.insert_many([{"s": "a", "t": [1, 2]}, {"s": "b", "t": [2, 3]}, {"s": "a"}])
    assert await db.c.count_documents({"s": "a"}) == 2
    assert await db.c.estimated_document_count() == 3
    assert sorted(await db.c.distinct("s")) == ["a", "b"]
    assert sorted(await db.c.distinct("t")) == [1, 2, 3]


async def test_bulk_write_mixes_operations_and_reports_totals(db: Any) -> None:
    result = await db.c.bulk_write(
        [
            InsertOne({"_id": 1}),
            UpdateOne({"_id": 1}, {"$set": {"a": 1}}),
            UpdateOne({"_id": 2}, {"$set": {"a": 2}}, upsert=True),
            DeleteOne({"_id": 1}),
        ]
    )
    assert (
        result.inserted_count,
        result.modified_count,
        result.upserted_count,
        result.deleted_count,
    ) == (1, 1, 1, 1)


async def test_numbers_compare_across_bson_types(db: Any) -> None:
    await db.c.insert_many([{"v": 1}, {"v": 1.0}, {"v": Decimal128("1.00")}, {"v": 2}])
    assert await db.c.count_documents({"v": 1}) == 3
    assert await db.c.count_documents({"v": {"$gt": Decimal128("1.5")}}) == 1


async def test_unknown_commands_fail_with_command_not_found(db: Any) -> None:
    with pytest.raises(OperationFailure) as info:
        await db.command({"noSuchCommand": 1})
    assert info.value.code == 59


async def test_an_update_that_matches_nothing_does_not_create_the_collection(db: Any) -> None:
    result = await db.ghost.update_one({"_id": 1}, {"$set": {"a": 1}})
    assert (result.matched_count, result.modified_count) == (0, 0)
    assert await db.ghost.find_one_and_update({"_id": 1}, {"$set": {"a": 1}}) is None
    assert "ghost" not in await db.list_collection_names()


async def test_documents_over_16_mib_are_refused_as_on_mongod(db: Any) -> None:
    """Inserts: 2 BadValue; an update whose result is too large: 17419."""
    big = "x" * (16 * 1024 * 1024)
    with pytest.raises(OperationFailure) as insert:
        await db.c.insert_one({"big": big})
    assert insert.value.code == 2
    await db.c.insert_one({"_id": 1, "half": "x" * (9 * 1024 * 1024)})
    with pytest.raises(OperationFailure) as update:
        await db.c.update_one({"_id": 1}, {"$set": {"other": "y" * (9 * 1024 * 1024)}})
    assert update.value.code == 17419
    assert await db.c.count_documents({}) == 1


async def test_dollar_and_dotted_field_names_follow_the_5_0_rules(db: Any) -> None:
    """5.0+: '$'-prefixed and dotted names are stored (set through $setField), but not
    inside _id (52 DollarPrefixedFieldName)."""
    await db.c.insert_one({"_id": 1, "$a": 1, "b": {"c.d": 2}})
    assert await db.c.find_one({"_id": 1}) == {"_id": 1, "$a": 1, "b": {"c.d": 2}}
    with pytest.raises(OperationFailure) as info:
        await db.c.insert_one({"_id": {"$x": 1}})
    assert info.value.code == 52
    set_field = {"$setField": {"field": {"$literal": "x.y"}, "value": 3, "input": "$$ROOT"}}
    await db.c.update_one({"_id": 1}, [{"$replaceWith": set_field}])
    assert (await db.c.find_one({"_id": 1}))["x.y"] == 3
    get_field = {"$getField": {"field": {"$literal": "$a"}, "input": "$$ROOT"}}
    unset = {"$unsetField": {"field": {"$literal": "$a"}, "input": "$$ROOT"}}
    found = await db.c.aggregate([{"$project": {"a": get_field, "rest": unset}}]).to_list()
    assert found == [{"_id": 1, "a": 1, "rest": {"_id": 1, "b": {"c.d": 2}, "x.y": 3}}]


async def test_a_full_batch_leaves_the_cursor_open_as_mongod_does(db: Any) -> None:
    """mongod does not look ahead: a batch that fills up keeps the cursor open, and only
    a batch that runs out (or reaches the limit) reports cursor id 0."""
    await db.c.insert_many([{"_id": i} for i in range(4)])
    first = await db.command({"find": "c", "batchSize": 2})
    assert first["cursor"]["id"] != 0
    more = await db.command({"getMore": first["cursor"]["id"], "collection": "c", "batchSize": 2})
    assert len(more["cursor"]["nextBatch"]) == 2 and more["cursor"]["id"] != 0
    last = await db.command({"getMore": more["cursor"]["id"], "collection": "c", "batchSize": 2})
    assert last["cursor"] == {"nextBatch": [], "id": 0, "ns": f"{db.name}.c"}
    limited = await db.command({"find": "c", "batchSize": 2, "limit": 2})
    assert limited["cursor"]["id"] == 0


async def test_an_exhaust_cursor_streams_every_batch(db: Any) -> None:
    """getMore with exhaustAllowed: the server streams moreToCome replies to the end."""
    await db.c.insert_many([{"_id": i} for i in range(150)])
    cursor = db.c.find(cursor_type=CursorType.EXHAUST, batch_size=7)
    assert [d["_id"] async for d in cursor] == list(range(150))
    assert await db.c.count_documents({}) == 150  # the connection is still usable
