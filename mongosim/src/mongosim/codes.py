"""The one table of server error codes: codeName and categories, as mongod has them.

Source: mongodb/mongo ``src/mongo/base/error_codes.yml`` (codes, names, ``categories``).
It covers every code mongosim raises itself and the codes drivers' spec tests inject
through ``failCommand``. A code that is not in the yml is an assertion location (the
``uassert(40324, ...)`` of a pipeline parser, say): mongod names it ``Location<code>``
(src/mongo/base/status.cpp, ErrorCodes::errorString), and so does :func:`code_name`.
Labels are computed from these categories by ``labels.py`` (error_labels.cpp).
"""

from __future__ import annotations

import enum


class Cat(enum.Flag):
    """The error categories of error_codes.yml that decide labels and topology handling."""

    NONE = 0
    NETWORK = enum.auto()  # NetworkError
    RETRIABLE = enum.auto()  # RetriableError
    SHUTDOWN = enum.auto()  # ShutdownError
    NOT_PRIMARY = enum.auto()  # NotPrimaryError
    SNAPSHOT = enum.auto()  # SnapshotError
    RETARGET = enum.auto()  # NeedRetargettingError
    NON_RESUMABLE = enum.auto()  # NonResumableChangeStreamError
    INTERRUPTION = enum.auto()  # Interruption
    WRITE_CONCERN = enum.auto()  # WriteConcernError


_N, _R, _S, _P = Cat.NETWORK, Cat.RETRIABLE, Cat.SHUTDOWN, Cat.NOT_PRIMARY
_I = Cat.INTERRUPTION

