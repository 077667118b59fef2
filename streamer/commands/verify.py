"""``streamer verify [--repair] [--json] [--examples N] [--wait S]``.

Compares at one cluster time (:mod:`streamer.runtime.verify`). When that is not possible now
(a resync under way, a batch that ended inside a transaction, a checkpoint older than
the server's snapshot history) it reads again until ``--wait`` seconds have passed,
then stops with the reason (exit 1).

``--repair`` rewrites each drifted ``user_totals`` document from the orders read at
the stream's position, in one transaction with a compare-and-set advance of the
stream's checkpoint from the version verify read (:class:`~streamer.runtime.commits.Committer`):
if the owner advanced it meanwhile, nothing is written, and verify reads again and
retries, a bounded number of times. Against a running service that race could be lost
every time under steady traffic (the owner commits a batch within each attempt's few
round trips), so the repair first asks the stream's live owner to hold still
(:class:`~streamer.core.checkpoint.Hold`); once it has granted the hold, nothing else moves
the checkpoint and the first attempt commits. An owner that does not answer within
``GRANT_WAIT_S`` (busy in a resync, or an older version) leaves the repair to its
attempts as before. The position and token stay as they were, so the
owner, whose next commit then finds the checkpoint moved, reloads it and re-applies its
batch on top of the repaired totals. The mirror is left alone: it holds the source
states the service last applied, which a hand edit of ``user_totals`` does not touch.
Drifted ``stock_alerts`` are repaired the same way under the inventory stream's
checkpoint, from the products at its position: a low product without an open alert gets
one, opened now and marked ``opened_by: "streamer verify --repair"`` (when it should have
opened is not in the sources); an open alert of a product that is not low, and a second
open alert of one product, are resolved with ``resolution: "repaired"``.

A stream split into partitions is repaired under every partition at once: each
partition's slice of the sources is read at that partition's position (as verify
reads it), every partition's live owner is asked to hold still, and the repair's
transaction compare-and-sets every partition's checkpoint. So no partition commits a
change for the repaired users between the read and the write, and a partition that
did moves the repair to its next attempt.

Exit codes: 0 clean (after ``--repair``: the re-verification is clean), 1 drift, or
not comparable within ``--wait``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from ..core.alerts import INVENTORY_FIELDS, plan_alert_repair
from ..core.checkpoint import Checkpoint, Hold
from ..core.errors import CheckpointConflict, NotComparable
from ..core.keys import bson_key
from ..core.partitions import partitions_of
from ..core.resync_plan import counted
from ..core.totals import (
    ORDER_FIELDS,
    Contribution,
    Totals,
    assess_order,
    recompute_totals,
    totals_document,
)
from ..mongo import Mongo, Session
from ..mongo.types import DeleteOne, ReplaceOne, UpdateOne
from ..runtime.checkpoints import CheckpointStore
from ..runtime.commits import Committer
from ..runtime.leases import Leases
from ..runtime.partitionings import load as load_partitioning
from ..runtime.verify import SOURCE_OF, VerifyReport, read_slices, source_time, verify
from ..settings import Settings
from ..streams.inventory import STOCK_ALERTS
from ..streams.orders import DELTAS, USER_TOTALS
from ..streams.registry import default_instance_id

REPAIR_ATTEMPTS = 50
POLL_S = 0.2
# The owner looks for a hold between batches, at most every second (the watcher's
# resync_poll_s); a batch under load can take a few seconds more.
GRANT_WAIT_S = 10.0
GRANT_POLL_S = 0.05
# How long the owner holds still for one repair, at most: a repair is a few documents.
HOLD_MAX_S = 10.0


class ReadProgress:
    """``orders: read 21,500 of 45,000`` on stderr at most every ``every_s`` seconds."""

    def __init__(self, totals: dict[str, int], every_s: float = 2.0) -> None:
        self.totals, self.every_s = totals, every_s
        self.last = time.monotonic()

    def __call__(self, source: str, done: int) -> None:
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            print(f"{source}: read {counted(done, self.totals.get(source))}", file=sys.stderr)


@dataclass(frozen=True, slots=True)
class Options:
    repair: bool = False
    as_json: bool = False
    examples: int = 10
    wait_s: float = 5.0


async def comparable_report(mongo: Mongo, settings: Settings, wait_s: float) -> VerifyReport:
    """A report at one cluster time, reading again while not comparable, up to ``wait_s``."""
    totals = {s: await mongo.count(s, {}) for s in SOURCE_OF.values()}
    progress = ReadProgress(totals)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return await verify(
                mongo,
                default_threshold=settings.low_stock_threshold,
                hysteresis=settings.alert_hysteresis,
                progress=progress,
            )
        except NotComparable as exc:
            if time.monotonic() >= deadline:
                raise NotComparable(f"{exc} (waited {wait_s:g}s)") from exc
            await asyncio.sleep(POLL_S)  # polling the checkpoint, with a deadline


async def _keys(mongo: Mongo, stream: str) -> list[str]:
    """The checkpoint ids of ``stream``'s partitions (its own name when unsplit)."""
    stored = await load_partitioning(mongo, stream)
    return [unit.key for unit in partitions_of(stream, stored.count if stored else 1)]


