"""Command monitoring: every command's duration and outcome, and slow ones logged.

PyMongo calls listeners synchronously on whatever thread runs the command (Motor's
executor threads too), so the listener only does cheap, thread-safe work: a counter
update and, for slow or failed commands, one structured log event. Command bodies are
never logged; they hold user data.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from pymongo import monitoring

log = structlog.get_logger("streamer.mongo")

# Commands the driver runs on its own to watch the topology; not the service's work.
_IGNORED = frozenset({"hello", "ismaster", "isMaster"})

CommandObserver = Callable[[str, float, bool], None]
"""Called with (command name, duration in seconds, succeeded)."""


@dataclass
class CommandStats:
    """Running totals since start: what `make bench` reads for round trips."""

    commands: int = 0
    failures: int = 0
    by_name: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, name: str, ok: bool) -> None:
        with self._lock:
            self.commands += 1
            self.by_name[name] = self.by_name.get(name, 0) + 1
            if not ok:
                self.failures += 1


class CommandListener(monitoring.CommandListener):
    """Feeds durations to observers and logs slow or failed commands."""

    def __init__(self, slow_ms: float, observers: list[CommandObserver] | None = None) -> None:
        self.slow_s = slow_ms / 1000
        self.observers = list(observers or [])
        self.stats = CommandStats()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._finish(event.command_name, event.duration_micros / 1e6, True, event)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._finish(event.command_name, event.duration_micros / 1e6, False, event)
        failure = event.failure if isinstance(event.failure, dict) else {}
        log.info(
            "mongo.command_failed",
            command=event.command_name,
            code=failure.get("code"),
            code_name=failure.get("codeName"),
            duration_ms=round(event.duration_micros / 1000, 1),
        )

    def _finish(
        self,
        name: str,
        seconds: float,
        ok: bool,
        event: monitoring.CommandSucceededEvent | monitoring.CommandFailedEvent,
    ) -> None:
        if name in _IGNORED:
            return
        self.stats.record(name, ok)
        for observe in self.observers:
            observe(name, seconds, ok)
        # A change stream's getMore waits on purpose (maxAwaitTimeMS); not slow.
        if seconds >= self.slow_s and ok and name != "getMore":
            log.warning(
                "mongo.slow_command",
                command=name,
                duration_ms=round(seconds * 1000, 1),
                database=event.database_name,
                server=f"{event.connection_id[0]}:{event.connection_id[1]}",
            )


class PoolObserver(Protocol):
    """What the pool listener reports to (the metrics' pool gauges), per server."""

    def pool_opened(self, server: str) -> None: ...
    def pool_closed(self, server: str) -> None: ...
    def connections(self, server: str, delta: int) -> None: ...
    def checked_out(self, server: str, delta: int) -> None: ...


class PoolListener(monitoring.ConnectionPoolListener):
    """Pool size and checked-out connections per server, from the driver's CMAP events."""

    def __init__(self, observer: PoolObserver) -> None:
        self.observer = observer

    @staticmethod
    def _server(event: Any) -> str:
        host, port = event.address
        return f"{host}:{port}"

    def pool_created(self, event: monitoring.PoolCreatedEvent) -> None:
        self.observer.pool_opened(self._server(event))

    def pool_ready(self, event: monitoring.PoolReadyEvent) -> None:
        pass

    def pool_cleared(self, event: monitoring.PoolClearedEvent) -> None:
        pass

    def pool_closed(self, event: monitoring.PoolClosedEvent) -> None:
        self.observer.pool_closed(self._server(event))

    def connection_created(self, event: monitoring.ConnectionCreatedEvent) -> None:
        self.observer.connections(self._server(event), 1)

    def connection_ready(self, event: monitoring.ConnectionReadyEvent) -> None:
        pass

    def connection_closed(self, event: monitoring.ConnectionClosedEvent) -> None:
        self.observer.connections(self._server(event), -1)

    def connection_check_out_started(
        self, event: monitoring.ConnectionCheckOutStartedEvent
    ) -> None:
        pass

    def connection_check_out_failed(self, event: monitoring.ConnectionCheckOutFailedEvent) -> None:
        pass

    def connection_checked_out(self, event: monitoring.ConnectionCheckedOutEvent) -> None:
        self.observer.checked_out(self._server(event), 1)

    def connection_checked_in(self, event: monitoring.ConnectionCheckedInEvent) -> None:
        self.observer.checked_out(self._server(event), -1)
