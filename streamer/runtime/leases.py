"""Stream leases in ``streamer_leases``: one process processes a stream (or one partition
of a split stream: everything here holds per partition, keyed ``orders#2/8``), others
stand by.

A lease is a document per stream naming its owner and an expiry on the *server's*
clock (``$$NOW`` in an update pipeline), so pods with skewed clocks still agree on who
holds it. Acquiring is one upsert on ``_id`` alone, whose update pipeline takes the
lease only when it is free and otherwise leaves the document as it is; the reply (the
document after the update) names the holder. So a standby's poll is an ordinary,
successful command: no duplicate-key error as control flow, and nothing for the command
monitor to count as a failure. The owner renews every third of the TTL; if a renewal
finds the lease gone it stops processing. Leases only decide who does the work; the
checkpoint compare-and-set is what keeps two owners, for a moment, from double counting.

A lease is held by an instance id (``owner``: the pod's name, stable across restarts)
*and* a process (``nonce``: random, drawn once per process). The id alone cannot tell
two processes apart: two on one host share the default id (the host name), and an
operator can give two the same ``STREAMER_INSTANCE_ID``. A lease is free when

- it is ours: this id and this process (we re-take it);
- it was released (``released: true``; a clean stop hands it over at once, in the same
  millisecond too: no clock comparison is involved);
- it expired (``expires_at`` before ``$$NOW``): its holder died or lost the database;
- it is held under this id by another process that is gone: it ran on this machine,
  in this PID namespace, and its pid and start time no longer match a live process
  (``process``, see :mod:`streamer.runtime.processes`): a process restarted beside its
  predecessor takes its streams back at once;
- it is held under this id by another process and has gone unrenewed for half the TTL,
  a renewal interval and a half (``renewed_at``): the id's previous process died, which
  is what a restarted pod finds. It takes its streams back in about half the TTL instead
  of the whole TTL; a live process of the same id renews every third of the TTL, so it
  is never deposed by a merely late renewal.

``handover`` records how the current term began (new, kept, released, expired, gone,
unrenewed), so the new owner can say so in its log.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from structlog.typing import FilteringBoundLogger

from ..core.checkpoint import FORMAT
from ..core.errors import DatabaseError, DuplicateKey, FatalDatabaseError
from ..mongo import Mongo
from .processes import THIS_PROCESS, ProcessId

COLLECTION = "streamer_leases"

Handover = Literal["new", "kept", "released", "expired", "gone", "unrenewed"]


def renew_every_s(ttl_s: float) -> float:
    """How often an owner renews its lease (and a standby of another id polls)."""
    return ttl_s / 3


def unrenewed_after_s(ttl_s: float) -> float:
    """How long a lease under our id but another process must go unrenewed before we
    take it: a renewal interval and a half, so a late renewal never loses it."""
    return ttl_s / 2


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease this process holds."""

    stream: str
    owner: str
    previous_owner: str | None  # who held it before this acquisition, if another id
    expires_at: dt.datetime
    handover: Handover = "kept"
    previous_nonce: str | None = None  # the process that held it before, if another


@dataclass(frozen=True, slots=True)
class Held:
    """A lease another process holds: another instance, or another process of ours."""

    stream: str
    owner: str
    nonce: str | None
    same_id: bool
    process: dict[str, Any] | None = None  # where it runs (streamer.runtime.processes)


def is_live(doc: Mapping[str, Any] | None, now: dt.datetime) -> bool:
    """Whether a lease document names a live holder at ``now`` (the server's clock).

    The one rule for readers (``holder``, ``streamer status``): held until it expires or
    is released, whichever comes first.
    """
    if doc is None or doc.get("released") is True or not doc.get("owner"):
        return False
    expires = doc.get("expires_at")
    if not isinstance(expires, dt.datetime):
        return False
    if expires.tzinfo is None:  # a driver without tz_aware dates: BSON dates are UTC
        expires = expires.replace(tzinfo=dt.UTC)
    return expires > now


