"""Rebuild a stream's derived data from its source collection, then stream on.

Used on first start (no checkpoint), when the stored position is lost (286
ChangeStreamHistoryLost, an invalid token, the collection dropped) and by
``streamer resync``. Steps, each a transaction that also advances the checkpoint by
compare-and-set, so a resync is exactly-once work too:

1. claim: the checkpoint enters the ``resync`` phase with a new generation ``gen``;
2. (fresh only) clear the derived data and the mirror;
3. read the source at one point in time ``T`` (readConcern "snapshot"; the cursor
   reply names ``atClusterTime``) and apply each document as a synthetic replace;
   the mirror turns that into differences, so unchanged documents cost nothing;
4. sweep: documents the mirror (or an open alert) still holds but the snapshot lacked
   are applied as synthetic deletes;
5. finish: the checkpoint returns to ``stream`` at ``startAtOperationTime = T + 1``:
   every write after the snapshot is streamed, none before it twice.

A resync interrupted by a crash restarts from step 1 with a new generation on the
next start. The snapshot must be read within the server's snapshot history window
(minSnapshotHistoryWindowInSeconds, 300 s by default); a longer read fails with
SnapshotTooOld and the resync is retried.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Sequence
from contextlib import suppress

import structlog

from .changes import Change
from .checkpoints import Checkpoint, CheckpointStore, Resync
from .commits import Committer
from .errors import DatabaseError
from .mirror import project
from .mongo import Mongo, Session
from .mongo.types import Int64, Timestamp
from .streams import BatchOutcome, StreamHandler

log = structlog.get_logger("streamer.resync")


class Progress:
    """An INFO line at most every ``every_s`` seconds while a long step runs."""

    def __init__(self, stream: str, what: str, every_s: float = 10.0) -> None:
        self.stream, self.what, self.every_s = stream, what, every_s
        self.started = self.last = time.monotonic()

    def tick(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            rate = done / (now - self.started)
            log.info("resync.progress", stream=self.stream, **{self.what: done}, per_s=round(rate))


def after(ts: Timestamp) -> Timestamp:
    """The first timestamp after ``ts`` (startAtOperationTime is inclusive)."""
    if ts.inc >= 0xFFFFFFFF:
        return Timestamp(ts.time + 1, 0)
    return Timestamp(ts.time, ts.inc + 1)


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
    ) -> None:
        self.mongo = mongo
        self.store = store
        self.committer = committer
        self.handler = handler
        self.batch_size = batch_size
        self.stopping = stopping
        self.on_batch = on_batch

    async def claim(self, current: Checkpoint | None, reason: str, fresh: bool) -> Checkpoint:
        """Put the stream into the resync phase under a new generation."""
        gen = current.gen + 1 if current is not None else 1
        resync = Resync(gen=gen, reason=reason, fresh=fresh, started_at=dt.datetime.now(dt.UTC))
        if current is None:
            return await self.store.create(self.handler.name, resync)
        new = self.store.successor(
            current, phase="resync", gen=gen, resync=resync, token=None, start_at=None
        )
        await self.committer.commit(current, new, _nothing, what="resync.claim")
        return new

    async def run(self, cp: Checkpoint) -> Checkpoint | None:
        """Carry out the resync ``cp`` is in; the streaming checkpoint, or None if stopped."""
        assert cp.resync is not None
        name, resync = self.handler.name, cp.resync
        log.warning(
            "resync.started", stream=name, reason=resync.reason, fresh=resync.fresh, gen=cp.gen
        )
        started = asyncio.get_running_loop().time()
        if resync.fresh:
            cp = await self._clear(cp)
        snapshot = await self._scan(cp)
        if snapshot is None:
            return None
        cp, at, scanned = snapshot
        cp, removed = await self._sweep(cp, at)
        if self.stopping.is_set():
            return None
        summary = {
            "reason": resync.reason,
            "gen": cp.gen,
            "snapshot_at": at,
            "scanned": scanned,
            "removed": removed,
            "finished_at": dt.datetime.now(dt.UTC),
        }
        new = self.store.successor(
            cp,
            phase="stream",
            resync=None,
            token=None,
            start_at=after(at),
            cluster_time=at,
            position=at,
            last_resync=summary,
        )
        await self.committer.commit(cp, new, _nothing, what="resync.finish")
        cp = new
        log.warning(
            "resync.finished",
            stream=name,
            reason=resync.reason,
            scanned=scanned,
            removed=removed,
            snapshot_at=str(at),
            seconds=round(asyncio.get_running_loop().time() - started, 3),
        )
        return cp

    async def _clear(self, cp: Checkpoint) -> Checkpoint:
        deleted = 0
        while not self.stopping.is_set():
            new = self.store.successor(cp)
            count = await self.committer.commit(cp, new, self._clear_chunk, what="resync.clear")
            cp = new
            deleted += count
            if count == 0:
                break
        log.info("resync.cleared", stream=self.handler.name, deleted=deleted)
        return cp

    async def _clear_chunk(self, session: Session) -> int:
        return await self.handler.clear(session, self.batch_size)

    async def _apply(self, cp: Checkpoint, changes: Sequence[Change], what: str) -> Checkpoint:
        new = self.store.successor(cp)
        gen = cp.gen

        async def work(session: Session) -> BatchOutcome:
            return await self.handler.apply(session, changes, gen)

        outcome = await self.committer.commit(cp, new, work, what=what)
        if self.on_batch is not None:
            self.on_batch(outcome)
        return new

    async def _scan(self, cp: Checkpoint) -> tuple[Checkpoint, Timestamp, int] | None:
        """Apply the source as of one snapshot; the checkpoint, T and the count read."""
        source = self.handler.source
        scanned = 0
        progress = Progress(self.handler.name, "scanned")
        async with self.mongo.session() as session:
            reply = await self.mongo.command(
                {
                    "find": source,
                    "projection": dict.fromkeys(self.handler.fields, 1),
                    "batchSize": self.batch_size,
                    "readConcern": {"level": "snapshot"},
                },
                session=session,
            )
            cursor = reply["cursor"]
            at: Timestamp = cursor.get("atClusterTime") or reply["operationTime"]
            batch, cursor_id = cursor["firstBatch"], cursor["id"]
            try:
                while True:
                    if batch:
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
                        cp = await self._apply(cp, changes, "resync.scan")
                        scanned += len(batch)
                        progress.tick(scanned)
                    if not cursor_id:
                        break
                    if self.stopping.is_set():
                        return None
                    more = await self.mongo.command(
                        {
                            "getMore": Int64(cursor_id),
                            "collection": source,
                            "batchSize": self.batch_size,
                        },
                        session=session,
                    )
                    batch, cursor_id = more["cursor"]["nextBatch"], more["cursor"]["id"]
            finally:
                if cursor_id:
                    with suppress(DatabaseError):
                        await self.mongo.command(
                            {"killCursors": source, "cursors": [Int64(cursor_id)]},
                            session=session,
                        )
        return cp, at, scanned

    async def _sweep(self, cp: Checkpoint, at: Timestamp) -> tuple[Checkpoint, int]:
        removed = 0
        while not self.stopping.is_set():
            ids = await self.handler.orphans(cp.gen, self.batch_size)
            if not ids:
                break
            now = dt.datetime.now(dt.UTC)
            changes = [
                Change(op="delete", key=i, cluster_time=at, wall_time=now, synthetic=True)
                for i in ids
            ]
            cp = await self._apply(cp, changes, "resync.sweep")
            removed += len(ids)
        return cp, removed


async def _nothing(session: Session) -> None:
    return None
