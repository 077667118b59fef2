"""One watcher per stream: read change batches, apply them exactly once, never stall.

The change stream is read with raw ``aggregate``/``getMore`` commands in an explicit
session, so that a batch is exactly one server reply and its
``postBatchResumeToken`` is at hand: that token is what the checkpoint stores, even
after a batch with no events, so a quiet collection's position never ages out of the
oplog ("Change Streams > Resume a Change Stream" and the driver specification's
"Change Streams: postBatchResumeToken"). A getMore returns as soon as any event is
available, so batches grow with the load and a lone event is applied at once.

Reading overlaps committing: while batch k is applied and committed (in the stream's
long-lived writer session, ``Committer.session``), the getMore for batch k+1 is already
in flight (in the session that opened the cursor, as a cursor's getMores must be), so
the service and the server work at the same time instead of taking turns. The prefetch
is bounded to that one batch: the next getMore is sent only once batch k+1 is taken
for processing, so a slow commit holds back reading (back-pressure). Exactly once
stands as before: each batch's effects and its checkpoint compare-and-set are one
transaction, batches are committed strictly in order (one at a time, in the order
read), and a prefetched batch is only data in memory until its own commit. On any
error, and on stopping, the batch in flight or read ahead is discarded (the getMore
cancelled, the cursor killed) and the stream reopens from the last committed
checkpoint, so it is read again.

On a resumable error the stream is reopened from the last committed checkpoint (no
event is lost: anything read but not committed is read again). When that position
is gone (286, an invalid token, the collection dropped) the watcher resyncs.

``streamer resync`` against a running service asks rather than races: it sets a
request on the checkpoint (:class:`~streamer.core.checkpoint.ResyncRequest`), which the
watcher looks for between batches (at most every ``resync_poll_s``) and carries out
itself, claiming the resync and removing the request in one transaction. A resync
found interrupted is resumed where it stopped (see :mod:`streamer.runtime.resync`): the lease
says this instance owns the stream, whoever started it.

A partition of a split orders stream also folds in the shares of its users' totals that
other partitions deferred to it (:mod:`streamer.core.deltas`): every batch it commits
folds them, and while its own stream is quiet it looks for them every ``fold_poll_s``
and folds them in a batch of no events, fenced by the checkpoint like any batch.

``streamer verify --repair`` against a running service asks the owner to hold still
(:class:`~streamer.core.checkpoint.Hold`), found by the same look between batches: the
watcher grants it and commits nothing until the repair withdraws it, at most the hold's
``max_s`` (capped at ``MAX_HOLD_S``). A hold only pauses; the checkpoint compare-and-set
keeps both sides exact whatever the timing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import structlog

from ..core.changes import Change, StreamEnd, parse_event, stream_pipeline, token_time
from ..core.checkpoint import Checkpoint, Hold, ResyncRequest
from ..core.errors import (
    CheckpointConflict,
    DatabaseError,
    DatabaseUnavailable,
    HistoryLost,
    Repartitioned,
    StreamerError,
    StreamInterrupted,
    TransientError,
)
from ..core.lag import Position, later, position_after_batch
from ..core.resync_plan import FIRST_START, covered_stage
from ..core.values import Int64, Timestamp
from ..mongo import Mongo, Session
from ..mongo.retries import Backoff, RetryPolicy, error_reason, retry_transient
from ..settings import Settings
from ..streams.handler import BatchOutcome, StreamHandler
from ..streams.inventory import log_transition
from .checkpoints import CheckpointStore
from .commits import Committer
from .lifecycle import sleep_unless_stopped
from .metrics import Metrics
from .partitionings import check_format, retired_reason
from .resync import Resyncer
from .sessions import WriterSessions

log = structlog.get_logger("streamer.watcher")

# The longest a repair may hold a stream still, whatever it asks: past this the owner
# goes on, and the repair's compare-and-set decides.
MAX_HOLD_S = 30.0
# How often a holding watcher looks whether the hold has ended.
HOLD_POLL_S = 0.05


@dataclass
class WatcherOptions:
    batch_size: int
    max_batch_wait_ms: int
    idle_checkpoint_interval_s: float
    # Every retry budget and backoff (settings retry_* and outage_backoff_*).
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # How often a streaming watcher looks for a resync request.
    resync_poll_s: float = 1.0
    reopen_pause_s: float = 0.1
    # How often an idle partition of a split stream looks for shares to fold.
    fold_poll_s: float = 0.5


def watcher_options(settings: Settings) -> WatcherOptions:
    """The watchers' options, from the settings."""
    return WatcherOptions(
        batch_size=settings.batch_size,
        max_batch_wait_ms=settings.max_batch_wait_ms,
        idle_checkpoint_interval_s=settings.idle_checkpoint_interval_s,
        retry=settings.retry_policy(),
        fold_poll_s=settings.fold_poll_s,
    )


