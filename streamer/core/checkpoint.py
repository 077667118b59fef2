"""The checkpoint document as values: where a stream resumes, its resync, its requests.

One document per stream (or partition) in ``streamer_checkpoints`` (read and advanced by
:class:`streamer.runtime.checkpoints.CheckpointStore`) holds where the stream resumes
(a resume token, or a cluster time to start at after a resync), the resync under way
with its scan's segments, and what another process asks of the owner: a resync
(:class:`ResyncRequest`, under ``resync_requested``) or a hold (:class:`Hold`, under
``hold_requested``, granted under ``hold_granted``). Plain frozen dataclasses and their
document forms; no I/O, so the pure planning (:mod:`streamer.core.resync_plan`,
:mod:`streamer.core.lag`) works on them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from .values import Timestamp

# The format of the service's own documents (checkpoints, leases, sessions, partitioning
# records): 2 since partitions; a document without one is from before (1). A process
# refuses a newer format rather than misread it.
FORMAT = 2

REQUEST = "resync_requested"
HOLD = "hold_requested"
HOLD_GRANTED = "hold_granted"
Phase = Literal["stream", "resync"]
# "barrier": a whole split stream's fresh resync holds every partition here while
# `streamer resync` clears the stream's derived data (streamer.runtime.barriers).
Step = Literal["barrier", "clear", "scan", "sweep"]


@dataclass(frozen=True, slots=True)
class Segment:
    """Part of a resync's scan: the source documents after ``after`` in ``_id`` order,
    as of cluster time ``at``. ``after`` is ``[last _id]`` (a list, as an ``_id`` may
    itself be null) or None for the segment that starts at the first document."""

    at: Timestamp
    after: list[Any] | None = None

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Segment:
        return cls(at=doc["at"], after=doc.get("after"))


@dataclass(frozen=True, slots=True)
class Resync:
    gen: int
    reason: str
    fresh: bool  # clear the derived data first (first start, forced resync)
    started_at: dt.datetime
    step: Step = "scan"
    # The scan so far (see streamer.runtime.resync): its segments, the last _id applied
    # (``[_id]``, None before the first), documents applied and the source's size.
    segments: tuple[Segment, ...] = ()
    last_id: list[Any] | None = None
    scanned: int = 0
    total: int | None = None  # an estimate: counted before the scan, under writes
    removed: int = 0
    request: str | None = None  # the ResyncRequest this resync carries out

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Resync:
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in doc.items() if k in names}
        values["segments"] = tuple(Segment.from_document(s) for s in doc.get("segments") or ())
        return cls(**values)


@dataclass(frozen=True, slots=True)
class ResyncRequest:
    """``streamer resync`` asking the stream's owner to resync (``resync_requested``)."""

    id: str
    reason: str
    fresh: bool
    requested_at: dt.datetime
    by: str

    def document(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> ResyncRequest:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in names})


@dataclass(frozen=True, slots=True)
class Hold:
    """``streamer verify --repair`` asking the stream's owner to commit nothing for at
    most ``max_s`` seconds (``hold_requested``), so that its repair can commit."""

    id: str
    by: str
    max_s: float

    def document(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Hold:
        return cls(id=str(doc["id"]), by=str(doc.get("by", "")), max_s=float(doc["max_s"]))


@dataclass(frozen=True, slots=True)
class Requests:
    """What has been asked of a stream's owner, read in one go between batches."""

    resync: ResyncRequest | None = None
    hold: Hold | None = None  # only one not granted yet

    @classmethod
    def from_document(cls, doc: dict[str, Any] | None) -> Requests:
        if doc is None:
            return cls()
        resync, hold = doc.get(REQUEST), doc.get(HOLD)
        pending = hold is not None and doc.get(HOLD_GRANTED) != hold.get("id")
        return cls(
            resync=ResyncRequest.from_document(resync) if resync else None,
            hold=Hold.from_document(hold) if hold is not None and pending else None,
        )


@dataclass(frozen=True, slots=True)
class Checkpoint:
    stream: str
    version: int
    phase: Phase
    gen: int  # the resync generation the mirror is stamped with
    token: dict[str, Any] | None = None
    start_at: Timestamp | None = None  # used when there is no token yet
    cluster_time: Timestamp | None = None  # of the last applied event
    position: Timestamp | None = None  # cluster time the stored position covers
    applied_at: dt.datetime | None = None  # wall time of the last applied event
    resync: Resync | None = None
    batch_id: str | None = None
    owner: str | None = None
    updated_at: dt.datetime | None = None
    last_resync: dict[str, Any] | None = None
    # Segments of the last resync read after the first one: streaming starts after the
    # first segment's time and skips events these segments already covered.
    scan_segments: tuple[Segment, ...] = ()
    # Set by a repartition's barrier: this partitioning is over (epoch, count, by).
    retired: dict[str, Any] | None = None
    # Set by the repartition once every event up to this cluster time is applied, and
    # none after it: where the new partitions start.
    drained_at: Timestamp | None = None
    format: int = FORMAT

    def document(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        doc["_id"] = doc.pop("stream")
        for only_repartitions_write in ("retired", "drained_at"):
            if doc[only_repartitions_write] is None:
                del doc[only_repartitions_write]  # so no batch ever clears it
        return doc

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Checkpoint:
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in doc.items() if k in fields}
        values["stream"] = doc["_id"]
        values["format"] = int(doc.get("format", 1))
        resync = doc.get("resync")
        values["resync"] = Resync.from_document(resync) if resync else None
        values["scan_segments"] = tuple(
            Segment.from_document(s) for s in doc.get("scan_segments") or ()
        )
        return cls(**values)
