"""The replica set's oplog: a bounded, ordered log of committed writes.

Each *slot* is one oplog timestamp, as on mongod: a single write, a command, a no-op, or a
whole transaction (mongod's ``applyOps`` entry), whose operations share the slot's
timestamp and are told apart by ``txn_index``.  Change streams read slots after a
position ``(ts, txn_index)``; the oldest slot is dropped once the oplog holds more than
``max_slots``, which is how history is lost (ChangeStreamHistoryLost, 286).
"""

from __future__ import annotations

import asyncio
import bisect
import datetime as _dt
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from bson.timestamp import Timestamp

OpKind = Literal["i", "u", "r", "d", "c", "n"]


@dataclass(slots=True)
class OplogEntry:
    """One committed operation.

    op: "i" insert, "u" update (with ``update_description``), "r" replace, "d" delete,
    "c" command (``cmd``: drop, renameCollection, dropDatabase, create, createIndexes,
    dropIndexes, collMod), "n" no-op (periodic, keeps cluster time moving).
    """

    op: OpKind
    ns: str  # "db.coll"; for dropDatabase "db.$cmd"
    ts: Timestamp = field(default_factory=lambda: Timestamp(0, 0))
    wall: _dt.datetime = field(default_factory=lambda: _dt.datetime.now(_dt.UTC))
    key: dict[str, Any] | None = None  # documentKey: {"_id": ...}
    doc: dict[str, Any] | None = None  # post-image for i/u/r
    # u/r/d: the pre-image (always kept internally). c: the state the command changed,
    # for a rollback (mongod's o2): collMod's old options, a dropped index's place.
    pre: dict[str, Any] | None = None
    pre_images: bool = False  # collection had changeStreamPreAndPostImages at write time
    update_description: dict[str, Any] | None = None  # for "u"
    cmd: dict[str, Any] | None = None  # for "c"
    collection_uuid: uuid.UUID | None = None
    lsid: dict[str, Any] | None = None
    txn_number: int | None = None
    txn_index: int = 0  # position inside a transaction's applyOps
    in_txn: bool = False
    # What change streams' pushed documentKey predicates read: documentKey, and the
    # values of their computed operands (a hashed key), each computed once per entry
    # for every stream (change_pushdown); never persisted.
    pushdown_doc: dict[str, Any] | None = None

    @property
    def db(self) -> str:
        return self.ns.split(".", 1)[0]

    @property
    def coll(self) -> str:
        return self.ns.split(".", 1)[1] if "." in self.ns else ""


@dataclass(slots=True)
class OplogSlot:
    ts: Timestamp
    entries: list[OplogEntry]
    term: int = 1  # the election term of the primary that wrote it (the optime's ``t``)


