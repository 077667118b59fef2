"""A fresh resync of a whole split stream: every partition stopped at one barrier first.

A fresh resync clears the stream's derived data and rebuilds it from the source. For one
partition that means taking back its own share (:meth:`OrdersStream.take_back`); for
the whole stream it means clearing everything, totals that no partition accounts for
included (a hand edit, a bug). While any partition still commits, that cannot be done:
its batch would land between the clear and its own scan. So (:func:`fresh_barrier`):

1. one transaction moves every partition's checkpoint into a resync at step
   ``barrier`` under one new generation (compare-and-set on each: an owner's batch in
   flight is refused, and its owner, reloading, waits at the barrier);
2. the stream's derived data and mirror are cleared, as an unsplit fresh resync does;
3. one transaction moves every partition on to its scan: each scans its share of the
   source into the emptied collections, and streams on.

An interrupted barrier is finished by running the resync again: partitions still at
``barrier`` have not scanned, so clearing again loses nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import structlog

from ..core.checkpoint import Checkpoint, Resync
from ..core.errors import CheckpointConflict
from ..core.partitions import Partition, partitions_of
from ..mongo import Mongo
from ..mongo.retries import RetryPolicy, retry_transient
from ..streams.handler import StreamHandler
from .checkpoints import CheckpointStore

log = structlog.get_logger("streamer.resync")

BARRIER_TRIES = 20
Quiet = Callable[[list[str]], AbstractAsyncContextManager[Any]]


@asynccontextmanager
async def nothing_held(keys: list[str]) -> AsyncIterator[None]:
    yield


async def fresh_barrier(
    mongo: Mongo,
    store: CheckpointStore,
    handler: StreamHandler,
    count: int,
    *,
    reason: str,
    batch_size: int,
    policy: RetryPolicy,
    quiet: Quiet = nothing_held,
) -> int:
    """Hold every partition, clear the stream, let them scan; the new generation.

    ``quiet`` keeps the partitions' live owners from committing while the barrier is
    put up (``streamer verify --repair``'s holds), so that its compare-and-set on every
    checkpoint at once does not race them; without it the barrier is retried until it
    lands between their batches."""
    units = partitions_of(handler.name, count)
    async with quiet([u.key for u in units]):
        gen = await _barrier(mongo, store, units, reason, policy)
    whole = handler.for_partition(Partition(handler.name))
    cleared = 0
    while True:
        async with mongo.transaction() as session:
            n = await whole.clear(session, batch_size, gen)
        cleared += n
        if n == 0:
            break
    log.info("resync.barrier_cleared", stream=handler.name, deleted=cleared, gen=gen)
    await retry_transient(
        lambda: _release_all(mongo, store, units, gen), what="resync.barrier", policy=policy
    )
    return gen


async def _barrier(
    mongo: Mongo,
    store: CheckpointStore,
    units: tuple[Partition, ...],
    reason: str,
    policy: RetryPolicy,
) -> int:
    for _ in range(BARRIER_TRIES - 1):
        try:
            return await retry_transient(
                lambda: _hold_all(mongo, store, units, reason), what="resync.barrier", policy=policy
            )
        except CheckpointConflict:
            continue  # an owner committed between the read and the barrier: read again
    return await retry_transient(
        lambda: _hold_all(mongo, store, units, reason), what="resync.barrier", policy=policy
    )


async def _hold_all(
    mongo: Mongo, store: CheckpointStore, units: tuple[Partition, ...], reason: str
) -> int:
    current = {u.key: await store.load(u.key) for u in units}
    gen = max((cp.gen for cp in current.values() if cp is not None), default=0) + 1
    resync = Resync(
        gen=gen, reason=reason, fresh=True, started_at=dt.datetime.now(dt.UTC), step="barrier"
    )
    async with mongo.transaction() as session:
        for unit in units:
            cp = current[unit.key]
            if cp is not None and cp.resync is not None and cp.resync.step == "barrier":
                continue  # an interrupted barrier: already held
            if cp is None:
                held = Checkpoint(
                    stream=unit.key, version=1, phase="resync", gen=gen, resync=resync
                )
                await mongo.insert_many("streamer_checkpoints", [held.document()], session=session)
                continue
            new = store.successor(
                cp, phase="resync", gen=gen, resync=resync, token=None, start_at=None
            )
            await store.advance(cp, new, session=session)
    return gen


async def _release_all(
    mongo: Mongo, store: CheckpointStore, units: tuple[Partition, ...], gen: int
) -> None:
    async with mongo.transaction() as session:
        for unit in units:
            cp = await store.load(unit.key)
            if cp is None or cp.resync is None or cp.resync.step != "barrier":
                continue
            scan = dataclasses.replace(cp.resync, step="scan")
            await store.advance(cp, store.successor(cp, resync=scan), session=session)