async def _source_at_checkpoint(
    mongo: Mongo,
    store: CheckpointStore,
    stream: str,
    query: dict[str, Any],
    fields: tuple[str, ...],
) -> tuple[list[Checkpoint], list[dict[str, Any]]]:
    """The checkpoints of ``stream``'s partitions now (those that exist), and the source
    documents they cover that match, each partition's slice at its position."""
    stored = await load_partitioning(mongo, stream)
    units = partitions_of(stream, stored.count if stored else 1)
    async with mongo.session() as session:
        cps = {unit: await store.load(unit.key) for unit in units}
        now = (await mongo.command({"ping": 1}, session=session))["operationTime"]
        times = {
            unit: await source_time(mongo, session, stream, cp, now, unit)
            for unit, cp in cps.items()
        }
        docs = await read_slices(mongo, session, stream, times, fields, query=query)
    return [cp for cp in cps.values() if cp is not None], docs


async def _totals_at_checkpoint(
    mongo: Mongo, store: CheckpointStore, keys: list[Any]
) -> tuple[list[Checkpoint], dict[Hashable, Totals]]:
    """The orders checkpoints now, and the users' totals from the orders they cover."""
    cps, orders = await _source_at_checkpoint(
        mongo, store, "orders", {"user_id": {"$in": keys}}, ORDER_FIELDS
    )
    contributions = [c for c in map(assess_order, orders) if isinstance(c, Contribution)]
    return cps, recompute_totals(contributions)


# The checkpoints the sources were read under, the writes, and what they change.
Prepared = tuple[list[Checkpoint], Callable[[Session], Awaitable[None]], list[str]]


async def repair_under(
    mongo: Mongo, stream: str, prepare: Callable[[CheckpointStore], Awaitable[Prepared]]
) -> list[str]:
    """Commit a repair under the compare-and-set of ``stream``'s checkpoints (every
    partition's, when split), retrying on a conflict.

    ``prepare`` reads the checkpoints as they are now and the sources at their positions
    (a few documents: the window the owners can move a checkpoint in stays small) and
    returns the checkpoints, the writes, and the lines saying what they change.
    """
    instance = f"{default_instance_id()}:verify:{os.getpid()}"
    store = CheckpointStore(mongo, instance)
    committer = Committer(mongo, store, retry_max_s=mongo.options.retry.max_s)
    async with owners_held(mongo, store, await _keys(mongo, stream), instance):
        for _ in range(REPAIR_ATTEMPTS):
            try:
                cps, work, changed = await prepare(store)
            except NotComparable:
                await asyncio.sleep(POLL_S)  # polling the checkpoint; bounded by the attempts
                continue
            if not cps:  # no service has ever run this stream: nobody to race
                async with mongo.transaction() as session:
                    await work(session)
                return changed
            first, others = cps[0], cps[1:]

            async def work_under_all(
                session: Session,
                work: Callable[[Session], Awaitable[None]] = work,
                others: list[Checkpoint] = others,
            ) -> None:
                await work(session)
                # The other partitions' checkpoints move in the same transaction: one
                # that committed since its slice was read aborts it all.
                for cp in others:
                    await store.advance(cp, store.successor(cp), session=session)

            try:
                await committer.commit(
                    first, store.successor(first), work_under_all, what="verify.repair"
                )
            except CheckpointConflict:
                continue  # the owner moved on: read its new position and try again
            return changed
    raise CheckpointConflict(
        f"{stream}: the service advanced the checkpoint before each of {REPAIR_ATTEMPTS} "
        "repair attempts; nothing was changed, run it again"
    )


@asynccontextmanager
async def owners_held(
    mongo: Mongo, store: CheckpointStore, keys: list[str], by: str
) -> AsyncIterator[bool]:
    """Hold the live owner of each of ``keys`` (a stream, or its partitions) still for
    the body; yields whether every one asked granted (False when none was asked).

    All are asked at once and answer between their own batches, so the wait is the
    slowest one's, not the sum. The holds are withdrawn on the way out, whatever
    happens; an owner that never sees the withdrawal (this process killed) goes on
    after ``HOLD_MAX_S`` by itself.
    """
    asked: list[tuple[str, str]] = []
    try:
        for key in keys:
            if await Leases(mongo, by, HOLD_MAX_S).holder(key) is None:
                continue  # no live owner: nothing moves the checkpoint but a starting one
            hold = Hold(id=uuid.uuid4().hex, by=by, max_s=HOLD_MAX_S)
            if await store.request_hold(key, hold):
                asked.append((key, hold.id))
        granted = await asyncio.gather(*(_granted(store, key, h) for key, h in asked))
        yield bool(asked) and all(granted)
    finally:
        for key, hold_id in asked:
            await store.end_hold(key, hold_id)