@dataclass(frozen=True, slots=True)
class StreamWork:
    """What running one stream takes: its owner holds it, and hands it to each term's
    watcher."""

    mongo: Mongo
    store: CheckpointStore
    handler: StreamHandler
    options: WatcherOptions
    on_batch: Callable[[str, BatchOutcome, float], None] | None = None
    metrics: Metrics | None = None


class Watcher:
    """Runs one stream until ``stopping`` is set."""

    def __init__(
        self, work: StreamWork, stopping: asyncio.Event, *, drain_to: Timestamp | None = None
    ) -> None:
        self.work = work
        self.stopping = stopping
        # A repartition's drain (streamer.runtime.partitionings): apply every event up
        # to this cluster time and none after it, store that, and stop.
        self.drain_to = drain_to
        self.drained = False
        mongo, store, handler = work.mongo, work.store, work.handler
        self.committer = Committer(
            mongo, store, policy=work.options.retry, on_retry=self._count_retry
        )
        self.resyncer = Resyncer(
            mongo,
            store,
            self.committer,
            handler,
            batch_size=work.options.batch_size,
            stopping=stopping,
            on_batch=lambda outcome: self._report(outcome, 0.0),
        )
        self.sessions = WriterSessions(mongo, store.owner)
        # The checkpoint's and writer session's id: the stream's, or its partition's.
        self.key = handler.partition.key
        self.log = log.bind(stream=self.key)
        self.checkpoint: Checkpoint | None = None
        self.running = False
        # Health, read by /readyz and the metrics collector.
        # The newest point fully processed (streamer.core.lag); None while resyncing.
        self.position: Position | None = None
        self.outage: str | None = None  # why the stream is not progressing, if it is not
        # When this partition last folded other partitions' shares, or looked for them.
        self.last_fold = float("-inf")

    # -- supervision loop -----------------------------------------------------------
    async def run(self) -> None:
        """Stream, resync when needed, ride out outages; return once stopping is set."""
        backoff = Backoff(self.work.options.retry)
        self.running = True
        try:
            while not self.stopping.is_set() and not self.drained:
                try:
                    await self._run_once()
                    backoff.reset()
                except CheckpointConflict as exc:
                    self.log.info("stream.checkpoint_moved", detail=str(exc))
                    self._count("aborts", "checkpoint_moved")
                except DatabaseUnavailable as exc:
                    self.outage = "database unavailable"
                    self._count("aborts", "retries_exhausted")
                    wait_s = backoff.next_s()
                    self.log.error(
                        "stream.database_unavailable", error=str(exc), retry_in_s=round(wait_s, 2)
                    )
                    await self._pause(wait_s)
        finally:
            self.running = False
            if self.committer.session is not None:
                try:
                    await self.work.mongo.end_session(self.committer.session)
                except DatabaseError as exc:
                    # The server reaps an unended session itself; nothing is lost.
                    self.log.info("session.end_failed", error=exc.reason)

    def _count(self, family: str, reason: str) -> None:
        if self.work.metrics is not None:
            getattr(self.work.metrics, family).labels(self.work.handler.name, reason).inc()

    def _count_retry(self, what: str, exc: BaseException, attempt: int) -> None:
        self._count("retries", error_reason(exc))

    async def _pause(self, seconds: float) -> None:
        await sleep_unless_stopped(self.stopping, seconds)

    async def _run_once(self) -> None:
        if self.committer.session is None:
            self.committer.session = await self._retry(
                lambda: self.sessions.open(self.key), "session.open"
            )
        cp = await self._retry(lambda: self.work.store.load(self.key), "checkpoint.load")
        if cp is not None:
            check_format(self.key, cp.format)
        if cp is not None and cp.retired is not None and self.drain_to is None:
            # A repartition's barrier: nothing more commits under this split.
            raise Repartitioned(retired_reason(self.work.handler.name, cp.retired))
        if cp is None:
            cp = await self._resync(None, FIRST_START, "first_start", fresh=True)
        elif cp.phase == "resync":
            # Interrupted (a crash, a stopped `streamer resync`): this instance holds the
            # lease now, so it resumes the resync where it stopped.
            if cp.resync is None or cp.resync.step != "barrier":
                self._count("resyncs", "resumed")
            self.checkpoint = cp
            self.position = None
            cp = await self.resyncer.run(cp)
        if cp is None:
            return
        self.checkpoint = cp
        try:
            await self._stream(cp)
        except HistoryLost as exc:
            if self.drain_to is not None:
                raise StreamerError(
                    f"{self.key}: cannot drain it for the repartition: {exc.reason}; "
                    "its events up to the barrier are no longer all in the oplog"
                ) from exc
            self.log.error("stream.history_lost", reason=exc.reason)
            assert self.checkpoint is not None
            await self._resync(self.checkpoint, exc.reason, exc.kind, fresh=False)
        except _ResyncRequested as asked:
            request = asked.request
            self.log.info("resync.requested", by=request.by, fresh=request.fresh)
            assert self.checkpoint is not None
            await self._resync(
                self.checkpoint, request.reason, "requested", fresh=request.fresh, request=request
            )
        except _Reopen as exc:
            self._count("resumes", str(exc))
            await self._pause(self.work.options.reopen_pause_s)

    async def _resync(
        self,
        cp: Checkpoint | None,
        reason: str,
        kind: str,
        *,
        fresh: bool,
        request: ResyncRequest | None = None,
    ) -> Checkpoint | None:
        self._count("resyncs", kind)
        self.position = None  # no lag while resyncing (streamer.core.lag)
        claimed = await self.resyncer.claim(cp, reason, fresh, request)
        self.checkpoint = claimed
        done = await self.resyncer.run(claimed)
        if done is not None:
            self.checkpoint = done
        return done

    async def _check_request(self, last_check: float) -> float:
        """Raise :class:`_ResyncRequested` if a resync was asked for, hold still if a
        hold was; the check's time."""
        now = time.monotonic()
        if now - last_check < self.work.options.resync_poll_s:
            return last_check
        asked = await self._retry(lambda: self.work.store.requests(self.key), "request")
        if asked.resync is not None:
            raise _ResyncRequested(asked.resync)
        if asked.hold is not None:
            await self._hold(asked.hold)
        return now

    async def _hold(self, hold: Hold) -> None:
        """Grant ``hold`` and commit nothing until it is withdrawn or has run its time."""
        stream = self.key
        if not await self._retry(lambda: self.work.store.grant_hold(stream, hold.id), "hold"):
            return  # withdrawn before we answered
        self.log.info("stream.held", by=hold.by, max_s=hold.max_s)
        started = time.monotonic()
        deadline = started + min(max(hold.max_s, 0.0), MAX_HOLD_S)
        how = "timed out"
        while time.monotonic() < deadline:
            if await sleep_unless_stopped(self.stopping, HOLD_POLL_S):
                how = "stopping"
                break
            state = await self._retry(lambda: self.work.store.hold_state(stream, hold.id), "hold")
            if state != "granted":
                how = "withdrawn"
                break
        self.log.info(
            "stream.hold_ended", by=hold.by, held_s=round(time.monotonic() - started, 3), how=how
        )

    async def _retry(self, op: Callable[[], Any], what: str) -> Any:
        return await retry_transient(op, what=what, policy=self.work.options.retry)

    # -- streaming --------------------------------------------------------------------
    def _open_command(self, cp: Checkpoint) -> dict[str, Any]:
        spec: dict[str, Any] = (
            {"resumeAfter": cp.token} if cp.token else {"startAtOperationTime": cp.start_at}
        )
        pipeline: list[dict[str, Any]] = [{"$changeStream": spec}]
        # First, so the server applies it to the oplog before it builds events (mongod
        # 5.1+ rewrites documentKey predicates into its oplog scan).
        only_ours = self.work.handler.partition.change_stage()
        if only_ours is not None:
            pipeline.append(only_ours)
        segments = cp.scan_segments
        if segments and (cp.position is None or cp.position <= segments[-1].at):
            # Events the last resync's later scan segments already applied.
            stage = covered_stage(segments)
            if stage is not None:
                pipeline.append(stage)
        return {
            "aggregate": self.work.handler.source,
            "pipeline": [*pipeline, *stream_pipeline(self.work.handler.fields)],
            "cursor": {"batchSize": self.work.options.batch_size},
        }

    async def _command(self, cmd: Mapping[str, Any], session: Session) -> dict[str, Any]:
        # The seam raises HistoryLost (286, 260, 280, 136) itself.
        return await self.work.mongo.command(cmd, session=session)

    async def _stream(self, cp: Checkpoint) -> None:
        """Apply batches from ``cp`` on; returns when stopping, raises to reopen."""
        async with self.work.mongo.session() as session:
            asked_at = _wall_now()
            reply = await self._retry(
                lambda: self._command(self._open_command(cp), session), "changestream.open"
            )
            cursor = reply["cursor"]
            cursor_id = cursor["id"]
            self.log.info(
                "stream.resumed",
                from_token=cp.token is not None,
                start_at=str(cp.start_at) if cp.token is None else None,
            )
            last_saved = time.monotonic()
            last_check = float("-inf")
            # The getMore for the next batch, sent before this one is applied.
            ahead: asyncio.Task[tuple[dict[str, Any], dt.datetime]] | None = None
            try:
                batch = cursor["firstBatch"]
                while True:
                    if cursor_id and not self.stopping.is_set():
                        ahead = asyncio.create_task(self._get_more(cursor_id, session))
                    cp, last_saved = await self._process(
                        cp,
                        batch,
                        cursor.get("postBatchResumeToken"),
                        reply.get("operationTime"),
                        last_saved,
                    )
                    self.checkpoint = cp
                    self.position = later(
                        self.position,
                        position_after_batch(
                            cp,
                            len(batch),
                            reply.get("operationTime"),
                            newest=(reply.get("$clusterTime") or {}).get("clusterTime"),
                            asked_at=asked_at,
                        ),
                    )
                    self.outage = None
                    if self.stopping.is_set() or ahead is None or self.drained:
                        return
                    if self.drain_to is None:
                        last_check = await self._check_request(last_check)
                    (reply, asked_at), ahead = await ahead, None
                    cursor = reply["cursor"]
                    batch, cursor_id = cursor["nextBatch"], cursor["id"]
            finally:
                if ahead is not None:
                    # Read ahead but never committed: discarded, read again on reopening.
                    await self._discard(ahead)
                if cursor_id:
                    with suppress(DatabaseError):  # the server reaps it; nothing to do
                        await self.work.mongo.command(
                            {
                                "killCursors": self.work.handler.source,
                                "cursors": [Int64(cursor_id)],
                            },
                            session=session,
                        )

    async def _discard(self, ahead: asyncio.Task[tuple[dict[str, Any], dt.datetime]]) -> None:
        """Let a read-ahead getMore end (the server bounds it by maxTimeMS) so that the
        session is idle again for killCursors; cancel it if it takes longer, or at once
        when this task is being cancelled. Its result or error no longer matters."""
        current = asyncio.current_task()
        try:
            if not ahead.done() and not (current is not None and current.cancelling()):
                await asyncio.wait(
                    {ahead}, timeout=self.work.options.max_batch_wait_ms / 1000 + 1.0
                )
        finally:
            ahead.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await ahead
        if current is not None and current.cancelling():
            raise asyncio.CancelledError

    async def _get_more(
        self, cursor_id: int, session: Session
    ) -> tuple[dict[str, Any], dt.datetime]:
        """The next batch's reply, and when it was asked for (streamer.core.lag)."""
        cmd = {
            "getMore": Int64(cursor_id),
            "collection": self.work.handler.source,
            "batchSize": self.work.options.batch_size,
            "maxTimeMS": self.work.options.max_batch_wait_ms,
        }
        asked_at = _wall_now()
        try:
            return await self._command(cmd, session), asked_at
        except (TransientError, StreamInterrupted) as exc:
            # Resumable: reopen from the last committed checkpoint.
            self.log.warning("stream.interrupted", reason=exc.reason)
            raise _Reopen(exc.reason) from exc

    async def _process(
        self,
        cp: Checkpoint,
        events: list[dict[str, Any]],
        post_batch_token: dict[str, Any] | None,
        observed: Timestamp | None,
        last_saved: float,
    ) -> tuple[Checkpoint, float]:
        changes: list[Change] = []
        end: StreamEnd | None = None
        if self.drain_to is not None:
            events, post_batch_token, observed = self._drain_cut(events, post_batch_token, observed)
        token = post_batch_token or (events[-1]["_id"] if events else None)
        for i, event in enumerate(events):
            parsed = parse_event(event)
            if isinstance(parsed, StreamEnd):
                # Apply what came before; the resync that follows takes it from there.
                end, token = parsed, events[i - 1]["_id"] if i else cp.token
                break
            if parsed is not None:
                changes.append(parsed)
        if changes:
            cp = await self._apply(cp, changes, token)
            last_saved = self.last_fold = time.monotonic()
        elif await self._folds_due():
            cp = await self._fold(cp)
        if not changes and (
            token is not None
            and token != cp.token
            and time.monotonic() - last_saved >= self.work.options.idle_checkpoint_interval_s
        ):
            new = self.work.store.successor(cp, token=token, position=observed or cp.position)
            await self.committer.commit(cp, new, _nothing, what="checkpoint.idle")
            cp = new
            last_saved = time.monotonic()
            self.log.debug("checkpoint.idle_saved")
        if end is not None:
            raise HistoryLost(
                f"the {self.work.handler.source} collection saw {end.op}", kind="collection_dropped"
            )
        if self.drained:
            assert self.drain_to is not None
            last = self.drain_to
            new = self.work.store.successor(
                cp,
                drained_at=last,
                position=max(cp.position, last) if cp.position is not None else last,
            )
            await self.committer.commit(cp, new, _nothing, what="checkpoint.drained")
            cp = new
            self.log.info("stream.drained", to=str(last))
        return cp, last_saved

    async def _folds_due(self) -> bool:
        """Whether this idle partition should fold shares other partitions deferred to
        it now (every batch folds them; a quiet one looks every ``fold_poll_s``). A
        repartition's drain leaves them: the repartition folds them all at its end."""
        if not self.work.handler.partition.split or self.drain_to is not None:
            return False
        now = time.monotonic()
        if now - self.last_fold < self.work.options.fold_poll_s:
            return False
        self.last_fold = now
        waiting: bool = await self._retry(self.work.handler.folds_waiting, "fold.look")
        return waiting

    async def _fold(self, cp: Checkpoint) -> Checkpoint:
        """A batch of no events: fold what waits, fenced by the checkpoint like any."""
        started = time.perf_counter()
        new = self.work.store.successor(cp)

        async def work(session: Session) -> BatchOutcome:
            return await self.work.handler.apply(session, [], cp.gen)

        outcome = await self.committer.commit(cp, new, work, what=f"{self.key}.fold")
        self._report(outcome, time.perf_counter() - started)
        return new

    def _drain_cut(
        self,
        events: list[dict[str, Any]],
        post_batch_token: dict[str, Any] | None,
        observed: Timestamp | None,
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None, Timestamp | None]:
        """The part of a batch up to the drain's time; sets ``drained`` once the stream
        is seen past it: an event after it, or a reply whose postBatchResumeToken stands
        at or after it (the server has read the oplog that far; the drain's time is a
        position some partition reached, so it is in the oplog). Not the reply's
        ``operationTime``: a first batch is empty before anything is read."""
        to = self.drain_to
        assert to is not None
        for i, event in enumerate(events):
            if event["clusterTime"] > to:
                self.drained = True
                # What is stored is the last event applied, not the reply's token, which
                # is past the events cut off.
                return events[:i], None, None
        read_to = token_time(post_batch_token)
        if read_to is not None and read_to >= to:
            self.drained = True
        return events, post_batch_token, observed

    async def _apply(
        self, cp: Checkpoint, changes: list[Change], token: dict[str, Any] | None
    ) -> Checkpoint:
        started = time.perf_counter()
        last = changes[-1]
        new = self.work.store.successor(
            cp,
            token=token,
            cluster_time=last.cluster_time,
            position=last.cluster_time,
            applied_at=last.wall_time,
        )

        async def work(session: Session) -> BatchOutcome:
            return await self.work.handler.apply(session, changes, cp.gen)

        outcome = await self.committer.commit(cp, new, work, what=f"{self.key}.batch")
        self._report(outcome, time.perf_counter() - started)
        return new

    def _report(self, outcome: BatchOutcome, seconds: float) -> None:
        for rejected in outcome.quarantined:
            self.log.warning(
                "event.quarantined",
                key=str(rejected.change.key),
                reason=rejected.reason,
                op=rejected.change.op,
            )
        for transition in outcome.transitions:
            log_transition(transition, self.work.handler.name)
        self.log.debug(
            "batch.applied",
            events=outcome.events,
            ops=outcome.by_op,
            quarantined=len(outcome.quarantined),
            writes=outcome.derived_writes,
            seconds=round(seconds, 4),
        )
        if self.work.metrics is not None:
            self.work.metrics.on_batch(self.work.handler.name, outcome, seconds)
        if self.work.on_batch is not None:
            self.work.on_batch(self.work.handler.name, outcome, seconds)


class _Reopen(Exception):
    """Internal: reopen the change stream from the last committed checkpoint."""


class _ResyncRequested(Exception):
    """Internal: ``streamer resync`` asked this owner to resync the stream."""

    def __init__(self, request: ResyncRequest) -> None:
        super().__init__(request.id)
        self.request = request


async def _nothing(session: Session) -> None:
    return None


def _wall_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
