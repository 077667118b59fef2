"""BSON values as MongoDB compares, sorts, hashes and walks them.

Source for the ordering: MongoDB manual, "Comparison/Sort Order"
(https://www.mongodb.com/docs/manual/reference/bson-type-comparison-order/).
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Hashable, Mapping
from decimal import Decimal
from typing import Any, Final

from bson import CodecOptions
from bson.binary import Binary
from bson.codec_options import DatetimeConversion
from bson.datetime_ms import DatetimeMS
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.timestamp import Timestamp

# How mongosim decodes every BSON document it receives: plain dicts, aware UTC datetimes,
# and out-of-range dates kept as DatetimeMS instead of failing.
CODEC_OPTIONS: Final = CodecOptions(
    document_class=dict,
    tz_aware=True,
    tzinfo=_dt.UTC,
    datetime_conversion=DatetimeConversion.DATETIME_AUTO,
)


class _Missing:
    """A field that is absent (distinct from an explicit null)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


def is_number(value: Any) -> bool:
    """True for int32/int64/double/decimal128; booleans are not numbers in BSON."""
    return isinstance(value, int | float | Decimal128) and not isinstance(value, bool)


def to_python_number(value: Any) -> int | float | Decimal:
    """A BSON number as a Python number that compares and hashes exactly."""
    if isinstance(value, Decimal128):
        return value.to_decimal()
    if isinstance(value, Int64):
        return int(value)
    return value  # type: ignore[no-any-return]


def is_nan(value: Any) -> bool:
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, Decimal128):
        return value.to_decimal().is_nan()
    return False


def datetime_ms(value: _dt.datetime | DatetimeMS) -> int:
    """Milliseconds since the epoch of a BSON date."""
    if isinstance(value, DatetimeMS):
        return int(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.UTC)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def type_rank(value: Any) -> int:
    """The canonical rank of a value's BSON type in MongoDB's comparison order."""
    if value is None or value is MISSING:
        return 2
    if isinstance(value, bool):
        return 9
    if isinstance(value, int | float | Decimal128):
        return 3
    if isinstance(value, str):
        return 4
    if isinstance(value, Mapping):
        return 5
    if isinstance(value, list | tuple):
        return 6
    if isinstance(value, bytes | Binary):
        return 7
    if isinstance(value, ObjectId):
        return 8
    if isinstance(value, _dt.datetime | DatetimeMS):
        return 10
    if isinstance(value, Timestamp):
        return 11
    if isinstance(value, Regex | re.Pattern):
        return 12
    if isinstance(value, MinKey):
        return 1
    if isinstance(value, MaxKey):
        return 13
    return 14  # Code, DBRef and other rarities sort last, stably among themselves


def _cmp(a: Any, b: Any) -> int:
    return int(a > b) - int(a < b)


def _compare_numbers(a: Any, b: Any) -> int:
    a_nan, b_nan = is_nan(a), is_nan(b)
    if a_nan or b_nan:
        # NaN equals NaN and sorts below every other number.
        return 0 if a_nan and b_nan else (-1 if a_nan else 1)
    return _cmp(to_python_number(a), to_python_number(b))


def _binary_parts(value: bytes | Binary) -> tuple[int, int, bytes]:
    subtype = value.subtype if isinstance(value, Binary) else 0
    # BinData sorts by length, then subtype, then bytes.
    return (len(value), subtype, bytes(value))


def _regex_parts(value: Regex[Any] | re.Pattern[Any]) -> tuple[str, str]:
    if isinstance(value, Regex):
        return (str(value.pattern), str(value.flags))
    return (str(value.pattern), str(value.flags))


_INTEGERS: Final = frozenset({int, Int64})


