"""Identity of BSON values used as keys: which values name the same document.

An ``_id`` index treats numbers of different types but equal value as one key (1,
1.0 and NumberLong(1) collide), and compares a double and a decimal by exact value.
Python's ``==`` agrees on neither for BSON's wrapper types, so a dict keyed by raw
values would split or merge documents differently from the server.
"""

from __future__ import annotations

import decimal
import hashlib
from collections.abc import Hashable
from typing import Any

from .values import Decimal128, Int64, encode_bson


def bson_key(value: Any) -> Hashable:
    """A hashable key equal for two values exactly when an ``_id`` index equates them."""
    if type(value) is int:
        # Hot path (every event's key): a plain int keys as itself, which Python
        # already hashes and compares equal to the Decimal of the same value.
        return ("n", value)
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int | Int64):
        return ("n", decimal.Decimal(int(value)))
    if isinstance(value, float):
        if value != value:
            return ("n", "nan")
        return ("n", decimal.Decimal(value))  # exact binary value, as the server compares
    if isinstance(value, Decimal128):
        d = value.to_decimal()
        return ("n", "nan") if d.is_nan() else ("n", d)
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, dict):
        # Field order matters to BSON equality; numbers inside compare by value.
        return ("d", tuple((k, bson_key(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("a", tuple(bson_key(v) for v in value))
    return ("o", encode_bson({"": value}))


def stable_hash(value: Any) -> int:
    """A 64-bit hash of ``value``, equal for values an ``_id`` index equates, and the same
    in every process and Python (unlike :func:`hash`, salted per process for strings)."""
    digest = hashlib.blake2b(_canonical(bson_key(value)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _canonical(key: Hashable) -> str:
    """One spelling per key: numbers equal in value are spelt alike (1, 1.0, Int64(1))."""
    if isinstance(key, tuple):
        return "(" + ",".join(_canonical(k) for k in key) + ")"
    if isinstance(key, int | decimal.Decimal) and not isinstance(key, bool):
        sign, digits, exponent = decimal.Decimal(key).as_tuple()
        assert isinstance(exponent, int)  # finite: NaN keys as the string "nan"
        text = "".join(map(str, digits)).lstrip("0")
        if not text:
            return "0"
        stripped = text.rstrip("0")
        return f"{'-' if sign else ''}{stripped}e{exponent + len(text) - len(stripped)}"
    return repr(key)
