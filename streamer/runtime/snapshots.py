"""Reads at one cluster time: snapshot find cursors, read to the end in one session.

readConcern ``snapshot`` outside a transaction reads one point in time; the first
read's cursor reply names it (``atClusterTime``) and later reads name it themselves
(manual: "Read Concern 'snapshot'"). The server serves such a read while the time is
within its snapshot history (``minSnapshotHistoryWindowInSeconds``, 300 s by default);
an older one, or a cursor outliving it, fails with SnapshotTooOld (239).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import suppress
from typing import Any

from ..core.errors import DatabaseError
from ..core.values import Int64, Timestamp
from ..mongo import Mongo, Session

SNAPSHOT_TOO_OLD = 239
BATCH = 2000

Document = dict[str, Any]
Progress = Callable[[int], None]


def too_old(exc: DatabaseError) -> bool:
    return exc.code == SNAPSHOT_TOO_OLD


async def read_at(
    mongo: Mongo,
    session: Session,
    coll: str,
    at: Timestamp | None,
    *,
    filter: Mapping[str, Any] | None = None,
    projection: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> tuple[list[Document], Timestamp]:
    """Every matching document of ``coll`` as of ``at`` (None: now), and that time."""
    read_concern: dict[str, Any] = {"level": "snapshot"}
    if at is not None:
        read_concern["atClusterTime"] = at
    cmd: dict[str, Any] = {
        "find": coll,
        "filter": dict(filter or {}),
        "batchSize": BATCH,
        "readConcern": read_concern,
    }
    if projection is not None:
        cmd["projection"] = dict(projection)
    reply = await mongo.command(cmd, session=session)
    cursor = reply["cursor"]
    when: Timestamp = cursor.get("atClusterTime") or at or reply["operationTime"]
    docs: list[Document] = list(cursor["firstBatch"])
    cursor_id = cursor["id"]
    try:
        while cursor_id:
            if progress is not None:
                progress(len(docs))
            more = await mongo.command(
                {"getMore": Int64(cursor_id), "collection": coll, "batchSize": BATCH},
                session=session,
            )
            docs += more["cursor"]["nextBatch"]
            cursor_id = more["cursor"]["id"]
    finally:
        if cursor_id:
            with suppress(DatabaseError):  # the server reaps it otherwise
                await mongo.command(
                    {"killCursors": coll, "cursors": [Int64(cursor_id)]}, session=session
                )
    if progress is not None:
        progress(len(docs))
    return docs, when


async def first_event_after(
    mongo: Mongo,
    session: Session,
    coll: str,
    start: Mapping[str, Any],
    until: Timestamp,
    *,
    stage: Mapping[str, Any] | None = None,
) -> Timestamp | None:
    """The cluster time of ``coll``'s first change after ``start``, if at or before ``until``.

    ``start`` is a change-stream start (``{"startAfter": token}`` or
    ``{"startAtOperationTime": ts}``). ``stage`` is a partition's own ``$match``
    (:meth:`streamer.core.partitions.Partition.change_stage`): a partition's position
    covers its own events only, so only they count. None means nothing changed in between.
    """
    pipeline: list[dict[str, Any]] = [{"$changeStream": dict(start)}]
    if stage is not None:
        pipeline.append(dict(stage))
    pipeline += [
        {"$match": {"clusterTime": {"$lte": until}}},
        {"$project": {"clusterTime": 1}},
    ]
    reply = await mongo.command(
        {
            "aggregate": coll,
            "pipeline": pipeline,
            "cursor": {"batchSize": 1},
        },
        session=session,
    )
    cursor = reply["cursor"]
    if cursor["id"]:
        with suppress(DatabaseError):
            await mongo.command(
                {"killCursors": coll, "cursors": [Int64(cursor["id"])]}, session=session
            )
    first = cursor["firstBatch"]
    return first[0]["clusterTime"] if first else None
