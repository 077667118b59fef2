"""``streamer status``: each stream's owner, lease, position, lag and phase.

Read from the database alone, so it answers with or without a service running: the
checkpoints (``streamer_checkpoints``), the leases (``streamer_leases``) and, for each
stream, whether any change waits after its checkpoint (see :mod:`streamer.core.lag`, which
is why the lag here agrees with /metrics). Printed as one line per stream, or as one
JSON document (``--json``): every stream has a list of partitions, one (partition 0)
for a stream read whole. A stream split into partitions (``streamer_partitionings``,
:mod:`streamer.runtime.partitionings`) gets a line and an entry per partition, each from
that partition's own lease and checkpoint (keyed ``orders#2/4``), its lag judged on its
own events only (the partition's change-stream filter). Times are ISO 8601, in UTC.

A lease counts only while it is live by the server's clock (:func:`streamer.runtime.leases.is_live`,
the one rule every reader of a lease uses); a
lease that expired or was released shows as ``no live owner``, never as an owner.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel

from ..core.checkpoint import Checkpoint
from ..core.errors import DatabaseError
from ..core.lag import Position, caught_up_as_of, lag_seconds, recorded_position
from ..core.partitions import Partition, partitions_of
from ..core.values import Timestamp
from ..mongo import Mongo
from ..runtime.checkpoints import CheckpointStore
from ..runtime.leases import COLLECTION as LEASES
from ..runtime.leases import is_live as lease_is_live
from ..runtime.partitionings import load as load_partitioning
from ..runtime.snapshots import first_event_after
from ..streams.orders import DELTAS

SERVER_NOW = "_status_server_now"  # the server's $$NOW, added to each lease read


class PartitionStatus(BaseModel):
    partition: int
    owner: str | None  # the live lease's holder; None when nobody holds it
    lease_expires_at: dt.datetime | None  # also when past: when the last lease ended
    position: dt.datetime | None  # the newest point fully processed (streamer.core.lag)
    lag_s: float | None  # None while resyncing or before the first position
    phase: Literal["stream", "resync"] | None  # None: the service never started it
    last_owner: str | None = None  # who the lease names, live or not
    gen: int | None = None
    last_event_at: dt.datetime | None = None
    resync_reason: str | None = None
    # A split orders stream: shares of its users' totals that other partitions deferred
    # to this one and it has not folded yet (streamer.core.deltas).
    shares_waiting: int = 0


class StreamStatus(BaseModel):
    stream: str
    partitions: list[PartitionStatus]


class StatusReport(BaseModel):
    streams: list[StreamStatus]


# -- pure -------------------------------------------------------------------------------
def partition_status(
    cp: Checkpoint | None,
    lease: Mapping[str, Any] | None,
    position: Position | None,
    *,
    server_now: dt.datetime,
    now: float,
    partition: int = 0,
) -> PartitionStatus:
    live = lease_is_live(lease, server_now)
    expires_at = lease.get("expires_at") if lease is not None else None
    holder = lease.get("owner") if lease is not None else None
    return PartitionStatus(
        partition=partition,
        owner=str(holder) if live and holder is not None else None,
        lease_expires_at=expires_at if isinstance(expires_at, dt.datetime) else None,
        position=position.as_datetime() if position is not None else None,
        lag_s=_rounded(lag_seconds(position, now)),
        phase=cp.phase if cp is not None else None,
        last_owner=str(holder) if holder is not None else None,
        gen=cp.gen if cp is not None else None,
        last_event_at=cp.applied_at if cp is not None else None,
        resync_reason=cp.resync.reason if cp is not None and cp.resync is not None else None,
    )


def _rounded(lag: float | None) -> float | None:
    return round(lag, 3) if lag is not None else None


def _iso(at: dt.datetime | None) -> str:
    return at.isoformat(timespec="milliseconds") if at is not None else "none"


def owner_text(p: PartitionStatus) -> str:
    if p.owner is not None:
        return f"owner={p.owner} lease_expires_at={_iso(p.lease_expires_at)}"
    if p.last_owner is not None:
        return f"no live owner ({p.last_owner}'s lease ended {_iso(p.lease_expires_at)})"
    return "no live owner"


def lines(report: StatusReport) -> list[str]:
    """One line per stream, or per partition (``orders#2/4: ...``) of a split one."""
    out = []
    for s in report.streams:
        for p in s.partitions:
            name = Partition(s.stream, p.partition, len(s.partitions)).key
            if p.phase is None:
                never = "no checkpoint (the service has not started this stream)"
                out.append(f"{name}: {never} {owner_text(p)}")
                continue
            lag = f"{p.lag_s:.1f}" if p.lag_s is not None else "unknown"
            line = (
                f"{name}: phase={p.phase} position={_iso(p.position)} lag_s={lag} "
                f"{owner_text(p)} gen={p.gen}"
            )
            if p.last_event_at is not None:
                line += f" last_event_at={_iso(p.last_event_at)}"
            if p.resync_reason is not None:
                line += f" resync_reason={p.resync_reason!r}"
            if p.shares_waiting:
                line += f" shares_waiting={p.shares_waiting}"
            out.append(line)
    return out


# -- I/O --------------------------------------------------------------------------------
async def read_leases(mongo: Mongo) -> tuple[dict[str, dict[str, Any]], dt.datetime | None]:
    """Every lease by stream, and the server's clock as it read them (None: no lease)."""
    docs = await mongo.aggregate(LEASES, [{"$addFields": {SERVER_NOW: "$$NOW"}}])
    server_now = docs[0][SERVER_NOW] if docs else None
    return {str(d["_id"]): d for d in docs}, server_now


async def stream_position(
    mongo: Mongo,
    source: str,
    cp: Checkpoint,
    at: Timestamp | None,
    unit: Partition | None = None,
    *,
    newest: Timestamp | None = None,
    asked_at: dt.datetime | None = None,
) -> Position | None:
    """How far the stream (or partition ``unit``) has processed: caught up to ``at`` when
    no change of ``source`` (of the partition's) waits after the checkpoint up to ``at``
    (as of ``asked_at``, when the ping that returned ``at`` knew of nothing newer:
    ``newest``), else what the checkpoint records."""
    recorded = recorded_position(cp)
    if recorded is None or at is None:
        return recorded
    start = {"startAfter": cp.token} if cp.token else {"startAtOperationTime": cp.start_at}
    try:
        async with mongo.session() as session:
            first = await first_event_after(
                mongo, session, source, start, at, stage=unit.change_stage() if unit else None
            )
    except DatabaseError:
        return recorded  # its history is gone, say: the owner must resync from there
    return caught_up_as_of(cp, at, newest, asked_at) if first is None else recorded


async def read_status(
    mongo: Mongo,
    sources: Mapping[str, str],
    *,
    clock: Callable[[], float] = time.time,
) -> StatusReport:
    """Each stream of ``sources`` (stream name to source collection), read now."""
    asked_at = dt.datetime.fromtimestamp(clock(), dt.UTC)
    reply = await mongo.command({"ping": 1})
    newest: Timestamp | None = (reply.get("$clusterTime") or {}).get("clusterTime")
    at = committed_time(reply.get("operationTime"), await mongo.command({"hello": 1}))
    checkpoints = {cp.stream: cp for cp in await CheckpointStore(mongo, "status").load_all()}
    leases, server_now = await read_leases(mongo)
    streams = []
    for name, source in sources.items():
        stored = await load_partitioning(mongo, name)
        count = stored.count if stored is not None else 1
        waiting = await shares_waiting(mongo, name) if count > 1 else {}
        partitions = []
        for unit in partitions_of(name, count):
            cp = checkpoints.get(unit.key)
            position = (
                await stream_position(mongo, source, cp, at, unit, newest=newest, asked_at=asked_at)
                if cp
                else None
            )
            p = partition_status(
                cp,
                leases.get(unit.key),
                position,
                # No lease read, no server clock: then there is no lease to judge either.
                server_now=server_now or dt.datetime.now(dt.UTC),
                now=clock(),
                partition=unit.index,
            )
            p.shares_waiting = waiting.get(unit.index, 0)
            partitions.append(p)
        streams.append(StreamStatus(stream=name, partitions=partitions))
    return StatusReport(streams=streams)


def committed_time(operation_time: Timestamp | None, hello: Mapping[str, Any]) -> Timestamp | None:
    """The newest cluster time a change stream can have returned everything up to: a
    replica set member's majority commit point (``hello``'s ``lastWrite.majorityOpTime``;
    a change stream returns only majority-committed changes, so a write only the
    primary has is not caught up to yet), else the ping's ``operationTime``."""
    majority = ((hello.get("lastWrite") or {}).get("majorityOpTime") or {}).get("ts")
    if not isinstance(majority, Timestamp) or operation_time is None:
        return operation_time
    return min(operation_time, majority)


async def shares_waiting(mongo: Mongo, stream: str) -> dict[int, int]:
    """How many shares wait for each partition of ``stream`` to fold them."""
    rows = await mongo.aggregate(
        DELTAS, [{"$match": {"s": stream}}, {"$group": {"_id": "$to", "n": {"$sum": 1}}}]
    )
    return {int(r["_id"]): int(r["n"]) for r in rows}


def render(report: StatusReport, *, as_json: bool) -> Sequence[str]:
    return [report.model_dump_json(indent=2)] if as_json else lines(report)
