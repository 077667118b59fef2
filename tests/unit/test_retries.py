"""Driver error classification, and retrying transient failures with an injected sleep."""

from __future__ import annotations

import types
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import tenacity
from pymongo.errors import (
    AutoReconnect,
    DuplicateKeyError,
    NetworkTimeout,
    OperationFailure,
    ServerSelectionTimeoutError,
)

from streamer.errors import DatabaseUnavailable, FatalDatabaseError
from streamer.mongo.retries import Kind, classify, retry_transient


def failure(code: int | None, *labels: str) -> OperationFailure:
    details = {"errorLabels": list(labels)} if labels else None
    return OperationFailure("x", code=code, details=details)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        pytest.param(failure(10107), Kind.TRANSIENT, id="NotWritablePrimary"),
        pytest.param(failure(189), Kind.TRANSIENT, id="PrimarySteppedDown"),
        pytest.param(failure(91), Kind.TRANSIENT, id="ShutdownInProgress"),
        pytest.param(failure(112), Kind.TRANSIENT, id="WriteConflict"),
        pytest.param(failure(286), Kind.HISTORY_LOST, id="ChangeStreamHistoryLost"),
        pytest.param(failure(260), Kind.HISTORY_LOST, id="InvalidResumeToken"),
        pytest.param(failure(280), Kind.HISTORY_LOST, id="ChangeStreamFatalError"),
        pytest.param(failure(13), Kind.FATAL, id="Unauthorized"),
        pytest.param(failure(18), Kind.FATAL, id="AuthenticationFailed"),
        pytest.param(failure(11000), Kind.OTHER, id="DuplicateKey-code"),
        pytest.param(DuplicateKeyError("dup", code=11000), Kind.OTHER, id="DuplicateKeyError"),
        pytest.param(failure(None), Kind.OTHER, id="no-code"),
        pytest.param(
            failure(11000, "TransientTransactionError"), Kind.TRANSIENT, id="transient-label"
        ),
        pytest.param(
            failure(50, "UnknownTransactionCommitResult"), Kind.TRANSIENT, id="unknown-commit"
        ),
        pytest.param(failure(None, "RetryableWriteError"), Kind.TRANSIENT, id="retryable-write"),
        pytest.param(
            failure(13, "TransientTransactionError"), Kind.TRANSIENT, id="label-beats-code"
        ),
        pytest.param(failure(11000, "SomeOtherLabel"), Kind.OTHER, id="unrelated-label"),
        pytest.param(AutoReconnect("primary gone"), Kind.TRANSIENT, id="AutoReconnect"),
        pytest.param(NetworkTimeout("slow"), Kind.TRANSIENT, id="NetworkTimeout"),
        pytest.param(
            ServerSelectionTimeoutError("no primary"), Kind.TRANSIENT, id="ServerSelection"
        ),
        pytest.param(ValueError("not a driver error"), Kind.OTHER, id="non-driver"),
    ],
)
def test_classify(exc: BaseException, kind: Kind) -> None:
    """Labels first, then connection errors, then the codes of error_codes.yml."""
    assert classify(exc) is kind


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
    """tenacity measures max_delay_s on this clock, so no test waits for real."""
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
    operation, calls = flaky(failure(10107), AutoReconnect("x"), "done")
    result = await retry_transient(operation, what="op", max_delay_s=30, sleep=clock.sleep)
    assert result == "done" and len(calls) == 3
    assert len(clock.delays) == 2 and all(0 < d <= 5.0 for d in clock.delays)


async def test_success_at_first_try_does_not_sleep(clock: Clock) -> None:
    """No failure, no retry."""
    operation, calls = flaky(42)
    assert await retry_transient(operation, what="op", max_delay_s=1, sleep=clock.sleep) == 42
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
            operation, what="load", max_delay_s=2.0, sleep=clock.sleep, max_wait_s=0.5
        )
    assert info.value.__cause__ is last
    assert sum(clock.delays[:-1]) < 2.0 <= sum(clock.delays)
    assert len(calls) == len(clock.delays) + 1 > 3
    assert max(clock.delays) <= 0.5


async def test_a_zero_budget_gives_up_after_one_attempt(clock: Clock) -> None:
    """With max_delay_s=0 a transient error is not retried but still becomes unavailable."""
    operation, calls = flaky(AutoReconnect("down"))
    with pytest.raises(DatabaseUnavailable):
        await retry_transient(operation, what="op", max_delay_s=0, sleep=clock.sleep)
    assert len(calls) == 1 and clock.delays == []


@pytest.mark.parametrize("code", [13, 18], ids=["Unauthorized", "AuthenticationFailed"])
async def test_fatal_errors_are_raised_at_once_as_fatal_database_error(
    clock: Clock, code: int
) -> None:
    """Authentication and authorization failures are never retried."""
    error = failure(code)
    operation, calls = flaky(error)
    with pytest.raises(FatalDatabaseError) as info:
        await retry_transient(operation, what="op", max_delay_s=30, sleep=clock.sleep)
    assert info.value.__cause__ is error
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
            on_retry=lambda *a: seen.append(a),
        )
    assert info.value is error
    assert len(calls) == 1 and clock.delays == [] and seen == []
