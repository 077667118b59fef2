"""How each stream is split, as stored in ``streamer_partitionings``: one truth for all;
and changing it (``streamer repartition``).

Every instance must read a stream as the same number of partitions, or two of them
would apply one document's events under two checkpoints. The first instance to start
records the stream's ``count`` (and an ``epoch``, which a repartition advances); every
later one compares its own ``partitions`` setting with the record and refuses to
process, in one line naming both numbers, when they differ. A deployment from before
partitions existed has checkpoints but no record: it is recorded as one partition,
which is what it is, so upgrading keeps its position.

Repartitioning (:func:`repartition`) is exact while writes go on:

1. *barrier*: one transaction moves the record to the new count under the next
   ``epoch`` (``state: "repartitioning"``) and retires every old partition's checkpoint
   (``retired``, its version advanced). An old owner's next batch then fails its
   checkpoint compare-and-set, finds its checkpoint retired and stops, saying so: nothing
   commits under the old split after the barrier;
2. *re-tag*: every mirror entry's partition ``p`` is recomputed for the new count;
3. *new checkpoints*: each new partition starts in a resync (not fresh) under a
   generation above every old one: it scans its share of the source at one snapshot,
   applies the differences from what the mirror holds (what the old partitions
   applied, each up to its own position) and sweeps the rest, then streams on. That is
   the same exactly-once convergence as a resync after lost history;
4. the record turns ``ready``; instances set to the new count (and only those) start.

A repartition interrupted between steps is finished by running it again. Processing
pauses from the barrier until the new partitions' resyncs are done: one scan of the
source, shared between the instances.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ..core.checkpoint import Checkpoint, Resync
from ..core.errors import SettingsError
from ..core.partitions import Partition, partitions_of
from ..mongo import Mongo
from ..streams.handler import StreamHandler
from .checkpoints import COLLECTION as CHECKPOINTS

FORMAT = 2  # of the service's own documents; 1 (or none): from before partitions
REPARTITIONED = "repartitioned"

COLLECTION = "streamer_partitionings"


class PartitioningMismatch(SettingsError):
    """This instance's ``partitions`` setting is not how the stream is stored."""


class NewerFormat(SettingsError):
    """The database was written by a newer version of the service."""


@dataclass(frozen=True, slots=True)
class Partitioning:
    stream: str
    count: int
    epoch: int
    state: str = "ready"  # or "repartitioning": between the barrier and the new checkpoints
    format: int = FORMAT

    @classmethod
    def from_document(cls, doc: dict[str, object]) -> Partitioning:
        return cls(
            str(doc["_id"]),
            int(str(doc["count"])),
            int(str(doc.get("epoch", 1))),
            str(doc.get("state", "ready")),
            int(str(doc.get("format", 1))),
        )


def check_format(stream: str, found: int) -> None:
    if found > FORMAT:
        raise NewerFormat(
            f"{stream}: the database holds format {found} of the service's documents; this "
            f"version reads format {FORMAT} and older: run the newer version"
        )


async def load(mongo: Mongo, stream: str) -> Partitioning | None:
    doc = await mongo.find_one(COLLECTION, {"_id": stream})
    if doc is None:
        return None
    stored = Partitioning.from_document(doc)
    check_format(stream, stored.format)
    return stored


async def ensure(mongo: Mongo, stream: str, count: int) -> Partitioning:
    """The stream's stored partitioning, recorded as ``count`` if none is; raises
    :class:`PartitioningMismatch` when the stored one differs from ``count``."""
    stored = await load(mongo, stream)
    if stored is None:
        unsplit_before = await mongo.find_one(CHECKPOINTS, {"_id": stream})
        if unsplit_before is not None and count > 1:
            raise PartitioningMismatch(
                f"{stream}: stored as 1 partition (a checkpoint from before partitions), but "
                f"partitions is {count} here: run `streamer repartition --partitions {count}` "
                "first, or set STREAMER_PARTITIONS=1"
            )
        doc = await mongo.find_one_and_update(
            COLLECTION,
            {"_id": stream},
            {
                "$setOnInsert": {
                    "count": count,
                    "epoch": 1,
                    "state": "ready",
                    "format": FORMAT,
                    "created_at": dt.datetime.now(dt.UTC),
                }
            },
            upsert=True,
        )
        assert doc is not None
        stored = Partitioning.from_document(doc)
    if stored.count != count:
        raise PartitioningMismatch(
            f"{stream}: stored as {stored.count} partitions (epoch {stored.epoch}), but "
            f"partitions is {count} here: set STREAMER_PARTITIONS={stored.count}, or run "
            f"`streamer repartition --partitions {count}`"
        )
    return stored


