"""Which of the split streams' partitions this instance works: a look at everyone, then act.

One :class:`Assigner` per instance, for every split stream. About once a second it reads
the live members (:mod:`streamer.runtime.membership`) and the split streams' live leases,
and asks :func:`streamer.core.partitions.plan_balance`, stream by stream, what this
instance should do:

- hand over partitions above its fair share: each such partition's owner finishes the
  batch in hand, then releases the lease (``released``: free at once), see
  :meth:`streamer.runtime.ownership.StreamOwner.hand_over`;
- take free partitions up to its share: their owners are permitted one try at the lease
  (two instances may try one partition together; the lease's single upsert lets one win).

A partition held under this instance's own id by another process is tried too, as an
unsplit stream's standby would: the lease's rules decide whether that process is gone.
Everything else is decided by the leases and the checkpoints' compare-and-set, so a
stale look costs at most a wasted try, never a double count.
"""

from __future__ import annotations

import asyncio
import zlib
from typing import Any, Protocol

import structlog

from ..core.errors import DatabaseError
from ..core.partitions import Partition, plan_balance
from ..mongo import Mongo
from .leases import COLLECTION as LEASES
from .leases import LIVE_EXPR, renew_every_s
from .lifecycle import every_until_stopped
from .membership import Membership

log = structlog.get_logger("streamer.assignment")

LOOK_EVERY_S = 1.0  # at most; a third of the lease TTL when that is shorter


class Worker(Protocol):
    """What the assigner needs of a partition's owner."""

    unit: Partition
    owned: bool

    def permit(self) -> None: ...

    def hand_over(self) -> None: ...


class Assigner:
    """The split streams' partitions, looked at together: one read of the members and
    one of the leases per look, whatever the number of streams."""

    def __init__(
        self, mongo: Mongo, membership: Membership, counts: dict[str, int], *, ttl_s: float
    ) -> None:
        self.mongo = mongo
        self.membership = membership
        self.counts = counts  # split streams only
        self.every_s = min(LOOK_EVERY_S, renew_every_s(ttl_s))
        self.workers: dict[str, Worker] = {}  # by partition key
        # Rotate the order in which free partitions are tried by the process, so two
        # instances looking at the same moment mostly try different ones.
        self._offset = zlib.crc32(membership.nonce.encode())

    def add(self, worker: Worker) -> None:
        self.workers[worker.unit.key] = worker

    async def run(self, stopping: asyncio.Event) -> None:
        await every_until_stopped(stopping, self.every_s, self.look, _look_failed)

    async def look(self) -> None:
        members = [m.nonce for m in await self.membership.live()]
        docs = await self.mongo.find(
            LEASES, {"_id": {"$in": list(self.workers)}, "$expr": LIVE_EXPR}
        )
        holders = {str(d["_id"]): d for d in docs}
        for stream, count in self.counts.items():
            self._balance(stream, count, members, holders)

    def _balance(
        self, stream: str, count: int, members: list[str], holders: dict[str, dict[str, Any]]
    ) -> None:
        me = self.membership
        held: dict[str, list[int]] = {}
        ours_elsewhere: list[int] = []  # held under this id by another process
        for i in range(count):
            doc = holders.get(Partition(stream, i, count).key)
            if doc is None:
                continue
            nonce = str(doc.get("nonce") or doc.get("owner"))
            held.setdefault(nonce, []).append(i)
            if doc.get("owner") == me.instance and nonce != me.nonce:
                ours_elsewhere.append(i)
        workers = [self.workers[Partition(stream, i, count).key] for i in range(count)]
        balance = plan_balance(me.nonce, members, held, count)
        for i in balance.release:
            log.info(
                "partition.handing_over",
                stream=stream,
                partition=i,
                reason="above this instance's fair share",
                members=len(members),
            )
            workers[i].hand_over()
        taken = {i for ids in held.values() for i in ids}
        offset = self._offset % count
        free = [
            i
            for i in (*range(offset, count), *range(offset))
            if i not in taken and not workers[i].owned
        ]
        for i in (*free[: balance.may_take], *ours_elsewhere):
            workers[i].permit()


def _look_failed(exc: DatabaseError) -> None:
    log.warning("assignment.look_failed", error=f"{type(exc).__name__}: {exc}")