async def _granted(store: CheckpointStore, stream: str, hold_id: str) -> bool:
    """Whether the owner grants ``hold_id`` within ``GRANT_WAIT_S``."""
    deadline = time.monotonic() + GRANT_WAIT_S
    while True:
        state = await store.hold_state(stream, hold_id)
        if state != "asked" or time.monotonic() >= deadline:
            return state == "granted"
        await asyncio.sleep(GRANT_POLL_S)  # polling the owner's answer, with a deadline


async def repair_totals(mongo: Mongo, report: VerifyReport) -> list[str]:
    """Rewrite the drifted user_totals from the orders at the orders stream's position."""
    keys = [d.key for d in report.totals.drifts]

    async def prepare(store: CheckpointStore) -> Prepared:
        cps, expected = await _totals_at_checkpoint(mongo, store, keys)
        now = dt.datetime.now(dt.UTC)
        requests: list[Any] = []
        changed: list[str] = []
        for key in keys:
            want = expected.get(bson_key(key))
            if want is None or want.empty:
                requests.append(DeleteOne({"_id": key}))
                changed.append(f"user_totals {key!r}: deleted")
            else:
                requests.append(ReplaceOne({"_id": want.user_id}, totals_document(want, now), True))
                changed.append(
                    f"user_totals {key!r}: rewritten (count {want.count}, total {want.total})"
                )

        async def work(session: Session) -> None:
            await mongo.bulk_write(USER_TOTALS, requests, session=session)
            # Shares still waiting to be folded are in ``expected`` already (every
            # partition is held, so none comes or goes meanwhile).
            await mongo.delete_many(DELTAS, {"s": "orders", "u": {"$in": keys}}, session=session)

        return cps, work, changed

    return await repair_under(mongo, "orders", prepare)


async def repair_alerts(mongo: Mongo, settings: Settings, report: VerifyReport) -> list[str]:
    """Open or resolve the drifted products' alerts so they agree with the inventory at
    the inventory stream's position (:func:`streamer.core.alerts.plan_alert_repair`)."""
    ids = list({bson_key(d.key): d.key for d in report.alerts.drifts}.values())

    async def prepare(store: CheckpointStore) -> Prepared:
        cps, docs = await _source_at_checkpoint(
            mongo, store, "inventory", {"_id": {"$in": ids}}, INVENTORY_FIELDS
        )
        states = {bson_key(d["_id"]): d for d in docs}
        products = {bson_key(i): (i, states.get(bson_key(i))) for i in ids}
        changed: list[str] = []

        async def work(session: Session) -> None:
            # The open alerts are read in the repair's own transaction: what it resolves
            # is what is open when it commits.
            open_docs = await mongo.find(
                STOCK_ALERTS, {"product_id": {"$in": ids}, "state": "open"}, session=session
            )
            plan = plan_alert_repair(
                products,
                open_docs,
                dt.datetime.now(dt.UTC),
                default_threshold=settings.low_stock_threshold,
                hysteresis=settings.alert_hysteresis,
            )
            resolves = [
                UpdateOne({"_id": alert_id, "state": "open"}, {"$set": fields})
                for alert_id, fields in plan.resolves.items()
            ]
            # Resolve first: the unique partial index allows one open alert per product.
            await mongo.bulk_write(STOCK_ALERTS, resolves, session=session)
            await mongo.insert_many(STOCK_ALERTS, plan.inserts, session=session)
            changed[:] = plan.changed

        return cps, work, changed

    return await repair_under(mongo, "inventory", prepare)


async def verify_and_repair(
    mongo: Mongo, settings: Settings, options: Options
) -> tuple[VerifyReport, list[str], VerifyReport | None]:
    """The first report, what was changed, and the report after repairing (if it ran)."""
    first = await comparable_report(mongo, settings, options.wait_s)
    if not (options.repair and first.drift):
        return first, [], None
    changed = await repair_totals(mongo, first) if first.totals.drifts else []
    if first.alerts.drifts:
        changed += await repair_alerts(mongo, settings, first)
    after = await comparable_report(mongo, settings, options.wait_s)
    return first, changed, after


async def run_verify(mongo: Mongo, settings: Settings, options: Options) -> int:
    try:
        first, changed, after = await verify_and_repair(mongo, settings, options)
    except NotComparable as exc:
        if options.as_json:
            print(json.dumps({"drift": None, "error": str(exc)}))
        print(f"streamer verify: cannot compare: {exc}", file=sys.stderr)
        return 1
    final = after or first
    if options.as_json:
        doc = first.document(options.examples)
        if after is not None:
            doc["repaired"] = changed
            doc["after_repair"] = after.document(options.examples)
        print(json.dumps(doc))
    else:
        for line in first.lines(options.examples):
            print(line)
        if after is not None:
            print("repaired:")
            for line in changed:
                print(f"  {line}")
            print("after repair:")
            for line in after.lines(options.examples):
                print(line)
    return 1 if final.drift else 0
