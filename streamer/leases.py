"""Stream leases in ``streamer_leases``: one instance processes a stream, others stand by.

A lease is a document per stream naming its owner and an expiry on the *server's*
clock (``$$NOW`` in an update pipeline), so pods with skewed clocks still agree on who
holds it. Acquiring is one upsert on ``_id`` alone, whose update pipeline takes the
lease only when it is free, expired or already ours, and otherwise leaves the document
as it is; the reply (the document after the update) names the holder. So a standby's
poll is an ordinary, successful command: no duplicate-key error as control flow, and
nothing for the command monitor to count as a failure. The owner renews well inside
the TTL; if a renewal finds the lease gone it stops processing. Leases only decide who
does the work; the checkpoint compare-and-set is what keeps two owners, for a moment,
from double counting.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from .errors import DuplicateKey
from .mongo import Mongo

COLLECTION = "streamer_leases"


@dataclass(frozen=True, slots=True)
class Lease:
    stream: str
    owner: str
    previous_owner: str | None  # who held it before this acquisition, if someone else
    expires_at: dt.datetime


class Leases:
    def __init__(self, mongo: Mongo, owner: str, ttl_s: float) -> None:
        self.mongo = mongo
        self.owner = owner
        self.ttl_ms = int(ttl_s * 1000)

    def _extend(self) -> list[dict[str, Any]]:
        return [{"$set": self._taken()}]

    def _taken(self) -> dict[str, Any]:
        """The fields of a lease this instance (re)takes, as update expressions."""
        return {
            "previous_owner": {
                "$cond": [{"$eq": ["$owner", self.owner]}, "$previous_owner", "$owner"]
            },
            "owner": self.owner,
            "expires_at": {"$add": ["$$NOW", self.ttl_ms]},
            "renewed_at": "$$NOW",
        }

    def _take_if_free(self) -> list[dict[str, Any]]:
        """Each field becomes its taken value if the lease is free, else stays as it is.

        Only one holder, ever: the server applies an update to one document atomically,
        evaluating ``free`` against the document as it is at that moment, so of two
        instances polling together the second sees the first's fresh lease and keeps
        it. A missing document (the first poll) is upserted from ``{_id}`` and is free.
        All fields are computed in one ``$set`` stage, so each sees the old document.
        """
        free = {
            "$or": [
                {"$eq": ["$owner", self.owner]},
                {"$lt": [{"$ifNull": ["$expires_at", None]}, "$$NOW"]},
            ]
        }
        return [
            {
                "$set": {
                    field: {"$cond": [free, taken, f"${field}"]}
                    for field, taken in self._taken().items()
                }
            }
        ]

    async def acquire(self, stream: str) -> Lease | None:
        """Take or keep the lease if it is free, expired or ours; None if another holds it."""
        try:
            doc = await self.mongo.find_one_and_update(
                COLLECTION, {"_id": stream}, self._take_if_free(), upsert=True
            )
        except DuplicateKey:
            # Two instances upserting the very first lease document at once: the other
            # one inserted it (a server retries such an upsert itself; this is for one
            # that does not). Never on an ordinary poll.
            return None
        if doc is None or doc.get("owner") != self.owner:
            return None
        return self._lease(doc)

    async def renew(self, stream: str) -> Lease | None:
        """Extend our lease; None if it is no longer ours."""
        doc = await self.mongo.find_one_and_update(
            COLLECTION, {"_id": stream, "owner": self.owner}, self._extend()
        )
        return self._lease(doc) if doc is not None else None

    async def release(self, stream: str) -> None:
        """Expire our lease now, so a standby takes over without waiting out the TTL."""
        await self.mongo.update_one(
            COLLECTION,
            {"_id": stream, "owner": self.owner},
            [{"$set": {"expires_at": "$$NOW"}}],
        )

    async def holder(self, stream: str) -> str | None:
        """Who holds a live lease on ``stream`` (by the server's clock); None if nobody."""
        doc = await self.mongo.find_one(
            COLLECTION, {"_id": stream, "$expr": {"$gt": ["$expires_at", "$$NOW"]}}
        )
        return str(doc["owner"]) if doc is not None else None

    def _lease(self, doc: dict[str, Any] | None) -> Lease | None:
        if doc is None:
            return None
        previous = doc.get("previous_owner")
        return Lease(
            stream=doc["_id"],
            owner=doc["owner"],
            previous_owner=previous if previous and previous != self.owner else None,
            expires_at=doc["expires_at"],
        )
