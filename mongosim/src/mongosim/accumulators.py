"""$group accumulators and the array forms of $sum/$avg/$min/$max."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from bson.decimal128 import Decimal128, create_decimal128_context
from bson.int64 import Int64

from .bsonutil import MISSING, SortKey, canonical, is_number, to_python_number
from .errors import MongoError

_D128 = create_decimal128_context()


def sum_numbers(values: list[Any]) -> Any:
    """mongod's $sum: non-numbers ignored; int → long → double → decimal as needed."""
    numbers = [v for v in values if is_number(v)]
    if any(isinstance(v, Decimal128) for v in numbers):
        total = Decimal(0)
        for v in numbers:
            n = to_python_number(v)
            total = _D128.add(total, Decimal(n) if not isinstance(n, float) else Decimal(repr(n)))
        return Decimal128(total)
    if any(isinstance(v, float) for v in numbers):
        return float(sum(float(to_python_number(v)) for v in numbers))
    total_int = sum(int(v) for v in numbers)
    if any(isinstance(v, Int64) for v in numbers) or not -(2**31) <= total_int < 2**31:
        return Int64(total_int) if -(2**63) <= total_int < 2**63 else float(total_int)
    return total_int


def avg_numbers(values: list[Any]) -> Any:
    numbers = [v for v in values if is_number(v)]
    if not numbers:
        return None
    total = sum_numbers(numbers)
    if isinstance(total, Decimal128):
        return Decimal128(_D128.divide(total.to_decimal(), Decimal(len(numbers))))
    return float(total) / len(numbers)


def _extreme(values: list[Any], pick_max: bool) -> Any:
    present = [v for v in values if v is not None and v is not MISSING]
    if not present:
        return None
    return (max if pick_max else min)(present, key=SortKey)


def fold(kind: str, values: list[Any]) -> Any:
    if kind == "$sum":
        return sum_numbers(values)
    if kind == "$avg":
        return avg_numbers(values)
    if kind == "$min":
        return _extreme(values, False)
    if kind == "$max":
        return _extreme(values, True)
    raise MongoError(15952, f"unknown group operator '{kind}'")


def _add_to_set(values: list[Any]) -> list[Any]:
    seen: dict[Any, Any] = {}
    for v in values:
        if v is not MISSING:
            seen.setdefault(canonical(v), v)
    return list(seen.values())


def _merge(values: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for v in values:
        if isinstance(v, dict):
            out.update(v)
    return out


def _std(values: list[Any], sample: bool) -> Any:
    xs = [float(to_python_number(v)) for v in values if is_number(v)]
    n = len(xs) - (1 if sample else 0)
    if n <= 0:
        return None
    mean = sum(xs) / len(xs)
    return (sum((x - mean) ** 2 for x in xs) / n) ** 0.5


# Group accumulators over the evaluated per-document values (MISSING kept where it matters).
GROUP_ACCUMULATORS: dict[str, Callable[[list[Any]], Any]] = {
    "$sum": sum_numbers,
    "$avg": avg_numbers,
    "$min": lambda vs: _extreme(vs, False),
    "$max": lambda vs: _extreme(vs, True),
    "$first": lambda vs: (None if vs[0] is MISSING else vs[0]) if vs else None,
    "$last": lambda vs: (None if vs[-1] is MISSING else vs[-1]) if vs else None,
    "$push": lambda vs: [v for v in vs if v is not MISSING],
    "$addToSet": _add_to_set,
    "$mergeObjects": _merge,
    "$stdDevPop": lambda vs: _std(vs, False),
    "$stdDevSamp": lambda vs: _std(vs, True),
}
