"""Driver exceptions become the service's (:mod:`streamer.core.errors`), here and only here.

:func:`classify` decides once what a driver exception means, by the server's error
labels first (the driver specifications' "Transactions", "Retryable Writes" and
"Change Streams" say a client decides by label, not by code), then by the driver's
exception type, then by the codes of mongod's ``error_codes.yml``; a fatal code
(Unauthorized, AuthenticationFailed) outranks every label. :func:`translate`
builds the service's exception from that class; :class:`streamer.mongo.Mongo` applies it
to every driver call, so no ``PyMongoError`` leaves this package.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    OperationFailure,
    PyMongoError,
)

from ..core.errors import (
    CommandError,
    DatabaseError,
    DuplicateKey,
    FatalDatabaseError,
    HistoryLost,
    NamespaceExists,
    StreamerError,
    StreamInterrupted,
    TransientError,
    UnknownCommitResult,
)

__all__ = ["classify", "driver_errors", "translate"]

# Labels, strongest first: the first one an error carries decides its class.
LABELS: tuple[tuple[str, type[DatabaseError]], ...] = (
    ("UnknownTransactionCommitResult", UnknownCommitResult),
    ("TransientTransactionError", TransientError),
    ("RetryableWriteError", TransientError),
    ("ResumableChangeStreamError", StreamInterrupted),
)
# error_codes.yml: the NotPrimaryError and ShutdownError categories, retryable write
# codes, WriteConflict and the network ones.
TRANSIENT_CODES = frozenset(
    {
        6,  # HostUnreachable
        7,  # HostNotFound
        89,  # NetworkTimeout
        91,  # ShutdownInProgress
        112,  # WriteConflict
        189,  # PrimarySteppedDown
        262,  # ExceededTimeLimit
        9001,  # SocketException
        10107,  # NotWritablePrimary
        11600,  # InterruptedAtShutdown
        11602,  # InterruptedDueToReplStateChange
        13435,  # NotPrimaryNoSecondaryOk
        13436,  # NotPrimaryOrSecondary
        251,  # NoSuchTransaction (the transaction was aborted under us: run it again)
    }
)
# The stream cannot continue from its stored position.
HISTORY_LOST_CODES = frozenset(
    {
        286,  # ChangeStreamHistoryLost
        260,  # InvalidResumeToken
        280,  # ChangeStreamFatalError
        136,  # CappedPositionLost
    }
)
FATAL_CODES = frozenset(
    {
        13,  # Unauthorized
        18,  # AuthenticationFailed
        8000,  # AtlasError (bad credentials on Atlas)
        40573,  # "The $changeStream stage is only supported on replica sets"
    }
)
CODES: dict[int, type[StreamerError]] = {
    **dict.fromkeys(TRANSIENT_CODES, TransientError),
    **dict.fromkeys(HISTORY_LOST_CODES, HistoryLost),
    **dict.fromkeys(FATAL_CODES, FatalDatabaseError),
    43: StreamInterrupted,  # CursorNotFound: the cursor is gone, reopen the stream
    11000: DuplicateKey,
    48: NamespaceExists,
}


def _code(exc: PyMongoError) -> int | None:
    if isinstance(exc, BulkWriteError):
        # A bulk write reports 65 (MultipleErrorsOccurred); its write errors say what.
        codes = {e.get("code") for e in exc.details.get("writeErrors", [])}
        return codes.pop() if len(codes) == 1 else exc.code
    code = getattr(exc, "code", None)
    return code if isinstance(code, int) else None


def classify(exc: PyMongoError) -> type[StreamerError]:
    """The service's exception class for a driver exception: labels, type, then code.

    A fatal code comes first: no label makes retrying grant a privilege or fix a
    password, and a refusal retried within ``retry_max_s`` is a service that stops late.
    """
    if isinstance(exc, OperationFailure) and _code(exc) in FATAL_CODES:
        return FatalDatabaseError
    for label, cls in LABELS:
        if exc.has_error_label(label):
            return cls
    if isinstance(exc, ConnectionFailure):  # ServerSelectionTimeoutError, AutoReconnect…
        return TransientError
    if isinstance(exc, OperationFailure):
        return CODES.get(_code(exc) or 0, CommandError)
    return CommandError


def _details(exc: PyMongoError) -> dict[str, Any]:
    details = getattr(exc, "details", None)
    return details if isinstance(details, dict) else {}


def translate(exc: PyMongoError) -> StreamerError:
    """The service's exception for ``exc``; the caller raises it ``from exc``."""
    cls = classify(exc)
    code = _code(exc)
    reason = f"{type(exc).__name__}:{code}" if code is not None else type(exc).__name__
    if cls is UnknownCommitResult:
        reason = "UnknownTransactionCommitResult"
    if cls is HistoryLost:
        return HistoryLost(f"{reason}: {exc}")
    assert issubclass(cls, DatabaseError)
    # The driver keeps every label (the server's and those it adds) in _error_labels.
    labels: set[str] = set(getattr(exc, "_error_labels", None) or ())
    return cls(
        str(exc),
        code=code,
        code_name=_details(exc).get("codeName"),
        labels=labels,
        reason=reason,
    )


def _cancel_requests() -> int:
    """How many cancellations of the current task are pending (0 outside a task)."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running loop
        return 0
    return task.cancelling() if task is not None else 0


@contextmanager
def driver_errors() -> Iterator[None]:
    """Translate any driver exception raised in the block (``raise … from exc``).

    A cancellation requested during the call always comes out as ``CancelledError``.
    Python 3.11's ``asyncio.wait_for`` drops a cancellation that arrives as the awaited
    future finishes (cpython gh-86296, fixed in 3.12), and PyMongo awaits its TLS socket
    calls through it: the call then returns, or fails, as if never cancelled. Seen as a
    service that never stopped after a refusal, its health probe's task cancelled by the
    TaskGroup and polling on.
    """
    before = _cancel_requests()
    try:
        yield
    except PyMongoError as exc:
        if _cancel_requests() > before:
            raise asyncio.CancelledError from exc
        raise translate(exc) from exc
    if _cancel_requests() > before:
        raise asyncio.CancelledError
