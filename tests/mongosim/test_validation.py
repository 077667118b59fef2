"""$jsonSchema validators: 121 with errInfo, levels and actions, collMod in place."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.errors import OperationFailure, WriteError

# The guide's users validator.
USERS_SCHEMA = {
    "$jsonSchema": {
        "bsonType": "object",
        "required": ["name", "email", "created_at"],
        "properties": {
            "name": {"bsonType": "string", "minLength": 1},
            "email": {"bsonType": "string", "pattern": r"^[^@]+@[^@]+\.[^@]+$"},
            "active": {"bsonType": "bool"},
        },
    }
}


async def test_an_invalid_insert_fails_with_121_and_rich_error_info(db: Any) -> None:
    await db.create_collection("users", validator=USERS_SCHEMA)
    with pytest.raises(WriteError) as info:
        await db.users.insert_one({"_id": 1, "name": "", "email": "nope"})
    assert info.value.code == 121
    err_info = info.value.details["errInfo"]
    assert err_info["failingDocumentId"] == 1
    details = err_info["details"]
    assert details["operatorName"] == "$jsonSchema"
    operators = {rule["operatorName"] for rule in details["schemaRulesNotSatisfied"]}
    assert {"required", "properties"} <= operators


async def test_a_valid_document_is_accepted(db: Any) -> None:
    import datetime as dt

    await db.create_collection("users", validator=USERS_SCHEMA)
    await db.users.insert_one({"name": "a", "email": "a@b.co", "created_at": dt.datetime.now()})
    assert await db.users.count_documents({}) == 1


async def test_moderate_level_lets_updates_to_already_invalid_documents_through(db: Any) -> None:
    await db.c.insert_one({"_id": 1, "qty": "legacy"})
    await db.command(
        {
            "collMod": "c",
            "validator": {"$jsonSchema": {"properties": {"qty": {"bsonType": "int"}}}},
            "validationLevel": "moderate",
        }
    )
    await db.c.update_one({"_id": 1}, {"$set": {"note": "still invalid"}})
    await db.c.insert_one({"_id": 2, "qty": 1})
    with pytest.raises(WriteError) as info:
        await db.c.update_one({"_id": 2}, {"$set": {"qty": "bad"}})
    assert info.value.code == 121


async def test_warn_action_accepts_invalid_documents(db: Any) -> None:
    await db.create_collection(
        "c", validator={"$jsonSchema": {"required": ["a"]}}, validationAction="warn"
    )
    await db.c.insert_one({"b": 1})
    assert await db.c.count_documents({}) == 1


async def test_bypass_document_validation_skips_the_validator(db: Any) -> None:
    await db.create_collection("c", validator={"$jsonSchema": {"required": ["a"]}})
    await db.c.insert_one({"b": 1}, bypass_document_validation=True)
    assert await db.c.count_documents({}) == 1


async def test_collmod_replaces_the_validator_and_list_collections_shows_it(db: Any) -> None:
    await db.create_collection("c", validator={"$jsonSchema": {"required": ["a"]}})
    new = {"$jsonSchema": {"required": ["b"]}}
    await db.command({"collMod": "c", "validator": new, "validationLevel": "moderate"})
    [info] = [c async for c in await db.list_collections(filter={"name": "c"})]
    assert info["options"]["validator"] == new
    assert info["options"]["validationLevel"] == "moderate"
    await db.c.insert_one({"b": 1})
    with pytest.raises(OperationFailure):
        await db.c.insert_one({"a": 1})
