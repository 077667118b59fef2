"""The TTL monitor: deletes expired documents every ``ttl_monitor_interval`` seconds.

As on mongod (src/mongo/db/ttl.cpp), a document expires when the indexed field holds a
date (or an array with dates: the earliest counts) older than now minus
expireAfterSeconds; its deletion is an ordinary delete in the oplog, so change streams
see it.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
from typing import TYPE_CHECKING, Any

from bson.datetime_ms import DatetimeMS

from .bsonutil import canonical, datetime_ms, get_path

if TYPE_CHECKING:
    from .engine import Engine


def _expiry_ms(value: Any) -> int | None:
    if isinstance(value, _dt.datetime | DatetimeMS):
        return datetime_ms(value)
    if isinstance(value, list):
        dates = [datetime_ms(v) for v in value if isinstance(v, _dt.datetime | DatetimeMS)]
        return min(dates) if dates else None
    return None


def delete_expired(engine: Engine) -> int:
    from .engine import CommandContext, Op

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


async def ttl_monitor(engine: Engine) -> None:
    while True:
        await asyncio.sleep(engine.ttl_monitor_interval)
        delete_expired(engine)
