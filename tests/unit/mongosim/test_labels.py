"""codeNames and errorLabels, as mongod computes them (error_codes.yml, error_labels.cpp)."""

from __future__ import annotations

from typing import Any

import pytest
from mongosim.errors import MongoError

from mongosim import labels

RETRYABLE_WRITE = {"insert": "c", "txnNumber": 1}
IN_TXN = {"insert": "c", "txnNumber": 1, "autocommit": False}
COMMIT = {"commitTransaction": 1, "txnNumber": 1, "autocommit": False}
PLAIN = {"find": "c"}


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (246, "SnapshotUnavailable"),
        (168, "InvalidPipelineOperator"),
        (100, "UnsatisfiableWriteConcern"),
        (10334, "BSONObjectTooLarge"),
        (40324, "Location40324"),  # an assertion id, not in error_codes.yml
        (17276, "Location17276"),
    ],
)
def test_every_code_gets_mongods_code_name(code: int, name: str) -> None:
    assert MongoError(code, "x").to_reply()["codeName"] == name


@pytest.mark.parametrize(
    ("command", "cmd", "code", "wc_code", "change_stream", "expected"),
    [
        ("insert", IN_TXN, 246, None, False, ["TransientTransactionError"]),
        ("insert", IN_TXN, 112, None, False, ["TransientTransactionError"]),
        ("insert", IN_TXN, 11000, None, False, []),
        ("commitTransaction", COMMIT, 251, None, False, ["TransientTransactionError"]),
        ("commitTransaction", COMMIT, 251, 64, False, []),
        ("commitTransaction", COMMIT, 91, None, False, ["RetryableWriteError"]),
        ("insert", RETRYABLE_WRITE, 189, None, False, ["RetryableWriteError"]),
        ("insert", RETRYABLE_WRITE, None, 91, False, ["RetryableWriteError"]),
        ("insert", RETRYABLE_WRITE, 11000, None, False, []),
        ("insert", PLAIN, 189, None, False, []),
        ("getMore", PLAIN, 6, None, True, ["ResumableChangeStreamError"]),
        ("getMore", PLAIN, 43, None, True, []),
        ("getMore", PLAIN, 280, None, True, ["NonResumableChangeStreamError"]),
        ("aggregate", PLAIN, 286, None, True, ["NonResumableChangeStreamError"]),
    ],
)
def test_labels_follow_error_labels_cpp(
    command: str,
    cmd: dict[str, Any],
    code: int | None,
    wc_code: int | None,
    change_stream: bool,
    expected: list[str],
) -> None:
    assert labels.compute(command, cmd, code, wc_code, change_stream) == expected
