"""The driver boundary: each driver exception becomes one class of the service's tree."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    ConfigurationError,
    CursorNotFound,
    DuplicateKeyError,
    NetworkTimeout,
    NotPrimaryError,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
)

from streamer.core.errors import (
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
from streamer.mongo.errors import driver_errors, translate


def failure(code: int | None, *labels: str) -> OperationFailure:
    details = {"errorLabels": list(labels), "codeName": "Name"} if labels else None
    return OperationFailure("x", code=code, details=details)


@pytest.mark.parametrize(
    ("exc", "cls"),
    [
        # error labels decide first
        pytest.param(failure(112, "TransientTransactionError"), TransientError, id="transient-tx"),
        pytest.param(
            failure(50, "UnknownTransactionCommitResult"), UnknownCommitResult, id="unknown-commit"
        ),
        pytest.param(failure(None, "RetryableWriteError"), TransientError, id="retryable-write"),
        pytest.param(
            failure(10107, "ResumableChangeStreamError"), StreamInterrupted, id="resumable-stream"
        ),
        pytest.param(
            failure(59, "TransientTransactionError"), TransientError, id="label-beats-code"
        ),
        # except a refusal: no label makes retrying grant a privilege or a password
        pytest.param(
            failure(13, "TransientTransactionError"), FatalDatabaseError, id="unauthorized-in-txn"
        ),
        pytest.param(
            failure(13, "RetryableWriteError"), FatalDatabaseError, id="unauthorized-retryable"
        ),
        pytest.param(failure(11000, "SomeOtherLabel"), DuplicateKey, id="unrelated-label"),
        # then the driver's connection errors
        pytest.param(AutoReconnect("primary gone"), TransientError, id="AutoReconnect"),
        pytest.param(NetworkTimeout("slow"), TransientError, id="NetworkTimeout"),
        pytest.param(NotPrimaryError("stepped down"), TransientError, id="NotPrimaryError"),
        pytest.param(
            ServerSelectionTimeoutError("no primary"), TransientError, id="ServerSelection"
        ),
        # then the codes of error_codes.yml
        *(
            pytest.param(failure(code), TransientError, id=f"transient-{code}")
            for code in (6, 7, 89, 91, 112, 189, 251, 262, 9001, 10107, 11600, 11602, 13435, 13436)
        ),
        pytest.param(failure(286), HistoryLost, id="ChangeStreamHistoryLost"),
        pytest.param(failure(260), HistoryLost, id="InvalidResumeToken"),
        pytest.param(failure(280), HistoryLost, id="ChangeStreamFatalError"),
        pytest.param(failure(136), HistoryLost, id="CappedPositionLost"),
        pytest.param(failure(13), FatalDatabaseError, id="Unauthorized"),
        pytest.param(failure(18), FatalDatabaseError, id="AuthenticationFailed"),
        pytest.param(failure(8000), FatalDatabaseError, id="AtlasError"),
        pytest.param(failure(40573), FatalDatabaseError, id="not-a-replica-set"),
        pytest.param(failure(43), StreamInterrupted, id="CursorNotFound-code"),
        pytest.param(CursorNotFound("gone", code=43), StreamInterrupted, id="CursorNotFound"),
        pytest.param(failure(11000), DuplicateKey, id="DuplicateKey-code"),
        pytest.param(DuplicateKeyError("dup", code=11000), DuplicateKey, id="DuplicateKeyError"),
        pytest.param(
            BulkWriteError({"writeErrors": [{"code": 11000}]}), DuplicateKey, id="bulk-duplicate"
        ),
        pytest.param(failure(48), NamespaceExists, id="NamespaceExists"),
        # the rest
        pytest.param(failure(59), CommandError, id="CommandNotFound"),
        pytest.param(failure(None), CommandError, id="no-code"),
        pytest.param(ConfigurationError("bad uri"), CommandError, id="ConfigurationError"),
        pytest.param(PyMongoError("other"), CommandError, id="PyMongoError"),
    ],
)
def test_translate_maps_each_driver_error_to_one_service_class(
    exc: PyMongoError, cls: type[StreamerError]
) -> None:
    """Labels first, then connection errors, then the codes; never a driver type."""
    translated = translate(exc)
    assert type(translated) is cls
    assert not isinstance(translated, PyMongoError)


def test_a_translated_error_carries_code_code_name_and_labels() -> None:
    """What a caller may want of the server's reply travels on the service's exception."""
    translated = translate(failure(112, "TransientTransactionError"))
    assert isinstance(translated, DatabaseError)
    assert translated.code == 112 and translated.code_name == "Name"
    assert translated.labels == {"TransientTransactionError"}
    assert translated.reason == "OperationFailure:112"


def test_unknown_commit_results_are_transient_with_a_bounded_reason() -> None:
    """Outer retries rerun the transaction; the metrics label names the label."""
    translated = translate(failure(50, "UnknownTransactionCommitResult"))
    assert isinstance(translated, TransientError)
    assert translated.reason == "UnknownTransactionCommitResult"


def test_driver_errors_raises_the_translation_from_the_driver_error() -> None:
    """``raise … from exc``: the driver's exception stays reachable as the cause."""
    original = failure(189)
    with pytest.raises(TransientError) as info, driver_errors():
        raise original
    assert info.value.__cause__ is original


async def _swallowing_call(raise_after: PyMongoError | None) -> None:
    """A driver call that absorbs its task's cancellation (as Python 3.11's wait_for
    can), then returns or fails as if never cancelled."""
    with driver_errors():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(10)  # the driver call, cancelled long before it ends
        if raise_after is not None:
            raise raise_after


@pytest.mark.parametrize("raise_after", [None, AutoReconnect("closed")], ids=["returns", "fails"])
async def test_a_cancellation_the_driver_swallowed_still_cancels_the_caller(
    raise_after: PyMongoError | None,
) -> None:
    """Else a cancelled task (a TaskGroup's, failing) carries on as if never cancelled."""
    task = asyncio.create_task(_swallowing_call(raise_after))
    await asyncio.sleep(0)  # one loop step, no time: the task runs to its first await
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_driver_call_made_while_already_cancelling_is_not_cancelled_again() -> None:
    """Clean-up after a cancellation (ending a session, say) still reaches the server."""
    finished = asyncio.Event()

    async def clean_up_after_cancel() -> None:
        try:
            await asyncio.sleep(10)  # cancelled long before it ends
        finally:
            with driver_errors():
                await asyncio.sleep(0)  # the clean-up's driver call: one loop step
            finished.set()

    task = asyncio.create_task(clean_up_after_cancel())
    await asyncio.sleep(0)  # one loop step, no time: the task runs to its first await
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished.is_set()
