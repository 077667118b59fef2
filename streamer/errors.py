"""The service's exceptions. Driver errors are translated into these at the boundary.

::

    StreamerError
    ├── SettingsError            invalid configuration (settings.py); exit 2
    ├── DatabaseUnavailable      transient failures outlasted the retry budget; the
    │                            watcher backs off and reconnects, the process lives on
    ├── FatalDatabaseError       retrying cannot help (authentication, authorization,
    │                            not a replica set); exit 1 with the reason
    ├── HistoryLost              the stored resume point is gone from the oplog, the
    │                            token is invalid or the collection was dropped: resync
    ├── CheckpointConflict       another instance moved the checkpoint first; reload it
    └── BootstrapError           the declarative schema cannot be applied as asked
        └── SchemaConflict       an existing index differs from the declared one

Each driver exception is classified once, in :mod:`streamer.mongo.retries`.
"""

from __future__ import annotations

__all__ = [
    "BootstrapError",
    "CheckpointConflict",
    "DatabaseUnavailable",
    "FatalDatabaseError",
    "HistoryLost",
    "SchemaConflict",
    "SettingsError",
    "StreamerError",
]


class StreamerError(Exception):
    """Base of every error the service raises on purpose."""


class SettingsError(StreamerError):
    """The configuration is invalid; the message names every bad key."""


class DatabaseUnavailable(StreamerError):
    """Transient database failures did not clear within the retry budget."""


class FatalDatabaseError(StreamerError):
    """A database error that retrying cannot fix."""


class HistoryLost(StreamerError):
    """The stream cannot continue from its checkpoint; the derived data must be resynced."""

    def __init__(self, reason: str, kind: str = "history_lost") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind  # a bounded label for metrics


class CheckpointConflict(StreamerError):
    """The checkpoint is no longer the one this batch started from."""


class BootstrapError(StreamerError):
    """The declared schema could not be applied."""


class SchemaConflict(BootstrapError):
    """An existing index has the declared name or keys but other options."""
