"""Server-side cursors: what find, aggregate and change streams hand back in batches."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import bson

from .errors import MongoError

if TYPE_CHECKING:
    from .changestreams import ChangeStream

DEFAULT_FIRST_BATCH = 101  # mongod's default first batch for find and aggregate
MAX_BATCH_BYTES = 16 * 1024 * 1024 - 16 * 1024  # leave room for the reply envelope


@dataclass(slots=True)
class Cursor:
    id: int
    ns: str
    docs: Iterator[dict[str, Any]] | None = None
    transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    stream: ChangeStream | None = None
    remaining: int | None = None  # limit left to return, None for no limit
    lsid_key: Any = None
    max_time_ms: int | None = None  # the find's maxTimeMS, which bounds its getMores too
    pending: list[dict[str, Any]] = field(default_factory=list)
    # Why the cursor is gone though still registered (a rollback, ``invalidate_all``):
    # its next getMore fails with it, as mongod's plan executor fails on restore.
    invalidated: str | None = None
    waiting: bool = False  # a change stream's getMore awaits events on it (tests watch)


def take_batch(cursor: Cursor, batch_size: int | None) -> tuple[list[dict[str, Any]], bool]:
    """Up to ``batch_size`` documents (or 16 MB); and whether the cursor is exhausted.

    As mongod, a batch that fills up leaves the cursor open even if nothing follows (it does
    not look ahead): only running out of documents, or the limit, closes it."""
    assert cursor.docs is not None
    out: list[dict[str, Any]] = []
    size = 0
    ran_out = False
    limit = batch_size if batch_size else None
    if cursor.remaining is not None:
        limit = cursor.remaining if limit is None else min(limit, cursor.remaining)
    while limit is None or len(out) < limit:
        if cursor.pending:
            doc = cursor.pending.pop()
        else:
            nxt = next(cursor.docs, None)
            if nxt is None:
                ran_out = True
                break
            doc = cursor.transform(nxt) if cursor.transform else nxt
        if batch_size is None:
            size += len(bson.encode(doc))
            if size > MAX_BATCH_BYTES and out:
                cursor.pending.append(doc)
                break
        out.append(doc)
    if cursor.remaining is not None:
        cursor.remaining -= len(out)
    return out, ran_out or cursor.remaining == 0


class CursorManager:
    def __init__(self) -> None:
        self._cursors: dict[int, Cursor] = {}

    def new_id(self) -> int:
        while True:
            cid = random.getrandbits(62) + 1
            if cid not in self._cursors:
                return cid

    def register(self, cursor: Cursor) -> int:
        self._cursors[cursor.id] = cursor
        return cursor.id

    def get(self, cursor_id: int) -> Cursor:
        cursor = self._cursors.get(cursor_id)
        if cursor is None:
            raise MongoError(43, f"cursor id {cursor_id} not found")
        if cursor.invalidated is not None:
            del self._cursors[cursor_id]
            raise MongoError(175, cursor.invalidated)  # QueryPlanKilled
        return cursor

    def kill(self, cursor_id: int) -> bool:
        return self._cursors.pop(cursor_id, None) is not None

    def kill_for_ns(self, ns: str) -> None:
        for cid in [c.id for c in self._cursors.values() if c.ns == ns and c.stream is None]:
            del self._cursors[cid]

    def invalidate_all(self, why: str) -> None:
        """Each open cursor fails its next getMore with QueryPlanKilled ``why``; a change
        stream's getMore waiting now ends (its caller sees ``invalidated``, the wait's
        owner wakes it)."""
        for cursor in self._cursors.values():
            cursor.invalidated = why
            if cursor.stream is not None:
                cursor.stream.closed = True

    def close_all(self) -> None:
        self._cursors.clear()

    def __len__(self) -> int:
        return len(self._cursors)
