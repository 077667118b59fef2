"""Which of a split stream's partitions this instance works: a look at everyone, then act.

One :class:`Assigner` per split stream. About once a second it reads the live members
(:mod:`streamer.runtime.membership`) and the stream's live leases, and asks
:func:`streamer.core.partitions.plan_balance` what this instance should do:

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
from typing import Protocol

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
    def __init__(
        self,
        mongo: Mongo,
        membership: Membership,
        stream: str,
        count: int,
        *,
        ttl_s: float,
    ) -> None:
        self.mongo = mongo
        self.membership = membership
        self.stream = stream
        self.count = count
        self.every_s = min(LOOK_EVERY_S, renew_every_s(ttl_s))
        self.workers: dict[int, Worker] = {}
        self.keys = [Partition(stream, i, count).key for i in range(count)]
        self.looked = asyncio.Event()  # set after each look (tests, status)
        # Rotate the order in which free partitions are tried by the process, so two
        # instances looking at the same moment mostly try different ones.
        self._offset = zlib.crc32(membership.nonce.encode()) % count

    def add(self, worker: Worker) -> None:
        self.workers[worker.unit.index] = worker

    async def run(self, stopping: asyncio.Event) -> None:
        await every_until_stopped(stopping, self.every_s, self.look, self._look_failed)

    def _look_failed(self, exc: DatabaseError) -> None:
        log.warning(
            "assignment.look_failed", stream=self.stream, error=f"{type(exc).__name__}: {exc}"
        )

    async def look(self) -> None:
        members = await self.membership.live()
        docs = await self.mongo.find(LEASES, {"_id": {"$in": self.keys}, "$expr": LIVE_EXPR})
        held: dict[str, list[int]] = {}
        ours_elsewhere: list[int] = []  # held under this id by another process
        index = {key: i for i, key in enumerate(self.keys)}
        for doc in docs:
            i = index[str(doc["_id"])]
            nonce = str(doc.get("nonce") or doc.get("owner"))
            held.setdefault(nonce, []).append(i)
            if doc.get("owner") == self.membership.instance and nonce != self.membership.nonce:
                ours_elsewhere.append(i)
        me = self.membership.nonce
        balance = plan_balance(me, [m.nonce for m in members], held, self.count)
        for i in balance.release:
            log.info(
                "partition.handing_over",
                stream=self.stream,
                partition=i,
                reason="above this instance's fair share",
                members=len(members),
            )
            self.workers[i].hand_over()
        taken = {i for ids in held.values() for i in ids}
        free = [
            i
            for i in (*range(self._offset, self.count), *range(self._offset))
            if i not in taken and not self.workers[i].owned
        ]
        for i in (*free[: balance.may_take], *ours_elsewhere):
            self.workers[i].permit()
        self.looked.set()
