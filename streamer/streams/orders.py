"""The orders stream: keeps ``user_totals`` equal to the sum over each user's orders.

Split into partitions, each user's totals are written by one partition; the others defer
their share to it and it folds them in (:mod:`streamer.core.deltas`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Hashable, Sequence
from typing import Any

from ..core.changes import Change
from ..core.deltas import (
    Delta,
    Move,
    delta_document,
    delta_from_document,
    delta_of,
    fold_all,
    per_user,
)
from ..core.errors import DuplicateKey, TransientError
from ..core.keys import bson_key
from ..core.partitions import owner_of
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
# Bumped by every write of a split stream's user totals. One partition writes each
# user's totals (the others defer shares), but should two write one user's anyway (an
# instance on an older release or with defer_shared_totals off), the bump makes sure
# they conflict (WriteConflict 112: mongod takes none for an update that changes
# nothing) and one reruns its batch over the other's result, keeping last_order_at,
# avg and the delete of an emptied document exact.
VERSION = "v"


def bump(version: Any) -> int:
    return version + 1 if isinstance(version, int) and not isinstance(version, bool) else 1


MIRROR = "streamer_mirror_orders"
# Deferred shares of users' totals, each for the partition that writes that user's
# totals (streamer.core.deltas): inserted by any partition, folded and deleted by that one.
DELTAS = "streamer_totals_deltas"
# How many pending deltas one transaction folds at most (each user's all, past it).
FOLD_LIMIT = 1000
NO_TIME = Timestamp(0, 0)


class OrdersStream(MirroredStream):
    name = "orders"
    source = "orders"
    fields = ORDER_FIELDS
    mirror = MIRROR

    def __init__(self, mongo: Mongo, *, defer_shared: bool = True) -> None:
        super().__init__(mongo)
        # A split stream's partitions write only their own users' totals and defer
        # their share of the others' (streamer.core.deltas); off, every partition writes
        # every user's totals and the version bump's conflicts keep them exact.
        self.defer_shared = defer_shared

    async def apply(self, session: Session, changes: Sequence[Change], gen: int) -> BatchOutcome:
        prior, stored = await self.load_prior(session, changes) if changes else ({}, {})
        effects = plan_orders(changes, prior)
        split = self.partition.split
        moves: Sequence[Move] = effects.moves
        deferred: list[Delta] = []
        if split and self.defer_shared and moves:
            moves, deferred = self._defer(moves)
        # Other partitions' shares of this partition's users' totals (only a split
        # stream defers; a repartition folds them all before the split changes).
        pending = await self._pending(session) if split else []
        users: dict[Hashable, Any] = {}
        for move in moves:
            for c in move:
                if c is not None:
                    users.setdefault(c.user, c.user_id)
        for _, delta in pending:
            users.setdefault(bson_key(delta.user_id), delta.user_id)
        totals: dict[Hashable, Totals] = {}
        versions: dict[Hashable, Any] = {}
        if users:
            docs = await self.mongo.find(
                USER_TOTALS, {"_id": {"$in": list(users.values())}}, session=session
            )
            totals = {bson_key(d["_id"]): totals_from_document(d) for d in docs}
            versions = {bson_key(d["_id"]): d.get(VERSION) for d in docs}
        existing = set(totals)
        recompute = apply_moves(totals, moves)
        recompute |= fold_all(totals, (delta for _, delta in pending))
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
        written = await self._write_totals(session, users, totals, versions, existing)
        at = changes[-1].cluster_time if changes else NO_TIME
        await self._write_shares(session, deferred, [i for i, _ in pending], at)
        outcome = await self.outcome(
            session,
            changes,
            effects.rejected,
            derived_writes=writes + written + len(deferred) + len(pending),
        )
        outcome.deferred, outcome.folded = len(deferred), len(pending)
        return outcome

    async def _write_totals(
        self,
        session: Session,
        users: dict[Hashable, Any],
        totals: dict[Hashable, Totals],
        versions: dict[Hashable, Any],
        existing: set[Hashable],
    ) -> int:
        """Store each user's moved totals (deleted once empty); how many writes."""
        split = self.partition.split
        now = dt.datetime.now(dt.UTC)
        requests: list[Any] = []
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
        return len(requests)

    async def _write_shares(
        self, session: Session, deferred: list[Delta], folded: list[Any], at: Timestamp
    ) -> None:
        """Insert the shares deferred to other partitions; delete the ones folded."""
        if deferred:
            await self.mongo.insert_many(
                DELTAS,
                [
                    delta_document(
                        d,
                        stream=self.name,
                        to=owner_of(d.user_id, self.partition.count),
                        by=self.partition.index,
                        at=at,
                    )
                    for d in deferred
                ],
                session=session,
            )
        if folded:
            await self.mongo.delete_many(DELTAS, {"_id": {"$in": folded}}, session=session)

    def _defer(self, moves: Sequence[Move]) -> tuple[list[Move], list[Delta]]:
        """The moves of this partition's own users, and the net share of every other
        user's, deferred to the partition that writes that user's totals."""
        own: list[Move] = []
        deferred: list[Delta] = []
        for user_moves in per_user(moves).values():
            first = user_moves[0][0] or user_moves[0][1]
            assert first is not None
            if self.partition.writes_totals_of(first.user_id):
                own.extend(user_moves)
                continue
            delta = delta_of(first.user_id, user_moves)
            if not delta.none:
                deferred.append(delta)
        return own, deferred

    async def _pending(self, session: Session) -> list[tuple[Any, Delta]]:
        """The deltas addressed to this partition, up to ``FOLD_LIMIT`` users' worth: every
        pending delta of each user taken, so a user's totals never show part of one
        partition's moves without the earlier ones."""
        where = {"s": self.name, "to": self.partition.index}
        docs = await self.mongo.find(
            DELTAS, where, sort=[("_id", 1)], limit=FOLD_LIMIT, session=session
        )
        if len(docs) == FOLD_LIMIT:
            first: dict[Hashable, Any] = {}
            for doc in docs:
                first.setdefault(bson_key(doc["u"]), doc["u"])
            docs = await self.mongo.find(
                DELTAS, {**where, "u": {"$in": list(first.values())}}, session=session
            )
        return [(doc["_id"], delta_from_document(doc)) for doc in docs]

    async def folds_waiting(self) -> bool:
        """Whether deltas wait for this partition to fold them (outside a batch)."""
        if not self.partition.split:
            return False
        docs = await self.mongo.find(
            DELTAS,
            {"s": self.name, "to": self.partition.index},
            projection={"_id": 1},
            limit=1,
        )
        return bool(docs)

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
        # A whole split stream's fresh resync: pending shares go with the totals.
        deleted += await self.clear_collection(DELTAS, session, limit, {"s": self.name})
        return deleted + await self.clear_collection(MIRROR, session, limit)

    async def orphans(self, gen: int, limit: int) -> list[Any]:
        return await self.mirror_orphans(gen, limit)
