"""How each stream is split, as stored in ``streamer_partitionings``: one truth for all.

Every instance must read a stream as the same number of partitions, or two of them
would apply one document's events under two checkpoints. The first instance to start
records the stream's ``count`` (and an ``epoch``, which a repartition advances); every
later one compares its own ``partitions`` setting with the record and refuses to
process, in one line naming both numbers, when they differ. A deployment from before
partitions existed has checkpoints but no record: it is recorded as one partition,
which is what it is, so upgrading keeps its position.

A repartition (:mod:`streamer.runtime.repartitioning`) moves the record to the new
count under the next epoch; until its new checkpoints exist the record's ``state`` is
``repartitioning``, and instances set to the new count wait for ``ready``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..core.checkpoint import FORMAT
from ..core.errors import SettingsError
from ..core.partitions import split_refusal
from ..mongo import Mongo
from .checkpoints import COLLECTION as CHECKPOINTS

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
    # While repartitioning: the count and epoch it started from (what is drained).
    previous: tuple[int, int] | None = None

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Partitioning:
        previous = doc.get("previous")
        return cls(
            str(doc["_id"]),
            int(doc["count"]),
            int(doc.get("epoch", 1)),
            str(doc.get("state", "ready")),
            int(doc.get("format", 1)),
            (int(previous["count"]), int(previous["epoch"])) if previous else None,
        )


def check_format(what: str, found: int) -> None:
    """Refuse, in one line, a document written by a newer version of the service."""
    if found > FORMAT:
        raise NewerFormat(
            f"{what}: the database holds format {found} of the service's documents; this "
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


async def check_server_can_split(mongo: Mongo, counts: dict[str, int]) -> None:
    """A split stream needs ``$toHashedIndexKey``: a one-line refusal on an older server."""
    if all(n == 1 for n in counts.values()):
        return
    info = await mongo.command({"buildInfo": 1})
    refusal = split_refusal(counts, list(info.get("versionArray") or []), info.get("version"))
    if refusal is not None:
        raise SettingsError(refusal)
