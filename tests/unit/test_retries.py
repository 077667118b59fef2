"""The retry policy: transient failures retried with an injected sleep and clock."""

from __future__ import annotations

import types
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import tenacity
from pymongo.errors import AutoReconnect, OperationFailure

from streamer.core.errors import (
    DatabaseUnavailable,
    DuplicateKey,
    FatalDatabaseError,
    HistoryLost,
    TransientError,
    UnknownCommitResult,
)
from streamer.mongo.errors import translate
from streamer.mongo.retries import (
    Backoff,
    Outage,
    RetryPolicy,
    remaining_s,
    retry_commit,
    retry_transient,
)
from streamer.settings import Settings


def failure(code: int | None, *labels: str) -> BaseException:
    """A server error as the seam raises it: translated from the driver's."""
    details = {"errorLabels": list(labels)} if labels else None
    return translate(OperationFailure("x", code=code, details=details))


def disconnected(message: str) -> BaseException:
    return translate(AutoReconnect(message))


# -- retry_transient -------------------------------------------------------------------------


class Clock:
    """A fake monotonic clock that only the fake sleep advances."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.delays: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The retry deadline is measured on this clock, so no test waits for real."""
    fake = Clock()
    monkeypatch.setattr(tenacity, "time", types.SimpleNamespace(monotonic=fake.monotonic))
    return fake


def flaky(*outcomes: Any) -> tuple[Callable[[], Awaitable[Any]], list[int]]:
    """An operation raising or returning each outcome in turn (the last one repeats)."""
    calls: list[int] = []

    async def operation() -> Any:
        calls.append(1)
        outcome = outcomes[min(len(calls), len(outcomes)) - 1]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return operation, calls


async def test_a_transient_failure_is_retried_until_the_operation_succeeds(clock: Clock) -> None:
    """Two NotWritablePrimary errors, then success: three calls, two backoff sleeps."""
    operation, calls = flaky(failure(10107), disconnected("x"), "done")
    result = await retry_transient(
        operation, what="op", max_delay_s=30, sleep=clock.sleep, clock=clock.monotonic
    )
    assert result == "done" and len(calls) == 3
    assert len(clock.delays) == 2 and all(0 < d <= 5.0 for d in clock.delays)


async def test_success_at_first_try_does_not_sleep(clock: Clock) -> None:
    """No failure, no retry."""
    operation, calls = flaky(42)
    assert (
        await retry_transient(
            operation, what="op", max_delay_s=1, sleep=clock.sleep, clock=clock.monotonic
        )
        == 42
    )
    assert len(calls) == 1 and clock.delays == []


async def test_on_retry_is_called_once_per_retry(clock: Clock) -> None:
    """on_retry gets the operation name, the error and the attempt number."""
    first, second = failure(189), failure(91)
    seen: list[tuple[str, BaseException, int]] = []
    operation, _ = flaky(first, second, "ok")
    await retry_transient(
        operation,
        what="commit",
        max_delay_s=30,
        sleep=clock.sleep,
        clock=clock.monotonic,
        on_retry=lambda *args: seen.append(args),
    )
    assert seen == [("commit", first, 1), ("commit", second, 2)]


async def test_transient_failures_beyond_the_budget_raise_database_unavailable(
    clock: Clock,
) -> None:
    """Retrying stops once max_delay_s has passed, with DatabaseUnavailable from the last error."""
    last = failure(189)
    operation, calls = flaky(last)
    with pytest.raises(DatabaseUnavailable, match=r"^load: OperationFailure:189") as info:
        await retry_transient(
            operation,
            what="load",
            max_delay_s=2.0,
            sleep=clock.sleep,
            clock=clock.monotonic,
            max_wait_s=0.5,
        )
    assert info.value.__cause__ is last
    assert sum(clock.delays[:-1]) < 2.0 <= sum(clock.delays)
    assert len(calls) == len(clock.delays) + 1 > 3
    assert max(clock.delays) <= 0.5


async def test_a_zero_budget_gives_up_after_one_attempt(clock: Clock) -> None:
    """With max_delay_s=0 a transient error is not retried but still becomes unavailable."""
    operation, calls = flaky(disconnected("down"))
    with pytest.raises(DatabaseUnavailable):
        await retry_transient(
            operation, what="op", max_delay_s=0, sleep=clock.sleep, clock=clock.monotonic
        )
    assert len(calls) == 1 and clock.delays == []


@pytest.mark.parametrize("code", [13, 18], ids=["Unauthorized", "AuthenticationFailed"])
async def test_fatal_errors_are_raised_at_once_as_fatal_database_error(
    clock: Clock, code: int
) -> None:
    """Authentication and authorization failures are never retried."""
    error = failure(code)
    operation, calls = flaky(error)
    with pytest.raises(FatalDatabaseError) as info:
        await retry_transient(
            operation, what="op", max_delay_s=30, sleep=clock.sleep, clock=clock.monotonic
        )
    assert info.value is error
    assert len(calls) == 1 and clock.delays == []


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(failure(11000), id="duplicate-key"),
        pytest.param(failure(286), id="history-lost"),
        pytest.param(ValueError("bug"), id="non-driver"),
    ],
)
async def test_other_errors_propagate_unchanged_without_retry(
    clock: Clock, error: Exception
) -> None:
    """Non-transient, non-fatal errors are the caller's to handle, as they were raised."""
    operation, calls = flaky(error)
    seen: list[Any] = []
    with pytest.raises(type(error)) as info:
        await retry_transient(
            operation,
            what="op",
            max_delay_s=30,
            sleep=clock.sleep,
            clock=clock.monotonic,
            on_retry=lambda *a: seen.append(a),
        )
    assert info.value is error
    assert len(calls) == 1 and clock.delays == [] and seen == []