def compare(a: Any, b: Any) -> int:
    """-1, 0 or 1, comparing two BSON values as MongoDB does (no array min/max here)."""
    if type(a) in _INTEGERS and type(b) in _INTEGERS:
        # int32 and int64 (not bool): the hot case of a partitioned stream's filter.
        return int(a > b) - int(a < b)
    ra, rb = type_rank(a), type_rank(b)
    if ra != rb:
        return -1 if ra < rb else 1
    if ra == 3:
        return _compare_numbers(a, b)
    if ra in (4, 8, 9, 11):
        return _cmp(a, b)
    if ra == 5:
        return _compare_documents(a, b)
    if ra == 6:
        for x, y in zip(a, b, strict=False):
            c = compare(x, y)
            if c:
                return c
        return _cmp(len(a), len(b))
    if ra == 7:
        return _cmp(_binary_parts(a), _binary_parts(b))
    if ra == 10:
        return _cmp(datetime_ms(a), datetime_ms(b))
    if ra == 12:
        return _cmp(_regex_parts(a), _regex_parts(b))
    if ra == 14:
        return _cmp(repr(a), repr(b))
    return 0


def _compare_documents(a: Mapping[str, Any], b: Mapping[str, Any]) -> int:
    for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=False):
        c = _cmp(type_rank(va), type_rank(vb))
        if c:
            return c
        c = _cmp(ka, kb)
        if c:
            return c
        c = compare(va, vb)
        if c:
            return c
    return _cmp(len(a), len(b))


def values_equal(a: Any, b: Any) -> bool:
    return type_rank(a) == type_rank(b) and compare(a, b) == 0


class SortKey:
    """Wraps a value so that Python's sort uses MongoDB's order."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: SortKey) -> bool:
        return compare(self.value, other.value) < 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SortKey) and compare(self.value, other.value) == 0

    def __hash__(self) -> int:
        return hash(canonical(self.value))


def canonical(value: Any) -> Hashable:
    """A hashable key: ``canonical(a) == canonical(b)`` exactly when MongoDB deems a == b.

    Python already hashes equal int, float and Decimal alike, so numbers of every BSON
    type meet in one key (1 == 1.0 == Int64(1) == Decimal128("1.0")), as in MongoDB.
    """
    # Hot path (every _id written or looked up): a plain int or str, the usual _id
    # types, is its own key without the general type ranking below.
    kind = type(value)
    if kind is int:
        return (3, value)
    if kind is str:
        return (4, value)
    rank = type_rank(value)
    if rank == 3:
        if is_nan(value):
            return (3, "NaN")
        return (3, to_python_number(value))
    if rank == 2:
        return (2,)
    if rank == 5:
        return (5, tuple((k, canonical(v)) for k, v in value.items()))
    if rank == 6:
        return (6, tuple(canonical(v) for v in value))
    if rank == 7:
        return (7, *_binary_parts(value))
    if rank == 10:
        return (10, datetime_ms(value))
    if rank == 11:
        return (11, value.time, value.inc)
    if rank == 12:
        return (12, *_regex_parts(value))
    if rank in (1, 13):
        return (rank,)
    if rank == 14:
        return (14, repr(value))
    return (rank, value)


def get_path(doc: Any, path: str) -> Any:
    """The value at a dotted path, or MISSING. Numeric parts index arrays; no array fan-out."""
    current = doc
    for part in path.split("."):
        if isinstance(current, Mapping):
            current = current.get(part, MISSING)
        elif isinstance(current, list) and part.isdigit():
            index = int(part)
            current = current[index] if index < len(current) else MISSING
        else:
            return MISSING
        if current is MISSING:
            return MISSING
    return current


_TYPE_NAMES: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (bool, "bool"),
    (Int64, "long"),
    (float, "double"),
    (Decimal128, "decimal"),
    (str, "string"),
    (Mapping, "object"),
    ((list, tuple), "array"),
    ((bytes, Binary), "binData"),
    (ObjectId, "objectId"),
    ((_dt.datetime, DatetimeMS), "date"),
    (Timestamp, "timestamp"),
    ((Regex, re.Pattern), "regex"),
    (MinKey, "minKey"),
    (MaxKey, "maxKey"),
)


def bson_type_name(value: Any) -> str:
    """The ``$type`` alias of a value (as ``$type`` and error messages name it)."""
    if value is None:
        return "null"
    if isinstance(value, int) and not isinstance(value, bool | Int64):
        return "int" if -(2**31) <= value < 2**31 else "long"
    for types, name in _TYPE_NAMES:
        if isinstance(value, types):
            return name
    return type(value).__name__
