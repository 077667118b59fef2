"""Change events: the stream pipeline's shape and parse_event's normalized form."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from bson import ObjectId, Timestamp

from streamer.core.changes import Change, StreamEnd, UpdateDescription, parse_event, stream_pipeline

TS = Timestamp(1_700_000_000, 3)
WALL = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC)
OID = ObjectId("65f000000000000000000001")


def event(op: str, **extra: Any) -> dict[str, Any]:
    """A raw change event as the driver hands it over (already projected)."""
    return {
        "_id": {"_data": "8265F0"},
        "operationType": op,
        "clusterTime": TS,
        "wallTime": WALL,
        "documentKey": {"_id": OID},
        **extra,
    }


# -- data events -----------------------------------------------------------------------------


def test_insert_carries_the_full_document_and_no_update() -> None:
    """An insert becomes a Change with the projected fullDocument as ``full``."""
    doc = {"_id": OID, "user_id": 7, "amount": 12.5}
    change = parse_event(event("insert", fullDocument=doc))
    assert change == Change(
        op="insert", key=OID, cluster_time=TS, wall_time=WALL, full=doc, update=None
    )
    assert change.full is not doc  # a copy, not the driver's dict
    assert change.synthetic is False


def test_replace_carries_the_full_document() -> None:
    """A replace is like an insert: its own state is the fullDocument."""
    change = parse_event(event("replace", fullDocument={"status": "completed"}))
    assert isinstance(change, Change)
    assert (change.op, change.full, change.update) == ("replace", {"status": "completed"}, None)


def test_update_carries_its_update_description() -> None:
    """updatedFields, removedFields and truncatedArrays are normalized into UpdateDescription."""
    raw = event(
        "update",
        updateDescription={
            "updatedFields": {"status": "completed", "items.2.qty": 3},
            "removedFields": ["note"],
            "truncatedArrays": [{"field": "items", "newSize": 2}],
        },
    )
    change = parse_event(raw)
    assert isinstance(change, Change)
    assert change.op == "update" and change.full is None and change.key == OID
    assert change.update == UpdateDescription(
        updated={"status": "completed", "items.2.qty": 3},
        removed=("note",),
        truncated=(("items", 2),),
    )


@pytest.mark.parametrize(
    "description",
    [
        pytest.param(None, id="no-update-description"),
        pytest.param({}, id="empty"),
        pytest.param(
            {"updatedFields": None, "removedFields": None, "truncatedArrays": None},
            id="nulls-from-the-projection",
        ),
    ],
)
def test_update_with_nothing_left_after_projection_is_an_empty_description(
    description: dict[str, Any] | None,
) -> None:
    """An update touching only unprojected fields parses to an empty UpdateDescription."""
    change = parse_event(event("update", updateDescription=description))
    assert isinstance(change, Change)
    assert change.update == UpdateDescription()


def test_delete_has_a_key_and_no_state() -> None:
    """A delete keeps only its documentKey._id."""
    change = parse_event(event("delete"))
    assert isinstance(change, Change)
    assert (change.op, change.key, change.full, change.update) == ("delete", OID, None, None)


def test_naive_wall_time_is_taken_as_utc() -> None:
    """A wallTime decoded without tz_aware is UTC."""
    change = parse_event(event("delete", wallTime=dt.datetime(2024, 5, 1, 12, 30)))
    assert isinstance(change, Change)
    assert change.wall_time == WALL and change.wall_time.tzinfo is not None


def test_missing_wall_time_falls_back_to_the_cluster_time() -> None:
    """Without wallTime the event's time is its clusterTime."""
    raw = event("delete")
    del raw["wallTime"]
    change = parse_event(raw)
    assert isinstance(change, Change)
    assert change.wall_time == TS.as_datetime()


# -- stream ends and ignored events ----------------------------------------------------------


@pytest.mark.parametrize("op", ["drop", "rename", "dropDatabase", "invalidate"])
def test_end_events_become_stream_ends(op: str) -> None:
    """Events after which a collection stream cannot continue become StreamEnd."""
    assert parse_event(event(op)) == StreamEnd(op, TS)


def test_stream_end_without_cluster_time_gets_a_zero_timestamp() -> None:
    """A malformed end event still parses, at Timestamp(0, 0)."""
    assert parse_event({"operationType": "invalidate"}) == StreamEnd("invalidate", Timestamp(0, 0))


@pytest.mark.parametrize(
    "op",
    ["createIndexes", "dropIndexes", "create", "modify", "shardCollection", None],
    ids=lambda op: str(op),
)
def test_other_operation_types_are_ignored(op: str | None) -> None:
    """DDL and unknown events yield None: nothing to derive from them."""
    assert parse_event(event(op)) is None  # type: ignore[arg-type]


# -- the pipeline ----------------------------------------------------------------------------


def test_pipeline_is_a_single_project_that_keeps_the_resume_token() -> None:
    """One $project stage, never mentioning _id (projecting it away breaks resuming)."""
    pipeline = stream_pipeline(["user_id", "amount"])
    assert len(pipeline) == 1
    (stage,) = pipeline
    assert list(stage) == ["$project"]
    projection = stage["$project"]
    assert not any(name == "_id" or name.startswith("_id.") for name in projection)
    assert '"_id' not in json.dumps(pipeline)


def test_pipeline_keeps_the_event_metadata_and_the_needed_fields() -> None:
    """operationType, documentKey, clusterTime, wallTime and fullDocument.<field> are kept."""
    projection = stream_pipeline(["sku", "stock"])[0]["$project"]
    for name in ("operationType", "documentKey", "clusterTime", "wallTime"):
        assert projection[name] == 1
    assert projection["fullDocument.sku"] == projection["fullDocument.stock"] == 1
    assert not any(
        k.startswith("fullDocument.") and k not in ("fullDocument.sku", "fullDocument.stock")
        for k in projection
    )


def test_pipeline_filters_the_update_description_by_top_level_field() -> None:
    """Each updateDescription part is filtered on the first segment of its path."""
    projection = stream_pipeline(["status"])[0]["$project"]
    description = projection["updateDescription"]["$cond"][1]
    updated = description["updatedFields"]["$arrayToObject"]["$filter"]
    removed = description["removedFields"]["$filter"]
    truncated = description["truncatedArrays"]["$filter"]
    assert removed["input"] == "$updateDescription.removedFields"
    assert truncated["input"] == "$updateDescription.truncatedArrays"
    for spec, var in ((updated, "$$this.k"), (removed, "$$this"), (truncated, "$$this.field")):
        assert spec["cond"] == {"$in": [{"$arrayElemAt": [{"$split": [var, "."]}, 0]}, ["status"]]}


def test_pipeline_computes_the_update_description_for_updates_only() -> None:
    """Other events leave it out ($$REMOVE) rather than carry an empty one."""
    condition, _, otherwise = stream_pipeline(["status"])[0]["$project"]["updateDescription"][
        "$cond"
    ]
    assert condition == {"$eq": ["$operationType", "update"]}
    assert otherwise == "$$REMOVE"
