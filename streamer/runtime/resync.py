"""Rebuild a stream's derived data from its source collection, then stream on.

Used on first start (no checkpoint), when the stored position is lost (286
ChangeStreamHistoryLost, an invalid token, the collection dropped) and by
``streamer resync``. Steps, each a transaction that also advances the checkpoint by
compare-and-set, so a resync is exactly-once work too:

1. claim: the checkpoint enters the ``resync`` phase with a new generation ``gen``;
2. (fresh only) clear the derived data and the mirror; one partition of a split stream
   takes back only its own share instead (its mirror entries applied as deletes), and a
   whole split stream is cleared at one barrier (:mod:`streamer.runtime.barriers`);
3. scan: read the source in ``_id`` order at one point in time ``T`` (readConcern
   "snapshot"; the cursor reply names ``atClusterTime``) and apply each document as a
   synthetic replace stamped ``gen``; the mirror turns that into differences, so
   unchanged documents cost nothing. Each batch commits with the checkpoint's
   ``resync`` sub-document naming the last ``_id`` applied, the count and ``T``;
4. sweep: documents the mirror (or an open alert) still holds but the scan did not
   stamp ``gen`` are applied as synthetic deletes;
5. finish: the checkpoint returns to ``stream`` at ``startAtOperationTime = T + 1``:
   every write after the snapshot is streamed, none before it twice.

Resuming. A resync that stops (a crash, Ctrl-C, a lost lease) resumes from its
checkpoint, not from zero: same generation, same step, the scan going on after the
last ``_id`` committed (an ``$expr`` ``$gt``, which compares across BSON types in the
same order as the ``_id`` sort; a plain ``$gt`` would not). It reads at the same ``T``
(``atClusterTime``) while the server still holds that snapshot
(minSnapshotHistoryWindowInSeconds, 300 s by default). Once it no longer does
(SnapshotTooOld, 239, also possible in the middle of a long scan) the scan goes on at a
new time ``T2``, as a new *segment*: documents up to the last ``_id`` were read as of
``T``, the rest as of ``T2``. Why that stays exactly-once:

- every document the scan reaches is in the mirror as of its segment's time
  ``T(k)``, stamped ``gen``, and that commit also stored the position, so no batch is
  applied twice and none is skipped (the compare-and-set guards a retried commit);
- the sweep deletes what no segment stamped: a document absent at its segment's time;
- streaming starts after the *first* segment's time ``T``, and the change-stream
  pipeline drops an event on document ``k`` at time ``t`` when a later segment already
  covers it (``k`` after that segment's start and ``t <= T(k)``; see
  :func:`streamer.core.resync_plan.covered_stage`). So each document gets exactly the
  events after the state its mirror holds: a document of the first segment changed
  between ``T`` and ``T2`` is streamed, one of the second segment is not streamed
  twice. An insert or a delete between the two times is the same case: the state at
  ``T(k)`` plus what came later;
- streaming from ``T + 1`` needs the oplog to reach back to ``T``; when it does not,
  the stream reports history lost and a new resync (new generation) starts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any

import structlog

from ..core.changes import Change
from ..core.checkpoint import Checkpoint, Resync, ResyncRequest, Segment
from ..core.errors import DatabaseError
from ..core.mirror import project
from ..core.partitions import and_filters
from ..core.resync_plan import after, counted, is_resumed, next_segments, resync_level, scan_filter
from ..core.values import Int64, Timestamp
from ..mongo import Mongo, Session
from ..streams.handler import BatchOutcome, StreamHandler
from .checkpoints import CheckpointStore
from .commits import Committer
from .lifecycle import sleep_unless_stopped

log = structlog.get_logger("streamer.resync")

SNAPSHOT_TOO_OLD = 239
BARRIER_POLL_S = 0.5  # how often a partition held at a fresh resync's barrier looks


class Progress:
    """An INFO line at most every ``every_s`` seconds while a long step runs."""

    def __init__(self, stream: str, what: str, every_s: float = 10.0) -> None:
        self.stream, self.what, self.every_s = stream, what, every_s
        self.started = self.last = time.monotonic()
        self.first = 0

    def tick(self, done: int, total: int | None = None) -> None:
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            rate = (done - self.first) / max(now - self.started, 1e-9)
            log.info(
                "resync.progress",
                stream=self.stream,
                **{self.what: done},
                total=total,
                progress=counted(done, total),
                per_s=round(rate),
            )


class Resyncer:
    def __init__(
        self,
        mongo: Mongo,
        store: CheckpointStore,
        committer: Committer,
        handler: StreamHandler,
        *,
        batch_size: int,
        stopping: asyncio.Event,
        on_batch: Callable[[BatchOutcome], None] | None = None,
        on_progress: Callable[[Checkpoint], None] | None = None,
    ) -> None:
        self.mongo = mongo
        self.store = store
        self.committer = committer
        self.handler = handler
        self.batch_size = batch_size
        self.stopping = stopping
        self.on_batch = on_batch
        self.on_progress = on_progress
        # The checkpoint's id: the stream's, or its partition's.
        self.key = handler.partition.key
        self._gen = 0  # the generation a fresh resync's clear takes back in

    async def claim(
        self,
        current: Checkpoint | None,
        reason: str,
        fresh: bool,
        request: ResyncRequest | None = None,
    ) -> Checkpoint:
        """Put the stream into the resync phase under a new generation.

        With ``request``, the same transaction removes that request from the checkpoint.
        """
        gen = current.gen + 1 if current is not None else 1
        # Counted up front so that whoever watches the checkpoint sees "0 of N" from the
        # start; the scan counts again (an estimate either way: writes move it).
        total = await self._count()
        resync = Resync(
            gen=gen,
            reason=reason,
            fresh=fresh,
            started_at=dt.datetime.now(dt.UTC),
            step="clear" if fresh else "scan",
            request=request.id if request is not None else None,
            total=total,
        )
        if current is None:
            return await self.store.create(self.key, resync)
        new = self.store.successor(
            current, phase="resync", gen=gen, resync=resync, token=None, start_at=None
        )

        async def work(session: Session) -> None:
            if request is not None:
                await self.store.clear_request(self.key, request.id, session=session)

        await self.committer.commit(current, new, work, what="resync.claim")
        return new

    async def _count(self) -> int:
        """The source documents this resync scans (this partition's, when split)."""
        return await self.mongo.count(self.handler.source, self.handler.partition.source_filter())

    async def run(self, cp: Checkpoint) -> Checkpoint | None:
        """Carry out (or resume) the resync ``cp`` is in; the streaming checkpoint, or
        None if stopped (the checkpoint then stays resumable)."""
        assert cp.resync is not None
        name, resync = self.key, cp.resync
        if resync.step == "barrier":
            # `streamer resync --fresh` of the whole split stream is clearing its data:
            # nothing to do until it lets the partitions scan (the caller looks again).
            await sleep_unless_stopped(self.stopping, BARRIER_POLL_S)
            return None
        level = resync_level(resync)
        which = {"stream": name, "reason": resync.reason, "gen": cp.gen}
        if is_resumed(resync):
            log.log(
                level,
                "resync.resumed",
                **which,
                step=resync.step,
                scanned=resync.scanned,
                total=resync.total,
                after_id=str(resync.last_id[0]) if resync.last_id else None,
                snapshot_at=str(resync.segments[-1].at) if resync.segments else None,
            )
        else:
            log.log(level, "resync.started", **which, fresh=resync.fresh)
        started = asyncio.get_running_loop().time()
        if resync.step == "clear":
            cp = await self._clear(cp)
        if self.stopping.is_set():
            return None
        if resync.step != "sweep":
            scanned = await self._scan(cp)
            if scanned is None:
                return None
            cp = scanned
        cp = await self._sweep(cp)
        if self.stopping.is_set():
            return None
        return await self._finish(cp, started)

    async def _finish(self, cp: Checkpoint, started: float) -> Checkpoint:
        resync = cp.resync
        assert resync is not None and resync.segments
        first = resync.segments[0].at
        summary = {
            "reason": resync.reason,
            "gen": cp.gen,
            "snapshot_at": first,
            "segments": len(resync.segments),
            "scanned": resync.scanned,
            "total": resync.total,
            "removed": resync.removed,
            "request": resync.request,
            "finished_at": dt.datetime.now(dt.UTC),
        }
        new = self.store.successor(
            cp,
            phase="stream",
            resync=None,
            token=None,
            start_at=after(first),
            cluster_time=first,
            position=first,
            last_resync=summary,
            scan_segments=resync.segments[1:],
        )
        await self.committer.commit(cp, new, _nothing, what="resync.finish")
        log.log(
            resync_level(resync),
            "resync.finished",
            stream=self.key,
            reason=resync.reason,
            scanned=resync.scanned,
            removed=resync.removed,
            snapshot_at=str(first),
            segments=len(resync.segments),
            seconds=round(asyncio.get_running_loop().time() - started, 3),
        )
        return new

    async def _clear(self, cp: Checkpoint) -> Checkpoint:
        self._gen = cp.gen
        deleted = 0
        while not self.stopping.is_set():
            new = self.store.successor(cp)
            count = await self.committer.commit(cp, new, self._clear_chunk, what="resync.clear")
            cp = new
            deleted += count
            if count == 0:
                break
        log.info("resync.cleared", stream=self.key, deleted=deleted)
        return cp

    async def _clear_chunk(self, session: Session) -> int:
        return await self.handler.clear(session, self.batch_size, self._gen)

    async def _apply(
        self, cp: Checkpoint, resync: Resync, changes: Sequence[Change], what: str
    ) -> Checkpoint:
        """Apply ``changes`` and store ``resync`` (where the resync stands) in one commit."""
        new = self.store.successor(cp, resync=resync)
        gen = cp.gen

        async def work(session: Session) -> BatchOutcome:
            if not changes:
                return BatchOutcome()
            return await self.handler.apply(session, changes, gen)

        outcome = await self.committer.commit(cp, new, work, what=what)
        if self.on_batch is not None:
            self.on_batch(outcome)
        if self.on_progress is not None:
            self.on_progress(new)
        return new

    async def _scan(self, cp: Checkpoint) -> Checkpoint | None:
        """Apply the rest of the source, snapshot by snapshot; None if stopped."""
        # An estimate: writes during the scan move it. The claim counted it; a resumed
        # scan (or one claimed before claims counted) counts anew.
        assert cp.resync is not None
        total = cp.resync.total
        if total is None or cp.resync.scanned:
            total = await self._count()
        progress = Progress(self.key, "scanned")
        progress.first = cp.resync.scanned
        while True:
            outcome = await self._scan_snapshot(cp, total, progress)
            if outcome is None:
                return None
            cp, finished = outcome
            if finished:
                return cp
            log.warning("resync.snapshot_expired", stream=self.key)

    async def _open(self, resync: Resync, session: Session) -> dict[str, Any]:
        """The scan's cursor, at the last segment's time while the server still has it."""
        read_concern: dict[str, Any] = {"level": "snapshot"}
        cmd = {
            "find": self.handler.source,
            "filter": and_filters(scan_filter(resync), self.handler.partition.source_filter()),
            "sort": {"_id": 1},
            "projection": dict.fromkeys(self.handler.fields, 1),
            "batchSize": self.batch_size,
            "readConcern": read_concern,
        }
        if resync.segments:
            read_concern["atClusterTime"] = resync.segments[-1].at
            try:
                return await self.mongo.command(cmd, session=session)
            except DatabaseError as exc:
                if not _too_old(exc):
                    raise
                log.info("resync.new_snapshot", stream=self.key)
                del read_concern["atClusterTime"]
        return await self.mongo.command(cmd, session=session)

    async def _scan_snapshot(
        self, cp: Checkpoint, total: int, progress: Progress
    ) -> tuple[Checkpoint, bool] | None:
        """Scan at one snapshot: the checkpoint and whether the scan is complete
        (False: the snapshot expired); None if stopped."""
        source = self.handler.source
        assert cp.resync is not None
        async with self.mongo.session() as session:
            reply = await self._open(cp.resync, session)
            cursor = reply["cursor"]
            at: Timestamp = cursor.get("atClusterTime") or reply["operationTime"]
            segments = next_segments(cp.resync, at)
            batch, cursor_id = cursor["firstBatch"], cursor["id"]
            try:
                while True:
                    if batch or segments != cp.resync.segments:
                        cp = await self._scan_batch(cp, batch, at, segments, total)
                        assert cp.resync is not None
                        progress.tick(cp.resync.scanned, total)
                    if not cursor_id:
                        return cp, True
                    if self.stopping.is_set():
                        return None
                    try:
                        more = await self.mongo.command(
                            {
                                "getMore": Int64(cursor_id),
                                "collection": source,
                                "batchSize": self.batch_size,
                            },
                            session=session,
                        )
                    except DatabaseError as exc:
                        if _too_old(exc):
                            return cp, False
                        raise
                    batch, cursor_id = more["cursor"]["nextBatch"], more["cursor"]["id"]
            finally:
                if cursor_id:
                    with suppress(DatabaseError):
                        await self.mongo.command(
                            {"killCursors": source, "cursors": [Int64(cursor_id)]},
                            session=session,
                        )

    async def _scan_batch(
        self,
        cp: Checkpoint,
        batch: list[dict[str, Any]],
        at: Timestamp,
        segments: tuple[Segment, ...],
        total: int,
    ) -> Checkpoint:
        assert cp.resync is not None
        now = dt.datetime.now(dt.UTC)
        changes = [
            Change(
                op="replace",
                key=doc["_id"],
                cluster_time=at,
                wall_time=now,
                full=project(doc, self.handler.fields),
                synthetic=True,
            )
            for doc in batch
        ]
        resync = dataclasses.replace(
            cp.resync,
            step="scan",
            segments=segments,
            last_id=[batch[-1]["_id"]] if batch else cp.resync.last_id,
            scanned=cp.resync.scanned + len(batch),
            total=total,
        )
        return await self._apply(cp, resync, changes, "resync.scan")

    async def _sweep(self, cp: Checkpoint) -> Checkpoint:
        assert cp.resync is not None and cp.resync.segments
        at = cp.resync.segments[-1].at
        while not self.stopping.is_set():
            ids = await self.handler.orphans(cp.gen, self.batch_size)
            if not ids:
                break
            now = dt.datetime.now(dt.UTC)
            changes = [
                Change(op="delete", key=i, cluster_time=at, wall_time=now, synthetic=True)
                for i in ids
            ]
            assert cp.resync is not None
            resync = dataclasses.replace(
                cp.resync, step="sweep", removed=cp.resync.removed + len(ids)
            )
            cp = await self._apply(cp, resync, changes, "resync.sweep")
        return cp


def _too_old(exc: DatabaseError) -> bool:
    return exc.code == SNAPSHOT_TOO_OLD


async def _nothing(session: Session) -> None:
    return None
