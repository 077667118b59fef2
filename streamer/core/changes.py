"""Change events: the pipeline that keeps them small, and their normalized form.

The change-stream pipeline keeps only the fields a stream needs: the projected
``fullDocument`` of inserts and replaces and the entries of ``updateDescription`` that
touch those fields. Events stay a few hundred bytes whatever the source documents
hold, so an oversize document cannot stall a stream (a change event over 16 MB fails
with BSONObjectTooLarge; "Change Events" and "$changeStreamSplitLargeEvent" in the
manual). ``_id`` (the resume token) is left untouched, as it must be (error 280).

Update events are turned into each event's own state by applying the update
description to the stored previous state (``streamer.core.mirror``), never by looking up
the current document: a looked-up document shows a later state and would hide
intermediate transitions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .values import Timestamp

Op = Literal["insert", "update", "replace", "delete"]
DATA_OPS = frozenset({"insert", "update", "replace", "delete"})
# Events after which a collection-level stream cannot go on: the collection (or its
# database) is gone or renamed. The derived data is rebuilt from what is left.
END_OPS = frozenset({"drop", "rename", "dropDatabase", "invalidate"})


@dataclass(frozen=True, slots=True)
class UpdateDescription:
    updated: Mapping[str, Any] = field(default_factory=dict)
    removed: Sequence[str] = ()
    truncated: Sequence[tuple[str, int]] = ()


@dataclass(frozen=True, slots=True)
class Change:
    """One data change to a source document, as the stream saw it."""

    op: Op
    key: Any  # documentKey._id
    cluster_time: Timestamp
    wall_time: dt.datetime
    full: Mapping[str, Any] | None = None  # insert/replace: the projected new document
    update: UpdateDescription | None = None
    synthetic: bool = False  # made by a resync from a snapshot, not read from the oplog


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The collection was dropped or renamed (or its stream invalidated)."""

    op: str
    cluster_time: Timestamp


def _top_field_in(path_var: str, fields: Sequence[str]) -> dict[str, Any]:
    """``{$in: [first segment of the dotted path in path_var, fields]}``."""
    return {"$in": [{"$arrayElemAt": [{"$split": [path_var, "."]}, 0]}, list(fields)]}


def stream_pipeline(fields: Sequence[str]) -> list[dict[str, Any]]:
    """The stages after ``$changeStream`` for a stream that needs ``fields``.

    ``updateDescription`` is computed for update events only (``$$REMOVE`` elsewhere):
    an insert, replace or delete then costs the server one comparison instead of three
    array filters, and its event carries no empty description to encode and decode.
    """
    description = {
        "updatedFields": {
            "$arrayToObject": {
                "$filter": {
                    "input": {"$objectToArray": "$updateDescription.updatedFields"},
                    "cond": _top_field_in("$$this.k", fields),
                }
            }
        },
        "removedFields": {
            "$filter": {
                "input": "$updateDescription.removedFields",
                "cond": _top_field_in("$$this", fields),
            }
        },
        "truncatedArrays": {
            "$filter": {
                "input": "$updateDescription.truncatedArrays",
                "cond": _top_field_in("$$this.field", fields),
            }
        },
    }
    projection: dict[str, Any] = {
        "operationType": 1,
        "documentKey": 1,
        "clusterTime": 1,
        "wallTime": 1,
        **{f"fullDocument.{name}": 1 for name in fields},
        "updateDescription": {
            "$cond": [{"$eq": ["$operationType", "update"]}, description, "$$REMOVE"]
        },
    }
    return [{"$project": projection}]


def _wall_time(event: Mapping[str, Any], ts: Timestamp) -> dt.datetime:
    wall = event.get("wallTime")
    if isinstance(wall, dt.datetime):
        return wall if wall.tzinfo else wall.replace(tzinfo=dt.UTC)
    return ts.as_datetime()


def parse_event(event: Mapping[str, Any]) -> Change | StreamEnd | None:
    """The normalized change, a stream end, or None for events a stream ignores."""
    op = event.get("operationType")
    ts = event.get("clusterTime")
    if not isinstance(ts, Timestamp):
        ts = Timestamp(0, 0)
    if op in END_OPS:
        return StreamEnd(str(op), ts)
    if op not in DATA_OPS:
        return None  # e.g. createIndexes with showExpandedEvents: nothing to derive
    key = (event.get("documentKey") or {}).get("_id")
    update = None
    if op == "update":
        desc = event.get("updateDescription") or {}
        update = UpdateDescription(
            updated=desc.get("updatedFields") or {},
            removed=tuple(desc.get("removedFields") or ()),
            truncated=tuple(
                (t["field"], int(t["newSize"])) for t in desc.get("truncatedArrays") or ()
            ),
        )
    full = None
    if op in ("insert", "replace"):
        full = dict(event.get("fullDocument") or {})
    return Change(
        op=op,
        key=key,
        cluster_time=ts,
        wall_time=_wall_time(event, ts),
        full=full,
        update=update,
    )


def token_time(token: Mapping[str, Any] | None) -> Timestamp | None:
    """The cluster time a resume token stands at, or None if it cannot be read.

    mongod's tokens (every version since 4.2) are a KeyString whose first value is the
    cluster time: the type byte 0x82 (130, Timestamp), then the time and increment as
    two big-endian 32-bit numbers (src/mongo/db/pipeline/resume_token.cpp,
    ResumeToken::toBSON; src/mongo/db/storage/key_string.cpp). A postBatchResumeToken
    at time ``t`` says the stream has read the oplog up to ``t``.
    """
    data = token.get("_data") if token is not None else None
    if not isinstance(data, str) or len(data) < 18 or data[:2].lower() != "82":
        return None
    try:
        return Timestamp(int(data[2:10], 16), int(data[10:18], 16))
    except ValueError:
        return None