# code: (codeName, categories)
CODES: dict[int, tuple[str, Cat]] = {
    1: ("InternalError", Cat.NONE),
    2: ("BadValue", Cat.NONE),
    4: ("NoSuchKey", Cat.NONE),
    6: ("HostUnreachable", _N | _R),
    7: ("HostNotFound", _N | _R),
    8: ("UnknownError", Cat.NONE),
    9: ("FailedToParse", Cat.NONE),
    11: ("UserNotFound", Cat.NONE),
    13: ("Unauthorized", Cat.NONE),
    14: ("TypeMismatch", Cat.NONE),
    15: ("Overflow", Cat.NONE),
    16: ("InvalidLength", Cat.NONE),
    17: ("ProtocolError", Cat.NONE),
    18: ("AuthenticationFailed", Cat.NONE),
    20: ("IllegalOperation", Cat.NONE),
    22: ("InvalidBSON", Cat.NONE),
    24: ("LockTimeout", _I),
    26: ("NamespaceNotFound", Cat.NONE),
    27: ("IndexNotFound", Cat.NONE),
    28: ("PathNotViable", Cat.NONE),
    29: ("NonExistentPath", Cat.NONE),
    30: ("InvalidPath", Cat.NONE),
    40: ("ConflictingUpdateOperators", Cat.NONE),
    43: ("CursorNotFound", Cat.NONE),
    46: ("LockBusy", Cat.NONE),
    48: ("NamespaceExists", Cat.NONE),
    50: ("MaxTimeMSExpired", _I),
    52: ("DollarPrefixedFieldName", Cat.NONE),
    53: ("InvalidIdField", Cat.NONE),
    54: ("NotSingleValueField", Cat.NONE),
    55: ("InvalidDBRef", Cat.NONE),
    56: ("EmptyFieldName", Cat.NONE),
    57: ("DottedFieldName", Cat.NONE),
    59: ("CommandNotFound", Cat.NONE),
    63: ("OBSOLETE_StaleShardVersion", Cat.NONE),
    64: ("WriteConcernTimeout", Cat.WRITE_CONCERN),
    66: ("ImmutableField", Cat.NONE),
    67: ("CannotCreateIndex", Cat.NONE),
    68: ("IndexAlreadyExists", Cat.NONE),
    72: ("InvalidOptions", Cat.NONE),
    73: ("InvalidNamespace", Cat.NONE),
    79: ("UnknownReplWriteConcern", Cat.WRITE_CONCERN),
    85: ("IndexOptionsConflict", Cat.NONE),
    86: ("IndexKeySpecsConflict", Cat.NONE),
    89: ("NetworkTimeout", _N | _R),
    91: ("ShutdownInProgress", _S | _R),
    96: ("OperationFailed", Cat.NONE),
    100: ("UnsatisfiableWriteConcern", Cat.WRITE_CONCERN),
    112: ("WriteConflict", Cat.NONE),
    115: ("CommandNotSupported", Cat.NONE),
    117: ("ConflictingOperationInProgress", Cat.NONE),
    121: ("DocumentValidationFailure", Cat.NONE),
    125: ("CommandFailed", Cat.NONE),
    133: ("FailedToSatisfyReadPreference", Cat.NONE),
    134: ("ReadConcernMajorityNotAvailableYet", _R),
    136: ("CappedPositionLost", Cat.NONE),
    146: ("ExceededMemoryLimit", Cat.NONE),
    150: ("StaleEpoch", Cat.RETARGET),
    166: ("CommandNotSupportedOnView", Cat.NONE),
    167: ("OptionNotSupportedOnView", Cat.NONE),
    168: ("InvalidPipelineOperator", Cat.NONE),
    175: ("QueryPlanKilled", Cat.NONE),
    189: ("PrimarySteppedDown", _P | _R),
    197: ("InvalidIndexSpecificationOption", Cat.NONE),
    206: ("NoSuchSession", Cat.NONE),
    211: ("KeyNotFound", Cat.NONE),
    224: ("QueryFeatureNotAllowed", Cat.NONE),
    225: ("TransactionTooOld", Cat.NONE),
    234: ("RetryChangeStream", Cat.NONE),
    237: ("CursorKilled", _I),
    238: ("NotImplemented", Cat.NONE),
    239: ("SnapshotTooOld", Cat.SNAPSHOT),
    241: ("ConversionFailure", Cat.NONE),
    244: ("NOT_YET_AVAILABLE_TransactionAborted", Cat.NONE),
    246: ("SnapshotUnavailable", Cat.SNAPSHOT),
    249: ("StaleDbVersion", Cat.NONE),
    250: ("StaleChunkHistory", Cat.SNAPSHOT),
    251: ("NoSuchTransaction", Cat.NONE),
    256: ("TransactionCommitted", Cat.NONE),
    257: ("TransactionTooLarge", Cat.NONE),
    260: ("InvalidResumeToken", Cat.NONE),
    262: ("ExceededTimeLimit", _I | _R),
    263: ("OperationNotSupportedInTransaction", Cat.NONE),
    267: ("PreparedTransactionInProgress", Cat.NONE),
    272: ("MigrationConflict", Cat.SNAPSHOT),
    276: ("IndexBuildAborted", Cat.NONE),
    279: ("ClientDisconnect", _I),
    280: ("ChangeStreamFatalError", Cat.NON_RESUMABLE),
    286: ("ChangeStreamHistoryLost", Cat.NON_RESUMABLE),
    317: ("ConnectionPoolExpired", _N | _R),
    346: ("ChangeStreamInvalidated", Cat.NONE),
    358: ("InternalTransactionNotSupported", _R),
    384: ("ConnectionError", _N | _R),
    402: ("ResourceExhausted", _R),
    9001: ("SocketException", _N | _R),
    10058: ("LegacyNotPrimary", Cat.NONE),
    10107: ("NotWritablePrimary", _P | _R),
    10334: ("BSONObjectTooLarge", Cat.NONE),
    11000: ("DuplicateKey", Cat.NONE),
    11600: ("InterruptedAtShutdown", _I | _S | _R),
    11601: ("Interrupted", _I),
    11602: ("InterruptedDueToReplStateChange", _I | _P | _R),
    13388: ("StaleConfig", Cat.RETARGET),
    13435: ("NotPrimaryNoSecondaryOk", _P | _R),
    13436: ("NotPrimaryOrSecondary", _P | _R),
    40415: ("IDLUnknownField", Cat.NONE),
    50915: ("BackupCursorOpenConflictWithCheckpoint", _R),
}


def code_name(code: int) -> str:
    """mongod's codeName: the yml's name, or ``Location<code>`` for an assertion id."""
    entry = CODES.get(code)
    return entry[0] if entry is not None else f"Location{code}"


def has(code: int | None, category: Cat) -> bool:
    if code is None:
        return False
    entry = CODES.get(code)
    return entry is not None and bool(entry[1] & category)
