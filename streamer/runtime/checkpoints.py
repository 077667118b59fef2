"""Per-stream checkpoints in ``streamer_checkpoints``, advanced by compare-and-set.

One document per stream (per partition of a split stream, keyed ``orders#2/8``) holds
where the stream resumes (a resume token, or a cluster time to start at after a resync)
and whether a resync is under way. Every write the service makes to derived data
commits in one transaction with an advance of this document, filtered on the version
(and token) the work started from. If another instance advanced it first, the filter
matches nothing, the transaction aborts and the work is not applied: that is what makes
a crash, a retried commit or a second instance unable to double count. The
compare-and-set runs first in the transaction (:mod:`streamer.runtime.commits`).

``streamer resync`` asks a running owner for a resync by setting ``resync_requested``
on the document (see :class:`ResyncRequest`). :meth:`CheckpointStore.advance` sets only
the fields of :class:`Checkpoint`, so a request never moves the version, never breaks
an owner's compare-and-set and is never overwritten by one; the owner removes it in the
same transaction that claims the resync it asked for.

``streamer verify --repair`` asks a running owner to hold still the same way: it sets
``hold_requested`` (see :class:`Hold`); the owner, between batches, grants it by
writing ``hold_granted`` with the hold's id and commits nothing until the hold is
removed or its ``max_s`` has passed on the owner's own clock. The repair's
compare-and-set then cannot lose a race against a stream that keeps moving.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any, Literal

from ..core.checkpoint import (
    FORMAT,
    HOLD,
    HOLD_GRANTED,
    REQUEST,
    Checkpoint,
    Hold,
    Requests,
    Resync,
    ResyncRequest,
)
from ..core.errors import CheckpointConflict, DuplicateKey
from ..mongo import Mongo, Session

COLLECTION = "streamer_checkpoints"


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
            format=FORMAT,  # an older document is upgraded as it is advanced
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

    async def request_resync(self, stream: str, request: ResyncRequest) -> bool:
        """Ask the stream's owner to resync; False if the stream has no checkpoint yet."""
        result = await self.mongo.update_one(
            COLLECTION, {"_id": stream}, {"$set": {REQUEST: request.document()}}
        )
        return result.matched_count == 1

    async def requested(self, stream: str) -> ResyncRequest | None:
        """The resync asked of this stream's owner, if any."""
        return (await self.requests(stream)).resync

    async def requests(self, stream: str) -> Requests:
        """The resync and the hold asked of this stream's owner, if any."""
        return Requests.from_document(await self.mongo.find_one(COLLECTION, {"_id": stream}))

    async def request_hold(self, stream: str, hold: Hold) -> bool:
        """Ask the stream's owner to hold still; False if the stream has no checkpoint."""
        result = await self.mongo.update_one(
            COLLECTION,
            {"_id": stream},
            {"$set": {HOLD: hold.document()}, "$unset": {HOLD_GRANTED: ""}},
        )
        return result.matched_count == 1

    async def grant_hold(self, stream: str, hold_id: str) -> bool:
        """The owner's answer: it commits nothing until the hold ends; False if the hold
        was withdrawn meanwhile."""
        result = await self.mongo.update_one(
            COLLECTION, {"_id": stream, f"{HOLD}.id": hold_id}, {"$set": {HOLD_GRANTED: hold_id}}
        )
        return result.matched_count == 1

    async def hold_state(self, stream: str, hold_id: str) -> Literal["asked", "granted", "gone"]:
        """Where hold ``hold_id`` stands: still asked, granted by the owner, or ended."""
        doc = await self.mongo.find_one(COLLECTION, {"_id": stream})
        if doc is None or (doc.get(HOLD) or {}).get("id") != hold_id:
            return "gone"
        return "granted" if doc.get(HOLD_GRANTED) == hold_id else "asked"

    async def end_hold(self, stream: str, hold_id: str) -> None:
        """Withdraw hold ``hold_id`` (not a newer one): the owner goes on at once."""
        await self.mongo.update_one(
            COLLECTION,
            {"_id": stream, f"{HOLD}.id": hold_id},
            {"$unset": {HOLD: "", HOLD_GRANTED: ""}},
        )

    async def clear_request(self, stream: str, request_id: str, *, session: Session) -> None:
        """Remove request ``request_id`` (not a newer one), inside the claim's transaction."""
        await self.mongo.update_one(
            COLLECTION,
            {"_id": stream, f"{REQUEST}.id": request_id},
            {"$unset": {REQUEST: ""}},
            session=session,
        )

    async def landed(self, expected: Checkpoint) -> bool:
        """Whether ``expected`` is what is stored: a commit whose outcome was unknown did land."""
        stored = await self.load(expected.stream)
        return stored is not None and stored.batch_id == expected.batch_id
