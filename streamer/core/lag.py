"""A stream's lag: one definition for /metrics, /readyz, ``streamer status`` and the demo.

A stream's *position* is the newest point up to which every change of its source has
been applied. Its lag is the wall-clock time from that point to now,
``max(0, now - position)``: :func:`lag_seconds`, the one place it is computed.

Where the position comes from, and why the two sources agree:

- The running owner (``Watcher.position``; /metrics, /readyz, the demo's status line)
  takes it after every change-stream reply (:func:`position_after_batch`). After a
  batch with events it is what that batch's checkpoint records: the last event's
  cluster time and wall time. After an empty batch it is the reply's
  ``operationTime``: nothing was left to apply up to it.
- ``streamer status`` reads the stored checkpoint, which on an idle stream trails the
  owner: an empty batch advances the stored position only every
  ``idle_checkpoint_interval_s`` (10 s by default), to save writes. Read as it was,
  that checkpoint made an idle stream look up to 10 s behind while /metrics said well
  under a second (issue 17: ``lag_s=9.0`` against ``0.70``). So status asks the source
  the question the owner's empty batch answers: is there any change after the
  checkpoint, up to the newest cluster time (``ping``'s ``operationTime``)? None: the
  stream is caught up to that time (:func:`caught_up_position`), as after the owner's
  empty batch. Some: the position is what the checkpoint records
  (:func:`recorded_position`), as after the owner's batch with events, which commits
  that checkpoint.

An idle source still moves cluster time only by its own writes: the primary's no-op every
10 s (``periodicNoopIntervalSecs``) on mongod and mongosim alike. So "caught up to the
reply's ``operationTime``" alone made an idle stream's lag climb from 0 to 10 s and more
between no-ops, on one member or three. The reply's ``$clusterTime`` says more: it is the
newest cluster time the source knew when it answered. When it is not past the
``operationTime`` (no write anywhere that the stream could not yet see, not even one
waiting for a majority), every change that existed when the command was *sent* has
been applied: the stream is caught up as of that wall time (``asked_at``, the caller's
clock, so no skew either). Sent, not received: a getMore may wait up to
``max_batch_wait_ms`` on the server, and a write during that wait is one the reply may
not cover; so an idle lag reads at most one getMore wait, never less than the truth. A
newer ``$clusterTime`` (writes waiting for the majority, secondaries behind) keeps the
``operationTime`` rule, so a lagging set shows its lag. And the owner's position never
moves back while it streams (:func:`later`): what was applied stays applied.

So both take the position by the same rules, and differ only by when they looked:
the owner's view is at most one getMore (``max_batch_wait_ms``) old. Cluster times count
whole seconds; the last applied event's wall time (milliseconds) refines a position
within its second, so a lag is at most 1 s above the truth, never below it. During a
resync a stream has no lag (None): the resync's progress is reported instead. ``now``
is the caller's wall clock (the service's, or the host running ``streamer status``),
while positions are the server's clock: a host's skew adds to the figure, as it did
before, so keep the hosts on NTP.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from .checkpoint import Checkpoint
from .values import Timestamp


@dataclass(frozen=True, slots=True)
class Position:
    """The newest cluster time a stream has processed, and a wall time it is known to be
    caught up to: the last event it applied, or the moment a reply found nothing newer
    (None before either)."""

    cluster_time: Timestamp
    wall_time: dt.datetime | None = None

    @property
    def seconds(self) -> float:
        """Unix seconds: the cluster time, refined to the millisecond by the last
        event's wall time when that falls within (or after) its second."""
        at = float(self.cluster_time.time)
        if self.wall_time is None:
            return at
        wall = self.wall_time
        if wall.tzinfo is None:  # BSON dates decode naive, in UTC
            wall = wall.replace(tzinfo=dt.UTC)
        return max(at, wall.timestamp())

    def as_datetime(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(round(self.seconds, 3), dt.UTC)  # BSON's precision


def lag_seconds(position: Position | None, now: float) -> float | None:
    """Seconds from ``position`` to ``now`` (unix seconds), never negative; None if unknown."""
    if position is None:
        return None
    return max(0.0, now - position.seconds)


def recorded_position(cp: Checkpoint) -> Position | None:
    """What the checkpoint records; None while resyncing or before its first position."""
    if cp.phase != "stream" or cp.position is None:
        return None
    return Position(cp.position, cp.applied_at)


def caught_up_position(cp: Checkpoint, at: Timestamp) -> Position | None:
    """The position of a stream known to have nothing to apply up to cluster time ``at``."""
    recorded = recorded_position(cp)
    if recorded is None:
        return None
    return Position(max(at, recorded.cluster_time), recorded.wall_time)


def caught_up_as_of(
    cp: Checkpoint, at: Timestamp, newest: Timestamp | None, asked_at: dt.datetime | None
) -> Position | None:
    """The position of a stream known to have nothing to apply up to cluster time ``at``,
    in an answer to a command sent at ``asked_at`` whose ``$clusterTime`` was ``newest``:
    caught up as of ``asked_at`` when nothing newer than ``at`` existed, else up to ``at``."""
    caught_up = caught_up_position(cp, at)
    if caught_up is None or newest is None or asked_at is None or newest > at:
        return caught_up
    return Position(caught_up.cluster_time, asked_at)


def later(before: Position | None, now: Position | None) -> Position | None:
    """The later of two positions of one stream (``now`` when either is unknown)."""
    if before is None or now is None:
        return now
    return now if now.seconds >= before.seconds else before


def position_after_batch(
    cp: Checkpoint,
    events: int,
    observed: Timestamp | None,
    *,
    newest: Timestamp | None = None,
    asked_at: dt.datetime | None = None,
) -> Position | None:
    """The owner's position once a reply of ``events`` events is processed into ``cp``.

    With events, what ``cp`` records (their last event: a full batch may have more
    behind it). Without, caught up to the reply's ``operationTime`` (``observed``), where
    known, and as of ``asked_at`` when the reply's ``$clusterTime`` (``newest``) is not
    past it (:func:`caught_up_as_of`).
    """
    if events or observed is None:
        return recorded_position(cp)
    return caught_up_as_of(cp, observed, newest, asked_at)
