"""bson_key: two values give one key exactly when an _id index treats them as one."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from bson import Decimal128, Int64, ObjectId

from streamer.core.keys import bson_key

OID = ObjectId("65f000000000000000000001")

SAME = [
    pytest.param(1, 1.0, id="int-double"),
    pytest.param(1, Int64(1), id="int-int64"),
    pytest.param(1, Decimal128("1"), id="int-decimal"),
    pytest.param(1.0, Decimal128("1.00"), id="double-decimal-trailing-zeros"),
    pytest.param(Int64(1), Decimal128("1.00"), id="int64-decimal"),
    pytest.param(0.5, Decimal128("0.5"), id="exact-binary-fraction"),
    pytest.param(0, -0.0, id="zero-negative-zero"),
    pytest.param(Decimal128("0"), Decimal128("-0.000"), id="decimal-zeros"),
    pytest.param(float("nan"), Decimal128("NaN"), id="nans"),
    pytest.param("abc", "abc", id="str"),
    pytest.param(OID, ObjectId(str(OID)), id="objectid"),
    pytest.param({"a": 1, "b": "x"}, {"a": 1, "b": "x"}, id="embedded-doc"),
    pytest.param([1, "x"], [1, "x"], id="array"),
    pytest.param(
        dt.datetime(2024, 1, 1, tzinfo=dt.UTC), dt.datetime(2024, 1, 1), id="datetime-utc-naive"
    ),
    pytest.param(True, True, id="bool"),
    pytest.param(None, None, id="null"),
]

DIFFERENT = [
    pytest.param(0.1, Decimal128("0.1"), id="double-0.1-is-not-decimal-0.1"),
    pytest.param(True, 1, id="true-is-not-1"),
    pytest.param(False, 0, id="false-is-not-0"),
    pytest.param(True, 1.0, id="true-is-not-1.0"),
    pytest.param(1, 2, id="different-ints"),
    pytest.param(1, "1", id="int-is-not-str"),
    pytest.param(OID, str(OID), id="objectid-is-not-its-hex"),
    pytest.param(OID, ObjectId("65f000000000000000000002"), id="different-objectids"),
    pytest.param({"a": 1}, {"a": 2}, id="different-embedded-docs"),
    pytest.param({"a": 1, "b": 2}, {"b": 2, "a": 1}, id="field-order-matters"),
    pytest.param(None, 0, id="null-is-not-0"),
    pytest.param("a", "A", id="case-sensitive"),
]


@pytest.mark.parametrize(("a", "b"), SAME)
def test_equal_values_give_equal_keys(a: Any, b: Any) -> None:
    """Values an _id index equates have equal keys with equal hashes."""
    assert bson_key(a) == bson_key(b)
    assert hash(bson_key(a)) == hash(bson_key(b))
    assert len({bson_key(a), bson_key(b)}) == 1


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_distinct_values_give_distinct_keys(a: Any, b: Any) -> None:
    """Values an _id index keeps apart have different keys."""
    assert bson_key(a) != bson_key(b)


def test_keys_merge_numeric_ids_in_a_dict() -> None:
    """A dict keyed by bson_key holds one entry for 1, 1.0, Int64(1) and Decimal128('1.00')."""
    keyed = {bson_key(v): v for v in (1, 1.0, Int64(1), Decimal128("1.00"))}
    assert len(keyed) == 1


def test_large_int64_and_its_double_are_compared_exactly() -> None:
    """2**53 + 1 is not the double 2**53 (the index compares exact values)."""
    assert bson_key(Int64(2**53 + 1)) != bson_key(float(2**53))
    assert bson_key(Int64(2**53)) == bson_key(float(2**53))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param({"a": 1}, {"a": 1.0}, id="int-double-inside-doc"),
        pytest.param({"a": 1}, {"a": Int64(1)}, id="int-int64-inside-doc"),
    ],
)
def test_numbers_inside_embedded_documents_compare_by_value(a: Any, b: Any) -> None:
    """{_id: {a: 1}} and {_id: {a: 1.0}} collide in an _id index, so their keys are equal."""
    assert bson_key(a) == bson_key(b)