LIVE_EXPR: dict[str, Any] = {
    "$and": [
        {"$gt": ["$expires_at", "$$NOW"]},
        {"$ne": [{"$ifNull": ["$released", False]}, True]},
    ]
}
"""``is_live`` as an aggregation expression, judged on the server's clock."""


class Leases:
    def __init__(
        self, mongo: Mongo, owner: str, ttl_s: float, *, process: ProcessId = THIS_PROCESS
    ) -> None:
        self.mongo = mongo
        self.owner = owner
        self.process = process
        self.nonce = process.nonce
        self.ttl_ms = int(ttl_s * 1000)
        self.unrenewed_ms = int(unrenewed_after_s(ttl_s) * 1000)

    def _ours(self) -> dict[str, Any]:
        return {"$and": [{"$eq": ["$owner", self.owner]}, {"$eq": ["$nonce", self.nonce]}]}

    def _taken(self) -> dict[str, Any]:
        """The fields of a lease this process (re)takes, as update expressions."""
        ours = self._ours()
        return {
            "previous_owner": {"$cond": [ours, "$previous_owner", "$owner"]},
            "previous_nonce": {"$cond": [ours, "$previous_nonce", "$nonce"]},
            "owner": self.owner,
            "nonce": self.nonce,
            "process": {"$literal": self.process.document()},
            "released": False,
            "format": FORMAT,
            "expires_at": {"$add": ["$$NOW", self.ttl_ms]},
            "renewed_at": "$$NOW",
        }

    def _handover(self, gone: str | None) -> dict[str, Any]:
        """How a free lease comes to us; evaluated only when it is free."""
        return {
            "$switch": {
                "branches": [
                    {"case": self._ours(), "then": "kept"},
                    {"case": {"$eq": ["$released", True]}, "then": "released"},
                    {"case": {"$eq": [{"$ifNull": ["$owner", None]}, None]}, "then": "new"},
                    {
                        "case": {"$lt": [{"$ifNull": ["$expires_at", None]}, "$$NOW"]},
                        "then": "expired",
                    },
                    {"case": self._held_by(gone), "then": "gone"},
                ],
                "default": "unrenewed",
            }
        }

    def _held_by(self, nonce: str | None) -> dict[str, Any]:
        """Held under our id by process ``nonce`` (never true for None)."""
        if nonce is None:
            return {"$literal": False}
        return {"$and": [{"$eq": ["$owner", self.owner]}, {"$eq": ["$nonce", nonce]}]}

    def _take_if_free(self, gone: str | None = None) -> list[dict[str, Any]]:
        """Each field becomes its taken value if the lease is free, else stays as it is.

        Only one holder, ever: the server applies an update to one document atomically,
        evaluating ``free`` against the document as it is at that moment, so of two
        processes polling together the second sees the first's fresh lease and keeps
        it. A missing document (the first poll) is upserted from ``{_id}`` and is free.
        All fields are computed in one ``$set`` stage, so each sees the old document.
        A lease that is not free is left exactly as it was: a standby's poll writes
        nothing.
        """
        unrenewed = {
            "$and": [
                {"$eq": ["$owner", self.owner]},
                {
                    "$lt": [
                        {"$add": [{"$ifNull": ["$renewed_at", None]}, self.unrenewed_ms]},
                        "$$NOW",
                    ]
                },
            ]
        }
        free = {
            "$or": [
                self._ours(),
                {"$eq": ["$released", True]},
                {"$lt": [{"$ifNull": ["$expires_at", None]}, "$$NOW"]},
                unrenewed,
                self._held_by(gone),
            ]
        }
        taken = {**self._taken(), "handover": self._handover(gone)}
        return [
            {
                "$set": {
                    field: {"$cond": [free, value, f"${field}"]} for field, value in taken.items()
                }
            }
        ]

    async def acquire(self, stream: str, *, gone: str | None = None) -> Lease | Held | None:
        """Take or keep the lease if it is free (see the module); else who holds it.

        ``gone``: the nonce of a process of our id known to be gone (see
        :func:`streamer.runtime.processes.gone`), whose lease is taken at once. None only when
        two processes upsert the very first lease document at once.
        """
        try:
            doc = await self.mongo.find_one_and_update(
                COLLECTION, {"_id": stream}, self._take_if_free(gone), upsert=True
            )
        except DuplicateKey:
            # The other one inserted it (a server retries such an upsert itself; this is
            # for one that does not). Never on an ordinary poll.
            return None
        if doc is None:
            return None
        if doc.get("owner") != self.owner or doc.get("nonce") != self.nonce:
            holder = str(doc.get("owner"))
            nonce = doc.get("nonce")
            process = doc.get("process")
            return Held(
                stream,
                holder,
                str(nonce) if nonce else None,
                holder == self.owner,
                dict(process) if isinstance(process, dict) else None,
            )
        return self._lease(doc)

    async def renew(self, stream: str) -> Lease | None:
        """Extend our lease; None if it is no longer ours (this id *and* this process)."""
        doc = await self.mongo.find_one_and_update(
            COLLECTION,
            {"_id": stream, "owner": self.owner, "nonce": self.nonce, "released": {"$ne": True}},
            [{"$set": self._taken()}],
        )
        return self._lease(doc) if doc is not None else None

    async def release(self, stream: str) -> None:
        """Hand our lease over now: free at once for any standby, and no longer live."""
        await self.mongo.update_one(
            COLLECTION,
            {"_id": stream, "owner": self.owner, "nonce": self.nonce},
            [{"$set": {"released": True, "expires_at": "$$NOW"}}],
        )

    async def holder(self, stream: str) -> str | None:
        """Who holds a live lease on ``stream`` (by the server's clock); None if nobody."""
        doc = await self.mongo.find_one(COLLECTION, {"_id": stream, "$expr": LIVE_EXPR})
        return str(doc["owner"]) if doc is not None else None

    def _lease(self, doc: dict[str, Any] | None) -> Lease | None:
        if doc is None:
            return None
        previous = doc.get("previous_owner")
        previous_nonce = doc.get("previous_nonce")
        handover = doc.get("handover")
        return Lease(
            stream=doc["_id"],
            owner=doc["owner"],
            previous_owner=previous if previous and previous != self.owner else None,
            expires_at=doc["expires_at"],
            handover=handover if handover in _HANDOVERS else "kept",
            previous_nonce=str(previous_nonce) if previous_nonce else None,
        )


