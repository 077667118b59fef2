"""Classify driver errors once, and retry the transient ones with bounded backoff.

Classification follows the server's error labels first (the driver specifications'
"Transactions" and "Retryable Writes" say a client decides by label, not by code), then
the codes of mongod's ``error_codes.yml`` that mean "the primary moved or is going away".
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from pymongo.errors import (
    ConnectionFailure,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
)
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    wait_exponential_jitter,
)

from ..errors import DatabaseUnavailable, FatalDatabaseError

log = structlog.get_logger("streamer.retries")

T = TypeVar("T")

TRANSIENT_LABELS = frozenset(
    {"TransientTransactionError", "UnknownTransactionCommitResult", "RetryableWriteError"}
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


class Kind(enum.Enum):
    TRANSIENT = "transient"
    HISTORY_LOST = "history_lost"
    FATAL = "fatal"
    OTHER = "other"


def classify(exc: BaseException) -> Kind:
    """What retrying can do about ``exc``."""
    if isinstance(exc, PyMongoError):
        if any(exc.has_error_label(label) for label in TRANSIENT_LABELS):
            return Kind.TRANSIENT
        if isinstance(exc, ConnectionFailure | ServerSelectionTimeoutError):
            return Kind.TRANSIENT
        code = getattr(exc, "code", None)
        if isinstance(exc, OperationFailure) and code is not None:
            if code in HISTORY_LOST_CODES:
                return Kind.HISTORY_LOST
            if code in TRANSIENT_CODES:
                return Kind.TRANSIENT
            if code in FATAL_CODES:
                return Kind.FATAL
    return Kind.OTHER


def is_transient(exc: BaseException) -> bool:
    return classify(exc) is Kind.TRANSIENT


def error_reason(exc: BaseException) -> str:
    """A short, bounded label for logs and metrics (never a message with user data)."""
    code = getattr(exc, "code", None)
    name = type(exc).__name__
    if isinstance(exc, PyMongoError) and exc.has_error_label("UnknownTransactionCommitResult"):
        return "UnknownTransactionCommitResult"
    return f"{name}:{code}" if code is not None else name


OnRetry = Callable[[str, BaseException, int], None]


async def retry_transient(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    max_delay_s: float,
    on_retry: OnRetry | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    initial_wait_s: float = 0.05,
    max_wait_s: float = 5.0,
) -> T:
    """Run ``operation``, retrying transient failures with exponential backoff and jitter.

    Gives up after ``max_delay_s`` with :class:`DatabaseUnavailable`; fatal errors become
    :class:`FatalDatabaseError`; anything else propagates unchanged.
    """

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        assert exc is not None
        reason = error_reason(exc)
        log.warning(
            "mongo.retry",
            operation=what,
            attempt=state.attempt_number,
            reason=reason,
            wait_s=round(state.upcoming_sleep, 3),
        )
        if on_retry is not None:
            on_retry(what, exc, state.attempt_number)

    retrying = AsyncRetrying(
        retry=retry_if_exception(is_transient),
        wait=wait_exponential_jitter(
            multiplier=initial_wait_s, jitter=initial_wait_s, max=max_wait_s
        ),
        stop=stop_after_delay(max_delay_s),
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=True,
    )

    async def call() -> T:
        # tenacity calls a plain callable (a lambda returning a coroutine) without
        # awaiting it; this wrapper is a coroutine function, so it is awaited.
        return await operation()

    try:
        return await retrying(call)
    except PyMongoError as exc:
        kind = classify(exc)
        if kind is Kind.TRANSIENT:
            raise DatabaseUnavailable(f"{what}: {error_reason(exc)}: {exc}") from exc
        if kind is Kind.FATAL:
            raise FatalDatabaseError(f"{what}: {exc}") from exc
        raise
