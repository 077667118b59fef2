"""Prometheus metrics: counters fed by events, and gauges read at scrape time.

Everything is in base units (seconds, counts) and labelled only by bounded values:
stream, partition (at most ``partitions``), operation type, reason, command name,
resolution, server address. Nothing is
labelled per user or per order. The one per-product family,
``streamer_low_stock_alert_info``, names products that currently have an open alert,
is capped (``max_alert_series``), and shrinks as alerts resolve.

Gauges that describe a stream (lag, checkpoint age, oplog headroom, ownership) are
produced by a collector at scrape time from the watchers' state, so a stream that this
instance does not own has no lag series rather than a stale one.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .. import __version__
from ..core.alerts import Transition
from ..core.lag import Position, lag_seconds
from ..mongo.monitoring import PoolListener
from ..streams.handler import BatchOutcome

BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
COMMAND_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30)


@dataclass(frozen=True)
class StreamView:
    """What the collector reads about one stream at scrape time."""

    stream: str
    owner: str
    owned: bool
    partition: str  # its index ("0" for an unsplit stream)
    position: Position | None  # how far the stream has processed (streamer.core.lag)
    checkpoint_saved_at: float | None  # unix seconds of the last stored checkpoint
    oplog_headroom_s: float | None


class Metrics:
    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        driver: str = "motor",
        oplog_headroom_alert_s: float = 3600.0,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.events_applied = Counter(
            "streamer_events_applied", "Change events applied.", ["stream", "op"], registry=r
        )
        self.batches = Counter("streamer_batches", "Batches committed.", ["stream"], registry=r)
        self.batch_duration = Histogram(
            "streamer_batch_apply_duration_seconds",
            "Time to apply and commit one batch.",
            ["stream"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.commits = Counter(
            "streamer_transaction_commits", "Transactions committed.", ["stream"], registry=r
        )
        self.retries = Counter(
            "streamer_transaction_retries",
            "Transactions or commits retried after a transient error.",
            ["stream", "reason"],
            registry=r,
        )
        self.aborts = Counter(
            "streamer_transaction_aborts",
            "Units of work given up: another instance moved the checkpoint, or retries ran out.",
            ["stream", "reason"],
            registry=r,
        )
        self.resumes = Counter(
            "streamer_resumes",
            "Change streams reopened from the checkpoint.",
            ["stream", "reason"],
            registry=r,
        )
        self.totals_shares = Counter(
            "streamer_totals_shares",
            "A split orders stream's shares of user totals: deferred to the partition that "
            "writes the user's totals, and folded in by it (streamer.core.deltas).",
            ["stream", "action"],
            registry=r,
        )
        self.rebalances = Counter(
            "streamer_rebalances",
            "Partitions this instance handed over to even out the split of a stream.",
            ["stream"],
            registry=r,
        )
        self.resyncs = Counter(
            "streamer_resyncs", "Resyncs started.", ["stream", "reason"], registry=r
        )
        self.quarantined = Counter(
            "streamer_quarantined_events",
            "Events whose document was invalid, recorded in streamer_quarantine.",
            ["stream", "reason"],
            registry=r,
        )
        self.alerts_opened = Counter(
            "streamer_alerts_opened", "Low-stock alerts opened.", registry=r
        )
        self.alerts_resolved = Counter(
            "streamer_alerts_resolved", "Low-stock alerts resolved.", ["resolution"], registry=r
        )
        self.open_alerts = Gauge(
            "streamer_open_alerts", "Low-stock alerts currently open.", registry=r
        )
        self.command_duration = Histogram(
            "streamer_mongodb_command_duration_seconds",
            "MongoDB command round trips.",
            ["command"],
            buckets=COMMAND_BUCKETS,
            registry=r,
        )
        self.command_failures = Counter(
            "streamer_mongodb_command_failures",
            "MongoDB commands that failed.",
            ["command"],
            registry=r,
        )
        self.pool_connections = Gauge(
            "streamer_mongodb_pool_connections",
            "Connections in the driver's pool.",
            ["server"],
            registry=r,
        )
        self.pool_checked_out = Gauge(
            "streamer_mongodb_pool_checked_out",
            "Connections checked out of the driver's pool.",
            ["server"],
            registry=r,
        )
        self.build_info = Gauge(
            "streamer_build_info",
            "Always 1; the labels name the build.",
            ["version", "python", "driver"],
            registry=r,
        )
        self.build_info.labels(__version__, platform.python_version(), driver).set(1)
        # A setting, exported so the alert rule compares the headroom with it (one place
        # to tune it: STREAMER_OPLOG_HEADROOM_ALERT_S).
        self.oplog_headroom_threshold = Gauge(
            "streamer_oplog_headroom_threshold_seconds",
            "StreamerOplogHeadroomLow fires below this headroom (oplog_headroom_alert_s).",
            registry=r,
        )
        self.oplog_headroom_threshold.set(oplog_headroom_alert_s)
        self.alert_products = AlertProducts()
        self.streams = StreamCollector()
        r.register(self.alert_products)
        r.register(self.streams)

    # -- event hooks ------------------------------------------------------------------
    def on_batch(self, stream: str, outcome: BatchOutcome, seconds: float) -> None:
        for op, n in outcome.by_op.items():
            self.events_applied.labels(stream, op).inc(n)
        self.batches.labels(stream).inc()
        self.commits.labels(stream).inc()
        if outcome.deferred:
            self.totals_shares.labels(stream, "deferred").inc(outcome.deferred)
        if outcome.folded:
            self.totals_shares.labels(stream, "folded").inc(outcome.folded)
        self.batch_duration.labels(stream).observe(seconds)
        for rejected in outcome.quarantined:
            self.quarantined.labels(stream, rejected.reason).inc()
        for t in outcome.transitions:
            self.on_transition(t)

    def on_transition(self, t: Transition) -> None:
        if t.kind == "opened":
            self.alerts_opened.inc()
        else:
            self.alerts_resolved.labels(t.resolution or "unknown").inc()

    def on_command(self, name: str, seconds: float, ok: bool) -> None:
        self.command_duration.labels(name).observe(seconds)
        if not ok:
            self.command_failures.labels(name).inc()

    def pool_listener(self) -> PoolListener:
        """The driver's pool event listener, feeding the pool gauges."""
        return PoolListener(PoolGauges(self))


