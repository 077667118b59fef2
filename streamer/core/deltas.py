"""Deferred totals: one writer per user's totals in a split stream.

A user's orders fall into every partition of a split orders stream, so every partition
would write the user's ``user_totals`` document, and two partitions touching one user
at once conflict (WriteConflict 112): one of them reruns its whole batch. With a user
in most batches (a hot user, or any user in a backlog's 2,000-event batches) that is
most batches. So each user's totals are written by one partition only, the one
:func:`streamer.core.partitions.owner_of` names. Any other partition that moves the
user's totals *defers* its share: in the same transaction as its batch (its mirror
entries and its checkpoint) it inserts a :class:`Delta`, the net effect of the batch on
that user. The owner *folds* the deltas addressed to it into the totals, and deletes
them, in one of its own transactions, fenced by its checkpoint's compare-and-set like
any batch. Inserts of new documents never conflict, so no two partitions' transactions
write one document.

Exact at every snapshot: totals plus the pending deltas equal the sum over each
partition's applied orders (what ``streamer verify`` folds in before it compares), and
a delta is folded exactly once (deleted in the fold's transaction).

Folding needs no order. Counts and sums commute. ``last_order_at``, the latest
``created_at`` of the user's completed orders, is kept as the batch path keeps it: an
added order can only raise it; a removed order at or after it means reading it again
from the mirror, which holds every partition's orders as they are committed, so it
already reflects any delta still pending. Whoever folds a delta, the result is exact;
the owner is only what keeps conflicts away (a partition on an older setting that still
writes other users' totals meets the version bump's conflicts, as before).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .keys import bson_key
from .totals import COMPLETED, DECIMAL128, Contribution, Sums, Totals, sums_fields
from .values import Decimal128, Timestamp

Move = tuple[Contribution | None, Contribution | None]


@dataclass(slots=True)
class Delta(Sums):
    """The net effect of some orders' changes on one user's totals."""

    # The latest created_at among the completed orders added, and among those removed.
    added_last: dt.datetime | None = None
    removed_last: dt.datetime | None = None

    def add(self, c: Contribution) -> None:
        self._status(c.status, 1)
        if c.status == COMPLETED:
            self.total = DECIMAL128.add(self.total, c.amount)
            self.count += 1
            self.added_last = _later(self.added_last, c.created_at)

    def remove(self, c: Contribution) -> None:
        self._status(c.status, -1)
        if c.status == COMPLETED:
            self.total = DECIMAL128.subtract(self.total, c.amount)
            self.count -= 1
            self.removed_last = _later(self.removed_last, c.created_at)

    def _status(self, status: str, n: int) -> None:
        left = self.by_status.get(status, 0) + n
        if left:
            self.by_status[status] = left
        else:
            self.by_status.pop(status, None)

    @property
    def none(self) -> bool:
        """Moves that cancel out (an order added and removed in one batch)."""
        return not self.by_status and self.added_last is None and self.removed_last is None


def _later(a: dt.datetime | None, b: dt.datetime | None) -> dt.datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def per_user(moves: Iterable[Move]) -> dict[Hashable, list[Move]]:
    """``moves`` split by the user each side belongs to (keyed by ``bson_key``), in
    order. A move from one user to another (an order's ``user_id`` changed) becomes a
    removal from the first and an addition to the second, as ``apply_moves`` treats it."""
    out: dict[Hashable, list[Move]] = {}
    for old, new in moves:
        if old is not None and new is not None and old.user == new.user:
            out.setdefault(old.user, []).append((old, new))
            continue
        if old is not None:
            out.setdefault(old.user, []).append((old, None))
        if new is not None:
            out.setdefault(new.user, []).append((None, new))
    return out


def delta_of(user_id: Any, moves: Sequence[Move]) -> Delta:
    """The net effect of one user's ``moves``."""
    delta = Delta(user_id)
    for old, new in moves:
        if old is not None:
            delta.remove(old)
        if new is not None:
            delta.add(new)
    return delta


def fold(totals: Totals, delta: Delta) -> bool:
    """Fold ``delta`` into ``totals``; True when last_order_at must be read again from
    the orders (an order removed at or after it), as :meth:`Totals.remove` says."""
    recompute = delta.removed_last is not None and (
        totals.last_order_at is None or delta.removed_last >= totals.last_order_at
    )
    totals.total = DECIMAL128.add(totals.total, delta.total)
    totals.count += delta.count
    for status, n in delta.by_status.items():
        left = totals.by_status.get(status, 0) + n
        if left:
            totals.by_status[status] = left
        else:
            totals.by_status.pop(status, None)
    if delta.added_last is not None and (
        totals.last_order_at is None or delta.added_last > totals.last_order_at
    ):
        totals.last_order_at = delta.added_last
    return recompute


def fold_all(totals: dict[Hashable, Totals], deltas: Iterable[Delta]) -> set[Hashable]:
    """Fold ``deltas`` into ``totals`` (keyed by ``bson_key(user_id)``, extended as
    needed); the users whose last_order_at must be read again."""
    recompute: set[Hashable] = set()
    for delta in deltas:
        key = bson_key(delta.user_id)
        if fold(totals.setdefault(key, Totals(delta.user_id)), delta):
            recompute.add(key)
    return recompute


def delta_document(delta: Delta, *, stream: str, to: int, by: int, at: Timestamp) -> dict[str, Any]:
    """The stored delta: for partition ``to`` of ``stream``, deferred by partition ``by``
    in the batch whose last event is at cluster time ``at`` (``by`` and ``at`` are for
    people and tests asking how far folding has come; folding needs only ``to``)."""
    return {
        "s": stream,
        "to": to,
        "by": by,
        "at": at,
        "u": delta.user_id,
        "total": Decimal128(DECIMAL128.plus(delta.total)),
        "count": delta.count,
        "by_status": dict(sorted(delta.by_status.items())),
        "added_last": delta.added_last,
        "removed_last": delta.removed_last,
    }


def delta_from_document(doc: Mapping[str, Any]) -> Delta:
    return Delta(
        **sums_fields(doc, "u"),
        added_last=doc.get("added_last"),
        removed_last=doc.get("removed_last"),
    )