_HANDOVERS = frozenset({"new", "kept", "released", "expired", "gone", "unrenewed"})


class Renewing(Protocol):
    """What :func:`renew_until_lost` needs of :class:`Leases`."""

    async def renew(self, stream: str) -> Lease | None: ...


async def renew_until_lost(
    leases: Renewing,
    stream: str,
    ttl_s: float,
    log: FilteringBoundLogger,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Renew ``stream``'s lease every third of its TTL for as long as it is ours.

    Returns when a renewal finds it no longer ours, or when renewals have failed for
    so long that it is about to expire: the holder must stop working then. An outage
    shorter than that is ridden out. A refusal (FatalDatabaseError: a privilege revoked)
    or a bug is raised at once: waiting would only keep working past the lease. The
    owner's term (streamer.runtime.ownership) and ``streamer resync`` both renew through this.
    """
    deadline = time.monotonic() + ttl_s
    while True:
        await sleep(renew_every_s(ttl_s))
        try:
            lease = await leases.renew(stream)
        except FatalDatabaseError:
            raise  # its caller reports it, in the one line that says why it stops
        except DatabaseError as exc:
            if time.monotonic() < deadline - ttl_s / 6:
                log.warning("lease.renew_failed", error=f"{type(exc).__name__}: {exc}")
                continue
            log.error("lease.expiring_unrenewed")
            return
        if lease is None:
            log.warning("lease.lost")
            return
        deadline = time.monotonic() + ttl_s
