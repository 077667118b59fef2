"""The retry policy: every retry and backoff in the service is one of these.

Three shapes, all on the budgets of :class:`RetryPolicy` (named settings, jittered):

* :func:`retry_transient` reruns one operation while it fails with
  :class:`~streamer.core.errors.TransientError`, for at most ``retry_max_s``, then raises
  :class:`~streamer.core.errors.DatabaseUnavailable`;
* :func:`retry_commit` reruns ``commitTransaction`` in place while its outcome is
  unknown (:class:`~streamer.core.errors.UnknownCommitResult`);
* :class:`Backoff` spaces out the reconnect attempts of a loop that outlives outages
  (the watcher's, the supervisor's start-up connect): doubling up to
  ``outage_backoff_max_s``;
* :class:`Outage` counts the failed attempts of one outage and says which of them to
  log: the first at once, then at most one every :data:`OUTAGE_LOG_EVERY_S`, so an
  operator sees the problem after one timeout and a long outage does not flood the log.

**No budget nests inside another.** An operation run by :func:`retry_transient` (a
Committer's transaction) may itself retry its commit; the inner retry is bounded by
what remains of the outer deadline, not by a fresh ``retry_max_s``, so a batch gives up
after ``retry_max_s`` in all rather than up to its square. The deadline travels in a
context variable, so the database seam needs no extra argument.

Errors reach this module already translated (:mod:`streamer.mongo.errors`).
"""

from __future__ import annotations

import asyncio
import contextvars
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_exponential_jitter,
)

from ..core.errors import DatabaseError, DatabaseUnavailable, TransientError, UnknownCommitResult

__all__ = [
    "OUTAGE_LOG_EVERY_S",
    "Backoff",
    "OnRetry",
    "Outage",
    "RetryPolicy",
    "error_reason",
    "remaining_s",
    "retry_commit",
    "retry_transient",
]

log = structlog.get_logger("streamer.retries")

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]
OnRetry = Callable[[str, BaseException, int], None]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The retry budgets; the defaults are :class:`~streamer.settings.Settings`' (which
    builds the service's with ``Settings.retry_policy()``)."""

    max_s: float = 30.0  # retry_max_s: one operation, all its retries included
    initial_wait_s: float = 0.05  # retry_initial_wait_s: first wait, then doubling
    max_wait_s: float = 5.0  # retry_max_wait_s: longest wait between two tries
    outage_backoff_s: float = 1.0  # first wait before reconnecting after an outage
    outage_backoff_max_s: float = 30.0  # longest wait between reconnects


@dataclass(frozen=True, slots=True)
class _Deadline:
    at: float
    clock: Clock


_deadline: contextvars.ContextVar[_Deadline | None] = contextvars.ContextVar(
    "streamer_retry_deadline", default=None
)


def remaining_s() -> float | None:
    """Seconds left of the enclosing retry's budget; None outside any retry."""
    deadline = _deadline.get()
    return None if deadline is None else max(0.0, deadline.at - deadline.clock())


def error_reason(exc: BaseException) -> str:
    """A short, bounded label for logs and metrics (never a message with user data)."""
    return exc.reason if isinstance(exc, DatabaseError) else type(exc).__name__


async def _retry(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    retry_on: type[BaseException],
    budget_s: float,
    initial_wait_s: float,
    max_wait_s: float,
    on_retry: OnRetry | None,
    sleep: Sleep,
    clock: Clock,
) -> T:
    """Run ``operation``, retrying ``retry_on`` until ``budget_s`` (or the outer deadline)."""
    outer = remaining_s()
    budget_s = budget_s if outer is None else min(budget_s, outer)
    deadline = _Deadline(clock() + budget_s, clock)

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        assert exc is not None
        log.warning(
            "mongo.retry",
            operation=what,
            attempt=state.attempt_number,
            reason=error_reason(exc),
            wait_s=round(state.upcoming_sleep, 3),
        )
        if on_retry is not None:
            on_retry(what, exc, state.attempt_number)

    retrying = AsyncRetrying(
        retry=retry_if_exception_type(retry_on),
        wait=wait_exponential_jitter(
            multiplier=initial_wait_s, jitter=initial_wait_s, max=max_wait_s
        ),
        stop=lambda state: clock() >= deadline.at,
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=True,
    )

    async def call() -> T:
        # tenacity calls a plain callable (a lambda returning a coroutine) without
        # awaiting it; this wrapper is a coroutine function, so it is awaited. It runs
        # the attempt under this retry's deadline, which an inner retry then shares.
        token = _deadline.set(deadline)
        try:
            return await operation()
        finally:
            _deadline.reset(token)

    return await retrying(call)


