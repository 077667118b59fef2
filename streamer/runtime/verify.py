"""``streamer verify``: compare the derived data with the sources at one cluster time.

Each batch's effects commit in one transaction with a compare-and-set advance of the
stream's checkpoint (:mod:`streamer.runtime.commits`), so at any cluster time ``S`` the derived
collections hold exactly the source events up to the checkpoint's ``position`` as of
``S``. Verify reads the derived collections and the checkpoints at one snapshot ``S``
(readConcern "snapshot"; :mod:`streamer.runtime.snapshots`), then each source at its stream's
position (``atClusterTime``), and compares exactly: a correct service never shows
drift under any traffic, and real drift always shows.

Which time each source is read at (:func:`source_time`):

- no checkpoint (the service never ran): ``S``;
- no change to the source between the checkpoint and ``S``: ``S`` too (the derived
  data equal the sources at any time in between), so verify works at rest however old
  the position is;
- the first change after the checkpoint is *at* its position: the batch ended inside a
  transaction, whose events share one cluster time; only part of it is applied, so no
  read of the source matches: not comparable yet (wait for the next batch);
- otherwise the position. Older than the server's snapshot history
  (minSnapshotHistoryWindowInSeconds) the read fails with SnapshotTooOld: not
  comparable (a stalled service, or one far behind).

A stream split into partitions (:mod:`streamer.core.partitions`) is compared
partition by partition on the source side: each partition's checkpoint (as of ``S``)
covers its own documents only, so its time is found as above from its own events (its
change-stream filter) and its slice of the source (the documents whose ``_id`` hashes
into it) is read at that time; the slices together are the source the derived data
stand for. A user's totals, written by every partition holding one of the user's
orders, are thus expected as the sum of each partition's slice read at that
partition's position. How each stream is split is read at ``S`` too.

A resync under way is not comparable either. :class:`~streamer.core.errors.NotComparable`
carries the reason; ``streamer verify`` waits a bounded time and reads again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..core.alerts import INVENTORY_FIELDS, Product, assess_product
from ..core.checkpoint import Checkpoint
from ..core.deltas import delta_from_document, fold_all
from ..core.errors import DatabaseError, NotComparable
from ..core.keys import bson_key
from ..core.partitions import Partition, and_filters, partitions_of
from ..core.totals import (
    COMPLETED,
    DECIMAL128,
    ORDER_FIELDS,
    Contribution,
    Totals,
    assess_order,
    recompute_totals,
    totals_document,
    totals_from_document,
)
from ..core.values import Decimal128, Timestamp
from ..mongo import Mongo, Session
from ..streams.inventory import STOCK_ALERTS
from ..streams.orders import DELTAS, USER_TOTALS
from ..streams.orders import MIRROR as ORDERS_MIRROR
from .checkpoints import COLLECTION as CHECKPOINTS
from .partitionings import COLLECTION as PARTITIONINGS
from .snapshots import first_event_after, read_at, too_old

# The stream each derived collection comes from, and that stream's source.
STREAM_OF = {USER_TOTALS: "orders", STOCK_ALERTS: "inventory"}
SOURCE_OF = {"orders": "orders", "inventory": "inventory"}
ReadProgress = Callable[[str, int], None]


@dataclass(frozen=True, slots=True)
class Drift:
    """One derived document that differs from what the sources say."""

    collection: str
    key: Any  # the user's _id, or the product_id
    problems: tuple[str, ...]

    def lines(self) -> list[str]:
        return [f"{self.collection} {self.key!r}: {p}" for p in self.problems]


@dataclass(slots=True)
class Checked:
    """One derived collection compared with its source."""

    collection: str
    stream: str
    checked: int = 0
    drifts: list[Drift] = field(default_factory=list)
    source_at: Timestamp | None = None  # the cluster time the source was read at (the oldest)
    # Split streams: the time each partition's slice was read at, by partition index.
    partition_at: dict[int, Timestamp] = field(default_factory=dict)

    def summary(self) -> str:
        return f"{self.collection}: {self.checked} checked, {len(self.drifts)} drifted"


@dataclass(slots=True)
class VerifyReport:
    at: Timestamp | None = None  # the snapshot the derived data and checkpoints were read at
    totals: Checked = field(default_factory=lambda: Checked(USER_TOTALS, "orders"))
    alerts: Checked = field(default_factory=lambda: Checked(STOCK_ALERTS, "inventory"))
    checkpoints: dict[str, Checkpoint] = field(default_factory=dict)
    expected_totals: dict[Hashable, Totals] = field(default_factory=dict, repr=False)

    @property
    def collections(self) -> tuple[Checked, Checked]:
        return (self.totals, self.alerts)

    @property
    def users_checked(self) -> int:
        return self.totals.checked

    @property
    def products_checked(self) -> int:
        return self.alerts.checked

    @property
    def differences(self) -> list[str]:
        return [line for c in self.collections for d in c.drifts for line in d.lines()]

    @property
    def drift(self) -> bool:
        return any(c.drifts for c in self.collections)

    def lines(self, examples: int = 10) -> list[str]:
        """A summary line per collection, then up to ``examples`` drifted documents each."""
        out = []
        for c in self.collections:
            out.append(c.summary())
            for d in c.drifts[:examples]:
                out += ["  " + line for line in d.lines()]
            if len(c.drifts) > examples:
                out.append(f"  ... and {len(c.drifts) - examples} more")
        return out

    def document(self, examples: int = 10) -> dict[str, Any]:
        """The report as JSON-ready data (``streamer verify --json``)."""
        return {
            "drift": self.drift,
            "at": _time(self.at),
            "collections": {c.collection: _checked_document(c, examples) for c in self.collections},
        }


def _checked_document(c: Checked, examples: int) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "stream": c.stream,
        "checked": c.checked,
        "drifted": len(c.drifts),
        "source_at": _time(c.source_at),
    }
    if c.partition_at:  # split: each partition's slice read at its own position
        doc["partitions_source_at"] = {str(i): _time(t) for i, t in c.partition_at.items()}
    doc["examples"] = [
        {"key": repr(d.key), "problems": list(d.problems)} for d in c.drifts[:examples]
    ]
    return doc


def _time(ts: Timestamp | None) -> dict[str, int] | None:
    return {"t": ts.time, "i": ts.inc} if ts is not None else None


def _decimal(value: Any) -> Any:
    return value.to_decimal() if isinstance(value, Decimal128) else value


def _same_time(a: Any, b: Any) -> bool:
    if isinstance(a, dt.datetime) and isinstance(b, dt.datetime):
        # BSON dates keep milliseconds.
        return abs((a.replace(tzinfo=dt.UTC) - b.replace(tzinfo=dt.UTC)).total_seconds()) < 0.001
    return bool(a == b)


def compare_totals(expected: Totals, stored: Mapping[str, Any]) -> list[str]:
    """Differences between the recomputed and the stored totals of one user."""
    out = []
    if _decimal(stored.get("total")) != expected.total or not isinstance(
        stored.get("total"), Decimal128
    ):
        out.append(f"total {stored.get('total')!r}, expected {expected.total}")
    if stored.get("count") != expected.count:
        out.append(f"count {stored.get('count')!r}, expected {expected.count}")
    avg = _decimal(stored.get("avg"))
    if expected.count:
        want = DECIMAL128.divide(expected.total, Decimal(expected.count))
        if avg is None or abs(avg - want) > abs(want) * Decimal("1e-30"):
            out.append(f"avg {stored.get('avg')!r}, expected {want}")
    elif avg is not None:
        out.append(f"avg {avg!r}, expected null")
    if dict(stored.get("by_status") or {}) != expected.by_status:
        out.append(f"by_status {stored.get('by_status')!r}, expected {expected.by_status}")
    if not _same_time(stored.get("last_order_at"), expected.last_order_at):
        out.append(
            f"last_order_at {stored.get('last_order_at')}, expected {expected.last_order_at}"
        )
    return out


def totals_drift(
    orders: list[dict[str, Any]], stored: list[dict[str, Any]], checked: Checked
) -> dict[Hashable, Totals]:
    """Compare the stored user_totals with the orders; returns the expected totals."""
    contributions = [c for c in map(assess_order, orders) if isinstance(c, Contribution)]
    expected = recompute_totals(contributions)
    by_key = {bson_key(d["_id"]): d for d in stored}
    checked.checked = len(expected.keys() | by_key.keys())
    for key, totals in expected.items():
        doc = by_key.get(key)
        problems = ["missing"] if doc is None else compare_totals(totals, doc)
        if problems:
            checked.drifts.append(Drift(USER_TOTALS, totals.user_id, tuple(problems)))
    for key, doc in by_key.items():
        if key not in expected:
            checked.drifts.append(Drift(USER_TOTALS, doc["_id"], ("user has no valid orders",)))
    return expected


def alerts_drift(
    products: list[dict[str, Any]],
    open_alerts: list[dict[str, Any]],
    checked: Checked,
    *,
    default_threshold: int,
    hysteresis: int,
) -> None:
    """Compare the open stock alerts with the inventory."""
    checked.checked = len(products)
    must: dict[Hashable, Any] = {}
    may: set[Hashable] = set()  # inside the hysteresis band: either state is right
    for doc in products:
        p = assess_product(doc, default_threshold)
        if not isinstance(p, Product):
            may.add(bson_key(doc["_id"]))  # invalid: its alert stays as it was
        elif p.low:
            must[bson_key(doc["_id"])] = doc["_id"]
        elif p.stock <= p.threshold + hysteresis:
            may.add(bson_key(doc["_id"]))
    by_product: dict[Hashable, list[dict[str, Any]]] = {}
    for alert in open_alerts:
        by_product.setdefault(bson_key(alert["product_id"]), []).append(alert)
    for key, product_id in must.items():
        if key not in by_product:
            checked.drifts.append(Drift(STOCK_ALERTS, product_id, ("low but no open alert",)))
    for key, alerts in by_product.items():
        problems = []
        if len(alerts) > 1:
            problems.append(f"{len(alerts)} open alerts")
        if key not in must and key not in may:
            problems.append("open alert but not low")
        if problems:
            checked.drifts.append(Drift(STOCK_ALERTS, alerts[0]["product_id"], tuple(problems)))


async def source_time(
    mongo: Mongo,
    session: Session,
    stream: str,
    cp: Checkpoint | None,
    at: Timestamp,
    unit: Partition | None = None,
) -> Timestamp:
    """The cluster time to read ``stream``'s source (partition ``unit``'s slice of it)
    at (see the module's docstring)."""
    unit = unit or Partition(stream)
    name = unit.key
    if cp is None:
        return at
    if cp.phase != "stream" or cp.position is None:
        raise NotComparable(f"{name}: a resync is under way")
    if cp.scan_segments and cp.position < cp.scan_segments[-1].at:
        raise NotComparable(f"{name}: the stream is finishing a resync")
    start = {"startAfter": cp.token} if cp.token else {"startAtOperationTime": cp.start_at}
    try:
        first = await first_event_after(
            mongo, session, SOURCE_OF[stream], start, at, stage=unit.change_stage()
        )
    except DatabaseError as exc:
        raise NotComparable(f"{name}: cannot read the change stream: {exc.reason}") from exc
    if first is None:
        return at  # nothing changed since the checkpoint
    if first == cp.position:
        raise NotComparable(f"{name}: the last batch ended inside a transaction")
    return cp.position


def slices(times: Mapping[Partition, Timestamp]) -> list[tuple[Timestamp, dict[str, Any]]]:
    """The reads that cover every partition's slice at its time: ``(time, filter)``.

    Partitions that share one time (every one, at rest) are read together: all of
    them with no filter at all, which is the whole source in one read.
    """
    if len(set(times.values())) == 1:
        return [(next(iter(times.values())), {})]
    return [(t, unit.source_filter()) for unit, t in sorted(times.items())]


async def stream_times(
    mongo: Mongo,
    session: Session,
    stream: str,
    count: int,
    checkpoints: Mapping[str, Checkpoint],
    at: Timestamp,
) -> dict[Partition, Timestamp]:
    """The time to read each of ``stream``'s ``count`` partitions' slices at."""
    return {
        unit: await source_time(mongo, session, stream, checkpoints.get(unit.key), at, unit)
        for unit in partitions_of(stream, count)
    }


async def read_slices(
    mongo: Mongo,
    session: Session,
    stream: str,
    times: Mapping[Partition, Timestamp],
    fields: tuple[str, ...] | list[str],
    *,
    query: Mapping[str, Any] | None = None,
    progress: ReadProgress | None = None,
) -> list[dict[str, Any]]:
    """The source documents of ``stream`` (matching ``query``), each partition's slice
    read at its time."""
    docs: list[dict[str, Any]] = []
    for t, partition_filter in slices(times):
        base = len(docs)

        def tick(n: int, base: int = base) -> None:
            if progress is not None:
                progress(SOURCE_OF[stream], base + n)

        docs += await _read_source(
            mongo,
            session,
            stream,
            t,
            fields,
            tick,
            filter=and_filters(query or {}, partition_filter),
        )
    return docs


async def _read_source(
    mongo: Mongo,
    session: Session,
    stream: str,
    at: Timestamp,
    fields: tuple[str, ...] | list[str],
    progress: Callable[[int], None] | None,
    *,
    filter: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    try:
        docs, _ = await read_at(
            mongo,
            session,
            SOURCE_OF[stream],
            at,
            filter=filter,
            projection=dict.fromkeys(fields, 1),
            progress=progress,
        )
    except DatabaseError as exc:
        if too_old(exc):
            raise NotComparable(
                f"{stream}: its checkpoint position {at.as_datetime().isoformat()} is older "
                "than the server's snapshot history (minSnapshotHistoryWindowInSeconds); "
                "is the service running and caught up?"
            ) from exc
        raise
    return docs


async def with_pending_shares(
    mongo: Mongo, session: Session, stored: list[dict[str, Any]], at: Timestamp
) -> list[dict[str, Any]]:
    """The stored totals with the shares still waiting for their partition to fold them
    (:mod:`streamer.core.deltas`) folded in, all read at ``at``: what the totals are once
    folded, and what the sources say. Each share is committed with its partition's
    checkpoint and deleted with its fold, so at any snapshot the sum is exact."""
    docs, _ = await read_at(mongo, session, DELTAS, at, filter={"s": "orders"})
    if not docs:
        return stored
    deltas = [delta_from_document(d) for d in docs]
    by_key = {bson_key(d["_id"]): d for d in stored}
    touched: dict[Hashable, Totals] = {}
    for delta in deltas:
        key = bson_key(delta.user_id)
        if key not in touched and key in by_key:
            touched[key] = totals_from_document(by_key[key])
    recompute = fold_all(touched, deltas)
    if recompute:
        ids = [touched[k].user_id for k in recompute]
        rows, _ = await read_at(
            mongo,
            session,
            ORDERS_MIRROR,
            at,
            filter={"u": {"$in": ids}, "s": COMPLETED, "t": {"$type": "date"}},
            projection={"u": 1, "t": 1},
        )
        for k in recompute:
            touched[k].last_order_at = None
        for row in rows:
            t = touched.get(bson_key(row["u"]))
            if t is not None and (t.last_order_at is None or row["t"] > t.last_order_at):
                t.last_order_at = row["t"]
    now = dt.datetime.now(dt.UTC)
    out = [d for k, d in by_key.items() if k not in touched]
    for t in touched.values():
        if not t.empty:
            out.append(totals_document(t, now))
    return out


async def verify(
    mongo: Mongo,
    *,
    default_threshold: int,
    hysteresis: int = 0,
    progress: ReadProgress | None = None,
) -> VerifyReport:
    """Compare derived data and sources at one cluster time; NotComparable if not now."""
    report = VerifyReport()
    async with mongo.session() as session:
        stored, at = await read_at(mongo, session, USER_TOTALS, None)
        report.at = at
        stored = await with_pending_shares(mongo, session, stored, at)
        alerts, _ = await read_at(mongo, session, STOCK_ALERTS, at, filter={"state": "open"})
        docs, _ = await read_at(mongo, session, CHECKPOINTS, at)
        report.checkpoints = {c.stream: c for c in map(Checkpoint.from_document, docs)}
        stored_counts, _ = await read_at(mongo, session, PARTITIONINGS, at)
        counts = {d["_id"]: int(d["count"]) for d in stored_counts}
        times: dict[str, dict[Partition, Timestamp]] = {}
        for checked in report.collections:
            count = counts.get(checked.stream, 1)
            times[checked.stream] = await stream_times(
                mongo, session, checked.stream, count, report.checkpoints, at
            )
            checked.source_at = min(times[checked.stream].values())
            if count > 1:
                checked.partition_at = {u.index: t for u, t in times[checked.stream].items()}
        orders = await read_slices(
            mongo, session, "orders", times["orders"], ORDER_FIELDS, progress=progress
        )
        report.expected_totals = totals_drift(orders, stored, report.totals)
        products = await read_slices(
            mongo, session, "inventory", times["inventory"], INVENTORY_FIELDS, progress=progress
        )
    alerts_drift(
        products,
        alerts,
        report.alerts,
        default_threshold=default_threshold,
        hysteresis=hysteresis,
    )
    return report
