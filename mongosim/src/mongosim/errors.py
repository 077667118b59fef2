"""Server-side errors, shaped as mongod reports them.

Every failure inside mongosim is a :class:`MongoError`; the server turns it into the
``{ok: 0, errmsg, code, codeName, errorLabels?, ...}`` reply that drivers expect.
Codes and names come from the server's ``src/mongo/base/error_codes.yml``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# Source: mongodb/mongo src/mongo/base/error_codes.yml
CODE_NAMES: dict[int, str] = {
    1: "InternalError",
    2: "BadValue",
    4: "NoSuchKey",
    6: "HostUnreachable",
    9: "FailedToParse",
    11: "UserNotFound",
    13: "Unauthorized",
    14: "TypeMismatch",
    17: "ProtocolError",
    20: "IllegalOperation",
    26: "NamespaceNotFound",
    27: "IndexNotFound",
    28: "PathNotViable",
    40: "ConflictingUpdateOperators",
    43: "CursorNotFound",
    48: "NamespaceExists",
    50: "MaxTimeMSExpired",
    52: "DollarPrefixedFieldName",
    54: "NotSingleValueField",
    59: "CommandNotFound",
    66: "ImmutableField",
    67: "CannotCreateIndex",
    72: "InvalidOptions",
    73: "InvalidNamespace",
    85: "IndexOptionsConflict",
    86: "IndexKeySpecsConflict",
    89: "NetworkTimeout",
    91: "ShutdownInProgress",
    96: "OperationFailed",
    112: "WriteConflict",
    121: "DocumentValidationFailure",
    166: "CommandNotSupportedOnView",
    189: "PrimarySteppedDown",
    197: "InvalidIndexSpecificationOption",
    211: "KeyNotFound",
    225: "TransactionTooOld",
    244: "TransactionAborted",
    251: "NoSuchTransaction",
    256: "TransactionCommitted",
    260: "InvalidResumeToken",
    263: "OperationNotSupportedInTransaction",
    276: "IndexBuildAborted",
    280: "ChangeStreamFatalError",
    286: "ChangeStreamHistoryLost",
    10107: "NotWritablePrimary",
    11000: "DuplicateKey",
    11600: "InterruptedAtShutdown",
    11601: "Interrupted",
    11602: "InterruptedDueToReplStateChange",
    13435: "NotPrimaryNoSecondaryOk",
    13436: "NotPrimaryOrSecondary",
    50915: "BackupCursorOpenConflictWithCheckpoint",
}

# Source: the retryable-writes spec ("Determining Retryable Errors") and
# src/mongo/db/error_labels.cpp: codes that earn RetryableWriteError.
RETRYABLE_WRITE_CODES = frozenset(
    {6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436, 63, 150, 134}
)

# Source: src/mongo/db/pipeline/change_stream_... and error_labels.cpp isResumableChangeStreamError:
# network errors and the codes in the "RetriableError" / "NetworkError" / "NotPrimaryError"
# categories of error_codes.yml.
RESUMABLE_CHANGE_STREAM_CODES = frozenset(
    {6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436, 63, 150, 13388, 234, 133, 43}
)


class MongoError(Exception):
    """A command failure with mongod's code, codeName, labels and extra reply fields."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        code_name: str | None = None,
        labels: Iterable[str] = (),
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.code_name = code_name or CODE_NAMES.get(code, "UnknownError")
        self.labels = list(labels)
        self.extra: dict[str, Any] = dict(extra or {})

    def to_reply(self) -> dict[str, Any]:
        reply: dict[str, Any] = {
            "ok": 0.0,
            "errmsg": self.message,
            "code": self.code,
            "codeName": self.code_name,
        }
        reply.update(self.extra)
        if self.labels:
            reply["errorLabels"] = list(self.labels)
        return reply

    def __repr__(self) -> str:
        return f"MongoError({self.code}, {self.message!r})"


class CloseConnection(Exception):
    """Close the client's connection without a reply (a fail point's closeConnection)."""


class WriteError(MongoError):
    """A per-document write failure: reported in ``writeErrors`` rather than as ``ok: 0``."""


def bad_value(message: str) -> MongoError:
    return MongoError(2, message)


def failed_to_parse(message: str) -> MongoError:
    return MongoError(9, message)


def type_mismatch(message: str) -> MongoError:
    return MongoError(14, message)
