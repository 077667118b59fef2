"""What every stream shares: its source, its mirror of applied states, its quarantine.

A stream handler turns a batch of changes into writes inside the caller's
transaction. :mod:`streamer.streams.orders` and :mod:`streamer.streams.inventory` are the two
handlers; the watcher and the resync drive them the same way.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Self

import structlog

from ..core.changes import Change
from ..core.keys import bson_key
from ..core.mirror import State, project, same_state
from ..core.partitions import Partition, and_filters
from ..core.totals import Rejected
from ..mongo import Mongo, Session
from ..mongo.types import DeleteOne, InsertOne, ReplaceOne

log = structlog.get_logger("streamer.streams")

QUARANTINE = "streamer_quarantine"

# What the mirror holds of a batch's documents: bson_key -> (state, resync generation).
Stored = dict[Hashable, tuple[State, Any]]


@dataclass(slots=True)
class BatchOutcome:
    """What a committed batch did (for logs and metrics)."""

    events: int = 0
    by_op: dict[str, int] = field(default_factory=dict)
    quarantined: list[Rejected] = field(default_factory=list)
    transitions: list[Any] = field(default_factory=list)
    derived_writes: int = 0
    # Split orders streams (streamer.core.deltas): shares of other partitions' users'
    # totals this batch deferred to them, and deltas it folded into its own users'.
    deferred: int = 0
    folded: int = 0


class StreamHandler(Protocol):
    name: str
    source: str
    fields: tuple[str, ...]
    mirror: str
    partition: Partition  # the documents this handler applies: one partition, or all

    def for_partition(self, partition: Partition) -> StreamHandler:
        """This handler scoped to ``partition``: its mirror entries, its sweep, its clear."""
        ...

    async def apply(self, session: Session, changes: Sequence[Change], gen: int) -> BatchOutcome:
        """Write the effects of ``changes`` (in order) inside ``session``'s transaction."""
        ...

    async def clear(self, session: Session, limit: int, gen: int) -> int:
        """Take back up to ``limit`` documents' effects (a fresh resync's first step, in
        generation ``gen``); how many were taken back. Unsplit, the derived data and the
        mirror are deleted outright; one partition of several takes back only its own
        share, as deletes, since other partitions' orders count in the same totals."""
        ...

    async def folds_waiting(self) -> bool:
        """Whether other partitions' deferred shares wait for this one to fold them (an
        idle partition then commits a batch of no events: :mod:`streamer.core.deltas`)."""
        ...

    async def orphans(self, gen: int, limit: int) -> list[Any]:
        """Ids the mirror or derived data still hold but resync generation ``gen`` never
        saw (within this handler's partition)."""
        ...


