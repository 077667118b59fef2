"""Who is running: a heartbeat per process in ``streamer_members``, read by assignment.

Each process whose streams are split into partitions writes one document, keyed by its
nonce (:mod:`streamer.runtime.processes`), with an expiry on the *server's* clock
(``$$NOW`` plus the lease TTL), renewed every third of the TTL like a lease. The live
members are those not yet expired; a clean stop deletes its document, so the others
rebalance at their next look instead of one TTL later. A killed process simply stops
renewing and drops out after one TTL, when its leases expire too.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog

from ..core.checkpoint import FORMAT
from ..core.errors import DatabaseError, FatalDatabaseError
from ..mongo import Mongo
from .leases import renew_every_s
from .lifecycle import every_until_stopped
from .processes import THIS_PROCESS, ProcessId

log = structlog.get_logger("streamer.membership")

COLLECTION = "streamer_members"

LIVE = {"$expr": {"$gt": ["$expires_at", "$$NOW"]}}


@dataclass(frozen=True, slots=True)
class Member:
    nonce: str
    instance: str


class Membership:
    def __init__(
        self, mongo: Mongo, instance: str, ttl_s: float, *, process: ProcessId = THIS_PROCESS
    ) -> None:
        self.mongo = mongo
        self.instance = instance
        self.nonce = process.nonce
        self.ttl_s = ttl_s

    async def beat(self) -> None:
        await self.mongo.update_one(
            COLLECTION,
            {"_id": self.nonce},
            [
                {
                    "$set": {
                        "instance": self.instance,
                        "format": FORMAT,
                        "expires_at": {"$add": ["$$NOW", int(self.ttl_s * 1000)]},
                        "renewed_at": "$$NOW",
                    }
                }
            ],
            upsert=True,
        )

    async def live(self) -> list[Member]:
        docs = await self.mongo.find(COLLECTION, LIVE, sort=[("_id", 1)])
        return [Member(str(d["_id"]), str(d.get("instance", ""))) for d in docs]

    async def leave(self) -> None:
        await self.mongo.delete_many(COLLECTION, {"_id": self.nonce})

    async def run(self, stopping: asyncio.Event) -> None:
        """Heartbeat until ``stopping``, then leave. An outage is ridden out (the
        partitions' leases decide what happens meanwhile); a refusal is raised."""
        try:
            await every_until_stopped(
                stopping, renew_every_s(self.ttl_s), self.beat, _heartbeat_failed
            )
        finally:
            if stopping.is_set():
                try:
                    await self.leave()
                except FatalDatabaseError:
                    raise  # refused: one error line, as any refusal
                except DatabaseError as exc:
                    # The heartbeat expires by itself within one TTL.
                    log.info("member.leave_failed", error=f"{type(exc).__name__}: {exc}")


def _heartbeat_failed(exc: DatabaseError) -> None:
    log.warning("member.heartbeat_failed", error=f"{type(exc).__name__}: {exc}")
