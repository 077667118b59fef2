"""Per-stream checkpoints in ``streamer_checkpoints``, advanced by compare-and-set.

One document per stream holds where the stream resumes (a resume token, or a cluster
time to start at after a resync) and whether a resync is under way. Every write the
service makes to derived data commits in one transaction with an advance of this
document, filtered on the version (and token) the work started from. If another
instance advanced it first, the filter matches nothing, the transaction aborts and
the work is not applied: that is what makes a crash, a retried commit or a second
instance unable to double count.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from .errors import CheckpointConflict, DuplicateKey
from .mongo import Mongo, Session
from .mongo.types import Timestamp

COLLECTION = "streamer_checkpoints"
Phase = Literal["stream", "resync"]


@dataclass(frozen=True, slots=True)
class Resync:
    gen: int
    reason: str
    fresh: bool  # clear the derived data first (first start, forced resync)
    started_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Checkpoint:
    stream: str
    version: int
    phase: Phase
    gen: int  # the resync generation the mirror is stamped with
    token: dict[str, Any] | None = None
    start_at: Timestamp | None = None  # used when there is no token yet
    cluster_time: Timestamp | None = None  # of the last applied event
    position: Timestamp | None = None  # cluster time the stored position covers
    applied_at: dt.datetime | None = None  # wall time of the last applied event
    resync: Resync | None = None
    batch_id: str | None = None
    owner: str | None = None
    updated_at: dt.datetime | None = None
    last_resync: dict[str, Any] | None = None

    def document(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        doc["_id"] = doc.pop("stream")
        return doc

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Checkpoint:
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in doc.items() if k in fields}
        values["stream"] = doc["_id"]
        resync = doc.get("resync")
        values["resync"] = Resync(**resync) if resync else None
        return cls(**values)


class CheckpointStore:
    """Loads and advances checkpoints; ``owner`` names this instance in each write."""

    def __init__(self, mongo: Mongo, owner: str) -> None:
        self.mongo = mongo
        self.owner = owner

    async def load(self, stream: str) -> Checkpoint | None:
        doc = await self.mongo.find_one(COLLECTION, {"_id": stream})
        return Checkpoint.from_document(doc) if doc is not None else None

    async def load_all(self) -> list[Checkpoint]:
        docs = await self.mongo.find(COLLECTION, {}, sort=[("_id", 1)])
        return [Checkpoint.from_document(d) for d in docs]

    async def create(self, stream: str, resync: Resync) -> Checkpoint:
        """The first checkpoint of a stream, in the resync phase; conflict if one exists."""
        cp = Checkpoint(
            stream=stream,
            version=1,
            phase="resync",
            gen=resync.gen,
            resync=resync,
            batch_id=uuid.uuid4().hex,
            owner=self.owner,
            updated_at=dt.datetime.now(dt.UTC),
        )
        try:
            await self.mongo.insert_many(COLLECTION, [cp.document()])
        except DuplicateKey as exc:
            raise CheckpointConflict(f"{stream}: another instance created the checkpoint") from exc
        return cp

    def successor(self, current: Checkpoint, **changes: Any) -> Checkpoint:
        """The checkpoint that follows ``current`` once ``changes`` are applied."""
        return dataclasses.replace(
            current,
            version=current.version + 1,
            batch_id=uuid.uuid4().hex,
            owner=self.owner,
            updated_at=dt.datetime.now(dt.UTC),
            **changes,
        )

    async def advance(
        self, current: Checkpoint, new: Checkpoint, *, session: Session | None = None
    ) -> Checkpoint:
        """Store ``new`` in place of ``current``, if nobody moved it meanwhile.

        Raises :class:`CheckpointConflict` when the stored checkpoint is no longer
        ``current``; inside a transaction that aborts everything the batch wrote.
        """
        result = await self.mongo.update_one(
            COLLECTION,
            {"_id": current.stream, "version": current.version, "token": current.token},
            {"$set": {k: v for k, v in new.document().items() if k != "_id"}},
            session=session,
        )
        if result.matched_count != 1:
            raise CheckpointConflict(
                f"{current.stream}: checkpoint moved past version {current.version}"
            )
        return new

    async def landed(self, expected: Checkpoint) -> bool:
        """Whether ``expected`` is what is stored: a commit whose outcome was unknown did land."""
        stored = await self.load(expected.stream)
        return stored is not None and stored.batch_id == expected.batch_id