class MirroredStream:
    """Loading previous states and writing new ones, for a handler's ``apply``."""

    name: str
    source: str
    fields: tuple[str, ...]
    mirror: str

    def __init__(self, mongo: Mongo) -> None:
        self.mongo = mongo
        self.partition = Partition(self.name)

    def for_partition(self, partition: Partition) -> Self:
        scoped = copy.copy(self)
        scoped.partition = partition
        return scoped

    async def load_prior(
        self, session: Session, changes: Sequence[Change]
    ) -> tuple[dict[Hashable, State | None], Stored]:
        """The stored state of every document ``changes`` touch (None when absent), and
        what the mirror holds of them (those are replaced, or left alone when nothing
        changed; the others inserted, which costs the server less than an upsert)."""
        keys: dict[Hashable, Any] = {}
        for change in changes:
            keys.setdefault(bson_key(change.key), change.key)
        prior: dict[Hashable, State | None] = dict.fromkeys(keys)
        stored: Stored = {}
        docs = await self.mongo.find(
            self.mirror, {"_id": {"$in": list(keys.values())}}, session=session
        )
        for doc in docs:
            key = bson_key(doc["_id"])
            state = prior[key] = doc.get("d")
            if state is not None:
                stored[key] = (state, doc.get("g"))
        await self._fill_unknown(session, changes, prior)
        return prior, stored

    async def _fill_unknown(
        self, session: Session, changes: Sequence[Change], prior: dict[Hashable, State | None]
    ) -> None:
        # An update to a document the mirror never saw cannot happen while mirror and
        # source agree; if it does (a restored backup, a hand edit), the current source
        # document is the best prior there is. Later events then converge on the truth.
        seen: set[Hashable] = set()
        unknown: dict[Hashable, Any] = {}
        for change in changes:
            key = bson_key(change.key)
            if change.op == "update" and key not in seen and prior.get(key) is None:
                unknown[key] = change.key
            seen.add(key)
        if not unknown:
            return
        log.warning("stream.unknown_prior_state", stream=self.name, documents=len(unknown))
        docs = await self.mongo.find(
            self.source,
            {"_id": {"$in": list(unknown.values())}},
            projection=dict.fromkeys(self.fields, 1),
            session=session,
        )
        for doc in docs:
            prior[bson_key(doc["_id"])] = project(doc, self.fields)

    def mirror_document(self, source_id: Any, state: State, gen: int) -> dict[str, Any]:
        """The stored mirror document; handlers add their query fields. One partition of
        several tags its entries (``p``), so its sweep, clear and orphans see only them."""
        doc = {"_id": source_id, "d": state, "g": gen}
        if self.partition.split:
            doc["p"] = self.partition.index
        return doc

    async def write_mirror(
        self,
        session: Session,
        states: Mapping[Hashable, tuple[Any, State | None]],
        gen: int,
        stored: Stored,
        query_fields: Mapping[Hashable, Mapping[str, Any]] | None = None,
    ) -> int:
        """One write per document the batch changed (its last state), none for a document
        whose state and generation are what the mirror already holds. ``query_fields``
        are a handler's indexed fields for some documents, added to theirs."""
        requests: list[Any] = []
        extra = query_fields or {}
        for key, (source_id, state) in states.items():
            held = stored.get(key)
            if state is None:
                if held is not None:
                    requests.append(DeleteOne({"_id": source_id}))
                continue
            if held is not None and held[1] == gen and same_state(held[0], state):
                continue
            doc = self.mirror_document(source_id, state, gen)
            if key in extra:
                doc.update(extra[key])
            requests.append(InsertOne(doc) if held is None else ReplaceOne({"_id": source_id}, doc))
        await self.mongo.bulk_write(self.mirror, requests, session=session)
        return len(requests)

    async def write_quarantine(self, session: Session, rejected: Sequence[Rejected]) -> None:
        now = dt.datetime.now(dt.UTC)
        await self.mongo.insert_many(
            QUARANTINE,
            [
                {
                    "stream": self.name,
                    "key": r.change.key,
                    "reason": r.reason,
                    "op": r.change.op,
                    "cluster_time": r.change.cluster_time,
                    "event_at": r.change.wall_time,
                    "synthetic": r.change.synthetic,
                    "fields": r.state,
                    "at": now,
                }
                for r in rejected
            ],
            session=session,
        )

    async def outcome(
        self,
        session: Session,
        changes: Sequence[Change],
        rejected: list[Rejected],
        *,
        derived_writes: int,
        transitions: list[Any] | None = None,
    ) -> BatchOutcome:
        """Quarantine the batch's rejected events (in its transaction) and say what it did."""
        if rejected:
            await self.write_quarantine(session, rejected)
        return BatchOutcome(
            events=len(changes),
            by_op=count_ops(changes),
            quarantined=rejected,
            transitions=transitions if transitions is not None else [],
            derived_writes=derived_writes,
        )

    async def clear_collection(
        self, coll: str, session: Session, limit: int, where: Mapping[str, Any] | None = None
    ) -> int:
        docs = await self.mongo.find(
            coll, dict(where or {}), projection={"_id": 1}, limit=limit, session=session
        )
        if not docs:
            return 0
        return await self.mongo.delete_many(
            coll, {"_id": {"$in": [d["_id"] for d in docs]}}, session=session
        )

    async def folds_waiting(self) -> bool:
        return False  # only a split orders stream defers shares (streamer.streams.orders)

    async def mirror_orphans(self, gen: int, limit: int) -> list[Any]:
        docs = await self.mongo.find(
            self.mirror,
            and_filters({"g": {"$ne": gen}}, self.partition.mirror_filter()),
            projection={"_id": 1},
            limit=limit,
        )
        return [d["_id"] for d in docs]


def count_ops(changes: Sequence[Change]) -> dict[str, int]:
    out: dict[str, int] = {}
    for change in changes:
        out[change.op] = out.get(change.op, 0) + 1
    return out