class PoolGauges:
    """Pool size and checked-out connections per server (fed by :class:`PoolListener`)."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def pool_opened(self, server: str) -> None:
        self.m.pool_connections.labels(server).set(0)
        self.m.pool_checked_out.labels(server).set(0)

    def pool_closed(self, server: str) -> None:
        self.m.pool_connections.remove(server)
        self.m.pool_checked_out.remove(server)

    def connections(self, server: str, delta: int) -> None:
        self.m.pool_connections.labels(server).inc(delta)

    def checked_out(self, server: str, delta: int) -> None:
        self.m.pool_checked_out.labels(server).inc(delta)


class AlertProducts(Collector):
    """``streamer_low_stock_alert_info``: one series per product with an open alert."""

    def __init__(self) -> None:
        self.products: list[tuple[str, str]] = []  # (product_id, sku)

    def set(self, products: Iterable[tuple[str, str]]) -> None:
        self.products = list(products)

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "streamer_low_stock_alert_info",
            "1 for each product with an open low-stock alert (capped at max_alert_series).",
            labels=["product_id", "sku"],
        )
        for product_id, sku in self.products:
            family.add_metric([product_id, sku], 1)
        yield family


class StreamCollector(Collector):
    """Lag, checkpoint age, oplog headroom and ownership, read from the watchers."""

    def __init__(self) -> None:
        self.source: Callable[[], list[StreamView]] = list
        self.clock: Callable[[], float] = time.time

    def collect(self) -> Iterator[Metric]:
        views = self.source()
        now = self.clock()
        labels = ["stream", "partition"]
        lag = GaugeMetricFamily(
            "streamer_lag_seconds",
            "Seconds from the newest point the partition has fully processed to now.",
            labels=labels,
        )
        age = GaugeMetricFamily(
            "streamer_checkpoint_age_seconds",
            "Seconds since the partition's checkpoint was last stored.",
            labels=labels,
        )
        headroom = GaugeMetricFamily(
            "streamer_oplog_headroom_seconds",
            "Seconds between the oldest oplog entry and the partition's stored checkpoint.",
            labels=labels,
        )
        owned = GaugeMetricFamily(
            "streamer_stream_owned",
            "1 when this instance holds the partition's lease, else 0.",
            labels=["stream", "partition", "owner"],
        )
        count = GaugeMetricFamily(
            "streamer_partitions_owned",
            "How many of the stream's partitions this instance holds.",
            labels=["stream"],
        )
        per_stream: dict[str, int] = {}
        for v in views:
            per_stream[v.stream] = per_stream.get(v.stream, 0) + (1 if v.owned else 0)
            owned.add_metric([v.stream, v.partition, v.owner], 1 if v.owned else 0)
            if not v.owned:
                continue
            at = [v.stream, v.partition]
            stream_lag = lag_seconds(v.position, now)
            if stream_lag is not None:
                lag.add_metric(at, stream_lag)
            if v.checkpoint_saved_at is not None:
                age.add_metric(at, max(0.0, now - v.checkpoint_saved_at))
            if v.oplog_headroom_s is not None:
                headroom.add_metric(at, v.oplog_headroom_s)
        for stream, n in per_stream.items():
            count.add_metric([stream], n)
        yield from (lag, age, headroom, owned, count)
