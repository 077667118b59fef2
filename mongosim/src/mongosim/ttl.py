"""The TTL monitor: deletes expired documents every ``ttl_monitor_interval`` seconds.

As on mongod (src/mongo/db/ttl.cpp), a document expires when the indexed field holds a
date (or an array with dates: the earliest counts) older than now minus
expireAfterSeconds; its deletion is an ordinary delete in the oplog, so change streams
see it.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
from collections.abc import Hashable, Iterator
from typing import Any, Protocol

from bson.datetime_ms import DatetimeMS

from .bsonutil import canonical, datetime_ms, get_path
from .operation import CommandContext, Op
from .oplog import OpKind
from .sessions import SessionCatalog
from .storage import Collection


class TtlHost(Protocol):
    """What the TTL monitor needs of the engine: collections, locks and the write path."""

    @property
    def ttl_monitor_interval(self) -> float: ...

    @property
    def writable(self) -> bool: ...

    @property
    def sessions(self) -> SessionCatalog: ...

    def iter_collections(self) -> Iterator[Collection]: ...

    def write(
        self,
        coll: Collection,
        op_kind: OpKind,
        idk: Hashable,
        doc: dict[str, Any] | None,
        pre: dict[str, Any] | None,
        op: Op,
        update_description: dict[str, Any] | None = None,
    ) -> None: ...


def _expiry_ms(value: Any) -> int | None:
    if isinstance(value, _dt.datetime | DatetimeMS):
        return datetime_ms(value)
    if isinstance(value, list):
        dates = [datetime_ms(v) for v in value if isinstance(v, _dt.datetime | DatetimeMS)]
        return min(dates) if dates else None
    return None


def delete_expired(engine: TtlHost) -> int:
    now_ms = datetime_ms(_dt.datetime.now(_dt.UTC))
    op = Op(CommandContext(0, "TTLMonitor"))
    deleted = 0
    for coll in engine.iter_collections():
        for index in list(coll.indexes.values()):
            if index.expire_after is None or not index.fields:
                continue
            cutoff = now_ms - int(index.expire_after * 1000)
            field = index.fields[0]
            for doc in list(coll.docs.values()):
                expiry = _expiry_ms(get_path(doc, field))
                if expiry is None or expiry > cutoff:
                    continue
                idk = canonical(doc["_id"])
                if engine.sessions.locked_by_other((coll.ns, idk), None) is None:
                    engine.write(coll, "d", idk, None, doc, op)
                    deleted += 1
    return deleted


async def ttl_monitor(engine: TtlHost) -> None:
    while True:
        await asyncio.sleep(engine.ttl_monitor_interval)
        if engine.writable:  # a secondary's expired documents go by its primary's deletes
            delete_expired(engine)