class Progress:
    """News, observable: ``notify()`` wakes every waiter at once (an oplog's appends; a
    replica set's replication, ``replset.ReplicaSet.progress``)."""

    def __init__(self) -> None:
        self._news = asyncio.Event()

    def notify(self) -> None:
        self._news.set()
        self._news = asyncio.Event()

    async def wait_for_news(self, seconds: float | None) -> bool:
        """Until the next notify(), at most ``seconds`` (None: no limit). True if it came."""
        event = self._news
        try:
            await asyncio.wait_for(event.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def wait_until(self, check: Callable[[], bool], timeout_s: float | None) -> bool:
        """Until ``check()`` holds, re-checked at each notify(); False when ``timeout_s``
        (None: no limit) passes first."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        while not check():
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return False
            await self.wait_for_news(remaining)
        return True


class Oplog:
    """Bounded oplog with a monotonically increasing cluster clock and waiters for news."""

    def __init__(self, max_slots: int = 100_000) -> None:
        self.max_slots = max_slots
        self._slots: list[OplogSlot] = []
        self._keys: list[tuple[int, int]] = []  # (time, inc) per slot, for bisect
        self._start = 0  # slots before this index have been dropped (compacted lazily)
        self._last = Timestamp(0, 0)
        self._news = Progress()  # an append or a reset
        self.history_start = Timestamp(0, 0)  # earliest ts whose history is still complete
        # The term new slots are written in: 1 for a one-member set; a replica set's
        # election sets its new primary's (replset.py). A replicated slot keeps its own.
        self.term = 1

    # -- clock ---------------------------------------------------------------
    def next_ts(self) -> Timestamp:
        """A fresh cluster time, strictly greater than every earlier one."""
        now = int(time.time())
        last = self._last
        ts = Timestamp(now, 1) if now > last.time else Timestamp(last.time, last.inc + 1)
        self._last = ts
        return ts

    @property
    def last_ts(self) -> Timestamp:
        return self._last

    def advance_clock_to(self, ts: Timestamp) -> None:
        """Used on recovery: never hand out a time at or below one already used."""
        if (ts.time, ts.inc) > (self._last.time, self._last.inc):
            self._last = ts

    # -- log -----------------------------------------------------------------
    def append(self, ts: Timestamp, entries: list[OplogEntry], term: int | None = None) -> None:
        """Append one slot (entries already carry ``ts``) and wake every waiter; ``term``
        is the writer's (a replicated or recovered slot's), else this oplog's own."""
        self._slots.append(OplogSlot(ts, entries, self.term if term is None else term))
        self._keys.append((ts.time, ts.inc))
        self.advance_clock_to(ts)
        live = len(self._slots) - self._start
        if live > self.max_slots:
            self._start += live - self.max_slots
            self.history_start = self._slots[self._start].ts
            if self._start > 4096 and self._start > len(self._slots) // 2:
                del self._slots[: self._start]
                del self._keys[: self._start]
                self._start = 0
        self._news.notify()

    def truncate_after(self, ts: Timestamp) -> None:
        """Drop every slot after ``ts`` (a rollback's undone slots). The clock keeps its
        place: a time once handed out is never handed out again."""
        i = max(bisect.bisect_right(self._keys, (ts.time, ts.inc)), self._start)
        del self._slots[i:]
        del self._keys[i:]

    def reset(self, slots: list[OplogSlot], history_start: Timestamp) -> None:
        """Hold exactly ``slots`` (an initial sync's copy of its source's oplog, whose
        history starts at ``history_start``), and wake every waiter. The clock keeps its
        place: a time once handed out is never handed out again."""
        self._slots, self._keys, self._start = [], [], 0
        for slot in slots:
            self._slots.append(slot)
            self._keys.append((slot.ts.time, slot.ts.inc))
            self.advance_clock_to(slot.ts)
        self.history_start = history_start
        self._news.notify()

    def __len__(self) -> int:
        return len(self._slots) - self._start

    @property
    def oldest(self) -> OplogSlot | None:
        return self._slots[self._start] if len(self) else None

    @property
    def newest(self) -> OplogSlot | None:
        return self._slots[-1] if len(self) else None

    def slots(self) -> Iterator[OplogSlot]:
        for i in range(self._start, len(self._slots)):
            yield self._slots[i]

    def slots_reversed(self) -> Iterator[OplogSlot]:
        for i in range(len(self._slots) - 1, self._start - 1, -1):
            yield self._slots[i]

    def slots_after(self, ts: Timestamp, *, inclusive: bool = False) -> Iterator[OplogSlot]:
        """Slots with a timestamp after ``ts`` (or at it, when inclusive), oldest first."""
        key = (ts.time, ts.inc)
        finder = bisect.bisect_left if inclusive else bisect.bisect_right
        i = max(finder(self._keys, key), self._start)
        while i < len(self._slots):
            yield self._slots[i]
            i += 1

    def keyed_slots_after(
        self, ts: Timestamp, *, inclusive: bool = False
    ) -> Iterator[tuple[tuple[int, int], OplogSlot]]:
        """``slots_after`` with each slot's (time, inc), read from the index rather than
        from its Timestamp's properties (a change stream's scan compares every one)."""
        key = (ts.time, ts.inc)
        finder = bisect.bisect_left if inclusive else bisect.bisect_right
        i = max(finder(self._keys, key), self._start)
        while i < len(self._slots):
            yield self._keys[i], self._slots[i]
            i += 1

    def history_lost_before(self, ts: Timestamp) -> bool:
        """True when entries after ``ts`` may already have been dropped."""
        # mongod refuses to resume unless the resume point is still in the oplog.
        if self.history_start == Timestamp(0, 0):
            return False
        return (ts.time, ts.inc) < (self.history_start.time, self.history_start.inc)

    async def wait_for_news(self, seconds: float) -> bool:
        """Wait until something is appended, at most ``seconds``. True if it was."""
        return await self._news.wait_for_news(seconds)
