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
