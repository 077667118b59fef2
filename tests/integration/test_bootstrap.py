"""``streamer bootstrap`` against a server: creates, is idempotent, checks, changes in place.

Each test gets a fresh database (the ``mongo`` fixture), so "first run" means an empty one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from streamer.core.errors import CommandError
from streamer.core.schema import Schema, load_schema, parse_schema
from streamer.core.schema_plan import ActionKind
from streamer.mongo import Mongo
from streamer.runtime.bootstrap import bootstrap_exit_code, run_bootstrap

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "config" / "schema.yaml"


@pytest.fixture(scope="module")
def schema() -> Schema:
    return load_schema(SCHEMA_PATH)


async def indexes_of(mongo: Mongo, coll: str) -> dict[str, dict[str, Any]]:
    return {ix["name"]: ix for ix in await mongo.list_indexes(coll)}


async def options_of(mongo: Mongo, coll: str) -> dict[str, Any]:
    [info] = [c for c in await mongo.list_collections() if c["name"] == coll]
    options: dict[str, Any] = info.get("options", {})
    return options


async def test_first_run_creates_every_collection_validator_and_index(
    mongo: Mongo, schema: Schema
) -> None:
    """An empty database gets all declared collections, validators and indexes."""
    with capture_logs() as logs:
        report = await run_bootstrap(mongo, schema)
    assert report.changed and bootstrap_exit_code(report) == 0
    names = {c["name"] for c in await mongo.list_collections()}
    assert names == {c.name for c in schema.collections}

    users = await options_of(mongo, "users")
    assert users["validationLevel"] == "moderate" and users["validationAction"] == "error"
    assert users["validator"]["$jsonSchema"]["required"] == ["name", "email", "created_at"]
    assert (await options_of(mongo, "orders"))["validator"]["$jsonSchema"]["required"] == [
        "user_id",
        "amount",
        "status",
    ]

    ix = await indexes_of(mongo, "users")
    assert ix["email_1"]["unique"] is True and ix["email_1"]["key"] == {"email": 1}
    assert ix["active_1_created_at_-1"]["key"] == {"active": 1, "created_at": -1}
    assert ix["name_text_bio_text"]["key"] == {"_fts": "text", "_ftsx": 1}
    assert ix["last_login_1"]["partialFilterExpression"] == {"active": True}
    assert (await indexes_of(mongo, "sessions"))["expires_at_1"]["expireAfterSeconds"] == 0
    alert = (await indexes_of(mongo, "stock_alerts"))["one_open_alert_per_product"]
    assert alert["unique"] is True and alert["partialFilterExpression"] == {"state": "open"}
    assert set(await indexes_of(mongo, "streamer_mirror_orders")) == {
        "_id_",
        "user_status_created",
        "resync_generation",
    }
    assert set(await indexes_of(mongo, "user_totals")) == {"_id_"}
    shares = (await indexes_of(mongo, "streamer_totals_deltas"))["stream_partition"]
    assert shares["key"] == {"s": 1, "to": 1, "_id": 1}

    events = [e["event"] for e in logs]
    assert events.count("bootstrap.index_created") == 12
    [done] = [e for e in logs if e["event"] == "bootstrap.done"]
    assert done["create_collection"] == 11 and done["create_index"] == 12


async def test_second_run_changes_nothing_and_says_so(mongo: Mongo, schema: Schema) -> None:
    """Bootstrap is idempotent: a rerun plans no action and reports the schema up to date."""
    await run_bootstrap(mongo, schema)
    report = await run_bootstrap(mongo, schema)
    assert not report.changed and not report.drift and not report.actions
    assert report.lines() == ["schema up to date: no changes"]
    assert bootstrap_exit_code(report) == 0


async def test_check_on_an_empty_database_reports_drift_and_changes_nothing(
    mongo: Mongo, schema: Schema
) -> None:
    """Check mode lists what it would do, exits 1 and leaves the database untouched."""
    report = await run_bootstrap(mongo, schema, check=True)
    assert report.drift and not report.changed
    assert bootstrap_exit_code(report) == 1
    assert any(line.startswith("would create collection users") for line in report.lines())
    assert report.lines()[-1].startswith("drift:")
    assert await mongo.list_collections() == []


async def test_check_after_a_run_reports_no_drift(mongo: Mongo, schema: Schema) -> None:
    """Once applied, check mode finds nothing to do and exits 0."""
    await run_bootstrap(mongo, schema)
    report = await run_bootstrap(mongo, schema, check=True)
    assert not report.drift and bootstrap_exit_code(report) == 0
    assert report.lines() == ["schema up to date: no changes"]


async def test_a_changed_ttl_is_applied_in_place_with_collmod(mongo: Mongo, schema: Schema) -> None:
    """An existing TTL index with another expireAfterSeconds is modified, not rebuilt."""
    await mongo.command(
        {
            "createIndexes": "sessions",
            "indexes": [
                {"key": {"expires_at": 1}, "name": "expires_at_1", "expireAfterSeconds": 3600}
            ],
        }
    )
    with capture_logs() as logs:
        report = await run_bootstrap(mongo, schema)
    [ttl] = [a for a in report.actions if a.kind is ActionKind.MODIFY_INDEX_TTL]
    assert (ttl.collection, ttl.index, ttl.before, ttl.after) == (
        "sessions",
        "expires_at_1",
        "3600",
        "0",
    )
    assert not report.conflicts and bootstrap_exit_code(report) == 0
    assert (await indexes_of(mongo, "sessions"))["expires_at_1"]["expireAfterSeconds"] == 0
    assert any(e["event"] == "bootstrap.index_ttl_changed" for e in logs)
    assert not any(e["event"] == "bootstrap.index_replaced" for e in logs)
    again = await run_bootstrap(mongo, schema, check=True)
    assert not again.drift


async def test_a_changed_validator_is_applied_in_place_with_collmod(
    mongo: Mongo, schema: Schema
) -> None:
    """A collection with an older validator keeps its data and gets the declared one."""
    await mongo.command(
        {
            "create": "orders",
            "validator": {"$jsonSchema": {"bsonType": "object", "required": ["user_id"]}},
            "validationLevel": "strict",
        }
    )
    await mongo.insert_many("orders", [{"user_id": 1}])
    report = await run_bootstrap(mongo, schema)
    [change] = [a for a in report.actions if a.collection == "orders"]
    assert change.kind is ActionKind.MODIFY_VALIDATION
    assert change.before is not None and "strict" in change.before
    assert change.after is not None and "moderate" in change.after
    options = await options_of(mongo, "orders")
    assert options["validationLevel"] == "moderate"
    assert options["validator"]["$jsonSchema"]["required"] == ["user_id", "amount", "status"]
    assert await mongo.count("orders", {}) == 1
    assert not (await run_bootstrap(mongo, schema, check=True)).drift


async def _conflicting_email_index(mongo: Mongo) -> None:
    await mongo.command(
        {"createIndexes": "users", "indexes": [{"key": {"email": 1}, "name": "email_1"}]}
    )


async def test_a_conflicting_index_is_reported_and_not_dropped(
    mongo: Mongo, schema: Schema
) -> None:
    """users.email_1 existing non-unique: reported with before/after, exit 1, kept as is."""
    await _conflicting_email_index(mongo)
    report = await run_bootstrap(mongo, schema)
    [conflict] = report.conflicts
    assert (conflict.collection, conflict.index) == ("users", "email_1")
    assert "unique" not in conflict.before and "unique=true" in conflict.after
    assert bootstrap_exit_code(report) == 1
    assert any(line.startswith("CONFLICT") and "before:" in line for line in report.lines())
    assert "unique" not in (await indexes_of(mongo, "users"))["email_1"]
    # everything else was still applied
    assert "name_text_bio_text" in await indexes_of(mongo, "users")
    check = await run_bootstrap(mongo, schema, check=True)
    assert [c.index for c in check.conflicts] == ["email_1"] and not check.actions


async def test_replace_conflicting_drops_and_recreates_the_index(
    mongo: Mongo, schema: Schema
) -> None:
    """With replace_conflicting the conflicting index is replaced by the declared one."""
    await _conflicting_email_index(mongo)
    with capture_logs() as logs:
        report = await run_bootstrap(mongo, schema, replace_conflicting=True)
    assert [c.index for c in report.replaced] == ["email_1"]
    assert bootstrap_exit_code(report) == 0 and report.changed
    assert any(
        line.startswith("replaced conflicting index users.email_1") for line in report.lines()
    )
    assert (await indexes_of(mongo, "users"))["email_1"]["unique"] is True
    assert any(e["event"] == "bootstrap.index_replaced" for e in logs)
    assert not (await run_bootstrap(mongo, schema, check=True)).drift


async def test_an_undeclared_index_is_reported_and_kept(mongo: Mongo, schema: Schema) -> None:
    """An extra index is a note, not drift: check stays clean and the index survives."""
    await run_bootstrap(mongo, schema)
    await mongo.command(
        {"createIndexes": "users", "indexes": [{"key": {"nickname": 1}, "name": "nickname_1"}]}
    )
    report = await run_bootstrap(mongo, schema, check=True)
    assert not report.drift and bootstrap_exit_code(report) == 0
    [note] = report.notes
    assert "nickname_1" in note.message
    assert any(line.startswith("note:") and "nickname_1" in line for line in report.lines())
    applied = await run_bootstrap(mongo, schema)
    assert not applied.changed
    assert "nickname_1" in await indexes_of(mongo, "users")


async def test_declared_validators_accept_valid_documents_and_reject_invalid_ones(
    mongo: Mongo, schema: Schema
) -> None:
    """The declared jsonSchema keywords work on the server (moderate, error)."""
    await run_bootstrap(mongo, schema)
    await mongo.insert_many(
        "inventory", [{"sku": "A-1", "name": "widget", "stock": 3, "low_stock_threshold": 1}]
    )
    invalid = [
        ("inventory", {"sku": "A-2", "name": "w", "stock": 1.5}),
        ("orders", {"user_id": 1, "amount": -1, "status": "new"}),
        ("users", {"name": "a", "email": "nope", "created_at": 1}),
    ]
    for coll, doc in invalid:
        with pytest.raises(CommandError) as info:
            await mongo.insert_many(coll, [doc])
        assert info.value.code == 121  # DocumentValidationFailure


async def test_a_small_schema_applies_in_declaration_order(mongo: Mongo) -> None:
    """A collection is created (with its validator) before its indexes."""
    small = parse_schema(
        {
            "collections": {
                "c": {
                    "validator": {"$jsonSchema": {"required": ["a"]}},
                    "indexes": [{"name": "a_1", "keys": [["a", 1]]}],
                }
            }
        }
    )
    report = await run_bootstrap(mongo, small)
    assert [a.kind for a in report.actions] == [
        ActionKind.CREATE_COLLECTION,
        ActionKind.CREATE_INDEX,
    ]
    assert report.lines()[0] == "create collection c with validator"
    assert (await options_of(mongo, "c"))["validationLevel"] == "strict"
