"""The service's exceptions. Driver errors are translated into these at the boundary.

::

    StreamerError
    ├── SettingsError            invalid configuration (settings.py); exit 2
    │   └── SchemaError          the schema file is unreadable or malformed (core/schema.py)
    ├── DatabaseUnavailable      transient failures outlasted the retry budget; the
    │                            watcher backs off and reconnects, the process lives on
    ├── DatabaseError            a driver or server error, translated; carries the
    │   │                        server's code, codeName and error labels (if any)
    │   ├── TransientError       retry the operation: the primary moved, the network
    │   │   │                    dropped, a write conflict, a transient label
    │   │   └── UnknownCommitResult  the commit may or may not have applied; retry
    │   │                        commitTransaction itself (it is idempotent)
    │   ├── StreamInterrupted    the change stream can be resumed (the label
    │   │                        ResumableChangeStreamError, CursorNotFound 43): reopen
    │   ├── DuplicateKey         11000: a unique index refused the write
    │   ├── NamespaceExists      48: the collection exists already
    │   ├── FatalDatabaseError   retrying cannot help (authentication, authorization,
    │   │                        not a replica set); exit 1 with the reason
    │   └── CommandError         any other refusal by the server or driver
    ├── HistoryLost              the stored resume point is gone from the oplog, the
    │                            token is invalid or the collection was dropped: resync
    ├── CheckpointConflict       another instance moved the checkpoint first; reload it
    ├── NotComparable            verify cannot line the derived data up with the sources
    │                            at one cluster time yet (a resync under way, a position
    │                            older than the snapshot history window); wait or exit 1
    └── BootstrapError           the declarative schema cannot be applied as asked
        └── SchemaConflict       an existing index differs from the declared one

Each driver exception is classified once, by :func:`streamer.mongo.errors.translate`,
which :class:`streamer.mongo.Mongo` applies to every driver call: no driver exception
leaves ``streamer.mongo``. Retrying is :mod:`streamer.mongo.retries`' business.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "BootstrapError",
    "CheckpointConflict",
    "CommandError",
    "DatabaseError",
    "DatabaseUnavailable",
    "DuplicateKey",
    "FatalDatabaseError",
    "HistoryLost",
    "NamespaceExists",
    "NotComparable",
    "SchemaConflict",
    "SchemaError",
    "SettingsError",
    "StreamInterrupted",
    "StreamerError",
    "TransientError",
    "UnknownCommitResult",
]


class StreamerError(Exception):
    """Base of every error the service raises on purpose."""


class SettingsError(StreamerError):
    """The configuration is invalid; the message names every bad key."""


class SchemaError(SettingsError):
    """The schema file cannot be read or is malformed: configuration, checked before
    connecting, so every command exits 2 with it."""


class DatabaseUnavailable(StreamerError):
    """Transient database failures did not clear within the retry budget."""


class DatabaseError(StreamerError):
    """A database call failed; ``code``, ``code_name`` and ``labels`` are the server's."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        code_name: str | None = None,
        labels: Iterable[str] = (),
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.code_name = code_name
        self.labels = frozenset(labels)
        # A short, bounded label for logs and metrics (never a message with user data).
        self.reason = reason or (f"{type(self).__name__}:{code}" if code else type(self).__name__)


class TransientError(DatabaseError):
    """Running the operation again may succeed."""


class UnknownCommitResult(TransientError):
    """commitTransaction failed without saying whether the transaction applied."""


class StreamInterrupted(DatabaseError):
    """The change stream's cursor is gone or interrupted; reopen it from the checkpoint."""


class DuplicateKey(DatabaseError):
    """A unique index refused the write (11000)."""


class NamespaceExists(DatabaseError):
    """The collection to create exists already (48)."""


class FatalDatabaseError(DatabaseError):
    """A database error that retrying cannot fix."""


class CommandError(DatabaseError):
    """Any other error the server or driver reported."""


class HistoryLost(StreamerError):
    """The stream cannot continue from its checkpoint; the derived data must be resynced."""

    def __init__(self, reason: str, kind: str = "history_lost") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind  # a bounded label for metrics


class Repartitioned(StreamerError):
    """The partition's checkpoint was retired by a repartition: this instance must be
    restarted with the new ``partitions`` setting."""


class CheckpointConflict(StreamerError):
    """The checkpoint is no longer the one this batch started from."""


class NotComparable(StreamerError):
    """``streamer verify`` cannot compare at one cluster time now; the message says why."""


class BootstrapError(StreamerError):
    """The declared schema could not be applied."""


class SchemaConflict(BootstrapError):
    """An existing index has the declared name or keys but other options."""
