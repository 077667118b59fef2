"""The running service: connect, bootstrap, health and the stream owners, clean shutdown.

The health loop and one stream owner per stream, or per partition of a split stream
(:mod:`streamer.runtime.ownership`, which runs the watcher while it holds the lease),
run under one ``asyncio.TaskGroup``, with the heartbeat and the assigner of the split
streams (:mod:`streamer.runtime.membership`, :mod:`streamer.runtime.assignment`). One
that fails with an unexpected error cancels the others and the process exits 1 with the
reason, rather than running on half blind. Outages are not failures: a watcher rides
them out itself.

Shutdown has two phases (SIGTERM or SIGINT, see :mod:`streamer.runtime.shutdown`):
``stopping`` is set, so watchers stop reading and finish (commit or abort) the batch in
hand and the owners release their leases; whatever is still running after
``shutdown_grace_s`` is cancelled (and awaited). Every phase before that (connecting,
bootstrap) races ``stopping``, so a stop there takes effect at once. A second signal
exits at once.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from prometheus_client import CollectorRegistry

from .. import __version__
from ..core.errors import (
    BootstrapError,
    DatabaseError,
    FatalDatabaseError,
    SettingsError,
    StreamerError,
    TransientError,
)
from ..core.partitions import partitions_of
from ..core.schema import Schema, load_schema
from ..mongo import Mongo
from ..mongo.retries import Backoff, Outage, error_reason, retry_transient
from ..settings import Settings
from ..streams.handler import BatchOutcome
from ..streams.registry import STREAMS, default_instance_id, make_handlers, partition_counts
from . import partitionings
from .assignment import Assigner
from .bootstrap import bootstrap_exit_code, run_bootstrap
from .checkpoints import CheckpointStore
from .health import Health
from .http import HttpServer
from .lifecycle import any_done, first_of, sleep_unless_stopped
from .membership import Membership
from .messages import fatal, unreachable
from .metrics import Metrics
from .ownership import StreamOwner
from .processes import THIS_PROCESS, ProcessId
from .shutdown import Signals, unless_stopped
from .watchers import StreamWork, Watcher, watcher_options

log = structlog.get_logger("streamer.service")


@dataclass
class RunCounts:
    """What this process applied since it started (the shutdown summary, the demo)."""

    batches: int = 0
    events: int = 0
    quarantined: int = 0
    by_stream: dict[str, int] = field(default_factory=dict)

    def record(self, stream: str, outcome: BatchOutcome, seconds: float) -> None:
        self.batches += 1
        self.events += outcome.events
        self.quarantined += len(outcome.quarantined)
        self.by_stream[stream] = self.by_stream.get(stream, 0) + outcome.events


class Service:
    def __init__(
        self,
        settings: Settings,
        *,
        instance_id: str | None = None,
        streams: tuple[str, ...] = STREAMS,
        on_batch: Callable[[str, BatchOutcome, float], None] | None = None,
        registry: CollectorRegistry | None = None,
        http_port: int | None = None,
        probe_interval_s: float = 5.0,
        process: ProcessId = THIS_PROCESS,
    ) -> None:
        self.settings = settings
        self.instance_id = instance_id or settings.instance_id or default_instance_id()
        self.process = process  # this process, in its leases (tests run several in one)
        self.streams = streams
        self.stopping = asyncio.Event()
        self.totals = RunCounts()
        self._extra_on_batch = on_batch
        self.metrics = Metrics(
            registry,
            driver=settings.driver,
            oplog_headroom_alert_s=settings.oplog_headroom_alert_s,
        )
        self.mongo = Mongo(
            settings.mongo_options(),
            observers=[self.metrics.on_command],
            listeners=[self.metrics.pool_listener()],
        )
        # One owner per partition (per stream when unsplit), keyed by its lease's id.
        self.owners: dict[str, StreamOwner] = {}
        self.membership: Membership | None = None  # only when a stream is split
        self.assigner: Assigner | None = None
        self.health = Health(
            self.mongo,
            self.owners,
            self.metrics,
            ready_max_lag_s=settings.ready_max_lag_s,
            max_alert_series=settings.max_alert_series,
            ping_interval_s=probe_interval_s,
            alerts_interval_s=probe_interval_s,
            describe=lambda exc: unreachable(settings, exc),
        )
        self.http = HttpServer(
            self.metrics.registry,
            self.alive,
            self.health.readiness,
            port=settings.http_port if http_port is None else http_port,
        )
        self.ready = asyncio.Event()
        self._supervising = False

    @property
    def watchers(self) -> dict[str, Watcher]:
        """The watchers of the partitions (streams, when unsplit) this instance owns
        right now, by their lease's id."""
        return {
            name: owner.watcher
            for name, owner in self.owners.items()
            if owner.owned and owner.watcher is not None
        }

    def alive(self) -> bool:
        return not self.stopping.is_set() or self._supervising

    def _on_batch(self, stream: str, outcome: BatchOutcome, seconds: float) -> None:
        self.totals.record(stream, outcome, seconds)
        if outcome.transitions:
            self.health.alerts_changed.set()
        if self._extra_on_batch is not None:
            self._extra_on_batch(stream, outcome, seconds)

    def stop(self) -> None:
        if not self.stopping.is_set():
            log.info("service.stopping", grace_s=self.settings.shutdown_grace_s)
        self.stopping.set()

    async def _connect(self) -> bool:
        """Ping until the database answers or ``stopping``; False if stopped.

        Each attempt is one ping, bounded by the driver's server selection timeout, with
        :class:`Backoff` between attempts. No retry budget wraps the ping: the first
        failed attempt is logged at once (``service.database_unreachable``, with the
        redacted URI, the timeout and what to check), then at most one line a minute
        (:class:`Outage`); every attempt is at debug level. ``/readyz`` says the same.
        """
        self.mongo.open()
        backoff = Backoff(self.settings.retry_policy())
        outage: Outage | None = None
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                await unless_stopped(self.mongo.ping(), self.stopping)
            except TransientError as exc:  # no answer: not a refusal, which is fatal
                now = time.monotonic()
                outage = outage or Outage(started_at=started)
                wait_s = backoff.next_s()
                self._unreachable(outage, exc, now, wait_s)
                await self._pause(wait_s)
                continue
            if self.stopping.is_set():
                break
            self.health.database_answered()
            if outage is not None:
                log.info(
                    "service.database_reachable",
                    after_s=round(outage.lasted_s(time.monotonic()), 1),
                    attempts=outage.attempts + 1,
                )
            return True
        return False

    def _unreachable(self, outage: Outage, exc: BaseException, now: float, wait_s: float) -> None:
        """Count a failed connect attempt; log it if it is the first or a minute on."""
        why = unreachable(self.settings, exc)
        self.health.database_failed(outage.started_at, why)
        fields = {
            "attempt": outage.attempts + 1,
            "unreachable_for_s": round(outage.lasted_s(now), 1),
            "reason": error_reason(exc),
            "retry_in_s": round(wait_s, 2),
        }
        if outage.failed(now):
            log.error("service.database_unreachable", error=why, **fields)
        else:
            log.debug("service.connect_failed", **fields)

    async def _pause(self, seconds: float) -> None:
        await sleep_unless_stopped(self.stopping, seconds)

    async def run(self) -> int:
        """Run until stopped; the process exit code.

        The HTTP port is bound first, before any connection, so a port in use fails at
        once (SettingsError, exit 2) instead of after a connect and a bootstrap.
        """
        s = self.settings
        schema = self._schema()  # configuration: checked before anything is logged or served
        log.info(
            "service.starting",
            version=__version__,
            uri=s.redacted_uri,
            database=s.database,
            driver=s.driver,
            instance=self.instance_id,
            process=self.process.nonce,
            streams=list(self.streams),
        )
        try:
            await self.http.start()
        except OSError as exc:
            await self.http.close()
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise SettingsError(
                f"cannot listen on port {self.http.port} (STREAMER_HTTP_PORT): {reason}"
            ) from None
        log.info("service.http", port=self.http.port)
        try:
            return await self._start_and_supervise(schema)
        except FatalDatabaseError as exc:
            log.error("service.fatal", error=fatal(self.settings, exc))
            return 1
        finally:
            await self.mongo.close()
            await self.http.close()
            log.info(
                "service.stopped",
                batches=self.totals.batches,
                events=self.totals.events,
                quarantined=self.totals.quarantined,
            )

    def _schema(self) -> Schema | None:
        """The schema to bootstrap, read before anything starts: a bad file is a
        SchemaError (exit 2) at once, not after a connect."""
        if not self.settings.bootstrap_on_start:
            return None
        return load_schema(self.settings.schema_path)

    async def _start_and_supervise(self, schema: Schema | None) -> int:
        s = self.settings
        if not await self._connect():
            return 0
        if schema is None:
            log.info("bootstrap.skipped", reason="bootstrap_on_start is false")
            self.health.bootstrapped = True
            return await self._supervise()
        try:
            report = await unless_stopped(
                retry_transient(
                    lambda: run_bootstrap(self.mongo, schema),
                    what="bootstrap",
                    policy=s.retry_policy(),
                ),
                self.stopping,
            )
        except BootstrapError as exc:  # refused: a missing privilege, say
            log.error(
                "service.bootstrap_failed",
                error=str(exc),
                hint="run `streamer bootstrap` with a privileged user, or grant the "
                "role's bootstrap actions (README: The MongoDB role)",
            )
            return 1
        if report is None:
            return 0
        if bootstrap_exit_code(report) != 0:
            for line in report.lines():
                log.error("bootstrap.conflict", detail=line)
            log.error(
                "service.bootstrap_failed",
                hint="review the conflicts; `streamer bootstrap --replace-conflicting` "
                "replaces them",
            )
            return 1
        self.health.bootstrapped = True
        return await self._supervise()

    async def _supervise(self) -> int:
        store = CheckpointStore(self.mongo, self.instance_id)
        handlers = make_handlers(self.mongo, self.settings)
        options = watcher_options(self.settings)
        counts = partition_counts(self.settings, self.streams)
        await unless_stopped(
            retry_transient(
                lambda: partitionings.check_server_can_split(self.mongo, counts),
                what="buildInfo",
                policy=self.settings.retry_policy(),
            ),
            self.stopping,
        )
        for name, count in counts.items():
            await unless_stopped(self._ensure_partitioning(name, count), self.stopping)
        split = {name: count for name, count in counts.items() if count > 1}
        if split:
            self.membership = Membership(
                self.mongo, self.instance_id, self.settings.lease_ttl_s, process=self.process
            )
            self.assigner = Assigner(
                self.mongo, self.membership, split, ttl_s=self.settings.lease_ttl_s
            )
        for name, count in counts.items():
            assigner = self.assigner if name in split else None
            for unit in partitions_of(name, count):
                work = StreamWork(
                    self.mongo,
                    store,
                    handlers[name].for_partition(unit),
                    options,
                    self._on_batch,
                    self.metrics,
                )
                owner = StreamOwner(
                    work,
                    self.stopping,
                    lease_ttl_s=self.settings.lease_ttl_s,
                    process=self.process,
                    assigned=assigner is not None,
                )
                self.owners[unit.key] = owner
                if assigner is not None:
                    assigner.add(owner)
        self.ready.set()
        self._supervising = True
        group_task = asyncio.create_task(self._run_group(), name="supervisor")
        try:
            await first_of(any_done(group_task), self.stopping.wait())
            if not group_task.done():
                # Stopping: the owners finish or abandon their batch and release leases.
                started = time.monotonic()
                await asyncio.wait({group_task}, timeout=self.settings.shutdown_grace_s)
                if not group_task.done():
                    log.warning(
                        "service.grace_expired", waited_s=round(time.monotonic() - started, 1)
                    )
            return self._outcome(group_task)
        finally:
            self._supervising = False
            group_task.cancel()  # a no-op once it is done
            # Awaited; asyncio.wait raises only the caller's cancellation.
            await asyncio.wait({group_task})
            if self.membership is not None and not self.stopping.is_set():
                await self._leave_after_failure(self.membership)

    @staticmethod
    async def _leave_after_failure(membership: Membership) -> None:
        """A failed instance leaves at once (a clean stop's heartbeat task does it), so
        the others do not count it in their fair shares until its heartbeat expires."""
        try:
            await asyncio.wait_for(membership.leave(), 5.0)
        except (DatabaseError, TimeoutError) as exc:
            log.info("member.leave_failed", error=f"{type(exc).__name__}: {exc}")

    async def _ensure_partitioning(self, stream: str, count: int) -> None:
        """The stream's stored partitioning agrees with ours, or a one-line refusal;
        during a repartition into ``count``, wait until its new checkpoints exist."""
        said = False
        while not self.stopping.is_set():
            stored = await retry_transient(
                lambda: partitionings.ensure(self.mongo, stream, count),
                what="partitioning",
                policy=self.settings.retry_policy(),
            )
            if stored.state == "ready":
                return
            if not said:
                log.info("partitioning.waiting", stream=stream, state=stored.state)
                said = True
            await self._pause(1.0)

    @staticmethod
    def _outcome(group_task: asyncio.Task[None]) -> int:
        """The exit code of a finished (or about to be cancelled) supervision group."""
        if not group_task.done():
            return 0
        exc = group_task.exception() if not group_task.cancelled() else None
        if exc is None:
            return 0
        if isinstance(exc, ExceptionGroup):
            # One error line says why the service stops: the first failure. Both streams
            # refused together (a privilege they share) add warnings, not more errors; a
            # bug is always an error, with its traceback.
            for i, failure in enumerate(exc.exceptions):
                error = f"{type(failure).__name__}: {failure}"
                if i and isinstance(failure, StreamerError):
                    log.warning("service.watcher_also_failed", error=error)
                else:
                    log.error(
                        "service.watcher_failed",
                        error=error,
                        exc_info=not isinstance(failure, StreamerError),
                    )
            return 1
        raise exc

    async def _run_group(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.health.run(self.stopping), name="health")
            if self.membership is not None:
                group.create_task(self.membership.run(self.stopping), name="membership")
            if self.assigner is not None:
                group.create_task(self.assigner.run(self.stopping), name="assignment")
            for name, owner in self.owners.items():
                group.create_task(owner.run(), name=f"own-{name}")


def install_signal_handlers(
    service: Service, on_force: Callable[[], None] | None = None
) -> Signals:
    """The first SIGTERM/SIGINT stops the service gracefully; a second forces the exit
    (after ``on_force``)."""
    return Signals(service.stop, on_force=on_force).install()
