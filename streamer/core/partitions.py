"""Partitions of a stream, and how instances share them: pure values and decisions.

A stream split into ``P`` partitions is read as ``P`` change streams, each filtered on
the server by the hashed document key:
``{$mod: [{$abs: {$toHashedIndexKey: "$documentKey._id"}}, P]} == i``. ``documentKey._id``,
not ``_id``: in a change event ``_id`` is the resume token. Every event of one document
lands in one partition, in order. Events without a ``documentKey`` (drop, rename,
dropDatabase, invalidate) reach every partition, so each reacts to them as a single
stream does. ``$toHashedIndexKey`` is mongod's hashed-index hash (documented from
MongoDB 7.0); mongod 5.1+ rewrites ``documentKey`` predicates into its oplog scan, so an
extra partition costs the server little.

Each partition is a *unit* of work: its own lease, checkpoint and writer session, keyed
by :attr:`Partition.key`. With ``P = 1`` the key is the stream's name, so the documents
a single-partition deployment wrote before partitions existed are still its own.

Assignment (:func:`plan_balance`): instances heartbeat (:mod:`streamer.runtime.membership`);
each holds between ``P // N`` and ``ceil(P / N)`` of a stream's partitions for ``N``
live instances. A partition moves only when that bound needs it: an instance above the
ceiling hands its extra ones over; while some instance is below the floor, the
instances above the floor hand one each (as many as are missing, the fullest first).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .keys import stable_hash

MAX_PARTITIONS = 256  # a label per partition: bounded, and far above any replica count


@dataclass(frozen=True, slots=True, order=True)
class Partition:
    """Partition ``index`` of the ``count`` a stream is split into."""

    stream: str
    index: int = 0
    count: int = 1

    @property
    def key(self) -> str:
        """Its lease, checkpoint and session id: the stream's name when unsplit."""
        if self.count == 1:
            return self.stream
        return f"{self.stream}#{self.index}/{self.count}"

    @property
    def split(self) -> bool:
        return self.count > 1

    @property
    def label(self) -> str:
        """Its ``partition`` metric label."""
        return str(self.index)

    def hash_expr(self, field: str) -> dict[str, Any]:
        """The aggregation expression true when ``field``'s value hashes into this one."""
        return {"$eq": [{"$mod": [{"$abs": {"$toHashedIndexKey": field}}, self.count]}, self.index]}

    def change_stage(self) -> dict[str, Any] | None:
        """The change stream's ``$match`` right after ``$changeStream``: this partition's
        documents, and every event without a document key. None when unsplit."""
        if not self.split:
            return None
        return {
            "$match": {
                "$or": [
                    {"documentKey": {"$exists": False}},
                    {"$expr": self.hash_expr("$documentKey._id")},
                ]
            }
        }

    def source_filter(self, field: str = "$_id") -> dict[str, Any]:
        """A query filter for this partition's documents (``{}`` when unsplit)."""
        return {"$expr": self.hash_expr(field)} if self.split else {}

    def mirror_filter(self) -> dict[str, Any]:
        """The mirror entries this partition wrote (each carries ``p``; ``{}`` when unsplit)."""
        return {"p": self.index} if self.split else {}

    def writes_totals_of(self, user_id: Any) -> bool:
        """Whether this partition is the one that writes ``user_id``'s totals (the
        others defer their share to it: :mod:`streamer.core.deltas`)."""
        return owner_of(user_id, self.count) == self.index


def owner_of(value: Any, count: int) -> int:
    """The partition, of ``count``, that owns a derived document keyed by ``value`` (a
    user's totals): a hash of the key as the service computes it, not the server's."""
    return stable_hash(value) % count if count > 1 else 0


def partitions_of(stream: str, count: int) -> tuple[Partition, ...]:
    return tuple(Partition(stream, i, count) for i in range(count))


def parse_key(key: str) -> Partition:
    """The partition a lease or checkpoint id names (the inverse of ``Partition.key``)."""
    stream, hash_, rest = key.partition("#")
    if not hash_:
        return Partition(stream)
    index, _, count = rest.partition("/")
    return Partition(stream, int(index), int(count))


def and_filters(*filters: Mapping[str, Any]) -> dict[str, Any]:
    """Query filters combined; ``{}`` for none, the one itself for one."""
    parts = [dict(f) for f in filters if f]
    if not parts:
        return {}
    if len(parts) == 1:
        return parts[0]
    return {"$and": parts}


@dataclass(frozen=True, slots=True)
class Balance:
    """What one instance does about one stream's partitions after a look at everyone."""

    release: tuple[int, ...] = ()  # partitions it hands over (finish the batch, release)
    may_take: int = 0  # how many free partitions it may take now


def fair_bounds(partitions: int, members: int) -> tuple[int, int]:
    """The fewest and most partitions an instance holds when ``members`` share them."""
    n = max(members, 1)
    return partitions // n, math.ceil(partitions / n)


def plan_balance(
    me: str,
    members: Iterable[str],
    held: Mapping[str, Sequence[int]],
    partitions: int,
) -> Balance:
    """Which partitions ``me`` hands over and how many free ones it may take.

    ``members`` are the live instances (``me`` counts even before its first heartbeat
    is seen); ``held`` maps each holder to the partitions whose live lease it holds.
    Every instance computes this from the same reads, so they agree without talking.
    """
    everyone = sorted({*members, me, *held})
    live = sorted({*members, me})
    low, high = fair_bounds(partitions, len(live))
    counts = {m: len(held.get(m, ())) for m in everyone}
    mine = sorted(held.get(me, ()))
    free = partitions - sum(counts.values())
    # Instances missing from their floor (a new one, say) and how many they lack.
    missing = sum(max(0, low - counts[m]) for m in live)
    if len(mine) > high:
        return Balance(release=tuple(mine[high:]))
    if missing > free and len(mine) > low:
        # Hand one over if this instance is among the fullest ``missing - free`` above
        # the floor (fullest first, then by name, so not everyone gives one up).
        donors = sorted((m for m in everyone if counts[m] > low), key=lambda m: (-counts[m], m))
        if me in donors[: missing - free]:
            return Balance(release=(mine[-1],))
        return Balance()
    if len(mine) >= high:
        return Balance()
    # Free partitions: while some instance lacks its floor, only those below the floor
    # take (a partition just handed over goes to the one that lacks it, not back to its
    # donor); otherwise up to the ceiling.
    room = (low if missing else high) - len(mine)
    return Balance(may_take=max(0, min(room, free)))


HASHED_KEYS_SINCE = (7, 0)  # $toHashedIndexKey: the MongoDB manual documents it from 7.0


def split_refusal(
    counts: Mapping[str, int], version_array: Sequence[Any], version: Any
) -> str | None:
    """Why this server cannot run these partition counts (None: it can). Splitting a
    stream needs ``$toHashedIndexKey``, from MongoDB 7.0."""
    split = [(stream, n) for stream, n in counts.items() if n > 1]
    if not split:
        return None
    try:
        major_minor = tuple(int(x) for x in list(version_array)[:2])
    except (TypeError, ValueError):
        major_minor = ()
    if major_minor >= HASHED_KEYS_SINCE:
        return None
    stream, n = split[0]
    return (
        f"{stream}: partitions is {n}, but the server is MongoDB {version or 'of unknown version'}:"
        " splitting a stream needs $toHashedIndexKey, from MongoDB 7.0; set "
        "STREAMER_PARTITIONS=1 there"
    )
