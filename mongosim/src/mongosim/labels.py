"""errorLabels as the server computes them (src/mongo/db/error_labels.cpp)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# ErrorCategory RetriableError and ShutdownError in src/mongo/base/error_codes.yml.
RETRIABLE = frozenset(
    {
        6,
        7,
        89,
        91,
        189,
        262,
        9001,
        10107,
        11600,
        11602,
        13435,
        13436,
        63,
        150,
        134,
        317,
        358,
        384,
        402,
    }
)
SHUTDOWN = frozenset({91, 11600})
NETWORK = frozenset({6, 7, 89, 9001, 350})
TRANSIENT = frozenset({112, 24, 267, 341})
# NotPrimaryError and ShutdownError categories.
STATE_CHANGE = frozenset({10107, 13435, 13436, 189, 11602, 91, 11600})
COMMIT_OR_ABORT = frozenset({"commitTransaction", "abortTransaction"})
RESUMABLE_EXTRA = frozenset({234, 133})  # RetryChangeStream, FailedToSatisfyReadPreference


def compute(
    command_name: str,
    cmd: Mapping[str, Any],
    code: int | None,
    wc_code: int | None,
    is_change_stream: bool,
) -> list[str]:
    labels: list[str] = []
    has_txn = "txnNumber" in cmd
    in_txn = has_txn and "autocommit" in cmd
    commit_or_abort = command_name in COMMIT_OR_ABORT
    if code is not None and in_txn and _transient(code, wc_code is not None, commit_or_abort):
        labels.append("TransientTransactionError")
    retryable_write = has_txn and "autocommit" not in cmd
    if (retryable_write or (in_txn and commit_or_abort)) and (
        (code is not None and (code in RETRIABLE or code in SHUTDOWN))
        or (wc_code is not None and (wc_code in RETRIABLE or wc_code in SHUTDOWN))
    ):
        labels.append("RetryableWriteError")
    if (
        command_name in ("aggregate", "getMore")
        and is_change_stream
        and code is not None
        and wc_code is None
        and (code in RETRIABLE or code in NETWORK or code in RESUMABLE_EXTRA)
    ):
        labels.append("ResumableChangeStreamError")
    return labels


def _transient(code: int, has_wc_error: bool, commit_or_abort: bool) -> bool:
    transient = code in TRANSIENT
    if commit_or_abort:
        return transient or (code == 251 and not has_wc_error)
    return transient or code in RETRIABLE or code == 251