# -- one deadline per operation ----------------------------------------------------------------


async def test_an_inner_retry_gets_only_what_remains_of_the_outer_budget(clock: Clock) -> None:
    """A commit retried inside a retried transaction never outlasts the transaction's budget.

    The outer operation spends 7 of its 10 s, then its commit is unknown for ever: the
    inner retry gives up after the remaining 3 s (not a fresh 10), and so does the outer.
    """
    policy = RetryPolicy(max_s=10.0, initial_wait_s=0.5, max_wait_s=1.0)
    seen: list[float | None] = []

    async def commit() -> None:
        raise failure(50, "UnknownTransactionCommitResult")

    async def transaction() -> None:
        if not seen:
            clock.now += 7.0
        seen.append(remaining_s())
        await retry_commit(commit, policy=policy, sleep=clock.sleep, clock=clock.monotonic)

    started = clock.now
    with pytest.raises(DatabaseUnavailable) as info:
        await retry_transient(
            transaction, what="batch", policy=policy, sleep=clock.sleep, clock=clock.monotonic
        )
    assert isinstance(info.value.__cause__, UnknownCommitResult)
    assert seen[0] == pytest.approx(3.0)
    assert clock.now - started < 10.0 + 2 * policy.max_wait_s
    assert remaining_s() is None  # outside any retry once more


async def test_a_commit_with_unknown_result_is_retried_in_place_until_it_lands(
    clock: Clock,
) -> None:
    """commitTransaction is idempotent: retry it, not the transaction."""
    operation, calls = flaky(failure(50, "UnknownTransactionCommitResult"), None)
    await retry_commit(operation, policy=RetryPolicy(), sleep=clock.sleep, clock=clock.monotonic)
    assert len(calls) == 2 and len(clock.delays) == 1


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(failure(112, "TransientTransactionError"), id="transient-transaction"),
        pytest.param(failure(251), id="NoSuchTransaction"),
    ],
)
async def test_a_commit_that_failed_for_sure_is_not_retried_in_place(
    clock: Clock, error: BaseException
) -> None:
    """Without UnknownTransactionCommitResult the transaction is over; the caller reruns it."""
    operation, calls = flaky(error)
    with pytest.raises(TransientError):
        await retry_commit(
            operation, policy=RetryPolicy(), sleep=clock.sleep, clock=clock.monotonic
        )
    assert len(calls) == 1 and clock.delays == []


def test_outage_backoff_doubles_with_jitter_up_to_its_cap() -> None:
    """1, 2, 4 … capped at outage_backoff_max_s, each up to 10 % longer; reset starts over."""
    policy = RetryPolicy(outage_backoff_s=1.0, outage_backoff_max_s=5.0)
    backoff = Backoff(policy, rng=lambda: 1.0)
    assert [backoff.next_s() for _ in range(5)] == pytest.approx([1.1, 2.2, 4.4, 5.5, 5.5])
    backoff.reset()
    assert Backoff(policy, rng=lambda: 0.0).next_s() == backoff.next_s() / 1.1


@pytest.mark.parametrize(
    ("failures_at", "logged"),
    [
        pytest.param([5.0], [True], id="the-first-failure-at-once"),
        pytest.param(
            [5.0, 11.0, 18.0, 27.0, 40.0, 61.0, 64.9, 65.0, 98.0, 133.0],
            [True, False, False, False, False, False, False, True, False, True],
            id="then-one-a-minute",
        ),
        pytest.param([1.0, 1.5, 2.0, 61.0, 61.1], [True, False, False, True, False], id="fast"),
    ],
)
def test_an_outage_logs_its_first_failure_then_one_a_minute(
    failures_at: list[float], logged: list[bool]
) -> None:
    """The first failed attempt is logged at once; later ones at most every 60 s."""
    outage = Outage(started_at=0.0)
    assert [outage.failed(now) for now in failures_at] == logged
    assert outage.attempts == len(failures_at)
    assert outage.lasted_s(failures_at[-1]) == failures_at[-1]


def test_the_policy_defaults_are_the_settings_defaults() -> None:
    """RetryPolicy() (used where no settings are at hand) agrees with Settings' defaults."""
    assert RetryPolicy() == Settings().retry_policy()


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(failure(11000), id="duplicate-key"),
        pytest.param(failure(286), id="history-lost"),
    ],
)
def test_non_transient_errors_keep_their_class(error: BaseException) -> None:
    """The table the retries rely on: these are never TransientError."""
    assert isinstance(error, DuplicateKey | HistoryLost)
    assert not isinstance(error, TransientError)
