"""Liveness, readiness, and the periodic probes that feed them and the gauges.

Readiness is not a constant: an instance is ready when it reached the database
recently, its bootstrap is done, each stream has a live owner loop, and every stream it
owns is progressing (no outage) and less than ``ready_max_lag_s`` behind. A healthy
standby is ready. Liveness only says the event loop answers and the supervisor runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import structlog

from ..core.errors import DatabaseError
from ..core.lag import lag_seconds
from ..mongo import Mongo
from ..mongo.retries import error_reason
from ..streams.inventory import STOCK_ALERTS
from .lifecycle import first_of, sleep_unless_stopped
from .metrics import Metrics, StreamView
from .ownership import StreamOwner

log = structlog.get_logger("streamer.health")


@dataclass
class Readiness:
    ready: bool
    checks: dict[str, str] = field(default_factory=dict)


class Health:
    """Probes the database, reads the oplog window and the open alerts, judges readiness."""

    def __init__(
        self,
        mongo: Mongo,
        owners: Mapping[str, StreamOwner],
        metrics: Metrics,
        *,
        ready_max_lag_s: float,
        max_alert_series: int,
        ping_interval_s: float = 5.0,
        oplog_interval_s: float = 30.0,
        alerts_interval_s: float = 5.0,
        describe: Callable[[BaseException], str] = error_reason,
    ) -> None:
        self.mongo = mongo
        self.owners = owners
        self.metrics = metrics
        self.ready_max_lag_s = ready_max_lag_s
        self.max_alert_series = max_alert_series
        self.ping_interval_s = ping_interval_s
        self.oplog_interval_s = oplog_interval_s
        self.alerts_interval_s = alerts_interval_s
        self.bootstrapped = False
        self.last_ping_ok: float | None = None
        # While the database does not answer: since when (monotonic) and why, for /readyz.
        self.database_problem: tuple[float, str] | None = None
        self.describe = describe
        self.oldest_oplog_s: float | None = None
        self.alerts_changed = asyncio.Event()
        self._oplog_refused = False
        metrics.streams.source = self.stream_views

    # -- probes ---------------------------------------------------------------------------
    async def run(self, stopping: asyncio.Event) -> None:
        """Run the probes until ``stopping``; each one's failures only mark unhealth."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._every(self.ping_interval_s, self._ping, stopping))
            group.create_task(self._every(self.oplog_interval_s, self._oplog, stopping))
            group.create_task(self._alerts_loop(stopping))

    async def _every(
        self, seconds: float, probe: Callable[[], Awaitable[None]], stopping: asyncio.Event
    ) -> None:
        while not stopping.is_set():
            await probe()
            await sleep_unless_stopped(stopping, seconds)

    def database_answered(self) -> None:
        self.last_ping_ok = time.monotonic()
        self.database_problem = None

    def database_failed(self, since: float, why: str) -> None:
        """The database did not answer; unreachable since ``since`` (kept from the first
        failure of this outage) because ``why``."""
        if self.database_problem is not None:
            since = self.database_problem[0]
        self.database_problem = (since, why)

    async def _ping(self) -> None:
        started = time.monotonic()
        try:
            await self.mongo.ping()
        except DatabaseError as exc:
            log.warning("health.ping_failed", error=type(exc).__name__)
            self.database_failed(started, self.describe(exc))
            return
        self.database_answered()

    async def _oplog(self) -> None:
        try:
            oldest = await self.mongo.oldest_oplog_time()
        except DatabaseError as exc:
            if not self._oplog_refused:
                log.warning("health.oplog_unreadable", error=str(exc)[:200])
                self._oplog_refused = True
            return
        self.oldest_oplog_s = float(oldest.time) if oldest is not None else None

    async def _alerts_loop(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            await self.refresh_alerts()
            self.alerts_changed.clear()
            # Refresh on a change or every interval, whichever comes first, until stopping.
            await first_of(
                self.alerts_changed.wait(), sleep_unless_stopped(stopping, self.alerts_interval_s)
            )

    async def refresh_alerts(self) -> None:
        try:
            docs = await self.mongo.find(
                STOCK_ALERTS,
                {"state": "open"},
                projection={"product_id": 1, "sku": 1},
                sort=[("opened_at", 1)],
                limit=self.max_alert_series,
            )
            total = (
                len(docs)
                if len(docs) < self.max_alert_series
                else await self.mongo.count(STOCK_ALERTS, {"state": "open"})
            )
        except DatabaseError as exc:
            log.warning("health.alerts_unreadable", error=type(exc).__name__)
            return
        self.metrics.open_alerts.set(total)
        self.metrics.alert_products.set((str(d["product_id"]), str(d.get("sku", ""))) for d in docs)

    # -- views ----------------------------------------------------------------------------
    def stream_views(self) -> list[StreamView]:
        views = []
        for owner in self.owners.values():
            w = owner.watcher if owner.owned else None
            cp = w.checkpoint if w is not None else None
            saved = cp.updated_at.timestamp() if cp is not None and cp.updated_at else None
            headroom = None
            if cp is not None and cp.position is not None and self.oldest_oplog_s is not None:
                headroom = cp.position.time - self.oldest_oplog_s
            views.append(
                StreamView(
                    stream=owner.name,
                    partition=owner.unit.label,
                    owner=owner.work.store.owner,
                    owned=owner.owned,
                    position=w.position if w is not None else None,
                    checkpoint_saved_at=saved,
                    oplog_headroom_s=headroom,
                )
            )
        return views

    def readiness(self) -> Readiness:
        checks: dict[str, str] = {}
        now = time.monotonic()
        checks["database"] = self._database_check(now)
        checks["bootstrap"] = "ok" if self.bootstrapped else "pending"
        wall = time.time()
        for key, view in zip(self.owners, self.stream_views(), strict=True):
            checks[key] = self._stream_check(self.owners[key], view, wall)
        ready = all(v in ("ok", "standby") for v in checks.values())
        return Readiness(ready, checks)

    def _database_check(self, now: float) -> str:
        if self.last_ping_ok is not None and now - self.last_ping_ok <= 3 * self.ping_interval_s:
            return "ok"
        if self.database_problem is not None:
            since, why = self.database_problem
        elif self.last_ping_ok is None:
            return "connecting"  # the first attempt has not ended yet
        else:
            since, why = self.last_ping_ok, "a ping is waiting for an answer"
        return f"unreachable for {now - since:.0f}s: {why}"

    def _stream_check(self, owner: StreamOwner, view: StreamView, wall: float) -> str:
        if not owner.alive:
            return "not running"
        if not owner.owned:
            return "standby"
        w = owner.watcher
        if w is None or not w.running:
            return "starting"
        if w.outage is not None:
            return w.outage
        if w.checkpoint is not None and w.checkpoint.phase == "resync":
            return "ok"  # resyncing is progress; the lag applies once streaming
        lag = lag_seconds(view.position, wall)
        if lag is None:
            return "starting"
        if lag > self.ready_max_lag_s:
            return f"lagging {lag:.0f}s"
        return "ok"
