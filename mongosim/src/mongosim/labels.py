"""errorLabels as the server computes them (src/mongo/db/error_labels.cpp).

Categories come from the one code table in ``codes.py`` (error_codes.yml).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .codes import Cat, has

COMMIT_OR_ABORT = frozenset({"commitTransaction", "abortTransaction"})
# WriteConflict, LockTimeout, PreparedTransactionInProgress (isTransientTransactionError),
# StaleDbVersion and ShardInvalidatedForTargeting.
TRANSIENT = frozenset({112, 24, 267, 249, 343})
RESUMABLE_EXTRA = frozenset({234, 133})  # RetryChangeStream, FailedToSatisfyReadPreference


def is_state_change(code: int) -> bool:
    """NotPrimaryError or ShutdownError: mongod attaches its topologyVersion."""
    return has(code, Cat.NOT_PRIMARY | Cat.SHUTDOWN)


def compute(
    command_name: str,
    cmd: Mapping[str, Any],
    code: int | None,
    wc_code: int | None,
    is_change_stream: bool,
) -> list[str]:
    """ErrorLabelBuilder::build: TransientTransactionError or RetryableWriteError, then
    ResumableChangeStreamError or NonResumableChangeStreamError."""
    labels: list[str] = []
    has_txn = "txnNumber" in cmd
    in_txn = has_txn and "autocommit" in cmd
    commit_or_abort = command_name in COMMIT_OR_ABORT
    if code is not None and in_txn and _transient(code, wc_code is not None, commit_or_abort):
        labels.append("TransientTransactionError")
    retryable_write = has_txn and "autocommit" not in cmd
    if (retryable_write or (in_txn and commit_or_abort)) and (
        has(code, Cat.RETRIABLE) or has(wc_code, Cat.RETRIABLE)
    ):
        labels.append("RetryableWriteError")
    if (
        not labels
        and command_name in ("aggregate", "getMore")
        and is_change_stream
        and code is not None
        and wc_code is None
        and (has(code, Cat.RETRIABLE | Cat.NETWORK | Cat.RETARGET) or code in RESUMABLE_EXTRA)
    ):
        labels.append("ResumableChangeStreamError")
    elif has(code, Cat.NON_RESUMABLE):
        labels.append("NonResumableChangeStreamError")
    return labels


def _transient(code: int, has_wc_error: bool, commit_or_abort: bool) -> bool:
    transient = code in TRANSIENT or has(code, Cat.SNAPSHOT | Cat.RETARGET)
    if commit_or_abort:
        return transient or (code == 251 and not has_wc_error)
    return transient or has(code, Cat.RETRIABLE) or code == 251