def retired_reason(stream: str, retired: dict[str, object]) -> str:
    """The one line an owner of a retired checkpoint stops with."""
    return (
        f"{stream}: the stream was repartitioned into {retired.get('count')} partitions "
        f"(epoch {retired.get('epoch')}); this instance reads it as before: restart it with "
        f"STREAMER_PARTITIONS={retired.get('count')}"
    )


async def repartition(
    mongo: Mongo, handler: StreamHandler, count: int, *, by: str
) -> tuple[Partitioning, Partitioning]:
    """Split ``handler``'s stream into ``count`` partitions (see the module); the
    partitioning before and after. Running it again finishes an interrupted one."""
    stream = handler.name
    before = await load(mongo, stream)
    if before is None:
        before = Partitioning(stream, 1, 1)
    if before.state == "ready":
        if before.count == count:
            return before, before
        after = Partitioning(stream, count, before.epoch + 1, "repartitioning")
        await _barrier(mongo, before, after, by)
    else:
        after, before = before, Partitioning(stream, -1, before.epoch - 1)
        if after.count != count:
            raise SettingsError(
                f"{stream}: a repartition into {after.count} partitions is under way; run "
                f"`streamer repartition --partitions {after.count}` to finish it first"
            )
    await _retag(mongo, handler, count)
    gen = await _next_gen(mongo, stream)
    for unit in partitions_of(stream, count):
        await _start_checkpoint(mongo, unit, gen, after, by)
    await mongo.update_one(
        COLLECTION,
        {"_id": stream, "epoch": after.epoch},
        {"$set": {"state": "ready", "finished_at": dt.datetime.now(dt.UTC)}},
    )
    return before, Partitioning(stream, count, after.epoch)


async def _barrier(mongo: Mongo, before: Partitioning, after: Partitioning, by: str) -> None:
    """Move the record to ``after`` and retire the old checkpoints, in one transaction."""
    stream = before.stream
    old = [p.key for p in partitions_of(stream, before.count)]
    retired = {"epoch": after.epoch, "count": after.count, "by": by}
    fields = {
        "count": after.count,
        "epoch": after.epoch,
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
        for key in old:
            await mongo.update_one(
                CHECKPOINTS,
                {"_id": key},
                {"$set": {"retired": retired}, "$inc": {"version": 1}},
                session=session,
            )


async def _retag(mongo: Mongo, handler: StreamHandler, count: int) -> None:
    """Every mirror entry's ``p`` recomputed for ``count`` partitions (none when 1)."""
    if count == 1:
        update: list[dict[str, object]] = [{"$unset": "p"}]
    else:
        p = Partition(handler.name, 0, count)
        hashed = p.hash_expr("$_id")["$eq"][0]
        update = [{"$set": {"p": hashed}}]
    await mongo.update_many(handler.mirror, {}, update)


async def _next_gen(mongo: Mongo, stream: str) -> int:
    """A generation above every checkpoint's of the stream, so that each new partition's
    sweep removes what its scan does not stamp."""
    docs = await mongo.find(CHECKPOINTS, {"_id": {"$regex": f"^{stream}(#|$)"}})
    return max((int(d.get("gen", 0)) for d in docs), default=0) + 1


async def _start_checkpoint(
    mongo: Mongo, unit: Partition, gen: int, after: Partitioning, by: str
) -> None:
    """The new partition's first checkpoint: a resync to run, not yet claimed by anyone."""
    now = dt.datetime.now(dt.UTC)
    resync = Resync(
        gen=gen,
        reason=f"{REPARTITIONED} into {after.count} partitions (epoch {after.epoch})",
        fresh=False,
        started_at=now,
        step="scan",
    )
    cp = Checkpoint(
        stream=unit.key, version=1, phase="resync", gen=gen, resync=resync, owner=by, updated_at=now
    )
    doc = {**cp.document(), "format": FORMAT, "epoch": after.epoch}
    existing = await mongo.find_one(CHECKPOINTS, {"_id": unit.key})
    if existing is not None and existing.get("epoch") == after.epoch:
        return  # made by an earlier run of this repartition: it may be under way
    # A checkpoint of this id from an older split (retired at its barrier), or none.
    await mongo.delete_many(CHECKPOINTS, {"_id": unit.key})
    await mongo.insert_many(CHECKPOINTS, [doc])
