"""Indexes: the guide's definitions, listIndexes shapes, conflicts and drops."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.errors import DuplicateKeyError, OperationFailure


async def test_the_guides_indexes_are_created_and_listed_as_mongod_shows_them(db: Any) -> None:
    await db.users.create_index("email", unique=True)
    await db.users.create_index([("active", 1), ("created_at", -1)])
    await db.users.create_index([("name", "text"), ("bio", "text")])
    await db.sessions.create_index("expires_at", expireAfterSeconds=0)
    await db.users.create_index("last_login", partialFilterExpression={"active": True})
    specs = {ix["name"]: ix async for ix in db.users.list_indexes()}
    assert specs["email_1"]["unique"] is True and specs["email_1"]["key"] == {"email": 1}
    assert specs["active_1_created_at_-1"]["key"] == {"active": 1, "created_at": -1}
    assert specs["name_text_bio_text"]["key"] == {"_fts": "text", "_ftsx": 1}
    assert specs["name_text_bio_text"]["weights"] == {"name": 1, "bio": 1}
    assert specs["last_login_1"]["partialFilterExpression"] == {"active": True}
    ttl = [ix async for ix in db.sessions.list_indexes() if ix["name"] == "expires_at_1"]
    assert ttl[0]["expireAfterSeconds"] == 0


async def test_creating_the_same_index_twice_is_a_no_op(db: Any) -> None:
    await db.c.create_index("a")
    reply = await db.command({"createIndexes": "c", "indexes": [{"key": {"a": 1}, "name": "a_1"}]})
    assert reply["numIndexesBefore"] == reply["numIndexesAfter"] == 2
    assert reply["note"] == "all indexes already exist"


async def test_same_name_with_different_options_is_a_conflict(db: Any) -> None:
    await db.c.create_index("a", name="idx")
    with pytest.raises(OperationFailure) as info:
        await db.c.create_index("b", name="idx")
    assert info.value.code in (85, 86)


async def test_unique_partial_index_allows_duplicates_outside_the_filter(db: Any) -> None:
    await db.alerts.create_index(
        "product_id", unique=True, partialFilterExpression={"state": "open"}
    )
    await db.alerts.insert_many(
        [
            {"product_id": 1, "state": "resolved"},
            {"product_id": 1, "state": "resolved"},
            {"product_id": 1, "state": "open"},
        ]
    )
    with pytest.raises(DuplicateKeyError):
        await db.alerts.insert_one({"product_id": 1, "state": "open"})


async def test_building_a_unique_index_over_duplicates_fails(db: Any) -> None:
    await db.c.insert_many([{"a": 1}, {"a": 1}])
    with pytest.raises(OperationFailure) as info:
        await db.c.create_index("a", unique=True)
    assert info.value.code == 11000


async def test_drop_index_by_name_and_by_key_and_missing_index_errors(db: Any) -> None:
    await db.c.create_index("a")
    await db.c.create_index("b")
    await db.c.drop_index("a_1")
    await db.c.drop_index([("b", 1)])
    assert [ix["name"] async for ix in db.c.list_indexes()] == ["_id_"]
    with pytest.raises(OperationFailure) as info:
        await db.c.drop_index("nope")
    assert info.value.code == 27


async def test_collmod_changes_ttl_in_place(db: Any) -> None:
    await db.sessions.create_index("expires_at", expireAfterSeconds=60)
    reply = await db.command(
        {"collMod": "sessions", "index": {"keyPattern": {"expires_at": 1}, "expireAfterSeconds": 5}}
    )
    assert (reply["expireAfterSeconds_old"], reply["expireAfterSeconds_new"]) == (60, 5)
    [ix] = [i async for i in db.sessions.list_indexes() if i["name"] == "expires_at_1"]
    assert ix["expireAfterSeconds"] == 5


async def test_indexed_equality_finds_documents_by_secondary_key(db: Any) -> None:
    await db.users.create_index("email", unique=True)
    await db.users.insert_many([{"email": f"u{i}@x"} for i in range(500)])
    doc = await db.users.find_one({"email": "u321@x"})
    assert doc is not None and doc["email"] == "u321@x"


async def test_collections_are_listed_created_renamed_and_dropped(db: Any, client: Any) -> None:
    await db.create_collection("a")
    with pytest.raises(OperationFailure) as info:
        await db.command({"create": "a", "validator": {"x": {"$exists": True}}})
    assert info.value.code == 48
    await db.a.insert_one({"_id": 1})
    await db.a.rename("b")
    assert await db.list_collection_names() == ["b"]
    assert await db.b.find_one() == {"_id": 1}
    assert db.name in await client.list_database_names()
    await db.b.drop()
    assert await db.list_collection_names() == []
