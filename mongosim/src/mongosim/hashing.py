"""mongod's hashed-index hash of a BSON value: ``$toHashedIndexKey`` and hashed indexes.

Source: ``src/mongo/db/hasher.cpp`` (``BSONElementHasher::hash64``, seed 0). The hash is an
MD5 over

- the seed, an int32 little-endian (always 0 here);
- for the value: its canonical type as an int32 little-endian (``canonicalizeBSONType``
  in ``bsontypes.h``: every number shares 10, string and symbol 15, ...), then
  - a number: squashed to an int64 (``safeNumberLongForHash``, ``bsonelement.h``), little-endian;
  - a document or an array: each element in order (its canonical type, its field name with
    the terminating NUL, its value, recursively), then the EOO element (canonical type 0,
    no name, no value);
  - any other value: its BSON value bytes as they are (a string's int32 length, bytes and NUL;
    an ObjectId's 12 bytes; nothing for null, MinKey or MaxKey);

and the hash is the digest's first 8 bytes read as a little-endian int64. The top-level
value is hashed without a field name. ``$toHashedIndexKey`` of a missing value hashes null.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Final

import bson
from bson.code import Code
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.objectid import ObjectId

from .bsonutil import CODEC_OPTIONS, MISSING

_INT32: Final = struct.Struct("<i")
_INT64: Final = struct.Struct("<q")
_LONG_MIN: Final = -(2**63)
_LONG_MAX: Final = 2**63 - 1
_TWO_63: Final = 2.0**63  # kLongLongMaxPlusOneAsDouble

# canonicalizeBSONType, by BSON type byte.
_CANONICAL: Final[dict[int, int]] = {
    0x01: 10,  # double
    0x10: 10,  # int32
    0x12: 10,  # int64
    0x13: 10,  # decimal128
    0x02: 15,  # string
    0x0E: 15,  # symbol
    0x03: 20,  # object
    0x04: 25,  # array
    0x05: 30,  # binData
    0x06: 0,  # undefined (as EOO)
    0x07: 35,  # objectId
    0x08: 40,  # bool
    0x09: 45,  # date
    0x11: 47,  # timestamp (45 with dates before 3.0; 47 since)
    0x0A: 5,  # null
    0x0B: 50,  # regex
    0x0C: 55,  # dbPointer
    0x0D: 60,  # javascript
    0x0F: 65,  # javascript with scope
    0xFF: -1,  # MinKey
    0x7F: 127,  # MaxKey
}
_NUMBER: Final = _INT32.pack(10)
_STRING: Final = _INT32.pack(15)
_OBJECT: Final = _INT32.pack(20)
_ARRAY: Final = _INT32.pack(25)
_OID: Final = _INT32.pack(35)
_EOO: Final = _INT32.pack(0)
_SEED: Final = _INT32.pack(0)


def hash64(value: Any) -> Int64:
    """mongod's ``BSONElementHasher::hash64(value, 0)``; a missing value hashes as null."""
    md5 = hashlib.md5(_SEED, usedforsecurity=False)
    _add(md5, None if value is MISSING else value, None)
    return Int64(_INT64.unpack_from(md5.digest())[0])


def _add(md5: Any, value: Any, name: bytes | None) -> None:
    """One element: canonical type, field name (inside documents and arrays), value."""
    if type(value) is str:  # the common cases first: strings, ObjectIds, numbers
        raw = value.encode()
        _head(md5, _STRING, name)
        md5.update(_INT32.pack(len(raw) + 1) + raw + b"\0")
    elif isinstance(value, ObjectId):
        _head(md5, _OID, name)
        md5.update(value.binary)
    elif isinstance(value, int | float | Decimal128) and not isinstance(value, bool):
        _head(md5, _NUMBER, name)
        md5.update(_INT64.pack(long_for_hash(value)))
    elif isinstance(value, Mapping | list):
        _head(md5, _OBJECT if isinstance(value, Mapping) else _ARRAY, name)
        items = value.items() if isinstance(value, Mapping) else enumerate(value)
        for key, sub in items:
            _add(md5, sub, str(key).encode() + b"\0")
        md5.update(_EOO)  # the EOO element: type 0, empty name (no NUL), no value
    elif isinstance(value, Code) and value.scope is not None:
        # CodeWScope encapsulates: its code string (bytes and NUL, no length), then its
        # scope's elements and EOO, as a document's.
        _head(md5, _INT32.pack(65), name)
        md5.update(str(value).encode() + b"\0")
        for key, sub in value.scope.items():
            _add(md5, sub, key.encode() + b"\0")
        md5.update(_EOO)
    else:
        type_byte, raw = _bson_value(value)
        _head(md5, _INT32.pack(_CANONICAL[type_byte]), name)
        md5.update(raw)


def _head(md5: Any, canonical: bytes, name: bytes | None) -> None:
    md5.update(canonical if name is None else canonical + name)


def _bson_value(value: Any) -> tuple[int, bytes]:
    """A value's BSON type byte and value bytes, as ``BSONElement::value()`` sees them.
    Encoded as ``{"": value}``: int32 size, type, empty name's NUL, the value, then EOO."""
    encoded = bson.encode({"": value}, codec_options=CODEC_OPTIONS)
    return encoded[4], encoded[6:-1]


def long_for_hash(value: int | float | Decimal128) -> int:
    """``BSONElement::safeNumberLongForHash``: NaN → 0, out of range → the nearest long,
    except a double of exactly 2^63, which keeps its old overflowed value -2^63."""
    if isinstance(value, float):
        if math.isnan(value):
            return 0
        if value == _TWO_63:
            return _LONG_MIN
        if not value < _TWO_63:
            return _LONG_MAX
        if value < _LONG_MIN:
            return _LONG_MIN
        return int(value)  # C++'s cast truncates toward zero, as int() does
    if isinstance(value, Decimal128):
        dec: Decimal = value.to_decimal()
        if dec.is_nan():
            return 0
        if dec > _LONG_MAX:
            return _LONG_MAX
        if dec < _LONG_MIN:
            return _LONG_MIN
        # Decimal128::toLong's default rounding mode is kRoundTiesToEven (not truncation).
        return int(dec.to_integral_value(rounding=ROUND_HALF_EVEN))
    return int(value)
