"""Changing how many partitions a stream is read as, exactly once while writes go on.

``streamer repartition --partitions P`` (:func:`repartition`) in four steps:

1. *barrier*: one transaction moves the record (:mod:`streamer.runtime.partitionings`)
   to ``P`` under the next epoch (``state: "repartitioning"``) and retires every old
   partition's checkpoint (``retired``, its version advanced). An old owner's batch in
   flight then fails its checkpoint compare-and-set; reloading, it finds the checkpoint
   retired and its instance stops, in one line that names the new count. Nothing more
   commits under the old split, whatever instance still runs it: a paused one included.
2. *drain*: the old partitions stopped at different positions. ``D``, the furthest of
   them, is a cluster time some partition reached, so it is in the oplog. This command
   then carries each old partition on from its checkpoint, as its owner would have
   (:class:`~streamer.runtime.watchers.Watcher` with ``drain_to``), applying every event
   up to ``D`` and none after it, and stores ``drained_at: D``. Afterwards every event up
   to ``D`` is applied once, with its alert transitions, and none after ``D`` is;
3. *fold and re-tag*: the shares of users' totals that the old partitions deferred to
   each other and had not folded yet are folded (:mod:`streamer.core.deltas`), and every
   mirror entry's partition ``p`` is recomputed for ``P``;
4. *new checkpoints*: each new partition streams from just after ``D``
   (``startAtOperationTime``), and the record turns ``ready``. Instances set to ``P``
   start on them; those set to the old count refuse, naming both numbers.

Running it again finishes an interrupted repartition: the record says the target, each
drained checkpoint says so, and new checkpoints already made are kept. Processing pauses
from the barrier until instances set to ``P`` take the new partitions; the drain itself
covers only what the old partitions had not reached at the barrier (their lag).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any

import structlog

from ..core.checkpoint import FORMAT, Checkpoint
from ..core.errors import SettingsError
from ..core.partitions import Partition, partitions_of
from ..core.resync_plan import after
from ..core.values import Timestamp
from ..mongo import Mongo
from ..mongo.retries import retry_transient
from ..streams.handler import StreamHandler
from .checkpoints import COLLECTION as CHECKPOINTS
from .checkpoints import CheckpointStore
from .commits import Committer
from .partitionings import COLLECTION, Partitioning, load
from .resync import Resyncer
from .watchers import StreamWork, Watcher, WatcherOptions

log = structlog.get_logger("streamer.repartition")


async def repartition(
    mongo: Mongo,
    handler: StreamHandler,
    count: int,
    options: WatcherOptions,
    *,
    by: str,
    on_drained: Callable[[str], None] = lambda key: None,
) -> tuple[Partitioning, Partitioning]:
    """Split ``handler``'s stream into ``count`` partitions (see the module): the
    partitioning before and after."""
    stream = handler.name
    policy = options.retry
    before = await load(mongo, stream) or Partitioning(stream, 1, 1)
    if before.state == "ready":
        if before.count == count:
            return before, before
        target = Partitioning(stream, count, before.epoch + 1, "repartitioning")
        # Retried as a whole: it may meet an old owner's batch in flight (WriteConflict).
        await retry_transient(
            lambda: _barrier(mongo, before, target, by), what="repartition.barrier", policy=policy
        )
    else:
        if before.count != count:
            raise SettingsError(
                f"{stream}: a repartition into {before.count} partitions is under way; run "
                f"`streamer repartition --partitions {before.count}` to finish it first"
            )
        assert before.previous is not None  # every barrier records it
        target, (count_was, epoch_was) = before, before.previous
        before = Partitioning(stream, count_was, epoch_was)
    store = CheckpointStore(mongo, by)
    old = [(unit, await store.load(unit.key)) for unit in partitions_of(stream, before.count)]
    started = [(unit, cp) for unit, cp in old if cp is not None]
    if started:
        drained_to = await _drain(mongo, store, handler, started, options, on_drained)
        gen = max(cp.gen for _, cp in started)
        await _fold_left(mongo, handler, before.count, gen, options)
        await retry_transient(
            lambda: _retag(mongo, handler, count), what="repartition.retag", policy=policy
        )
        for unit in partitions_of(stream, count):
            await _start_checkpoint(mongo, unit, gen, drained_to, target, by)
    # With no checkpoint at all the stream never ran: each new partition's first start
    # resyncs it, as any first start does.
    await mongo.update_one(
        COLLECTION,
        {"_id": stream, "epoch": target.epoch},
        {"$set": {"state": "ready", "finished_at": dt.datetime.now(dt.UTC)}},
    )
    return before, Partitioning(stream, count, target.epoch)


async def _barrier(mongo: Mongo, before: Partitioning, target: Partitioning, by: str) -> None:
    """Move the record to ``target`` and retire the old checkpoints, in one transaction."""
    stream = before.stream
    retired = {"epoch": target.epoch, "count": target.count, "by": by}
    fields = {
        "count": target.count,
        "epoch": target.epoch,
        "state": "repartitioning",
        "format": FORMAT,
        "previous": {"count": before.count, "epoch": before.epoch},
        "started_at": dt.datetime.now(dt.UTC),
    }
    async with mongo.transaction() as session:
        if await mongo.find_one(COLLECTION, {"_id": stream}, session=session) is None:
            await mongo.insert_many(COLLECTION, [{"_id": stream, **fields}], session=session)
        else:
            moved = await mongo.update_one(
                COLLECTION,
                {"_id": stream, "epoch": before.epoch, "state": "ready"},
                {"$set": fields},
                session=session,
            )
            if moved.matched_count == 0:
                raise SettingsError(f"{stream}: its partitioning changed meanwhile; run it again")
        for unit in partitions_of(stream, before.count):
            await mongo.update_one(
                CHECKPOINTS,
                {"_id": unit.key},
                {"$set": {"retired": retired}, "$inc": {"version": 1}},
                session=session,
            )
    log.info("repartition.barrier", stream=stream, count=target.count, epoch=target.epoch)


async def _drain(
    mongo: Mongo,
    store: CheckpointStore,
    handler: StreamHandler,
    old: list[tuple[Partition, Checkpoint]],
    options: WatcherOptions,
    on_drained: Callable[[str], None],
) -> Timestamp:
    """Carry every old partition to the furthest position among them; that position.
    ``on_drained`` hears of each partition as it is done (the command's progress)."""
    finished = []
    for unit, cp in old:
        if cp.phase == "resync":
            # Stopped mid-resync: finish it first (it ends streaming, at a position).
            committer = Committer(mongo, store, policy=options.retry)
            work = handler.for_partition(unit)
            resyncer = Resyncer(
                mongo,
                store,
                committer,
                work,
                batch_size=options.batch_size,
                stopping=asyncio.Event(),
            )
            done = await resyncer.run(cp)
            if done is None:  # held at a fresh resync's barrier (streamer.runtime.barriers)
                raise SettingsError(
                    f"{unit.key}: a fresh resync of the whole stream is under way; run "
                    "`streamer resync --fresh` to finish it, then repartition again"
                )
            cp = done
        finished.append((unit, cp))
    drained = [cp.drained_at for _, cp in finished if cp.drained_at is not None]
    positions = [cp.position for _, cp in finished if cp.position is not None]
    to = drained[0] if drained else max(positions)
    for unit, cp in finished:
        if cp.drained_at is not None:
            continue
        carried = StreamWork(mongo, store, handler.for_partition(unit), options)
        watcher = Watcher(carried, asyncio.Event(), drain_to=to)
        await watcher.run()
        on_drained(unit.key)
    log.info("repartition.drained", stream=handler.name, to=str(to), partitions=len(finished))
    return to


async def _fold_left(
    mongo: Mongo, handler: StreamHandler, count: int, gen: int, options: WatcherOptions
) -> None:
    """Fold the shares the old partitions deferred to each other and had not folded
    (:mod:`streamer.core.deltas`): each is addressed by the old split, so none may
    outlive it. Nothing else commits now (every old partition is retired and drained)."""
    for unit in partitions_of(handler.name, count):
        scoped = handler.for_partition(unit)

        async def once(scoped: StreamHandler = scoped) -> int:
            async with mongo.transaction() as session:
                outcome = await scoped.apply(session, [], gen)
            return outcome.folded

        while await retry_transient(
            scoped.folds_waiting, what="repartition.fold", policy=options.retry
        ):
            await retry_transient(once, what="repartition.fold", policy=options.retry)


async def _retag(mongo: Mongo, handler: StreamHandler, count: int) -> None:
    """Every mirror entry's ``p`` recomputed for ``count`` partitions (none when 1)."""
    update: list[dict[str, Any]]
    if count == 1:
        update = [{"$unset": "p"}]
    else:
        hashed = Partition(handler.name, 0, count).hash_expr("$_id")["$eq"][0]
        update = [{"$set": {"p": hashed}}]
    await mongo.update_many(handler.mirror, {}, update)


async def _start_checkpoint(
    mongo: Mongo, unit: Partition, gen: int, at: Timestamp, target: Partitioning, by: str
) -> None:
    """The new partition's first checkpoint: streaming from just after ``at``."""
    now = dt.datetime.now(dt.UTC)
    cp = Checkpoint(
        stream=unit.key,
        version=1,
        phase="stream",
        gen=gen,
        start_at=after(at),
        cluster_time=at,
        position=at,
        owner=by,
        updated_at=now,
    )
    doc = {**cp.document(), "format": FORMAT, "epoch": target.epoch}
    existing = await mongo.find_one(CHECKPOINTS, {"_id": unit.key})
    if existing is not None and existing.get("epoch") == target.epoch:
        return  # made by an earlier run of this repartition, and maybe moved on since
    # A checkpoint of this id from an older split (retired at its barrier), or none.
    await mongo.delete_many(CHECKPOINTS, {"_id": unit.key})
    await mongo.insert_many(CHECKPOINTS, [doc])
