"""The pure decisions of a resumable resync: where a scan goes on, what streaming skips.

See :mod:`streamer.runtime.resync` for the argument; nothing here does I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from .checkpoint import Resync, Segment
from .values import Timestamp


def counted(done: int, total: int | None) -> str:
    """``21,500 of 45,000``; the total is an estimate, so never below what was done."""
    if total is None:
        return f"{done:,}"
    return f"{done:,} of {max(total, done):,}"


def after(ts: Timestamp) -> Timestamp:
    """The first timestamp after ``ts`` (startAtOperationTime is inclusive)."""
    if ts.inc >= 0xFFFFFFFF:
        return Timestamp(ts.time + 1, 0)
    return Timestamp(ts.time, ts.inc + 1)


def next_segments(resync: Resync, at: Timestamp) -> tuple[Segment, ...]:
    """The scan's segments once it reads on at ``at`` after ``resync``'s last ``_id``."""
    if resync.segments and resync.segments[-1].at == at:
        return resync.segments  # the same snapshot, still held by the server
    if resync.last_id is None:
        return (Segment(at=at),)  # nothing applied yet: start over at the new time
    return (*resync.segments, Segment(at=at, after=list(resync.last_id)))


def scan_filter(resync: Resync) -> dict[str, Any]:
    """The source documents the scan has not applied yet (all, before the first)."""
    if resync.last_id is None:
        return {}
    return {"$expr": {"$gt": ["$_id", {"$literal": resync.last_id[0]}]}}


def covered_stage(segments: Sequence[Segment]) -> dict[str, Any] | None:
    """A change-stream ``$match`` dropping events the later scan segments already hold.

    Streaming starts after the first segment's time; an event on document ``k`` at
    ``t`` is already in the mirror when some later segment starts before ``k`` and was
    read at ``t`` or after. Segments grow in both ``_id`` and time, so that later
    segment's time is at most ``k``'s own segment's time.
    """
    later = [s for s in segments if s.after is not None]
    if not later:
        return None
    covered = [
        {
            "$and": [
                {"$gt": ["$documentKey._id", {"$literal": s.after[0]}]},
                {"$lte": ["$clusterTime", s.at]},
            ]
        }
        for s in later
        if s.after is not None
    ]
    return {"$match": {"$expr": {"$not": [{"$or": covered}]}}}


def is_resumed(resync: Resync) -> bool:
    """Whether a resync in this state has work behind it (it resumes, not starts)."""
    return bool(resync.segments) or resync.step == "sweep"


FIRST_START = "first start: no checkpoint"
FORCED = "forced by `streamer resync`"


def resync_level(resync: Resync) -> int:
    """The log level of a resync's start, resume and finish lines.

    A first start's resync and one an operator asked for (``streamer resync``, here or
    through the running owner) are routine: info. Any other (history lost: the reason
    was already logged as an error) is worth an operator's look: warning.
    """
    if resync.reason in (FIRST_START, FORCED) or resync.request is not None:
        return logging.INFO
    return logging.WARNING
