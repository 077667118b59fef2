"""The orders stream: keeps ``user_totals`` equal to the sum over each user's orders."""

from __future__ import annotations

import datetime as dt
from collections.abc import Hashable, Sequence
from typing import Any

from ..core.changes import Change
from ..core.errors import DuplicateKey, TransientError
from ..core.keys import bson_key
from ..core.totals import (
    COMPLETED,
    ORDER_FIELDS,
    Contribution,
    Totals,
    apply_moves,
    plan_orders,
    totals_document,
    totals_from_document,
)
from ..core.values import Timestamp
from ..mongo import Mongo, Session
from ..mongo.types import DeleteOne, InsertOne, ReplaceOne
from .handler import BatchOutcome, MirroredStream

USER_TOTALS = "user_totals"
# Bumped by every batch of a split stream that moves the user's totals: two partitions
# moving one user's totals always write the same document, so one of them meets a
# WriteConflict (112) and runs its batch again over the other's result. Today's
# documents already change with every write (updated_at); the version states the
# rule rather than leaning on a timestamp, and survives a same-millisecond write.
VERSION = "v"


def bump(version: Any) -> int:
    return version + 1 if isinstance(version, int) and not isinstance(version, bool) else 1


MIRROR = "streamer_mirror_orders"
NO_TIME = Timestamp(0, 0)


class OrdersStream(MirroredStream):
    name = "orders"
    source = "orders"
    fields = ORDER_FIELDS
    mirror = MIRROR

    def __init__(self, mongo: Mongo) -> None:
        super().__init__(mongo)

    async def apply(self, session: Session, changes: Sequence[Change], gen: int) -> BatchOutcome:
        prior, stored = await self.load_prior(session, changes)
        effects = plan_orders(changes, prior)
        users: dict[Hashable, Any] = {}
        for move in effects.moves:
            for c in move:
                if c is not None:
                    users.setdefault(c.user, c.user_id)
        totals: dict[Hashable, Totals] = {}
        versions: dict[Hashable, Any] = {}
        if users:
            docs = await self.mongo.find(
                USER_TOTALS, {"_id": {"$in": list(users.values())}}, session=session
            )
            totals = {bson_key(d["_id"]): totals_from_document(d) for d in docs}
            versions = {bson_key(d["_id"]): d.get(VERSION) for d in docs}
        existing = set(totals)
        recompute = apply_moves(totals, effects.moves)
        # Query fields: the user's completed orders by date, for last_order_at (from the
        # assessment the plan already made, not a second one per document).
        query_fields = {
            key: {"u": c.user_id, "s": c.status, "t": c.created_at}
            for key, c in effects.assessed.items()
            if isinstance(c, Contribution)
        }
        writes = await self.write_mirror(session, effects.states, gen, stored, query_fields)
        if recompute:
            await self._recompute_last_order_at(session, totals, recompute)
        now = dt.datetime.now(dt.UTC)
        requests: list[Any] = []
        split = self.partition.split
        for key in users:
            t = totals[key]
            if t.empty:
                if key in existing:
                    requests.append(DeleteOne({"_id": t.user_id}))
                continue
            doc = totals_document(t, now)
            if split:
                doc[VERSION] = bump(versions.get(key))
            if key in existing:
                requests.append(ReplaceOne({"_id": t.user_id}, doc))
            else:
                requests.append(InsertOne(doc))
        try:
            await self.mongo.bulk_write(USER_TOTALS, requests, session=session)
        except DuplicateKey as exc:
            if not split:
                raise
            # Another partition created this user's totals after our snapshot: the batch
            # runs again and reads them. Inside a transaction that is a WriteConflict
            # (112, a key written after the snapshot) on mongosim and, by its storage
            # engine's rules, on mongod; a DuplicateKey, should a server answer one, is
            # retried the same way.
            raise TransientError(
                "user_totals: created by another partition meanwhile",
                code=exc.code,
                code_name=exc.code_name,
                reason="totals_created_concurrently",
            ) from exc
        return await self.outcome(
            session, changes, effects.rejected, derived_writes=writes + len(requests)
        )

    async def _recompute_last_order_at(
        self, session: Session, totals: dict[Hashable, Totals], users: set[Hashable]
    ) -> None:
        """The latest created_at of each user's completed orders, read from the mirror."""
        ids = [totals[k].user_id for k in users]
        for k in users:
            totals[k].last_order_at = None
        rows = await self.mongo.aggregate(
            MIRROR,
            [
                {"$match": {"u": {"$in": ids}, "s": COMPLETED, "t": {"$type": "date"}}},
                {"$group": {"_id": "$u", "last": {"$max": "$t"}}},
            ],
            session=session,
        )
        for row in rows:
            key = bson_key(row["_id"])
            if key in totals:
                totals[key].last_order_at = row["last"]

    async def take_back(self, session: Session, limit: int, gen: int) -> int:
        """Apply up to ``limit`` of this partition's mirror entries as synthetic deletes:
        its share of the totals subtracted, its entries removed (a fresh resync of one
        partition; the scan then adds back what it finds)."""
        docs = await self.mongo.find(
            self.mirror,
            self.partition.mirror_filter(),
            projection={"_id": 1},
            limit=limit,
            session=session,
        )
        if not docs:
            return 0
        now = dt.datetime.now(dt.UTC)
        changes = [
            # No event time: these deletes undo what this partition applied, from no event.
            Change(op="delete", key=d["_id"], cluster_time=NO_TIME, wall_time=now, synthetic=True)
            for d in docs
        ]
        await self.apply(session, changes, gen)
        return len(changes)

    async def clear(self, session: Session, limit: int, gen: int) -> int:
        if self.partition.split:
            # Other partitions' orders count in the same totals: subtract only ours.
            return await self.take_back(session, limit, gen)
        deleted = await self.clear_collection(USER_TOTALS, session, limit)
        return deleted + await self.clear_collection(MIRROR, session, limit)

    async def orphans(self, gen: int, limit: int) -> list[Any]:
        return await self.mirror_orphans(gen, limit)