async def retry_transient(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    max_delay_s: float | None = None,
    policy: RetryPolicy | None = None,
    on_retry: OnRetry | None = None,
    sleep: Sleep = asyncio.sleep,
    clock: Clock = time.monotonic,
    initial_wait_s: float | None = None,
    max_wait_s: float | None = None,
) -> T:
    """Run ``operation``, retrying transient failures with exponential backoff and jitter.

    The budget is ``max_delay_s`` (default: the policy's ``max_s``), shortened to what
    remains of an enclosing retry's. Gives up with :class:`DatabaseUnavailable` from the
    last error; anything but :class:`TransientError` propagates at once, unchanged.
    """
    policy = policy or RetryPolicy()
    try:
        return await _retry(
            operation,
            what=what,
            retry_on=TransientError,
            budget_s=policy.max_s if max_delay_s is None else max_delay_s,
            initial_wait_s=policy.initial_wait_s if initial_wait_s is None else initial_wait_s,
            max_wait_s=policy.max_wait_s if max_wait_s is None else max_wait_s,
            on_retry=on_retry,
            sleep=sleep,
            clock=clock,
        )
    except TransientError as exc:
        raise DatabaseUnavailable(f"{what}: {exc.reason}: {exc}") from exc


async def retry_commit(
    commit: Callable[[], Awaitable[None]],
    *,
    policy: RetryPolicy,
    sleep: Sleep = asyncio.sleep,
    clock: Clock = time.monotonic,
) -> None:
    """Commit, retrying the commit itself while its outcome is unknown.

    A commit that failed with UnknownTransactionCommitResult (a network error, a
    stepdown) may or may not have applied, and the transaction is still open on the
    server, holding its writes: running it again would conflict with itself. The
    Transactions specification's answer is to retry commitTransaction, which is
    idempotent. Bounded by the enclosing retry's remaining time (a Committer's), else
    by ``max_s``; when the budget is spent the :class:`UnknownCommitResult` propagates
    and the caller decides (the Committer asks
    :meth:`~streamer.runtime.checkpoints.CheckpointStore.landed`).
    """
    await _retry(
        commit,
        what="commitTransaction",
        retry_on=UnknownCommitResult,
        budget_s=policy.max_s,
        initial_wait_s=policy.initial_wait_s,
        max_wait_s=policy.max_wait_s,
        on_retry=None,
        sleep=sleep,
        clock=clock,
    )


class Backoff:
    """Waits between reconnect attempts of a loop that rides out outages.

    Doubles from ``outage_backoff_s`` up to ``outage_backoff_max_s``, each wait jittered
    by up to a tenth so that instances that lost the database together do not come
    back in step.
    """

    __slots__ = ("_next", "_random", "policy")

    def __init__(self, policy: RetryPolicy, rng: Callable[[], float] = random.random) -> None:
        self.policy = policy
        self._random = rng
        self._next = policy.outage_backoff_s

    def reset(self) -> None:
        self._next = self.policy.outage_backoff_s

    def next_s(self) -> float:
        """The wait before the next attempt; each call doubles the one after."""
        base = self._next
        self._next = min(base * 2, self.policy.outage_backoff_max_s)
        return base * (1 + 0.1 * self._random())


# One line when an outage starts, then one a minute: often enough that a tail of the log
# shows it is still going on, rare enough that a night-long outage is a page, not a flood.
OUTAGE_LOG_EVERY_S = 60.0


@dataclass(slots=True)
class Outage:
    """The failed attempts to reach the database since ``started_at`` (monotonic s).

    Pure bookkeeping, no I/O and no clock of its own: the caller passes ``now``.
    """

    started_at: float
    log_every_s: float = OUTAGE_LOG_EVERY_S
    attempts: int = 0
    logged_at: float | None = None

    def failed(self, now: float) -> bool:
        """Count one failed attempt; True if it is one to log (the first, then one a
        ``log_every_s``)."""
        self.attempts += 1
        if self.logged_at is None or now - self.logged_at >= self.log_every_s:
            self.logged_at = now
            return True
        return False

    def lasted_s(self, now: float) -> float:
        """How long the database has been unreachable, as of ``now``."""
        return max(0.0, now - self.started_at)
